//! [`Algorithm`]: which meta-gradient to take (what one task contributes is
//! [`TaskGradient`](crate::TaskGradient), in `task_gradient.rs`).

use ad_core::nn::Mlp;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, check_finite};
use crate::imaml::imaml_task;
use crate::maml::{joint_task, maml_task, reptile_task};
use crate::options::{ImamlOptions, InnerSgd};
use crate::task::Task;
use crate::task_gradient::{TaskGradient, TaskLosses};

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
