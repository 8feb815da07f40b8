//! argmin integration: any ad-core function as an [argmin](https://argmin-rs.org) problem,
//! solved with argmin's L-BFGS or Newton-CG, and the solution then differentiated
//! implicitly.
//!
//! - [`ArgminProblem`] implements argmin's [`CostFunction`], [`Gradient`] (exact, reverse
//!   mode) and [`Hessian`]. The Hessian is never formed: it is an [`HvpOperator`] holding the
//!   point and the function, whose products `H·p` (argmin-math's [`ArgminDot`], all that
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
//! - [`forward_solver`] turns either into the forward solver of
//!   [`implicit_node`](crate::implicit_node), so x*(θ) enters a tape and is differentiated
//!   by the implicit function theorem.
//!
//! ```
//! use ad_core::MatOps;
//! use implicit::argmin_adapter::{minimize_lbfgs, minimize_newton_cg, LbfgsOptions, NewtonCgOptions};
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

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ad_core::{AdError, MatFn, MatOps, ScalarFn, check_finite};
use argmin::core::{
    CostFunction, Error as ArgminCoreError, Executor, Gradient, Hessian, IterState, KV,
    OptimizationResult, Problem, Solver, State, TerminationReason, TerminationStatus,
};
use argmin::solver::linesearch::{HagerZhangLineSearch, MoreThuenteLineSearch};
use argmin::solver::newton::NewtonCG;
use argmin::solver::quasinewton::LBFGS;
use argmin_math::ArgminDot;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use crate::error::ImplicitError;
use crate::linear::kernels::norm;
use crate::linear::{LinearOperator, OperatorError, Structure};
use crate::problem::Objective;

// ---------------------------------------------------------------------------------------
// Functions
// ---------------------------------------------------------------------------------------

/// A twice-differentiable scalar function of a flat vector: plain value, value and exact
/// gradient, and exact Hessian-vector products. This is what [`ArgminProblem`] adapts.
///
/// Implemented by [`ObjectiveAt`], [`ScalarFnAdapter`] and [`MatFnAdapter`]; implement it
/// directly for anything else. Implementations return [`AdError`] for failures (a
/// non-finite point, a failing custom op); the adapter itself rejects non-finite outputs.
pub trait Differentiable {
    /// f(x).
    fn value(&self, x: &[f64]) -> Result<f64, AdError>;
    /// f(x) and ∇f(x).
    fn value_and_grad(&self, x: &[f64]) -> Result<(f64, Vec<f64>), AdError>;
    /// ∇²f(x) v.
    fn hvp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>, AdError>;
}

fn column(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), AdError> {
    if expected == got {
        Ok(())
    } else {
        Err(AdError::Length {
            what,
            expected,
            got,
        })
    }
}

/// An [`Objective`] L(x, θ) at a fixed θ, as a function of x alone: the inner problem of
/// an argmin formulation. θ enters every evaluation as a constant (no tape variables).
#[derive(Debug)]
pub struct ObjectiveAt<'a, O> {
    objective: &'a O,
    theta: DMatrix<f64>,
}

impl<'a, O: Objective> ObjectiveAt<'a, O> {
    /// L(·, θ). A non-finite θ is an [`ImplicitError::NonFinite`].
    pub fn new(objective: &'a O, theta: &[f64]) -> Result<Self, ImplicitError> {
        crate::error::check_finite("parameters theta", theta)?;
        Ok(ObjectiveAt {
            objective,
            theta: column(theta),
        })
    }

    /// The fixed θ.
    pub fn theta(&self) -> &[f64] {
        self.theta.as_slice()
    }

    /// The objective.
    pub fn objective(&self) -> &'a O {
        self.objective
    }
}

/// L(·, θ) as an ad-core [`MatFn`] of the single block x.
struct Fixed<'b, O> {
    objective: &'b O,
    theta: &'b DMatrix<f64>,
}

impl<O: Objective> MatFn for Fixed<'_, O> {
    fn eval<M: MatOps>(&self, params: &[M]) -> M::Scalar {
        let theta = params[0].constant_like(self.theta.clone());
        self.objective.value(&params[0], &[theta])
    }
}

impl<O: Objective> Differentiable for ObjectiveAt<'_, O> {
    fn value(&self, x: &[f64]) -> Result<f64, AdError> {
        check_finite("point x", x)?;
        Ok(self
            .objective
            .value(&column(x), std::slice::from_ref(&self.theta)))
    }
    fn value_and_grad(&self, x: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
        let f = Fixed {
            objective: self.objective,
            theta: &self.theta,
        };
        let (value, g) = ad_core::value_and_grad_mat(&f, &[column(x)])?;
        Ok((value, g[0].as_slice().to_vec()))
    }
    fn hvp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>, AdError> {
        check_len("direction v", x.len(), v.len())?;
        let f = Fixed {
            objective: self.objective,
            theta: &self.theta,
        };
        let h = ad_core::hvp_mat(&f, &[column(x)], &[column(v)])?;
        Ok(h[0].as_slice().to_vec())
    }
}

/// An [`ad_core::ScalarFn`] (written once against [`ad_core::Real`]) as a
/// [`Differentiable`]: gradients by [`ad_core::value_and_grad`], products by
/// [`ad_core::hvp`].
#[derive(Clone, Debug)]
pub struct ScalarFnAdapter<F>(pub F);

impl<F: ScalarFn> Differentiable for ScalarFnAdapter<F> {
    fn value(&self, x: &[f64]) -> Result<f64, AdError> {
        check_finite("point x", x)?;
        Ok(self.0.eval(x))
    }
    fn value_and_grad(&self, x: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
        ad_core::value_and_grad(&self.0, x)
    }
    fn hvp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>, AdError> {
        ad_core::hvp(&self.0, x, v)
    }
}

/// An [`ad_core::MatFn`] of several matrices as a [`Differentiable`] of one flat vector:
/// the blocks, each in nalgebra's column-major order, one after the other.
///
/// ```
/// use ad_core::{MatFn, MatOps};
/// use implicit::argmin_adapter::{Differentiable, MatFnAdapter};
/// // f(W, b) = ‖W‖² + Σ b  with W 2x2 and b 2x1
/// struct F;
/// impl MatFn for F {
///     fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar { p[0].sq_norm() + p[1].sum() }
/// }
/// let f = MatFnAdapter::new(F, vec![(2, 2), (2, 1)]);
/// assert_eq!(f.len(), 6);
/// let (v, g) = f.value_and_grad(&[1.0, 2.0, 3.0, 4.0, 0.5, 0.5]).unwrap();
/// assert_eq!(v, 31.0);
/// assert_eq!(g, vec![2.0, 4.0, 6.0, 8.0, 1.0, 1.0]);
/// ```
#[derive(Clone, Debug)]
pub struct MatFnAdapter<F> {
    f: F,
    shapes: Vec<(usize, usize)>,
}

