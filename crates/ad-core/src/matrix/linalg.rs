//! Plain `f64` kernels shared by the plain matrix mode and the tape's sweeps.

use nalgebra::{DMatrix, DMatrixView, Dyn};

use super::Unary;
use crate::elementwise;
use crate::kernels;
use crate::tape::arena;
use crate::unary::Sc;

/// Where a result matrix is allocated: the system allocator (plain `DMatrix<f64>` mode,
/// whose results belong to the caller) or the tape's arena (values recorded on a tape,
/// adjoints and temporaries of its sweeps, which all go back to the arena).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alloc {
    System,
    Arena,
}

impl Alloc {
    /// A matrix whose contents are about to be overwritten.
    #[inline]
    pub(crate) fn uninit(self, r: usize, c: usize) -> DMatrix<f64> {
        match self {
            Alloc::System => arena::fresh(r, c),
            Alloc::Arena => arena::take(r, c),
        }
    }
    /// A copy of `m`.
    #[inline]
    pub(crate) fn copy(self, m: &DMatrix<f64>) -> DMatrix<f64> {
        match self {
            Alloc::System => m.clone(),
            Alloc::Arena => arena::copy_of(m),
        }
    }
}

/// `f` applied to every entry of `a`.
#[inline]
pub(crate) fn map(a: &DMatrix<f64>, alloc: Alloc, f: impl Fn(f64) -> f64) -> DMatrix<f64> {
    let mut out = alloc.uninit(a.nrows(), a.ncols());
    for (o, &x) in out.as_mut_slice().iter_mut().zip(a.as_slice()) {
        *o = f(x);
    }
    out
}

/// `f` applied to every pair of entries of `a` and `b` (same shapes, checked by callers).
#[inline]
pub(crate) fn zip_map(
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    alloc: Alloc,
    f: impl Fn(f64, f64) -> f64,
) -> DMatrix<f64> {
    debug_assert_eq!(a.shape(), b.shape());
    let mut out = alloc.uninit(a.nrows(), a.ncols());
    let ab = a.as_slice().iter().zip(b.as_slice());
    for (o, (&x, &y)) in out.as_mut_slice().iter_mut().zip(ab) {
        *o = f(x, y);
    }
    out
}

/// The transpose of `a`.
pub(crate) fn transpose(a: &DMatrix<f64>, alloc: Alloc) -> DMatrix<f64> {
    let mut out = alloc.uninit(a.ncols(), a.nrows());
    a.transpose_to(&mut out);
    out
}

/// A zero-copy transposed view of a column-major matrix.
fn t_view(a: &DMatrix<f64>) -> DMatrixView<'_, f64, Dyn, Dyn> {
    let (r, c) = a.shape();
    DMatrixView::from_slice_with_strides(a.as_slice(), c, r, r, 1)
}

/// `c = alpha * op(a) * op(b) + beta * c`, where `op` transposes when asked.
///
/// Large products read transposes through zero-copy strided views (nalgebra then calls
/// matrixmultiply with those strides). nalgebra's small-matrix fallback assumes unit row
/// stride, so below its size threshold the transposes are materialized instead.
pub(crate) fn gemm(
    c: &mut DMatrix<f64>,
    alpha: f64,
    a: &DMatrix<f64>,
    ta: bool,
    b: &DMatrix<f64>,
    tb: bool,
    beta: f64,
) {
    // Matrix-vector products (a data matrix times a column: the commonest product of an
    // objective) through slice kernels that vectorize; nalgebra's small-matrix path runs
    // them as scalar loops.
    if b.ncols() == 1 && !tb && c.ncols() == 1 {
        gemv(c.as_mut_slice(), alpha, a, ta, b.as_slice(), beta);
        return;
    }
    let (am, ak) = if ta {
        (a.ncols(), a.nrows())
    } else {
        a.shape()
    };
    let (bk, bn) = if tb {
        (b.ncols(), b.nrows())
    } else {
        b.shape()
    };
    assert!(
        am == c.nrows() && bn == c.ncols() && ak == bk,
        "ad-core: product of {am}x{ak} and {bk}x{bn} into {}x{}",
        c.nrows(),
        c.ncols()
    );
    if kernel_product(
        c.as_mut_slice(),
        (am, bn, ak),
        alpha,
        (a.as_slice(), ta),
        (b.as_slice(), tb),
        beta,
    ) {
        return;
    }
    // nalgebra 0.34 uses matrixmultiply only when all of these exceed 5.
    const SMALL: usize = 5;
    let a_shape = if ta {
        (a.ncols(), a.nrows())
    } else {
        a.shape()
    };
    let large = c.nrows() > SMALL && c.ncols() > SMALL && a_shape.0 > SMALL && a_shape.1 > SMALL;
    if !large {
        match (ta, tb) {
            (false, false) => c.gemm(alpha, a, b, beta),
            // A^T B without materializing A^T (A may be a large data matrix).
            (true, false) => c.gemm_tr(alpha, a, b, beta),
            (false, true) => c.gemm(alpha, a, &b.transpose(), beta),
            (true, true) => c.gemm(alpha, &a.transpose(), &b.transpose(), beta),
        }
        return;
    }
    match (ta, tb) {
        (false, false) => c.gemm(alpha, a, b, beta),
        (true, false) => c.gemm(alpha, &t_view(a), b, beta),
        (false, true) => c.gemm(alpha, a, &t_view(b), beta),
        (true, true) => c.gemm(alpha, &t_view(a), &t_view(b), beta),
    }
}

