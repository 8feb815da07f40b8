//! Matrix modes agree with each other, with finite differences and with scalar mode.
//!
//! Guarantees, for every [`MatOps`] primitive (matmul, transpose, add, sub, mul_elem,
//! div_elem, add_row, add_col, scale by a scalar variable, scale_f64, add_f64, neg, every
//! [`Unary`], sum, mean, dot, sq_norm, get, from_scalars_like, slice, rows, columns,
//! concat, hcat, vcat, reshape, column_block) and for random compositions of them (random straight-line
//! matrix programs, and a two-layer MLP loss with tanh and bias rows), with random shapes
//! on both sides of nalgebra's matrixmultiply threshold (5) and random values:
//! - the gradient from `MatVar` (`value_and_grad_mat`) matches central differences of the
//!   plain `DMatrix<f64>` evaluation, and the scalar-mode gradient (`Var`) of the same
//!   function evaluated entry by entry through a naive reference (`common::RefMat`);
//! - forward mode (`DualMat<DMatrix<f64>>`, `jvp_mat`) gives `<gradient, v>`;
//! - `hvp_mat` (`DualMat<MatVar>`) matches central differences of the gradient along `v`,
//!   and the scalar-mode Hessian-vector product (`hvp` on `Dual<Var>`) of the same function
//!   (for the MLP, written a second time by hand with `Real` scalars);
//! - forward over forward (`DualMat<DualMat<DMatrix<f64>>>`, nesting the dual types) gives
//!   `vᵀ H v` as its mixed second derivative, and the value and `<gradient, v>` below it.

mod common;

use ad_core::{
    DualMat, HessianRecording, MatFn, MatOps, Real, ScalarFn, Unary, grad, hvp, hvp_mat, jvp_mat,
    value_and_grad_mat,
};
use common::prims::{Prim, all_prims, any_prim_case, build_case, prim_case};
use common::{AsScalar, RefMat, check_close, dotv, flatten, norm_inf, shapes, step, unflatten};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------
// Tolerances (see scalar_modes.rs for the derivation; the matrix case differs only in the
// size of the sums)
// ---------------------------------------------------------------------------------------

/// Between exact modes (MatVar, DualMat, scalar Var through RefMat): the same derivative
/// summed in a different order (blocked gemm vs loops). Each entry is a sum of at most
/// ~10^3 products of O(1..10) numbers, so rounding is <= 1e3 x 2.2e-16 x (size of the
/// terms) ~ 1e-13 of max(1, |result|); allow 1e-12 (a wrong rule is off by O(1)).
const MODES_REL: f64 = 1e-12;

/// Central differences (`h = 1e-5 max(1, |x|)`) vs AD: truncation `h^2/6 |f'''|` and
/// rounding `delta/h`. Entries stay in [-3, 3] and every function is applied on a guarded
/// domain, so f''' is O(1e2) of the scale max(1, |f|, |g|) and truncation is <= 1.5e-8 of
/// it; one evaluation sums at most ~1e4 terms, so `delta` <= 1e4 x 2.2e-16 x |f| and
/// rounding is <= 2e-7 of it. Total < 3e-7: 1e-6 holds. (Measured with
/// `PROPTEST_CASES=10000 AD_TOL_REPORT=1`: the largest error seen was 6e-8 of the scale.)
const FD_REL: f64 = 1e-6;

// ---------------------------------------------------------------------------------------
// The shared check
// ---------------------------------------------------------------------------------------

/// Kink signature of a function at a point (empty for smooth functions).
type Signature<'a> = &'a dyn Fn(&[DMatrix<f64>]) -> Vec<i8>;

