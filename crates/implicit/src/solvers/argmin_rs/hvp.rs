//! The matrix-free Hessian operator that argmin's Newton-CG and this crate's linear solvers use.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ad_core::{AdError, check_finite};
use argmin_math::ArgminDot;
use nalgebra::DVector;

use super::error::Evaluation;
use super::functions::{Differentiable, check_len};
use super::monitor::{Shared, bump, lock};
use crate::linear::{LinearOperator, OperatorError, Structure};

/// The Hessian ∇²f(x) at one point, matrix-free: products `H·v` are exact Hessian-vector
/// products from ad-core (reverse over forward), never finite differences.
///
/// argmin's `NewtonCG` needs of its Hessian type only `Clone` and
/// [`ArgminDot<DVector<f64>, DVector<f64>>`](ArgminDot) (`H.dot(&p)`), whose signature is
/// infallible. So `dot` never returns NaN: a failed or non-finite product is recorded
/// (see [`Monitor`](crate::solvers::argmin_rs::Monitor); the runners turn it into [`ArgminError::Function`](crate::solvers::argmin_rs::ArgminError::Function)) and returned as
/// the zero vector, which makes Newton-CG's inner loop stop. The fallible
/// [`apply`](HvpOperator::apply) and the [`LinearOperator`] implementation return errors
/// instead, so the same operator also serves this crate's linear solvers.
///
/// `dot` applies the Hessian of what argmin sees, `scale · f` (see
/// [`ArgminProblem::scale`](crate::solvers::argmin_rs::ArgminProblem::scale)); `apply` and [`LinearOperator`] apply the Hessian of f itself.
///
/// ```
/// use ad_core::{hessian, Real, ScalarFn};
/// use argmin::core::Hessian;
/// use argmin_math::ArgminDot;
/// use implicit::solvers::argmin_rs::{ArgminProblem, ScalarFnAdapter};
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
    pub(super) f: Arc<D>,
    pub(super) x: Vec<f64>,
    pub(super) shared: Arc<Shared>,
    pub(super) budget: Option<usize>,
    pub(super) scale: f64,
    pub(super) used: AtomicUsize,
    pub(super) last: Mutex<Option<(DVector<f64>, DVector<f64>)>>,
}

impl<D: Differentiable> HvpOperator<D> {
    /// The Hessian of `f` at `x`, outside any [`ArgminProblem`](crate::solvers::argmin_rs::ArgminProblem) (no product cap).
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

    /// Products computed by this operator through [`ArgminDot`](argmin_math::ArgminDot) (cache hits excluded).
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
