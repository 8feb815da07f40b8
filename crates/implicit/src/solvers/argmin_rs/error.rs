//! What a run returns: a certified solution, or an [`ArgminError`](crate::solvers::argmin_rs::ArgminError) with the numbers.

use std::fmt;

use ad_core::AdError;
use serde::{Deserialize, Serialize};

/// Why an argmin run stopped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Termination {
    /// `‖∇f‖₂ <= grad_tol`: the only successful outcome.
    GradientTolerance,
    /// argmin's iteration limit.
    MaxIters,
    /// The solver gave up, with argmin's message (for L-BFGS: its line search failed).
    SolverExit(String),
    /// Anything else argmin reported (timeout, interrupt, target cost), as its text.
    Other(String),
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Termination::GradientTolerance => f.write_str("gradient tolerance reached"),
            Termination::MaxIters => f.write_str("maximum number of iterations reached"),
            Termination::SolverExit(m) => write!(f, "solver exit: {m}"),
            Termination::Other(m) => f.write_str(m),
        }
    }
}

/// A minimizer found by argmin, with the numbers that certify it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArgminSolution {
    /// The minimizer.
    pub x: Vec<f64>,
    /// f(x).
    pub cost: f64,
    /// ‖∇f(x)‖₂ (at most the tolerance asked for).
    pub grad_norm: f64,
    /// Iterations argmin ran.
    pub iterations: u64,
    /// Always [`Termination::GradientTolerance`](crate::solvers::argmin_rs::Termination::GradientTolerance) for a returned solution.
    pub termination: Termination,
    /// Evaluations.
    pub counts: EvalCounts,
}

/// What can go wrong in an argmin run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgminError {
    /// argmin stopped before `‖∇f‖₂ <= grad_tol`. The last accepted iterate is kept.
    #[error(
        "argmin {solver} stopped before the gradient tolerance: ||grad f|| = {grad_norm:.3e} > \
         {tolerance:.3e} after {iterations} iterations (limit {max_iters}), cost {cost:.6e}; \
         argmin stopped with: {termination}"
    )]
    NotConverged {
        /// "L-BFGS" or "Newton-CG".
        solver: &'static str,
        /// ‖∇f‖₂ at the last accepted iterate.
        grad_norm: f64,
        /// The tolerance asked for.
        tolerance: f64,
        /// Iterations run.
        iterations: u64,
        /// The iteration limit.
        max_iters: u64,
        /// f at the last accepted iterate.
        cost: f64,
        /// argmin's reason for stopping (the iteration limit, a step without progress, a
        /// line search or iteration that broke down, with argmin's message).
        termination: Termination,
        /// The last accepted iterate.
        x: Vec<f64>,
        /// Evaluations.
        counts: Box<EvalCounts>,
    },
    /// An evaluation of the function failed or was not finite.
    #[error("the {during} failed during argmin iteration {iteration}: {source}")]
    Function {
        /// Which evaluation.
        during: Evaluation,
        /// The iteration (0 during initialization and the first iteration).
        iteration: u64,
        /// ad-core's error (a non-finite output is [`AdError::NonFinite`]).
        #[source]
        source: AdError,
    },
    /// argmin asked for an evaluation at a non-finite point before any iterate was
    /// accepted: its own iteration broke down (the function was not called there). After
    /// an accepted iterate, the same breakdown is a [`NotConverged`](Self::NotConverged)
    /// whose termination says so.
    #[error(
        "argmin's iteration broke down: it asked for the {during} at a non-finite point \
         (entry {index} is {value}) during iteration {iteration}"
    )]
    NonFiniteIterate {
        /// Which evaluation was asked for.
        during: Evaluation,
        /// The iteration.
        iteration: u64,
        /// Position of the first non-finite entry.
        index: usize,
        /// Its value.
        value: f64,
    },
    /// An input (the initial guess, the parameters θ) contained NaN or an infinity.
    #[error("non-finite {what}: entry {index} is {value}")]
    NonFinite {
        /// Which input ("initial guess x0", "parameters theta").
        what: &'static str,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },
    /// An option has a value that cannot be used.
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Its value (as `f64`).
        value: f64,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// argmin itself returned an error before any iterate was accepted. (Later errors, such
    /// as a line search rejecting its direction inside Newton-CG, are a
    /// [`NotConverged`](Self::NotConverged) with argmin's message as the termination.)
    #[error("argmin {solver} failed at iteration {iteration}: {message}")]
    Solver {
        /// "L-BFGS" or "Newton-CG".
        solver: &'static str,
        /// The iteration.
        iteration: u64,
        /// argmin's message.
        message: String,
    },
}

impl ArgminError {
    /// The last accepted iterate of a run that did not converge.
    pub fn last_iterate(&self) -> Option<&[f64]> {
        match self {
            ArgminError::NotConverged { x, .. } => Some(x),
            _ => None,
        }
    }

    /// ‖∇f‖₂ reached by a run that did not converge.
    pub fn grad_norm(&self) -> Option<f64> {
        match self {
            ArgminError::NotConverged { grad_norm, .. } => Some(*grad_norm),
            _ => None,
        }
    }
}

/// Reject the first non-finite entry of `xs` (ad-core's vectorized check, with this
/// module's error).
pub(super) fn check_input(what: &'static str, xs: &[f64]) -> Result<(), ArgminError> {
    ad_core::check_finite(what, xs).map_err(|e| match e {
        AdError::NonFinite { what, index, value } => ArgminError::NonFinite { what, index, value },
        other => ArgminError::Function {
            during: Evaluation::Cost,
            iteration: 0,
            source: other,
        },
    })
}

/// Which evaluation of the function failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Evaluation {
    /// The objective value (argmin's `CostFunction`).
    Cost,
    /// The gradient (argmin's `Gradient`).
    Gradient,
    /// A Hessian-vector product of an [`HvpOperator`](crate::solvers::argmin_rs::HvpOperator).
    HessianProduct,
}

impl fmt::Display for Evaluation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Evaluation::Cost => "objective value",
            Evaluation::Gradient => "gradient",
            Evaluation::HessianProduct => "Hessian-vector product",
        })
    }
}

/// How often argmin asked for each quantity, and how much work that took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalCounts {
    /// Calls of `CostFunction::cost`.
    pub cost: u64,
    /// Calls of `Gradient::gradient`.
    pub gradient: u64,
    /// Calls of `Hessian::hessian` (operators built; no work by itself).
    pub hessian: u64,
    /// Hessian-vector products computed (repeats of the last product are cached).
    pub hvp: u64,
    /// Function evaluations actually run by ad-core (a value, or a value and gradient in
    /// one reverse sweep); fewer than `cost + gradient` thanks to a one-point cache.
    pub passes: u64,
}
