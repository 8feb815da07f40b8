//! Hypergradient descent: Adam on the validation loss over the hyperparameters, with
//! warm-started inner solves and a serializable trace of every outer step.
//!
//! ```
//! use ad_core::MatOps;
//! use implicit::hyper::{optimize, HyperOptions, InnerSolution, ValidationLoss};
//! use implicit::{ImplicitError, Objective};
//! // x*(θ) = argmin ½(x − 1)² + ½θx² = 1/(1+θ);  V = ½(x − ½)² is smallest at θ = 1.
//! struct Inner;
//! impl Objective for Inner {
//!     fn value<M: MatOps>(&self, x: &M, t: &M) -> M::Scalar {
//!         x.add_f64(-1.0).sq_norm() * 0.5 + t.get(0, 0) * x.sq_norm() * 0.5
//!     }
//! }
//! struct Val;
//! impl ValidationLoss for Val {
//!     fn loss<M: MatOps>(&self, x: &M, _t: &M) -> M::Scalar { x.add_f64(-0.5).sq_norm() * 0.5 }
//! }
//! let mut solver = |t: &[f64], _: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
//!     Ok(InnerSolution::new(vec![1.0 / (1.0 + t[0])], 0))
//! };
//! let opts = HyperOptions::default().steps(5).learning_rate(0.1).progress(false);
//! let trace = optimize(&Inner, &Val, &[0.2], &mut solver, &opts)?;
//! assert_eq!(trace.steps.len(), 5);
//! assert!(trace.steps[4].val_loss < trace.steps[0].val_loss);
//! # Ok::<(), ImplicitError>(())
//! ```

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::hypergrad::{Hypergradient, InnerSolver, ValidationLoss, hypergradient_warm};
use crate::error::{ImplicitError, check_finite};
use crate::ift::IftOptions;
use crate::problem::Objective;

/// The Adam optimizer (Kingma & Ba), state included so a run can be saved and resumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Adam {
    /// Step size.
    pub learning_rate: f64,
    /// Decay of the first-moment average.
    pub beta1: f64,
    /// Decay of the second-moment average.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub epsilon: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    /// Adam with the usual defaults (β₁ = 0.9, β₂ = 0.999, ε = 1e-8).
    pub fn new(learning_rate: f64) -> Self {
        Adam {
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
            m: Vec::new(),
            v: Vec::new(),
            t: 0,
        }
    }

    /// One step: `params −= lr · m̂ / (√v̂ + ε)`.
    pub fn step(&mut self, params: &mut [f64], grad: &[f64]) {
        assert_eq!(
            params.len(),
            grad.len(),
            "Adam: params and grad lengths differ"
        );
        if self.m.len() != params.len() {
            self.m = vec![0.0; params.len()];
            self.v = vec![0.0; params.len()];
        }
        self.t += 1;
        let (c1, c2) = (1.0 - self.beta1.powi(self.t), 1.0 - self.beta2.powi(self.t));
        for i in 0..params.len() {
            self.m[i] = self.beta1 * self.m[i] + (1.0 - self.beta1) * grad[i];
            self.v[i] = self.beta2 * self.v[i] + (1.0 - self.beta2) * grad[i] * grad[i];
            let step = (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + self.epsilon);
            params[i] -= self.learning_rate * step;
        }
    }
}

/// Options of [`optimize`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HyperOptions {
    /// Outer steps (hypergradient evaluations). Default `20`.
    pub steps: usize,
    /// Adam's step size. Default `0.05`.
    pub learning_rate: f64,
    /// Start each inner solve from the previous solution. Default `true`.
    pub warm_start: bool,
    /// Show a progress bar on stderr (only when it is a terminal). Default `true`.
    pub progress: bool,
    /// Options of the implicit differentiation.
    pub ift: IftOptions,
}

impl Default for HyperOptions {
    fn default() -> Self {
        HyperOptions {
            steps: 20,
            learning_rate: 0.05,
            warm_start: true,
            progress: true,
            ift: IftOptions::default(),
        }
    }
}

impl HyperOptions {
    /// Set the number of outer steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }
    /// Set Adam's step size.
    pub fn learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = lr;
        self
    }
    /// Turn warm starts on or off.
    pub fn warm_start(mut self, on: bool) -> Self {
        self.warm_start = on;
        self
    }
    /// Turn the progress bar on or off.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }
    /// Set the implicit-differentiation options.
    pub fn ift(mut self, ift: IftOptions) -> Self {
        self.ift = ift;
        self
    }
}

/// One outer step, recorded before the hyperparameters move.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceStep {
    /// Outer step number, from 0.
    pub step: usize,
    /// The hyperparameters at which this step was evaluated.
    pub theta: Vec<f64>,
    /// Validation loss there.
    pub val_loss: f64,
    /// ‖dV/dθ‖₂.
    pub hypergrad_norm: f64,
    /// Iterations of the inner solve.
    pub inner_iterations: usize,
    /// Iterations of the backward linear solve.
    pub backward_iterations: usize,
    /// Operator products of the backward linear solve.
    pub backward_matvecs: usize,
    /// ‖∇ₓL(x*, θ)‖ at the inner solution.
    pub forward_residual: f64,
}

impl TraceStep {
    pub(crate) fn new(step: usize, theta: &[f64], h: &Hypergradient) -> Self {
        TraceStep {
            step,
            theta: theta.to_vec(),
            val_loss: h.val_loss,
            hypergrad_norm: h.grad.iter().map(|g| g * g).sum::<f64>().sqrt(),
            inner_iterations: h.inner_iterations,
            backward_iterations: h.report.steps,
            backward_matvecs: h.report.linear.as_ref().map_or(0, |l| l.matvecs),
            forward_residual: h.report.forward_residual,
        }
    }
}

/// The record of a hyperparameter optimization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trace {
    /// Every outer step, in order.
    pub steps: Vec<TraceStep>,
    /// The hyperparameters after the last step.
    pub theta: Vec<f64>,
    /// The optimizer's final state.
    pub adam: Adam,
}

fn progress_bar(len: usize, on: bool) -> ProgressBar {
    if !on || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

/// Minimize `V(x*(θ), θ)` over θ by Adam on hypergradients, from `theta0`.
///
/// Each step solves the inner problem (warm-started from the previous solution when
/// `options.warm_start`), differentiates implicitly, records a [`TraceStep`] and moves θ.
///
/// # Errors
/// The first failing hypergradient (non-finite θ, inner solver failure, unconverged
/// inner solution, failed backward solve), as is.
pub fn optimize<O, V, S>(
    inner: &O,
    val: &V,
    theta0: &[f64],
    solver: &mut S,
    options: &HyperOptions,
) -> Result<Trace, ImplicitError>
where
    O: Objective,
    V: ValidationLoss,
    S: InnerSolver + ?Sized,
{
    check_finite("initial hyperparameters theta0", theta0)?;
    let mut theta = theta0.to_vec();
    let mut adam = Adam::new(options.learning_rate);
    let mut steps = Vec::with_capacity(options.steps);
    let mut warm: Option<Vec<f64>> = None;
    let bar = progress_bar(options.steps, options.progress);
    for step in 0..options.steps {
        let h = hypergradient_warm(inner, val, &theta, solver, warm.as_deref(), &options.ift)?;
        let record = TraceStep::new(step, &theta, &h);
        bar.set_message(format!("val loss {:.6}", record.val_loss));
        bar.inc(1);
        steps.push(record);
        adam.step(&mut theta, &h.grad);
        if options.warm_start {
            warm = Some(h.x);
        }
    }
    bar.finish_and_clear();
    Ok(Trace { steps, theta, adam })
}
