//! Matrix-valued variables: one tape node per matrix operation.
//!
//! Network-sized code is written once against [`MatOps`], which three types implement:
//! - `DMatrix<f64>`: plain evaluation (scalar type `f64`);
//! - [`MatVar`]: a matrix recorded on the tape as one node per operation, values and
//!   adjoints stored contiguously (scalar type [`Var`](crate::Var));
//! - [`DualMat<M>`]: forward mode over any `M: MatOps` (scalar type `Dual<M::Scalar>`);
//!   `DualMat<MatVar>` is reverse-over-forward, which gives Hessian-vector products.
//!
//! The JVP rule of every primitive is written once, in [`DualMat`]'s implementation; the VJP
//! rule once, in the tape's reverse sweep.
//!
//! ```
//! use ad_core::{MatOps, Tape};
//! use nalgebra::DMatrix;
//! // loss(W) = sum(tanh(X W)) for a 3x2 batch X and a 2x2 weight W
//! fn loss<M: MatOps>(x: &M, w: &M) -> M::Scalar { x.matmul(w).tanh().sum() }
//! let x = DMatrix::from_row_slice(3, 2, &[1.0, 2.0, 0.5, -1.0, 0.0, 0.3]);
//! let w = DMatrix::from_row_slice(2, 2, &[0.1, -0.2, 0.3, 0.4]);
//! let tape = Tape::new();
//! let (xv, wv) = (tape.constant_mat(x.clone()), tape.mat_var(w.clone()));
//! let g = tape.gradient(loss(&xv, &wv)).unwrap();
//! // compare with the plain-f64 evaluation through a central difference on W[0,1]
//! let h = 1e-6;
//! let (mut wp, mut wm) = (w.clone(), w.clone());
//! wp[(0, 1)] += h; wm[(0, 1)] -= h;
//! let fd = (loss(&x, &wp) - loss(&x, &wm)) / (2.0 * h);
//! assert!((g.wrt_mat(&wv)[(0, 1)] - fd).abs() < 1e-8);
//! ```

mod borrowed;
mod dual;
pub(crate) mod linalg;
mod operators;
pub(crate) mod ops;
mod plain;
mod var;

use std::fmt::Debug;
use std::sync::Arc;

use nalgebra::DMatrix;

use crate::error::AdError;
use crate::real::Real;
use crate::rule::CustomFn;
use crate::unary::ChainArith;

pub use crate::unary::Unary;
pub use dual::DualMat;
pub use var::MatVar;

/// Matrix operations that every matrix mode implements; write network code against this.
///
/// Shapes follow nalgebra (column-major storage, `(rows, cols)`). A shape mismatch is a
/// programmer error and panics with both shapes in the message.
pub trait MatOps: Clone + Debug + Sized {
    /// The scalar type this matrix mode works with (`f64`, `Var`, `Dual<..>`).
    type Scalar: Real;

    /// `(rows, cols)`.
    fn shape(&self) -> (usize, usize);
    /// A constant matrix in the same context as `self` (same tape, zero tangent, and no
    /// gradient: see [`Tape::constant_mat`](crate::Tape::constant_mat)).
    fn constant_like(&self, m: DMatrix<f64>) -> Self;
    /// The primal values.
    fn value(&self) -> DMatrix<f64>;
    /// A constant matrix in the same context as `self`, entered by reference: tape modes
    /// ([`MatVar`], `DualMat<MatVar>`) record the `Arc` without copying the data (see
    /// [`Tape::constant_shared`](crate::Tape::constant_shared)), and the tangent of a
    /// [`DualMat`] constant is a known zero. Plain `DMatrix<f64>` evaluation (and forward
    /// mode on it) has no tape to share with, and copies the data (the default:
    /// `constant_like((**data).clone())`).
    fn shared(&self, data: &Arc<DMatrix<f64>>) -> Self {
        self.constant_like((**data).clone())
    }
    /// A constant `rows x cols` matrix of zeros in the same context as `self`, which
    /// [`MatOps::is_known_zero`] may recognize (the default is
    /// `constant_like(DMatrix::zeros(rows, cols))`).
    fn zeros_like(&self, rows: usize, cols: usize) -> Self {
        self.constant_like(DMatrix::zeros(rows, cols))
    }
    /// True if `self` is known to be an exact zero matrix (made by [`MatOps::zeros_like`]
    /// in a mode that tracks it, like [`MatVar`]); `false` means "not known". Forward mode
    /// ([`DualMat`]) uses it to skip products with zero tangents, e.g. the tangent of a
    /// constant data batch in `X W`, which also skips their reverse-mode rules in
    /// Hessian-vector products. The default is `false`.
    fn is_known_zero(&self) -> bool {
        false
    }

