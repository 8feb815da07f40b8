//! Checks of user-supplied matrices: shapes, block counts and finiteness, each a typed
//! [`ImplicitError`] naming what was wrong and where.

use nalgebra::DMatrix;

use crate::error::ImplicitError;

/// Reject the first non-finite entry (column-major) of block `block` of `what`.
pub(crate) fn finite_matrix(
    what: &'static str,
    block: usize,
    m: &DMatrix<f64>,
) -> Result<(), ImplicitError> {
    // ad-core's vectorized check first (no early exit); the position only on failure.
    if ad_core::check_finite(what, m.as_slice()).is_ok() {
        return Ok(());
    }
    match m.iter().position(|v| !v.is_finite()) {
        Some(k) => Err(ImplicitError::NonFiniteEntry {
            what,
            block,
            row: k % m.nrows(),
            col: k / m.nrows(),
            value: m.as_slice()[k],
        }),
        None => Ok(()),
    }
}

/// Reject the first non-finite entry of any block.
pub(crate) fn finite_blocks(
    what: &'static str,
    blocks: &[DMatrix<f64>],
) -> Result<(), ImplicitError> {
    blocks
        .iter()
        .enumerate()
        .try_for_each(|(k, b)| finite_matrix(what, k, b))
}

/// Reject a shape other than `expected`.
pub(crate) fn shape(
    what: &'static str,
    expected: (usize, usize),
    got: (usize, usize),
) -> Result<(), ImplicitError> {
    if expected == got {
        Ok(())
    } else {
        Err(ImplicitError::Shape {
            what,
            expected,
            got,
        })
    }
}

/// Reject blocks whose number or shapes differ from `expected`.
pub(crate) fn block_shapes(
    what: &'static str,
    expected: &[(usize, usize)],
    got: &[DMatrix<f64>],
) -> Result<(), ImplicitError> {
    if expected.len() != got.len() {
        return Err(ImplicitError::BlockCount {
            what,
            expected: expected.len(),
            got: got.len(),
        });
    }
    expected
        .iter()
        .zip(got)
        .try_for_each(|(e, g)| shape(what, *e, g.shape()))
}

/// Reject a flat vector of the wrong length.
pub(crate) fn length(what: &'static str, expected: usize, got: usize) -> Result<(), ImplicitError> {
    if expected == got {
        Ok(())
    } else {
        Err(ImplicitError::Dimension {
            what,
            expected,
            got,
        })
    }
}

/// A column vector as a matrix.
pub(crate) fn column(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}