impl<F: MatFn> MatFnAdapter<F> {
    /// `f` of blocks with the given `(rows, cols)` shapes.
    pub fn new(f: F, shapes: Vec<(usize, usize)>) -> Self {
        MatFnAdapter { f, shapes }
    }

    /// Total length of the flat vector.
    pub fn len(&self) -> usize {
        self.shapes.iter().map(|(r, c)| r * c).sum()
    }

    /// True when there are no entries at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The block shapes.
    pub fn shapes(&self) -> &[(usize, usize)] {
        &self.shapes
    }

    /// Cut a flat vector into the blocks.
    pub fn unflatten(&self, x: &[f64]) -> Result<Vec<DMatrix<f64>>, AdError> {
        check_len("flat parameter vector", self.len(), x.len())?;
        let mut at = 0;
        Ok(self
            .shapes
            .iter()
            .map(|&(r, c)| {
                let m = DMatrix::from_column_slice(r, c, &x[at..at + r * c]);
                at += r * c;
                m
            })
            .collect())
    }

    /// Concatenate blocks into a flat vector.
    pub fn flatten(blocks: &[DMatrix<f64>]) -> Vec<f64> {
        blocks
            .iter()
            .flat_map(|b| b.as_slice().iter().copied())
            .collect()
    }
}

impl<F: MatFn> Differentiable for MatFnAdapter<F> {
    fn value(&self, x: &[f64]) -> Result<f64, AdError> {
        check_finite("point x", x)?;
        Ok(self.f.eval(&self.unflatten(x)?))
    }
    fn value_and_grad(&self, x: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
        let (value, g) = ad_core::value_and_grad_mat(&self.f, &self.unflatten(x)?)?;
        Ok((value, Self::flatten(&g)))
    }
    fn hvp(&self, x: &[f64], v: &[f64]) -> Result<Vec<f64>, AdError> {
        let h = ad_core::hvp_mat(&self.f, &self.unflatten(x)?, &self.unflatten(v)?)?;
        Ok(Self::flatten(&h))
    }
}

// ---------------------------------------------------------------------------------------
// Shared bookkeeping: failures and counts
// ---------------------------------------------------------------------------------------

/// Which evaluation of the function failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Evaluation {
    /// The objective value (argmin's `CostFunction`).
    Cost,
    /// The gradient (argmin's `Gradient`).
    Gradient,
    /// A Hessian-vector product of an [`HvpOperator`].
    HessianProduct,
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Evaluation::Cost => "objective value",
            Evaluation::Gradient => "gradient",
            Evaluation::HessianProduct => "Hessian-vector product",
        })
    }
}

/// How often argmin asked for each quantity, and how much work that took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalCounts {
    /// Calls of `CostFunction::cost`.
    pub cost: u64,
    /// Calls of `Gradient::gradient`.
    pub gradient: u64,
    /// Calls of `Hessian::hessian` (operators built; no work by itself).
    pub hessian: u64,
    /// Hessian-vector products computed (repeats of the last product are cached).
    pub hvp: u64,
    /// Function evaluations actually run by ad-core (a value, or a value and gradient in
    /// one reverse sweep); fewer than `cost + gradient` thanks to a one-point cache.
    pub passes: u64,
}

enum Failure {
    /// The function failed or returned a non-finite output.
    Function {
        during: Evaluation,
        iteration: u64,
        source: AdError,
    },
    /// argmin asked for an evaluation at a non-finite point: its iteration broke down.
    Iterate {
        during: Evaluation,
        iteration: u64,
        index: usize,
        value: f64,
    },
}

#[derive(Default)]
struct Shared {
    failure: Mutex<Option<Failure>>,
    iteration: AtomicU64,
    cost: AtomicU64,
    gradient: AtomicU64,
    hessian: AtomicU64,
    hvp: AtomicU64,
    passes: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Shared {
    /// Keep the first failure; return a message for argmin.
    fn record(&self, during: Evaluation, source: AdError) -> String {
        let iteration = self.iteration.load(Ordering::Relaxed);
        let msg = format!("{during} failed at iteration {iteration}: {source}");
        self.keep(Failure::Function {
            during,
            iteration,
            source,
        });
        msg
    }

    /// Reject a non-finite point asked for by argmin (recorded as a breakdown of argmin's
    /// iteration, not as a failure of the function).
    fn check_point(&self, during: Evaluation, x: &[f64]) -> Result<(), ArgminCoreError> {
        let Some(index) = x.iter().position(|v| !v.is_finite()) else {
            return Ok(());
        };
        let iteration = self.iteration.load(Ordering::Relaxed);
        let value = x[index];
        self.keep(Failure::Iterate {
            during,
            iteration,
            index,
            value,
        });
        Err(ArgminCoreError::msg(format!(
            "{during} asked at a non-finite point: entry {index} is {value}"
        )))
    }

    fn keep(&self, failure: Failure) {
        let mut slot = lock(&self.failure);
        if slot.is_none() {
            *slot = Some(failure);
        }
    }

    fn failed(&self) -> bool {
        lock(&self.failure).is_some()
    }

    fn take_failure(&self) -> Option<ArgminError> {
        lock(&self.failure).take().map(|f| match f {
            Failure::Function {
                during,
                iteration,
                source,
            } => ArgminError::Function {
                during,
                iteration,
                source,
            },
            Failure::Iterate {
                during,
                iteration,
                index,
                value,
            } => ArgminError::NonFiniteIterate {
                during,
                iteration,
                index,
                value,
            },
        })
    }

    fn counts(&self) -> EvalCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EvalCounts {
            cost: get(&self.cost),
            gradient: get(&self.gradient),
            hessian: get(&self.hessian),
            hvp: get(&self.hvp),
            passes: get(&self.passes),
        }
    }
}

