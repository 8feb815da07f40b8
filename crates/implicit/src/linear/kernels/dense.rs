//! Small dense kernels on column-major `f64` slices for the hypergradient workloads (and
//! [`DenseCholesky`](crate::linear::DenseCholesky)): matrix-vector products, the lower
//! triangle of a (weighted) Gram matrix `Xᵀ diag(s) X`, an in-place Cholesky
//! factorization and its triangular solves.
//!
//! A kernel is hand-written here only where it measurably beats nalgebra at the W1/W2
//! sizes (500x50, 200x50, 50x50; `benches/linear.rs`, numbers in docs/benchmarks.md):
//! `gemv` (1.6-2.9x), `gram` (12-15% faster than nalgebra's gemm at 500x50 and 200x50,
//! 4-5x faster than `tr_mul`; the weighted form has no nalgebra counterpart) and the
//! Cholesky factorization (10%, and it reports the failing pivot against a threshold
//! relative to that pivot's diagonal entry, which nalgebra's `Cholesky::new` cannot).
//! `gemv_t` lost to nalgebra's `gemv_tr` and is now a thin wrapper around it.
//!
//! Contiguous-slice loops with explicit 8-lane accumulators, which LLVM vectorizes; each
//! public kernel is compiled by `multiversion` for AVX-512, AVX2 + FMA and the baseline, and
//! the best one for the running CPU is chosen at the first call. There is no FMA contraction
//! and the summation order is fixed in the source, so every path gives bit-identical results.
//!
//! Sizes are checked by slicing (a mismatch panics); the callers check user data first.

use multiversion::multiversion;
use multiversion::target::target_cfg_f;
use nalgebra::{DMatrixView, DVectorView, DVectorViewMut};

/// Lanes of the explicit accumulators.
const L: usize = 8;

/// Sum of the lanes in a fixed order.
#[inline(always)]
fn hsum(a: &[f64; L]) -> f64 {
    ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))
}

/// Eight lanes of `f64`; its operations are straight-line code over the lanes, which the
/// SLP vectorizer turns into one (AVX-512) or two (AVX2) vector instructions.
#[derive(Clone, Copy)]
struct V([f64; L]);

impl V {
    #[inline(always)]
    fn mul(self, o: V) -> V {
        let (a, b) = (self.0, o.0);
        V([
            a[0] * b[0],
            a[1] * b[1],
            a[2] * b[2],
            a[3] * b[3],
            a[4] * b[4],
            a[5] * b[5],
            a[6] * b[6],
            a[7] * b[7],
        ])
    }
    /// `self + a b` (a multiply and an add: no FMA contraction).
    #[inline(always)]
    fn mul_add(self, a: V, b: V) -> V {
        let (c, a, b) = (self.0, a.0, b.0);
        V([
            c[0] + a[0] * b[0],
            c[1] + a[1] * b[1],
            c[2] + a[2] * b[2],
            c[3] + a[3] * b[3],
            c[4] + a[4] * b[4],
            c[5] + a[5] * b[5],
            c[6] + a[6] * b[6],
            c[7] + a[7] * b[7],
        ])
    }
}

/// `out[r][c] = Σ_i a_r[i] (w[i]) b_c[i]` for `R` columns `a_r` and `C` columns `b_c` of the
/// same length (`w` only when `WEIGHTED`).
#[inline(always)]
fn dots<const R: usize, const C: usize, const WEIGHTED: bool>(
    a: [&[f64]; R],
    b: [&[f64]; C],
    w: &[f64],
) -> [[f64; C]; R] {
    let m = a[0].len();
    let full = m - m % L;
    let chunks = full / L;
    // Whole chunks of eight, all of the same length (checked once: no bounds checks below).
    let ac: [&[[f64; L]]; R] = std::array::from_fn(|r| &a[r][..full].as_chunks::<L>().0[..chunks]);
    let bc: [&[[f64; L]]; C] = std::array::from_fn(|c| &b[c][..full].as_chunks::<L>().0[..chunks]);
    let wc: &[[f64; L]] = if WEIGHTED {
        &w[..full].as_chunks::<L>().0[..chunks]
    } else {
        &[]
    };
    let mut acc = [[V([0.0; L]); C]; R];
    for k in 0..chunks {
        let mut av = [V([0.0; L]); R];
        for r in 0..R {
            av[r] = V(ac[r][k]);
            if WEIGHTED {
                av[r] = av[r].mul(V(wc[k]));
            }
        }
        for c in 0..C {
            let bv = V(bc[c][k]);
            for r in 0..R {
                acc[r][c] = acc[r][c].mul_add(av[r], bv);
            }
        }
    }
    let mut out = [[0.0; C]; R];
    for r in 0..R {
        for c in 0..C {
            let mut tail = 0.0;
            for i in full..m {
                let ai = if WEIGHTED { a[r][i] * w[i] } else { a[r][i] };
                tail += ai * b[c][i];
            }
            out[r][c] = hsum(&acc[r][c].0) + tail;
        }
    }
    out
}

