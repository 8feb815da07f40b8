//! Learning-rate schedules: the factor applied to the base learning rate at each step.

use serde::{Deserialize, Serialize};
use std::f64::consts::PI;

use super::error::{OptimError, check_range};

/// How the learning rate changes with the step index `t` (the number of steps already
/// taken, from 0): the rate used at step `t` is `learning_rate * factor(t)`.
///
/// ```
/// use ad_core::optim::Schedule;
/// let step = Schedule::Step { every: 10, factor: 0.5 };
/// assert_eq!((step.factor(9), step.factor(10), step.factor(25)), (1.0, 0.5, 0.25));
/// let cos = Schedule::Cosine { steps: 100, min_factor: 0.1 };
/// assert_eq!((cos.factor(0), cos.factor(100), cos.factor(500)), (1.0, 0.1, 0.1));
/// assert!((cos.factor(50) - 0.55).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub enum Schedule {
    /// Factor 1 at every step.
    #[default]
    Constant,
    /// Multiply by `factor` every `every` steps: `factor^floor(t / every)`.
    Step {
        /// Steps between two decays (at least 1).
        every: usize,
        /// The decay, in `(0, 1]`.
        factor: f64,
    },
    /// Cosine annealing from 1 down to `min_factor` over `steps` steps, then constant:
    /// `min + (1 - min) (1 + cos(pi min(t, steps) / steps)) / 2`.
    Cosine {
        /// Length of the decay (at least 1).
        steps: usize,
        /// The final factor, in `[0, 1]`.
        min_factor: f64,
    },
}

impl Schedule {
    /// The factor at step `t`.
    pub fn factor(&self, t: u64) -> f64 {
        match *self {
            Schedule::Constant => 1.0,
            Schedule::Step { every, factor } => {
                let k = t / every.max(1) as u64;
                factor.powf(k as f64)
            }
            Schedule::Cosine { steps, min_factor } => {
                let steps = steps.max(1) as u64;
                let frac = t.min(steps) as f64 / steps as f64;
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (PI * frac).cos())
            }
        }
    }

    /// [`OptimError::InvalidOption`] for a zero period or length, or a factor out of range.
    pub fn validate(&self) -> Result<(), OptimError> {
        match *self {
            Schedule::Constant => Ok(()),
            Schedule::Step { every, factor } => {
                check_range(
                    "schedule.every",
                    every as f64,
                    1.0,
                    true,
                    f64::MAX,
                    "at least 1",
                )?;
                check_range(
                    "schedule.factor",
                    factor,
                    0.0,
                    false,
                    1.0 + f64::EPSILON,
                    "in (0, 1]",
                )
            }
            Schedule::Cosine { steps, min_factor } => {
                check_range(
                    "schedule.steps",
                    steps as f64,
                    1.0,
                    true,
                    f64::MAX,
                    "at least 1",
                )?;
                check_range(
                    "schedule.min_factor",
                    min_factor,
                    0.0,
                    true,
                    1.0 + f64::EPSILON,
                    "in [0, 1]",
                )
            }
        }
    }
}
