//! The error type of the crate, joining the layers' own errors.
//!
//! Each layer owns its errors: the linear solvers return [`SolveError`], the argmin
//! runners [`ArgminError`]; [`ImplicitError`] wraps both (`#[from]`) and adds what the
//! implicit-function-theorem layer itself can find wrong. Nothing below this module
//! imports it back. Failed solves keep their report and last iterate
//! ([`ImplicitError::report`], [`ImplicitError::last_iterate`]), so nothing is lost for
//! diagnostics, and nothing is returned silently.

use ad_core::AdError;

use crate::linear::{OperatorError, SolveError, SolveReport};
use crate::solvers::argmin_rs::ArgminError;
use crate::solvers::newton::NewtonError;

/// Everything that can go wrong in this crate.
///
/// The enum is `#[non_exhaustive]`. It is `Send + Sync + 'static`, so it can travel inside
/// an [`ad_core::RuleError`] when a solve runs inside a custom op's rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImplicitError {
    /// A linear solve or dense factorization failed; the [`SolveError`] carries the numbers
    /// (report and last iterate of an iterative solve, pivot of a factorization).
    #[error(transparent)]
    Linear(#[from] SolveError),

    /// An argmin run ([`crate::solvers::argmin_rs`]) failed or stopped short of its
    /// gradient tolerance; the boxed error carries the numbers.
    #[error(transparent)]
    Argmin(#[from] Box<ArgminError>),

    /// The library's Newton method ([`crate::solvers::newton`]) failed or stopped short of
    /// its gradient tolerance; the error carries the numbers and the trace.
    #[error(transparent)]
    Newton(#[from] NewtonError),

    /// An input or an intermediate result contained NaN or an infinity.
    #[error("non-finite {what}: entry {index} is {value}")]
    NonFinite {
        /// Which input or output ("parameters theta", "cotangent x_bar", ...).
        what: &'static str,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },

    /// A length that depends on user data did not match.
    #[error("dimension mismatch for {what}: expected {expected}, got {got}")]
    Dimension {
        /// What was being matched.
        what: &'static str,
        /// The length needed.
        expected: usize,
        /// The length given.
        got: usize,
    },

    /// An option has a value that cannot be used.
    #[error("invalid option {name} = {value}: {reason}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Its value (as `f64`; 0 or 1 for flags).
        value: f64,
        /// Why it cannot be used.
        reason: &'static str,
    },

    /// The point to differentiate at is not a solution: the optimality residual
    /// ‖F(x*, θ)‖ exceeds the tolerance. Differentiating there would give a wrong (possibly
    /// wrong-signed) derivative, so none is returned. Solve the inner problem more
    /// accurately, or raise `IftOptions::residual_tol` knowingly.
    #[error(
        "not at a solution: optimality residual ||F(x*, theta)|| = {residual:.3e} exceeds the \
         tolerance {tolerance:.3e}; the inner solve did not converge far enough to differentiate"
    )]
    NotAtSolution {
        /// ‖F(x*, θ)‖₂ at the given point.
        residual: f64,
        /// The tolerance asked for.
        tolerance: f64,
    },

    /// The phantom backward pass grew instead of converging: after its damped steps the
    /// relative residual of the system it approximates is larger than before the first
    /// step. The damped map `(1−τ)I + τJ_f` is not contractive along this direction, so the
    /// truncated series is further from the implicit derivative than no steps at all
    /// (Jacobian-free), and growing with every step. Nothing is returned: lower the
    /// damping, use [`Backward::Exact`](crate::Backward::Exact), or
    /// [`Backward::JacobianFree`](crate::Backward::JacobianFree) knowingly.
    #[error(
        "phantom {direction:?} pass diverged: relative residual {final_residual:.3e} after \
         {steps} damped steps (damping {damping}), {initial_residual:.3e} before the first; \
         the damped map is not contractive here"
    )]
    PhantomDiverged {
        /// Reverse (VJP) or forward (JVP) mode.
        direction: crate::Direction,
        /// Steps taken.
        steps: usize,
        /// The damping τ.
        damping: f64,
        /// Relative residual before the first step (that of the Jacobian-free pass).
        initial_residual: f64,
        /// Relative residual after the last step (non-finite when the steps overflowed).
        final_residual: f64,
    },

    /// The user's forward solver reported a failure.
    #[error("forward solver failed: {0}")]
    ForwardSolver(ad_core::RuleError),

    /// An optimizer of `ad_core::optim` was built with invalid options (the outer loop of
    /// `hyper::optimize`), or failed.
    #[error(transparent)]
    Optim(#[from] ad_core::optim::OptimError),

    /// An ad-core driver failed.
    #[error(transparent)]
    Ad(#[from] AdError),

    // ---- Added with parameter blocks and the choice of backward pass (ift, node) ----
    /// A matrix that depends on user code or data has the wrong shape: a residual F(x, θ)
    /// or map f(z, θ) whose shape differs from x, a forward solver's x* of the wrong shape,
    /// a cotangent x̄ unlike x, or a tangent θ̇ unlike its parameter block.
    #[error(
        "shape mismatch for {what}: expected {}x{}, got {}x{}",
        expected.0, expected.1, got.0, got.1
    )]
    Shape {
        /// What was being matched.
        what: &'static str,
        /// The shape needed `(rows, cols)`.
        expected: (usize, usize),
        /// The shape given `(rows, cols)`.
        got: (usize, usize),
    },

    /// A list of parameter blocks (θ, θ̇) has the wrong number of blocks.
    #[error("{what}: expected {expected} parameter blocks, got {got}")]
    BlockCount {
        /// What was being matched.
        what: &'static str,
        /// The number of blocks needed.
        expected: usize,
        /// The number given.
        got: usize,
    },

    /// A matrix input (x*, x̄, a block of θ or θ̇) contained NaN or an infinity.
    #[error("non-finite {what}: block {block}, entry ({row}, {col}) is {value}")]
    NonFiniteEntry {
        /// Which input ("parameters theta", "solution x", "cotangent x_bar", ...).
        what: &'static str,
        /// Which block (0 for x and x̄).
        block: usize,
        /// Row of the first offending entry (column-major search).
        row: usize,
        /// Its column.
        col: usize,
        /// The offending value.
        value: f64,
    },
}

