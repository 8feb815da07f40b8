//! [`MetaTrainer`]: meta-training with Adam over seeded meta-batches, and its
//! [`Checkpoint`] (serde save and load).

use std::path::Path;

use ad_core::nn::{Mlp, Model};
use ad_core::optim::{Adam, AdamOptions, Optimizer};
use serde::{Deserialize, Serialize};

use crate::algorithm::Algorithm;
use crate::batch::{BatchStats, Parallelism, meta_gradient};
use crate::error::{MetaError, check_count, check_finite};
use crate::task::{TaskDistribution, sample_batch};
use crate::task_gradient::norm;

/// How meta-training runs: meta-batch size, shots, seed, the Adam meta-optimizer.
///
/// Defaults are Finn et al. (2017)'s sinusoid protocol: 25 tasks per meta-batch, K = 10
/// support and 10 query points, Adam with learning rate 1e-3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// Tasks per meta-batch. Default 25.
    pub meta_batch: usize,
    /// Support points per task (K). Default 10.
    pub k_support: usize,
    /// Query points per task. Default 10.
    pub k_query: usize,
    /// Seed of the task stream: meta-iteration `t` draws its tasks from
    /// [`task_seed`](crate::task_seed)`(seed, t, i)`. Default 0.
    pub seed: u64,
    /// The meta-optimizer's options. Default: learning rate 1e-3.
    pub adam: AdamOptions,
    /// Serial or parallel over tasks (same result either way). Default: rayon.
    pub parallelism: Parallelism,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            meta_batch: 25,
            k_support: 10,
            k_query: 10,
            seed: 0,
            adam: AdamOptions::default().learning_rate(1e-3),
            parallelism: Parallelism::Rayon,
        }
    }
}

impl TrainOptions {
    /// Set the meta-batch size.
    pub fn meta_batch(mut self, n: usize) -> Self {
        self.meta_batch = n;
        self
    }
    /// Set K, the support (and query) points per task.
    pub fn shots(mut self, k: usize) -> Self {
        self.k_support = k;
        self.k_query = k;
        self
    }
    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Set the meta-optimizer's options.
    pub fn adam(mut self, adam: AdamOptions) -> Self {
        self.adam = adam;
        self
    }
    /// Set the parallelism.
    pub fn parallelism(mut self, p: Parallelism) -> Self {
        self.parallelism = p;
        self
    }
    /// [`MetaError::InvalidOption`] for a zero count; the Adam options are checked when
    /// the trainer is built.
    pub fn validate(&self) -> Result<(), MetaError> {
        check_count("meta_batch", self.meta_batch)?;
        check_count("k_support", self.k_support)?;
        check_count("k_query", self.k_query)
    }
}

/// What an observer sees after each meta-iteration.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IterationInfo {
    /// The meta-iteration just done (from 0).
    pub iteration: u64,
    /// Its meta-loss (mean query loss after adaptation, before the update).
    pub loss: f64,
    /// Norm of its meta-gradient.
    pub grad_norm: f64,
    /// Its work.
    pub stats: BatchStats,
}

/// Meta-training of one network's initialization.
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp};
/// use metalearn::{Algorithm, InnerSgd, MetaTrainer, Sinusoid, TrainOptions};
/// let mlp = Mlp::new(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
/// let theta = mlp.init(Init::HeNormal, 0);
/// let opts = TrainOptions::default().meta_batch(4);
/// let mut trainer = MetaTrainer::new(Algorithm::Maml(InnerSgd::default()), mlp, theta, opts)?;
/// let mut losses = Vec::new();
/// trainer.run(&Sinusoid::default(), 3, |info| losses.push(info.loss))?;
/// assert_eq!((losses.len(), trainer.iteration()), (3, 3));
/// # Ok::<(), metalearn::MetaError>(())
/// ```
#[derive(Clone, Debug)]
pub struct MetaTrainer {
    algorithm: Algorithm,
    mlp: Mlp,
    theta: Vec<f64>,
    options: TrainOptions,
    adam: Adam,
    iteration: u64,
}