/// A handle on an [`ArgminProblem`]'s failures and counts that stays valid after the
/// problem has moved into an argmin `Executor` (which may not give it back: argmin's
/// L-BFGS drops it when its line search fails).
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl Monitor {
    /// The first failed evaluation (a driver error or a non-finite output), if any; taking
    /// it clears it.
    pub fn take_failure(&self) -> Option<ArgminError> {
        self.shared.take_failure()
    }

    /// The counts so far.
    pub fn counts(&self) -> EvalCounts {
        self.shared.counts()
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("failed", &self.shared.failed())
            .field("counts", &self.counts())
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// The argmin problem and its Hessian operator
// ---------------------------------------------------------------------------------------

struct Cached {
    x: Vec<f64>,
    value: f64,
    grad: Option<Vec<f64>>,
}

/// A [`Differentiable`] as an argmin problem: [`CostFunction`], [`Gradient`] and
/// [`Hessian`] (a matrix-free [`HvpOperator`]) on `nalgebra::DVector<f64>`.
///
/// Every failure — an ad-core error, or a NaN/infinite value, gradient entry or product —
/// is returned to argmin as an error *and* recorded (the first one) for [`Monitor`],
/// because argmin does not always pass errors on (L-BFGS swallows line-search errors).
///
/// By default a cost evaluation also computes the gradient (one reverse sweep) and caches
/// both for that point: argmin's line searches always ask for the gradient at the point
/// whose cost they just asked for, so this saves a pass. Turn it off with
/// [`eager_gradient(false)`](ArgminProblem::eager_gradient) for derivative-free solvers.
///
/// ```
/// use argmin::core::{Executor, State};
/// use argmin::solver::linesearch::MoreThuenteLineSearch;
/// use argmin::solver::quasinewton::LBFGS;
/// use ad_core::{Real, ScalarFn};
/// use implicit::argmin_adapter::{ArgminProblem, ScalarFnAdapter};
/// use nalgebra::DVector;
/// struct Quartic;
/// impl ScalarFn for Quartic {
///     fn eval<S: Real>(&self, x: &[S]) -> S {
///         (x[0] - 1.0).square().square() + (x[1] + 2.0).square() + (x[0] * x[1]).square()
///     }
/// }
/// let problem = ArgminProblem::new(ScalarFnAdapter(Quartic));
/// let monitor = problem.monitor();
/// let solver = LBFGS::new(MoreThuenteLineSearch::new(), 5).with_tolerance_grad(1e-9).unwrap();
/// let res = Executor::new(problem, solver)
///     .configure(|s| s.param(DVector::from_vec(vec![0.0, 0.0])).max_iters(200))
///     .run()
///     .unwrap();
/// assert!(monitor.take_failure().is_none()); // check: argmin may have swallowed one
/// assert!(res.state.get_gradient().unwrap().norm() < 1e-9);
/// assert!(monitor.counts().passes <= monitor.counts().cost + monitor.counts().gradient);
/// ```
pub struct ArgminProblem<D> {
    f: Arc<D>,
    shared: Arc<Shared>,
    cache: Mutex<Option<Cached>>,
    eager_gradient: bool,
    hvp_budget: Option<usize>,
    scale: f64,
}

impl<D: Differentiable> ArgminProblem<D> {
    /// Adapt `f`.
    pub fn new(f: D) -> Self {
        ArgminProblem {
            f: Arc::new(f),
            shared: Arc::new(Shared::default()),
            cache: Mutex::new(None),
            eager_gradient: true,
            hvp_budget: None,
            scale: 1.0,
        }
    }

    /// Present `scale · f` to argmin (cost, gradient and Hessian products all scaled;
    /// default 1). See [`NewtonCgOptions::cost_scale`] for why. A power of two changes no
    /// rounding. Panics unless positive and finite (a programmer error).
    pub fn scale(mut self, scale: f64) -> Self {
        assert!(
            scale.is_finite() && scale > 0.0,
            "scale must be positive and finite, got {scale}"
        );
        self.scale = scale;
        self
    }

    /// Compute the gradient together with every cost evaluation (default `true`).
    pub fn eager_gradient(mut self, on: bool) -> Self {
        self.eager_gradient = on;
        self
    }

    /// Cap the Hessian-vector products each [`HvpOperator`] computes through
    /// [`ArgminDot`] (default: no cap). Products beyond the cap return zero, which
    /// argmin's Newton-CG reads as zero curvature: its inner CG stops and keeps its
    /// previous iterate (a truncated Newton step). Direct calls of
    /// [`HvpOperator::apply`] are not capped.
    pub fn hvp_budget(mut self, max_products: Option<usize>) -> Self {
        self.hvp_budget = max_products;
        self
    }

    /// The adapted function.
    pub fn function(&self) -> &D {
        &self.f
    }

    /// A handle on failures and counts that outlives a run.
    pub fn monitor(&self) -> Monitor {
        Monitor {
            shared: self.shared.clone(),
        }
    }

    fn fail(&self, during: Evaluation, e: AdError) -> ArgminCoreError {
        ArgminCoreError::msg(self.shared.record(during, e))
    }

    /// Evaluate at `x` (through the cache); with `need_grad`, make sure the gradient is there.
    fn evaluate(&self, x: &[f64], need_grad: bool) -> Result<(f64, Option<Vec<f64>>), AdError> {
        let mut cache = lock(&self.cache);
        if let Some(c) = cache.as_ref()
            && c.x == x
            && (c.grad.is_some() || !need_grad)
        {
            return Ok((c.value, c.grad.clone()));
        }
        bump(&self.shared.passes);
        let (value, grad) = if need_grad || self.eager_gradient {
            let (v, g) = self.f.value_and_grad(x)?;
            (v, Some(g))
        } else {
            (self.f.value(x)?, None)
        };
        check_finite("objective value", &[value])?;
        if let Some(g) = &grad {
            check_len("gradient", x.len(), g.len())?;
            check_finite("gradient", g)?;
        }
        *cache = Some(Cached {
            x: x.to_vec(),
            value,
            grad: grad.clone(),
        });
        Ok((value, grad))
    }
}

impl<D> fmt::Debug for ArgminProblem<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgminProblem")
            .field("eager_gradient", &self.eager_gradient)
            .field("hvp_budget", &self.hvp_budget)
            .field("scale", &self.scale)
            .field("counts", &self.shared.counts())
            .finish_non_exhaustive()
    }
}

impl<D: Differentiable> CostFunction for ArgminProblem<D> {
    type Param = DVector<f64>;
    type Output = f64;

    fn cost(&self, p: &DVector<f64>) -> Result<f64, ArgminCoreError> {
        bump(&self.shared.cost);
        self.shared.check_point(Evaluation::Cost, p.as_slice())?;
        self.evaluate(p.as_slice(), false)
            .and_then(|(v, _)| {
                let scaled = v * self.scale;
                check_finite("objective value (scaled for argmin)", &[scaled])?;
                Ok(scaled)
            })
            .map_err(|e| self.fail(Evaluation::Cost, e))
    }
}

impl<D: Differentiable> Gradient for ArgminProblem<D> {
    type Param = DVector<f64>;
    type Gradient = DVector<f64>;

