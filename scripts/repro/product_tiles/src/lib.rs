//! The tile of ad-core's `kernels::product` for AVX2 + FMA, as an experiment.
use multiversion::multiversion;

/// One MR x NR tile of C (column-major, leading dimension ldc):
/// C = alpha * A[.., 0..k] * op(B)[0..k, ..] + beta * C, where A has unit row stride
/// (leading dimension lda) and B's entry (p, j) is b[p * rsb + j * csb].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<const MR: usize, const NR: usize>(
    k: usize,
    alpha: f64,
    a: &[f64],
    lda: usize,
    b: &[f64],
    rsb: usize,
    csb: usize,
    beta: f64,
    c: &mut [f64],
    ldc: usize,
) {
    let mut acc = [[0.0f64; MR]; NR];
    let a = &a[..(k - 1) * lda + MR];
    if rsb == 1 {
        let bc: [&[f64]; NR] = core::array::from_fn(|jj| &b[jj * csb..jj * csb + k]);
        for p in 0..k {
            let ap: &[f64; MR] = a[p * lda..p * lda + MR].try_into().unwrap();
            for jj in 0..NR {
                let bv = bc[jj][p];
                for r in 0..MR {
                    acc[jj][r] = ap[r].mul_add(bv, acc[jj][r]);
                }
            }
        }
    } else {
        let b = &b[..(k - 1) * rsb + (NR - 1) * csb + 1];
        for p in 0..k {
            let ap: &[f64; MR] = a[p * lda..p * lda + MR].try_into().unwrap();
            let bp = &b[p * rsb..];
            for jj in 0..NR {
                let bv = bp[jj * csb];
                for r in 0..MR {
                    acc[jj][r] = ap[r].mul_add(bv, acc[jj][r]);
                }
            }
        }
    }
    for jj in 0..NR {
        let col = &mut c[jj * ldc..jj * ldc + MR];
        if beta == 0.0 {
            for r in 0..MR {
                col[r] = alpha * acc[jj][r];
            }
        } else {
            for r in 0..MR {
                col[r] = alpha * acc[jj][r] + beta * col[r];
            }
        }
    }
}

/// AVX2 experiment: only 8-row tiles (then 4, 2, 1) by NC columns.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows8<const NC: usize>(m: usize, k: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    let mut i = 0;
    while i + 8 <= m {
        tile::<8, NC>(k, 1.0, &a[i..], m, b, 1, k, 0.0, &mut c[i..], m);
        i += 8;
    }
    if i + 4 <= m {
        tile::<4, NC>(k, 1.0, &a[i..], m, b, 1, k, 0.0, &mut c[i..], m);
        i += 4;
    }
    if i + 2 <= m {
        tile::<2, NC>(k, 1.0, &a[i..], m, b, 1, k, 0.0, &mut c[i..], m);
        i += 2;
    }
    if i < m {
        tile::<1, NC>(k, 1.0, &a[i..], m, b, 1, k, 0.0, &mut c[i..], m);
    }
}

/// Every column of C: `NC`-column panels of 8-row tiles, then single columns.
#[inline(always)]
fn columns<const NC: usize>(m: usize, n: usize, k: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    let mut j = 0;
    while j + NC <= n {
        rows8::<NC>(m, k, a, &b[j * k..], &mut c[j * m..]);
        j += NC;
    }
    while j < n {
        rows8::<1>(m, k, a, &b[j * k..], &mut c[j * m..]);
        j += 1;
    }
}

/// 8 x 4 tiles, compiled for AVX2 + FMA.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn avx2_84(m: usize, n: usize, k: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    columns::<4>(m, n, k, a, b, c)
}

/// 8 x 6 tiles, compiled for AVX2 + FMA.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn avx2_86(m: usize, n: usize, k: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
    columns::<6>(m, n, k, a, b, c)
}
