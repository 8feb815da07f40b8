//! Bookkeeping shared by a problem and its runner: failures and evaluation counts.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ad_core::AdError;
use argmin::core::Error as ArgminCoreError;

use super::error::{ArgminError, EvalCounts, Evaluation};

pub(super) enum Failure {
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
pub(super) struct Shared {
    pub(super) failure: Mutex<Option<Failure>>,
    pub(super) iteration: AtomicU64,
    pub(super) cost: AtomicU64,
    pub(super) gradient: AtomicU64,
    pub(super) hessian: AtomicU64,
    pub(super) hvp: AtomicU64,
    pub(super) passes: AtomicU64,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Shared {
    /// Keep the first failure; return a message for argmin.
    pub(super) fn record(&self, during: Evaluation, source: AdError) -> String {
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
    pub(super) fn check_point(&self, during: Evaluation, x: &[f64]) -> Result<(), ArgminCoreError> {
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

    pub(super) fn keep(&self, failure: Failure) {
        let mut slot = lock(&self.failure);
        if slot.is_none() {
            *slot = Some(failure);
        }
    }

    pub(super) fn failed(&self) -> bool {
        lock(&self.failure).is_some()
    }

    pub(super) fn take_failure(&self) -> Option<ArgminError> {
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

    pub(super) fn counts(&self) -> EvalCounts {
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

/// A handle on an [`ArgminProblem`](crate::solvers::argmin_rs::ArgminProblem)'s failures and counts that stays valid after the
/// problem has moved into an argmin `Executor` (which may not give it back: argmin's
/// L-BFGS drops it when its line search fails).
#[derive(Clone)]
pub struct Monitor {
    pub(super) shared: Arc<Shared>,
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
