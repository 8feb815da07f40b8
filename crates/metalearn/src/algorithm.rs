//! [`Algorithm`]: which meta-gradient to take, and what one task contributes
//! ([`TaskGradient`]).

use ad_core::nn::{Mlp, MseLoss};
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, check_finite};
use crate::imaml::imaml_task;
use crate::maml::{joint_task, maml_task, reptile_task};
use crate::options::{ImamlOptions, InnerSgd};
use crate::task::Task;

/// A meta-learning algorithm with its options.
///
/// ```
/// use metalearn::{Algorithm, InnerSgd};
/// let maml = Algorithm::Maml(InnerSgd::default().steps(5));
/// assert_eq!(maml.name(), "MAML");
/// let json = serde_json::to_string(&maml).unwrap();
/// assert_eq!(serde_json::from_str::<Algorithm>(&json).unwrap(), maml);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Algorithm {
    /// MAML with the exact second-order meta-gradient: the query gradient at the adapted
    /// parameters carried back through each inner step's `(I - alpha H)` by Hessian-vector
    /// products.
    Maml(InnerSgd),
    /// First-order MAML: the query gradient at the adapted parameters (the inner gradients
    /// are constants).
    Fomaml(InnerSgd),
    /// iMAML: implicit meta-gradient of the proximal inner problem.
    Imaml(ImamlOptions),
    /// Reptile: the direction `(theta - phi) / (steps * lr)` after `steps` inner steps on the
    /// support set, used as a gradient by the meta-optimizer.
    Reptile(InnerSgd),
    /// The pretrained baseline: the gradient of the support and query losses at `theta`
    /// itself (joint regression on all tasks, no adaptation).
    Joint,
}

impl Algorithm {
    /// A short name ("MAML", "FOMAML", "iMAML", "Reptile", "pretrained").
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Maml(_) => "MAML",
            Algorithm::Fomaml(_) => "FOMAML",
            Algorithm::Imaml(_) => "iMAML",
            Algorithm::Reptile(_) => "Reptile",
            Algorithm::Joint => "pretrained",
        }
    }

    /// Check the options ([`MetaError::InvalidOption`]).
    pub fn validate(&self) -> Result<(), MetaError> {
        match self {
            Algorithm::Maml(o) | Algorithm::Fomaml(o) | Algorithm::Reptile(o) => o.validate(),
            Algorithm::Imaml(o) => o.validate(),
            Algorithm::Joint => Ok(()),
        }
    }

    /// One task's contribution at `theta`: the loss after adaptation and the gradient.
    /// `index` is the task's position in its meta-batch (it names the task in errors).
    ///
    /// Errors: [`MetaError::Dimension`] if the network does not fit the task or `theta`
    /// has the wrong length, [`MetaError::NonFinite`] for a NaN in `theta`,
    /// [`MetaError::Diverged`] if adaptation leaves the finite numbers, the algorithm's
    /// convergence errors, and [`MetaError::InvalidOption`] for bad options.
    pub fn task_gradient(
        &self,
        mlp: &Mlp,
        theta: &[f64],
        task: &Task,
        index: usize,
    ) -> Result<TaskGradient, MetaError> {
        self.validate()?;
        check_theta(mlp, theta)?;
        task.check_dims(mlp.inputs(), mlp.outputs())?;
        let losses = TaskLosses::new(mlp, task)?;
        match self {
            Algorithm::Maml(o) => maml_task(&losses, theta, o, true, index),
            Algorithm::Fomaml(o) => maml_task(&losses, theta, o, false, index),
            Algorithm::Imaml(o) => imaml_task(&losses, theta, o, index),
            Algorithm::Reptile(o) => reptile_task(&losses, theta, o, index),
            Algorithm::Joint => joint_task(&losses, theta, index),
        }
    }
}

/// Check a meta-parameter vector against a network: [`MetaError::Dimension`] for a wrong
/// length, [`MetaError::NonFinite`] for a NaN or infinite entry.
pub fn check_theta(mlp: &Mlp, theta: &[f64]) -> Result<(), MetaError> {
    if theta.len() != mlp.num_params() {
        return Err(MetaError::Dimension {
            what: "meta-parameter vector length",
            expected: mlp.num_params(),
            got: theta.len(),
        });
    }
    check_finite("meta-parameters", theta)
}

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
