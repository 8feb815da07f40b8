//! What one task contributes to a meta-gradient ([`TaskGradient`], [`TaskStats`]), and the
//! helpers every algorithm shares. Below the algorithms: it imports none of them.

use ad_core::nn::{Mlp, MseLoss};
use serde::{Deserialize, Serialize};

use crate::error::MetaError;
use crate::task::Task;

/// One task's contribution to a meta-gradient.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskGradient {
    /// The query loss at the adapted parameters (for [`Algorithm::Joint`], the mean of the
    /// support and query losses at `theta`).
    pub loss: f64,
    /// The task's meta-gradient (or Reptile direction).
    pub grad: Vec<f64>,
    /// What it cost.
    pub stats: TaskStats,
}

/// The work behind one task's meta-gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskStats {
    /// Loss gradients taken (support and query).
    pub gradients: usize,
    /// Hessian-vector products taken.
    pub hvps: usize,
    /// Inner steps taken.
    pub inner_steps: usize,
    /// iMAML: norm of the proximal objective's gradient at the returned `phi` (0 otherwise).
    pub inner_residual: f64,
    /// iMAML: CG iterations (0 otherwise).
    pub cg_iterations: usize,
    /// iMAML: relative residual of the CG solve (0 otherwise).
    pub cg_relative_residual: f64,
}

/// The support and query losses of one task, as functions of the flat parameters.
pub(crate) struct TaskLosses<'a> {
    pub support: MseLoss<'a>,
    pub query: MseLoss<'a>,
}

impl<'a> TaskLosses<'a> {
    /// Dimensions must have been checked (MseLoss panics on a shape mismatch).
    pub fn new(mlp: &'a Mlp, task: &'a Task) -> Result<TaskLosses<'a>, MetaError> {
        Ok(TaskLosses {
            support: MseLoss::new(mlp, &task.support_x, &task.support_y)?,
            query: MseLoss::new(mlp, &task.query_x, &task.query_y)?,
        })
    }
}

/// The inner step's rate: one for every parameter (MAML's alpha, the protocol's
/// fine-tuning rate), or one each (Meta-SGD's learned alpha).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Rates<'a> {
    One(f64),
    Each(&'a [f64]),
}

impl Rates<'_> {
    /// `phi <- phi - rate ⊙ g`.
    pub(crate) fn step(self, g: &[f64], phi: &mut [f64]) {
        match self {
            Rates::One(lr) => axpy(-lr, g, phi),
            Rates::Each(rates) => {
                for ((p, r), gi) in phi.iter_mut().zip(rates).zip(g) {
                    *p -= r * gi;
                }
            }
        }
    }
}

/// `y <- y + a x`.
pub(crate) fn axpy(a: f64, x: &[f64], y: &mut [f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// Euclidean norm.
pub(crate) fn norm(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// [`MetaError::Diverged`] unless every entry of `v` (and `value`) is finite.
pub(crate) fn check_diverged(
    what: &'static str,
    value: f64,
    v: &[f64],
    task: usize,
    step: usize,
) -> Result<(), MetaError> {
    let bad = if !value.is_finite() {
        Some(value)
    } else if ad_core::all_finite(v) {
        // the common case, checked without a branch per entry
        None
    } else {
        v.iter().copied().find(|x| !x.is_finite())
    };
    match bad {
        None => Ok(()),
        Some(value) => Err(MetaError::Diverged {
            what,
            task,
            step,
            value,
        }),
    }
}
