//! A solver as one node of ad-core's tape (the analogue of JAXopt's `custom_root`, with
//! forward mode too).
//!
//! The forward solve runs in plain `f64` with any algorithm (a black box is fine). Only its
//! solution enters the tape, as a custom op whose VJP and JVP apply the implicit function
//! theorem at that solution, by the pass [`IftOptions::backward`] chooses. A loss built
//! downstream backpropagates to θ with `Tape::gradient`; if the backward pass fails, the
//! gradient call returns `AdError::CustomRule` carrying the [`ImplicitError`] with its
//! numbers, and the node's [`reports`](ImplicitNode::reports) record the failure too.
//!
//! Problems are owned by the node (`'static`); share a large dataset between nodes by
//! wrapping the problem in an `Arc` or `Rc` (`Argmin(Arc::clone(&data))`): the problem
//! traits are implemented for those, so nothing is copied.

use std::cell::RefCell;
use std::rc::Rc;

use ad_core::{CustomRule, MatOps, MatVar, RuleError, Var, custom_op, custom_scalar_op};
use nalgebra::DMatrix;

use crate::adapters::FixedPointResidual;
use crate::backward::{Direction, IftReport};
use crate::checks;
use crate::error::ImplicitError;
use crate::ift::{IftOptions, Implicit};
use crate::linear::kernels::norm;
use crate::linearize::ArgminHessian;
use crate::problem::{FixedPointMap, Objective, RootCondition};
use crate::solver_output::SolverOutput;

/// A problem whose solution can be differentiated implicitly at any (x*, θ).
///
/// [`implicit_node`] calls [`residual_norm`](Self::residual_norm) once, when it records
/// the node, and the derivative methods at that checked point: [`Argmin`]'s do not
/// evaluate ∇ₓL again (one recording of L fewer per pass); roots and fixed points check
/// their residual from the recording their products need anyway.
pub trait ImplicitProblem: 'static {
    /// ‖F(x, θ)‖₂ ([`Shape`](ImplicitError::Shape) if F is not shaped like x).
    fn residual_norm(&self, x: &DMatrix<f64>, theta: &[DMatrix<f64>])
    -> Result<f64, ImplicitError>;
    /// θ̄ (one matrix per block) for the cotangent x̄.
    fn vjp(
        &self,
        x: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
        x_bar: &DMatrix<f64>,
        options: &IftOptions,
    ) -> Result<(Vec<DMatrix<f64>>, IftReport), ImplicitError>;
    /// ẋ for one tangent θ̇ per block.
    fn jvp(
        &self,
        x: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
        theta_dot: &[DMatrix<f64>],
        options: &IftOptions,
    ) -> Result<(DMatrix<f64>, IftReport), ImplicitError>;
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

/// ‖F‖ of a residual evaluated in plain `f64`, shape-checked.
fn plain_residual_norm(f: DMatrix<f64>, x: &DMatrix<f64>) -> Result<f64, ImplicitError> {
    checks::shape(
        "residual F(x, theta) (must have the shape of x)",
        x.shape(),
        f.shape(),
    )?;
    crate::error::check_finite("optimality residual F(x*, theta)", f.as_slice())?;
    Ok(norm(f.as_slice()))
}

