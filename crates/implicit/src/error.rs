//! The error type of the crate.
//!
//! Every failure that depends on user data or on convergence is a variant here, carrying
//! the numbers needed to understand it. Failed solves keep their [`SolveReport`] and the
//! last iterate ([`ImplicitError::report`], [`ImplicitError::last_iterate`]), so nothing
//! is lost for diagnostics, and nothing is returned silently.

use ad_core::AdError;

use crate::linear::{Method, OperatorError, SolveReport};

/// Everything that can go wrong in this crate.
///
/// The enum is `#[non_exhaustive]`: the implicit-function-theorem layer adds variants.
/// It is `Send + Sync + 'static`, so it can travel inside an
/// [`ad_core::RuleError`] when a solve runs inside a custom op's rule.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImplicitError {
    /// The solver used up its iterations without reaching the tolerance.
    #[error("linear solve did not converge: {report}")]
    NotConverged {
        /// The numbers of the failed solve (`converged == false`).
        report: Box<SolveReport>,
        /// The last iterate, for diagnostics.
        x: Vec<f64>,
    },

    /// A Krylov recurrence broke down (a division by zero or a non-finite scalar) before
    /// the tolerance was reached.
    #[error("{method} broke down: {reason}; {report}")]
    Breakdown {
        /// The method that broke down.
        method: Method,
        /// What happened.
        reason: &'static str,
        /// The numbers at the breakdown (residual recomputed at `x`).
        report: Box<SolveReport>,
        /// The iterate at the breakdown.
        x: Vec<f64>,
    },

    /// Conjugate gradient met a direction of non-positive curvature `p^T A p <= 0`: the
    /// system is not positive definite, although CG (which requires it) was asked for.
    /// Use MINRES for symmetric indefinite systems, or add a ridge.
    #[error(
        "system is not positive definite: {method} found curvature p^T A p / p^T p = {curvature:.3e} \
         at iteration {iteration}; use MINRES for indefinite systems or add a ridge; {report}"
    )]
    NegativeCurvature {
        /// The method (CG, or CG on the normal equations).
        method: Method,
        /// The iteration at which it happened (0-based).
        iteration: usize,
        /// The Rayleigh quotient `p^T A p / p^T p` of the offending direction.
        curvature: f64,
        /// The numbers at that point (residual recomputed at `x`).
        report: Box<SolveReport>,
        /// The iterate at that point.
        x: Vec<f64>,
    },

    /// A dense factorization found a (numerically) zero pivot.
    #[error(
        "{what}: matrix of size {size} is singular to working precision: pivot {pivot} is \
         {value:.3e} (threshold {threshold:.3e})"
    )]
    Singular {
        /// What was being factored or inverted ("dense LU", "Jacobi preconditioner").
        what: &'static str,
        /// Index of the offending pivot.
        pivot: usize,
        /// Its value.
        value: f64,
        /// Pivots of magnitude at or below this count as zero (`n * eps * max |a_ij|`).
        threshold: f64,
        /// Size of the matrix.
        size: usize,
    },

    /// A Cholesky factorization met a non-positive pivot: the matrix is not positive
    /// definite, although Cholesky (which requires it) was asked for.
    #[error(
        "matrix of size {size} is not positive definite: Cholesky pivot {pivot} is {value:.3e}; \
         use LU for indefinite systems or add a ridge"
    )]
    NotPositiveDefinite {
        /// Index of the offending pivot.
        pivot: usize,
        /// The value under the square root at that pivot.
        value: f64,
        /// Size of the matrix.
        size: usize,
    },

    /// A method that requires a symmetric matrix got a nonsymmetric one.
    #[error(
        "{method} needs a symmetric matrix, but a[{row},{col}] - a[{col},{row}] = {difference:.3e} \
         (allowed {allowed:.3e})"
    )]
    NotSymmetric {
        /// The method.
        method: Method,
        /// Row of the largest asymmetry.
        row: usize,
        /// Column of the largest asymmetry.
        col: usize,
        /// `a[row, col] - a[col, row]`.
        difference: f64,
        /// The largest asymmetry tolerated (`sqrt(eps) * max |a_ij|`).
        allowed: f64,
    },

    /// An input or an operator/preconditioner output contained NaN or an infinity.
    #[error("non-finite {what}: entry {index} is {value}")]
    NonFinite {
        /// Which input or output ("right-hand side b", "initial guess x0", "operator output", ...).
        what: &'static str,
        /// Position of the first offending entry.
        index: usize,
        /// The offending value.
        value: f64,
    },

    /// A length that depends on user data did not match the operator.
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

    /// The user's forward solver reported a failure.
    #[error("forward solver failed: {0}")]
    ForwardSolver(ad_core::RuleError),

    /// A linear operator or preconditioner failed to apply.
    #[error("linear operator failed: {0}")]
    Operator(#[from] OperatorError),

    /// An ad-core driver failed.
    #[error(transparent)]
    Ad(#[from] AdError),

    /// An argmin run ([`crate::argmin_adapter`]) failed or stopped short of its gradient
    /// tolerance; the boxed error carries the numbers.
    #[error(transparent)]
    Argmin(Box<crate::argmin_adapter::ArgminError>),

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

impl ImplicitError {
    /// The report of a failed solve, if this error comes from one.
    pub fn report(&self) -> Option<&SolveReport> {
        match self {
            ImplicitError::NotConverged { report, .. }
            | ImplicitError::Breakdown { report, .. }
            | ImplicitError::NegativeCurvature { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The last iterate of a failed solve, if this error comes from one.
    pub fn last_iterate(&self) -> Option<&[f64]> {
        match self {
            ImplicitError::NotConverged { x, .. }
            | ImplicitError::Breakdown { x, .. }
            | ImplicitError::NegativeCurvature { x, .. } => Some(x),
            _ => None,
        }
    }
}

/// Reject the first non-finite entry of `xs`.
pub(crate) fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), ImplicitError> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(ImplicitError::NonFinite {
            what,
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}
