//! The choice of linear solver.

use serde::{Deserialize, Serialize};

use crate::linear::operator::Structure;

/// Which linear solver to run.
///
/// | method | system | products needed |
/// |---|---|---|
/// | [`Cg`](Method::Cg) | symmetric positive definite | `A v` |
/// | [`Minres`](Method::Minres) | symmetric, possibly indefinite | `A v` |
/// | [`Gmres`](Method::Gmres) | any square, restarted every [`SolveOptions::restart`](crate::linear::SolveOptions::restart) steps | `A v` |
/// | [`Bicgstab`](Method::Bicgstab) | any square, short recurrences | `A v` |
/// | [`Richardson`](Method::Richardson) | I − K with ρ(K) < 1 (a contractive fixed point's adjoint) | `A v` |
/// | [`Anderson`](Method::Anderson) | as Richardson, accelerated (memory [`SolveOptions::memory`](crate::linear::SolveOptions::memory)) | `A v` |
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
    /// Richardson (fixed-point) iteration x ← x + M⁻¹(b − A x): one product per iteration,
    /// no orthogonalization; converges when ρ(I − M⁻¹A) < 1 (for A = I − J_fᵀ, the adjoint
    /// of a contractive fixed point, it is the iteration u ← b + J_fᵀ u).
    Richardson,
    /// Anderson-accelerated Richardson iteration: each step mixes the last
    /// [`SolveOptions::memory`](crate::linear::SolveOptions::memory) steps by a small
    /// regularized least-squares fit (locuslab/deq's and torchdeq's adjoint solver). One
    /// product per iteration, far fewer iterations than Richardson on slowly contracting
    /// systems; converges where Richardson does.
    Anderson,
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
            Method::Richardson => "Richardson",
            Method::Anderson => "Anderson",
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
