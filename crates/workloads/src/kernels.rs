//! Dense products of the hand-written W1/W2 paths: `y = A x` (columns four at a time,
//! dispatched at run time to AVX-512, AVX2 or the baseline) and the weighted Gram matrix
//! `Xᵀ diag(w) X` through nalgebra's matrix product, mirrored to be exactly symmetric.

use implicit::ImplicitError;
use multiversion::multiversion;
use nalgebra::DMatrix;

/// `y = A x` for `A` (`m x n`, column-major, `n = x.len()`, `m = y.len()`).
///
/// # Panics
/// If `a` holds fewer than `m n` entries.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn gemv(a: &[f64], x: &[f64], y: &mut [f64]) {
    let (m, n) = (y.len(), x.len());
    assert!(
        a.len() >= m * n,
        "gemv: matrix has {} entries, {m} x {n} needed",
        a.len()
    );
    y.fill(0.0);
    if m == 0 {
        return;
    }
    let mut quads = a[..m * n].chunks_exact(4 * m);
    let mut j = 0;
    for q in &mut quads {
        let (c0, rest) = q.split_at(m);
        let (c1, rest) = rest.split_at(m);
        let (c2, c3) = rest.split_at(m);
        let (x0, x1, x2, x3) = (x[j], x[j + 1], x[j + 2], x[j + 3]);
        for ((((yi, a0), a1), a2), a3) in y.iter_mut().zip(c0).zip(c1).zip(c2).zip(c3) {
            *yi += (a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3);
        }
        j += 4;
    }
    for c in quads.remainder().chunks_exact(m) {
        let xj = x[j];
        for (yi, aij) in y.iter_mut().zip(c) {
            *yi += aij * xj;
        }
        j += 1;
    }
}

/// `Xᵀ diag(w) X` (`w = None`: `XᵀX`) from `Xᵀ` (`d x n`) and `X` (`n x d`): one matrix
/// product (nalgebra's gemm), the lower triangle mirrored to the upper one.
pub fn gram(xt: &DMatrix<f64>, x: &DMatrix<f64>, w: Option<&[f64]>) -> DMatrix<f64> {
    let mut h = match w {
        None => xt * x,
        Some(w) => {
            let mut scaled = xt.clone();
            for (mut col, wi) in scaled.column_iter_mut().zip(w) {
                col *= *wi;
            }
            &scaled * x
        }
    };
    let d = h.nrows();
    for j in 0..d {
        for i in j + 1..d {
            h[(j, i)] = h[(i, j)];
        }
    }
    h
}

/// Reject the first non-finite entry of `xs`.
pub fn check_finite(what: &'static str, xs: &[f64]) -> Result<(), ImplicitError> {
    match xs.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(ImplicitError::NonFinite {
            what,
            index,
            value: xs[index],
        }),
        None => Ok(()),
    }
}

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