    fn gradient(&self, p: &DVector<f64>) -> Result<DVector<f64>, ArgminCoreError> {
        bump(&self.shared.gradient);
        self.shared
            .check_point(Evaluation::Gradient, p.as_slice())?;
        let scaled = self.evaluate(p.as_slice(), true).and_then(|(_, g)| {
            let g = DVector::from_vec(g.expect("evaluate(need_grad = true) returns a gradient"))
                * self.scale;
            check_finite("gradient (scaled for argmin)", g.as_slice())?;
            Ok(g)
        });
        scaled.map_err(|e| self.fail(Evaluation::Gradient, e))
    }
}

impl<D: Differentiable> Hessian for ArgminProblem<D> {
    type Param = DVector<f64>;
    type Hessian = HvpOperator<D>;

    fn hessian(&self, p: &DVector<f64>) -> Result<HvpOperator<D>, ArgminCoreError> {
        bump(&self.shared.hessian);
        self.shared
            .check_point(Evaluation::HessianProduct, p.as_slice())?;
        Ok(HvpOperator {
            f: self.f.clone(),
            x: p.as_slice().to_vec(),
            shared: self.shared.clone(),
            budget: self.hvp_budget,
            scale: self.scale,
            used: AtomicUsize::new(0),
            last: Mutex::new(None),
        })
    }
}

/// The Hessian ∇²f(x) at one point, matrix-free: products `H·v` are exact Hessian-vector
/// products from ad-core (reverse over forward), never finite differences.
///
/// argmin's `NewtonCG` needs of its Hessian type only `Clone` and
/// [`ArgminDot<DVector<f64>, DVector<f64>>`](ArgminDot) (`H.dot(&p)`), whose signature is
/// infallible. So `dot` never returns NaN: a failed or non-finite product is recorded
/// (see [`Monitor`]; the runners turn it into [`ArgminError::Function`]) and returned as
/// the zero vector, which makes Newton-CG's inner loop stop. The fallible
/// [`apply`](HvpOperator::apply) and the [`LinearOperator`] implementation return errors
/// instead, so the same operator also serves this crate's linear solvers.
///
/// `dot` applies the Hessian of what argmin sees, `scale · f` (see
/// [`ArgminProblem::scale`]); `apply` and [`LinearOperator`] apply the Hessian of f itself.
///
/// ```
/// use ad_core::{hessian, Real, ScalarFn};
/// use argmin::core::Hessian;
/// use argmin_math::ArgminDot;
/// use implicit::argmin_adapter::{ArgminProblem, ScalarFnAdapter};
/// use nalgebra::DVector;
/// struct F;
/// impl ScalarFn for F {
///     fn eval<S: Real>(&self, x: &[S]) -> S { (x[0] * x[1]).sin() + x[1].exp() * x[0] }
/// }
/// let x = DVector::from_vec(vec![0.5, -0.3]);
/// let h = ArgminProblem::new(ScalarFnAdapter(F)).hessian(&x).unwrap();
/// let dense = hessian(&F, x.as_slice()).unwrap();
/// let p = DVector::from_vec(vec![1.0, 2.0]);
/// assert!((h.dot(&p) - &dense * &p).norm() < 1e-14);
/// ```
pub struct HvpOperator<D> {
    f: Arc<D>,
    x: Vec<f64>,
    shared: Arc<Shared>,
    budget: Option<usize>,
    scale: f64,
    used: AtomicUsize,
    last: Mutex<Option<(DVector<f64>, DVector<f64>)>>,
}

impl<D: Differentiable> HvpOperator<D> {
    /// The Hessian of `f` at `x`, outside any [`ArgminProblem`] (no product cap).
    pub fn new(f: Arc<D>, x: &[f64]) -> Self {
        HvpOperator {
            f,
            x: x.to_vec(),
            shared: Arc::new(Shared::default()),
            budget: None,
            scale: 1.0,
            used: AtomicUsize::new(0),
            last: Mutex::new(None),
        }
    }

    /// The point the Hessian is taken at.
    pub fn point(&self) -> &[f64] {
        &self.x
    }

    /// Products computed by this operator through [`ArgminDot`] (cache hits excluded).
    pub fn products(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// `∇²f(x) v`, exact; a non-finite result is an [`AdError::NonFinite`].
    pub fn apply(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        check_len("direction v", self.x.len(), v.len())?;
        bump(&self.shared.hvp);
        let hv = self.f.hvp(&self.x, v)?;
        check_len("Hessian-vector product", self.x.len(), hv.len())?;
        check_finite("Hessian-vector product", &hv)?;
        Ok(hv)
    }
}

impl<D> Clone for HvpOperator<D> {
    fn clone(&self) -> Self {
        HvpOperator {
            f: self.f.clone(),
            x: self.x.clone(),
            shared: self.shared.clone(),
            budget: self.budget,
            scale: self.scale,
            used: AtomicUsize::new(self.used.load(Ordering::Relaxed)),
            last: Mutex::new(lock(&self.last).clone()),
        }
    }
}

impl<D> fmt::Debug for HvpOperator<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HvpOperator")
            .field("x", &self.x)
            .field("budget", &self.budget)
            .field("scale", &self.scale)
            .field("products", &self.used.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<D: Differentiable> ArgminDot<DVector<f64>, DVector<f64>> for HvpOperator<D> {
    /// `H·v`; see the type's docs for what happens on failure or past the budget.
    fn dot(&self, v: &DVector<f64>) -> DVector<f64> {
        let zero = || DVector::zeros(v.len());
        if v.iter().all(|&a| a == 0.0) {
            return zero();
        }
        let mut last = lock(&self.last);
        if let Some((lv, hv)) = last.as_ref()
            && lv == v
        {
            return hv.clone();
        }
        if self.shared.failed() || self.budget.is_some_and(|b| self.products() >= b) {
            return zero();
        }
        self.used.fetch_add(1, Ordering::Relaxed);
        match self.apply(v.as_slice()) {
            Ok(hv) => {
                let hv = DVector::from_vec(hv) * self.scale;
                if let Err(e) =
                    check_finite("Hessian-vector product (scaled for argmin)", hv.as_slice())
                {
                    self.shared.record(Evaluation::HessianProduct, e);
                    return zero();
                }
                *last = Some((v.clone(), hv.clone()));
                hv
            }
            Err(e) => {
                self.shared.record(Evaluation::HessianProduct, e);
                zero()
            }
        }
    }
}

impl<D: Differentiable> LinearOperator for HvpOperator<D> {
    fn nrows(&self) -> usize {
        self.x.len()
    }
    fn ncols(&self) -> usize {
        self.x.len()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let hv = HvpOperator::apply(self, x)?;
        y.copy_from_slice(&hv);
        Ok(())
    }
    fn structure(&self) -> Structure {
        Structure::SYMMETRIC
    }
}

// ---------------------------------------------------------------------------------------
// Options, results, errors
// ---------------------------------------------------------------------------------------

/// Which of argmin's line searches a runner uses.
///
/// More-Thuente is the default: on 40 seeded logistic regressions L-BFGS with it reached
/// `grad_tol = 1e-8` in all 440 runs, with Hager-Zhang in 438; at 1e-12 Hager-Zhang did
/// better (346 of 440 against 176), so it is the choice for very tight tolerances.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LineSearch {
    /// More-Thuente (strong Wolfe conditions).
    #[default]
    MoreThuente,
    /// Hager-Zhang (approximate Wolfe conditions).
    HagerZhang,
}

/// Options of [`minimize_lbfgs`]: argmin's L-BFGS with a More-Thuente line search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LbfgsOptions {
    /// Stop when `‖∇f(x)‖₂ <= grad_tol` (default `1e-8`; must be positive and finite).
    pub grad_tol: f64,
    /// Iteration limit (default 1000).
    pub max_iters: u64,
    /// Number of correction pairs kept (default 7; at least 1).
    pub memory: usize,
    /// Line search (default More-Thuente).
    pub line_search: LineSearch,
}