/// All the agreements claimed in the file header, for one function at one point `p` along
/// one direction `v`.
fn check_all<F: MatFn>(
    f: &F,
    p: &[DMatrix<f64>],
    v: &[DMatrix<f64>],
    signature: Signature<'_>,
) -> Result<(), TestCaseError> {
    let shp = shapes(p);
    let x = flatten(p);
    let vf = flatten(v);
    let plain = |z: &[f64]| f.eval(&unflatten(z, &shp));
    let fx = plain(&x);
    prop_assert!(fx.is_finite(), "value {fx} is not finite");

    // reverse mode on matrix variables
    let (y, g) = value_and_grad_mat(f, p).unwrap();
    let gf = flatten(&g);
    check_close("value: MatVar vs DMatrix", &[y], &[fx], MODES_REL, 1.0)?;
    prop_assert_eq!(shapes(&g), shp.clone());

    // reverse mode on scalars, through the naive reference
    let scalar_f = AsScalar {
        f,
        shapes: shp.clone(),
    };
    check_close(
        "value: RefMat<f64> vs DMatrix",
        &[scalar_f.eval(&x)],
        &[fx],
        MODES_REL,
        1.0,
    )?;
    let g_scalar = grad(&scalar_f, &x).unwrap();
    let gscale = 1.0f64.max(norm_inf(&gf));
    check_close(
        "gradient: MatVar vs scalar Var",
        &gf,
        &g_scalar,
        MODES_REL,
        gscale,
    )?;

    // forward mode
    let (yj, dy) = jvp_mat(f, p, v).unwrap();
    check_close("value: DualMat vs DMatrix", &[yj], &[fx], MODES_REL, 1.0)?;
    let terms: f64 = gf.iter().zip(&vf).map(|(a, b)| (a * b).abs()).sum();
    check_close(
        "jvp_mat vs <gradient, v>",
        &[dy],
        &[dotv(&gf, &vf)],
        MODES_REL,
        1.0f64.max(terms),
    )?;

    // second order: reverse over forward on matrices vs scalars
    let hv = flatten(&hvp_mat(f, p, v).unwrap());
    let hv_scalar = hvp(&scalar_f, &x, &vf).unwrap();
    let hscale = 1.0f64.max(norm_inf(&hv_scalar));
    check_close(
        "hvp_mat vs scalar hvp (Dual<Var>)",
        &hv,
        &hv_scalar,
        MODES_REL,
        hscale,
    )?;

    // forward over forward (nested `DualMat`): at p + s v + t v, d²f/ds dt = vᵀ H v
    let nested: Vec<DualMat<DualMat<DMatrix<f64>>>> = p
        .iter()
        .zip(v)
        .map(|(pi, vi)| {
            let zero = DMatrix::zeros(vi.nrows(), vi.ncols());
            DualMat::new(
                DualMat::new(pi.clone(), vi.clone()),
                DualMat::new(vi.clone(), zero),
            )
        })
        .collect();
    let yy = f.eval(&nested);
    let terms: f64 = hv.iter().zip(&vf).map(|(a, b)| (a * b).abs()).sum();
    check_close(
        "forward over forward (DualMat<DualMat>) vs vᵀ hvp_mat",
        &[yy.eps.eps],
        &[dotv(&hv, &vf)],
        MODES_REL,
        1.0f64.max(terms),
    )?;
    check_close(
        "forward over forward: value and first derivatives",
        &[yy.re.re, yy.re.eps, yy.eps.re],
        &[fx, dy, dy],
        MODES_REL,
        1.0f64.max(fx.abs()).max(dy.abs()),
    )?;

    // second order recorded once (forward-over-reverse, `HessianRecording`): the gradient
    // and one HVP agree with the modes above; a batch of three directions [v, w, v + w]
    // gives the single products column by column (so the batched sweep neither mixes
    // directions nor drops one) and is linear.
    let rec = HessianRecording::new(p, |x| f.eval(x)).unwrap();
    check_close(
        "HessianRecording value",
        &[rec.value()],
        &[fx],
        MODES_REL,
        1.0,
    )?;
    let g_rec = flatten(&rec.gradient().unwrap());
    check_close(
        "HessianRecording gradient vs MatVar",
        &g_rec,
        &gf,
        MODES_REL,
        gscale,
    )?;
    let hv_rec = flatten(&rec.hvp(v).unwrap());
    check_close(
        "HessianRecording::hvp vs hvp_mat",
        &hv_rec,
        &hv,
        MODES_REL,
        hscale,
    )?;
    let wf: Vec<f64> = vf.iter().rev().map(|a| 0.5 - a).collect();
    let w = unflatten(&wf, &shp);
    let hw = flatten(&hvp_mat(f, p, &w).unwrap());
    let mut stacked = Vec::new();
    let mut start = 0;
    for &(r, c) in &shp {
        let n = r * c;
        let sum: Vec<f64> = (start..start + n).map(|i| vf[i] + wf[i]).collect();
        let cols = [&vf[start..start + n], &wf[start..start + n], &sum[..]].concat();
        stacked.push(DMatrix::from_column_slice(n, 3, &cols));
        start += n;
    }
    let refs: Vec<Option<&DMatrix<f64>>> = stacked.iter().map(Some).collect();
    let batch = rec.hvp_batch(&refs).unwrap();
    let col = |j: usize| -> Vec<f64> {
        batch
            .iter()
            .flat_map(|b| b.column(j).iter().copied().collect::<Vec<_>>())
            .collect()
    };
    let wscale = hscale.max(norm_inf(&hw));
    check_close(
        "hvp_batch column 0 vs hvp_mat(v)",
        &col(0),
        &hv,
        MODES_REL,
        wscale,
    )?;
    check_close(
        "hvp_batch column 1 vs hvp_mat(w)",
        &col(1),
        &hw,
        MODES_REL,
        wscale,
    )?;
    let sum: Vec<f64> = hv.iter().zip(&hw).map(|(a, b)| a + b).collect();
    check_close(
        "hvp_batch column 2 vs H v + H w",
        &col(2),
        &sum,
        MODES_REL,
        wscale,
    )?;

    // central differences, if every difference point takes the same branches
    let s0 = signature(p);
    let same = |z: &[f64]| signature(&unflatten(z, &shp)) == s0;
    let mut xp = x.clone();
    let mut g_fd = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let h = step(x[i]);
        xp[i] = x[i] + h;
        let (fp, hp) = (plain(&xp), xp[i]);
        prop_assume!(same(&xp));
        xp[i] = x[i] - h;
        let (fm, hm) = (plain(&xp), xp[i]);
        prop_assume!(same(&xp));
        xp[i] = x[i];
        g_fd.push((fp - fm) / (hp - hm));
    }
    let fscale = 1.0f64.max(fx.abs());
    check_close(
        "gradient: MatVar vs central differences",
        &gf,
        &g_fd,
        FD_REL,
        fscale,
    )?;

    // Hessian-vector product vs central differences of the gradient along v
    let scale = x.iter().fold(1.0f64, |m, a| m.max(a.abs()));
    let h = common::H_REL * scale / norm_inf(&vf).max(1e-300);
    let xp: Vec<f64> = x.iter().zip(&vf).map(|(a, d)| a + h * d).collect();
    let xm: Vec<f64> = x.iter().zip(&vf).map(|(a, d)| a - h * d).collect();
    prop_assume!(same(&xp) && same(&xm));
    let gp = flatten(&value_and_grad_mat(f, &unflatten(&xp, &shp)).unwrap().1);
    let gm = flatten(&value_and_grad_mat(f, &unflatten(&xm, &shp)).unwrap().1);
    let hv_fd: Vec<f64> = gp
        .iter()
        .zip(&gm)
        .map(|(a, b)| (a - b) / (2.0 * h))
        .collect();
    let s = fscale.max(gscale).max(hscale) * norm_inf(&vf).max(1.0);
    check_close(
        "hvp_mat vs central differences of the gradient",
        &hv,
        &hv_fd,
        FD_REL,
        s,
    )
}

