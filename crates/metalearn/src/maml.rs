//! MAML (exact second order), FOMAML, Reptile and the joint-training baseline, one task at
//! a time.

use crate::error::MetaError;
use crate::options::InnerSgd;
use crate::task_gradient::{Rates, TaskGradient, TaskLosses, TaskStats, axpy, check_diverged};

/// What the inner loop keeps for a backward pass: the iterates `phi_0 = theta, ...,
/// phi_{steps-1}` at which the Hessians are taken, and the support gradients there.
#[derive(Clone, Copy)]
pub(crate) struct Keep {
    pub iterates: bool,
    pub gradients: bool,
}

impl Keep {
    pub(crate) const NOTHING: Keep = Keep {
        iterates: false,
        gradients: false,
    };
}

/// The inner loop's result: the adapted parameters and what [`Keep`] asked for (empty
/// otherwise).
pub(crate) struct InnerRun {
    pub phi: Vec<f64>,
    pub iterates: Vec<Vec<f64>>,
    pub gradients: Vec<Vec<f64>>,
}

/// `steps` gradient steps `phi <- phi - rate ⊙ grad L_support(phi)` from `theta`.
pub(crate) fn inner_sgd(
    losses: &TaskLosses<'_>,
    theta: &[f64],
    (rates, steps): (Rates<'_>, usize),
    keep: Keep,
    task: usize,
) -> Result<InnerRun, MetaError> {
    let mut phi = theta.to_vec();
    let cap = |on: bool| Vec::with_capacity(if on { steps } else { 0 });
    let (mut iterates, mut gradients) = (cap(keep.iterates), cap(keep.gradients));
    for step in 0..steps {
        let (l, g) = losses.support.value_and_grad(&phi)?;
        check_diverged("support loss", l, &g, task, step)?;
        if keep.iterates {
            iterates.push(phi.clone());
        }
        rates.step(&g, &mut phi);
        check_diverged("inner iterate", 0.0, &phi, task, step + 1)?;
        if keep.gradients {
            gradients.push(g);
        }
    }
    Ok(InnerRun {
        phi,
        iterates,
        gradients,
    })
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
    let keep = Keep {
        iterates: second_order,
        gradients: false,
    };
    let InnerRun {
        phi,
        iterates: trajectory,
        ..
    } = inner_sgd(losses, theta, inner.rates(), keep, task)?;
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
    let phi = inner_sgd(losses, theta, inner.rates(), Keep::NOTHING, task)?.phi;
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
