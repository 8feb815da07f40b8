//! Specification of the operators on `MatVar` and `DualMat` (`src/matrix/operators.rs`):
//! every operator gives exactly what its `MatOps` call gives (values bit for bit, and the
//! same gradients and tangents), for owned and borrowed operands; and the elementwise
//! methods are the `Unary` functions.

mod common;

use ad_core::{Dual, DualMat, MatOps, MatVar, Tape, Unary, Var};
use nalgebra::DMatrix;
use proptest::prelude::*;

fn mat(r: usize, c: usize) -> impl Strategy<Value = DMatrix<f64>> {
    prop::collection::vec(-2.0..2.0f64, r * c).prop_map(move |v| DMatrix::from_vec(r, c, v))
}

/// The expression written with operators, in every owned/borrowed combination.
fn with_operators<M, S>(a: &M, b: &M, s: S, c: f64) -> Vec<M>
where
    M: MatOps,
    for<'x> &'x M: std::ops::Add<&'x M, Output = M>
        + std::ops::Sub<&'x M, Output = M>
        + std::ops::Neg<Output = M>
        + std::ops::Mul<f64, Output = M>
        + std::ops::Add<f64, Output = M>
        + std::ops::Sub<f64, Output = M>
        + std::ops::Mul<S, Output = M>,
    M: std::ops::Add<M, Output = M>
        + std::ops::Sub<M, Output = M>
        + std::ops::Add<f64, Output = M>
        + std::ops::Mul<f64, Output = M>
        + std::ops::Mul<S, Output = M>
        + std::ops::Neg<Output = M>,
    for<'x> M: std::ops::Add<&'x M, Output = M> + std::ops::Sub<&'x M, Output = M>,
    f64: std::ops::Mul<M, Output = M> + std::ops::Sub<M, Output = M> + std::ops::Add<M, Output = M>,
    S: Copy + std::ops::Mul<M, Output = M>,
{
    vec![
        a + b,
        a.clone() + b.clone(),
        a.clone() + b,
        a - b,
        a.clone() - b.clone(),
        a.clone() - b,
        -a,
        -a.clone(),
        a * c,
        a.clone() * c,
        c * a.clone(),
        a + c,
        a.clone() + c,
        c + a.clone(),
        a - c,
        c - a.clone(),
        a * s,
        a.clone() * s,
        s * a.clone(),
        (a + b) * 2.0 - b * s + 1.0,
    ]
}

/// The same expressions through `MatOps` calls, one call per expression (so that the tape
/// holds the same nodes, and gradients accumulate in the same order).
fn with_calls<M: MatOps>(a: &M, b: &M, s: M::Scalar, c: f64) -> Vec<M> {
    let mut out = Vec::new();
    for _ in 0..3 {
        out.push(a.add(b));
    }
    for _ in 0..3 {
        out.push(a.sub(b));
    }
    out.extend([a.neg(), a.neg()]);
    for _ in 0..3 {
        out.push(a.scale_f64(c));
    }
    for _ in 0..3 {
        out.push(a.add_f64(c));
    }
    out.extend([a.add_f64(-c), a.neg().add_f64(c)]);
    for _ in 0..3 {
        out.push(a.scale(s));
    }
    out.push(a.add(b).scale_f64(2.0).sub(&b.scale(s)).add_f64(1.0));
    out
}

fn same_bits(x: &DMatrix<f64>, y: &DMatrix<f64>) -> bool {
    x.shape() == y.shape()
        && x.iter()
            .zip(y.iter())
            .all(|(p, q)| p.to_bits() == q.to_bits())
}

