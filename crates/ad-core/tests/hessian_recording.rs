//! `HessianRecording`: second-order products recorded once.
//!
//! Guarantees (the matrix primitives and random programs are covered in matrix_modes.rs):
//! - scalar arithmetic between matrix reductions (products and quotients of variables,
//!   `powi`, `powf`, `ln_1p`, `recip`, `c / x`, every elementwise function on scalars) has
//!   its curvature recorded: Hessian-vector products match reverse-over-forward (`hvp_mat`),
//!   which matrix_modes.rs checks against central differences;
//! - the dense Hessian from one batched sweep is symmetric and equals `hvp_mat` on the
//!   unit vectors;
//! - so does a batch of permuted unit directions through ops where only one operand has a
//!   tangent (data over a variable, a variable over data, data scaled by a variable, a
//!   broadcast sum with data on either side), where
//!   only some entries of a matrix built from scalars have one, and where an op's own
//!   second-order rule is the only reader of a tangent (the sweep computes every tangent a
//!   rule reads, and none is mistaken for zero);
//! - a custom op on the tape is `AdError::CustomSecondOrder` naming it; a non-finite
//!   direction or point is `AdError::NonFinite` with its position and value.

mod common;

use ad_core::{
    AdError, CustomFn, FnRule, HessianRecording, MatFn, MatOps, Real, RuleError, hvp_mat,
};
use common::check_close;
use nalgebra::DMatrix;
use proptest::prelude::*;

/// Same derivative summed in a different order: see matrix_modes.rs (MODES_REL).
const MODES_REL: f64 = 1e-12;

/// Scalar arithmetic of every kind between matrix reductions of two blocks (2x2, 2x1).
struct ScalarMix;

impl MatFn for ScalarMix {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let s1 = p[0].sum();
        let s2 = p[1].get(1, 0);
        let s3 = p[0].sq_norm();
        let one = M::Scalar::from_f64(1.0);
        let t = s1 * s2 + s1 / (s3 + 1.0) + (s2 * s2 + 1.0).sqrt();
        let u = s2.powi(3) * 0.1 + (s3 + 1.5).powf(s2 * 0.3) + s3.ln_1p() + (s3 + 2.0).recip();
        let v = M::Scalar::from_f64(3.0) / (s3 + 2.0)
            + s1.sin() * s2.cos()
            + (s1 * 0.5).tanh()
            + (-s3 * 0.1).exp();
        let w = s1.softplus() + s2.sigmoid() + (s3 + one).ln() + s1.square() * 0.01;
        let m = p[0].scale(s2).matmul(&p[1]).tanh().sum();
        t + u + v + w + m + (s1 - s2) * (s2 - one)
    }
}

fn blocks(x: &[f64]) -> Vec<DMatrix<f64>> {
    vec![
        DMatrix::from_column_slice(2, 2, &x[..4]),
        DMatrix::from_column_slice(2, 1, &x[4..6]),
    ]
}

fn flat(ms: &[DMatrix<f64>]) -> Vec<f64> {
    ms.iter().flat_map(|m| m.iter().copied()).collect()
}

