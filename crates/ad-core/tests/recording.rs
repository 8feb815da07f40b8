//! Record once, many products (`Recording`).
//!
//! Guarantees, for a function of two blocks with two output blocks (`tanh(W X) + B`-like
//! layer and a scaled elementwise square), at random points, cotangents and tangents:
//! - `outputs()` equals plain evaluation; `vjp(u)` equals the gradient of `<u, F(p)>` from
//!   a new recording (`value_and_grad_mat`); `jvp(v)` equals forward mode (`DualMat`) and
//!   central differences of plain evaluation;
//! - the dot-product test `<vjp(u), v> == <u, jvp(v)>` holds;
//! - repeated sweeps give identical results; the batched variants equal the single
//!   products column by column, and `U^T (J V) == (J^T U)^T V`.
//!
//! Tolerances: `1e-12` relative for exact modes (same products, other summation order);
//! `1e-6` for central differences (see `tests/matrix_modes.rs`).

mod common;

use ad_core::{AdError, DualMat, MatFn, MatOps, Recording, value_and_grad_mat};
use common::{check_close, dotv, flatten, mat, norm_inf, norm2};
use nalgebra::DMatrix;
use proptest::prelude::*;

const MODES_REL: f64 = 1e-12;
const FD_REL: f64 = 1e-6;

/// `F(W, X) = (tanh(W X), 0.5 (W X) .* (W X))`, written once.
fn f<M: MatOps>(p: &[M]) -> Vec<M> {
    let z = p[0].matmul(&p[1]);
    vec![z.tanh(), z.mul_elem(&z).scale_f64(0.5)]
}

/// `<u, F(p)>`, whose gradient is `J^T u`.
struct Contracted(Vec<DMatrix<f64>>);
impl MatFn for Contracted {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let ys = f(p);
        let mut acc = ys[0].dot(&ys[0].constant_like(self.0[0].clone()));
        acc += ys[1].dot(&ys[1].constant_like(self.0[1].clone()));
        acc
    }
}

type Case = (Vec<DMatrix<f64>>, Vec<DMatrix<f64>>, Vec<DMatrix<f64>>);

fn case() -> impl Strategy<Value = Case> {
    (1usize..=6, 1usize..=6, 1usize..=6).prop_flat_map(|(m, n, k)| {
        (
            (mat(m, n, -1.0, 1.0), mat(n, k, -1.0, 1.0)),
            (mat(m, n, -1.0, 1.0), mat(n, k, -1.0, 1.0)),
            (mat(m, k, -1.0, 1.0), mat(m, k, -1.0, 1.0)),
        )
            .prop_map(|((w, x), (dw, dx), (u0, u1))| (vec![w, x], vec![dw, dx], vec![u0, u1]))
    })
}

