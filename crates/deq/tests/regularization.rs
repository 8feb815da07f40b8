//! The Jacobian penalty: averaged over every sign pattern it is ‖∂f/∂z‖²_F exactly, and
//! its tape gradient agrees with central differences.

use ad_core::{DualMat, MatVar, Tape};
use deq::map::{EquilibriumMap, TanhLayer};
use deq::regularization::{jacobian_penalty, rademacher_probes};
use nalgebra::DMatrix;
use proptest::prelude::*;

fn mat(r: usize, c: usize) -> impl Strategy<Value = DMatrix<f64>> {
    proptest::collection::vec(-1.0..1.0f64, r * c).prop_map(move |v| DMatrix::from_vec(r, c, v))
}

/// ‖J‖²_F summed over samples, J_k = diag(1 − f_k²) W for the tanh layer.
fn exact(theta: &[DMatrix<f64>], z: &DMatrix<f64>, x: &DMatrix<f64>) -> f64 {
    let f = TanhLayer::default().apply(z, x, theta);
    let mut s = 0.0;
    for k in 0..z.ncols() {
        for i in 0..z.nrows() {
            let d = 1.0 - f[(i, k)] * f[(i, k)];
            for j in 0..z.nrows() {
                s += (d * theta[0][(i, j)]).powi(2);
            }
        }
    }
    s
}

/// The penalty in plain f64 (forward mode on DMatrix).
fn penalty_f64(
    theta: &[DMatrix<f64>],
    z: &DMatrix<f64>,
    x: &DMatrix<f64>,
    probes: &[DMatrix<f64>],
) -> f64 {
    let still = |m: &DMatrix<f64>| DualMat::new(m.clone(), DMatrix::zeros(m.nrows(), m.ncols()));
    let td: Vec<_> = theta.iter().map(still).collect();
    probes
        .iter()
        .map(|e| {
            TanhLayer::default()
                .apply(&DualMat::new(z.clone(), e.clone()), &still(x), &td)
                .eps
                .norm_squared()
        })
        .sum::<f64>()
        / probes.len() as f64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// d = 3, one sample: the 8 sign patterns are an exact design (E(εεᵀ) = I over them),
    /// so the average is ‖J‖²_F to rounding.
    #[test]
    fn all_sign_patterns_give_the_frobenius_norm(w in mat(3, 3), u in mat(3, 2), b in mat(3, 1),
                                                 z in mat(3, 1), x in mat(2, 1)) {
        let probes: Vec<DMatrix<f64>> = (0..8)
            .map(|m| DMatrix::from_fn(3, 1, |i, _| if m >> i & 1 == 1 { 1.0 } else { -1.0 }))
            .collect();
        let theta = [w, u, b];
        let tape = Tape::new();
        let tv: Vec<MatVar> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
        let r = jacobian_penalty(&TanhLayer::default(), &tape.constant_mat(z.clone()),
            &tape.constant_mat(x.clone()), &tv, &probes);
        let e = exact(&theta, &z, &x);
        prop_assert!((r.value_f64() - e).abs() <= 1e-12 * (1.0 + e));
    }

    /// The tape gradient of the penalty (second order: forward over the tape) against
    /// central differences of its plain-f64 value along a random direction in θ
    /// (h = 1e-5: truncation ~1e-10, rounding ~1e-11; tolerance 1e-7 relative).
    #[test]
    fn the_penalty_gradient_agrees_with_central_differences(
        w in mat(3, 3), u in mat(3, 2), b in mat(3, 1), z in mat(3, 2), x in mat(2, 2),
        dw in mat(3, 3), du in mat(3, 2), db in mat(3, 1), seed in 0u64..1000,
    ) {
        let probes = rademacher_probes(3, 2, 4, seed);
        let theta = [w, u, b];
        let dirs = [dw, du, db];
        let tape = Tape::new();
        let tv: Vec<MatVar> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
        let r = jacobian_penalty(&TanhLayer::default(), &tape.constant_mat(z.clone()),
            &tape.constant_mat(x.clone()), &tv, &probes);
        let g = tape.gradient(r).unwrap();
        let an: f64 = tv.iter().zip(&dirs).map(|(v, d)| g.wrt_mat(v).dot(d)).sum();
        let h = 1e-5;
        let at = |s: f64| {
            let t: Vec<DMatrix<f64>> = theta.iter().zip(&dirs).map(|(t, d)| t + d * s).collect();
            penalty_f64(&t, &z, &x, &probes)
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        prop_assert!((fd - an).abs() <= 1e-7 * (1.0 + an.abs()), "{fd} vs {an}");
    }
}