macro_rules! implicit_problem {
    ($wrapper:ident, $bound:ident, $ctor:path, |$s:ident, $x:ident, $t:ident| $norm:expr) => {
        impl<T: $bound + 'static> ImplicitProblem for $wrapper<T> {
            fn residual_norm(
                &self,
                $x: &DMatrix<f64>,
                $t: &[DMatrix<f64>],
            ) -> Result<f64, ImplicitError> {
                let $s = &self.0;
                $norm
            }
            fn vjp(
                &self,
                x: &DMatrix<f64>,
                theta: &[DMatrix<f64>],
                x_bar: &DMatrix<f64>,
                options: &IftOptions,
            ) -> Result<(Vec<DMatrix<f64>>, IftReport), ImplicitError> {
                $ctor(&self.0, x, theta, options.clone())?.vjp(x_bar)
            }
            fn jvp(
                &self,
                x: &DMatrix<f64>,
                theta: &[DMatrix<f64>],
                theta_dot: &[DMatrix<f64>],
                options: &IftOptions,
            ) -> Result<(DMatrix<f64>, IftReport), ImplicitError> {
                $ctor(&self.0, x, theta, options.clone())?.jvp(theta_dot)
            }
        }
    };
}
implicit_problem!(Root, RootCondition, Implicit::root, |c, x, t| {
    plain_residual_norm(c.residual(x, t), x)
});
implicit_problem!(Argmin, Objective, Implicit::argmin_prechecked, |o, x, t| {
    let lin = ArgminHessian::new(o, x, t)?;
    crate::error::check_finite("optimality residual F(x*, theta)", lin.gradient())?;
    Ok(norm(lin.gradient()))
});
implicit_problem!(
    FixedPoint,
    FixedPointMap,
    Implicit::fixed_point,
    |f, x, t| plain_residual_norm(FixedPointResidual(f).residual(x, t), x)
);

/// A handle on a recorded implicit node: its forward residual and the reports of its
/// backward (or forward-mode) passes, failed ones included.
#[derive(Clone, Debug)]
pub struct ImplicitNode {
    /// ‖F(x*, θ)‖₂ when the node was recorded.
    pub forward_residual: f64,
    reports: Rc<RefCell<Vec<IftReport>>>,
}

impl ImplicitNode {
    /// Reports of every derivative this node has computed or attempted so far (VJPs and
    /// JVPs, in order); a failed one has [`IftReport::failure`] set.
    pub fn reports(&self) -> Vec<IftReport> {
        self.reports.borrow().clone()
    }
    /// The most recent report, if any.
    pub fn last_report(&self) -> Option<IftReport> {
        self.reports.borrow().last().cloned()
    }
    /// The reports of failed derivatives only.
    pub fn failures(&self) -> Vec<IftReport> {
        self.reports
            .borrow()
            .iter()
            .filter(|r| !r.succeeded())
            .cloned()
            .collect()
    }
}

pub(crate) struct ImplicitRule<P> {
    name: String,
    problem: P,
    x: DMatrix<f64>,
    theta: Vec<DMatrix<f64>>,
    options: IftOptions,
    forward_residual: f64,
    /// Scalar node: the tape sees x and θ as columns.
    scalar: bool,
    pub(crate) reports: Rc<RefCell<Vec<IftReport>>>,
}

impl<P: ImplicitProblem> ImplicitRule<P> {
    /// Keep the report of a derivative, or of its failure.
    fn record<T>(
        &self,
        direction: Direction,
        result: Result<(T, IftReport), ImplicitError>,
    ) -> Result<T, RuleError> {
        match result {
            Ok((value, mut report)) => {
                // The residual checked when the node was recorded (an argmin's derivative
                // passes do not evaluate ∇ₓL again).
                report.forward_residual = self.forward_residual;
                self.reports.borrow_mut().push(report);
                Ok(value)
            }
            Err(e) => {
                let report =
                    IftReport::failed(self.forward_residual, direction, self.options.backward, &e);
                self.reports.borrow_mut().push(report);
                Err(e.into())
            }
        }
    }
}

impl<P: ImplicitProblem> CustomRule for ImplicitRule<P> {
    fn name(&self) -> &str {
        &self.name
    }
    fn vjp(&self, u: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        let (r, c) = self.x.shape();
        let x_bar = if self.scalar {
            DMatrix::from_column_slice(r, c, u[0].as_slice())
        } else {
            u[0].clone()
        };
        let result = self
            .problem
            .vjp(&self.x, &self.theta, &x_bar, &self.options);
        self.record(Direction::Reverse, result)
    }
    fn jvp(&self, v: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        let result = self.problem.jvp(&self.x, &self.theta, v, &self.options);
        let x_dot = self.record(Direction::Forward, result)?;
        Ok(vec![if self.scalar {
            DMatrix::from_column_slice(x_dot.len(), 1, x_dot.as_slice())
        } else {
            x_dot
        }])
    }
}