    /// Matrix product `self * b`.
    fn matmul(&self, b: &Self) -> Self;
    /// Transpose.
    fn transpose(&self) -> Self;
    /// Elementwise sum.
    fn add(&self, b: &Self) -> Self;
    /// Elementwise difference.
    fn sub(&self, b: &Self) -> Self;
    /// Elementwise (Hadamard) product.
    fn mul_elem(&self, b: &Self) -> Self;
    /// Elementwise quotient.
    fn div_elem(&self, b: &Self) -> Self;
    /// Add a `1 x cols` row to every row (a bias for a batch stored one sample per row).
    fn add_row(&self, row: &Self) -> Self;
    /// Add a `rows x 1` column to every column.
    fn add_col(&self, col: &Self) -> Self;
    /// Multiply every entry by a scalar of the same mode.
    fn scale(&self, s: Self::Scalar) -> Self;
    /// Multiply every entry by a constant.
    fn scale_f64(&self, c: f64) -> Self;
    /// Add a constant to every entry.
    fn add_f64(&self, c: f64) -> Self;
    /// Apply an elementwise function.
    fn unary(&self, f: Unary) -> Self;
    /// Sum of all entries.
    fn sum(&self) -> Self::Scalar;
    /// Frobenius inner product `sum(self .* b)`.
    fn dot(&self, b: &Self) -> Self::Scalar;
    /// One entry as a scalar.
    fn get(&self, i: usize, j: usize) -> Self::Scalar;
    /// Build a matrix from scalars in column-major order, in the context of `self`.
    #[allow(clippy::wrong_self_convention)] // `self` only names the context (tape), like `constant_like`
    fn from_scalars_like(&self, rows: usize, cols: usize, data: &[Self::Scalar]) -> Self;
    /// The block of `nrows x ncols` entries starting at `(row0, col0)`.
    fn slice(&self, row0: usize, col0: usize, nrows: usize, ncols: usize) -> Self;
    /// Concatenate `parts` side by side (`horizontal`) or stacked.
    fn concat(parts: &[Self], horizontal: bool) -> Self;
    /// The same entries (column-major order) seen as a `rows x cols` matrix.
    fn reshape(&self, rows: usize, cols: usize) -> Self;
    /// Entries `offset .. offset + rows cols` of a column (`n x 1`), as a `rows x cols`
    /// matrix (column-major): `slice(offset, 0, rows * cols, 1).reshape(rows, cols)` in
    /// one step, which tape modes record as one node with one copy (how
    /// [`Mlp::unflatten`](crate::nn::Mlp::unflatten) cuts a flat parameter vector).
    ///
    /// Panics if `self` is not a column or the block does not fit in it.
    ///
    /// ```
    /// use ad_core::MatOps;
    /// use nalgebra::DMatrix;
    /// let flat = DMatrix::from_column_slice(7, 1, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// let b = flat.column_block(1, 2, 3); // entries 1..7 as a 2 x 3 matrix
    /// assert_eq!(b, DMatrix::from_column_slice(2, 3, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    /// ```
    #[track_caller]
    fn column_block(&self, offset: usize, rows: usize, cols: usize) -> Self {
        check_column_block(self.shape(), offset, rows, cols);
        self.slice(offset, 0, rows * cols, 1).reshape(rows, cols)
    }

    /// Apply a custom function ([`CustomFn`]) to the blocks `inputs` (at least one): plain
    /// evaluation gives its value, forward mode applies its JVP rule, tape modes record a
    /// node whose sweeps use its rules. Errors: the function's own failure
    /// ([`AdError::CustomRule`] with rule "eval"), non-finite outputs, and, in second-order
    /// modes, [`AdError::CustomSecondOrder`]. The default (a mode without custom
    /// functions) returns [`AdError::CustomUnsupported`].
    fn custom<F: CustomFn>(f: &F, inputs: &[Self]) -> Result<Vec<Self>, AdError> {
        let _ = inputs;
        Err(AdError::CustomUnsupported {
            name: f.name().to_string(),
            mode: std::any::type_name::<Self>(),
        })
    }
    /// Forward mode over this mode ([`DualMat`]`<Self>`): the outputs of `f` at `re` and
    /// their tangents, given the inputs' tangents `eps`. The default (tape modes, whose
    /// tangent would need second derivatives) accepts only tangents known to be zero.
    #[doc(hidden)]
    #[allow(clippy::type_complexity)]
    fn custom_tangents<F: CustomFn>(
        f: &F,
        re: &[Self],
        eps: &[Self],
    ) -> Result<(Vec<Self>, Vec<Self>), AdError> {
        if let Some(block) = eps.iter().position(|e| !e.is_known_zero()) {
            return Err(AdError::CustomSecondOrder {
                name: f.name().to_string(),
                block,
            });
        }
        let outs = Self::custom(f, re)?;
        let zeros = outs
            .iter()
            .map(|o| o.zeros_like(o.nrows(), o.ncols()))
            .collect();
        Ok((outs, zeros))
    }

