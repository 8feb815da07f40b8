//! The error type of [`crate::optim`].

use crate::error::RuleError;

/// What can go wrong when an optimizer is built or driven.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// An option is out of its range (for example a NaN or negative learning rate).
    #[error("invalid option {name} = {value}: must be {requirement}")]
    InvalidOption {
        /// The option's name, e.g. "learning_rate".
        name: &'static str,
        /// The value given.
        value: f64,
        /// The valid range, in words.
        requirement: &'static str,
    },
    /// The objective returned a NaN or infinite loss.
    #[error("non-finite loss {value} at step {step}")]
    NonFiniteLoss {
        /// The step (evaluation index, from 0) at which it happened.
        step: usize,
        /// The loss.
        value: f64,
    },
    /// The objective returned a gradient with a NaN or infinite entry.
    #[error("non-finite gradient at step {step}: entry {index} is {value}")]
    NonFiniteGradient {
        /// The step (evaluation index, from 0).
        step: usize,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// The objective returned a gradient whose length differs from the parameters'.
    #[error("gradient of length {got} at step {step}, expected {expected}")]
    GradientLength {
        /// The step (evaluation index, from 0).
        step: usize,
        /// The number of parameters.
        expected: usize,
        /// The gradient's length.
        got: usize,
    },
    /// The objective itself failed (its error is the source).
    #[error("the objective failed at step {step}: {source}")]
    Objective {
        /// The step (evaluation index, from 0).
        step: usize,
        /// The objective's error (e.g. an [`AdError`](crate::AdError); downcast to read it).
        source: RuleError,
    },
}

/// `Ok` if `value` is finite and `lo < value` (or `lo <= value` when `closed`) and
/// `value < hi`; else [`OptimError::InvalidOption`] with `requirement`.
pub(crate) fn check_range(
    name: &'static str,
    value: f64,
    lo: f64,
    closed: bool,
    hi: f64,
    requirement: &'static str,
) -> Result<(), OptimError> {
    let above = if closed { value >= lo } else { value > lo };
    if value.is_finite() && above && value < hi {
        Ok(())
    } else {
        Err(OptimError::InvalidOption {
            name,
            value,
            requirement,
        })
    }
}