proptest! {
    #![proptest_config(common::config(64))]

    /// MatVar: values bit for bit, and gradients of a weighted sum of every expression.
    #[test]
    fn matvar_operators_equal_matops_calls(
        a in mat(2, 3), b in mat(2, 3), w in mat(2, 3), s in -2.0..2.0f64, c in -3.0..3.0f64,
    ) {
        let grads = |use_ops: bool| {
            let tape = Tape::new();
            let (av, bv, sv) = (tape.mat_var(a.clone()), tape.mat_var(b.clone()), tape.var(s));
            let ws = tape.constant_mat(w.clone());
            let outs: Vec<MatVar> = if use_ops {
                with_operators(&av, &bv, sv, c)
            } else {
                with_calls(&av, &bv, sv, c)
            };
            let values: Vec<DMatrix<f64>> = outs.iter().map(|m| m.value()).collect();
            let total = outs.iter().fold(tape.var(0.0), |acc: Var, m| acc + m.dot(&ws));
            let g = tape.gradient(total).unwrap();
            (values, g.wrt_mat(&av), g.wrt_mat(&bv), g.wrt(sv))
        };
        let (ops, calls) = (grads(true), grads(false));
        for (x, y) in ops.0.iter().zip(&calls.0) {
            prop_assert!(same_bits(x, y));
        }
        prop_assert!(same_bits(&ops.1, &calls.1) && same_bits(&ops.2, &calls.2));
        prop_assert_eq!(ops.3.to_bits(), calls.3.to_bits());
    }

    /// DualMat over plain matrices: values and tangents bit for bit.
    #[test]
    fn dualmat_operators_equal_matops_calls(
        a in mat(3, 2), da in mat(3, 2), b in mat(3, 2), db in mat(3, 2),
        s in -2.0..2.0f64, ds in -1.0..1.0f64, c in -3.0..3.0f64,
    ) {
        let (av, bv) = (DualMat::new(a, da), DualMat::new(b, db));
        let sv = Dual::new(s, ds);
        let ops = with_operators(&av, &bv, sv, c);
        let calls = with_calls(&av, &bv, sv, c);
        prop_assert_eq!(ops.len(), 20);
        for (x, y) in ops.iter().zip(&calls) {
            prop_assert!(same_bits(&x.re, &y.re) && same_bits(&x.eps, &y.eps));
        }
    }
}

/// Second order: `DualMat<MatVar>` operators record the same nodes as the calls.
#[test]
fn dualmat_over_matvar_operators_work() {
    let tape = Tape::new();
    let a = tape.mat_var(DMatrix::from_row_slice(2, 2, &[1.0, -2.0, 0.5, 3.0]));
    let da = tape.constant_mat(DMatrix::from_element(2, 2, 1.0));
    let b = tape.mat_var(DMatrix::from_row_slice(2, 2, &[0.25, 1.0, -1.0, 2.0]));
    let db = tape.constant_mat(DMatrix::zeros(2, 2));
    let s = Dual::new(tape.var(1.5), tape.var(0.0));
    let (x, y) = (DualMat::new(a, da), DualMat::new(b, db));
    let ops = (&x + &y) * 2.0 - &y * s + 1.0;
    let calls = x.add(&y).scale_f64(2.0).sub(&y.scale(s)).add_f64(1.0);
    assert!(same_bits(&ops.re.value(), &calls.re.value()));
    assert!(same_bits(&ops.eps.value(), &calls.eps.value()));
    // d/da of sum(eps) = d/da of sum(2 da) = 0; d/d s.re of sum(eps) = -sum(db) = 0;
    // d/da of sum(re) = 2 everywhere.
    let g = tape.gradient(ops.re.sum()).unwrap();
    assert_eq!(g.wrt_mat(&a), DMatrix::from_element(2, 2, 2.0));
}

#[test]
fn elementwise_methods_are_the_unary_functions() {
    let x = DMatrix::from_row_slice(2, 3, &[0.3, -1.2, 2.0, 0.0, 0.7, -0.4]);
    let tape = Tape::new();
    let xv = tape.mat_var(x.clone());
    let xd = DualMat::new(x.clone(), DMatrix::from_element(2, 3, 1.0));
    type Method<M> = fn(&M) -> M;
    type Row = (Unary, Method<MatVar>, Method<DualMat<DMatrix<f64>>>);
    let table: [Row; 3] = [
        (Unary::Abs, MatOps::abs, MatOps::abs),
        (Unary::Sin, MatOps::sin, MatOps::sin),
        (Unary::Cos, MatOps::cos, MatOps::cos),
    ];
    for (f, on_var, on_dual) in table {
        let want = x.map(|v| f.apply(v));
        assert!(same_bits(&on_var(&xv).value(), &want), "{f:?}");
        assert!(
            same_bits(&on_var(&xv).value(), &xv.unary(f).value()),
            "{f:?}"
        );
        let d = on_dual(&xd);
        assert!(
            same_bits(&d.re, &want) && same_bits(&d.eps, &xd.unary(f).eps),
            "{f:?}"
        );
    }
    // Plain matrices too (through the trait; DMatrix's own inherent `abs` agrees).
    assert!(same_bits(&MatOps::sin(&x), &x.map(f64::sin)));
    assert!(same_bits(&MatOps::abs(&x), &x.abs()));
}

