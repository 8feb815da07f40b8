//! Preconditioners: cheap approximations `z = M^{-1} r` of the inverse.
//!
//! CG and MINRES need a symmetric positive definite `M` (and report a
//! [`Breakdown`](crate::linear::SolveError::Breakdown) if `r^T M^{-1} r <= 0`); GMRES and
//! BiCGSTAB apply it on the right, `A M^{-1} u = b`, so any nonsingular `M` works and the
//! residual they monitor is the true one. CG on the normal equations applies it to
//! `A^T A`.
//!
//! A preconditioner is borrowed by a solve, never consumed, so the one built for a forward
//! solve can be reused for the backward (adjoint) solve; a dense factorization
//! ([`DenseLu`](crate::linear::DenseLu), [`DenseCholesky`](crate::linear::DenseCholesky))
//! is itself a preconditioner, for a nearby system.

use crate::linear::LinearOperator;
use crate::linear::error::{SolveError, check_finite};
use crate::linear::operator::OperatorError;

/// An approximate inverse: `z = M^{-1} r`.
pub trait Preconditioner {
    /// The dimension `n` of `r` and `z`.
    fn dim(&self) -> usize;

    /// `z = M^{-1} r`.
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<(), OperatorError>;
}

impl<P: Preconditioner + ?Sized> Preconditioner for &P {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<(), OperatorError> {
        (**self).apply(r, z)
    }
}

/// Jacobi (diagonal) preconditioner `M = diag(d)`.
///
/// ```
/// use implicit::linear::{Jacobi, Preconditioner};
/// let m = Jacobi::new(&[2.0, 4.0]).unwrap();
/// let mut z = [0.0; 2];
/// m.apply(&[1.0, 1.0], &mut z).unwrap();
/// assert_eq!(z, [0.5, 0.25]);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Jacobi {
    inv_diag: Vec<f64>,
}

impl Jacobi {
    /// From the diagonal of `A`. Every entry must be finite and nonzero; for CG and MINRES
    /// they must also be positive (otherwise `M` is not positive definite and those
    /// solvers report a breakdown).
    pub fn new(diag: &[f64]) -> Result<Self, SolveError> {
        check_finite("Jacobi diagonal", diag)?;
        if let Some(index) = diag.iter().position(|&d| d == 0.0) {
            return Err(SolveError::Singular {
                what: "Jacobi preconditioner",
                pivot: index,
                value: 0.0,
                threshold: 0.0,
                size: diag.len(),
            });
        }
        Ok(Jacobi {
            inv_diag: diag.iter().map(|d| 1.0 / d).collect(),
        })
    }

    /// From the diagonal of an operator, extracted exactly: read off a matrix, otherwise
    /// computed with `n` products `e_i^T A e_i` (use [`Jacobi::new`] when the diagonal is
    /// known more cheaply).
    pub fn from_operator<A: LinearOperator + ?Sized>(op: &A) -> Result<Self, SolveError> {
        let n = op.ncols();
        if op.nrows() != n {
            return Err(SolveError::Dimension {
                what: "rows of a Jacobi-preconditioned operator (must be square)",
                expected: n,
                got: op.nrows(),
            });
        }
        let diag: Vec<f64> = match op.as_matrix() {
            Some(m) => m.diagonal().iter().copied().collect(),
            None => {
                let mut e = vec![0.0; n];
                let mut col = vec![0.0; n];
                let mut d = vec![0.0; n];
                for i in 0..n {
                    e[i] = 1.0;
                    op.apply(&e, &mut col)?;
                    d[i] = col[i];
                    e[i] = 0.0;
                }
                d
            }
        };
        Jacobi::new(&diag)
    }

    /// The inverse diagonal `1 / d`.
    pub fn inverse_diagonal(&self) -> &[f64] {
        &self.inv_diag
    }
}

impl Preconditioner for Jacobi {
    fn dim(&self) -> usize {
        self.inv_diag.len()
    }
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<(), OperatorError> {
        for ((zi, ri), di) in z.iter_mut().zip(r).zip(&self.inv_diag) {
            *zi = ri * di;
        }
        Ok(())
    }
}

/// A preconditioner from a closure writing `z = M^{-1} r`.
///
/// ```
/// use implicit::linear::{FnPreconditioner, Preconditioner};
/// let m = FnPreconditioner::new(2, |r: &[f64], z: &mut [f64]| {
///     z[0] = r[0] / 3.0;
///     z[1] = r[1];
/// });
/// let mut z = [0.0; 2];
/// m.apply(&[3.0, 1.0], &mut z).unwrap();
/// assert_eq!(z, [1.0, 1.0]);
/// ```
pub struct FnPreconditioner<F> {
    n: usize,
    f: F,
}

impl<F: Fn(&[f64], &mut [f64])> FnPreconditioner<F> {
    /// An `n`-dimensional preconditioner.
    pub fn new(n: usize, f: F) -> Self {
        FnPreconditioner { n, f }
    }
}

impl<F: Fn(&[f64], &mut [f64])> Preconditioner for FnPreconditioner<F> {
    fn dim(&self) -> usize {
        self.n
    }
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<(), OperatorError> {
        (self.f)(r, z);
        Ok(())
    }
}

impl<F> std::fmt::Debug for FnPreconditioner<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnPreconditioner")
            .field("n", &self.n)
            .finish()
    }
}
