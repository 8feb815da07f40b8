//! What a solve returns: the solution and a report with the numbers behind it.

use serde::{Deserialize, Serialize};

use crate::linear::method::Method;

/// Which residual the report's norms refer to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResidualKind {
    /// `b - A x` (with `A` including any ridge), the residual of the system itself.
    System,
    /// `A^T (b - A x)`, the residual of the normal equations: used by
    /// [`Method::NormalCg`] on a rectangular operator (a least-squares problem, where
    /// `b - A x` does not vanish at the solution).
    NormalEquations,
}

/// The numbers behind a linear solve, successful or not.
///
/// `residual_norm` is always recomputed from scratch at the returned iterate (never the
/// solver's running estimate), so `converged == (residual_norm <= tolerance)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolveReport {
    /// The method that ran ([`Method::Auto`] is resolved to the method it picked).
    pub method: Method,
    /// Iterations performed (Krylov steps; refinement steps for the dense methods).
    pub iterations: usize,
    /// Applications of the operator (`A v` and `A^T u`), including the final residual check.
    /// For the dense methods, the products used to materialize the operator (0 when it was
    /// already a matrix, or when a factorization is reused).
    pub matvecs: usize,
    /// Applications of the preconditioner.
    pub precond_applications: usize,
    /// Norm of the residual at the starting point.
    pub initial_residual_norm: f64,
    /// Norm of the true residual at the returned iterate.
    pub residual_norm: f64,
    /// Norm of the right-hand side (`||b||`, or `||A^T b||` for [`ResidualKind::NormalEquations`]).
    pub rhs_norm: f64,
    /// The residual norm that had to be reached: `max(rtol * rhs_norm, atol)`.
    pub tolerance: f64,
    /// Which residual the norms refer to.
    pub residual_kind: ResidualKind,
    /// Whether `residual_norm <= tolerance`.
    pub converged: bool,
}

impl SolveReport {
    /// The residual relative to the right-hand side (`residual_norm / rhs_norm`, or the
    /// plain residual norm when the right-hand side is zero).
    pub fn relative_residual(&self) -> f64 {
        if self.rhs_norm > 0.0 {
            self.residual_norm / self.rhs_norm
        } else {
            self.residual_norm
        }
    }
}

impl std::fmt::Display for SolveReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.residual_kind {
            ResidualKind::System => "",
            ResidualKind::NormalEquations => " (normal equations)",
        };
        write!(
            f,
            "{}: {} iterations, {} operator products, residual{kind} {:.3e} \
             (tolerance {:.3e}, rhs norm {:.3e}, initial residual {:.3e}), {}",
            self.method,
            self.iterations,
            self.matvecs,
            self.residual_norm,
            self.tolerance,
            self.rhs_norm,
            self.initial_residual_norm,
            if self.converged {
                "converged"
            } else {
                "not converged"
            }
        )
    }
}

/// A converged solve: the solution and its report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Solution {
    /// The solution vector.
    pub x: Vec<f64>,
    /// How it was obtained.
    pub report: SolveReport,
}