proptest! {
    #![proptest_config(common::config(48))]

    #[test]
    fn replayed_products_agree_with_rerecording_forward_mode_and_differences((p, v, u) in case()) {
        let rec = Recording::new(&p, f).unwrap();
        let plain = f(&p);
        check_close("outputs", &flatten(&rec.outputs()), &flatten(&plain), 0.0, 1.0)?;

        // VJP vs a new recording of <u, F>
        let bar = rec.vjp(&u).unwrap();
        let (_, g) = value_and_grad_mat(&Contracted(u.clone()), &p).unwrap();
        let scale = 1.0f64.max(norm_inf(&flatten(&g)));
        check_close("vjp vs re-recording", &flatten(&bar), &flatten(&g), MODES_REL, scale)?;

        // JVP vs forward mode and central differences
        let dot = rec.jvp(&v).unwrap();
        let duals: Vec<DualMat<DMatrix<f64>>> =
            p.iter().zip(&v).map(|(a, d)| DualMat::new(a.clone(), d.clone())).collect();
        let fwd: Vec<DMatrix<f64>> = f(&duals).into_iter().map(|d| d.eps).collect();
        let jscale = 1.0f64.max(norm_inf(&flatten(&fwd)));
        check_close("jvp vs DualMat", &flatten(&dot), &flatten(&fwd), MODES_REL, jscale)?;
        let h = 1e-6;
        let shifted = |s: f64| -> Vec<DMatrix<f64>> {
            p.iter().zip(&v).map(|(a, d)| a + d * (s * h)).collect()
        };
        let (fp, fm) = (flatten(&f(&shifted(1.0))), flatten(&f(&shifted(-1.0))));
        let fd: Vec<f64> = fp.iter().zip(&fm).map(|(a, b)| (a - b) / (2.0 * h)).collect();
        check_close("jvp vs central differences", &flatten(&dot), &fd, FD_REL, jscale)?;

        // dot-product test
        let (vf, uf, bf, df) = (flatten(&v), flatten(&u), flatten(&bar), flatten(&dot));
        let (lhs, rhs) = (dotv(&bf, &vf), dotv(&uf, &df));
        let s = norm2(&bf) * norm2(&vf) + norm2(&uf) * norm2(&df);
        prop_assert!((lhs - rhs).abs() <= MODES_REL * s.max(1e-300), "{lhs} vs {rhs}");

        // replay is repeatable
        prop_assert_eq!(flatten(&rec.vjp(&u).unwrap()), bf);
        prop_assert_eq!(flatten(&rec.jvp(&v).unwrap()), df);
    }

    #[test]
    fn batched_products_are_columns_of_single_ones((p, v, u) in case(), k in 1usize..4) {
        let rec = Recording::new(&p, f).unwrap();
        // k directions: the given one and scaled/shifted variants, stacked as columns
        let stack = |blocks: &[DMatrix<f64>]| -> Vec<DMatrix<f64>> {
            blocks.iter().map(|b| DMatrix::from_fn(b.len(), k, |i, j| b[i] * (1.0 + j as f64) - 0.1 * j as f64)).collect()
        };
        let (vs, us) = (stack(&v), stack(&u));
        let jv = rec.jvp_batch(&vs).unwrap();
        let ju = rec.vjp_batch(&us).unwrap();
        for j in 0..k {
            let col = |ms: &[DMatrix<f64>], shapes: &[(usize, usize)]| -> Vec<DMatrix<f64>> {
                ms.iter().zip(shapes).map(|(m, &(r, c))| DMatrix::from_column_slice(r, c, m.column(j).as_slice())).collect()
            };
            let single = rec.jvp(&col(&vs, &rec.input_shapes())).unwrap();
            prop_assert_eq!(flatten(&single), flatten(&col(&jv, &rec.output_shapes())));
            let single = rec.vjp(&col(&us, &rec.output_shapes())).unwrap();
            prop_assert_eq!(flatten(&single), flatten(&col(&ju, &rec.input_shapes())));
        }
        // U^T (J V) == (J^T U)^T V, a k x k identity of bilinear forms
        let sum_tr = |a: &[DMatrix<f64>], b: &[DMatrix<f64>]| -> DMatrix<f64> {
            a.iter().zip(b).map(|(x, y)| x.transpose() * y).fold(DMatrix::zeros(k, k), |s, m| s + m)
        };
        let (lhs, rhs) = (sum_tr(&us, &jv), sum_tr(&ju, &vs));
        let s = 1.0f64.max(lhs.abs().max()).max(rhs.abs().max());
        prop_assert!((lhs - rhs).abs().max() <= 1e-11 * s); // sums of ~100 O(10) terms
    }
}

#[test]
#[should_panic(expected = "Recording::jvp: shapes differ: 2x3 vs 3x2")]
fn wrong_direction_shapes_panic_with_both_shapes() {
    let rec = Recording::new(&[DMatrix::zeros(2, 3)], |x| vec![x[0].tanh()]).unwrap();
    let _ = rec.jvp(&[DMatrix::zeros(3, 2)]);
}

