//! A solver as one node of ad-core's tape (the analogue of JAXopt's `custom_root`, with
//! forward mode too).
//!
//! The forward solve runs in plain `f64` with any algorithm (a black box is fine). Only its
//! solution enters the tape, as a custom op whose VJP and JVP apply the implicit function
//! theorem at that solution. A loss built downstream backpropagates to θ with
//! `Tape::gradient`; if the backward linear solve fails, the gradient call returns
//! `AdError::CustomRule` carrying the [`ImplicitError`] with the solver's report.

use std::cell::RefCell;
use std::rc::Rc;

use ad_core::{CustomRule, MatOps, MatVar, RuleError, Var, custom_op, custom_scalar_op};
use nalgebra::DMatrix;

use crate::error::{ImplicitError, check_finite};
use crate::ift::{IftOptions, IftReport, Implicit};
use crate::problem::{FixedPointMap, Objective, RootCondition};

/// A problem whose solution can be differentiated implicitly at any (x*, θ).
pub trait ImplicitProblem: 'static {
    /// ‖F(x, θ)‖₂.
    fn residual_norm(&self, x: &[f64], theta: &[f64]) -> Result<f64, ImplicitError>;
    /// θ̄ = −Bᵀ A⁻ᵀ x̄.
    fn vjp(
        &self,
        x: &[f64],
        theta: &[f64],
        x_bar: &[f64],
        options: &IftOptions,
    ) -> Result<(Vec<f64>, IftReport), ImplicitError>;
    /// ẋ = −A⁻¹ B θ̇.
    fn jvp(
        &self,
        x: &[f64],
        theta: &[f64],
        theta_dot: &[f64],
        options: &IftOptions,
    ) -> Result<(Vec<f64>, IftReport), ImplicitError>;
}

/// x* is a root of a [`RootCondition`].
#[derive(Clone, Debug)]
pub struct Root<C>(pub C);
/// x* minimizes an [`Objective`].
#[derive(Clone, Debug)]
pub struct Argmin<O>(pub O);
/// z* is a fixed point of a [`FixedPointMap`].
#[derive(Clone, Debug)]
pub struct FixedPoint<F>(pub F);

fn no_check(options: &IftOptions) -> IftOptions {
    options.clone().residual_tol(f64::INFINITY)
}

macro_rules! implicit_problem {
    ($wrapper:ident, $bound:ident, $ctor:ident) => {
        impl<T: $bound + 'static> ImplicitProblem for $wrapper<T> {
            fn residual_norm(&self, x: &[f64], theta: &[f64]) -> Result<f64, ImplicitError> {
                let opts = no_check(&IftOptions::default());
                Ok(Implicit::$ctor(&self.0, x, theta, opts)?.forward_residual())
            }
            fn vjp(
                &self,
                x: &[f64],
                theta: &[f64],
                x_bar: &[f64],
                options: &IftOptions,
            ) -> Result<(Vec<f64>, IftReport), ImplicitError> {
                Implicit::$ctor(&self.0, x, theta, options.clone())?.vjp(x_bar)
            }
            fn jvp(
                &self,
                x: &[f64],
                theta: &[f64],
                theta_dot: &[f64],
                options: &IftOptions,
            ) -> Result<(Vec<f64>, IftReport), ImplicitError> {
                Implicit::$ctor(&self.0, x, theta, options.clone())?.jvp(theta_dot)
            }
        }
    };
}
implicit_problem!(Root, RootCondition, root);
implicit_problem!(Argmin, Objective, argmin);
implicit_problem!(FixedPoint, FixedPointMap, fixed_point);

/// A handle on a recorded implicit node: its forward residual and the reports of its
/// backward (or forward-mode) solves.
#[derive(Clone, Debug)]
pub struct ImplicitNode {
    /// ‖F(x*, θ)‖₂ when the node was recorded.
    pub forward_residual: f64,
    reports: Rc<RefCell<Vec<IftReport>>>,
}

impl ImplicitNode {
    /// Reports of every derivative solve this node has done so far (VJPs and JVPs).
    pub fn reports(&self) -> Vec<IftReport> {
        self.reports.borrow().clone()
    }
    /// The most recent report, if any.
    pub fn last_report(&self) -> Option<IftReport> {
        self.reports.borrow().last().cloned()
    }
}

