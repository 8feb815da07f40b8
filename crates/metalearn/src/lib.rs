//! # metalearn — MAML, FOMAML, iMAML, Reptile and Meta-SGD on ad-core's tape
//!
//! Learn an initialization `theta` from which a few gradient steps fit a new task.
//! Tasks come from a seeded [`TaskDistribution`] (the [`Sinusoid`] family of Finn et al.
//! 2017, [`LinearRegression`]); models are [`ad_core::nn::Mlp`]s over one flat parameter
//! vector; every meta-gradient is exact (MAML through each inner step's `(I - alpha H)` by
//! Hessian-vector products, iMAML by implicit's conjugate gradient), and meta-batches run
//! in parallel over tasks with results identical for any thread count.
//!
//! ```
//! use ad_core::nn::{Activation, Init, Mlp};
//! use metalearn::{evaluate, Algorithm, EvalOptions, InnerSgd, MetaTrainer, Sinusoid, TrainOptions};
//! let mlp = Mlp::new(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
//! let theta = mlp.init(Init::HeNormal, 0);
//! let alg = Algorithm::Maml(InnerSgd::default()); // one inner step, alpha = 0.01
//! let mut trainer = MetaTrainer::new(alg, mlp, theta, TrainOptions::default().meta_batch(5))?;
//! trainer.run(&Sinusoid::default(), 5, |_| {})?;                 // 5 meta-iterations of Adam
//! let opts = EvalOptions::default().tasks(10).steps(1);
//! let report = evaluate(trainer.mlp(), trainer.theta(), &Sinusoid::default(), &opts)?;
//! let one_step = report.at(1).expect("steps 0 and 1 are evaluated");
//! assert!(one_step.mean.is_some_and(f64::is_finite) && one_step.diverged == 0);
//! # Ok::<(), metalearn::MetaError>(())
//! ```
//!
//! - [`task`](mod@task): [`Task`] (support and query sets), [`TaskData`], the
//!   [`TaskDistribution`] trait and [`sample_batch`] (each task seeded by
//!   [`task_seed`]`(seed, iteration, index)`);
//! - [`Algorithm`]: MAML, FOMAML, iMAML, Reptile, Meta-SGD (learned per-parameter inner
//!   rates) and the joint-training baseline, with [`InnerSgd`], [`ImamlOptions`] and
//!   [`MetaSgdOptions`];
//! - [`meta_gradient`]: a meta-batch's mean loss and gradient, serial or parallel;
//! - [`MetaTrainer`] (Adam from `ad_core::optim`) and its [`Checkpoint`];
//! - [`evaluate`] (and [`evaluate_meta_params`], which fine-tunes with Meta-SGD's learned
//!   rates): the protocol (MSE after 0..n fine-tuning steps, 95% CI, diverged tasks
//!   counted apart);
//! - [`w5`]: the peers' W5 workload (fixed network, 25 tasks, JAX's reference values).
//!
//! Memory: MAML keeps the `k` inner iterates (one parameter vector each) for its backward
//! pass, one tape at a time; iMAML keeps two vectors whatever the number of inner steps.
#![forbid(unsafe_code)]

mod algorithm;
mod batch;
mod error;
mod eval;
mod families;
mod imaml;
mod maml;
mod meta_sgd;
mod options;
pub mod task;
mod task_gradient;
mod train;
pub mod w5;

/// The random-number crate the task distributions draw from (`rand::rngs::StdRng`), for
/// implementing [`TaskDistribution`] without a direct dependency.
pub use rand;

pub use algorithm::{Algorithm, check_theta};
pub use batch::{BatchStats, MetaGradient, Parallelism, meta_gradient};
pub use error::MetaError;
pub use eval::{
    EvalOptions, EvalReport, StepResult, adapt, adapt_with_rates, evaluate, evaluate_meta_params,
};
pub use families::{LinearRegression, Sinusoid, SinusoidTask};
pub use options::{ImamlOptions, InnerSgd, MetaSgdOptions, Stop};
pub use task::{Task, TaskData, TaskDistribution, sample_batch, task_seed};
pub use task_gradient::{TaskGradient, TaskStats};
pub use train::{Checkpoint, IterationInfo, MetaTrainer, TrainOptions};

/// The names most programs need: `use metalearn::prelude::*;` (no clash with ad-core's or
/// implicit's preludes).
pub mod prelude {
    pub use crate::{
        Algorithm, EvalOptions, ImamlOptions, InnerSgd, MetaError, MetaSgdOptions, MetaTrainer,
        Parallelism, Sinusoid, Task, TaskDistribution, TrainOptions, evaluate, meta_gradient,
    };
}
