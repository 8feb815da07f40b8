//! Adam (Kingma & Ba, 2015) with bias correction.

use serde::{Deserialize, Serialize};

use super::error::{OptimError, check_range};
use super::{Optimizer, Schedule, check_lengths};

/// Options of [`Adam`]. Defaults: learning rate `1e-3`, `beta1 = 0.9`, `beta2 = 0.999`,
/// `epsilon = 1e-8`, constant schedule.
///
/// ```
/// use ad_core::optim::{Adam, AdamOptions, Schedule};
/// let opts = AdamOptions::default()
///     .learning_rate(0.05)
///     .schedule(Schedule::Cosine { steps: 500, min_factor: 0.0 });
/// let adam = Adam::new(opts).unwrap();
/// assert!(Adam::new(AdamOptions::default().learning_rate(f64::NAN)).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamOptions {
    /// Base step size, finite and positive.
    pub learning_rate: f64,
    /// Decay of the first-moment average, in `[0, 1)`.
    pub beta1: f64,
    /// Decay of the second-moment average, in `[0, 1)`.
    pub beta2: f64,
    /// Added to the root of the second moment, finite and positive.
    pub epsilon: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
}

impl Default for AdamOptions {
    fn default() -> Self {
        AdamOptions {
            learning_rate: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            schedule: Schedule::Constant,
        }
    }
}

impl AdamOptions {
    /// Set the base learning rate.
    pub fn learning_rate(mut self, v: f64) -> Self {
        self.learning_rate = v;
        self
    }
    /// Set `beta1`.
    pub fn beta1(mut self, v: f64) -> Self {
        self.beta1 = v;
        self
    }
    /// Set `beta2`.
    pub fn beta2(mut self, v: f64) -> Self {
        self.beta2 = v;
        self
    }
    /// Set `epsilon`.
    pub fn epsilon(mut self, v: f64) -> Self {
        self.epsilon = v;
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
        check_range("beta1", self.beta1, 0.0, true, 1.0, "in [0, 1)")?;
        check_range("beta2", self.beta2, 0.0, true, 1.0, "in [0, 1)")?;
        check_range(
            "epsilon",
            self.epsilon,
            0.0,
            false,
            f64::INFINITY,
            "finite and positive",
        )?;
        self.schedule.validate()
    }
}

/// Adam's state: the step count and the two moment averages (empty before the first step).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AdamState {
    /// Steps taken.
    pub t: u64,
    /// First-moment average.
    pub m: Vec<f64>,
    /// Second-moment average.
    pub v: Vec<f64>,
}

/// The Adam optimizer: at step `t` (from 1), with gradient `g`,
/// `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`, and
/// `params -= lr_t (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + epsilon)`,
/// `lr_t` the scheduled learning rate. Options and state serialize, so a run can be saved
/// and resumed bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AdamParts")]
pub struct Adam {
    options: AdamOptions,
    state: AdamState,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdamParts {
    options: AdamOptions,
    state: AdamState,
}

impl TryFrom<AdamParts> for Adam {
    type Error = OptimError;
    fn try_from(p: AdamParts) -> Result<Adam, OptimError> {
        Adam::resume(p.options, p.state)
    }
}

impl Adam {
    /// A fresh optimizer; [`OptimError::InvalidOption`] if an option is out of range.
    pub fn new(options: AdamOptions) -> Result<Adam, OptimError> {
        Adam::resume(options, AdamState::default())
    }

    /// Continue from a saved state. The state's moment vectors must have equal lengths,
    /// finite entries (`v >= 0`) and a step count below `u64::MAX`
    /// ([`OptimError::InvalidOption`] naming `state.m`, `state.v` or `state.t` otherwise).
    pub fn resume(options: AdamOptions, state: AdamState) -> Result<Adam, OptimError> {
        options.validate()?;
        if state.m.len() != state.v.len() {
            return Err(OptimError::InvalidOption {
                name: "state.v",
                value: state.v.len() as f64,
                requirement: "as long as state.m",
            });
        }
        if let Some(&m) = state.m.iter().find(|m| !m.is_finite()) {
            return Err(OptimError::InvalidOption {
                name: "state.m",
                value: m,
                requirement: "finite in every entry",
            });
        }
        if let Some(&v) = state.v.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(OptimError::InvalidOption {
                name: "state.v",
                value: v,
                requirement: "finite and >= 0 in every entry",
            });
        }
        if state.t == u64::MAX {
            return Err(OptimError::InvalidOption {
                name: "state.t",
                value: state.t as f64,
                requirement: "below u64::MAX (the step count must be able to grow)",
            });
        }
        Ok(Adam { options, state })
    }

    /// The options.
    pub fn options(&self) -> &AdamOptions {
        &self.options
    }

    /// The state (to save a run).
    pub fn state(&self) -> &AdamState {
        &self.state
    }
}

impl Optimizer for Adam {
    fn step(&mut self, params: &mut [f64], grad: &[f64]) {
        check_lengths("Adam", params, grad, self.state.m.len(), self.state.t);
        if self.state.t == 0 {
            self.state.m = vec![0.0; params.len()];
            self.state.v = vec![0.0; params.len()];
        }
        let lr = self.learning_rate();
        let o = &self.options;
        // Saturating: at u64::MAX the bias corrections are 1 either way.
        self.state.t = self.state.t.saturating_add(1);
        let t = self.state.t as f64;
        let (c1, c2) = (1.0 - o.beta1.powf(t), 1.0 - o.beta2.powf(t));
        let s = &mut self.state;
        for i in 0..params.len() {
            let g = grad[i];
            s.m[i] = o.beta1 * s.m[i] + (1.0 - o.beta1) * g;
            s.v[i] = o.beta2 * s.v[i] + (1.0 - o.beta2) * (g * g);
            params[i] -= lr * (s.m[i] / c1) / ((s.v[i] / c2).sqrt() + o.epsilon);
        }
    }

    fn steps_taken(&self) -> u64 {
        self.state.t
    }

    fn learning_rate(&self) -> f64 {
        self.options.learning_rate * self.options.schedule.factor(self.state.t)
    }

    fn reset(&mut self) {
        self.state = AdamState::default();
    }
}
