//! The argmin problem: cost, gradient and Hessian of a [`Differentiable`](crate::solvers::argmin_rs::Differentiable).

use std::fmt;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use ad_core::{AdError, check_finite};
use argmin::core::{CostFunction, Error as ArgminCoreError, Gradient, Hessian};
use nalgebra::DVector;

use super::error::Evaluation;
use super::functions::{Differentiable, check_len};
use super::hvp::HvpOperator;
use super::monitor::{Monitor, Shared, bump, lock};

pub(super) struct Cached {
    x: Vec<f64>,
    value: f64,
    grad: Option<Vec<f64>>,
}

/// A [`Differentiable`](crate::solvers::argmin_rs::Differentiable) as an argmin problem: [`CostFunction`](argmin::core::CostFunction), [`Gradient`](argmin::core::Gradient) and
/// [`Hessian`](argmin::core::Hessian) (a matrix-free [`HvpOperator`](crate::solvers::argmin_rs::HvpOperator)) on `nalgebra::DVector<f64>`.
///
/// Every failure — an ad-core error, or a NaN/infinite value, gradient entry or product —
/// is returned to argmin as an error *and* recorded (the first one) for [`Monitor`](crate::solvers::argmin_rs::Monitor),
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
/// use implicit::solvers::argmin_rs::{ArgminProblem, ScalarFnAdapter};
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
    pub(super) f: Arc<D>,
    pub(super) shared: Arc<Shared>,
    pub(super) cache: Mutex<Option<Cached>>,
    pub(super) eager_gradient: bool,
    pub(super) hvp_budget: Option<usize>,
    pub(super) scale: f64,
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
    /// default 1). See [`NewtonCgOptions::cost_scale`](crate::solvers::argmin_rs::NewtonCgOptions::cost_scale) for why. A power of two changes no
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

    /// Cap the Hessian-vector products each [`HvpOperator`](crate::solvers::argmin_rs::HvpOperator) computes through
    /// [`ArgminDot`](argmin_math::ArgminDot) (default: no cap). Products beyond the cap return zero, which
    /// argmin's Newton-CG reads as zero curvature: its inner CG stops and keeps its
    /// previous iterate (a truncated Newton step). Direct calls of
    /// [`HvpOperator::apply`](crate::solvers::argmin_rs::HvpOperator::apply) are not capped.
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
