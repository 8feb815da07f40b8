//! argmin's Newton-CG with exact Hessian-vector products.

use argmin::solver::linesearch::{HagerZhangLineSearch, MoreThuenteLineSearch};
use argmin::solver::newton::NewtonCG;
use nalgebra::DVector;

use super::error::{ArgminError, ArgminSolution};
use super::functions::{Differentiable, ObjectiveAt};
use super::hvp::HvpOperator;
use super::options::{LineSearch, NewtonCgOptions};
use super::run::{RunSpec, argmin_setup, at_least_one, check_grad_tol, run};
use crate::problem::Objective;

/// Minimize any [`Differentiable`](crate::solvers::argmin_rs::Differentiable) from `x0` with argmin's Newton-CG (exact
/// Hessian-vector products) until `‖∇f‖₂ <= options.grad_tol`; otherwise an
/// [`ArgminError`](crate::solvers::argmin_rs::ArgminError).
pub fn run_newton_cg<D: Differentiable>(
    f: D,
    x0: &[f64],
    options: &NewtonCgOptions,
) -> Result<ArgminSolution, ArgminError> {
    check_grad_tol(options.grad_tol)?;
    at_least_one("max_cg_iters", options.max_cg_iters)?;
    if !(options.cost_scale.is_finite() && options.cost_scale > 0.0) {
        return Err(ArgminError::InvalidOption {
            name: "cost_scale",
            value: options.cost_scale,
            reason: "the cost scale must be positive and finite",
        });
    }
    let spec = RunSpec {
        name: "Newton-CG",
        grad_tol: options.grad_tol,
        max_iters: options.max_iters,
        hvp_budget: Some(options.max_cg_iters),
        scale: options.cost_scale,
        check_curvature: false,
    };
    // Newton-CG's cost-change test is not consulted (see `Monitored`); it must be positive.
    macro_rules! newton_cg {
        ($line:expr) => {{
            let solver = NewtonCG::new($line)
                .with_tolerance(f64::MIN_POSITIVE)
                .map_err(|e| argmin_setup(spec.name, e))?;
            run::<D, _, HvpOperator<D>>(f, x0, solver, spec)
        }};
    }
    match options.line_search {
        LineSearch::MoreThuente => {
            newton_cg!(MoreThuenteLineSearch::<DVector<f64>, DVector<f64>, f64>::new())
        }
        LineSearch::HagerZhang => {
            newton_cg!(HagerZhangLineSearch::<DVector<f64>, DVector<f64>, f64>::new())
        }
    }
}
/// x*(θ) = argmin_x L(x, θ) with argmin's Newton-CG, from `x0`, to `‖∇ₓL‖₂ <= grad_tol`.
///
/// A run that stops short is an
/// [`ArgminError::NotConverged`](crate::solvers::argmin_rs::ArgminError::NotConverged) (gradient norm reached, iterations, argmin's reason).
pub fn minimize_newton_cg<O: Objective>(
    objective: &O,
    theta: &[f64],
    x0: &[f64],
    options: &NewtonCgOptions,
) -> Result<ArgminSolution, ArgminError> {
    run_newton_cg(ObjectiveAt::new(objective, theta)?, x0, options)
}
