//! [`Algorithm`]: which meta-gradient to take (what one task contributes is
//! [`TaskGradient`](crate::TaskGradient), in `task_gradient.rs`).

use ad_core::nn::Mlp;
use serde::{Deserialize, Serialize};

use crate::error::{MetaError, check_finite};
use crate::imaml::imaml_task;
use crate::maml::{joint_task, maml_task, reptile_task};
use crate::meta_sgd::meta_sgd_task;
use crate::options::{ImamlOptions, InnerSgd, MetaSgdOptions};
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
    /// Meta-SGD: MAML with a learned inner rate per parameter. Its meta-parameters are
    /// `[theta, alpha]`, twice the network's length (see [`Algorithm::init_meta_params`]).
    MetaSgd(MetaSgdOptions),
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
            Algorithm::MetaSgd(_) => "Meta-SGD",
        }
    }

    /// The length of this algorithm's meta-parameter vector for `mlp`: the network's
    /// parameter count, twice that for Meta-SGD (`[theta, alpha]`).
    pub fn meta_params_len(&self, mlp: &Mlp) -> usize {
        match self {
            Algorithm::MetaSgd(_) => 2 * mlp.num_params(),
            _ => mlp.num_params(),
        }
    }

    /// The meta-parameters to start training from, given network parameters `theta`:
    /// `theta` itself, or for Meta-SGD `[theta, alpha]` with every rate `init_lr`.
    ///
    /// ```
    /// use metalearn::{Algorithm, MetaSgdOptions};
    /// let alg = Algorithm::MetaSgd(MetaSgdOptions::default().init_lr(0.05));
    /// assert_eq!(alg.init_meta_params(vec![1.0, 2.0]), vec![1.0, 2.0, 0.05, 0.05]);
    /// ```
    pub fn init_meta_params(&self, theta: Vec<f64>) -> Vec<f64> {
        match self {
            Algorithm::MetaSgd(o) => {
                let mut p = theta;
                let n = p.len();
                p.resize(2 * n, o.init_lr);
                p
            }
            _ => theta,
        }
    }

    /// The network's parameters and, for Meta-SGD, the learned rates, from a meta-parameter
    /// vector for `mlp` (checked as by [`check_meta_params`](Algorithm::check_meta_params)).
    ///
    /// ```
    /// use ad_core::nn::{Activation, Mlp};
    /// use metalearn::{Algorithm, MetaError, MetaSgdOptions};
    /// let mlp = Mlp::new(&[1, 1], Activation::Tanh, Activation::Identity); // w and b
    /// let alg = Algorithm::MetaSgd(MetaSgdOptions::default());
    /// let (theta, alpha) = alg.split_meta_params(&mlp, &[1.0, 2.0, 0.1, 0.2])?;
    /// assert_eq!((theta, alpha), (&[1.0, 2.0][..], Some(&[0.1, 0.2][..])));
    /// // The network's parameters alone are not Meta-SGD's meta-parameters.
    /// assert!(matches!(alg.split_meta_params(&mlp, &[1.0, 2.0]), Err(MetaError::Dimension { .. })));
    /// # Ok::<(), MetaError>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn split_meta_params<'a>(
        &self,
        mlp: &Mlp,
        params: &'a [f64],
    ) -> Result<(&'a [f64], Option<&'a [f64]>), MetaError> {
        self.check_meta_params(mlp, params)?;
        Ok(match self {
            Algorithm::MetaSgd(_) => {
                let (theta, alpha) = params.split_at(mlp.num_params());
                (theta, Some(alpha))
            }
            _ => (params, None),
        })
    }

    /// Check a meta-parameter vector against a network for this algorithm:
    /// [`MetaError::Dimension`] for a length other than
    /// [`meta_params_len`](Algorithm::meta_params_len), [`MetaError::NonFinite`] for a NaN
    /// or infinite entry.
    pub fn check_meta_params(&self, mlp: &Mlp, params: &[f64]) -> Result<(), MetaError> {
        let expected = self.meta_params_len(mlp);
        if params.len() != expected {
            return Err(MetaError::Dimension {
                what: match self {
                    Algorithm::MetaSgd(_) => {
                        "Meta-SGD meta-parameter vector length ([theta, alpha]: init_meta_params)"
                    }
                    _ => "meta-parameter vector length",
                },
                expected,
                got: params.len(),
            });
        }
        check_finite("meta-parameters", params)
    }

    /// Check the options ([`MetaError::InvalidOption`]).
    pub fn validate(&self) -> Result<(), MetaError> {
        match self {
            Algorithm::Maml(o) | Algorithm::Fomaml(o) | Algorithm::Reptile(o) => o.validate(),
            Algorithm::Imaml(o) => o.validate(),
            Algorithm::MetaSgd(o) => o.validate(),
            Algorithm::Joint => Ok(()),
        }
    }

    /// One task's contribution at the meta-parameters `theta` (for Meta-SGD
    /// `[theta, alpha]`): the loss after adaptation and the gradient (of the same length).
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
        self.check_meta_params(mlp, theta)?;
        task.check_dims(mlp.inputs(), mlp.outputs())?;
        let losses = TaskLosses::new(mlp, task)?;
        match self {
            Algorithm::MetaSgd(o) => {
                let (theta, alpha) = theta.split_at(mlp.num_params());
                meta_sgd_task(&losses, theta, alpha, o, index)
            }
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
