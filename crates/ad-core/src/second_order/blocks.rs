//! Helpers on `k`-tangent matrices: block `j` of an `r x (c k)` matrix is the contiguous
//! slice of its columns `j c .. (j+1) c`.

use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut};

use crate::error::AdError;
use crate::tape::arena;

pub(crate) fn ix(i: u32) -> usize {
    i as usize
}

/// Block `j` of a `k`-tangent matrix whose blocks hold `rc` entries.
pub(crate) fn blk(m: &DMatrix<f64>, j: usize, rc: usize) -> &[f64] {
    &m.as_slice()[j * rc..(j + 1) * rc]
}

pub(crate) fn blk_mut(m: &mut DMatrix<f64>, j: usize, rc: usize) -> &mut [f64] {
    &mut m.as_mut_slice()[j * rc..(j + 1) * rc]
}

/// `c = alpha op(a) op(b) + beta c` on column-major slices (`op` transposes when asked).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_slices(
    c: &mut [f64],
    (cr, cc): (usize, usize),
    alpha: f64,
    a: &[f64],
    (ar, ac): (usize, usize),
    ta: bool,
    b: &[f64],
    (br, bc): (usize, usize),
    tb: bool,
    beta: f64,
) {
    let (m, k) = if ta { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if tb { (bc, br) } else { (br, bc) };
    assert!(
        m == cr && n == cc && k == kb,
        "ad-core: product of {m}x{k} and {kb}x{n} into {cr}x{cc}"
    );
    if crate::matrix::linalg::kernel_product(c, (m, n, k), alpha, (a, ta), (b, tb), beta) {
        return;
    }
    let mut cv = DMatrixViewMut::from_slice(c, cr, cc);
    // nalgebra's small-matrix path assumes unit row strides: materialize transposes there;
    // otherwise read them through strided views (matrixmultiply takes any strides).
    const SMALL: usize = 5;
    let large = cr > SMALL && cc > SMALL && ar > SMALL && ac > SMALL && br > SMALL && bc > SMALL;
    let view = |s: &'_ [f64], r: usize, cl: usize, t: bool| -> DMatrix<f64> {
        let v = DMatrixView::from_slice(s, r, cl);
        if t { v.transpose() } else { v.into_owned() }
    };
    if large {
        let av = if ta {
            DMatrixView::from_slice_with_strides(a, ac, ar, ar, 1)
        } else {
            DMatrixView::from_slice_with_strides(a, ar, ac, 1, ar)
        };
        let bv = if tb {
            DMatrixView::from_slice_with_strides(b, bc, br, br, 1)
        } else {
            DMatrixView::from_slice_with_strides(b, br, bc, 1, br)
        };
        cv.gemm(alpha, &av, &bv, beta);
    } else if !tb {
        let bv = DMatrixView::from_slice(b, br, bc);
        let av = DMatrixView::from_slice(a, ar, ac);
        if ta {
            // aᵀ b without materializing aᵀ (a may be a large data matrix).
            cv.gemm_tr(alpha, &av, &bv, beta);
        } else {
            cv.gemm(alpha, &av, &bv, beta);
        }
    } else {
        cv.gemm(alpha, &view(a, ar, ac, ta), &view(b, br, bc, tb), beta);
    }
}

/// A zero `r x (c k)` tangent matrix, from the arena (every tangent matrix of a sweep comes
/// from the arena and goes back when the sweep ends: large fresh buffers would be fresh
/// mappings from the system, with page faults on every sweep).
pub(crate) fn zeros_k(shape: (usize, usize), k: usize) -> DMatrix<f64> {
    arena::take_zeroed(shape.0, shape.1 * k)
}

/// `s x` in an arena buffer.
pub(crate) fn scaled_copy(x: &DMatrix<f64>, s: f64) -> DMatrix<f64> {
    let mut o = arena::copy_of(x);
    if s != 1.0 {
        o.as_mut_slice().iter_mut().for_each(|v| *v *= s);
    }
    o
}

pub(crate) fn acc_k(
    slot: &mut Option<DMatrix<f64>>,
    shape: (usize, usize),
    k: usize,
) -> &mut DMatrix<f64> {
    slot.get_or_insert_with(|| zeros_k(shape, k))
}

/// `y[j-th block] += f(x-block j)` for every block, with a broadcast operand per entry.
pub(crate) fn each_block(
    out: &mut DMatrix<f64>,
    k: usize,
    rc: usize,
    mut f: impl FnMut(usize, &mut [f64]),
) {
    for j in 0..k {
        f(j, blk_mut(out, j, rc));
    }
}

pub(crate) fn custom_error(rec: &str) -> AdError {
    AdError::CustomSecondOrder {
        name: rec.to_string(),
        block: 0,
    }
}

/// `acc += s * x` over all entries.
pub(crate) fn add_scaled(acc: &mut DMatrix<f64>, s: f64, x: &DMatrix<f64>) {
    for (a, &v) in acc.as_mut_slice().iter_mut().zip(x.as_slice()) {
        *a += s * v;
    }
}

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `out_j += t_j ⊙ w` for every block `j` (`w` one entry per block entry): the one loop the
/// elementwise rules need, written so that it vectorizes.
pub(crate) fn fma_blocks(out: &mut DMatrix<f64>, t: &DMatrix<f64>, w: &[f64]) {
    let rc = w.len();
    if rc == 0 {
        return;
    }
    for (oj, tj) in out
        .as_mut_slice()
        .chunks_exact_mut(rc)
        .zip(t.as_slice().chunks_exact(rc))
    {
        for ((o, &x), &c) in oj.iter_mut().zip(tj).zip(w) {
            *o += x * c;
        }
    }
}

/// `slot += t_j ⊙ w` per block; an empty slot is written directly (no zeroing first).
pub(crate) fn fma_into(slot: &mut Option<DMatrix<f64>>, t: &DMatrix<f64>, w: &[f64]) {
    match slot {
        Some(acc) => fma_blocks(acc, t, w),
        None => *slot = Some(mul_blocks(t, w)),
    }
}

/// `t_j ⊙ w` for every block (one pass, no copy of `t` first).
pub(crate) fn mul_blocks(t: &DMatrix<f64>, w: &[f64]) -> DMatrix<f64> {
    if w.is_empty() {
        return arena::copy_of(t);
    }
    let mut out = arena::take(t.nrows(), t.ncols());
    for (oj, tj) in out
        .as_mut_slice()
        .chunks_exact_mut(w.len())
        .zip(t.as_slice().chunks_exact(w.len()))
    {
        for ((o, &x), &c) in oj.iter_mut().zip(tj).zip(w) {
            *o = x * c;
        }
    }
    out
}

/// `slot += s x`; an empty slot is written directly.
pub(crate) fn add_scaled_into(slot: &mut Option<DMatrix<f64>>, s: f64, x: &DMatrix<f64>) {
    match slot {
        Some(acc) => add_scaled(acc, s, x),
        None => *slot = Some(scaled_copy(x, s)),
    }
}
