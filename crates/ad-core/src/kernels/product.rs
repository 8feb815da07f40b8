//! The matrix product `C = alpha A B + beta C` for column-major matrices, register-tiled
//! for AVX-512 without packing.
//!
//! nalgebra hands products to matrixmultiply, which packs both operands into panels before
//! its microkernel runs. At the sizes of a DEQ layer or a meta-learning network (tens of
//! rows and columns) packing and its fixed costs are a large share of the product; on the
//! AVX-512 machine matrixmultiply reaches 56% of the core's FMA peak at 64x64x32 and 30%
//! at 10x40x40 (docs/benchmarks.md, "Matrix products"). This kernel reads `A` in place
//! (its columns are contiguous) and keeps a 16 x 8 tile of `C` in registers (16 zmm
//! accumulators) while it walks the inner dimension; it reaches 95% of the measured peak
//! at 64x64x32 and beats matrixmultiply at every `A B` shape measured, from 3x3x3 to
//! 1000x50x1000.
//!
//! Only the AVX-512 path has it: LLVM vectorizes this plain Rust into the intended code for
//! AVX-512. For AVX2 + FMA (16 registers of 4 lanes) these 16 x 8 tiles spill; 8 x 4 tiles
//! looked good on an AVX-512 core but were not compared with matrixmultiply's AVX2 kernel on
//! an AVX2 machine, so other CPUs keep nalgebra's product. [`gemm`] says whether it ran.
//!
//! Summation order: each entry is `sum_p a[i, p] b[p, j]` accumulated in order of `p` with
//! fused multiply-adds, then scaled by `alpha` (and `beta c` added): the same order as a
//! textbook loop, so results differ from matrixmultiply's (which splits `p` into blocks)
//! only by rounding.
//!
//! ```
//! use ad_core::kernels::paths::Path;
//! use ad_core::kernels::product;
//! // C (2x2) = A (2x3) B (3x2), column-major.
//! let a = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
//! let b = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
//! let mut c = [f64::NAN; 4]; // beta = 0: never read
//! if product::gemm(Path::Avx512, (2, 2, 3), 1.0, &a, &b, 0.0, &mut c) {
//!     assert_eq!(c, [4.0, 10.0, 2.0, 5.0]);
//! } // else: this CPU has no AVX-512, and the caller uses nalgebra's product
//! ```

use super::paths::Path;
use multiversion::multiversion;

/// The widest tile: rows of `C` per tile (two zmm registers of eight lanes) and columns
/// per tile (so 16 accumulator registers).
const MR: usize = 16;
const NR: usize = 8;

/// Products larger than this many multiply-adds, or with an inner dimension above
/// [`MAX_INNER`], go to matrixmultiply, whose cache blocking this kernel does not have
/// (measured up to 1000x50x1000 = 5e7, where ours still took 0.84 of nalgebra's time).
pub const MAX_WORK: usize = 1 << 26;
/// See [`MAX_WORK`].
pub const MAX_INNER: usize = 2048;

/// `c = alpha * a * b + beta * c` for column-major `a` (m x k), `b` (k x n) and `c`
/// (m x n), each stored contiguously (leading dimension = its row count), on `path`.
/// `beta = 0` never reads `c`'s old contents (they may be NaN).
///
/// Returns `false`, leaving `c` untouched, when `path` has no product kernel (every path
/// but [`Path::Avx512`]), when the CPU cannot run `path`, or when the product is outside
/// the kernel's sizes (`k = 0`, or larger than [`MAX_WORK`] / [`MAX_INNER`]): the caller then
/// computes the product another way.
///
/// # Panics
/// If a slice is shorter than its shape says.
pub fn gemm(
    path: Path,
    (m, n, k): (usize, usize, usize),
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c: &mut [f64],
) -> bool {
    if path != Path::Avx512 || !path.is_supported() || !fits((m, n, k)) {
        return false;
    }
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "ad-core: kernels::product::gemm: slices of {}, {}, {} entries for {m}x{k} * {k}x{n}",
        a.len(),
        b.len(),
        c.len()
    );
    // An empty output (m or n = 0) runs no tile.
    avx512(m, n, k, alpha, a, b, beta, c);
    true
}

