//! Linear operators: anything that can compute `y = A x` (and maybe `y = A^T x`).
//!
//! Solvers only ever touch an operator through [`LinearOperator::apply`] and
//! [`LinearOperator::apply_transpose`], so a Hessian or Jacobian is never formed unless a
//! dense method asks for it.
//!
//! ```
//! use implicit::linear::{LinearOperator, FnOperator, Structure, ridge};
//! // The 1-D Laplacian, matrix-free.
//! let lap = FnOperator::new(4, |x: &[f64], y: &mut [f64]| {
//!     for i in 0..x.len() {
//!         let left = if i > 0 { x[i - 1] } else { 0.0 };
//!         let right = if i + 1 < x.len() { x[i + 1] } else { 0.0 };
//!         y[i] = 2.0 * x[i] - left - right;
//!     }
//! })
//! .with_structure(Structure::SPD);
//! let damped = ridge(&lap, 0.5);
//! let mut y = [0.0; 4];
//! damped.apply(&[1.0, 1.0, 1.0, 1.0], &mut y).unwrap();
//! assert_eq!(y, [1.5, 0.5, 0.5, 1.5]);
//! ```

use std::error::Error;

use ad_core::AdError;
use nalgebra::{DMatrix, DVectorView, DVectorViewMut};
use serde::{Deserialize, Serialize};

/// What is known about an operator's structure: flags that are promises by the caller
/// (`false` means "not known", not "known false"). Solvers rely on them only for
/// [`Method::Auto`](crate::linear::Method::Auto) and for a default transpose; they are not
/// checked (CG still detects non-positive curvature).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Structure {
    /// `A = A^T`.
    pub symmetric: bool,
    /// `x^T A x > 0` for all `x != 0`. CG (and `Auto`'s choice of it) also needs
    /// `symmetric`.
    pub positive_definite: bool,
}

impl Structure {
    /// Nothing known.
    pub const GENERAL: Structure = Structure {
        symmetric: false,
        positive_definite: false,
    };
    /// Symmetric, possibly indefinite.
    pub const SYMMETRIC: Structure = Structure {
        symmetric: true,
        positive_definite: false,
    };
    /// Symmetric positive definite.
    pub const SPD: Structure = Structure {
        symmetric: true,
        positive_definite: true,
    };

    /// Whether `A = A^T` is known.
    pub fn is_symmetric(self) -> bool {
        self.symmetric
    }

    /// Whether `A` is known to be symmetric positive definite.
    pub fn is_spd(self) -> bool {
        self.symmetric && self.positive_definite
    }
}