impl Default for LbfgsOptions {
    fn default() -> Self {
        LbfgsOptions {
            grad_tol: 1e-8,
            max_iters: 1000,
            memory: 7,
            line_search: LineSearch::MoreThuente,
        }
    }
}

impl LbfgsOptions {
    /// Set the gradient tolerance.
    pub fn grad_tol(mut self, tol: f64) -> Self {
        self.grad_tol = tol;
        self
    }
    /// Set the iteration limit.
    pub fn max_iters(mut self, n: u64) -> Self {
        self.max_iters = n;
        self
    }
    /// Set the memory.
    pub fn memory(mut self, m: usize) -> Self {
        self.memory = m;
        self
    }
    /// Set the line search.
    pub fn line_search(mut self, l: LineSearch) -> Self {
        self.line_search = l;
        self
    }
}

/// 2^40, the default [`NewtonCgOptions::cost_scale`].
pub const DEFAULT_COST_SCALE: f64 = 1_099_511_627_776.0;

/// Options of [`minimize_newton_cg`]: argmin's Newton-CG with a More-Thuente line search
/// and exact Hessian-vector products.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewtonCgOptions {
    /// Stop when `‖∇f(x)‖₂ <= grad_tol` (default `1e-8`; must be positive and finite).
    pub grad_tol: f64,
    /// Newton iteration limit (default 1000; see the module docs on why argmin's
    /// Newton-CG may need many).
    pub max_iters: u64,
    /// Hessian-vector products per Newton step, i.e. inner CG iterations (default 250; at
    /// least 1). argmin's inner loop has no limit of its own.
    pub max_cg_iters: usize,
    /// Factor applied to f, its gradient and its Hessian before argmin sees them (default
    /// [`DEFAULT_COST_SCALE`] = 2^40; positive and finite).
    ///
    /// argmin 0.11's Newton-CG stops its inner CG when `‖r‖² <= min(½, √‖g‖)·‖g‖` — a
    /// squared residual against a gradient norm, so the test depends on the scale of f. At
    /// scale 1 it is met after one CG step whenever ‖g‖ < 1, and Newton-CG degrades to
    /// steepest descent. At scale s it reads `‖r‖ <= √(‖g‖ / 2s)` in f's units, a relative
    /// residual of about 7e-7 / √‖g‖ for s = 2^40: nearly exact Newton steps (truncated by
    /// `max_cg_iters`). The Newton direction and the line search (scale-invariant) are
    /// unchanged, and a power of two changes no rounding. Set 1.0 for argmin's own
    /// behaviour; the gradient tolerance always applies to the unscaled f.
    pub cost_scale: f64,
    /// Line search (default More-Thuente).
    pub line_search: LineSearch,
}

impl Default for NewtonCgOptions {
    fn default() -> Self {
        NewtonCgOptions {
            grad_tol: 1e-8,
            max_iters: 1000,
            max_cg_iters: 250,
            cost_scale: DEFAULT_COST_SCALE,
            line_search: LineSearch::MoreThuente,
        }
    }
}

impl NewtonCgOptions {
    /// Set the gradient tolerance.
    pub fn grad_tol(mut self, tol: f64) -> Self {
        self.grad_tol = tol;
        self
    }
    /// Set the Newton iteration limit.
    pub fn max_iters(mut self, n: u64) -> Self {
        self.max_iters = n;
        self
    }
    /// Set the inner CG iteration limit.
    pub fn max_cg_iters(mut self, n: usize) -> Self {
        self.max_cg_iters = n;
        self
    }
    /// Set the cost scale.
    pub fn cost_scale(mut self, s: f64) -> Self {
        self.cost_scale = s;
        self
    }
    /// Set the line search.
    pub fn line_search(mut self, l: LineSearch) -> Self {
        self.line_search = l;
        self
    }
}

/// An argmin method with its options, for [`minimize`] and [`forward_solver`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ArgminMethod {
    /// L-BFGS.
    Lbfgs(LbfgsOptions),
    /// Newton-CG.
    NewtonCg(NewtonCgOptions),
}

impl Default for ArgminMethod {
    fn default() -> Self {
        ArgminMethod::Lbfgs(LbfgsOptions::default())
    }
}

/// Why an argmin run stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Termination {
    /// `‖∇f‖₂ <= grad_tol`: the only successful outcome.
    GradientTolerance,
    /// argmin's iteration limit.
    MaxIters,
    /// The solver gave up, with argmin's message (for L-BFGS: its line search failed).
    SolverExit(String),
    /// Anything else argmin reported (timeout, interrupt, target cost), as its text.
    Other(String),
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Termination::GradientTolerance => f.write_str("gradient tolerance reached"),
            Termination::MaxIters => f.write_str("maximum number of iterations reached"),
            Termination::SolverExit(m) => write!(f, "solver exit: {m}"),
            Termination::Other(m) => f.write_str(m),
        }
    }
}

