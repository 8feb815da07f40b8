//! The evaluation protocol of Finn et al. (2017): query MSE after 0..n fine-tuning steps
//! on fixed test tasks, with means, 95% confidence intervals and diverged tasks counted.

use ad_core::nn::Mlp;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::algorithm::{Algorithm, check_theta};
use crate::batch::Parallelism;
use crate::error::{MetaError, check_count, check_finite, check_positive};
use crate::options::InnerSgd;
use crate::task::{Task, TaskDistribution, sample_batch};
use crate::task_gradient::{Rates, TaskLosses};

/// The evaluation protocol. Defaults: 600 test tasks, K = 10 support and 10 query points,
/// 10 fine-tuning steps of SGD with rate 0.01, seed `0xE7A1`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalOptions {
    /// Number of test tasks. Default 600.
    pub tasks: usize,
    /// Support points per task (K). Default 10.
    pub k_support: usize,
    /// Query points per task. Default 10.
    pub k_query: usize,
    /// Fine-tuning steps: the MSE is reported after 0, 1, ..., `steps`. Default 10.
    pub steps: usize,
    /// Fine-tuning rate. Default 0.01. (Meta-SGD's learned rates take its place in
    /// [`evaluate_meta_params`].)
    pub lr: f64,
    /// Seed of the test tasks (the same tasks for every method). Default `0xE7A1`.
    pub seed: u64,
    /// Serial or parallel over tasks (same result either way). Default: rayon.
    pub parallelism: Parallelism,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            tasks: 600,
            k_support: 10,
            k_query: 10,
            steps: 10,
            lr: 0.01,
            seed: 0xE7A1,
            parallelism: Parallelism::Rayon,
        }
    }
}

impl EvalOptions {
    /// Set the number of test tasks.
    pub fn tasks(mut self, n: usize) -> Self {
        self.tasks = n;
        self
    }
    /// Set K (support and query points).
    pub fn shots(mut self, k: usize) -> Self {
        self.k_support = k;
        self.k_query = k;
        self
    }
    /// Set the number of fine-tuning steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
    /// Set the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// [`MetaError::InvalidOption`] for zero counts or a bad rate.
    pub fn validate(&self) -> Result<(), MetaError> {
        check_count("tasks", self.tasks)?;
        check_count("k_support", self.k_support)?;
        check_count("k_query", self.k_query)?;
        check_positive("lr", self.lr)
    }

    /// The test tasks (the same for every method evaluated with these options).
    pub fn test_tasks<D: TaskDistribution + ?Sized>(
        &self,
        dist: &D,
    ) -> Result<Vec<Task>, MetaError> {
        sample_batch(
            dist,
            self.seed,
            u64::MAX,
            self.tasks,
            self.k_support,
            self.k_query,
        )
    }
}

/// The query MSE over the test tasks after one number of fine-tuning steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Fine-tuning steps taken.
    pub step: usize,
    /// Mean query MSE over the tasks that stayed finite (`None` if none did).
    pub mean: Option<f64>,
    /// Half-width of the 95% confidence interval of the mean (`1.96 s / sqrt(n)`; `None`
    /// with fewer than two finite tasks, or if it overflows).
    pub ci95: Option<f64>,
    /// Tasks whose MSE was finite.
    pub finite: usize,
    /// Tasks whose fine-tuning left the finite numbers (not in the mean).
    pub diverged: usize,
}

/// The query MSE after 0..=steps fine-tuning steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// One entry per number of steps, from 0.
    pub steps: Vec<StepResult>,
}

impl EvalReport {
    /// The result after `step` fine-tuning steps (`None` beyond the protocol's steps).
    pub fn at(&self, step: usize) -> Option<&StepResult> {
        self.steps.get(step)
    }
}

/// Fine-tune `theta` on a task's support set: the parameters after each of `inner.steps`
/// SGD steps (`inner.steps + 1` vectors, `theta` first). Stops early (shorter result) if an
/// iterate leaves the finite numbers.
pub fn adapt(
    mlp: &Mlp,
    theta: &[f64],
    task: &Task,
    inner: &InnerSgd,
) -> Result<Vec<Vec<f64>>, MetaError> {
    inner.validate()?;
    check_theta(mlp, theta)?;
    adapt_by(mlp, theta, task, inner.steps, Rates::One(inner.lr))
}

