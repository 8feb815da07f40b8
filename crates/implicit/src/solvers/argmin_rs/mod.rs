//! argmin integration: any ad-core function as an [argmin](https://argmin-rs.org) problem,
//! solved with argmin's L-BFGS or Newton-CG, and the solution then differentiated
//! implicitly.
//!
//! - [`ArgminProblem`] implements argmin's [`CostFunction`](argmin::core::CostFunction), [`Gradient`](argmin::core::Gradient) (exact, reverse
//!   mode) and [`Hessian`](argmin::core::Hessian). The Hessian is never formed: it is an [`HvpOperator`] holding the
//!   point and the function, whose products `H·p` (argmin-math's [`ArgminDot`](argmin_math::ArgminDot), all that
//!   argmin's `NewtonCG` needs of a Hessian) are exact Hessian-vector products from ad-core
//!   (reverse over forward).
//! - The function is any [`Differentiable`]: an [`Objective`] L(x, θ) at fixed θ
//!   ([`ObjectiveAt`]), an [`ad_core::ScalarFn`] ([`ScalarFnAdapter`]) or an
//!   [`ad_core::MatFn`] over several matrices flattened into one vector ([`MatFnAdapter`]).
//! - [`minimize_lbfgs`] and [`minimize_newton_cg`] run argmin's `Executor` until
//!   `‖∇ₓL‖₂ <= grad_tol`. Stopping short of it (iteration limit, a line search that no
//!   longer makes progress, a breakdown of argmin's iteration) is an
//!   [`ArgminError::NotConverged`] with the gradient norm reached, the iterations, argmin's
//!   termination reason and the last iterate — never a silent result. A failing or
//!   non-finite evaluation of the function is an [`ArgminError::Function`] naming the
//!   evaluation.
//! - [`forward_solver`](crate::solvers::forward_solver) turns either into the forward solver of
//!   [`implicit_node`](crate::implicit_node), so x*(θ) enters a tape and is differentiated
//!   by the implicit function theorem.
//!
//! ```
//! use ad_core::MatOps;
//! use implicit::solvers::argmin_rs::{minimize_lbfgs, minimize_newton_cg, LbfgsOptions, NewtonCgOptions};
//! use implicit::{IftOptions, Implicit, Objective};
//! // L(x, θ) = ½‖x − c‖² + ½ θ₀ ‖x‖² + Σ softplus(x);  x*(θ) has no closed form.
//! struct Shrink;
//! impl Objective for Shrink {
//!     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
//!         let t = &t[0];
//!         let c = x.constant_like(nalgebra::DMatrix::from_column_slice(3, 1, &[1.0, -2.0, 0.5]));
//!         x.sub(&c).sq_norm() * 0.5 + t.get(0, 0) * x.sq_norm() * 0.5 + x.softplus().sum()
//!     }
//! }
//! let theta = [0.3];
//! let opts = LbfgsOptions::default().grad_tol(1e-10);
//! let sol = minimize_lbfgs(&Shrink, &theta, &[0.0; 3], &opts)?;
//! assert!(sol.grad_norm <= 1e-10);
//! let ncg_opts = NewtonCgOptions::default().grad_tol(1e-10);
//! let ncg = minimize_newton_cg(&Shrink, &theta, &[0.0; 3], &ncg_opts)?;
//! assert!(sol.x.iter().zip(&ncg.x).all(|(a, b)| (a - b).abs() < 1e-9));
//!
//! // d/dθ ½‖x*(θ)‖², implicitly at argmin's solution: −x*ᵀ H⁻¹ x* < 0.
//! let imp = Implicit::argmin_vec(&Shrink, &sol.x, &theta, IftOptions::default())?;
//! let (dtheta, _) = imp.vjp_flat(&sol.x)?;
//! let half_sq = |t: f64| -> Result<f64, implicit::ImplicitError> {
//!     let x = minimize_newton_cg(&Shrink, &[t], &[0.0; 3], &ncg_opts)?.x;
//!     Ok(x.iter().map(|v| v * v).sum::<f64>() * 0.5)
//! };
//! let fd = (half_sq(0.3 + 1e-3)? - half_sq(0.3 - 1e-3)?) / 2e-3;
//! assert!(dtheta[0] < 0.0 && (dtheta[0] - fd).abs() < 1e-5);
//!
//! // Too small a budget is an error with the numbers, not a result.
//! let err = minimize_lbfgs(&Shrink, &theta, &[0.0; 3], &opts.clone().max_iters(1)).unwrap_err();
//! assert!(err.to_string().contains("gradient tolerance"));
//! # Ok::<(), implicit::ImplicitError>(())
//! ```
//!
//! # Choosing `grad_tol`
//!
//! Both line searches compare costs, and a cost f is only known to about `ε|f|`
//! (ε = 2.2e-16); once the decrease a step can bring (about ‖∇f‖²/λ_max) falls below that,
//! the line search stops making progress. Measured on 40 seeded logistic regressions
//! (5 features, f ≈ 0.6; cold and warm starts): L-BFGS reached 1e-8 in all 440 runs, 1e-9
//! in 437, 1e-10 in 320; Newton-CG reached 1e-10 in all 40 and 1e-11 in 39, in at most 5
//! iterations. The default 1e-8 is well inside what
//! [`IftOptions::residual_tol`](crate::IftOptions) (1e-6) needs, and a run that cannot
//! reach the tolerance says so with the gradient norm it did reach.
//!
//! # argmin 0.11 behaviours this module works around
//!
//! - L-BFGS turns any error inside its line search — including a failing or non-finite
//!   function evaluation — into a *successful* return with termination
//!   `SolverExit("Line search terminated with: ...")`, and leaves no parameter vector in
//!   the final state. The adapter records the first failure itself and reports it, and the
//!   runners track the last accepted iterate.
//! - L-BFGS stops, reporting "Solver converged", when the cost changes by less than
//!   `f64::EPSILON`, whatever the gradient; Newton-CG's only stopping test is such a
//!   cost-change test (its tolerance must be positive). Near the solution the cost stops
//!   resolving the decrease while the gradient still falls (Newton-CG stopped at
//!   ‖∇f‖ = 1.4e-8). The runners never consult argmin's stopping tests: they stop on the
//!   gradient norm, the iteration limit, or a step that makes no progress.
//! - When a line search returns the previous point, or a step too small for the gradient
//!   to resolve (`sᵀy <= 0`), argmin's L-BFGS stores that correction pair anyway and
//!   computes a NaN direction next. The runners stop before that, with the reason.
//! - More-Thuente reports its abnormal exits (step at its bounds, interval of uncertainty
//!   too small) as "converged", with whatever point it has, even an uphill one: with an
//!   inconsistent gradient, Newton-CG climbed for 1000 iterations and 34,000 evaluations.
//!   The runners stop at the first step that raises the cost.
//! - Newton-CG's inner CG loop has no iteration limit and ends only on a residual test or
//!   non-positive curvature, so a NaN product would loop forever: [`HvpOperator`] never
//!   returns NaN (a failed or non-finite product is recorded and returned as zero, which
//!   ends the inner loop) and caps the products per Newton step
//!   ([`NewtonCgOptions::max_cg_iters`]).
//! - Newton-CG applies the Hessian twice to every CG direction (once in CG, once for the
//!   curvature test); [`HvpOperator`] caches its last product, so each costs one.
//! - Newton-CG's inner CG stops when the *squared* residual norm is below
//!   `min(½, √‖g‖)·‖g‖`, a test that depends on the scale of f and is met after one CG step
//!   once ‖g‖ < 1: Newton-CG then is steepest descent (35 iterations, one product each, to
//!   6.5e-8 on the logistic regression above; on Rosenbrock 15,900 iterations to 1e-8). The
//!   runner presents `2^40 · f` to argmin ([`NewtonCgOptions::cost_scale`]), which restores
//!   Newton steps: 2 iterations on the same problem, 23 on Rosenbrock.
//! - Executors install a Ctrl-C handler when argmin's `ctrlc` feature is on; the runners
//!   switch it off (a library must not take over signals).