/// A minimizer found by argmin, with the numbers that certify it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArgminSolution {
    /// The minimizer.
    pub x: Vec<f64>,
    /// f(x).
    pub cost: f64,
    /// ‖∇f(x)‖₂ (at most the tolerance asked for).
    pub grad_norm: f64,
    /// Iterations argmin ran.
    pub iterations: u64,
    /// Always [`Termination::GradientTolerance`] for a returned solution.
    pub termination: Termination,
    /// Evaluations.
    pub counts: EvalCounts,
}

/// What can go wrong in an argmin run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgminError {
    /// argmin stopped before `‖∇f‖₂ <= grad_tol`. The last accepted iterate is kept.
    #[error(
        "argmin {solver} stopped before the gradient tolerance: ||grad f|| = {grad_norm:.3e} > \
         {tolerance:.3e} after {iterations} iterations (limit {max_iters}), cost {cost:.6e}; \
         argmin stopped with: {termination}"
    )]
    NotConverged {
        /// "L-BFGS" or "Newton-CG".
        solver: &'static str,
        /// ‖∇f‖₂ at the last accepted iterate.
        grad_norm: f64,
        /// The tolerance asked for.
        tolerance: f64,
        /// Iterations run.
        iterations: u64,
        /// The iteration limit.
        max_iters: u64,
        /// f at the last accepted iterate.
        cost: f64,
        /// argmin's reason for stopping (the iteration limit, a step without progress, a
        /// line search or iteration that broke down, with argmin's message).
        termination: Termination,
        /// The last accepted iterate.
        x: Vec<f64>,
        /// Evaluations.
        counts: EvalCounts,
    },
    /// An evaluation of the function failed or was not finite.
    #[error("the {during} failed during argmin iteration {iteration}: {source}")]
    Function {
        /// Which evaluation.
        during: Evaluation,
        /// The iteration (0 during initialization and the first iteration).
        iteration: u64,
        /// ad-core's error (a non-finite output is [`AdError::NonFinite`]).
        #[source]
        source: AdError,
    },
    /// argmin asked for an evaluation at a non-finite point before any iterate was
    /// accepted: its own iteration broke down (the function was not called there). After
    /// an accepted iterate, the same breakdown is a [`NotConverged`](Self::NotConverged)
    /// whose termination says so.
    #[error(
        "argmin's iteration broke down: it asked for the {during} at a non-finite point \
         (entry {index} is {value}) during iteration {iteration}"
    )]
    NonFiniteIterate {
        /// Which evaluation was asked for.
        during: Evaluation,
        /// The iteration.
        iteration: u64,
        /// Position of the first non-finite entry.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// argmin itself returned an error before any iterate was accepted. (Later errors, such
    /// as a line search rejecting its direction inside Newton-CG, are a
    /// [`NotConverged`](Self::NotConverged) with argmin's message as the termination.)
    #[error("argmin {solver} failed at iteration {iteration}: {message}")]
    Solver {
        /// "L-BFGS" or "Newton-CG".
        solver: &'static str,
        /// The iteration.
        iteration: u64,
        /// argmin's message.
        message: String,
    },
}

impl ArgminError {
    /// The last accepted iterate of a run that did not converge.
    pub fn last_iterate(&self) -> Option<&[f64]> {
        match self {
            ArgminError::NotConverged { x, .. } => Some(x),
            _ => None,
        }
    }

    /// ‖∇f‖₂ reached by a run that did not converge.
    pub fn grad_norm(&self) -> Option<f64> {
        match self {
            ArgminError::NotConverged { grad_norm, .. } => Some(*grad_norm),
            _ => None,
        }
    }
}

impl From<ArgminError> for ImplicitError {
    fn from(e: ArgminError) -> Self {
        ImplicitError::Argmin(Box::new(e))
    }
}

// ---------------------------------------------------------------------------------------
// Runners
// ---------------------------------------------------------------------------------------

const NO_PROGRESS: &str = "no progress: the line search returned the previous iterate \
     (the cost no longer resolves the remaining decrease; ask for a larger grad_tol)";

type DState<H> = IterState<DVector<f64>, DVector<f64>, (), H, (), f64>;

/// The last accepted iterate: point, cost, gradient norm, and the gradient argmin saw.
struct Accepted {
    x: Vec<f64>,
    cost: f64,
    grad_norm: f64,
    grad: Vec<f64>,
}

/// What a run knows about its progress, kept outside the solver (an `Executor` that
/// returns an error drops the solver).
#[derive(Default)]
struct Record {
    last: Option<Accepted>,
    converged: bool,
}

/// Wraps an argmin solver: replaces its stopping rules by the gradient-norm test, makes
/// sure every accepted iterate has its gradient, stops at the first recorded failure and
/// at steps that make no progress, and remembers the last accepted iterate (argmin's L-BFGS
/// loses it when its line search fails).
///
/// The inner solver's own `terminate` is not called: L-BFGS's tests are a gradient test
/// (ours) and a cost-change test, and Newton-CG's only test is a cost change. Near the
/// solution the cost stops resolving the decrease long before the gradient stops falling,
/// so a cost-change test stops them early (measured: Newton-CG at ‖∇f‖ ≈ 1e-8 with f ≈ 0.6).
struct Monitored<S> {
    inner: S,
    /// Stop when a step gives a curvature pair with `sᵀy <= 0` (quasi-Newton updates).
    check_curvature: bool,
    grad_tol: f64,
    scale: f64,
    shared: Arc<Shared>,
    record: Arc<Mutex<Record>>,
}

impl<S> Monitored<S> {
    fn check(&self) -> Result<(), ArgminCoreError> {
        if self.shared.failed() {
            Err(ArgminCoreError::msg("a function evaluation failed"))
        } else {
            Ok(())
        }
    }

    /// Fill in the cost and gradient of the state's point if missing, and remember it;
    /// returns the previously accepted iterate.
    fn complete<D: Differentiable, H>(
        &mut self,
        problem: &mut Problem<ArgminProblem<D>>,
        mut state: DState<H>,
    ) -> Result<(DState<H>, Option<Accepted>), ArgminCoreError> {
        let Some(x) = state.get_param().cloned() else {
            return Ok((state, None));
        };
        if !state.get_cost().is_finite() {
            let c = problem.cost(&x)?;
            state = state.cost(c);
        }
        if state.get_gradient().is_none() {
            let g = problem.gradient(&x)?;
            state = state.gradient(g);
        }
        let grad = state
            .get_gradient()
            .map_or_else(Vec::new, |g| g.as_slice().to_vec());
        let accepted = Accepted {
            x: x.as_slice().to_vec(),
            cost: state.get_cost() / self.scale,
            grad_norm: norm(&grad) / self.scale,
            grad,
        };
        let previous = lock(&self.record).last.replace(accepted);
        Ok((state, previous))
    }

