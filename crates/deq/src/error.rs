//! The error type of the crate: one enum, every variant carrying its numbers.

use ad_core::AdError;
use implicit::ImplicitError;

use crate::solvers::kind::MethodKind;
use crate::solvers::stats::SolveStats;

/// Everything that can go wrong in deq.
///
/// Solver failures carry the [`SolveStats`] of the run (iterations, residual trace, lowest
/// residual), boxed. Shape mismatches between a map's operands are programmer errors and
/// panic (with both shapes); shapes that depend on the caller's data (x, θ, z₀) are
/// checked up front and reported as [`DeqError::Shape`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeqError {
    /// An option has a value that cannot be used (checked before any work).
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Its value (as `f64`).
        value: f64,
        /// Why it is rejected.
        reason: &'static str,
    },

    /// An input (x, θ, z₀) contained NaN or an infinity.
    #[error("non-finite {what}: block {block}, entry ({row}, {col}) is {value}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Which block (0 for a single matrix).
        block: usize,
        /// Row of the first offending entry.
        row: usize,
        /// Column of the first offending entry.
        col: usize,
        /// The offending value.
        value: f64,
    },

    /// An input or a map output has the wrong shape.
    #[error("shape of {what}: expected {expected:?}, got {got:?}")]
    Shape {
        /// What was checked.
        what: &'static str,
        /// The shape needed.
        expected: (usize, usize),
        /// The shape given.
        got: (usize, usize),
    },

    /// The wrong number of parameter blocks.
    #[error("expected {expected} parameter blocks, got {got}")]
    BlockCount {
        /// Blocks the map needs.
        expected: usize,
        /// Blocks given.
        got: usize,
    },

    /// The map returned NaN or an infinity at an iterate (overflow, bad parameters).
    #[error(
        "{method:?}: the map returned a non-finite value at iteration {iteration}: sample {sample}, entry {row} is {value}"
    )]
    MapNonFinite {
        /// The solver that was running.
        method: MethodKind,
        /// Iteration at which it happened.
        iteration: usize,
        /// Sample (column of the batch).
        sample: usize,
        /// Entry within the sample.
        row: usize,
        /// The offending value.
        value: f64,
        /// What the run did until then.
        stats: Box<SolveStats>,
    },

    /// The maximum number of iterations was reached above the tolerance.
    #[error(
        "{method:?} did not converge: residual {residual:e} > tolerance {tolerance:e} after {iterations} iterations"
    )]
    NotConverged {
        /// The solver.
        method: MethodKind,
        /// The lowest residual reached by the worst sample.
        residual: f64,
        /// The tolerance asked.
        tolerance: f64,
        /// Iterations made.
        iterations: usize,
        /// What the run did.
        stats: Box<SolveStats>,
    },

    /// A sample's residual grew beyond `divergence_factor` times its first residual.
    #[error(
        "{method:?} diverged at iteration {iteration}: sample {sample} has residual {residual:e}, {factor}x above its initial {initial:e}"
    )]
    Diverged {
        /// The solver.
        method: MethodKind,
        /// Iteration at which divergence was detected.
        iteration: usize,
        /// Sample (column of the batch).
        sample: usize,
        /// Its residual then.
        residual: f64,
        /// Its first residual.
        initial: f64,
        /// The divergence factor of the options.
        factor: f64,
        /// What the run did.
        stats: Box<SolveStats>,
    },

    /// A sample's lowest residual did not improve for `stall_window` iterations.
    #[error(
        "{method:?} stagnated: sample {sample}'s lowest residual {lowest:e} (tolerance {tolerance:e}) did not improve in {window} iterations (iteration {iteration})"
    )]
    Stagnated {
        /// The solver.
        method: MethodKind,
        /// Sample (column of the batch).
        sample: usize,
        /// Its lowest residual.
        lowest: f64,
        /// The tolerance asked.
        tolerance: f64,
        /// The stall window of the options.
        window: usize,
        /// Iteration at which stagnation was detected.
        iteration: usize,
        /// What the run did.
        stats: Box<SolveStats>,
    },

    /// Every solver of an explicit fallback chain failed; the failures in order.
    #[error("all {} solvers of the fallback chain failed; the last: {}", .failures.len(), .failures.last().map(|e| e.to_string()).unwrap_or_default())]
    FallbackExhausted {
        /// Each attempt's error, in the order tried.
        failures: Vec<DeqError>,
    },

    /// The implicit differentiation layer failed (options, residual check, backward solve).
    #[error(transparent)]
    Implicit(#[from] ImplicitError),

    /// ad-core failed (a sweep, a custom rule).
    #[error(transparent)]
    Ad(#[from] AdError),
}

impl DeqError {
    /// The solver statistics carried by a solver failure (the last attempt's for a
    /// fallback chain), if any.
    pub fn stats(&self) -> Option<&SolveStats> {
        match self {
            DeqError::MapNonFinite { stats, .. }
            | DeqError::NotConverged { stats, .. }
            | DeqError::Diverged { stats, .. }
            | DeqError::Stagnated { stats, .. } => Some(stats),
            DeqError::FallbackExhausted { failures } => failures.last().and_then(|e| e.stats()),
            _ => None,
        }
    }

    /// True for a failure of a forward solver (which a fallback chain may recover from).
    pub fn is_solver_failure(&self) -> bool {
        matches!(
            self,
            DeqError::MapNonFinite { .. }
                | DeqError::NotConverged { .. }
                | DeqError::Diverged { .. }
                | DeqError::Stagnated { .. }
        )
    }
}

/// `InvalidOption` unless `ok`.
pub(crate) fn require(
    ok: bool,
    name: &'static str,
    value: f64,
    reason: &'static str,
) -> Result<(), DeqError> {
    if ok {
        Ok(())
    } else {
        Err(DeqError::InvalidOption {
            name,
            value,
            reason,
        })
    }
}

/// `NonFinite` naming the first NaN or infinite entry of `m`.
pub(crate) fn check_finite(
    what: &'static str,
    block: usize,
    m: &nalgebra::DMatrix<f64>,
) -> Result<(), DeqError> {
    // ad-core's vectorized check first; the position only on failure.
    if ad_core::check_finite(what, m.as_slice()).is_ok() {
        return Ok(());
    }
    if let Some(i) = m.iter().position(|v| !v.is_finite()) {
        return Err(DeqError::NonFinite {
            what,
            block,
            row: i % m.nrows().max(1),
            col: i / m.nrows().max(1),
            value: m.as_slice()[i],
        });
    }
    Ok(())
}

/// `Shape` unless `got == expected`.
pub(crate) fn check_shape(
    what: &'static str,
    expected: (usize, usize),
    got: (usize, usize),
) -> Result<(), DeqError> {
    if expected == got {
        Ok(())
    } else {
        Err(DeqError::Shape {
            what,
            expected,
            got,
        })
    }
}
