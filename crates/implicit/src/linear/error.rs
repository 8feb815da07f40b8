//! The error type of the linear layer.
//!
//! Every failure of a linear solve or factorization that depends on user data or on
//! convergence is a variant of [`SolveError`], carrying the numbers needed to understand
//! it. Failed iterative solves keep their [`SolveReport`] and the last iterate
//! ([`SolveError::report`], [`SolveError::last_iterate`]). The crate's
//! [`ImplicitError`](crate::ImplicitError) wraps it (`ImplicitError::Linear`); this module
//! imports nothing from the layers above it.

use crate::linear::method::Method;
use crate::linear::operator::OperatorError;
use crate::linear::report::SolveReport;

/// Everything that can go wrong in a linear solve or a dense factorization.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SolveError {
    /// The solver used up its iterations without reaching the tolerance.
    #[error("linear solve did not converge: {report}")]
    NotConverged {
        /// The numbers of the failed solve (`converged == false`).
        report: Box<SolveReport>,
        /// The last iterate, for diagnostics.
        x: Vec<f64>,
    },

    /// The residual stopped decreasing: no iterate of the last `window` iterations improved
    /// on the best residual seen before them. Running on to the iteration limit would only
    /// cost products (restarted GMRES on a skew operator, BiCGSTAB near a breakdown, CG lost
    /// to rounding on an ill-conditioned system).
    #[error(
        "{method} stalled: no residual below the best {best_residual:.3e} in the last {window} \
         iterations; {report}",
        method = report.method
    )]
    Stalled {
        /// The smallest (recurrence) residual norm seen.
        best_residual: f64,
        /// The stall window (iterations without improvement), [`SolveOptions::stall_window`](crate::linear::SolveOptions::stall_window).
        window: usize,
        /// The numbers at the stall (residual recomputed at `x`).
        report: Box<SolveReport>,
        /// The iterate at the stall.
        x: Vec<f64>,
    },

    /// The residual grew beyond [`SolveOptions::divergence`](crate::linear::SolveOptions::divergence)
    /// times the initial one: the iteration diverges (an operator that does not fit the
    /// method, or a preconditioner that makes things worse).
    #[error(
        "{method} diverged: residual {residual:.3e} exceeds {factor:.1e} times the initial \
         residual; {report}",
        method = report.method
    )]
    Diverged {
        /// The (recurrence) residual norm that crossed the limit.
        residual: f64,
        /// The growth factor allowed.
        factor: f64,
        /// The numbers at that point (residual recomputed at `x`).
        report: Box<SolveReport>,
        /// The iterate at that point.
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

    /// A Cholesky factorization met a pivot that is not positive, or not positive beyond
    /// rounding (at or below `n * eps` times the matrix's own diagonal entry there): the
    /// matrix is not positive definite, although Cholesky (which requires it) was asked for.
    #[error(
        "matrix of size {size} is not positive definite: Cholesky pivot {pivot} is {value:.3e} \
         (threshold {threshold:.3e}); use LU for indefinite systems or add a ridge"
    )]
    NotPositiveDefinite {
        /// Index of the offending pivot.
        pivot: usize,
        /// The value under the square root at that pivot.
        value: f64,
        /// Pivots at or below this count as not positive: `n * eps * a_jj`.
        threshold: f64,
        /// Size of the matrix.
        size: usize,
    },

    /// A method that requires a symmetric matrix got one that is known to be nonsymmetric.
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

    /// A linear operator or preconditioner failed to apply.
    #[error("linear operator failed: {0}")]
    Operator(#[from] OperatorError),
}

impl SolveError {
    /// The report of a failed iterative solve, if this error comes from one.
    pub fn report(&self) -> Option<&SolveReport> {
        match self {
            SolveError::NotConverged { report, .. }
            | SolveError::Stalled { report, .. }
            | SolveError::Diverged { report, .. }
            | SolveError::Breakdown { report, .. }
            | SolveError::NegativeCurvature { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The report of a failed iterative solve, mutably (to add the cost of a step that
    /// came before it, such as materializing the operator).
    pub fn report_mut(&mut self) -> Option<&mut SolveReport> {
        match self {
            SolveError::NotConverged { report, .. }
            | SolveError::Stalled { report, .. }
            | SolveError::Diverged { report, .. }
            | SolveError::Breakdown { report, .. }
            | SolveError::NegativeCurvature { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The last iterate of a failed iterative solve, if this error comes from one.
    pub fn last_iterate(&self) -> Option<&[f64]> {
        match self {
            SolveError::NotConverged { x, .. }
            | SolveError::Stalled { x, .. }
            | SolveError::Diverged { x, .. }
            | SolveError::Breakdown { x, .. }
            | SolveError::NegativeCurvature { x, .. } => Some(x),
            _ => None,
        }
    }
}

/// Reject the first non-finite entry of `xs` (ad-core's vectorized check, with this
/// layer's error).
pub(crate) fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), SolveError> {
    ad_core::check_finite(what, xs).map_err(|e| match e {
        ad_core::AdError::NonFinite { what, index, value } => {
            SolveError::NonFinite { what, index, value }
        }
        other => SolveError::Operator(OperatorError::Ad(other)),
    })
}
