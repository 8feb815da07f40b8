//! argmin's L-BFGS.

use argmin::solver::linesearch::{HagerZhangLineSearch, MoreThuenteLineSearch};
use argmin::solver::quasinewton::LBFGS;
use nalgebra::DVector;

use super::error::{ArgminError, ArgminSolution};
use super::functions::{Differentiable, ObjectiveAt};
use super::options::{LbfgsOptions, LineSearch};
use super::run::{RunSpec, argmin_setup, at_least_one, check_grad_tol, run};
use crate::problem::Objective;

/// Minimize any [`Differentiable`](crate::solvers::argmin_rs::Differentiable) from `x0` with argmin's L-BFGS until
/// `‖∇f‖₂ <= options.grad_tol`; otherwise an [`ArgminError`](crate::solvers::argmin_rs::ArgminError).
pub fn run_lbfgs<D: Differentiable>(
    f: D,
    x0: &[f64],
    options: &LbfgsOptions,
) -> Result<ArgminSolution, ArgminError> {
    check_grad_tol(options.grad_tol)?;
    at_least_one("memory", options.memory)?;
    let spec = RunSpec {
        name: "L-BFGS",
        grad_tol: options.grad_tol,
        max_iters: options.max_iters,
        hvp_budget: None,
        scale: 1.0,
        check_curvature: true,
    };
    // argmin's cost-change test is switched off (tolerance 0); the gradient test is ours.
    macro_rules! lbfgs {
        ($line:expr) => {{
            let solver: LBFGS<_, DVector<f64>, DVector<f64>, f64> =
                LBFGS::new($line, options.memory)
                    .with_tolerance_grad(options.grad_tol)
                    .and_then(|s| s.with_tolerance_cost(0.0))
                    .map_err(|e| argmin_setup(spec.name, e))?;
            run::<D, _, ()>(f, x0, solver, spec)
        }};
    }
    match options.line_search {
        LineSearch::MoreThuente => lbfgs!(MoreThuenteLineSearch::new()),
        LineSearch::HagerZhang => lbfgs!(HagerZhangLineSearch::new()),
    }
}

/// x*(θ) = argmin_x L(x, θ) with argmin's L-BFGS, from `x0`, to `‖∇ₓL‖₂ <= grad_tol`.
///
/// A run that stops short is an
/// [`ArgminError::NotConverged`](crate::solvers::argmin_rs::ArgminError::NotConverged) (gradient norm reached, iterations, argmin's reason).
pub fn minimize_lbfgs<O: Objective>(
    objective: &O,
    theta: &[f64],
    x0: &[f64],
    options: &LbfgsOptions,
) -> Result<ArgminSolution, ArgminError> {
    run_lbfgs(ObjectiveAt::new(objective, theta)?, x0, options)
}