impl From<ArgminError> for ImplicitError {
    fn from(e: ArgminError) -> Self {
        ImplicitError::Argmin(Box::new(e))
    }
}

impl From<OperatorError> for ImplicitError {
    fn from(e: OperatorError) -> Self {
        ImplicitError::Linear(SolveError::Operator(e))
    }
}

impl ImplicitError {
    /// The report of a failed linear solve, if this error comes from one.
    pub fn report(&self) -> Option<&SolveReport> {
        match self {
            ImplicitError::Linear(e) => e.report(),
            _ => None,
        }
    }

    /// The last iterate of a failed solve, if this error comes from one: a linear solve's
    /// last iterate, or the last accepted iterate of an argmin run.
    pub fn last_iterate(&self) -> Option<&[f64]> {
        match self {
            ImplicitError::Linear(e) => e.last_iterate(),
            ImplicitError::Argmin(e) => e.last_iterate(),
            _ => None,
        }
    }

    /// The linear layer's error, if this is one.
    pub fn as_linear(&self) -> Option<&SolveError> {
        match self {
            ImplicitError::Linear(e) => Some(e),
            _ => None,
        }
    }

    /// The argmin runner's error, if this is one.
    pub fn as_argmin(&self) -> Option<&ArgminError> {
        match self {
            ImplicitError::Argmin(e) => Some(e),
            _ => None,
        }
    }
}

/// Reject the first non-finite entry of `xs` (ad-core's vectorized check, with this
/// crate's error).
pub fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), ImplicitError> {
    ad_core::check_finite(what, xs).map_err(|e| match e {
        AdError::NonFinite { what, index, value } => {
            ImplicitError::NonFinite { what, index, value }
        }
        other => ImplicitError::Ad(other),
    })
}
