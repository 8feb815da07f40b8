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
//!     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
//!         x.add_f64(-1.0).sq_norm() * 0.5 + t[0].get(0, 0) * x.sq_norm() * 0.5
//!     }
//! }
//! struct Val;
//! impl ValidationLoss for Val {
//!     fn loss<M: MatOps>(&self, x: &M, _t: &M) -> M::Scalar { x.add_f64(-0.5).sq_norm() * 0.5 }
//! }
//! let mut solver = |t: &[f64], _: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
//!     Ok(InnerSolution::new(vec![1.0 / (1.0 + t[0])], 0))
//! };
//! let opts = HyperOptions::default().steps(5).learning_rate(0.1);
//! let trace = optimize(&Inner, &Val, &[0.2], &mut solver, &opts)?;
//! assert_eq!(trace.steps.len(), 5);
//! assert!(trace.steps[4].val_loss < trace.steps[0].val_loss);
//! # Ok::<(), ImplicitError>(())
//! ```

use ad_core::optim::{Adam, AdamOptions, AdamState, Optimizer};
use serde::{Deserialize, Serialize};

use super::hypergrad::{Hypergradient, InnerSolver, ValidationLoss, hypergradient_warm};
use crate::error::{ImplicitError, check_finite};
use crate::ift::IftOptions;
use crate::problem::Objective;

/// Options of [`optimize`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HyperOptions {
    /// Outer steps (hypergradient evaluations). Default `20`.
    pub steps: usize,
    /// The outer optimizer (`ad_core::optim::Adam`); default learning rate `0.05`.
    pub adam: AdamOptions,
    /// Start each inner solve from the previous solution. Default `true`.
    pub warm_start: bool,
    /// Options of the implicit differentiation.
    pub ift: IftOptions,
}

impl Default for HyperOptions {
    fn default() -> Self {
        HyperOptions {
            steps: 20,
            adam: AdamOptions::default().learning_rate(0.05),
            warm_start: true,
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
        self.adam.learning_rate = lr;
        self
    }
    /// Set every option of the outer Adam (schedule, betas, epsilon).
    pub fn adam(mut self, adam: AdamOptions) -> Self {
        self.adam = adam;
        self
    }
    /// Turn warm starts on or off.
    pub fn warm_start(mut self, on: bool) -> Self {
        self.warm_start = on;
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
    /// The outer optimizer's final state (resume with `Adam::resume`).
    pub adam: AdamState,
}

/// Minimize `V(x*(θ), θ)` over θ by Adam on hypergradients, from `theta0`.
///
/// Each step solves the inner problem (warm-started from the previous solution when
/// `options.warm_start`), differentiates implicitly, records a [`TraceStep`] and moves θ.
///
/// The library prints nothing; [`optimize_observed`] reports each step to a callback
/// (the `hyperparam` example draws a progress bar with it).
///
/// # Errors
/// Invalid Adam options ([`ImplicitError::Optim`]), then the first failing
/// hypergradient (non-finite θ, inner solver failure, unconverged inner solution, failed
/// backward solve), as is.
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
    optimize_observed(inner, val, theta0, solver, options, |_: &TraceStep| {})
}

/// [`optimize`], calling `observer` with each [`TraceStep`] as soon as it is recorded.
///
/// # Errors
/// As [`optimize`].
pub fn optimize_observed<O, V, S>(
    inner: &O,
    val: &V,
    theta0: &[f64],
    solver: &mut S,
    options: &HyperOptions,
    mut observer: impl FnMut(&TraceStep),
) -> Result<Trace, ImplicitError>
where
    O: Objective,
    V: ValidationLoss,
    S: InnerSolver + ?Sized,
{
    let mut adam = Adam::new(options.adam)?;
    options.ift.validate()?;
    check_finite("initial hyperparameters theta0", theta0)?;
    let mut theta = theta0.to_vec();
    let mut steps = Vec::with_capacity(options.steps);
    let mut warm: Option<Vec<f64>> = None;
    for step in 0..options.steps {
        let h = hypergradient_warm(inner, val, &theta, solver, warm.as_deref(), &options.ift)?;
        let record = TraceStep::new(step, &theta, &h);
        observer(&record);
        steps.push(record);
        adam.step(&mut theta, &h.grad);
        if options.warm_start {
            warm = Some(h.x);
        }
    }
    Ok(Trace {
        steps,
        theta,
        adam: adam.state().clone(),
    })
}
