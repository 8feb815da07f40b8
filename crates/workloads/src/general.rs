//! Helpers for the "general path": the problem written once against `MatOps`, no
//! derivative code anywhere.
//!
//! - [`TapeOnly`] hides a validation loss's hand-written gradient, so
//!   [`ValidationLoss::value_and_grad`] falls back to the library's default (one reverse
//!   pass on a tape);
//! - [`Counted`] counts the evaluations of an [`Objective`] in any mode (each one records
//!   the problem on a tape or a dual pass, and copies its data matrices there), so a run
//!   can report how many passes and data copies one hypergradient costs.
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
use implicit::Objective;
use implicit::hyper::ValidationLoss;

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
    fn value<M: MatOps>(&self, x: &M, theta: &M) -> M::Scalar {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        self.inner.value(x, theta)
    }
}