/// Whether [`kernel_product`] runs a product of shape `(m, n, k)` with one operand
/// transposed (of `moved` entries) through a transposed copy: the kernel takes the shape
/// and the product's work is at least 32 times the copy. A stored transpose then saves the
/// copy, and gives the same bits.
#[inline]
pub(crate) fn kernel_transposes((m, n, k): (usize, usize, usize), moved: usize) -> bool {
    kernels::product::accepts((m, n, k)) && m * n * k >= 32 * moved
}

/// `c = alpha op(a) op(b) + beta c` on contiguous column-major slices through the
/// register-tiled kernel (`kernels::product`), where the CPU has one; `(m, n, k)` is the
/// shape of the product (`op(a)` is `m x k`). Returns `false`, leaving `c` untouched, when
/// the kernel does not take the product: the caller computes it another way.
///
/// `A B` goes to the kernel directly. `Aᵀ B` and `A Bᵀ` go after a copy of the transposed
/// operand (an arena buffer), when the product's work is at least 32 times the copy
/// (measured: 64x64 by 64x32 as 1.3 us of transpose + 3.1 us of product against 5.5 us for
/// matrixmultiply's strided product; at 10x40 by 40x40 the copy would cost more than it
/// saves). `Aᵀ Bᵀ` is left to the caller.
pub(crate) fn kernel_product(
    c: &mut [f64],
    (m, n, k): (usize, usize, usize),
    alpha: f64,
    (a, ta): (&[f64], bool),
    (b, tb): (&[f64], bool),
    beta: f64,
) -> bool {
    let shape = (m, n, k);
    match (ta, tb) {
        (false, false) => kernels::product::gemm_best(shape, alpha, a, b, beta, c),
        (true, true) => false,
        _ => {
            let moved = if ta { m * k } else { k * n };
            if !kernel_transposes(shape, moved) {
                return false;
            }
            // op(a) = aᵀ with a stored k x m; op(b) = bᵀ with b stored n x k.
            let (src, rows, cols) = if ta { (a, k, m) } else { (b, n, k) };
            let mut t = Alloc::Arena.uninit(cols, rows);
            DMatrixView::from_slice(&src[..rows * cols], rows, cols).transpose_to(&mut t);
            let (l, r) = if ta {
                (t.as_slice(), b)
            } else {
                (a, t.as_slice())
            };
            let ran = kernels::product::gemm_best(shape, alpha, l, r, beta, c);
            arena::give(t);
            ran
        }
    }
}

