//! Functions argmin can minimize: the [`Differentiable`](crate::solvers::argmin_rs::Differentiable) trait and its adapters.

use ad_core::{AdError, MatFn, MatOps, ScalarFn, check_finite};
use nalgebra::DMatrix;

use super::error::{ArgminError, check_input};
use crate::problem::Objective;

/// A twice-differentiable scalar function of a flat vector: plain value, value and exact
/// gradient, and exact Hessian-vector products. This is what [`ArgminProblem`](crate::solvers::argmin_rs::ArgminProblem) adapts.
///
/// Implemented by [`ObjectiveAt`](crate::solvers::argmin_rs::ObjectiveAt), [`ScalarFnAdapter`](crate::solvers::argmin_rs::ScalarFnAdapter) and [`MatFnAdapter`](crate::solvers::argmin_rs::MatFnAdapter); implement it
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

pub(super) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), AdError> {
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
    /// L(·, θ). A non-finite θ is an [`ArgminError::NonFinite`](crate::solvers::argmin_rs::ArgminError::NonFinite).
    pub fn new(objective: &'a O, theta: &[f64]) -> Result<Self, ArgminError> {
        check_input("parameters theta", theta)?;
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
/// [`Differentiable`](crate::solvers::argmin_rs::Differentiable): gradients by [`ad_core::value_and_grad`], products by
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

/// An [`ad_core::MatFn`] of several matrices as a [`Differentiable`](crate::solvers::argmin_rs::Differentiable) of one flat vector:
/// the blocks, each in nalgebra's column-major order, one after the other.
///
/// ```
/// use ad_core::{MatFn, MatOps};
/// use implicit::solvers::argmin_rs::{Differentiable, MatFnAdapter};
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
