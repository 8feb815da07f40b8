//! The error type of metalearn.

use std::path::PathBuf;

use ad_core::AdError;
use ad_core::optim::OptimError;
use implicit::linear::SolveError;

/// Everything that can go wrong in metalearn for reasons of data, options or convergence.
///
/// Each variant carries the numbers needed to understand it. Shape mismatches between a
/// model and the data it is handed are reported as [`MetaError::Dimension`] (task data
/// comes from users), not as panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetaError {
    /// Task data or a parameter vector held NaN or an infinity.
    #[error("non-finite {what}: entry {index} is {value}")]
    NonFinite {
        /// Which data ("support inputs", "query targets", "meta-parameters" ...).
        what: &'static str,
        /// Position of the first offending entry (column-major for matrices).
        index: usize,
        /// The offending value.
        value: f64,
    },

    /// More points were asked of a task than it holds.
    #[error(
        "a task holding {available} points cannot give {requested} (support {support} + query {query})"
    )]
    NotEnoughData {
        /// Points asked for (support + query).
        requested: usize,
        /// Support points asked for.
        support: usize,
        /// Query points asked for.
        query: usize,
        /// Points the task holds.
        available: usize,
    },

    /// A model and the data (or a parameter vector) do not fit each other.
    #[error("dimension mismatch for {what}: expected {expected}, got {got}")]
    Dimension {
        /// What was compared ("support inputs columns", "meta-parameters length" ...).
        what: &'static str,
        /// What the model needs.
        expected: usize,
        /// What was given.
        got: usize,
    },

    /// An option has an unusable value (NaN, zero steps, a negative rate ...).
    #[error("invalid option `{name}` = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Its value (as f64; counts are converted).
        value: f64,
        /// Why it is refused.
        reason: &'static str,
    },

    /// iMAML's proximal inner problem was not solved to the asked tolerance.
    #[error(
        "iMAML inner solve of task {task} did not converge: gradient norm {residual:.3e} after \
         {iterations} steps (tolerance {tolerance:.3e})"
    )]
    InnerNotConverged {
        /// The task's index in its meta-batch.
        task: usize,
        /// Gradient steps taken.
        iterations: usize,
        /// Norm of the proximal objective's gradient reached.
        residual: f64,
        /// The tolerance asked.
        tolerance: f64,
    },

    /// iMAML's conjugate-gradient solve of `(I + H / lambda) x = g` failed.
    #[error("iMAML linear solve of task {task} failed: {source}")]
    Linear {
        /// The task's index in its meta-batch.
        task: usize,
        /// implicit's error (with its report: iterations, residual, tolerance).
        source: SolveError,
    },

    /// A loss, an adapted parameter or a meta-gradient became NaN or infinite.
    #[error("{what} of task {task} is not finite ({value}) after {step} inner steps")]
    Diverged {
        /// What diverged ("query loss", "inner iterate" ...).
        what: &'static str,
        /// The task's index in its meta-batch.
        task: usize,
        /// Inner steps taken.
        step: usize,
        /// The offending value.
        value: f64,
    },

    /// A meta-batch with no task.
    #[error("empty meta-batch: at least one task is needed")]
    EmptyBatch,

    /// A meta-iteration gave a non-finite meta-loss, meta-gradient, meta-parameter or Adam
    /// moment; the trainer keeps its previous state.
    #[error("meta-iteration {iteration}: {what} entry {index} is not finite ({value})")]
    MetaDiverged {
        /// What left the finite numbers ("meta-loss", "meta-gradient", "meta-parameters" ...).
        what: &'static str,
        /// The meta-iteration (from 0).
        iteration: u64,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },

    /// A step counter is at its limit: one more step would overflow it.
    #[error("{what} is {count}: one more step would overflow it")]
    StepLimit {
        /// Which counter ("meta-iteration count").
        what: &'static str,
        /// Its value.
        count: u64,
    },

    /// An error of ad-core (tape, derivatives, loss checks, model files).
    #[error(transparent)]
    Ad(#[from] AdError),

    /// An error of the meta-optimizer's options.
    #[error(transparent)]
    Optim(#[from] OptimError),

    /// A saved file was not valid JSON for what was expected.
    #[error("cannot load {what}{}: {source}", path.as_ref().map(|p| format!(" from {}", p.display())).unwrap_or_default())]
    Load {
        /// What was being loaded.
        what: &'static str,
        /// The file, if loading from one.
        path: Option<PathBuf>,
        /// serde_json's error (line and column).
        source: serde_json::Error,
    },

    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The first non-finite entry of `values`, as [`MetaError::NonFinite`].
pub(crate) fn check_finite(what: &'static str, values: &[f64]) -> Result<(), MetaError> {
    if ad_core::all_finite(values) {
        return Ok(());
    }
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(MetaError::NonFinite {
            what,
            index,
            value: values[index],
        }),
    }
}

/// `Ok` if `value` is finite and positive, else [`MetaError::InvalidOption`].
pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<(), MetaError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(MetaError::InvalidOption {
            name,
            value,
            reason: "must be finite and > 0",
        })
    }
}

/// `Ok` if `value` is at least one, else [`MetaError::InvalidOption`].
pub(crate) fn check_count(name: &'static str, value: usize) -> Result<(), MetaError> {
    if value >= 1 {
        Ok(())
    } else {
        Err(MetaError::InvalidOption {
            name,
            value: value as f64,
            reason: "must be at least 1",
        })
    }
}