/// `y = alpha op(a) x + beta y` for a column-major `a` (`op` transposes when asked);
/// `beta = 0` never reads `y`'s old contents.
fn gemv(y: &mut [f64], alpha: f64, a: &DMatrix<f64>, ta: bool, x: &[f64], beta: f64) {
    let (r, c) = a.shape();
    if r == 0 || c == 0 {
        // An empty product: y = beta y.
        y.iter_mut()
            .for_each(|v| *v = if beta == 0.0 { 0.0 } else { beta * *v });
        return;
    }
    let cols = a.as_slice().chunks_exact(r);
    if ta {
        // y_j = alpha <a_j, x> + beta y_j: one dot product per column, four partial sums
        // so the loop is not bound by the latency of one accumulator.
        debug_assert!(y.len() == c && x.len() == r);
        for (yj, col) in y.iter_mut().zip(cols) {
            let d = dot4(col, x);
            *yj = if beta == 0.0 {
                alpha * d
            } else {
                alpha * d + beta * *yj
            };
        }
    } else {
        debug_assert!(y.len() == r && x.len() == c);
        if beta == 0.0 {
            y.iter_mut().for_each(|v| *v = 0.0);
        } else if beta != 1.0 {
            y.iter_mut().for_each(|v| *v *= beta);
        }
        for (col, &xj) in cols.zip(x) {
            let s = alpha * xj;
            if s != 0.0 {
                y.iter_mut().zip(col).for_each(|(v, &aij)| *v += s * aij);
            }
        }
    }
}

/// `<a, b>` with four independent partial sums.
fn dot4(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f64 = ar.iter().zip(br).map(|(x, y)| x * y).sum();
    (acc[0] + acc[2]) + (acc[1] + acc[3]) + tail
}

/// `a * b` with a shape check that names both shapes.
#[track_caller]
pub(crate) fn matmul(a: &DMatrix<f64>, b: &DMatrix<f64>, alloc: Alloc) -> DMatrix<f64> {
    assert!(
        a.ncols() == b.nrows(),
        "ad-core: matmul: inner dimensions differ: {}x{} * {}x{}",
        a.nrows(),
        a.ncols(),
        b.nrows(),
        b.ncols()
    );
    // beta = 0: the output's old contents are never read (nalgebra's `gemm` contract).
    let mut c = alloc.uninit(a.nrows(), b.ncols());
    gemm(&mut c, 1.0, a, false, b, false, 0.0);
    c
}

/// Add a `1 x c` row to every row.
#[track_caller]
pub(crate) fn add_row(a: &DMatrix<f64>, row: &DMatrix<f64>, alloc: Alloc) -> DMatrix<f64> {
    assert!(
        row.nrows() == 1 && row.ncols() == a.ncols(),
        "ad-core: add_row: expected a 1x{} row, got {}x{}",
        a.ncols(),
        row.nrows(),
        row.ncols()
    );
    let mut out = alloc.copy(a);
    // Contiguous column slices (nalgebra's strided column iterators do not vectorize).
    if a.nrows() > 0 {
        let cols = out.as_mut_slice().chunks_exact_mut(a.nrows());
        for (col, &b) in cols.zip(row.as_slice()) {
            col.iter_mut().for_each(|x| *x += b);
        }
    }
    out
}

/// The `1 x c` row of column sums of `g` (the adjoint of [`add_row`]'s row), each summed
/// top to bottom.
pub(crate) fn column_sums(g: &DMatrix<f64>) -> DMatrix<f64> {
    let r = g.nrows();
    if r == 0 {
        return DMatrix::zeros(1, g.ncols());
    }
    let sums = g
        .as_slice()
        .chunks_exact(r)
        .map(|c| c.iter().fold(0.0, |s, &x| s + x));
    DMatrix::from_iterator(1, g.ncols(), sums)
}

/// Add an `r x 1` column to every column.
#[track_caller]
pub(crate) fn add_col(a: &DMatrix<f64>, col: &DMatrix<f64>, alloc: Alloc) -> DMatrix<f64> {
    assert!(
        col.ncols() == 1 && col.nrows() == a.nrows(),
        "ad-core: add_col: expected a {}x1 column, got {}x{}",
        a.nrows(),
        col.nrows(),
        col.ncols()
    );
    let mut out = alloc.copy(a);
    for mut c in out.column_iter_mut() {
        c += col.column(0);
    }
    out
}

/// Apply an elementwise function.
pub(crate) fn unary_value(f: Unary, x: &DMatrix<f64>, alloc: Alloc) -> DMatrix<f64> {
    let mut out = alloc.uninit(x.nrows(), x.ncols());
    elementwise::apply(f, x.as_slice(), out.as_mut_slice());
    out
}

/// `xbar += ybar .* f'(x)`, with `y = f(x)`, through the derivative table of [`Unary`].
/// Auxiliary values the table needs (sigmoid for softplus, ...) come from the vectorized
/// kernels, in one temporary.
pub(crate) fn unary_backward(
    f: Unary,
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    ybar: &DMatrix<f64>,
    xbar: &mut DMatrix<f64>,
) {
    unary_chain::<true>(f, x, y, ybar, xbar);
}