mod error;
mod functions;
mod hvp;
mod lbfgs;
mod monitor;
mod newton_cg;
mod options;
mod problem;
mod run;

pub use error::{ArgminError, ArgminSolution, EvalCounts, Evaluation, Termination};
pub use functions::{Differentiable, MatFnAdapter, ObjectiveAt, ScalarFnAdapter};
pub use hvp::HvpOperator;
pub use lbfgs::{minimize_lbfgs, run_lbfgs};
pub use monitor::Monitor;
pub use newton_cg::{minimize_newton_cg, run_newton_cg};
pub use options::{ArgminMethod, DEFAULT_COST_SCALE, LbfgsOptions, LineSearch, NewtonCgOptions};
pub use problem::ArgminProblem;

use crate::problem::Objective;

/// [`minimize_lbfgs`] or [`minimize_newton_cg`], as `method` says.
pub fn minimize<O: Objective>(
    objective: &O,
    theta: &[f64],
    x0: &[f64],
    method: &ArgminMethod,
) -> Result<ArgminSolution, ArgminError> {
    match method {
        ArgminMethod::Lbfgs(o) => minimize_lbfgs(objective, theta, x0, o),
        ArgminMethod::NewtonCg(o) => minimize_newton_cg(objective, theta, x0, o),
    }
}
