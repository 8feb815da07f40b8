//! Meta-SGD's meta-gradient of one task: MAML with a learned rate per parameter.

use crate::error::MetaError;
use crate::maml::{InnerRun, Keep, inner_sgd};
use crate::options::MetaSgdOptions;
use crate::task_gradient::{Rates, TaskGradient, TaskLosses, TaskStats, check_diverged};

/// The meta-gradient `[d theta, d alpha]` of the query loss after `o.steps` steps
/// `phi_{j+1} = phi_j - alpha ⊙ g_j` (`g_j` the support gradient at `phi_j`, `phi_0 = theta`).
/// Backward from `v = grad L_query(phi_k)`, for `j = k-1, ..., 0`:
/// `d alpha -= g_j ⊙ v`, then (second order) `v <- v - H(phi_j) (alpha ⊙ v)`, the transpose
/// of the step's Jacobian `I - diag(alpha) H(phi_j)` applied to `v`. Finally `d theta = v`.
pub(crate) fn meta_sgd_task(
    losses: &TaskLosses<'_>,
    theta: &[f64],
    alpha: &[f64],
    o: &MetaSgdOptions,
    task: usize,
) -> Result<TaskGradient, MetaError> {
    let keep = Keep {
        iterates: !o.first_order,
        gradients: true,
    };
    let InnerRun {
        phi,
        iterates,
        gradients,
    } = inner_sgd(losses, theta, (Rates::Each(alpha), o.steps), keep, task)?;
    let (loss, mut v) = losses.query.value_and_grad(&phi)?;
    check_diverged("query loss", loss, &v, task, o.steps)?;
    let mut d_alpha = vec![0.0; alpha.len()];
    for (j, g) in gradients.iter().enumerate().rev() {
        for ((d, gi), vi) in d_alpha.iter_mut().zip(g).zip(&v) {
            *d -= gi * vi;
        }
        if let Some(p) = iterates.get(j) {
            let scaled: Vec<f64> = alpha.iter().zip(&v).map(|(a, vi)| a * vi).collect();
            let hv = losses.support.hvp(p, &scaled)?;
            v.iter_mut().zip(&hv).for_each(|(vi, h)| *vi -= h);
        }
    }
    let mut grad = v;
    grad.extend_from_slice(&d_alpha);
    check_diverged("meta-gradient", 0.0, &grad, task, o.steps)?;
    Ok(TaskGradient {
        loss,
        grad,
        stats: TaskStats {
            gradients: o.steps + 1,
            hvps: iterates.len(),
            inner_steps: o.steps,
            ..TaskStats::default()
        },
    })
}