/// [`unary_backward`] into an adjoint slot: written directly into a fresh arena buffer
/// when the slot is empty (no zero fill), accumulated otherwise.
pub(crate) fn unary_backward_acc(
    f: Unary,
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    ybar: &DMatrix<f64>,
    slot: &mut Option<DMatrix<f64>>,
) {
    match slot {
        Some(xbar) => unary_chain::<true>(f, x, y, ybar, xbar),
        None => {
            let mut xbar = arena::take(x.nrows(), x.ncols());
            unary_chain::<false>(f, x, y, ybar, &mut xbar);
            *slot = Some(xbar);
        }
    }
}

/// `xbar (+)= ybar .* f'(x)`: accumulated when `ADD`, overwritten otherwise.
fn unary_chain<const ADD: bool>(
    f: Unary,
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    ybar: &DMatrix<f64>,
    xbar: &mut DMatrix<f64>,
) {
    let aux = f.derivative_uses().map(|h| unary_value(h, x, Alloc::Arena));
    let slices = (
        x.as_slice(),
        y.as_slice(),
        aux.as_ref().map_or(x.as_slice(), |a| a.as_slice()),
        ybar.as_slice(),
    );
    /// One loop per function, so the table's `match` folds away and the loop vectorizes.
    #[inline(always)]
    fn run<const ADD: bool>(
        f: Unary,
        (xs, ys, aux, gs): (&[f64], &[f64], &[f64], &[f64]),
        out: &mut [f64],
    ) {
        let n = out.len();
        let (xs, ys, aux, gs) = (&xs[..n], &ys[..n], &aux[..n], &gs[..n]);
        for i in 0..n {
            let d = f
                .chain_with(&Sc(xs[i]), &Sc(ys[i]), &Sc(aux[i]), &Sc(gs[i]))
                .0;
            out[i] = if ADD { out[i] + d } else { d };
        }
    }
    let out = xbar.as_mut_slice();
    match f {
        Unary::Tanh => run::<ADD>(Unary::Tanh, slices, out),
        Unary::Exp => run::<ADD>(Unary::Exp, slices, out),
        Unary::Ln => run::<ADD>(Unary::Ln, slices, out),
        Unary::Sigmoid => run::<ADD>(Unary::Sigmoid, slices, out),
        Unary::Softplus => run::<ADD>(Unary::Softplus, slices, out),
        Unary::Relu => run::<ADD>(Unary::Relu, slices, out),
        Unary::Sqrt => run::<ADD>(Unary::Sqrt, slices, out),
        Unary::Square => run::<ADD>(Unary::Square, slices, out),
        Unary::Abs => run::<ADD>(Unary::Abs, slices, out),
        Unary::Sin => run::<ADD>(Unary::Sin, slices, out),
        Unary::Cos => run::<ADD>(Unary::Cos, slices, out),
    }
    if let Some(a) = aux {
        arena::give(a);
    }
}

/// `slot -= g`: written as `-g` into a fresh arena buffer when the slot is empty.
pub(crate) fn subtract(slot: &mut Option<DMatrix<f64>>, g: &DMatrix<f64>) {
    match slot {
        Some(acc) => *acc -= g,
        None => {
            let mut out = arena::take(g.nrows(), g.ncols());
            out.as_mut_slice()
                .iter_mut()
                .zip(g.as_slice())
                .for_each(|(o, &v)| *o = -v);
            *slot = Some(out);
        }
    }
}

/// Concatenate side by side or stacked.
pub(crate) fn concat(parts: &[&DMatrix<f64>], horizontal: bool, alloc: Alloc) -> DMatrix<f64> {
    let shapes: Vec<_> = parts.iter().map(|p| p.shape()).collect();
    let (r, c) = super::concat_shape(&shapes, horizontal);
    let mut out = alloc.uninit(r, c);
    let mut offset = 0;
    for p in parts {
        if horizontal {
            out.columns_mut(offset, p.ncols()).copy_from(*p);
            offset += p.ncols();
        } else {
            out.rows_mut(offset, p.nrows()).copy_from(*p);
            offset += p.nrows();
        }
    }
    out
}