fn smooth(_: &[DMatrix<f64>]) -> Vec<i8> {
    Vec::new()
}

// ---------------------------------------------------------------------------------------
// Every primitive on its own (cases from common::prims)
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(common::config(64))]

    /// A random primitive with random shapes and values.
    #[test]
    fn random_primitive(case in any_prim_case()) {
        check_all(&case.f, &case.p, &case.v, &smooth)?;
    }
}

/// Every primitive, each with its own random cases, so none is left to chance.
#[test]
fn every_primitive() {
    use proptest::test_runner::TestRunner;
    for prim in all_prims() {
        let mut runner = TestRunner::new(common::config(12));
        runner
            .run(&prim_case(prim), |case| {
                check_all(&case.f, &case.p, &case.v, &smooth)
            })
            .unwrap_or_else(|e| panic!("{prim:?}: {e}"));
    }
}

/// The matrixmultiply path (every dimension above 5) and the small path, deterministic.
#[test]
fn matmul_on_both_sides_of_the_threshold() {
    for dims in [
        (6, 7, 8),
        (9, 6, 6),
        (2, 3, 4),
        (5, 5, 5),
        (6, 2, 7),
        (7, 8, 1),
    ] {
        let pool: Vec<f64> = (0..300).map(|i| ((i as f64) * 0.37).sin()).collect();
        let case = build_case(Prim::MatMul, dims, [0; 4], &pool);
        let mut runner = proptest::test_runner::TestRunner::new(common::config(1));
        runner
            .run(&Just(case), |c| check_all(&c.f, &c.p, &c.v, &smooth))
            .unwrap_or_else(|e| panic!("matmul {dims:?}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------
// Random compositions: straight-line programs on square matrices
// ---------------------------------------------------------------------------------------

/// One matrix instruction. Like the scalar programs, each keeps entries of its result in
/// [-3, 3] when its operands are there, and stays inside every function's domain.
#[derive(Clone, Copy, Debug)]
enum MOp {
    /// a b / (3n)
    MatMul,
    Transpose,
    /// (a + b) / 2
    Add,
    /// (a - b) / 2
    Sub,
    /// a .* b / 3
    MulElem,
    /// a ./ (b.^2 + 1)
    DivElem,
    /// (a + row i of b) / 2
    AddRow,
    /// (a + column j of b) / 2
    AddCol,
    /// a * tanh(b[i, j]): a scalar variable from a matrix, through a scalar op, scales
    ScaleByEntry,
    /// a * mean(b) / 3
    ScaleByMean,
    /// exp(0.35 a)
    Exp,
    /// ln(softplus(a) + 0.1)
    Ln,
    /// sqrt(0.9 a.^2 + 0.25)
    Sqrt,
    Tanh,
    Sigmoid,
    /// softplus(a) - 0.05
    Softplus,
    Relu,
    Abs,
    /// a.^2 / 3
    Square,
    Sin,
    Cos,
    /// columns j.. j+n of [a b]
    HCatWindow,
    /// rows i.. i+n of [a; b]
    VCatWindow,
    /// [a(i.., :); a(..i, :)] (rows rotated by slicing and stacking)
    RotateRows,
    /// a as a row of n^2 entries and back
    ReshapeRoundTrip,
    /// [a; b] as one column of 2 n^2 entries, and the n x n block of it from entry i n
    ColumnBlock,
    /// the transpose of a, rebuilt from its entries as scalars, plus the reversed
    /// column-major order of b
    FromEntries,
    /// -a + c
    NegAddC,
}

const MOPS: [MOp; 28] = [
    MOp::MatMul,
    MOp::Transpose,
    MOp::Add,
    MOp::Sub,
    MOp::MulElem,
    MOp::DivElem,
    MOp::AddRow,
    MOp::AddCol,
    MOp::ScaleByEntry,
    MOp::ScaleByMean,
    MOp::Exp,
    MOp::Ln,
    MOp::Sqrt,
    MOp::Tanh,
    MOp::Sigmoid,
    MOp::Softplus,
    MOp::Relu,
    MOp::Abs,
    MOp::Square,
    MOp::Sin,
    MOp::Cos,
    MOp::HCatWindow,
    MOp::VCatWindow,
    MOp::RotateRows,
    MOp::ReshapeRoundTrip,
    MOp::ColumnBlock,
    MOp::FromEntries,
    MOp::NegAddC,
];

#[derive(Clone, Debug)]
struct MInstr {
    op: MOp,
    a: usize,
    b: usize,
    i: usize,
    j: usize,
    c: f64,
}

/// Registers: two n x n parameter matrices, then one per instruction. The value is
/// `sum_k <R_k, W_k> / n` over instruction registers with fixed weights `W_k`, plus
/// `|R_last|^2 / (10 n)`.
#[derive(Clone, Debug)]
struct MatProgram {
    n: usize,
    instrs: Vec<MInstr>,
}

impl MatProgram {
    fn run<M: MatOps>(&self, p: &[M], kinks: &mut Vec<f64>) -> M::Scalar {
        let n = self.n;
        let mut r: Vec<M> = p.to_vec();
        for ins in &self.instrs {
            let len = r.len();
            let a = &r[len - 1 - ins.a % len];
            let b = &r[ins.b % len];
            let (i, j) = (ins.i % n, ins.j % n);
            let y = match ins.op {
                MOp::MatMul => a.matmul(b).scale_f64(1.0 / (3.0 * n as f64)),
                MOp::Transpose => a.transpose(),
                MOp::Add => a.add(b).scale_f64(0.5),
                MOp::Sub => a.sub(b).scale_f64(0.5),
                MOp::MulElem => a.mul_elem(b).scale_f64(1.0 / 3.0),
                MOp::DivElem => a.div_elem(&b.square().add_f64(1.0)),
                MOp::AddRow => a.add_row(&b.rows(i, 1)).scale_f64(0.5),
                MOp::AddCol => a.add_col(&b.columns(j, 1)).scale_f64(0.5),
                MOp::ScaleByEntry => a.scale(b.get(i, j).tanh()),
                MOp::ScaleByMean => a.scale(b.mean() * (1.0 / 3.0)),
                MOp::Exp => a.scale_f64(0.35).exp(),
                MOp::Ln => a.softplus().add_f64(0.1).ln(),
                MOp::Sqrt => a.square().scale_f64(0.9).add_f64(0.25).sqrt(),
                MOp::Tanh => a.tanh(),
                MOp::Sigmoid => a.sigmoid(),
                MOp::Softplus => a.softplus().add_f64(-0.05),
                MOp::Relu | MOp::Abs => {
                    kinks.extend(a.value().iter());
                    a.unary(if matches!(ins.op, MOp::Relu) {
                        Unary::Relu
                    } else {
                        Unary::Abs
                    })
                }
                MOp::Square => a.square().scale_f64(1.0 / 3.0),
                MOp::Sin => a.unary(Unary::Sin),
                MOp::Cos => a.unary(Unary::Cos),
                MOp::HCatWindow => M::hcat(&[a.clone(), b.clone()]).columns(j, n),
                MOp::VCatWindow => M::vcat(&[a.clone(), b.clone()]).rows(i, n),
                MOp::RotateRows if n > 1 => {
                    let k = 1 + i % (n - 1);
                    M::vcat(&[a.rows(k, n - k), a.rows(0, k)])
                }
                MOp::RotateRows => a.clone(),
                MOp::ReshapeRoundTrip => a.reshape(1, n * n).reshape(n, n),
                MOp::ColumnBlock => M::vcat(&[a.clone(), b.clone()])
                    .reshape(2 * n * n, 1)
                    .column_block(i * n, n, n),
                MOp::FromEntries => {
                    let data: Vec<M::Scalar> = (0..n * n)
                        .map(|k| {
                            a.get(k / n, k % n) * 0.5
                                + b.get((n * n - 1 - k) % n, (n * n - 1 - k) / n) * 0.5
                        })
                        .collect();
                    a.from_scalars_like(n, n, &data)
                }
                MOp::NegAddC => a.neg().scale_f64(0.75).add_f64(0.75 * ins.c),
            };
            r.push(y);
        }
        let last = r.last().unwrap().clone();
        let nf = n as f64;
        let mut y = last.sq_norm() * (0.1 / nf);
        for (k, reg) in r[2..].iter().enumerate() {
            let w = DMatrix::from_fn(n, n, |i, j| {
                (1.3 * i as f64 + 0.7 * j as f64 + k as f64).sin()
            });
            y += reg.dot(&reg.constant_like(w)) * (1.0 / nf);
        }
        y
    }

    fn signature(&self, p: &[DMatrix<f64>]) -> Vec<i8> {
        let mut kinks = Vec::new();
        self.run(p, &mut kinks);
        kinks
            .iter()
            .map(|&k| (k > 0.0) as i8 - (k < 0.0) as i8)
            .collect()
    }
}

impl MatFn for MatProgram {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        self.run(p, &mut Vec::new())
    }
}

fn mat_program() -> impl Strategy<Value = (MatProgram, Vec<DMatrix<f64>>, Vec<DMatrix<f64>>)> {
    let instr = (
        0..MOPS.len(),
        prop_oneof![Just(0usize), 0usize..16],
        0usize..16,
        0usize..16,
        0usize..16,
        -1.0f64..1.0,
    )
        .prop_map(|(o, a, b, i, j, c)| MInstr {
            op: MOPS[o],
            a,
            b,
            i,
            j,
            c,
        });
    (common::dim(), proptest::collection::vec(instr, 1..=10)).prop_flat_map(|(n, instrs)| {
        (
            Just(MatProgram { n, instrs }),
            proptest::collection::vec(common::mat(n, n, -3.0, 3.0), 2),
            proptest::collection::vec(common::mat(n, n, -1.0, 1.0), 2),
        )
    })
}

proptest! {
    #![proptest_config(common::config(64))]

    /// Random compositions of matrix primitives.
    #[test]
    fn random_matrix_programs((prog, p, v) in mat_program()) {
        check_all(&prog, &p, &v, &|q| prog.signature(q))?;
    }
}

// ---------------------------------------------------------------------------------------
// A two-layer MLP loss, also written by hand in scalar mode
// ---------------------------------------------------------------------------------------

/// `mean((tanh(X W1 + b1) W2 + b2 - T).^2) + 0.01 (|W1|^2 + |W2|^2)` with bias rows.
#[derive(Clone, Debug)]
struct MlpLoss {
    x: DMatrix<f64>,
    t: DMatrix<f64>,
}

impl MatFn for MlpLoss {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let (w1, b1, w2, b2) = (&p[0], &p[1], &p[2], &p[3]);
        let x = w1.constant_like(self.x.clone());
        let t = w1.constant_like(self.t.clone());
        let h = x.matmul(w1).add_row(b1).tanh();
        let out = h.matmul(w2).add_row(b2);
        out.sub(&t).square().mean() + (w1.sq_norm() + w2.sq_norm()) * 0.01
    }
}

/// The same loss written with scalar loops over `Real`, on flattened (column-major)
/// parameters: an independent second implementation.
struct MlpScalar<'a> {
    loss: &'a MlpLoss,
    hidden: usize,
}

impl ScalarFn for MlpScalar<'_> {
    fn eval<S: Real>(&self, z: &[S]) -> S {
        let (batch, d) = self.loss.x.shape();
        let (hd, o) = (self.hidden, self.loss.t.ncols());
        let w1 = |i: usize, j: usize| z[i + j * d];
        let b1 = |j: usize| z[d * hd + j];
        let off2 = d * hd + hd;
        let w2 = |i: usize, j: usize| z[off2 + i + j * hd];
        let b2 = |j: usize| z[off2 + hd * o + j];
        let mut loss = S::zero();
        for s in 0..batch {
            let hrow: Vec<S> = (0..hd)
                .map(|j| {
                    let mut a = b1(j);
                    for i in 0..d {
                        a += w1(i, j) * self.loss.x[(s, i)];
                    }
                    a.tanh()
                })
                .collect();
            for k in 0..o {
                let mut y = b2(k);
                for j in 0..hd {
                    y += hrow[j] * w2(j, k);
                }
                loss += (y - self.loss.t[(s, k)]).square();
            }
        }
        let reg: S = z[..d * hd]
            .iter()
            .chain(&z[off2..off2 + hd * o])
            .map(|&w| w * w)
            .sum();
        loss / (batch * o) as f64 + reg * 0.01
    }
}