/// Why an operator (or a preconditioner) could not be applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OperatorError {
    /// The method needs `A^T u` but the operator does not provide it.
    #[error("the operator provides no transpose product A^T u")]
    NoTranspose,
    /// A derivative product from ad-core failed (non-finite point, failing custom rule, ...).
    #[error("derivative product failed: {0}")]
    Ad(#[from] AdError),
    /// The operator produced a vector of the wrong length (for example a user function whose
    /// output length changed).
    #[error("operator output has length {got}, expected {expected}")]
    Length {
        /// The length needed.
        expected: usize,
        /// The length produced.
        got: usize,
    },
    /// Any other failure of a user-defined operator.
    #[error("{0}")]
    Custom(Box<dyn Error + Send + Sync + 'static>),
}

/// A linear map `x -> A x` from `R^ncols` to `R^nrows`.
///
/// Implementations write into `y` (of length `nrows`, or `ncols` for the transpose) and
/// may assume the lengths are right: the solvers check user data before any product, and
/// a wrong length from direct calls is a programmer error (implementations panic).
pub trait LinearOperator {
    /// Number of rows of `A` (length of `A x`).
    fn nrows(&self) -> usize;

    /// Number of columns of `A` (length of `x`).
    fn ncols(&self) -> usize;

    /// `y = A x`.
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError>;

    /// `y = A^T x`. The default uses [`apply`](LinearOperator::apply) when the operator
    /// declares itself symmetric and fails with [`OperatorError::NoTranspose`] otherwise.
    fn apply_transpose(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        if self.structure().is_symmetric() {
            self.apply(x, y)
        } else {
            Err(OperatorError::NoTranspose)
        }
    }

    /// What is known about the operator's structure. Default: [`Structure::GENERAL`].
    fn structure(&self) -> Structure {
        Structure::GENERAL
    }

    /// The operator as a dense matrix, when it already is one (lets the dense methods skip
    /// materializing it with `ncols` products). Default: `None`.
    fn as_matrix(&self) -> Option<&DMatrix<f64>> {
        None
    }

    /// Wrap the operator with a declared structure (for example a `DMatrix` known to be
    /// SPD, so that [`Method::Auto`](crate::linear::Method::Auto) picks CG).
    fn with_structure(self, structure: Structure) -> WithStructure<Self>
    where
        Self: Sized,
    {
        WithStructure {
            op: self,
            structure,
        }
    }
}

impl<T: LinearOperator + ?Sized> LinearOperator for &T {
    fn nrows(&self) -> usize {
        (**self).nrows()
    }
    fn ncols(&self) -> usize {
        (**self).ncols()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        (**self).apply(x, y)
    }
    fn apply_transpose(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        (**self).apply_transpose(x, y)
    }
    fn structure(&self) -> Structure {
        (**self).structure()
    }
    fn as_matrix(&self) -> Option<&DMatrix<f64>> {
        (**self).as_matrix()
    }
}

fn assert_len(what: &str, expected: usize, got: usize) {
    assert!(
        expected == got,
        "{what} has length {got}, but the operator needs {expected}"
    );
}

/// A dense matrix is an operator (products by nalgebra's gemv, no allocation). Its
/// structure is [`Structure::SYMMETRIC`] when it is exactly symmetric (checked on each
/// call of [`structure`](LinearOperator::structure), `O(n^2)`), else
/// [`Structure::GENERAL`]; declare SPD with [`LinearOperator::with_structure`].
impl LinearOperator for DMatrix<f64> {
    fn nrows(&self) -> usize {
        self.nrows()
    }
    fn ncols(&self) -> usize {
        self.ncols()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        assert_len("input x", self.ncols(), x.len());
        assert_len("output y", self.nrows(), y.len());
        let xv = DVectorView::from_slice(x, x.len());
        let mut yv = DVectorViewMut::from_slice(y, self.nrows());
        yv.gemv(1.0, self, &xv, 0.0);
        Ok(())
    }
    fn apply_transpose(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        assert_len("input x", self.nrows(), x.len());
        assert_len("output y", self.ncols(), y.len());
        let xv = DVectorView::from_slice(x, x.len());
        let mut yv = DVectorViewMut::from_slice(y, self.ncols());
        yv.gemv_tr(1.0, self, &xv, 0.0);
        Ok(())
    }
    fn structure(&self) -> Structure {
        let n = self.nrows();
        if n != self.ncols() {
            return Structure::GENERAL;
        }
        for j in 0..n {
            for i in (j + 1)..n {
                if self[(i, j)] != self[(j, i)] {
                    return Structure::GENERAL;
                }
            }
        }
        Structure::SYMMETRIC
    }
    fn as_matrix(&self) -> Option<&DMatrix<f64>> {
        Some(self)
    }
}

/// An operator with a declared [`Structure`]; see [`LinearOperator::with_structure`].
#[derive(Clone, Debug)]
pub struct WithStructure<A> {
    op: A,
    structure: Structure,
}

impl<A> WithStructure<A> {
    /// The wrapped operator.
    pub fn inner(&self) -> &A {
        &self.op
    }
}

impl<A: LinearOperator> LinearOperator for WithStructure<A> {
    fn nrows(&self) -> usize {
        self.op.nrows()
    }
    fn ncols(&self) -> usize {
        self.op.ncols()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        self.op.apply(x, y)
    }
    fn apply_transpose(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        match self.op.apply_transpose(x, y) {
            Err(OperatorError::NoTranspose) if self.structure.is_symmetric() => self.op.apply(x, y),
            other => other,
        }
    }
    fn structure(&self) -> Structure {
        self.structure
    }
    fn as_matrix(&self) -> Option<&DMatrix<f64>> {
        self.op.as_matrix()
    }
}

/// The signature of a transpose closure when there is none (the default type parameter of
/// [`FnOperator`]).
pub type NoTransposeFn = fn(&[f64], &mut [f64]);

/// An operator from closures writing `y = A x` (and optionally `y = A^T x`).
///
/// ```
/// use implicit::linear::{FnOperator, LinearOperator};
/// // A = [[1, 2, 3]] as a 1x3 operator with its transpose.
/// let a = FnOperator::rectangular(1, 3, |x: &[f64], y: &mut [f64]| {
///     y[0] = x[0] + 2.0 * x[1] + 3.0 * x[2];
/// })
/// .with_transpose(|u: &[f64], y: &mut [f64]| {
///     y.copy_from_slice(&[u[0], 2.0 * u[0], 3.0 * u[0]]);
/// });
/// let mut y = [0.0; 3];
/// a.apply_transpose(&[2.0], &mut y).unwrap();
/// assert_eq!(y, [2.0, 4.0, 6.0]);
/// ```
///
/// The closures are infallible; for an operator that can fail, implement
/// [`LinearOperator`] directly (three methods).
pub struct FnOperator<F, G = NoTransposeFn> {
    nrows: usize,
    ncols: usize,
    f: F,
    ft: Option<G>,
    structure: Structure,
}

impl<F: Fn(&[f64], &mut [f64])> FnOperator<F> {
    /// A square `n x n` operator with product `f(x, y)` writing `y = A x`.
    pub fn new(n: usize, f: F) -> Self {
        Self::rectangular(n, n, f)
    }

    /// A `nrows x ncols` operator with product `f(x, y)` writing `y = A x`.
    pub fn rectangular(nrows: usize, ncols: usize, f: F) -> Self {
        FnOperator {
            nrows,
            ncols,
            f,
            ft: None,
            structure: Structure::GENERAL,
        }
    }
}

impl<F, G> FnOperator<F, G> {
    /// Provide the transpose product `ft(u, y)` writing `y = A^T u`.
    pub fn with_transpose<H: Fn(&[f64], &mut [f64])>(self, ft: H) -> FnOperator<F, H> {
        FnOperator {
            nrows: self.nrows,
            ncols: self.ncols,
            f: self.f,
            ft: Some(ft),
            structure: self.structure,
        }
    }

    /// Declare the structure (a symmetric declaration also provides the transpose).
    pub fn with_structure(mut self, structure: Structure) -> Self {
        self.structure = structure;
        self
    }
}

impl<F: Fn(&[f64], &mut [f64]), G: Fn(&[f64], &mut [f64])> LinearOperator for FnOperator<F, G> {
    fn nrows(&self) -> usize {
        self.nrows
    }
    fn ncols(&self) -> usize {
        self.ncols
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        assert_len("input x", self.ncols, x.len());
        assert_len("output y", self.nrows, y.len());
        (self.f)(x, y);
        Ok(())
    }
    fn apply_transpose(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        assert_len("input x", self.nrows, x.len());
        assert_len("output y", self.ncols, y.len());
        match &self.ft {
            Some(ft) => {
                ft(x, y);
                Ok(())
            }
            None if self.structure.is_symmetric() => {
                (self.f)(x, y);
                Ok(())
            }
            None => Err(OperatorError::NoTranspose),
        }
    }
    fn structure(&self) -> Structure {
        self.structure
    }
}

impl<F, G> std::fmt::Debug for FnOperator<F, G> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnOperator")
            .field("nrows", &self.nrows)
            .field("ncols", &self.ncols)
            .field("has_transpose", &self.ft.is_some())
            .field("structure", &self.structure)
            .finish()
    }
}

