//! Stochastic gradient descent with optional (Nesterov) momentum.

use serde::{Deserialize, Serialize};

use super::error::{OptimError, check_range};
use super::{Optimizer, Schedule, check_lengths};

/// Options of [`Sgd`]. Defaults: learning rate `0.01`, no momentum, constant schedule.
///
/// ```
/// use ad_core::optim::{Sgd, SgdOptions};
/// let sgd = Sgd::new(SgdOptions::default().learning_rate(0.1).momentum(0.9)).unwrap();
/// assert!(Sgd::new(SgdOptions::default().learning_rate(-1.0)).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdOptions {
    /// Base step size, finite and positive.
    pub learning_rate: f64,
    /// Momentum coefficient, in `[0, 1)` (`0`: plain gradient descent).
    pub momentum: f64,
    /// Nesterov's variant of momentum.
    pub nesterov: bool,
    /// Learning-rate schedule.
    pub schedule: Schedule,
}

impl Default for SgdOptions {
    fn default() -> Self {
        SgdOptions {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
            schedule: Schedule::Constant,
        }
    }
}

impl SgdOptions {
    /// Set the base learning rate.
    pub fn learning_rate(mut self, v: f64) -> Self {
        self.learning_rate = v;
        self
    }
    /// Set the momentum coefficient.
    pub fn momentum(mut self, v: f64) -> Self {
        self.momentum = v;
        self
    }
    /// Use Nesterov momentum or not.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }
    /// Set the schedule.
    pub fn schedule(mut self, s: Schedule) -> Self {
        self.schedule = s;
        self
    }

    /// [`OptimError::InvalidOption`] for the first option out of its range.
    pub fn validate(&self) -> Result<(), OptimError> {
        check_range(
            "learning_rate",
            self.learning_rate,
            0.0,
            false,
            f64::INFINITY,
            "finite and positive",
        )?;
        check_range("momentum", self.momentum, 0.0, true, 1.0, "in [0, 1)")?;
        self.schedule.validate()
    }
}

/// SGD's state: the step count and the momentum buffer (empty before the first step).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SgdState {
    /// Steps taken.
    pub t: u64,
    /// Momentum buffer.
    pub buf: Vec<f64>,
}

/// Gradient descent with momentum (the heavy-ball form): `buf = mu buf + g` (`buf = g` at
/// the first step), then `params -= lr_t d` with `d = buf`, or `d = g + mu buf` for
/// Nesterov; `lr_t` the scheduled learning rate. With `mu = 0`, `params -= lr_t g`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SgdParts")]
pub struct Sgd {
    options: SgdOptions,
    state: SgdState,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SgdParts {
    options: SgdOptions,
    state: SgdState,
}

impl TryFrom<SgdParts> for Sgd {
    type Error = OptimError;
    fn try_from(p: SgdParts) -> Result<Sgd, OptimError> {
        Sgd::resume(p.options, p.state)
    }
}

impl Sgd {
    /// A fresh optimizer; [`OptimError::InvalidOption`] if an option is out of range.
    pub fn new(options: SgdOptions) -> Result<Sgd, OptimError> {
        Sgd::resume(options, SgdState::default())
    }

    /// Continue from a saved state.
    pub fn resume(options: SgdOptions, state: SgdState) -> Result<Sgd, OptimError> {
        options.validate()?;
        Ok(Sgd { options, state })
    }

    /// The options.
    pub fn options(&self) -> &SgdOptions {
        &self.options
    }

    /// The state (to save a run).
    pub fn state(&self) -> &SgdState {
        &self.state
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, params: &mut [f64], grad: &[f64]) {
        check_lengths("Sgd", params, grad, self.state.buf.len(), self.state.t);
        let lr = self.learning_rate();
        let mu = self.options.momentum;
        let first = self.state.t == 0;
        if first {
            self.state.buf = vec![0.0; params.len()];
        }
        self.state.t += 1;
        let buf = &mut self.state.buf;
        for i in 0..params.len() {
            let g = grad[i];
            buf[i] = if first { g } else { mu * buf[i] + g };
            let d = if self.options.nesterov {
                g + mu * buf[i]
            } else {
                buf[i]
            };
            params[i] -= lr * d;
        }
    }

    fn steps_taken(&self) -> u64 {
        self.state.t
    }

    fn learning_rate(&self) -> f64 {
        self.options.learning_rate * self.options.schedule.factor(self.state.t)
    }

    fn reset(&mut self) {
        self.state = SgdState::default();
    }
}