proptest! {
    #![proptest_config(common::config(48))]

    #[test]
    fn scalar_curvature_matches_reverse_over_forward(
        x in prop::collection::vec(-1.5f64..1.5, 6),
        v in prop::collection::vec(-1.0f64..1.0, 6),
    ) {
        let p = blocks(&x);
        let rec = HessianRecording::new(&p, |b| ScalarMix.eval(b)).unwrap();
        let hv = flat(&rec.hvp(&blocks(&v)).unwrap());
        let reference = flat(&hvp_mat(&ScalarMix, &p, &blocks(&v)).unwrap());
        let scale = reference.iter().fold(1.0f64, |m, a| m.max(a.abs()));
        check_close("HessianRecording vs hvp_mat", &hv, &reference, MODES_REL, scale)?;
    }

    #[test]
    fn dense_hessian_is_symmetric_and_matches_unit_products(
        x in prop::collection::vec(-1.5f64..1.5, 6),
    ) {
        let p = blocks(&x);
        let rec = HessianRecording::new(&p, |b| ScalarMix.eval(b)).unwrap();
        let cols0 = rec.hessian_columns(0).unwrap();
        let cols1 = rec.hessian_columns(1).unwrap();
        // H = [[H00, H01], [H10, H11]] with H[b', b] = cols_b[b']
        let mut h = DMatrix::zeros(6, 6);
        h.view_mut((0, 0), (4, 4)).copy_from(&cols0[0]);
        h.view_mut((4, 0), (2, 4)).copy_from(&cols0[1]);
        h.view_mut((0, 4), (4, 2)).copy_from(&cols1[0]);
        h.view_mut((4, 4), (2, 2)).copy_from(&cols1[1]);
        let scale = h.amax().max(1.0);
        prop_assert!((&h - h.transpose()).amax() <= MODES_REL * scale, "not symmetric: {h}");
        for i in 0..6 {
            let mut e = vec![0.0; 6];
            e[i] = 1.0;
            let col = flat(&hvp_mat(&ScalarMix, &p, &blocks(&e)).unwrap());
            check_close("Hessian column vs hvp_mat(e_i)", h.column(i).as_slice(), &col, MODES_REL, scale)?;
        }
    }
}

/// y = 2 x, with both rules; no second-order rule.
struct Double;
impl CustomFn for Double {
    type Rule = FnRule;
    fn name(&self) -> &str {
        "double"
    }
    fn linearize(&self, inputs: &[DMatrix<f64>]) -> Result<(Vec<DMatrix<f64>>, FnRule), RuleError> {
        let rule = FnRule::new(
            "double",
            |u: &[DMatrix<f64>]| Ok(vec![&u[0] * 2.0]),
            |v: &[DMatrix<f64>]| Ok(vec![&v[0] * 2.0]),
        );
        Ok((vec![&inputs[0] * 2.0], rule))
    }
}

#[test]
fn custom_op_is_a_second_order_error_naming_it() {
    let p = vec![DMatrix::from_column_slice(2, 1, &[0.3, -0.2])];
    let rec = HessianRecording::new(&p, |b| {
        let y = MatOps::custom(&Double, &[b[0]]).unwrap().remove(0);
        y.sq_norm()
    })
    .unwrap();
    // first order still works: d/dx |2x|^2 = 8x
    let g = rec.gradient().unwrap();
    assert!((&g[0] - &p[0] * 8.0).amax() < 1e-15);
    match rec.hvp(&p) {
        Err(AdError::CustomSecondOrder { name, .. }) => assert_eq!(name, "double"),
        other => panic!("expected CustomSecondOrder, got {other:?}"),
    }
}