#[test]
#[should_panic(expected = "shapes differ: 2x2 vs 3x2")]
fn adding_mismatched_shapes_panics_with_both() {
    let tape = Tape::new();
    let _ = tape.mat_var(DMatrix::zeros(2, 2)) + tape.mat_var(DMatrix::zeros(3, 2));
}

/// Matrices apply each `Unary` exactly as scalars do at signed zeros and infinities, where
/// every implementation is exact (`relu(-0) = +0`, `sqrt(-0) = -0`, `tanh(-inf) = -1`, ...).
#[test]
fn elementwise_matches_scalars_at_zeros_and_infinities() {
    let xs = [-0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
    let m = DMatrix::from_row_slice(1, xs.len(), &xs);
    for f in Unary::ALL {
        let got = m.unary(f);
        for (k, &x) in xs.iter().enumerate() {
            let (g, w) = (got[k], f.apply(x));
            assert!(
                g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                "{f:?}({x}): matrix {g:e} vs scalar {w:e}"
            );
        }
    }
}

/// ReLU and |·| have derivative 0 at ±0 in the matrix modes, as in the scalar ones (the
/// documented subgradient choice): reverse (tape) and forward (duals) alike.
#[test]
fn relu_and_abs_have_derivative_zero_at_zero_on_matrices() {
    let z = DMatrix::from_row_slice(1, 2, &[0.0, -0.0]);
    for f in [Unary::Relu, Unary::Abs] {
        let tape = Tape::new();
        let x = tape.mat_var(z.clone());
        let g = tape.gradient(x.unary(f).sum()).unwrap().wrt_mat(&x);
        assert_eq!(g.as_slice(), &[0.0, 0.0], "{f:?} on the tape");
        let d = DualMat::new(z.clone(), DMatrix::from_element(1, 2, 1.0)).unary(f);
        assert_eq!(d.eps.as_slice(), &[0.0, 0.0], "{f:?} forward");
    }
}

/// A product with an empty dimension contributes zero to the gradient and keeps what
/// other uses of the same variable contributed (the accumulation into an existing adjoint
/// is `y = 1·y + 0`).
#[test]
fn empty_products_keep_accumulated_gradients() {
    let x0 = DMatrix::from_column_slice(3, 1, &[1.0, -2.0, 0.5]);
    let tape = Tape::new();
    let x = tape.mat_var(x0.clone());
    let empty = x.constant_like(DMatrix::zeros(0, 3)).matmul(&x); // 0 x 1
    let loss = empty.sum() + x.sq_norm();
    let g = tape.gradient(loss).unwrap().wrt_mat(&x);
    assert_eq!(g, &x0 * 2.0);
}

/// `zeros_like` records a known zero on the tape: no buffer until a rule reads it, and
/// rules may skip it (`is_known_zero`); its value and its derivatives are zeros.
#[test]
fn zeros_like_is_a_known_zero() {
    let tape = Tape::new();
    let x = tape.mat_var(DMatrix::from_element(2, 3, 1.5));
    let z = x.zeros_like(2, 3);
    assert!(z.is_known_zero() && !x.is_known_zero());
    assert_eq!(z.value(), DMatrix::zeros(2, 3));
    let y = x.add(&z).mul_elem(&x).sum();
    let g = tape.gradient(y).unwrap();
    assert_eq!(g.wrt_mat(&x), DMatrix::from_element(2, 3, 3.0));
    assert_eq!(g.wrt_mat(&z), DMatrix::zeros(2, 3));
}

/// `column_block` of a block that does not fit, or of a matrix that is not a column, is a
/// programmer error: a panic naming the shapes, in the plain and the tape mode alike.
#[test]
fn column_block_outside_the_column_panics_with_the_shapes() {
    let cases: [(usize, usize, usize, usize, usize); 2] = [(7, 1, 3, 2, 3), (3, 2, 0, 1, 1)];
    for (rows, cols, offset, r, c) in cases {
        let plain = DMatrix::<f64>::zeros(rows, cols);
        let msg = std::panic::catch_unwind(|| plain.column_block(offset, r, c))
            .expect_err("plain: must panic");
        let msg = msg.downcast_ref::<String>().expect("a formatted message");
        assert!(msg.contains(&format!("of a {rows}x{cols} matrix")), "{msg}");
        let tape = Tape::new();
        let v = tape.mat_var(DMatrix::zeros(rows, cols));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            v.column_block(offset, r, c)
        }));
        assert!(caught.is_err(), "tape: must panic for {rows}x{cols}");
    }
}