/// A copy of a block.
#[track_caller]
pub(crate) fn slice(
    a: &DMatrix<f64>,
    r0: usize,
    c0: usize,
    nr: usize,
    nc: usize,
    alloc: Alloc,
) -> DMatrix<f64> {
    super::check_slice(a.shape(), r0, c0, nr, nc);
    let mut out = alloc.uninit(nr, nc);
    out.copy_from(&a.view((r0, c0), (nr, nc)));
    out
}

/// The same column-major entries as a `rows x cols` matrix.
#[track_caller]
pub(crate) fn reshape(a: &DMatrix<f64>, rows: usize, cols: usize, alloc: Alloc) -> DMatrix<f64> {
    assert!(
        rows * cols == a.len(),
        "ad-core: reshape: cannot view a {}x{} matrix as {rows}x{cols}",
        a.nrows(),
        a.ncols()
    );
    let mut out = alloc.uninit(rows, cols);
    out.as_mut_slice().copy_from_slice(a.as_slice());
    out
}

/// `acc += m`, allocating `acc` (in the arena) on first use.
#[inline]
pub(crate) fn accumulate(acc: &mut Option<DMatrix<f64>>, m: &DMatrix<f64>) {
    match acc {
        Some(a) => *a += m,
        None => *acc = Some(arena::copy_of(m)),
    }
}

/// The accumulator, created (in the arena) as zeros of the given shape on first use.
#[inline]
pub(crate) fn acc_mut(acc: &mut Option<DMatrix<f64>>, shape: (usize, usize)) -> &mut DMatrix<f64> {
    acc.get_or_insert_with(|| arena::take_zeroed(shape.0, shape.1))
}

/// `acc += op(a) * op(b)`; on first use `acc` is allocated in the arena and written
/// directly (`beta = 0`), without zeroing it first.
#[inline]
pub(crate) fn gemm_acc(
    acc: &mut Option<DMatrix<f64>>,
    shape: (usize, usize),
    a: &DMatrix<f64>,
    ta: bool,
    b: &DMatrix<f64>,
    tb: bool,
) {
    match acc {
        Some(c) => gemm(c, 1.0, a, ta, b, tb, 1.0),
        None => {
            let mut c = arena::take(shape.0, shape.1);
            gemm(&mut c, 1.0, a, ta, b, tb, 0.0);
            *acc = Some(c);
        }
    }
}

/// `acc += l r` for contiguous `l` and `r` straight through the product kernel: the route
/// [`kernel_product`] takes for `Aᵀ B` or `A Bᵀ` after its transposed copy, for a replayed
/// sweep that kept the copy (see [`kernel_transposes`]). Going through [`gemm`] instead
/// could take another route (its matrix-vector path when `r` is a column) and give other
/// bits than the first sweep.
pub(crate) fn kernel_acc(acc: &mut Option<DMatrix<f64>>, l: &DMatrix<f64>, r: &DMatrix<f64>) {
    let (m, k, n) = (l.nrows(), l.ncols(), r.ncols());
    let beta = if acc.is_some() { 1.0 } else { 0.0 };
    let c = acc.get_or_insert_with(|| arena::take(m, n));
    let ran = kernel_product(
        c.as_mut_slice(),
        (m, n, k),
        1.0,
        (l.as_slice(), false),
        (r.as_slice(), false),
        beta,
    );
    if !ran {
        // Not reached when `kernel_transposes` allowed the copy; kept for safety.
        if beta == 0.0 {
            c.fill(0.0);
        }
        c.gemm(1.0, l, r, 1.0);
    }
}

/// `acc += alpha * (x .* y)` over all entries, without a temporary.
#[inline]
pub(crate) fn mul_acc(acc: &mut DMatrix<f64>, alpha: f64, x: &DMatrix<f64>, y: &DMatrix<f64>) {
    debug_assert!(acc.shape() == x.shape() && x.shape() == y.shape());
    let xy = x.as_slice().iter().zip(y.as_slice());
    for (a, (&u, &v)) in acc.as_mut_slice().iter_mut().zip(xy) {
        *a += alpha * (u * v);
    }
}

/// `acc += alpha * x` over all entries.
#[inline]
pub(crate) fn axpy(acc: &mut DMatrix<f64>, alpha: f64, x: &DMatrix<f64>) {
    for (a, &v) in acc.as_mut_slice().iter_mut().zip(x.as_slice()) {
        *a += alpha * v;
    }
}