/// Whether the product is within the kernel's sizes: `k` from 1 to [`MAX_INNER`], at most
/// [`MAX_WORK`] multiply-adds.
fn fits((m, n, k): (usize, usize, usize)) -> bool {
    (1..=MAX_INNER).contains(&k) && m.saturating_mul(n).saturating_mul(k) <= MAX_WORK
}

/// Whether [`gemm`] runs a product of this shape on the best path of this CPU.
#[inline]
pub(crate) fn accepts(shape: (usize, usize, usize)) -> bool {
    super::paths::best_vector_path() == Path::Avx512 && fits(shape)
}

/// The product on the best path of this CPU (see [`gemm`]).
#[inline]
pub(crate) fn gemm_best(
    shape: (usize, usize, usize),
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c: &mut [f64],
) -> bool {
    gemm(
        super::paths::best_vector_path(),
        shape,
        alpha,
        a,
        b,
        beta,
        c,
    )
}

/// The kernel compiled for AVX-512 (the caller checked that the CPU has it).
#[multiversion(targets("x86_64+avx512f+avx512vl+avx512dq+avx512vbmi2+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
fn avx512(
    m: usize,
    n: usize,
    k: usize,
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c: &mut [f64],
) {
    let mut j = 0;
    while j + NR <= n {
        rows::<NR>(m, k, alpha, a, &b[j * k..], beta, &mut c[j * m..]);
        j += NR;
    }
    while j < n {
        rows::<1>(m, k, alpha, a, &b[j * k..], beta, &mut c[j * m..]);
        j += 1;
    }
}

/// Columns `0..NC` of `C` (and of `B`), every row: 16-row tiles, then 8, 4, 2 and 1.
#[inline(always)]
fn rows<const NC: usize>(
    m: usize,
    k: usize,
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c: &mut [f64],
) {
    let mut i = 0;
    while i + MR <= m {
        tile::<MR, NC>(m, k, alpha, &a[i..], b, beta, &mut c[i..]);
        i += MR;
    }
    while i + 8 <= m {
        tile::<8, NC>(m, k, alpha, &a[i..], b, beta, &mut c[i..]);
        i += 8;
    }
    if i + 4 <= m {
        tile::<4, NC>(m, k, alpha, &a[i..], b, beta, &mut c[i..]);
        i += 4;
    }
    if i + 2 <= m {
        tile::<2, NC>(m, k, alpha, &a[i..], b, beta, &mut c[i..]);
        i += 2;
    }
    if i < m {
        tile::<1, NC>(m, k, alpha, &a[i..], b, beta, &mut c[i..]);
    }
}

/// One `R x NC` tile of `C` (leading dimension `m`, as `A`'s): `NC` columns of `B` (each
/// `k` long) against rows `0..R` of `A`, accumulated in registers over `p = 0..k`.
#[inline(always)]
fn tile<const R: usize, const NC: usize>(
    m: usize,
    k: usize,
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c: &mut [f64],
) {
    let mut acc = [[0.0f64; R]; NC];
    // One bound for every column of A read below, so the loop carries no bounds checks.
    let a = &a[..(k - 1) * m + R];
    let bc: [&[f64]; NC] = core::array::from_fn(|jj| &b[jj * k..jj * k + k]);
    for p in 0..k {
        let ap: &[f64; R] = a[p * m..p * m + R].try_into().expect("R entries");
        for jj in 0..NC {
            let bv = bc[jj][p];
            for r in 0..R {
                acc[jj][r] = ap[r].mul_add(bv, acc[jj][r]);
            }
        }
    }
    for jj in 0..NC {
        let col = &mut c[jj * m..jj * m + R];
        if beta == 0.0 {
            for r in 0..R {
                col[r] = alpha * acc[jj][r];
            }
        } else {
            for r in 0..R {
                col[r] = alpha * acc[jj][r] + beta * col[r];
            }
        }
    }
}
