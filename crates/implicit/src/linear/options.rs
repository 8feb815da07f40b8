//! Options shared by every linear solver, and the choice of method.

use serde::{Deserialize, Serialize};

use crate::error::ImplicitError;
use crate::linear::operator::Structure;

/// Which linear solver to run.
///
/// | method | system | products needed |
/// |---|---|---|
/// | [`Cg`](Method::Cg) | symmetric positive definite | `A v` |
/// | [`Minres`](Method::Minres) | symmetric, possibly indefinite | `A v` |
/// | [`Gmres`](Method::Gmres) | any square, restarted every [`SolveOptions::restart`] steps | `A v` |
/// | [`Bicgstab`](Method::Bicgstab) | any square, short recurrences | `A v` |
/// | [`NormalCg`](Method::NormalCg) | any (least squares if rectangular); squares the condition number | `A v`, `A^T u` |
/// | [`Lu`](Method::Lu) | small square, dense | the whole matrix |
/// | [`Cholesky`](Method::Cholesky) | small symmetric positive definite, dense | the whole matrix |
/// | [`Auto`](Method::Auto) | picks from the operator's declared [`Structure`] | |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    /// Conjugate gradient (optionally preconditioned) for symmetric positive definite systems.
    Cg,
    /// MINRES (Paige and Saunders) for symmetric indefinite systems.
    Minres,
    /// Restarted GMRES with right preconditioning, for nonsymmetric systems.
    Gmres,
    /// BiCGSTAB (van der Vorst) with right preconditioning, for nonsymmetric systems.
    Bicgstab,
    /// Conjugate gradient on the normal equations `A^T A x = A^T b` (CGLS).
    ///
    /// Works for any operator with a transpose product, including rectangular ones (then it
    /// solves the least-squares problem), but squares the condition number: convergence is
    /// governed by `cond(A)^2`. This is JAXopt's default solver and a known weakness there;
    /// prefer GMRES or BiCGSTAB for square nonsymmetric systems.
    NormalCg,
    /// Dense LU with partial pivoting (nalgebra), for small systems.
    Lu,
    /// Dense Cholesky (nalgebra), for small symmetric positive definite systems.
    Cholesky,
    /// Choose from the declared structure: [`Cg`](Method::Cg) if symmetric positive definite,
    /// [`Minres`](Method::Minres) if symmetric, [`Gmres`](Method::Gmres) otherwise, and
    /// [`NormalCg`](Method::NormalCg) for a rectangular operator.
    Auto,
}

impl Method {
    /// The method [`Auto`](Method::Auto) resolves to for an operator of this structure and
    /// shape; any other method is returned unchanged.
    pub fn resolve(self, structure: Structure, nrows: usize, ncols: usize) -> Method {
        match self {
            Method::Auto if nrows != ncols => Method::NormalCg,
            Method::Auto if structure.is_spd() => Method::Cg,
            Method::Auto if structure.is_symmetric() => Method::Minres,
            Method::Auto => Method::Gmres,
            m => m,
        }
    }

    /// A short human-readable name ("CG", "MINRES", ...).
    pub fn name(self) -> &'static str {
        match self {
            Method::Cg => "CG",
            Method::Minres => "MINRES",
            Method::Gmres => "GMRES",
            Method::Bicgstab => "BiCGSTAB",
            Method::NormalCg => "CG on the normal equations",
            Method::Lu => "dense LU",
            Method::Cholesky => "dense Cholesky",
            Method::Auto => "auto",
        }
    }

    /// Whether this is a dense factorization (materializes the operator).
    pub fn is_dense(self) -> bool {
        matches!(self, Method::Lu | Method::Cholesky)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Stopping rule and damping shared by every linear solver.
///
/// A solve stops when the residual satisfies `||b - A x|| <= max(rtol * ||b||, atol)`
/// (see [`SolveOptions::tolerance`]); the final residual is always recomputed from scratch
/// and the solve is an error if it is still above the tolerance.
///
/// ```
/// use implicit::linear::SolveOptions;
/// let opts = SolveOptions::default().rtol(1e-8).max_iters(200).ridge(1e-6);
/// assert_eq!(opts.tolerance(2.0), 2e-8);
/// ```
///
/// Deserializing rejects unknown fields, so a misspelled option in a saved configuration
/// is an error rather than silently ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolveOptions {
    /// Relative tolerance on the residual norm, relative to `||b||`. Default `1e-10`.
    pub rtol: f64,
    /// Absolute tolerance on the residual norm. Default `0`.
    pub atol: f64,
    /// Maximum number of iterations; `None` means `max(10 n, 100)` for an `n`-column
    /// operator. For GMRES an iteration is one Arnoldi step; for BiCGSTAB one full step
    /// (two products); for the dense methods, one step of iterative refinement.
    pub max_iters: Option<usize>,
    /// Damping: solve `(A + ridge I) x = b` instead of `A x = b` (every method, so all agree
    /// on the solution). Requires a square operator. Default `0`.
    pub ridge: f64,
    /// GMRES restart length (Krylov basis size). Default `30`; must be at least 1 (a value
    /// above `n` acts as `n`: full GMRES).
    pub restart: usize,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            rtol: 1e-10,
            atol: 0.0,
            max_iters: None,
            ridge: 0.0,
            restart: 30,
        }
    }
}

impl SolveOptions {
    /// Set the relative tolerance.
    pub fn rtol(mut self, rtol: f64) -> Self {
        self.rtol = rtol;
        self
    }

    /// Set the absolute tolerance.
    pub fn atol(mut self, atol: f64) -> Self {
        self.atol = atol;
        self
    }

    /// Set the maximum number of iterations.
    pub fn max_iters(mut self, max_iters: usize) -> Self {
        self.max_iters = Some(max_iters);
        self
    }

    /// Set the ridge damping (solve `(A + ridge I) x = b`).
    pub fn ridge(mut self, ridge: f64) -> Self {
        self.ridge = ridge;
        self
    }

    /// Set the GMRES restart length.
    pub fn restart(mut self, restart: usize) -> Self {
        self.restart = restart;
        self
    }

    /// The residual norm a solve must reach: `max(rtol * rhs_norm, atol)`.
    pub fn tolerance(&self, rhs_norm: f64) -> f64 {
        (self.rtol * rhs_norm).max(self.atol)
    }

    /// The iteration limit for an operator with `n` columns.
    pub fn max_iters_for(&self, n: usize) -> usize {
        self.max_iters
            .unwrap_or_else(|| n.saturating_mul(10).max(100))
    }

    /// Check that every option has a usable value.
    pub fn validate(&self) -> Result<(), ImplicitError> {
        let bad = |name: &'static str, value: f64, reason: &'static str| {
            Err(ImplicitError::InvalidOption {
                name,
                value,
                reason,
            })
        };
        if !(self.rtol.is_finite() && self.rtol >= 0.0) {
            return bad("rtol", self.rtol, "must be finite and >= 0");
        }
        if !(self.atol.is_finite() && self.atol >= 0.0) {
            return bad("atol", self.atol, "must be finite and >= 0");
        }
        if !self.ridge.is_finite() {
            return bad("ridge", self.ridge, "must be finite");
        }
        if self.restart == 0 {
            return bad("restart", 0.0, "must be at least 1");
        }
        Ok(())
    }
}