/// Non-finite points, cotangents and tangents are errors naming the entry, not NaN products.
#[test]
fn non_finite_points_and_directions_are_errors() {
    let mut at = DMatrix::from_element(2, 1, 0.5);
    at[1] = f64::NAN;
    match Recording::new(&[at], |x| vec![x[0].tanh()]) {
        Err(AdError::NonFinite { what, index, value }) => {
            assert_eq!(what, "recording point (input blocks)");
            assert_eq!(index, 1);
            assert!(value.is_nan());
        }
        other => panic!("expected NonFinite, got {:?}", other.map(|_| ())),
    }
    let rec = Recording::new(&[DMatrix::from_element(2, 1, 0.5)], |x| vec![x[0].tanh()]).unwrap();
    let bad = DMatrix::from_column_slice(2, 1, &[f64::INFINITY, 0.0]);
    match rec.vjp(std::slice::from_ref(&bad)) {
        Err(AdError::NonFinite { what, index, .. }) => {
            assert_eq!((what, index), ("cotangents out_bar", 0))
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    match rec.jvp(&[bad]) {
        Err(AdError::NonFinite { what, index, .. }) => {
            assert_eq!((what, index), ("tangents in_dot", 0))
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

/// The tape's forward sweep through products of constants (whose tangents are known zeros
/// of the product's shape) and a mean: the same directional derivative as forward mode on
/// duals.
#[test]
fn forward_sweep_through_constant_products_matches_duals() {
    let a = DMatrix::from_fn(3, 2, |i, j| 0.3 * i as f64 - 0.2 * j as f64 + 0.1);
    let b = DMatrix::from_fn(2, 4, |i, j| 0.5 - 0.1 * (i + 2 * j) as f64);
    let w0 = DMatrix::from_fn(3, 4, |i, j| 0.05 * (i * 4 + j) as f64 - 0.2);
    let dir = DMatrix::from_fn(3, 4, |i, j| ((i + j) % 3) as f64 - 1.0);
    fn f<M: MatOps>(w: &M, a: &DMatrix<f64>, b: &DMatrix<f64>) -> M::Scalar {
        let ab = w
            .constant_like(a.clone())
            .matmul(&w.constant_like(b.clone()));
        ab.add(w).tanh().mean() + ab.mul_elem(w).sum()
    }
    let tape = ad_core::Tape::new();
    let w = tape.mat_var(w0.clone());
    let y = f(&w, &a, &b);
    let t = tape
        .forward(&ad_core::Seeds::new().mat(&w, dir.clone()))
        .unwrap()
        .of(y);
    let dual = f(&DualMat::new(w0, dir), &a, &b).eps;
    check_close("forward sweep vs duals", &[t], &[dual], MODES_REL, 1.0).unwrap();
}

/// Nested forward mode (`DualMat<DualMat<_>>`) gives second directional derivatives: for
/// f(w) = ‖A w‖², vᵀ∇²f v = 2‖A v‖², through products whose inner tangents are not zero.
#[test]
fn nested_dual_matrices_give_second_directional_derivatives() {
    let a = DMatrix::from_fn(4, 3, |i, j| 0.2 * i as f64 + 0.3 * j as f64 - 0.4);
    let w0 = DMatrix::from_column_slice(3, 1, &[0.5, -1.0, 2.0]);
    let v = DMatrix::from_column_slice(3, 1, &[1.0, 0.5, -0.25]);
    let zero = DMatrix::zeros(3, 1);
    let w = DualMat::new(DualMat::new(w0, v.clone()), DualMat::new(v.clone(), zero));
    let aw = w.constant_like(a.clone()).matmul(&w);
    let y = aw.sq_norm();
    let want = 2.0 * (&a * &v).norm_squared();
    assert!(
        (y.eps.eps - want).abs() <= 1e-12 * want,
        "{} vs {want}",
        y.eps.eps
    );
}
