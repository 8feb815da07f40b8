//! The Newton solver's own errors (joined into `ImplicitError` with `#[from]`).

use ad_core::AdError;

use super::NewtonReport;
use crate::linear::SolveError;

/// Why [`minimize_newton`](super::minimize_newton) returned no solution.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NewtonError {
    /// An option has a value that cannot be used.
    #[error("invalid Newton option {name} = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must satisfy.
        reason: &'static str,
    },
    /// An input, a value, a gradient or a Hessian contained NaN or an infinity.
    #[error("non-finite {what} at Newton iteration {iteration}: entry {index} is {value}")]
    NonFinite {
        /// Which quantity.
        what: &'static str,
        /// The iteration (0: the starting point).
        iteration: usize,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The run stopped short of the gradient tolerance: the iteration limit, or no step
    /// that decreases L. The report holds the gradient-norm trace.
    #[error(
        "Newton stopped at ‖∇L‖ = {:e} after {} iterations: {reason}",
        report.grad_norm,
        report.iterations
    )]
    Stalled {
        /// What stopped it.
        reason: &'static str,
        /// What the run did.
        report: Box<NewtonReport>,
    },
    /// A Hessian no shift made positive definite (or another factorization failure).
    #[error(transparent)]
    Linear(#[from] SolveError),
    /// Recording or sweeping the objective failed.
    #[error(transparent)]
    Ad(#[from] AdError),
}

/// `NonFinite` for the first non-finite entry of `xs` (ad-core's vectorized check, with the
/// iteration added).
pub(super) fn check_finite(
    what: &'static str,
    iteration: usize,
    xs: &[f64],
) -> Result<(), NewtonError> {
    ad_core::check_finite(what, xs).map_err(|e| match e {
        AdError::NonFinite { what, index, value } => NewtonError::NonFinite {
            what,
            iteration,
            index,
            value,
        },
        other => NewtonError::Ad(other),
    })
}