/// [`adapt`] with one rate per parameter (Meta-SGD's learned `alpha`):
/// `phi <- phi - rates ⊙ grad L_support(phi)`, `steps` times. [`MetaError::Dimension`] if
/// `rates` is not as long as `theta`, [`MetaError::NonFinite`] for a non-finite rate.
pub fn adapt_with_rates(
    mlp: &Mlp,
    theta: &[f64],
    rates: &[f64],
    task: &Task,
    steps: usize,
) -> Result<Vec<Vec<f64>>, MetaError> {
    check_theta(mlp, theta)?;
    check_rates(mlp, rates)?;
    adapt_by(mlp, theta, task, steps, Rates::Each(rates))
}

/// [`MetaError::Dimension`] / [`MetaError::NonFinite`] for rates that do not fit `mlp`.
fn check_rates(mlp: &Mlp, rates: &[f64]) -> Result<(), MetaError> {
    if rates.len() != mlp.num_params() {
        return Err(MetaError::Dimension {
            what: "inner rates length",
            expected: mlp.num_params(),
            got: rates.len(),
        });
    }
    check_finite("inner rates", rates)
}

/// The iterates of `steps` fine-tuning steps (checked input).
fn adapt_by(
    mlp: &Mlp,
    theta: &[f64],
    task: &Task,
    steps: usize,
    rates: Rates<'_>,
) -> Result<Vec<Vec<f64>>, MetaError> {
    task.check_dims(mlp.inputs(), mlp.outputs())?;
    let losses = TaskLosses::new(mlp, task)?;
    let mut out = vec![theta.to_vec()];
    let mut phi = theta.to_vec();
    for _ in 0..steps {
        let (l, g) = losses.support.value_and_grad(&phi)?;
        if !l.is_finite() || !ad_core::all_finite(&g) {
            break;
        }
        rates.step(&g, &mut phi);
        if !ad_core::all_finite(&phi) {
            break;
        }
        out.push(phi.clone());
    }
    Ok(out)
}

/// The query MSE of one task after 0..=steps fine-tuning steps (NaN once diverged).
fn task_curve(
    mlp: &Mlp,
    theta: &[f64],
    task: &Task,
    o: &EvalOptions,
    rates: Rates<'_>,
) -> Result<Vec<f64>, MetaError> {
    let iterates = adapt_by(mlp, theta, task, o.steps, rates)?; // checks the dimensions
    let losses = TaskLosses::new(mlp, task)?;
    let mut curve: Vec<f64> = iterates
        .iter()
        .take(o.steps + 1)
        .map(|p| losses.query.value(p))
        .collect();
    curve.resize(o.steps + 1, f64::NAN);
    Ok(curve)
}

/// Mean and 95% half-width of finite values, without overflow to infinity: `None` for
/// the mean of no value, for the half-width of fewer than two or one that overflows.
fn mean_ci95(vals: &[f64]) -> (Option<f64>, Option<f64>) {
    let n = vals.len() as f64;
    if vals.is_empty() {
        return (None, None);
    }
    let mut mean = vals.iter().sum::<f64>() / n;
    if !mean.is_finite() {
        mean = vals.iter().map(|v| v / n).sum();
    }
    if vals.len() < 2 {
        return (Some(mean), None);
    }
    let ss = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    let mut ci = 1.96 * (ss / (n - 1.0) / n).sqrt();
    if !ci.is_finite() {
        // squares overflowed: scale by the largest deviation
        let d = vals.iter().map(|v| (v - mean).abs()).fold(0.0, f64::max);
        let r = vals.iter().map(|v| ((v - mean) / d).powi(2)).sum::<f64>();
        ci = 1.96 * d * (r / (n - 1.0) / n).sqrt();
    }
    (Some(mean), ci.is_finite().then_some(ci))
}

