//! [`NodeError`]: everything that can go wrong in a solve or a gradient, with the numbers.

use crate::stats::SolveStats;

/// Errors of the neuralode crate: bad input, solver failure, or a failed derivative rule.
///
/// Solver failures carry the time reached and the solver statistics up to the failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// An input (state, parameter, time, cotangent) contained NaN or an infinity.
    #[error("non-finite {what}: entry {index} is {}", Num(*.value))]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// An option is out of its valid range.
    #[error("invalid option `{name}` = {}: {reason}", Num(*.value))]
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
    #[error(
        "observation times out of order: t[{index}] = {} does not exceed t[{}] = {}",
        Num(*.value),
        index - 1,
        Num(*.previous)
    )]
    TimesOutOfOrder {
        /// Index of the offending time.
        index: usize,
        /// The time before it.
        previous: f64,
        /// The offending time.
        value: f64,
    },
    /// An observation time lies before the initial time.
    #[error(
        "observation time t[{index}] = {} lies before t0 = {}",
        Num(*.value),
        Num(*.t0)
    )]
    TimeBeforeStart {
        /// Index of the offending time.
        index: usize,
        /// The offending time.
        value: f64,
        /// The initial time.
        t0: f64,
    },
    /// The step size fell below what the floating-point time can resolve.
    #[error(
        "step size underflow at t = {} (step {}) in the {phase} solve; {stats}",
        Num(*.t),
        Num(*.h)
    )]
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
        "maximum number of steps ({max_steps}) reached at t = {} in the {phase} solve; {stats}",
        Num(*.t)
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
        "the problem looks stiff at t = {} (h*|lambda| = {}) in the {phase} solve; {stats}",
        Num(*.t),
        Num(*.h_lambda)
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
    /// The solution left the floating-point range: a step's stages or new state (or the
    /// dense output at an observation) were NaN or infinite even at the smallest step.
    #[error(
        "non-finite {what} at t = {} (step {}) in the {phase} solve; {stats}",
        Num(*.t),
        Num(*.step)
    )]
    Diverged {
        /// Time reached.
        t: f64,
        /// The last step size tried.
        step: f64,
        /// What was not finite.
        what: &'static str,
        /// "forward", "adjoint", ...
        phase: &'static str,
        /// Statistics up to the failure.
        stats: SolveStats,
    },
    /// A matrix block has the wrong shape.
    #[error("{what}: expected shape {expected:?}, got {got:?}")]
    Shape {
        /// Which block.
        what: &'static str,
        /// Shape required (rows, columns).
        expected: (usize, usize),
        /// Shape given.
        got: (usize, usize),
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

/// An f64 shown in shortest decimal form in ordinary ranges, in exponent form when huge or
/// tiny (so 1e308 is not printed with 309 digits).
pub(crate) struct Num(pub f64);

impl std::fmt::Display for Num {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = self.0.abs();
        if a == 0.0 || !a.is_finite() || (1e-5..1e16).contains(&a) {
            write!(f, "{}", self.0)
        } else {
            write!(f, "{:e}", self.0)
        }
    }
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
