//! Gradient-based optimizers shared by every crate: [`Adam`] and [`Sgd`] (with momentum),
//! learning-rate [`Schedule`]s, and the [`minimize`] driver with an [`Observer`] callback.
//!
//! Options are typed structs with `Default` and builder setters, checked when an optimizer
//! is built (a NaN or negative learning rate is an [`OptimError::InvalidOption`]). Options
//! and state derive serde's traits, so a run can be saved and resumed. The library prints
//! nothing: whoever wants progress passes an observer.
//!
//! ```
//! use ad_core::optim::{minimize, Adam, AdamOptions, Schedule, StepInfo};
//! // f(p) = (p0 - 1)^2 + 10 (p1 + 2)^2
//! let f = |p: &[f64]| -> Result<(f64, Vec<f64>), ad_core::AdError> {
//!     let (a, b) = (p[0] - 1.0, p[1] + 2.0);
//!     Ok((a * a + 10.0 * b * b, vec![2.0 * a, 20.0 * b]))
//! };
//! let opts = AdamOptions::default()
//!     .learning_rate(0.1)
//!     .schedule(Schedule::Cosine { steps: 2000, min_factor: 0.0 });
//! let mut adam = Adam::new(opts)?;
//! let mut p = [0.0, 0.0];
//! let mut losses = Vec::new();
//! let report = minimize(&mut p, f, &mut adam, 2000, |s: &StepInfo| losses.push(s.loss))?;
//! assert!((p[0] - 1.0).abs() < 1e-6 && (p[1] + 2.0).abs() < 1e-6);
//! assert_eq!(losses.len(), 2001); // every step, and the final point
//! assert!(report.final_loss < 1e-10 && report.final_loss < report.initial_loss);
//! # Ok::<(), ad_core::optim::OptimError>(())
//! ```

mod adam;
mod error;
mod schedule;
mod sgd;

use serde::{Deserialize, Serialize};

pub use adam::{Adam, AdamOptions, AdamState};
pub use error::OptimError;
pub use schedule::Schedule;
pub use sgd::{Sgd, SgdOptions, SgdState};

/// An optimizer that updates parameters in place from their gradient.
pub trait Optimizer {
    /// One update of `params` from the gradient `grad` at `params`.
    ///
    /// Panics (with both lengths) if `grad` and `params` differ in length, or if `params`
    /// has not the length of the previous steps (call [`reset`](Optimizer::reset) first to
    /// optimize something else).
    fn step(&mut self, params: &mut [f64], grad: &[f64]);

    /// Steps taken since creation or the last reset.
    fn steps_taken(&self) -> u64;

    /// The learning rate the next step will use (the schedule applied).
    fn learning_rate(&self) -> f64;

    /// Forget the state (moments, momentum, step count); the options stay.
    fn reset(&mut self);
}

/// Panic unless `grad` fits `params` and an existing state of length `state_len` (used
/// when `t > 0`).
#[track_caller]
fn check_lengths(name: &str, params: &[f64], grad: &[f64], state_len: usize, t: u64) {
    assert!(
        params.len() == grad.len(),
        "{name}: {} parameters but a gradient of length {}",
        params.len(),
        grad.len()
    );
    assert!(
        t == 0 || state_len == params.len(),
        "{name}: {} parameters but the state (after {t} steps) has length {state_len}; reset() to start over",
        params.len()
    );
}

/// What an [`Observer`] sees at each evaluation of the objective.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    /// Evaluation index: `0..steps` before each update, `steps` at the final point.
    pub step: usize,
    /// The loss at the current parameters.
    pub loss: f64,
    /// The Euclidean norm of the gradient there.
    pub grad_norm: f64,
    /// The learning rate of the update that follows (the schedule applied).
    pub learning_rate: f64,
}

/// Receives every [`StepInfo`] of a [`minimize`] run (for logging, plotting, progress
/// bars in applications). Closures `FnMut(&StepInfo)` are observers; `()` ignores
/// everything.
pub trait Observer {
    /// Called once per evaluation, before the update.
    fn observe(&mut self, info: &StepInfo);
}

impl<F: FnMut(&StepInfo)> Observer for F {
    fn observe(&mut self, info: &StepInfo) {
        self(info)
    }
}

impl Observer for () {
    fn observe(&mut self, _: &StepInfo) {}
}

/// The outcome of [`minimize`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinimizeReport {
    /// Updates made.
    pub steps: usize,
    /// Evaluations of the objective (`steps + 1`).
    pub evaluations: usize,
    /// The loss at the starting point.
    pub initial_loss: f64,
    /// The loss at the final parameters.
    pub final_loss: f64,
    /// The gradient norm at the final parameters.
    pub final_grad_norm: f64,
}

/// Run `steps` updates of `optimizer` on `params`, with `objective(params)` returning the
/// loss and its gradient, then evaluate the final point once more. Every evaluation is
/// checked and passed to `observer` (`()` for none).
///
/// Errors (each with the step at which it happened; `params` then holds the point that
/// was evaluated): [`OptimError::Objective`] if the objective fails (its error as the
/// source), [`OptimError::NonFiniteLoss`], [`OptimError::NonFiniteGradient`] (with the
/// entry's index and value), [`OptimError::GradientLength`].
pub fn minimize<F, E, O, Obs>(
    params: &mut [f64],
    mut objective: F,
    optimizer: &mut O,
    steps: usize,
    mut observer: Obs,
) -> Result<MinimizeReport, OptimError>
where
    F: FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    E: std::error::Error + Send + Sync + 'static,
    O: Optimizer + ?Sized,
    Obs: Observer,
{
    let mut last = evaluate(
        &mut objective,
        &mut observer,
        params,
        0,
        optimizer.learning_rate(),
    )?;
    let initial_loss = last.loss;
    for step in 1..=steps {
        optimizer.step(params, &last.grad);
        let lr = optimizer.learning_rate();
        last = evaluate(&mut objective, &mut observer, params, step, lr)?;
    }
    Ok(MinimizeReport {
        steps,
        evaluations: steps + 1,
        initial_loss,
        final_loss: last.loss,
        final_grad_norm: last.grad_norm,
    })
}

/// One checked evaluation.
struct Evaluation {
    loss: f64,
    grad: Vec<f64>,
    grad_norm: f64,
}

/// Evaluate the objective at `params`, check the result, tell the observer.
fn evaluate<F, E, Obs>(
    objective: &mut F,
    observer: &mut Obs,
    params: &[f64],
    step: usize,
    learning_rate: f64,
) -> Result<Evaluation, OptimError>
where
    F: FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    E: std::error::Error + Send + Sync + 'static,
    Obs: Observer,
{
    let (loss, grad) = objective(params).map_err(|e| OptimError::Objective {
        step,
        source: Box::new(e),
    })?;
    if !loss.is_finite() {
        return Err(OptimError::NonFiniteLoss { step, value: loss });
    }
    if grad.len() != params.len() {
        return Err(OptimError::GradientLength {
            step,
            expected: params.len(),
            got: grad.len(),
        });
    }
    if let Some(index) = grad.iter().position(|g| !g.is_finite()) {
        return Err(OptimError::NonFiniteGradient {
            step,
            index,
            value: grad[index],
        });
    }
    let grad_norm = grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    observer.observe(&StepInfo {
        step,
        loss,
        grad_norm,
        learning_rate,
    });
    Ok(Evaluation {
        loss,
        grad,
        grad_norm,
    })
}