/// Evaluate meta-parameters `theta` by the protocol: fine-tune on each test task's
/// support set and report the query MSE after each step.
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp};
/// use metalearn::{evaluate, EvalOptions, Sinusoid};
/// let mlp = Mlp::new(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
/// let theta = mlp.init(Init::HeNormal, 0);
/// let report = evaluate(&mlp, &theta, &Sinusoid::default(), &EvalOptions::default().tasks(20).steps(2))?;
/// assert_eq!(report.steps.len(), 3);
/// let one = report.at(1).unwrap();
/// assert_eq!(one.finite + one.diverged, 20);
/// assert!(report.at(3).is_none());
/// # Ok::<(), metalearn::MetaError>(())
/// ```
pub fn evaluate<D: TaskDistribution + ?Sized>(
    mlp: &Mlp,
    theta: &[f64],
    dist: &D,
    opts: &EvalOptions,
) -> Result<EvalReport, MetaError> {
    opts.validate()?;
    check_theta(mlp, theta)?;
    evaluate_by(mlp, theta, dist, opts, Rates::One(opts.lr))
}

/// Evaluate what `algorithm` meta-learned: [`evaluate`] for every algorithm but Meta-SGD,
/// whose meta-parameters `[theta, alpha]` fine-tune with the learned rates `alpha` in
/// place of `opts.lr` (`phi <- phi - alpha ⊙ grad`).
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp};
/// use metalearn::{evaluate, evaluate_meta_params, Algorithm, EvalOptions, MetaSgdOptions, Sinusoid};
/// let mlp = Mlp::new(&[1, 8, 1], Activation::Tanh, Activation::Identity);
/// let alg = Algorithm::MetaSgd(MetaSgdOptions::default().init_lr(0.01));
/// let params = alg.init_meta_params(mlp.init(Init::HeNormal, 0));
/// let opts = EvalOptions::default().tasks(8).steps(2);
/// let learned = evaluate_meta_params(&alg, &mlp, &params, &Sinusoid::default(), &opts)?;
/// // Rates all equal to the protocol's 0.01 fine-tune exactly like plain SGD.
/// let (theta, _) = alg.split_meta_params(&mlp, &params)?;
/// assert_eq!(learned, evaluate(&mlp, theta, &Sinusoid::default(), &opts)?);
/// # Ok::<(), metalearn::MetaError>(())
/// ```
pub fn evaluate_meta_params<D: TaskDistribution + ?Sized>(
    algorithm: &Algorithm,
    mlp: &Mlp,
    params: &[f64],
    dist: &D,
    opts: &EvalOptions,
) -> Result<EvalReport, MetaError> {
    opts.validate()?;
    match algorithm.split_meta_params(mlp, params)? {
        (theta, Some(alpha)) => evaluate_by(mlp, theta, dist, opts, Rates::Each(alpha)),
        (theta, None) => evaluate_by(mlp, theta, dist, opts, Rates::One(opts.lr)),
    }
}

/// The protocol on checked input.
fn evaluate_by<D: TaskDistribution + ?Sized>(
    mlp: &Mlp,
    theta: &[f64],
    dist: &D,
    opts: &EvalOptions,
    rates: Rates<'_>,
) -> Result<EvalReport, MetaError> {
    let tasks = opts.test_tasks(dist)?;
    let one = |t: &Task| task_curve(mlp, theta, t, opts, rates);
    let curves: Vec<Result<Vec<f64>, MetaError>> = match opts.parallelism {
        Parallelism::Serial => tasks.iter().map(one).collect(),
        Parallelism::Rayon => tasks.par_iter().map(one).collect(),
    };
    let curves = curves.into_iter().collect::<Result<Vec<_>, _>>()?;
    let steps = (0..=opts.steps)
        .map(|s| {
            let vals: Vec<f64> = curves
                .iter()
                .map(|c| c[s])
                .filter(|v| v.is_finite())
                .collect();
            let (mean, ci95) = mean_ci95(&vals);
            StepResult {
                step: s,
                mean,
                ci95,
                finite: vals.len(),
                diverged: curves.len() - vals.len(),
            }
        })
        .collect();
    Ok(EvalReport { steps })
}
