//! Regularized least squares by Householder QR: min ‖A x − b‖² + λ‖x‖², for the small
//! systems of Anderson acceleration.
//!
//! The ridge is applied by factoring the stacked matrix [A; √λ I] (never the normal
//! equations, which square the condition number), and never through an SVD (nalgebra's
//! SVD returns wrong singular values for some matrices, nalgebra issue #1172). A pivot of
//! R below `1e-13` times the stacked matrix's norm is reported as [`Singular`], not
//! divided by: Anderson then restarts its history instead of taking a wild step.

use nalgebra::DMatrix;

use super::vecops::dot;

/// The stacked matrix [A; √λ I] is numerically singular (only possible with λ = 0 or a
/// non-finite entry).
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "least-squares matrix is singular: pivot {pivot:e} in column {column} (matrix norm {scale:e})"
)]
pub struct Singular {
    /// The column whose pivot vanished.
    pub column: usize,
    /// |R_jj|.
    pub pivot: f64,
    /// Frobenius norm of the stacked matrix.
    pub scale: f64,
}

/// Relative pivot below which the system counts as singular.
const PIVOT_TOL: f64 = 1e-13;

/// The minimizer of ‖A x − b‖² + λ‖x‖² (A is n x k, b has n entries, λ >= 0).
///
/// ```
/// use deq::solvers::lstsq::regularized_lstsq;
/// use nalgebra::DMatrix;
/// // An exactly consistent system: x = (1, 2).
/// let a = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
/// let x = regularized_lstsq(&a, &[1.0, 2.0, 3.0], 0.0).unwrap();
/// assert!((x[0] - 1.0).abs() < 1e-14 && (x[1] - 2.0).abs() < 1e-14);
/// // Two equal columns: singular without a ridge, fine with one.
/// let s = DMatrix::from_row_slice(2, 2, &[1.0, 1.0, 2.0, 2.0]);
/// assert!(regularized_lstsq(&s, &[1.0, 2.0], 0.0).is_err());
/// assert!(regularized_lstsq(&s, &[1.0, 2.0], 1e-8).is_ok());
/// ```
///
/// # Panics
/// If `b.len() != a.nrows()` or λ is negative (programmer errors).
pub fn regularized_lstsq(a: &DMatrix<f64>, b: &[f64], lambda: f64) -> Result<Vec<f64>, Singular> {
    let (n, k) = a.shape();
    let mut x = vec![0.0; k];
    lstsq_columns(a.as_slice(), n, k, b, lambda, &mut Vec::new(), &mut x)?;
    Ok(x)
}

/// [`regularized_lstsq`] on A given as `k` columns of length `n` (column-major slice),
/// with a reusable scratch buffer and the solution written into `x` (no allocation once
/// `work` has grown).
pub(crate) fn lstsq_columns(
    a: &[f64],
    n: usize,
    k: usize,
    b: &[f64],
    lambda: f64,
    work: &mut Vec<f64>,
    x: &mut [f64],
) -> Result<(), Singular> {
    assert!(
        b.len() == n && a.len() == n * k && x.len() == k,
        "deq: regularized_lstsq: A is {n}x{k} ({} entries) but b has {} entries and x {}",
        a.len(),
        b.len(),
        x.len()
    );
    assert!(lambda >= 0.0, "deq: regularized_lstsq: lambda {lambda} < 0");
    let rows = n + k;
    work.clear();
    work.resize(rows * k + 2 * rows + k, 0.0);
    let (m, rest) = work.split_at_mut(rows * k);
    let (rhs, rest) = rest.split_at_mut(rows);
    let (v, diag) = rest.split_at_mut(rows);
    // Column-major stacked matrix [A; √λ I] and right-hand side [b; 0].
    let sq = lambda.sqrt();
    for j in 0..k {
        m[j * rows..j * rows + n].copy_from_slice(&a[j * n..(j + 1) * n]);
        m[j * rows + n + j] = sq;
    }
    rhs[..n].copy_from_slice(b);
    let scale = dot(m, m).sqrt();
    for j in 0..k {
        let col = &m[j * rows + j..(j + 1) * rows];
        let alpha = dot(col, col).sqrt();
        if alpha.is_nan() || alpha <= PIVOT_TOL * scale {
            return Err(Singular {
                column: j,
                pivot: alpha,
                scale,
            });
        }
        // Householder vector v = col + sign(col0) α e1 reflects col onto −sign(col0) α e1.
        let sign = if col[0] >= 0.0 { 1.0 } else { -1.0 };
        let len = rows - j;
        v[..len].copy_from_slice(col);
        v[0] += sign * alpha;
        let vtv = dot(&v[..len], &v[..len]);
        diag[j] = -sign * alpha;
        let reflect = |x: &mut [f64]| {
            let s = 2.0 * dot(&v[..len], x) / vtv;
            x.iter_mut()
                .zip(&v[..len])
                .for_each(|(xi, vi)| *xi -= s * vi);
        };
        for c in j + 1..k {
            reflect(&mut m[c * rows + j..(c + 1) * rows]);
        }
        reflect(&mut rhs[j..]);
    }
    // Back substitution with R (strict upper part in m, diagonal in diag).
    for i in (0..k).rev() {
        let mut s = rhs[i];
        for c in i + 1..k {
            s -= m[c * rows + i] * x[c];
        }
        x[i] = s / diag[i];
    }
    match x.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(column) => Err(Singular {
            column,
            pivot: f64::NAN,
            scale,
        }),
    }
}
