//! The hypergradient of a validation loss through an inner argmin, by the implicit
//! function theorem:
//!
//! ```text
//! x*(θ) = argmin_x L(x, θ),   dV(x*(θ), θ)/dθ = ∂V/∂θ − (∂²L/∂x∂θ)ᵀ (∂²L/∂x²)⁻¹ ∂V/∂x
//! ```
//!
//! The inner problem is solved by any [`InnerSolver`] (a closure is one); when the solver
//! has factored the Hessian anyway (Newton, a ridge system's Cholesky), it hands the factor
//! over and the backward solve reuses it ([`Implicit::with_factor`]).

use ad_core::{MatOps, Tape};
use serde::{Deserialize, Serialize};

use crate::backward::IftReport;
use crate::error::{ImplicitError, check_finite};
use crate::ift::{IftOptions, Implicit};
use crate::linear::Factor;
use crate::linearize::{ArgminHessian, Linearization};
use crate::problem::Objective;

/// The outer (validation) loss V(x, θ), written once against [`MatOps`] like an
/// [`Objective`]. Most validation losses ignore θ.
pub trait ValidationLoss {
    /// V(x, θ).
    fn loss<M: MatOps>(&self, x: &M, theta: &M) -> M::Scalar;

    /// `(V, ∂V/∂x, ∂V/∂θ)` at (x, θ). The default is one reverse pass over
    /// [`loss`](ValidationLoss::loss) on a tape; override it with a hand-written gradient
    /// when one is cheaper (it must agree with the tape's).
    fn value_and_grad(
        &self,
        x: &[f64],
        theta: &[f64],
    ) -> Result<(f64, Vec<f64>, Vec<f64>), ImplicitError> {
        validation_value_and_grad(self, x, theta)
    }
}

/// What an inner solve returns.
#[derive(Clone, Debug)]
pub struct InnerSolution {
    /// The solution x*(θ).
    pub x: Vec<f64>,
    /// Iterations the solver used (Newton steps, CG iterations, ...).
    pub iterations: usize,
    /// A factorization of the Hessian ∂²L/∂x² at x* made by the solver, for the backward
    /// solve to reuse (checked against the true Hessian there: see [`Implicit::with_factor`]).
    pub factor: Option<Factor>,
}

impl InnerSolution {
    /// A solution without a factorization.
    pub fn new(x: Vec<f64>, iterations: usize) -> Self {
        InnerSolution {
            x,
            iterations,
            factor: None,
        }
    }
}

/// Solves the inner problem at θ, optionally from a warm start.
///
/// Closures `FnMut(&[f64], Option<&[f64]>) -> Result<InnerSolution, ImplicitError>` are
/// inner solvers.
pub trait InnerSolver {
    /// x*(θ), starting from `warm_start` if given.
    fn solve(
        &mut self,
        theta: &[f64],
        warm_start: Option<&[f64]>,
    ) -> Result<InnerSolution, ImplicitError>;
}

impl<F> InnerSolver for F
where
    F: FnMut(&[f64], Option<&[f64]>) -> Result<InnerSolution, ImplicitError>,
{
    fn solve(
        &mut self,
        theta: &[f64],
        warm_start: Option<&[f64]>,
    ) -> Result<InnerSolution, ImplicitError> {
        self(theta, warm_start)
    }
}

/// A hypergradient and what it cost.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hypergradient {
    /// V(x*(θ), θ).
    pub val_loss: f64,
    /// dV/dθ.
    pub grad: Vec<f64>,
    /// The implicit backward solve (iterations, residuals, error estimate).
    pub report: IftReport,
    /// Iterations of the inner solve.
    pub inner_iterations: usize,
    /// The inner solution x*(θ) (a warm start for the next θ).
    pub x: Vec<f64>,
}

/// Value and gradients (with respect to x and θ) of the validation loss, one reverse pass
/// on a tape (the default of [`ValidationLoss::value_and_grad`]).
pub fn validation_value_and_grad<V: ValidationLoss + ?Sized>(
    val: &V,
    x: &[f64],
    theta: &[f64],
) -> Result<(f64, Vec<f64>, Vec<f64>), ImplicitError> {
    let tape = Tape::new();
    let xv = tape.vector_var(x);
    let tv = tape.vector_var(theta);
    let loss = val.loss(&xv, &tv);
    let value = loss.value_f64();
    check_finite("validation loss", &[value])?;
    let g = tape.gradient(loss)?;
    Ok((
        value,
        g.wrt_mat(&xv).as_slice().to_vec(),
        g.wrt_mat(&tv).as_slice().to_vec(),
    ))
}