    /// Why to stop after an accepted step from `prev` to `last`, if anything is wrong.
    fn stalled(&self, prev: &Accepted, last: &Accepted) -> Option<String> {
        if last.x == prev.x {
            return Some(NO_PROGRESS.to_string());
        }
        // More-Thuente reports its abnormal exits (step at its bounds, interval too small)
        // as success, with whatever point it has: an uphill step means it failed. Costs
        // are compared with an allowance of a few rounding errors.
        let allowance = 8.0 * f64::EPSILON * prev.cost.abs().max(f64::MIN_POSITIVE);
        if last.cost > prev.cost + allowance {
            return Some(format!(
                "the line search returned a higher cost ({:.6e} after {:.6e}): it failed \
                 (is the gradient consistent with the cost?)",
                last.cost, prev.cost
            ));
        }
        // L-BFGS stores the pair (s, y) = (Δx, Δ∇f) and divides by sᵀy and yᵀy next time: a
        // pair with sᵀy <= 0 (only rounding can give one after a strong-Wolfe line search)
        // makes its next direction NaN or uphill.
        if self.check_curvature {
            let sy: f64 = (0..last.x.len())
                .map(|i| (last.x[i] - prev.x[i]) * (last.grad[i] - prev.grad[i]))
                .sum();
            if sy.is_nan() || sy <= 0.0 {
                return Some(format!(
                    "curvature pair s^T y = {sy:.3e} <= 0: the step is below what the \
                     gradient resolves (ask for a larger grad_tol)"
                ));
            }
        }
        None
    }
}

