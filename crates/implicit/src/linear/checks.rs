//! Checks of user data shared by the iterative and the dense solvers: lengths and
//! symmetry.

use nalgebra::DMatrix;

use crate::linear::error::SolveError;
use crate::linear::method::Method;

/// A [`Dimension`](SolveError::Dimension) error unless `expected == got`.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), SolveError> {
    if expected == got {
        Ok(())
    } else {
        Err(SolveError::Dimension {
            what,
            expected,
            got,
        })
    }
}

/// `max |a_ij|` (entries are finite here), with eight independent running maxima so the
/// loop vectorizes instead of waiting on one `max` chain per entry.
pub(crate) fn max_abs(a: &DMatrix<f64>) -> f64 {
    let chunks = a.as_slice().chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let mut acc = [0.0f64; 8];
    for c in chunks {
        for k in 0..8 {
            acc[k] = acc[k].max(c[k].abs());
        }
    }
    acc.iter().fold(tail, |m, v| m.max(*v))
}

/// The entry of the largest asymmetry `a_ij - a_ji` (`i > j`).
pub(crate) fn worst_asymmetry(a: &DMatrix<f64>) -> (usize, usize, f64) {
    let n = a.nrows();
    let mut worst = (0, 0, 0.0f64);
    for j in 0..n {
        for i in (j + 1)..n {
            let d = a[(i, j)] - a[(j, i)];
            if d.abs() > worst.2.abs() {
                worst = (i, j, d);
            }
        }
    }
    worst
}

/// The largest asymmetry tolerated in a matrix that a method treats as symmetric:
/// `sqrt(eps) * max |a_ij|` (Hessians assembled from products are symmetric only up to
/// rounding).
pub(crate) fn allowed_asymmetry(a: &DMatrix<f64>) -> f64 {
    f64::EPSILON.sqrt() * max_abs(a)
}

/// [`NotSymmetric`](SolveError::NotSymmetric) for `method` if the square matrix `a` is
/// nonsymmetric beyond rounding ([`allowed_asymmetry`]).
pub(crate) fn check_symmetric(a: &DMatrix<f64>, method: Method) -> Result<(), SolveError> {
    let (row, col, difference) = worst_asymmetry(a);
    let allowed = allowed_asymmetry(a);
    if difference.abs() > allowed {
        Err(SolveError::NotSymmetric {
            method,
            row,
            col,
            difference,
            allowed,
        })
    } else {
        Ok(())
    }
}