fn mlp_case() -> impl Strategy<Value = (MlpLoss, Vec<DMatrix<f64>>, Vec<DMatrix<f64>>)> {
    (common::dim(), common::dim(), common::dim(), common::dim()).prop_flat_map(
        |(batch, d, hd, o)| {
            (
                common::mat(batch, d, -2.0, 2.0),
                common::mat(batch, o, -1.0, 1.0),
                (
                    common::mat(d, hd, -1.0, 1.0),
                    common::mat(1, hd, -0.5, 0.5),
                    common::mat(hd, o, -1.0, 1.0),
                    common::mat(1, o, -0.5, 0.5),
                ),
                (
                    common::mat(d, hd, -1.0, 1.0),
                    common::mat(1, hd, -1.0, 1.0),
                    common::mat(hd, o, -1.0, 1.0),
                    common::mat(1, o, -1.0, 1.0),
                ),
            )
                .prop_map(|(x, t, (w1, b1, w2, b2), (v1, c1, v2, c2))| {
                    (MlpLoss { x, t }, vec![w1, b1, w2, b2], vec![v1, c1, v2, c2])
                })
        },
    )
}

proptest! {
    #![proptest_config(common::config(48))]

    /// The MLP loss: every agreement of `check_all`, plus the hand-written scalar version.
    #[test]
    fn mlp_loss((loss, p, v) in mlp_case()) {
        check_all(&loss, &p, &v, &smooth)?;
        let hidden = p[0].ncols();
        let scalar = MlpScalar { loss: &loss, hidden };
        let (x, vf) = (flatten(&p), flatten(&v));
        let (y, g) = value_and_grad_mat(&loss, &p).unwrap();
        check_close(
            "MLP value: MatVar vs hand-written scalar",
            &[y],
            &[scalar.eval(&x)],
            MODES_REL,
            1.0,
        )?;
        let gs = grad(&scalar, &x).unwrap();
        let gf = flatten(&g);
        check_close(
            "MLP gradient: MatVar vs hand-written Var",
            &gf,
            &gs,
            MODES_REL,
            1.0f64.max(norm_inf(&gs)),
        )?;
        let hv = flatten(&hvp_mat(&loss, &p, &v).unwrap());
        let hvs = hvp(&scalar, &x, &vf).unwrap();
        check_close(
            "MLP hvp: DualMat<MatVar> vs hand-written Dual<Var>",
            &hv,
            &hvs,
            MODES_REL,
            1.0f64.max(norm_inf(&hvs)),
        )?;
    }
}

/// `RefMat` itself is a faithful reference: on plain `f64` it reproduces `DMatrix<f64>`
/// for every primitive (otherwise the comparisons above would prove nothing).
#[test]
fn reference_matches_plain_evaluation() {
    for prim in all_prims() {
        let pool: Vec<f64> = (0..400).map(|i| ((i as f64) * 0.731).sin()).collect();
        for dims in [(2, 3, 4), (7, 6, 8)] {
            let case = build_case(prim, dims, [1, 2, 3, 4], &pool);
            let plain = case.f.eval(&case.p);
            let refm: Vec<RefMat<f64>> = case.p.iter().cloned().map(RefMat).collect();
            let r = case.f.eval(&refm);
            assert!(
                (plain - r).abs() <= 1e-12 * plain.abs().max(1.0),
                "{prim:?} {dims:?}: {plain} vs {r}"
            );
        }
    }
}