impl<D, S, H> Solver<ArgminProblem<D>, DState<H>> for Monitored<S>
where
    D: Differentiable,
    S: Solver<ArgminProblem<D>, DState<H>>,
{
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn init(
        &mut self,
        problem: &mut Problem<ArgminProblem<D>>,
        state: DState<H>,
    ) -> Result<(DState<H>, Option<KV>), ArgminCoreError> {
        let (state, kv) = self.inner.init(problem, state)?;
        self.check()?;
        let (state, _) = self.complete(problem, state)?;
        Ok((state, kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<ArgminProblem<D>>,
        state: DState<H>,
    ) -> Result<(DState<H>, Option<KV>), ArgminCoreError> {
        self.shared
            .iteration
            .store(state.get_iter(), Ordering::Relaxed);
        let (state, kv) = self.inner.next_iter(problem, state)?;
        self.check()?;
        if state.terminated() {
            return Ok((state, kv));
        }
        let (state, previous) = self.complete(problem, state)?;
        let stop = {
            let record = lock(&self.record);
            match (previous.as_ref(), record.last.as_ref()) {
                (Some(prev), Some(last)) if last.grad_norm > self.grad_tol => {
                    self.stalled(prev, last)
                }
                _ => None,
            }
        };
        match stop {
            Some(reason) => Ok((
                state.terminate_with(TerminationReason::SolverExit(reason)),
                kv,
            )),
            None => Ok((state, kv)),
        }
    }

    fn terminate(&mut self, state: &DState<H>) -> TerminationStatus {
        if let Some(g) = state.get_gradient()
            && g.norm() / self.scale <= self.grad_tol
        {
            lock(&self.record).converged = true;
            return TerminationStatus::Terminated(TerminationReason::SolverConverged);
        }
        TerminationStatus::NotTerminated
    }
}

fn check_grad_tol(tol: f64) -> Result<(), ImplicitError> {
    if tol.is_finite() && tol > 0.0 {
        Ok(())
    } else {
        Err(ImplicitError::InvalidOption {
            name: "grad_tol",
            value: tol,
            reason: "the gradient tolerance must be positive and finite",
        })
    }
}

fn at_least_one(name: &'static str, n: usize) -> Result<(), ImplicitError> {
    if n >= 1 {
        Ok(())
    } else {
        Err(ImplicitError::InvalidOption {
            name,
            value: n as f64,
            reason: "must be at least 1",
        })
    }
}

fn classify(reason: Option<&TerminationReason>) -> Termination {
    match reason {
        Some(TerminationReason::MaxItersReached) => Termination::MaxIters,
        Some(TerminationReason::SolverExit(m)) => Termination::SolverExit(m.clone()),
        Some(r) => Termination::Other(r.text().to_string()),
        None => Termination::Other("not terminated".to_string()),
    }
}

struct RunSpec {
    name: &'static str,
    grad_tol: f64,
    max_iters: u64,
    hvp_budget: Option<usize>,
    scale: f64,
    check_curvature: bool,
}

fn run<D, S, H>(f: D, x0: &[f64], solver: S, spec: RunSpec) -> Result<ArgminSolution, ImplicitError>
where
    D: Differentiable,
    S: Solver<ArgminProblem<D>, DState<H>>,
{
    crate::error::check_finite("initial guess x0", x0)?;
    let problem = ArgminProblem::new(f)
        .hvp_budget(spec.hvp_budget)
        .scale(spec.scale);
    let shared = problem.shared.clone();
    let record = Arc::new(Mutex::new(Record::default()));
    let monitored = Monitored {
        inner: solver,
        check_curvature: spec.check_curvature,
        grad_tol: spec.grad_tol,
        scale: spec.scale,
        shared: shared.clone(),
        record: record.clone(),
    };
    let result = Executor::new(problem, monitored)
        .configure(|s| {
            s.param(DVector::from_column_slice(x0))
                .max_iters(spec.max_iters)
        })
        .ctrlc(false)
        .timer(false)
        .run();
    let record = std::mem::take(&mut *lock(&record));
    // A recorded failure is the real cause, whatever argmin made of it. A failure of the
    // function is reported as such; a breakdown of argmin's own iteration (a non-finite
    // trial point) after progress is a NotConverged with the numbers of the last iterate.
    let breakdown = match shared.take_failure() {
        Some(e @ ArgminError::NonFiniteIterate { .. }) if record.last.is_some() => Some(e),
        Some(e) => return Err(e.into()),
        None => None,
    };
    let (iterations, termination) = match (breakdown, result) {
        (Some(e), _) => (
            shared.iteration.load(Ordering::Relaxed),
            Termination::SolverExit(e.to_string()),
        ),
        (None, result) => match result {
            Ok(OptimizationResult { state, .. }) => {
                let termination = if record.converged {
                    Termination::GradientTolerance
                } else {
                    classify(state.get_termination_reason())
                };
                (state.get_iter(), termination)
            }
            // argmin's own error (Newton-CG passes its line search's errors on): with an
            // accepted iterate, still a NotConverged with the numbers.
            Err(e) => {
                let iteration = shared.iteration.load(Ordering::Relaxed);
                if record.last.is_none() {
                    return Err(ArgminError::Solver {
                        solver: spec.name,
                        iteration,
                        message: e.to_string(),
                    }
                    .into());
                }
                (iteration, Termination::SolverExit(e.to_string()))
            }
        },
    };
    let counts = shared.counts();
    let Some(last) = record.last else {
        return Err(ArgminError::Solver {
            solver: spec.name,
            iteration: iterations,
            message: "argmin returned without an iterate".to_string(),
        }
        .into());
    };
    if termination == Termination::GradientTolerance && last.grad_norm <= spec.grad_tol {
        Ok(ArgminSolution {
            x: last.x,
            cost: last.cost,
            grad_norm: last.grad_norm,
            iterations,
            termination,
            counts,
        })
    } else {
        Err(ArgminError::NotConverged {
            solver: spec.name,
            grad_norm: last.grad_norm,
            tolerance: spec.grad_tol,
            iterations,
            max_iters: spec.max_iters,
            cost: last.cost,
            termination,
            x: last.x,
            counts,
        }
        .into())
    }
}

fn argmin_setup(name: &'static str, e: ArgminCoreError) -> ImplicitError {
    ArgminError::Solver {
        solver: name,
        iteration: 0,
        message: e.to_string(),
    }
    .into()
}

/// Minimize any [`Differentiable`] from `x0` with argmin's L-BFGS until
/// `‖∇f‖₂ <= options.grad_tol`; otherwise an [`ArgminError`].
pub fn run_lbfgs<D: Differentiable>(
    f: D,
    x0: &[f64],
    options: &LbfgsOptions,
) -> Result<ArgminSolution, ImplicitError> {
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

/// Minimize any [`Differentiable`] from `x0` with argmin's Newton-CG (exact
/// Hessian-vector products) until `‖∇f‖₂ <= options.grad_tol`; otherwise an
/// [`ArgminError`].
pub fn run_newton_cg<D: Differentiable>(
    f: D,
    x0: &[f64],
    options: &NewtonCgOptions,
) -> Result<ArgminSolution, ImplicitError> {
    check_grad_tol(options.grad_tol)?;
    at_least_one("max_cg_iters", options.max_cg_iters)?;
    if !(options.cost_scale.is_finite() && options.cost_scale > 0.0) {
        return Err(ImplicitError::InvalidOption {
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

/// x*(θ) = argmin_x L(x, θ) with argmin's L-BFGS, from `x0`, to `‖∇ₓL‖₂ <= grad_tol`.
///
/// A run that stops short is an [`ImplicitError::Argmin`] holding
/// [`ArgminError::NotConverged`] (gradient norm reached, iterations, argmin's reason).
pub fn minimize_lbfgs<O: Objective>(
    objective: &O,
    theta: &[f64],
    x0: &[f64],
    options: &LbfgsOptions,
) -> Result<ArgminSolution, ImplicitError> {
    run_lbfgs(ObjectiveAt::new(objective, theta)?, x0, options)
}

/// x*(θ) = argmin_x L(x, θ) with argmin's Newton-CG, from `x0`, to `‖∇ₓL‖₂ <= grad_tol`.
///
/// A run that stops short is an [`ImplicitError::Argmin`] holding
/// [`ArgminError::NotConverged`] (gradient norm reached, iterations, argmin's reason).
pub fn minimize_newton_cg<O: Objective>(
    objective: &O,
    theta: &[f64],
    x0: &[f64],
    options: &NewtonCgOptions,
) -> Result<ArgminSolution, ImplicitError> {
    run_newton_cg(ObjectiveAt::new(objective, theta)?, x0, options)
}

/// [`minimize_lbfgs`] or [`minimize_newton_cg`], as `method` says.
pub fn minimize<O: Objective>(
    objective: &O,
    theta: &[f64],
    x0: &[f64],
    method: &ArgminMethod,
) -> Result<ArgminSolution, ImplicitError> {
    match method {
        ArgminMethod::Lbfgs(o) => minimize_lbfgs(objective, theta, x0, o),
        ArgminMethod::NewtonCg(o) => minimize_newton_cg(objective, theta, x0, o),
    }
}

/// A forward solver for [`implicit_node`](crate::implicit_node): given θ (one column
/// block), minimize L(·, θ) from `x0` with argmin and return x*. A run that stops short
/// fails the node (no tape entry); θ in several blocks is
/// [`ImplicitError::BlockCount`].
///
/// Keep [`IftOptions::residual_tol`](crate::IftOptions::residual_tol) above the solver's
/// `grad_tol`: the node checks ‖∇ₓL(x*, θ)‖ again before recording.
///
/// ```
/// use ad_core::{MatOps, Real, Tape};
/// use implicit::argmin_adapter::{forward_solver, ArgminMethod};
/// use implicit::{implicit_node, Argmin, IftOptions, Objective};
/// // x*(θ) = argmin_x ½‖x − θ‖² + ¼‖x‖⁴, differentiated through a tape
/// #[derive(Clone)]
/// struct Obj;
/// impl Objective for Obj {
///     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
///         x.sub(&t[0]).sq_norm() * 0.5 + x.sq_norm().square() * 0.25
///     }
/// }
/// let tape = Tape::new();
/// let theta = tape.vector_var(&[1.0, -0.5]);
/// let solve = forward_solver(&Obj, vec![0.0; 2], ArgminMethod::default());
/// let (x, node) = implicit_node(Argmin(Obj), &[theta], solve, IftOptions::default()).unwrap();
/// let g = tape.gradient(x.sum()).unwrap();
/// assert_eq!(g.wrt_mat(&theta).len(), 2);
/// assert!(node.forward_residual <= 1e-8);
/// ```
pub fn forward_solver<O: Objective>(
    objective: &O,
    x0: Vec<f64>,
    method: ArgminMethod,
) -> impl FnOnce(&[DMatrix<f64>]) -> Result<Vec<f64>, ImplicitError> + '_ {
    move |theta: &[DMatrix<f64>]| {
        if theta.len() != 1 {
            return Err(ImplicitError::BlockCount {
                what: "argmin forward_solver parameters (one column block)",
                expected: 1,
                got: theta.len(),
            });
        }
        if theta[0].ncols() != 1 {
            return Err(ImplicitError::Shape {
                what: "argmin forward_solver parameters (one column block)",
                expected: (theta[0].len(), 1),
                got: theta[0].shape(),
            });
        }
        minimize(objective, theta[0].as_slice(), &x0, &method).map(|s| s.x)
    }
}