/// `y = A x` for `A` (`m x n`, column-major, `n = x.len()`, `m = y.len()`).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn gemv(a: &[f64], x: &[f64], y: &mut [f64]) {
    let m = y.len();
    let n = x.len();
    let a = &a[..m * n];
    y.fill(0.0);
    let mut j = 0;
    while j + 4 <= n {
        let (c0, c1, c2, c3) = (
            &a[j * m..(j + 1) * m],
            &a[(j + 1) * m..(j + 2) * m],
            &a[(j + 2) * m..(j + 3) * m],
            &a[(j + 3) * m..(j + 4) * m],
        );
        let (x0, x1, x2, x3) = (x[j], x[j + 1], x[j + 2], x[j + 3]);
        for ((((yi, a0), a1), a2), a3) in y.iter_mut().zip(c0).zip(c1).zip(c2).zip(c3) {
            *yi += ((a0 * x0 + a1 * x1) + a2 * x2) + a3 * x3;
        }
        j += 4;
    }
    while j < n {
        let xj = x[j];
        for (yi, aij) in y.iter_mut().zip(&a[j * m..(j + 1) * m]) {
            *yi += aij * xj;
        }
        j += 1;
    }
}

/// `y = Aᵀ x` for `A` (`m x n`, column-major, `m = x.len()`, `n = y.len()`): nalgebra's
/// `gemv_tr`, which beat a hand-written version at every W1/W2 size (10.1 against 12.2 us
/// at 500x50, 4.8 against 5.3 us at 200x50, 1.35 against 1.74 us at 50x50; see
/// docs/benchmarks.md), so there is no kernel of ours here.
pub fn gemv_t(a: &[f64], x: &[f64], y: &mut [f64]) {
    let (m, n) = (x.len(), y.len());
    let a = DMatrixView::from_slice(&a[..m * n], m, n);
    let x = DVectorView::from_slice(x, m);
    let mut y = DVectorViewMut::from_slice(y, n);
    y.gemv_tr(1.0, &a, &x, 0.0);
}

/// `H = Xᵀ diag(w) X` (`w = None`: `XᵀX`) for `X` (`m x d`, column-major), `H` (`d x d`,
/// column-major): the lower triangle by blocked dot products, mirrored to the upper one
/// (exactly symmetric).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn gram(x: &[f64], m: usize, w: Option<&[f64]>, h: &mut [f64]) {
    // 4 x 4 blocks keep 16 accumulators of 8 lanes in the 32 AVX-512 registers; with 16
    // registers (AVX2, baseline) 2 x 2 blocks avoid spills.
    if target_cfg_f!(target_feature = "avx512f") {
        gram_blocked::<4>(x, m, w, h);
    } else {
        gram_blocked::<2>(x, m, w, h);
    }
}

#[inline(always)]
fn gram_blocked<const B: usize>(x: &[f64], m: usize, w: Option<&[f64]>, h: &mut [f64]) {
    match w {
        Some(w) => gram_impl::<B, true>(x, m, &w[..m], h),
        None => gram_impl::<B, false>(x, m, &[], h),
    }
}

