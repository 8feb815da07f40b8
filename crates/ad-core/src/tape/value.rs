//! How the tape stores a matrix value: owned, or shared with the caller without a copy.

use std::cell::OnceCell;
use std::ops::Deref;
use std::sync::Arc;

use nalgebra::DMatrix;

/// Matrix adjoints or tangents, one optional slot per tape matrix (None = zero).
pub(crate) type MatSlots = Vec<Option<DMatrix<f64>>>;

/// A matrix value recorded on the tape.
#[derive(Debug)]
pub(crate) enum TapeMat {
    /// Owned by the tape (from its arena, or handed over by the caller).
    Owned(DMatrix<f64>),
    /// Shared with the caller (data entered by reference): never copied, never pooled.
    Shared(Arc<DMatrix<f64>>),
    /// A known-zero constant of this shape, allocated only if a rule reads it (most skip
    /// it: a data matrix's zero tangent in a product).
    Zero(usize, usize, OnceCell<DMatrix<f64>>),
}

impl TapeMat {
    /// `(rows, cols)`, without materializing a known zero (shadows `DMatrix::shape`).
    #[inline]
    pub(crate) fn shape(&self) -> (usize, usize) {
        match self {
            TapeMat::Zero(r, c, _) => (*r, *c),
            m => (**m).shape(),
        }
    }
    /// Bytes of values held (a known zero holds none until read).
    pub(crate) fn held_bytes(&self) -> usize {
        match self {
            TapeMat::Zero(_, _, cell) => cell.get().map_or(0, |m| m.len() * 8),
            m => m.len() * 8,
        }
    }
}

impl Deref for TapeMat {
    type Target = DMatrix<f64>;
    #[inline]
    fn deref(&self) -> &DMatrix<f64> {
        match self {
            TapeMat::Owned(m) => m,
            TapeMat::Shared(m) => m,
            TapeMat::Zero(r, c, cell) => cell.get_or_init(|| DMatrix::zeros(*r, *c)),
        }
    }
}

impl From<DMatrix<f64>> for TapeMat {
    #[inline]
    fn from(m: DMatrix<f64>) -> Self {
        TapeMat::Owned(m)
    }
}
