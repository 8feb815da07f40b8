//! How the tape stores a matrix value: owned, or shared with the caller without a copy.

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
}

impl Deref for TapeMat {
    type Target = DMatrix<f64>;
    #[inline]
    fn deref(&self) -> &DMatrix<f64> {
        match self {
            TapeMat::Owned(m) => m,
            TapeMat::Shared(m) => m,
        }
    }
}

impl From<DMatrix<f64>> for TapeMat {
    #[inline]
    fn from(m: DMatrix<f64>) -> Self {
        TapeMat::Owned(m)
    }
}