#[inline(always)]
fn gram_impl<const B: usize, const WEIGHTED: bool>(x: &[f64], m: usize, w: &[f64], h: &mut [f64]) {
    let d = x.len().checked_div(m).unwrap_or(0);
    let x = &x[..m * d];
    let h = &mut h[..d * d];
    let col = |j: usize| &x[j * m..(j + 1) * m];
    // Lower triangle, block row by block row (a full diagonal block also fills part of the
    // upper triangle; the mirror below overwrites it).
    let mut j0 = 0;
    while j0 < d {
        let rows = B.min(d - j0);
        let mut k0 = 0;
        while k0 <= j0 {
            let cols = B.min(d - k0);
            if rows == B && cols == B {
                let out = dots::<B, B, WEIGHTED>(
                    std::array::from_fn(|r| col(j0 + r)),
                    std::array::from_fn(|c| col(k0 + c)),
                    w,
                );
                for r in 0..B {
                    for c in 0..B {
                        h[(k0 + c) * d + j0 + r] = out[r][c];
                    }
                }
            } else if cols == B {
                // A partial block row against a full block column: one row at a time.
                for r in 0..rows {
                    let out = dots::<B, 1, WEIGHTED>(
                        std::array::from_fn(|c| col(k0 + c)),
                        [col(j0 + r)],
                        w,
                    );
                    for c in 0..B {
                        h[(k0 + c) * d + j0 + r] = out[c][0];
                    }
                }
            } else {
                for r in 0..rows {
                    for c in 0..cols.min(j0 + r + 1 - k0) {
                        h[(k0 + c) * d + j0 + r] =
                            dots::<1, 1, WEIGHTED>([col(j0 + r)], [col(k0 + c)], w)[0][0];
                    }
                }
            }
            k0 += B;
        }
        j0 += B;
    }
    for j in 0..d {
        for k in (j + 1)..d {
            h[k * d + j] = h[j * d + k];
        }
    }
}

/// In-place Cholesky factorization `A = L Lᵀ` of the lower triangle of `a` (`n x n`,
/// column-major; the strict upper triangle is neither read nor written), left-looking with
/// four columns per update. A pivot `d_j` counts as not positive when it is at or below
/// `rel_tol * a_jj` (or NaN), `a_jj` being the matrix's own diagonal entry: the threshold
/// scales with each row, so a diagonal spanning many orders of magnitude is no reason to
/// reject a well-conditioned matrix. Returns the first such pivot `(j, d_j, threshold)` as
/// the error.
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn cholesky_in_place(a: &mut [f64], n: usize, rel_tol: f64) -> Result<(), (usize, f64, f64)> {
    let a = &mut a[..n * n];
    for j in 0..n {
        let (left, right) = a.split_at_mut(j * n);
        let colj = &mut right[j..n];
        let threshold = rel_tol * colj[0];
        let mut k = 0;
        while k + 4 <= j {
            let (c0, c1, c2, c3) = (
                &left[k * n + j..(k + 1) * n],
                &left[(k + 1) * n + j..(k + 2) * n],
                &left[(k + 2) * n + j..(k + 3) * n],
                &left[(k + 3) * n + j..(k + 4) * n],
            );
            let (f0, f1, f2, f3) = (c0[0], c1[0], c2[0], c3[0]);
            for ((((v, a0), a1), a2), a3) in colj.iter_mut().zip(c0).zip(c1).zip(c2).zip(c3) {
                *v -= ((a0 * f0 + a1 * f1) + a2 * f2) + a3 * f3;
            }
            k += 4;
        }
        while k < j {
            let c = &left[k * n + j..(k + 1) * n];
            let f = c[0];
            for (v, ak) in colj.iter_mut().zip(c) {
                *v -= ak * f;
            }
            k += 1;
        }
        let pivot = colj[0];
        if !matches!(
            pivot.partial_cmp(&threshold),
            Some(std::cmp::Ordering::Greater)
        ) {
            return Err((j, pivot, threshold));
        }
        let ljj = pivot.sqrt();
        colj[0] = ljj;
        for v in &mut colj[1..] {
            *v /= ljj;
        }
    }
    Ok(())
}