struct ImplicitRule<P> {
    name: String,
    problem: P,
    x: Vec<f64>,
    theta: Vec<f64>,
    options: IftOptions,
    reports: Rc<RefCell<Vec<IftReport>>>,
}

impl<P: ImplicitProblem> CustomRule for ImplicitRule<P> {
    fn name(&self) -> &str {
        &self.name
    }
    fn vjp(&self, u: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        let (theta_bar, report) =
            self.problem
                .vjp(&self.x, &self.theta, u[0].as_slice(), &self.options)?;
        self.reports.borrow_mut().push(report);
        Ok(vec![DMatrix::from_column_slice(
            theta_bar.len(),
            1,
            &theta_bar,
        )])
    }
    fn jvp(&self, v: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        let (x_dot, report) =
            self.problem
                .jvp(&self.x, &self.theta, v[0].as_slice(), &self.options)?;
        self.reports.borrow_mut().push(report);
        Ok(vec![DMatrix::from_column_slice(x_dot.len(), 1, &x_dot)])
    }
}

/// Solve with `forward_solver` at θ's value and record the solution on θ's tape.
fn prepare<P: ImplicitProblem, E: Into<RuleError>>(
    name: &str,
    problem: P,
    theta: Vec<f64>,
    forward_solver: impl FnOnce(&[f64]) -> Result<Vec<f64>, E>,
    options: IftOptions,
) -> Result<(Vec<f64>, ImplicitRule<P>, ImplicitNode), ImplicitError> {
    check_finite("parameters theta", &theta)?;
    let x = forward_solver(&theta).map_err(|e| ImplicitError::ForwardSolver(e.into()))?;
    let forward_residual = problem.residual_norm(&x, &theta)?;
    if !forward_residual.is_finite() || forward_residual > options.residual_tol {
        return Err(ImplicitError::NotAtSolution {
            residual: forward_residual,
            tolerance: options.residual_tol,
        });
    }
    let reports = Rc::new(RefCell::new(Vec::new()));
    let rule = ImplicitRule {
        name: name.to_string(),
        problem,
        x: x.clone(),
        theta,
        options,
        reports: reports.clone(),
    };
    Ok((
        x,
        rule,
        ImplicitNode {
            forward_residual,
            reports,
        },
    ))
}

/// Record the solution of `problem` at θ (an `p x 1` column on a tape) as one node.
///
/// `forward_solver` receives θ's value and returns x* (any algorithm). The residual
/// ‖F(x*, θ)‖ is checked against `options.residual_tol` before anything is recorded.
pub fn implicit_node<P, E>(
    problem: P,
    theta: &MatVar,
    forward_solver: impl FnOnce(&[f64]) -> Result<Vec<f64>, E>,
    options: IftOptions,
) -> Result<(MatVar, ImplicitNode), ImplicitError>
where
    P: ImplicitProblem,
    E: Into<RuleError>,
{
    if theta.ncols() != 1 {
        return Err(ImplicitError::Dimension {
            what: "theta columns (theta must be a p x 1 column)",
            expected: 1,
            got: theta.ncols(),
        });
    }
    let (x, rule, node) = prepare(
        "implicit",
        problem,
        theta.value().as_slice().to_vec(),
        forward_solver,
        options,
    )?;
    let n = x.len();
    let out = custom_op(rule, &[*theta], vec![DMatrix::from_column_slice(n, 1, &x)]);
    Ok((out[0], node))
}

/// [`implicit_node`] for scalar parameters: θ as `Var`s, x* as `Var`s.
pub fn implicit_scalar_node<P, E>(
    problem: P,
    theta: &[Var],
    forward_solver: impl FnOnce(&[f64]) -> Result<Vec<f64>, E>,
    options: IftOptions,
) -> Result<(Vec<Var>, ImplicitNode), ImplicitError>
where
    P: ImplicitProblem,
    E: Into<RuleError>,
{
    let values: Vec<f64> = theta.iter().map(|t| t.value_f64()).collect();
    let (x, rule, node) = prepare("implicit", problem, values, forward_solver, options)?;
    Ok((custom_scalar_op(rule, theta, &x), node))
}