#[test]
fn non_finite_point_and_direction_are_rejected_with_position() {
    let bad = vec![DMatrix::from_column_slice(2, 1, &[0.3, f64::NAN])];
    match HessianRecording::new(&bad, |b| b[0].sq_norm()) {
        Err(AdError::NonFinite { index, value, .. }) => {
            assert_eq!(index, 1);
            assert!(value.is_nan());
        }
        Err(e) => panic!("expected NonFinite, got {e:?}"),
        Ok(_) => panic!("expected NonFinite, got a recording"),
    }
    let p = vec![DMatrix::from_column_slice(2, 1, &[0.3, 0.1])];
    let rec = HessianRecording::new(&p, |b| b[0].sq_norm()).unwrap();
    let dir = DMatrix::from_column_slice(2, 1, &[f64::INFINITY, 0.0]);
    match rec.hvp(&[dir]) {
        Err(AdError::NonFinite { index, value, .. }) => {
            assert_eq!(index, 0);
            assert_eq!(value, f64::INFINITY);
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

#[test]
fn constant_over_variable_has_its_curvature() {
    // L = 3 / s with s = sum(x): H = 6 / s^3 * 1 1ᵀ (the `f64 / Var` operator)
    let p = vec![DMatrix::from_column_slice(2, 1, &[0.7, 0.4])];
    let rec = HessianRecording::new(&p, |b| 3.0 / b[0].sum()).unwrap();
    let h = rec.hessian_columns(0).unwrap().remove(0);
    let s: f64 = 1.1;
    let expected = DMatrix::from_element(2, 2, 6.0 / s.powi(3));
    assert!((h - &expected).amax() <= 1e-14 * expected.amax());
}

#[test]
fn a_recording_replays_without_re_recording() {
    // Products at one recording are identical (bitwise) however often they are asked for,
    // and the tape does not grow.
    let p = vec![DMatrix::from_column_slice(3, 1, &[0.3, -0.1, 0.7])];
    {
        let two = HessianRecording::new(&blocks(&[0.1; 6]), |b| ScalarMix.eval(b)).unwrap();
        assert_eq!(two.input_shapes(), vec![(2, 2), (2, 1)]);
    }
    let rec = HessianRecording::new(&p, |b| b[0].tanh().sq_norm()).unwrap();
    assert_eq!(rec.input_shapes(), vec![(3, 1)]);
    let v = DMatrix::from_column_slice(3, 1, &[1.0, 2.0, -1.0]);
    let first = rec.hvp(std::slice::from_ref(&v)).unwrap();
    for _ in 0..3 {
        assert_eq!(rec.hvp(std::slice::from_ref(&v)).unwrap(), first);
    }
}

/// A batch of directions that is square but not the identity (all ones), and one that is
/// the identity's first columns ([I; 0], not square): both go through the general batched
/// path and equal one product per column (the identity shortcut is taken only for the
/// exact square identity).
#[test]
fn near_identity_direction_batches_are_not_mistaken_for_the_identity() {
    let p = vec![DMatrix::from_column_slice(3, 1, &[0.3, -0.1, 0.7])];
    let a = DMatrix::from_fn(3, 3, |i, j| 0.2 * i as f64 - 0.3 * j as f64 + 0.1);
    let rec = HessianRecording::new(&p, |b| {
        let x = &b[0];
        // A x with a seeded column x: where the identity shortcut applies.
        let ax = x.constant_like(a.clone()).matmul(x);
        ax.tanh().sq_norm() + x.sum() * x.sum() * 0.5
    })
    .unwrap();
    let ones = DMatrix::from_element(3, 3, 1.0);
    let mut partial = DMatrix::zeros(3, 2);
    partial[(0, 0)] = 1.0;
    partial[(1, 1)] = 1.0;
    // The identity's complement and its first column alone: each would pass a detector
    // that tested the wrong entries (diagonal and off-diagonal swapped, or only the first).
    let complement = &ones - DMatrix::identity(3, 3);
    let mut first = DMatrix::zeros(3, 3);
    first[(0, 0)] = 1.0;
    for dirs in [ones, partial, complement, first] {
        let batch = rec.hvp_batch(&[Some(&dirs)]).unwrap().remove(0);
        assert_eq!(batch.shape(), dirs.shape());
        for j in 0..dirs.ncols() {
            let col = DMatrix::from_column_slice(3, 1, dirs.column(j).as_slice());
            let one = rec.hvp(&[col]).unwrap().remove(0);
            check_close(
                "column",
                batch.column(j).as_slice(),
                one.as_slice(),
                MODES_REL,
                1.0,
            )
            .unwrap();
        }
    }
}

/// Second-order products through a product whose right factor is a constant with several
/// columns (only the left factor has tangents), and through a scaling of an intermediate
/// by a scalar variable (both tangents needed): the batch equals `hvp_mat` column by column.
#[test]
fn constant_right_factors_and_scaled_intermediates() {
    let c = DMatrix::from_fn(3, 4, |i, j| 0.3 * i as f64 - 0.1 * j as f64 + 0.05);
    struct F(DMatrix<f64>);
    impl MatFn for F {
        fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
            let w = &p[0];
            let wc = w.matmul(&w.constant_like(self.0.clone())).tanh();
            // Scale feeds only a sum: its own rule is what needs both tangents.
            wc.scale(w.sum() * 0.5).sum() + wc.sum()
        }
    }
    let f = F(c);
    let p = vec![DMatrix::from_fn(2, 3, |i, j| 0.2 * (i + j) as f64 - 0.3)];
    let rec = HessianRecording::new(&p, |b| f.eval(b)).unwrap();
    let dirs = DMatrix::from_fn(6, 3, |i, j| ((i * 3 + j) % 5) as f64 * 0.25 - 0.5);
    let batch = rec.hvp_batch(&[Some(&dirs)]).unwrap().remove(0);
    for j in 0..3 {
        let v = DMatrix::from_column_slice(2, 3, dirs.column(j).as_slice());
        let want = hvp_mat(&f, &p, &[v]).unwrap().remove(0);
        check_close(
            "column",
            batch.column(j).as_slice(),
            want.as_slice(),
            MODES_REL,
            1.0,
        )
        .unwrap();
    }
}

/// Functions where a tangent lives on only one operand of an op, or on only some entries,
/// and where an op's own second-order rule is the only reader of a tangent (`x` and `y`
/// are 3 x 1 blocks, `c` data).
#[derive(Clone, Copy, Debug)]
enum OneSided {
    /// tanh(x ./ (c² + 1)): the quotient's denominator is data
    OverData,
    /// c ./ (x² + 1): the numerator is data
    DataOver,
    /// ‖c · mean(tanh x)‖²: data scaled by a scalar variable, which only a sum reads
    DataScaledByMean,
    /// sum(x ./ (y² + 1)): nothing after the quotient reads its tangent
    Quotient,
    /// a matrix built from a few entries of x and y and a constant, after scalars whose
    /// tangents lie along x₀ alone
    SomeEntries,
    /// x reshaped into a row, times data
    ReshapedRow,
    /// tanh([c, c/2] + x broadcast along rows): the broadcast's matrix is data
    DataPlusColumn,
    /// tanh(x + c₀ broadcast along columns): the broadcast row is data
    PlusDataRow,
}

struct Sparse {
    f: OneSided,
    c: DMatrix<f64>,
}

impl MatFn for Sparse {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let (x, y) = (&p[0], &p[1]);
        let c = x.constant_like(self.c.clone());
        match self.f {
            OneSided::OverData => x.div_elem(&c.square().add_f64(1.0)).tanh().sum(),
            OneSided::DataOver => c.div_elem(&x.square().add_f64(1.0)).sum(),
            OneSided::DataScaledByMean => c.scale(x.tanh().mean()).sq_norm(),
            OneSided::Quotient => x.div_elem(&y.square().add_f64(1.0)).sum(),
            OneSided::SomeEntries => {
                let a = x.get(0, 0);
                let b = a * a * 0.5;
                let entries = [y.get(2, 0), M::Scalar::from_f64(0.5), x.get(2, 0) * 0.7];
                let m = x.from_scalars_like(3, 1, &entries);
                m.tanh().sq_norm() + b.sin()
            }
            OneSided::ReshapedRow => x.reshape(1, 3).matmul(&c).tanh().sum() * 2.0,
            OneSided::DataPlusColumn => M::concat(&[c.clone(), c.scale_f64(0.5)], true)
                .add_col(x)
                .tanh()
                .sq_norm(),
            OneSided::PlusDataRow => x.add_row(&c.rows(0, 1)).tanh().sq_norm(),
        }
    }
}

const ONE_SIDED: [OneSided; 8] = [
    OneSided::OverData,
    OneSided::DataOver,
    OneSided::DataScaledByMean,
    OneSided::Quotient,
    OneSided::SomeEntries,
    OneSided::ReshapedRow,
    OneSided::DataPlusColumn,
    OneSided::PlusDataRow,
];

proptest! {
    #![proptest_config(common::config(32))]

    /// The batched sweep with the identity (the dense Hessian's columns) and with the unit
    /// directions permuted (e₂, e₀, e₄: no identity, tangents zero along some directions
    /// of the batch) equals `hvp_mat` on each unit direction.
    #[test]
    fn one_sided_and_partial_tangents_in_the_batched_sweep(
        x in prop::collection::vec(-1.2f64..1.2, 6),
        c in prop::collection::vec(0.3f64..1.5, 3),
    ) {
        let p = vec![
            DMatrix::from_column_slice(3, 1, &x[..3]),
            DMatrix::from_column_slice(3, 1, &x[3..]),
        ];
        for f in ONE_SIDED {
            let func = Sparse { f, c: DMatrix::from_column_slice(3, 1, &c) };
            let rec = HessianRecording::new(&p, |b| func.eval(b)).unwrap();
            // H e_i for the 6 unit directions, by reverse-over-forward
            let unit = |i: usize| {
                let mut e = [0.0; 6];
                e[i] = 1.0;
                vec![
                    DMatrix::from_column_slice(3, 1, &e[..3]),
                    DMatrix::from_column_slice(3, 1, &e[3..]),
                ]
            };
            let h: Vec<Vec<f64>> = (0..6).map(|i| flat(&hvp_mat(&func, &p, &unit(i)).unwrap())).collect();
            let scale = h.iter().flatten().fold(1.0f64, |m, a| m.max(a.abs()));
            for b in 0..2 {
                let cols = rec.hessian_columns(b).unwrap();
                for j in 0..3 {
                    let got: Vec<f64> = cols.iter().flat_map(|m| m.column(j).iter().copied().collect::<Vec<_>>()).collect();
                    check_close(&format!("{f:?}: Hessian column {} (block {b})", 3 * b + j), &got, &h[3 * b + j], MODES_REL, scale)?;
                }
            }
            let order = [2usize, 0, 4];
            let mut d0 = DMatrix::zeros(3, 3);
            let mut d1 = DMatrix::zeros(3, 3);
            for (j, &i) in order.iter().enumerate() {
                if i < 3 { d0[(i, j)] = 1.0 } else { d1[(i - 3, j)] = 1.0 }
            }
            let batch = rec.hvp_batch(&[Some(&d0), Some(&d1)]).unwrap();
            for (j, &i) in order.iter().enumerate() {
                let got: Vec<f64> = batch.iter().flat_map(|m| m.column(j).iter().copied().collect::<Vec<_>>()).collect();
                check_close(&format!("{f:?}: batch column {j} (e{i})"), &got, &h[i], MODES_REL, scale)?;
            }
        }
    }
}

/// The curvature of `powi` for exponents where n − 2 and n / 2 differ (x⁵: 20x³; x²: 2),
/// and of `powf` at a base of 0, where ln 0 is not taken: a^b at (a, b) = (0, 2) has
/// H = [[b(b − 1)a^(b−2), a^(b−1)(1 + b ln a)], [·, a^b ln²a]] = [[2, 0], [0, 0]], and
/// the gradient in b is 0 (not 0 · ln 0 = NaN).
#[test]
fn powers_curvature_at_every_exponent_and_at_zero() {
    let p = vec![DMatrix::from_column_slice(2, 1, &[0.7, -1.3])];
    let rec = HessianRecording::new(&p, |b| {
        b[0].get(0, 0).powi(5) + b[0].get(1, 0).powi(2) * 3.0
    })
    .unwrap();
    let h = rec.hessian_columns(0).unwrap().remove(0);
    let want = DMatrix::from_row_slice(2, 2, &[20.0 * 0.7f64.powi(3), 0.0, 0.0, 6.0]);
    assert!((&h - &want).amax() <= 1e-14, "{h} vs {want}");

    let at_zero = vec![DMatrix::from_column_slice(2, 1, &[0.0, 2.0])];
    let rec = HessianRecording::new(&at_zero, |b| b[0].get(0, 0).powf(b[0].get(1, 0))).unwrap();
    let g = rec.gradient().unwrap().remove(0);
    assert_eq!(g.as_slice(), &[0.0, 0.0]);
    let h = rec.hessian_columns(0).unwrap().remove(0);
    assert_eq!(h.as_slice(), &[2.0, 0.0, 0.0, 0.0], "{h}");
}