    /// Number of rows.
    fn nrows(&self) -> usize {
        self.shape().0
    }
    /// Number of columns.
    fn ncols(&self) -> usize {
        self.shape().1
    }
    /// Negation.
    fn neg(&self) -> Self {
        self.scale_f64(-1.0)
    }
    /// Mean of all entries; panics (with the shape) on a matrix without entries, whose
    /// mean is undefined.
    #[track_caller]
    fn mean(&self) -> Self::Scalar {
        let (r, c) = self.shape();
        assert!(
            r * c > 0,
            "ad-core: mean: a {r}x{c} matrix has no entries, its mean is undefined"
        );
        self.sum() / (r * c) as f64
    }
    /// Squared Frobenius norm.
    fn sq_norm(&self) -> Self::Scalar {
        self.dot(self)
    }
    /// Rows `start..start + n`.
    fn rows(&self, start: usize, n: usize) -> Self {
        self.slice(start, 0, n, self.ncols())
    }
    /// Columns `start..start + n`.
    fn columns(&self, start: usize, n: usize) -> Self {
        self.slice(0, start, self.nrows(), n)
    }
    /// Side-by-side concatenation.
    fn hcat(parts: &[Self]) -> Self {
        Self::concat(parts, true)
    }
    /// Stacked concatenation.
    fn vcat(parts: &[Self]) -> Self {
        Self::concat(parts, false)
    }
    /// Elementwise tanh.
    fn tanh(&self) -> Self {
        self.unary(Unary::Tanh)
    }
    /// Elementwise exp.
    fn exp(&self) -> Self {
        self.unary(Unary::Exp)
    }
    /// Elementwise natural log.
    fn ln(&self) -> Self {
        self.unary(Unary::Ln)
    }
    /// Elementwise sigmoid.
    fn sigmoid(&self) -> Self {
        self.unary(Unary::Sigmoid)
    }
    /// Elementwise softplus.
    fn softplus(&self) -> Self {
        self.unary(Unary::Softplus)
    }
    /// Elementwise ReLU.
    fn relu(&self) -> Self {
        self.unary(Unary::Relu)
    }
    /// Elementwise square.
    fn square(&self) -> Self {
        self.unary(Unary::Square)
    }
    /// Elementwise square root.
    fn sqrt(&self) -> Self {
        self.unary(Unary::Sqrt)
    }
    /// Elementwise absolute value (derivative 0 at 0).
    fn abs(&self) -> Self {
        self.unary(Unary::Abs)
    }
    /// Elementwise sine.
    fn sin(&self) -> Self {
        self.unary(Unary::Sin)
    }
    /// Elementwise cosine.
    fn cos(&self) -> Self {
        self.unary(Unary::Cos)
    }
}

/// Matrices of every mode take part in the derivative table of [`Unary`] elementwise.
impl<M: MatOps> ChainArith for M {
    fn mul(&self, b: &Self) -> Self {
        self.mul_elem(b)
    }
    fn div(&self, b: &Self) -> Self {
        self.div_elem(b)
    }
    fn sub(&self, b: &Self) -> Self {
        MatOps::sub(self, b)
    }
    fn scale(&self, c: f64) -> Self {
        self.scale_f64(c)
    }
    fn apply(&self, f: Unary) -> Self {
        self.unary(f)
    }
    fn constant_map(&self, f: fn(f64) -> f64) -> Self {
        self.constant_like(self.value().map(f))
    }
}

/// Panic unless two shapes are equal (a programmer error).
#[track_caller]
pub(crate) fn assert_same_shape(op: &str, a: (usize, usize), b: (usize, usize)) {
    assert!(
        a == b,
        "ad-core: {op}: shapes differ: {}x{} vs {}x{}",
        a.0,
        a.1,
        b.0,
        b.1
    );
}

/// Panic unless `shape` is a column holding entries `offset .. offset + rows cols`.
#[track_caller]
pub(crate) fn check_column_block(shape: (usize, usize), offset: usize, rows: usize, cols: usize) {
    let len = rows.checked_mul(cols).and_then(|n| n.checked_add(offset));
    assert!(
        shape.1 == 1 && len.is_some_and(|end| end <= shape.0),
        "ad-core: column_block: entries {offset}..{offset}+{rows}x{cols} of a {}x{} matrix \
         (a column is required, and the block must fit)",
        shape.0,
        shape.1
    );
}

/// Check the shapes of a block slice; panics with the shapes on mismatch.
#[track_caller]
pub(crate) fn check_slice(shape: (usize, usize), r0: usize, c0: usize, nr: usize, nc: usize) {
    assert!(
        r0 + nr <= shape.0 && c0 + nc <= shape.1,
        "ad-core: slice: block {nr}x{nc} at ({r0},{c0}) does not fit in a {}x{} matrix",
        shape.0,
        shape.1
    );
}

/// Shape of a concatenation; panics on mismatched parts.
#[track_caller]
pub(crate) fn concat_shape(shapes: &[(usize, usize)], horizontal: bool) -> (usize, usize) {
    assert!(!shapes.is_empty(), "ad-core: concat: no parts");
    let (r0, c0) = shapes[0];
    if horizontal {
        for s in shapes {
            assert!(
                s.0 == r0,
                "ad-core: hcat: row counts differ: {}x{} vs {}x{}",
                r0,
                c0,
                s.0,
                s.1
            );
        }
        (r0, shapes.iter().map(|s| s.1).sum())
    } else {
        for s in shapes {
            assert!(
                s.1 == c0,
                "ad-core: vcat: column counts differ: {}x{} vs {}x{}",
                r0,
                c0,
                s.0,
                s.1
            );
        }
        (shapes.iter().map(|s| s.0).sum(), c0)
    }
}