/// `r <- (L Lᵀ)⁻¹ r` with the factor of [`cholesky_in_place`] (lower triangle of `l`).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx2+fma", "x86_64+avx2+fma"))]
pub fn cholesky_solve_in_place(l: &[f64], r: &mut [f64]) {
    let n = r.len();
    let l = &l[..n * n];
    // L y = r: column-oriented forward substitution.
    for j in 0..n {
        let c = &l[j * n + j..(j + 1) * n];
        let yj = r[j] / c[0];
        r[j] = yj;
        for (ri, lij) in r[j + 1..].iter_mut().zip(&c[1..]) {
            *ri -= lij * yj;
        }
    }
    // Lᵀ x = y: one dot product per column, last to first.
    for j in (0..n).rev() {
        let c = &l[j * n + j..(j + 1) * n];
        let s = dots::<1, 1, false>([&c[1..]], [&r[j + 1..]], &[])[0][0];
        r[j] = (r[j] - s) / c[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mat(m: usize, n: usize, seed: f64) -> Vec<f64> {
        (0..m * n)
            .map(|k| (seed * (k as f64 + 1.0)).sin() + 0.1 * ((k % 7) as f64))
            .collect()
    }

    #[test]
    fn products_match_naive() {
        for &(m, n) in &[(1, 1), (3, 5), (17, 9), (64, 50), (500, 50), (13, 4)] {
            let a = mat(m, n, 0.37);
            let x: Vec<f64> = (0..n).map(|j| (j as f64 * 0.3).cos()).collect();
            let v: Vec<f64> = (0..m).map(|i| (i as f64 * 0.7).sin()).collect();
            let mut y = vec![0.0; m];
            gemv(&a, &x, &mut y);
            for i in 0..m {
                let e: f64 = (0..n).map(|j| a[j * m + i] * x[j]).sum();
                assert!((y[i] - e).abs() <= 1e-12 * (1.0 + e.abs()), "gemv {m}x{n}");
            }
            let mut z = vec![0.0; n];
            gemv_t(&a, &v, &mut z);
            for j in 0..n {
                let e: f64 = (0..m).map(|i| a[j * m + i] * v[i]).sum();
                assert!(
                    (z[j] - e).abs() <= 1e-12 * (1.0 + e.abs()),
                    "gemv_t {m}x{n}"
                );
            }
            let w: Vec<f64> = (0..m).map(|i| 0.5 + (i as f64).sin().abs()).collect();
            for weights in [None, Some(&w[..])] {
                let mut h = vec![f64::NAN; n * n];
                gram(&a, m, weights, &mut h);
                for j in 0..n {
                    for k in 0..n {
                        let e: f64 = (0..m)
                            .map(|i| a[j * m + i] * weights.map_or(1.0, |w| w[i]) * a[k * m + i])
                            .sum();
                        let got = h[k * n + j];
                        assert!((got - e).abs() <= 1e-12 * (1.0 + e.abs()), "gram {m}x{n}");
                        assert_eq!(got, h[j * n + k]);
                    }
                }
            }
        }
    }

    #[test]
    fn cholesky_solves() {
        for &n in &[1usize, 2, 5, 8, 13, 50] {
            let x = mat(2 * n + 3, n, 0.91);
            let mut a = vec![0.0; n * n];
            gram(&x, 2 * n + 3, None, &mut a);
            for j in 0..n {
                a[j * n + j] += 0.5;
            }
            let mut l = a.clone();
            cholesky_in_place(&mut l, n, 1e-12).unwrap();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 + 1.0).sqrt()).collect();
            let mut s = b.clone();
            cholesky_solve_in_place(&l, &mut s);
            let mut back = vec![0.0; n];
            gemv(&a, &s, &mut back);
            for i in 0..n {
                assert!(
                    (back[i] - b[i]).abs() <= 1e-10 * (1.0 + b[i].abs()),
                    "n = {n}"
                );
            }
        }
        // Indefinite: the second pivot is 1 - 2^2 = -3.
        let mut bad = vec![1.0, 2.0, 2.0, 1.0];
        assert_eq!(
            cholesky_in_place(&mut bad, 2, 0.0).unwrap_err(),
            (1, -3.0, 0.0)
        );
        // Singular: the second pivot is 4 - 2^2 = 0, at the threshold 1e-12 * 4.
        let mut singular = vec![1.0, 2.0, 2.0, 4.0];
        assert_eq!(
            cholesky_in_place(&mut singular, 2, 1e-12).unwrap_err(),
            (1, 0.0, 4e-12)
        );
    }
}
