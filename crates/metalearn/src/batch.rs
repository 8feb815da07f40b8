//! Meta-batches: the mean of the tasks' contributions, serial or in parallel over tasks
//! with identical results.

use ad_core::nn::Mlp;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algorithm::Algorithm;
use crate::error::MetaError;
use crate::task::Task;
use crate::task_gradient::TaskGradient;

/// How the tasks of a meta-batch are spread over threads.
///
/// Both give bit-identical results: the tasks' gradients are computed independently
/// (each thread has its own tape) and summed afterwards in task order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Parallelism {
    /// One task after the other on the calling thread.
    Serial,
    /// Tasks in parallel on the current rayon pool (the global one, or the pool a caller
    /// `install`s).
    #[default]
    Rayon,
}

/// A meta-batch's meta-gradient: the mean over tasks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetaGradient {
    /// Mean of the tasks' losses after adaptation (the meta-loss).
    pub loss: f64,
    /// Mean of the tasks' gradients.
    pub grad: Vec<f64>,
    /// The work done, summed (and maxima of residuals) over tasks.
    pub stats: BatchStats,
}

/// The work behind a meta-gradient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchStats {
    /// Tasks in the batch.
    pub tasks: usize,
    /// Loss gradients taken, over all tasks.
    pub gradients: usize,
    /// Hessian-vector products taken, over all tasks.
    pub hvps: usize,
    /// Largest final gradient norm of iMAML's inner problems (0 for other algorithms).
    pub max_inner_residual: f64,
    /// Largest relative residual of iMAML's CG solves (0 for other algorithms).
    pub max_cg_relative_residual: f64,
    /// CG iterations, over all tasks.
    pub cg_iterations: usize,
}

/// The meta-gradient of `algorithm` at the meta-parameters `theta` (for Meta-SGD
/// `[theta, alpha]`) over `tasks`: mean loss and mean gradient.
///
/// Errors: [`MetaError::EmptyBatch`], and the first error (in task order) of
/// [`Algorithm::task_gradient`].
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp};
/// use metalearn::{meta_gradient, sample_batch, Algorithm, InnerSgd, Parallelism, Sinusoid};
/// let mlp = Mlp::new(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
/// let theta = mlp.init(Init::HeNormal, 0);
/// let tasks = sample_batch(&Sinusoid::default(), 1, 0, 4, 10, 10).unwrap();
/// let alg = Algorithm::Maml(InnerSgd::default());
/// let a = meta_gradient(&alg, &mlp, &theta, &tasks, Parallelism::Serial).unwrap();
/// let b = meta_gradient(&alg, &mlp, &theta, &tasks, Parallelism::Rayon).unwrap();
/// assert_eq!(a, b); // bit for bit
/// ```
pub fn meta_gradient(
    algorithm: &Algorithm,
    mlp: &Mlp,
    theta: &[f64],
    tasks: &[Task],
    parallelism: Parallelism,
) -> Result<MetaGradient, MetaError> {
    if tasks.is_empty() {
        return Err(MetaError::EmptyBatch);
    }
    algorithm.validate()?;
    algorithm.check_meta_params(mlp, theta)?;
    let one = |(i, t): (usize, &Task)| algorithm.task_gradient(mlp, theta, t, i);
    let parts: Vec<Result<TaskGradient, MetaError>> = match parallelism {
        Parallelism::Serial => tasks.iter().enumerate().map(one).collect(),
        Parallelism::Rayon => tasks.par_iter().enumerate().map(one).collect(),
    };
    let n = tasks.len() as f64;
    let mut grad = vec![0.0; theta.len()];
    let mut loss = 0.0;
    let mut stats = BatchStats {
        tasks: tasks.len(),
        ..BatchStats::default()
    };
    for part in parts {
        let p = part?;
        loss += p.loss;
        for (g, v) in grad.iter_mut().zip(&p.grad) {
            *g += v;
        }
        stats.gradients += p.stats.gradients;
        stats.hvps += p.stats.hvps;
        stats.cg_iterations += p.stats.cg_iterations;
        stats.max_inner_residual = stats.max_inner_residual.max(p.stats.inner_residual);
        stats.max_cg_relative_residual = stats
            .max_cg_relative_residual
            .max(p.stats.cg_relative_residual);
    }
    grad.iter_mut().for_each(|g| *g /= n);
    Ok(MetaGradient {
        loss: loss / n,
        grad,
        stats,
    })
}
