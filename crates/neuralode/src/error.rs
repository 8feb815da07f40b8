//! [`NodeError`]: everything that can go wrong in a solve or a gradient, with the numbers.

use crate::stats::SolveStats;

/// Errors of the neuralode crate: bad input, solver failure, or a failed derivative rule.
///
/// Solver failures carry the time reached and the solver statistics up to the failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// An input (state, parameter, time, cotangent) contained NaN or an infinity.
    #[error("non-finite {what}: entry {index} is {value}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// An option is out of its valid range.
    #[error("invalid option `{name}` = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What is required.
        reason: &'static str,
    },
    /// A vector has the wrong length.
    #[error("{what}: expected length {expected}, got {got}")]
    Length {
        /// Which vector.
        what: &'static str,
        /// Length required.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// No observation times were given.
    #[error("no observation times given")]
    NoObservations,
    /// Observation times must increase strictly.
    #[error("observation times out of order: t[{index}] = {value} does not exceed t[{}] = {previous}", index - 1)]
    TimesOutOfOrder {
        /// Index of the offending time.
        index: usize,
        /// The time before it.
        previous: f64,
        /// The offending time.
        value: f64,
    },
    /// An observation time lies before the initial time.
    #[error("observation time t[{index}] = {value} lies before t0 = {t0}")]
    TimeBeforeStart {
        /// Index of the offending time.
        index: usize,
        /// The offending time.
        value: f64,
        /// The initial time.
        t0: f64,
    },
    /// The step size fell below what the floating-point time can resolve.
    #[error("step size underflow at t = {t} (step {h}) in the {phase} solve; {stats}")]
    StepSizeUnderflow {
        /// Time reached.
        t: f64,
        /// The step size that was too small.
        h: f64,
        /// "forward" or "adjoint".
        phase: &'static str,
        /// Statistics up to the failure.
        stats: SolveStats,
    },
    /// The step budget ran out.
    #[error(
        "maximum number of steps ({max_steps}) reached at t = {t} in the {phase} solve; {stats}"
    )]
    MaxSteps {
        /// Time reached.
        t: f64,
        /// The budget.
        max_steps: usize,
        /// "forward" or "adjoint".
        phase: &'static str,
        /// Statistics up to the failure.
        stats: SolveStats,
    },
    /// The problem looks stiff (Hairer's test h*|lambda| > 3.25, 15 times in a row).
    #[error(
        "the problem looks stiff at t = {t} (h*|lambda| = {h_lambda}) in the {phase} solve; {stats}"
    )]
    Stiff {
        /// Time reached.
        t: f64,
        /// The last stiffness estimate.
        h_lambda: f64,
        /// "forward" or "adjoint".
        phase: &'static str,
        /// Statistics up to the failure.
        stats: SolveStats,
    },
    /// A reference solver of `ode_solvers` failed.
    #[error("ode_solvers {method} failed: {message}")]
    Reference {
        /// Which method.
        method: &'static str,
        /// Its message (with the time reached).
        message: String,
    },
    /// The tape or a custom rule failed.
    #[error(transparent)]
    Ad(#[from] ad_core::AdError),
}

/// Reject the first non-finite entry of `xs`.
pub(crate) fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), NodeError> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(NodeError::NonFinite {
            what,
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}

/// Reject a vector of the wrong length.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), NodeError> {
    if expected == got {
        Ok(())
    } else {
        Err(NodeError::Length {
            what,
            expected,
            got,
        })
    }
}