impl MetaTrainer {
    /// A trainer starting from the meta-parameters `theta` (for Meta-SGD `[theta, alpha]`:
    /// [`Algorithm::init_meta_params`]): [`MetaError::InvalidOption`] for bad options,
    /// [`MetaError::Dimension`] / [`MetaError::NonFinite`] for a bad `theta`.
    pub fn new(
        algorithm: Algorithm,
        mlp: Mlp,
        theta: Vec<f64>,
        options: TrainOptions,
    ) -> Result<MetaTrainer, MetaError> {
        algorithm.validate()?;
        options.validate()?;
        algorithm.check_meta_params(&mlp, &theta)?;
        let adam = Adam::new(options.adam)?;
        Ok(MetaTrainer {
            algorithm,
            mlp,
            theta,
            options,
            adam,
            iteration: 0,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> &Algorithm {
        &self.algorithm
    }

    /// The network.
    pub fn mlp(&self) -> &Mlp {
        &self.mlp
    }

    /// The current meta-parameters (for Meta-SGD `[theta, alpha]`:
    /// [`Algorithm::split_meta_params`] separates them).
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// Meta-iterations done.
    pub fn iteration(&self) -> u64 {
        self.iteration
    }

    /// The options.
    pub fn options(&self) -> &TrainOptions {
        &self.options
    }

    /// One meta-iteration: draw the meta-batch of this iteration, take the meta-gradient,
    /// update with Adam. On an error nothing changes: [`MetaError::MetaDiverged`] if the
    /// meta-loss, meta-gradient or the updated meta-parameters (or Adam moments) are not
    /// finite, [`MetaError::StepLimit`] if the iteration count is at `u64::MAX`.
    pub fn step<D: TaskDistribution + ?Sized>(
        &mut self,
        dist: &D,
    ) -> Result<IterationInfo, MetaError> {
        let iteration = self.iteration;
        check_step_count("meta-iteration count", iteration)?;
        let o = &self.options;
        let tasks = sample_batch(
            dist,
            o.seed,
            self.iteration,
            o.meta_batch,
            o.k_support,
            o.k_query,
        )?;
        let mg = meta_gradient(
            &self.algorithm,
            &self.mlp,
            &self.theta,
            &tasks,
            o.parallelism,
        )?;
        let diverged = |e: MetaError| match e {
            MetaError::NonFinite { what, index, value } => MetaError::MetaDiverged {
                what,
                iteration,
                index,
                value,
            },
            e => e,
        };
        check_finite("meta-loss", &[mg.loss])
            .and_then(|()| check_finite("meta-gradient", &mg.grad))
            .map_err(diverged)?;
        // Update copies: ad-core's Adam can overflow (a huge rate or moment) and the trainer
        // must keep its last finite state.
        let mut theta = self.theta.clone();
        let mut adam = self.adam.clone();
        adam.step(&mut theta, &mg.grad);
        check_finite("meta-parameters", &theta)
            .and_then(|()| check_finite("Adam first moment", &adam.state().m))
            .and_then(|()| check_finite("Adam second moment", &adam.state().v))
            .map_err(diverged)?;
        self.theta = theta;
        self.adam = adam;
        self.iteration += 1;
        Ok(IterationInfo {
            iteration,
            loss: mg.loss,
            grad_norm: norm(&mg.grad),
            stats: mg.stats,
        })
    }

    /// `iterations` meta-iterations, reporting each to `observer`.
    pub fn run<D: TaskDistribution + ?Sized>(
        &mut self,
        dist: &D,
        iterations: u64,
        mut observer: impl FnMut(&IterationInfo),
    ) -> Result<(), MetaError> {
        for _ in 0..iterations {
            let info = self.step(dist)?;
            observer(&info);
        }
        Ok(())
    }

    /// The whole state, to save and resume.
    pub fn checkpoint(&self) -> Checkpoint {
        let (theta, rates) = self
            .algorithm
            .split_meta_params(&self.mlp, &self.theta)
            .expect("the trainer's meta-parameters fit its network");
        Checkpoint {
            algorithm: self.algorithm,
            model: Model::new(self.mlp.clone(), theta.to_vec())
                .expect("the trainer's theta fits its network"),
            inner_rates: rates.map(<[f64]>::to_vec).unwrap_or_default(),
            options: self.options.clone(),
            adam: self.adam.clone(),
            iteration: self.iteration,
        }
    }

    /// Resume from a checkpoint (the same run continues bit for bit); the checkpoint is
    /// checked as by [`Checkpoint::from_json`].
    pub fn resume(c: Checkpoint) -> Result<MetaTrainer, MetaError> {
        c.check()?;
        let (mlp, mut theta) = c.model.into_parts();
        theta.extend_from_slice(&c.inner_rates);
        let mut t = MetaTrainer::new(c.algorithm, mlp, theta, c.options)?;
        t.adam = c.adam;
        t.iteration = c.iteration;
        Ok(t)
    }
}

/// A saved meta-training run: algorithm, network and meta-parameters, options, the Adam
/// state and the iteration count. JSON; a corrupt file is [`MetaError::Load`], never a
/// panic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The algorithm and its options.
    pub algorithm: Algorithm,
    /// The network and its meta-learned parameters.
    pub model: Model,
    /// Meta-SGD's learned inner rates, one per network parameter (empty for the other
    /// algorithms, and then absent from the JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inner_rates: Vec<f64>,
    /// The training options.
    pub options: TrainOptions,
    /// The meta-optimizer with its state.
    pub adam: Adam,
    /// Meta-iterations done.
    pub iteration: u64,
}

/// [`MetaError::StepLimit`] if the counter cannot be incremented.
fn check_step_count(what: &'static str, count: u64) -> Result<(), MetaError> {
    if count < u64::MAX {
        Ok(())
    } else {
        Err(MetaError::StepLimit { what, count })
    }
}

impl Checkpoint {
    /// The whole state: finite parameters fitting the network, an iteration count below
    /// its limit, Adam moments of the parameters' length (once used) and finite. (Adam
    /// itself refuses a negative second moment or a step count at its limit: `Adam::resume`,
    /// which deserialization goes through.)
    fn check(&self) -> Result<(), MetaError> {
        let params = self.meta_params();
        let n = params.len();
        self.algorithm
            .check_meta_params(self.model.mlp(), &params)?;
        check_step_count("meta-iteration count", self.iteration)?;
        let s = self.adam.state();
        for (what, got) in [
            ("Adam state length", s.m.len()),
            ("Adam second-moment length", s.v.len()),
        ] {
            if s.t > 0 && got != n {
                return Err(MetaError::Dimension {
                    what,
                    expected: n,
                    got,
                });
            }
        }
        check_finite("Adam first moment", &s.m)?;
        check_finite("Adam second moment", &s.v)
    }

    /// The checkpoint as JSON ([`MetaError::NonFinite`] for non-finite parameters).
    pub fn to_json(&self) -> Result<String, MetaError> {
        self.algorithm
            .check_meta_params(self.model.mlp(), &self.meta_params())?;
        serde_json::to_string(self).map_err(|source| MetaError::Load {
            what: "checkpoint",
            path: None,
            source,
        })
    }

    /// The meta-parameters: the network's, then (Meta-SGD) the inner rates.
    pub fn meta_params(&self) -> Vec<f64> {
        let mut p = self.model.params().to_vec();
        p.extend_from_slice(&self.inner_rates);
        p
    }

    /// A checkpoint from JSON: [`MetaError::Load`] for text that is not one,
    /// [`MetaError::Dimension`] for a state that does not fit its network,
    /// [`MetaError::NonFinite`] or [`MetaError::StepLimit`] for a state that cannot be
    /// resumed (and [`MetaError::Load`] for an Adam state that Adam refuses).
    pub fn from_json(json: &str) -> Result<Checkpoint, MetaError> {
        Checkpoint::parse(json, None)
    }

    fn parse(json: &str, path: Option<&Path>) -> Result<Checkpoint, MetaError> {
        let c: Checkpoint = serde_json::from_str(json).map_err(|source| MetaError::Load {
            what: "checkpoint",
            path: path.map(Path::to_path_buf),
            source,
        })?;
        c.check()?;
        Ok(c)
    }

    /// Write the checkpoint to `path` ([`MetaError::Io`] if it cannot be written).
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<(), MetaError> {
        let path = path.as_ref();
        let json = self.to_json()?;
        std::fs::write(path, json).map_err(|source| MetaError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Read a checkpoint written by [`save_json`](Checkpoint::save_json):
    /// [`MetaError::Io`], [`MetaError::Load`] (with the path), or the state errors of
    /// [`Checkpoint::from_json`].
    pub fn load_json(path: impl AsRef<Path>) -> Result<Checkpoint, MetaError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| MetaError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Checkpoint::parse(&json, Some(path))
    }
}