/// Validate, solve with `forward_solver` at θ's value, check x* (shape, finiteness,
/// residual) and build the rule.
pub(crate) fn prepare<P: ImplicitProblem, R: SolverOutput>(
    problem: P,
    theta: Vec<DMatrix<f64>>,
    forward_solver: impl FnOnce(&[DMatrix<f64>]) -> R,
    options: IftOptions,
    scalar: bool,
) -> Result<(DMatrix<f64>, ImplicitRule<P>, ImplicitNode), ImplicitError> {
    options.validate()?;
    checks::finite_blocks("parameters theta", &theta)?;
    let mut x = forward_solver(&theta)
        .into_solution()
        .map_err(ImplicitError::ForwardSolver)?;
    if let Some((r, c)) = options.solution_shape {
        // A column of r·c entries (a `Vec<f64>` solver) is read column-major.
        if x.ncols() == 1 && x.nrows() == r * c {
            x = x.reshape_generic(nalgebra::Dyn(r), nalgebra::Dyn(c));
        }
        checks::shape(
            "solution x from the forward solver (IftOptions::solution_shape)",
            (r, c),
            x.shape(),
        )?;
    }
    checks::finite_matrix("solution x from the forward solver", 0, &x)?;
    let forward_residual = problem.residual_norm(&x, &theta)?;
    if forward_residual.is_nan() || forward_residual > options.residual_tol {
        return Err(ImplicitError::NotAtSolution {
            residual: forward_residual,
            tolerance: options.residual_tol,
        });
    }
    let reports = Rc::new(RefCell::new(Vec::new()));
    let rule = ImplicitRule {
        name: "implicit".to_string(),
        problem,
        x: x.clone(),
        theta,
        options,
        forward_residual,
        scalar,
        reports: reports.clone(),
    };
    let node = ImplicitNode {
        forward_residual,
        reports,
    };
    Ok((x, rule, node))
}

/// Record the solution of `problem` at the parameter blocks θ (matrix variables of any
/// shapes, on one tape) as one node; x* may have any shape.
///
/// `forward_solver` receives θ's values and returns x* (any algorithm; see
/// [`SolverOutput`] for what it may return). Before anything is recorded: the options are
/// validated, θ is checked for non-finite entries, x* is checked against
/// [`IftOptions::solution_shape`] (if set) and for non-finite entries, then the residual
/// ‖F(x*, θ)‖ against `options.residual_tol`.
pub fn implicit_node<P, R>(
    problem: P,
    theta: &[MatVar],
    forward_solver: impl FnOnce(&[DMatrix<f64>]) -> R,
    options: IftOptions,
) -> Result<(MatVar, ImplicitNode), ImplicitError>
where
    P: ImplicitProblem,
    R: SolverOutput,
{
    let values = theta.iter().map(|t| t.value()).collect();
    let (x, rule, node) = prepare(problem, values, forward_solver, options, false)?;
    let out = custom_op(rule, theta, vec![x]);
    Ok((out[0], node))
}

/// [`implicit_node`] for scalar parameters: θ as `Var`s (one column block), x* as `Var`s
/// (its entries, column-major).
pub fn implicit_scalar_node<P, R>(
    problem: P,
    theta: &[Var],
    forward_solver: impl FnOnce(&[f64]) -> R,
    options: IftOptions,
) -> Result<(Vec<Var>, ImplicitNode), ImplicitError>
where
    P: ImplicitProblem,
    R: SolverOutput,
{
    let values: Vec<f64> = theta.iter().map(|t| t.value_f64()).collect();
    let block = vec![checks::column(&values)];
    let solver = move |t: &[DMatrix<f64>]| forward_solver(t[0].as_slice());
    let (x, rule, node) = prepare(problem, block, solver, options, true)?;
    Ok((custom_scalar_op(rule, theta, x.as_slice()), node))
}