/// The operator `A + ridge I` (square `A`); see [`ridge`].
#[derive(Clone, Debug)]
pub struct Ridge<A> {
    op: A,
    ridge: f64,
}

/// Damp a square operator: `A + ridge I`. Symmetry is kept; positive definiteness is kept
/// for `ridge >= 0`. Panics if `A` is not square (a programmer error).
pub fn ridge<A: LinearOperator>(op: A, ridge: f64) -> Ridge<A> {
    assert!(
        op.nrows() == op.ncols(),
        "ridge needs a square operator, got {}x{}",
        op.nrows(),
        op.ncols()
    );
    Ridge { op, ridge }
}

impl<A> Ridge<A> {
    /// The damping added to the diagonal.
    pub fn ridge(&self) -> f64 {
        self.ridge
    }

    /// The undamped operator.
    pub fn inner(&self) -> &A {
        &self.op
    }
}

impl<A: LinearOperator> LinearOperator for Ridge<A> {
    fn nrows(&self) -> usize {
        self.op.nrows()
    }
    fn ncols(&self) -> usize {
        self.op.ncols()
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        self.op.apply(x, y)?;
        crate::linear::kernels::axpy(self.ridge, x, y);
        Ok(())
    }
    fn apply_transpose(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        self.op.apply_transpose(x, y)?;
        crate::linear::kernels::axpy(self.ridge, x, y);
        Ok(())
    }
    fn structure(&self) -> Structure {
        let s = self.op.structure();
        Structure {
            symmetric: s.symmetric,
            positive_definite: s.positive_definite && self.ridge >= 0.0,
        }
    }
}
