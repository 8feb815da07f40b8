//! Regularized least squares by Householder QR: min ‖A x − b‖² + λ‖x‖², for the small
//! systems of Anderson acceleration.
//!
//! The ridge is applied by factoring the stacked matrix [A; √λ I] (never the normal
//! equations, which square the condition number), and never through an SVD (nalgebra's
//! SVD returns wrong singular values for some matrices, nalgebra issue #1172). A pivot of
//! R below `1e-13` times the stacked matrix's norm is reported as [`Singular`], not
//! divided by: Anderson then restarts its history instead of taking a wild step.

use nalgebra::DMatrix;

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
    assert!(
        b.len() == n,
        "deq: regularized_lstsq: A is {n}x{k} but b has {} entries",
        b.len()
    );
    assert!(lambda >= 0.0, "deq: regularized_lstsq: lambda {lambda} < 0");
    let rows = n + k;
    // Column-major stacked matrix [A; √λ I] and right-hand side [b; 0].
    let mut m = vec![0.0; rows * k];
    let sq = lambda.sqrt();
    for j in 0..k {
        m[j * rows..j * rows + n].copy_from_slice(a.column(j).as_slice());
        m[j * rows + n + j] = sq;
    }
    let mut rhs = vec![0.0; rows];
    rhs[..n].copy_from_slice(b);
    let scale = m.iter().map(|v| v * v).sum::<f64>().sqrt();
    let mut v = vec![0.0; rows];
    let mut diag = vec![0.0; k];
    for j in 0..k {
        let col = &m[j * rows + j..(j + 1) * rows];
        let alpha = col.iter().map(|x| x * x).sum::<f64>().sqrt();
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
        let vtv: f64 = v[..len].iter().map(|x| x * x).sum();
        diag[j] = -sign * alpha;
        let reflect = |x: &mut [f64]| {
            let s = 2.0
                * v[..len]
                    .iter()
                    .zip(x.iter())
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
                / vtv;
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
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let mut s = rhs[i];
        for c in i + 1..k {
            s -= m[c * rows + i] * x[c];
        }
        x[i] = s / diag[i];
    }
    if x.iter().all(|v| v.is_finite()) {
        Ok(x)
    } else {
        Err(Singular {
            column: x.iter().position(|v| !v.is_finite()).unwrap_or(0),
            pivot: f64::NAN,
            scale,
        })
    }
}
