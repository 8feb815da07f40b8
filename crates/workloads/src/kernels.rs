//! The dense products of the hand-written W1/W2 paths, as thin adapters over the
//! library's one set of dense kernels (`implicit::linear::kernels::dense`): `y = A x`
//! (columns four at a time, dispatched at run time) and the weighted Gram matrix
//! `Xᵀ diag(w) X` (lower triangle by blocked dot products, mirrored: exactly symmetric).

use implicit::linear::kernels::dense;
use nalgebra::DMatrix;

/// `y = A x` for `A` (`m x n`, column-major, `n = x.len()`, `m = y.len()`).
///
/// # Panics
/// If `a` holds fewer than `m n` entries.
pub fn gemv(a: &[f64], x: &[f64], y: &mut [f64]) {
    let (m, n) = (y.len(), x.len());
    assert!(
        a.len() >= m * n,
        "gemv: matrix has {} entries, {m} x {n} needed",
        a.len()
    );
    dense::gemv(a, x, y);
}

/// `Xᵀ diag(w) X` (`w = None`: `XᵀX`) for `X` (`n x d`). The transpose `xt` is accepted
/// for the callers' convenience and only its shape is checked.
pub fn gram(xt: &DMatrix<f64>, x: &DMatrix<f64>, w: Option<&[f64]>) -> DMatrix<f64> {
    let (n, d) = x.shape();
    assert_eq!(
        xt.shape(),
        (d, n),
        "gram: X^T is {:?}, X is {:?}",
        xt.shape(),
        x.shape()
    );
    let mut h = DMatrix::zeros(d, d);
    dense::gram(x.as_slice(), n, w, h.as_mut_slice());
    h
}

pub use implicit::check_finite;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemv_and_gram_match_naive_loops() {
        // Sizes with a remainder after the four-column blocks.
        let x = DMatrix::from_fn(7, 6, |i, j| ((i * 6 + j) as f64 * 0.37).sin());
        let v: Vec<f64> = (0..6).map(|j| 0.5 - j as f64 * 0.3).collect();
        let mut y = vec![0.0; 7];
        gemv(x.as_slice(), &v, &mut y);
        for i in 0..7 {
            let want: f64 = (0..6).map(|j| x[(i, j)] * v[j]).sum();
            // Different summation order: a few ulps of the terms' magnitude (<= 6 terms of <= 1.5).
            assert!((y[i] - want).abs() < 1e-14, "{} vs {want}", y[i]);
        }
        let w: Vec<f64> = (0..7).map(|i| 0.1 + i as f64 * 0.05).collect();
        let h = gram(&x.transpose(), &x, Some(&w));
        for a in 0..6 {
            for b in 0..6 {
                let want: f64 = (0..7).map(|i| x[(i, a)] * w[i] * x[(i, b)]).sum();
                assert!((h[(a, b)] - want).abs() < 1e-14, "{} vs {want}", h[(a, b)]);
                assert_eq!(h[(a, b)], h[(b, a)]);
            }
        }
    }
}
