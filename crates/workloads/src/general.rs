//! Helpers for the "general path": the problem written once against `MatOps`, no
//! derivative code anywhere.
//!
//! - [`TapeOnly`] hides a validation loss's hand-written gradient, so
//!   [`ValidationLoss::value_and_grad`] falls back to the library's default (one reverse
//!   pass on a tape);
//! - [`Counted`] counts the evaluations of an [`Objective`] in any mode (each one records
//!   the problem on a tape or a dual pass, and copies its data matrices there), so a run
//!   can report how many passes and data copies one hypergradient costs;
//! - [`minimize_quadratic_cg`]: the minimizer of an objective that is quadratic in x, by
//!   conjugate gradient on tape Hessian-vector products (`implicit::linear`), from x = 0.
//!
//! ```
//! use workloads::general::{Counted, TapeOnly};
//! use workloads::{data, Penalty, Ridge, SquaredError};
//! use implicit::hyper::ValidationLoss;
//! let w1 = data::w1();
//! let ridge = Counted::new(Ridge::new(&w1.train, Penalty::Shared)?);
//! let val = TapeOnly(SquaredError::new(&w1.val)?);
//! let (v, g, _) = val.value_and_grad(&vec![0.0; 50], &[0.1])?;
//! assert!(v > 0.0 && g.len() == 50);
//! assert_eq!(ridge.evaluations(), 0);
//! # Ok::<(), implicit::ImplicitError>(())
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};

use ad_core::MatOps;
use implicit::hyper::ValidationLoss;
use implicit::linear::{
    LinearOperator, Method, OperatorError, Solution, SolveOptions, Structure, solve,
};
use implicit::{ArgminHessian, ImplicitError, Linearization, Objective};
use nalgebra::DMatrix;

/// A validation loss through its `loss` only: gradients come from the tape.
#[derive(Clone, Debug)]
pub struct TapeOnly<V>(pub V);

impl<V: ValidationLoss> ValidationLoss for TapeOnly<V> {
    fn loss<M: MatOps>(&self, x: &M, theta: &M) -> M::Scalar {
        self.0.loss(x, theta)
    }
}

/// An objective that counts its evaluations (in every mode).
#[derive(Debug)]
pub struct Counted<O> {
    inner: O,
    evaluations: AtomicUsize,
}

impl<O> Counted<O> {
    /// Wrap `inner`, count from zero.
    pub fn new(inner: O) -> Self {
        Counted {
            inner,
            evaluations: AtomicUsize::new(0),
        }
    }

    /// Evaluations since creation or the last [`reset`](Counted::reset).
    pub fn evaluations(&self) -> usize {
        self.evaluations.load(Ordering::Relaxed)
    }

    /// Count from zero again.
    pub fn reset(&self) {
        self.evaluations.store(0, Ordering::Relaxed);
    }

    /// The wrapped objective.
    pub fn inner(&self) -> &O {
        &self.inner
    }
}

impl<O: Objective> Objective for Counted<O> {
    fn value<M: MatOps>(&self, x: &M, theta: &[M]) -> M::Scalar {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        self.inner.value(x, theta)
    }
}

/// The Hessian of an objective at a point as a linear operator (one tape pass per product).
struct TapeHessian<'a, O>(ArgminHessian<'a, O>);

impl<O: Objective> LinearOperator for TapeHessian<'_, O> {
    fn nrows(&self) -> usize {
        self.0.dims().0
    }
    fn ncols(&self) -> usize {
        self.0.dims().0
    }
    fn apply(&self, v: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let hv = self.0.a_mul(v)?;
        y.copy_from_slice(&hv);
        Ok(())
    }
    fn structure(&self) -> Structure {
        Structure::SPD
    }
}

/// x* = argmin_x L(x, θ) for L quadratic in x with a positive definite Hessian H: one
/// Newton step from 0, `H x = −∇ₓL(0, θ)`, solved by CG on tape Hessian-vector products
/// (one gradient pass, then one second-order pass per CG iteration).
///
/// # Errors
/// A failed tape pass, or CG not reaching `options` (carrying its report).
pub fn minimize_quadratic_cg<O: Objective>(
    objective: &O,
    n: usize,
    theta: &[f64],
    options: &SolveOptions,
) -> Result<Solution, ImplicitError> {
    let zero = DMatrix::zeros(n, 1);
    let theta = [DMatrix::from_column_slice(theta.len(), 1, theta)];
    let lin = ArgminHessian::new(objective, &zero, &theta)?;
    let rhs: Vec<f64> = lin.gradient().iter().map(|g| -g).collect();
    Ok(solve(&TapeHessian(lin), &rhs, None, Method::Cg, options)?)
}