/// dV(x*(θ), θ)/dθ: solve the inner problem with `solver` (from scratch), then
/// differentiate implicitly at its solution.
///
/// # Errors
/// Non-finite θ; the solver's error; [`NotAtSolution`](ImplicitError::NotAtSolution) if
/// ‖∇ₓL(x*, θ)‖ exceeds `options.residual_tol`; a failed backward solve.
///
/// ```
/// use ad_core::MatOps;
/// use implicit::hyper::{hypergradient, InnerSolution, ValidationLoss};
/// use implicit::{IftOptions, ImplicitError, Objective};
/// // x*(θ) = argmin ½(x − 1)² + ½θx² = 1/(1+θ);  V = ½x²  =>  dV/dθ = −x*²/(1+θ)
/// struct Inner;
/// impl Objective for Inner {
///     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
///         let t = &t[0];
///         x.add_f64(-1.0).sq_norm() * 0.5 + t.get(0, 0) * x.sq_norm() * 0.5
///     }
/// }
/// struct Val;
/// impl ValidationLoss for Val {
///     fn loss<M: MatOps>(&self, x: &M, _t: &M) -> M::Scalar { x.sq_norm() * 0.5 }
/// }
/// let mut solver = |t: &[f64], _warm: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
///     Ok(InnerSolution::new(vec![1.0 / (1.0 + t[0])], 0))
/// };
/// let h = hypergradient(&Inner, &Val, &[0.5], &mut solver, &IftOptions::default())?;
/// let x = 1.0 / 1.5;
/// assert!((h.grad[0] + x * x / 1.5).abs() < 1e-12);
/// # Ok::<(), ImplicitError>(())
/// ```
pub fn hypergradient<O, V, S>(
    inner: &O,
    val: &V,
    theta: &[f64],
    solver: &mut S,
    options: &IftOptions,
) -> Result<Hypergradient, ImplicitError>
where
    O: Objective,
    V: ValidationLoss,
    S: InnerSolver + ?Sized,
{
    hypergradient_warm(inner, val, theta, solver, None, options)
}

/// [`hypergradient`] with the inner solve started from `warm_start`.
pub fn hypergradient_warm<O, V, S>(
    inner: &O,
    val: &V,
    theta: &[f64],
    solver: &mut S,
    warm_start: Option<&[f64]>,
    options: &IftOptions,
) -> Result<Hypergradient, ImplicitError>
where
    O: Objective,
    V: ValidationLoss,
    S: InnerSolver + ?Sized,
{
    options.validate()?;
    check_finite("hyperparameters theta", theta)?;
    let solution = solver.solve(theta, warm_start)?;
    hypergradient_at(inner, val, theta, solution, options)
}

/// The hypergradient at an inner solution computed elsewhere.
pub fn hypergradient_at<O: Objective, V: ValidationLoss>(
    inner: &O,
    val: &V,
    theta: &[f64],
    solution: InnerSolution,
    options: &IftOptions,
) -> Result<Hypergradient, ImplicitError> {
    options.validate()?;
    check_finite("hyperparameters theta", theta)?;
    check_finite("inner solution x", &solution.x)?;
    let x = nalgebra::DMatrix::from_column_slice(solution.x.len(), 1, &solution.x);
    let t = nalgebra::DMatrix::from_column_slice(theta.len(), 1, theta);
    let lin = ArgminHessian::new(inner, &x, &[t])?;
    hypergradient_linearized(lin, val, theta, solution, options)
}

/// The hypergradient at an inner solution, with the optimality condition linearized by
/// the caller: any [`Linearization`] of ∇ₓL at (x*, θ) — for example one with
/// hand-written products (the W1/W2 problems of the dev-only `workloads` crate have such
/// linearizations).
pub fn hypergradient_linearized<L: Linearization, V: ValidationLoss>(
    lin: L,
    val: &V,
    theta: &[f64],
    solution: InnerSolution,
    options: &IftOptions,
) -> Result<Hypergradient, ImplicitError> {
    check_finite("hyperparameters theta", theta)?;
    let InnerSolution {
        x,
        iterations,
        factor,
    } = solution;
    let (val_loss, gx, gtheta) = val.value_and_grad(&x, theta)?;
    check_finite("validation loss", &[val_loss])?;
    let mut imp = Implicit::from_linearization(lin, options.clone())?;
    if let Some(f) = factor {
        imp = imp.with_factor(f);
    }
    let (theta_bar, report) = imp.vjp_flat(&gx)?;
    let grad = theta_bar.iter().zip(&gtheta).map(|(a, b)| a + b).collect();
    Ok(Hypergradient {
        val_loss,
        grad,
        report,
        inner_iterations: iterations,
        x,
    })
}
