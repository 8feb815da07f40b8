//! MAML (exact second order), FOMAML, Reptile and the joint-training baseline, one task at
//! a time.

use crate::error::MetaError;
use crate::options::InnerSgd;
use crate::task_gradient::{TaskGradient, TaskLosses, TaskStats, axpy, check_diverged};

/// `steps` SGD steps on the support loss from `theta`; returns the adapted parameters and,
/// when `keep` is set, the iterates `phi_0 = theta, ..., phi_{steps-1}` at which the
/// Hessians of the backward pass are taken.
pub(crate) fn inner_sgd(
    losses: &TaskLosses<'_>,
    theta: &[f64],
    inner: &InnerSgd,
    keep: bool,
    task: usize,
) -> Result<(Vec<f64>, Vec<Vec<f64>>), MetaError> {
    let mut phi = theta.to_vec();
    let mut trajectory = Vec::with_capacity(if keep { inner.steps } else { 0 });
    for step in 0..inner.steps {
        let (l, g) = losses.support.value_and_grad(&phi)?;
        check_diverged("support loss", l, &g, task, step)?;
        if keep {
            trajectory.push(phi.clone());
        }
        axpy(-inner.lr, &g, &mut phi);
        check_diverged("inner iterate", 0.0, &phi, task, step + 1)?;
    }
    Ok((phi, trajectory))
}

/// MAML's meta-gradient of one task. With `second_order`, the query gradient `v` at
/// `phi_k` is carried back through each step: `v <- v - lr H(phi_j) v` for
/// `j = k-1, ..., 0` (exact Hessian-vector products); without, it is returned as is
/// (FOMAML).
pub(crate) fn maml_task(
    losses: &TaskLosses<'_>,
    theta: &[f64],
    inner: &InnerSgd,
    second_order: bool,
    task: usize,
) -> Result<TaskGradient, MetaError> {
    let (phi, trajectory) = inner_sgd(losses, theta, inner, second_order, task)?;
    let (loss, mut v) = losses.query.value_and_grad(&phi)?;
    check_diverged("query loss", loss, &v, task, inner.steps)?;
    for p in trajectory.iter().rev() {
        let hv = losses.support.hvp(p, &v)?;
        axpy(-inner.lr, &hv, &mut v);
    }
    check_diverged("meta-gradient", 0.0, &v, task, inner.steps)?;
    Ok(TaskGradient {
        loss,
        grad: v,
        stats: TaskStats {
            gradients: inner.steps + 1,
            hvps: trajectory.len(),
            inner_steps: inner.steps,
            ..TaskStats::default()
        },
    })
}

/// Reptile's direction `(theta - phi) / (steps * lr)` and the query loss at `phi`.
pub(crate) fn reptile_task(
    losses: &TaskLosses<'_>,
    theta: &[f64],
    inner: &InnerSgd,
    task: usize,
) -> Result<TaskGradient, MetaError> {
    let (phi, _) = inner_sgd(losses, theta, inner, false, task)?;
    let loss = losses.query.value(&phi);
    check_diverged("query loss", loss, &[], task, inner.steps)?;
    let scale = 1.0 / (inner.steps as f64 * inner.lr);
    let grad: Vec<f64> = theta
        .iter()
        .zip(&phi)
        .map(|(t, p)| (t - p) * scale)
        .collect();
    check_diverged("Reptile direction", 0.0, &grad, task, inner.steps)?;
    Ok(TaskGradient {
        loss,
        grad,
        stats: TaskStats {
            gradients: inner.steps,
            inner_steps: inner.steps,
            ..TaskStats::default()
        },
    })
}

/// The joint-training baseline: the mean of the support and query losses at `theta` and
/// its gradient.
pub(crate) fn joint_task(
    losses: &TaskLosses<'_>,
    theta: &[f64],
    task: usize,
) -> Result<TaskGradient, MetaError> {
    let (ls, gs) = losses.support.value_and_grad(theta)?;
    let (lq, mut g) = losses.query.value_and_grad(theta)?;
    axpy(1.0, &gs, &mut g);
    g.iter_mut().for_each(|v| *v *= 0.5);
    let loss = 0.5 * (ls + lq);
    check_diverged("joint loss", loss, &g, task, 0)?;
    Ok(TaskGradient {
        loss,
        grad: g,
        stats: TaskStats {
            gradients: 2,
            ..TaskStats::default()
        },
    })
}
