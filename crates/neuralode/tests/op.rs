//! The solve as a custom op: the dot-product test ⟨u, J v⟩ = ⟨Jᵀ u, v⟩ over all four
//! input blocks (h0, θ, t0, ts), and the tape gradient of a composed loss.

use std::rc::Rc;

use ad_core::nn::{Activation, Mlp};
use ad_core::{CustomFn, CustomRule, DualMat, MatOps, Real, Tape};
use nalgebra::DMatrix;
use neuralode::{
    GradOptions, Method, MlpDynamics, OdeSolve, SolverOptions, odeint, value_and_grad,
};
use proptest::prelude::*;

const D: usize = 2;
const HID: usize = 4;
const P: usize = D * HID + HID + HID * D + D;

fn field() -> Rc<MlpDynamics> {
    Rc::new(MlpDynamics::new(Mlp::new(
        &[D, HID, D],
        Activation::Tanh,
        Activation::Identity,
    )))
}

fn col(x: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(x.len(), 1, x)
}

fn inner(a: &[DMatrix<f64>], b: &[DMatrix<f64>]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.dot(y)).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn dot_product_test(
        theta in prop::collection::vec(-1.0..1.0f64, P),
        h0 in prop::collection::vec(-1.0..1.0f64, D),
        gaps in prop::collection::vec(0.1..0.6f64, 1..5),
        u in prop::collection::vec(-1.0..1.0f64, 4 * D),
        v in prop::collection::vec(-1.0..1.0f64, P + D + 1 + 4),
    ) {
        let t0 = 0.2;
        let ts: Vec<f64> = gaps.iter().scan(t0, |t, g| { *t += g; Some(*t) }).collect();
        let k = ts.len();
        let inputs = [col(&h0), col(&theta), DMatrix::from_element(1, 1, t0), col(&ts)];
        let u = DMatrix::from_column_slice(k, D, &u[..k * D]);
        let v = [col(&v[P..P + D]), col(&v[..P]), DMatrix::from_element(1, 1, v[P + D]),
                 col(&v[P + D + 1..P + D + 1 + k])];
        for method in [Method::Direct, Method::Checkpointed { every: 2 }, Method::RecursiveCheckpointed, Method::Interpolating,
                       Method::InterpolatingCheckpointed { every: 2 }, Method::InterpolatingRecursive, Method::Backsolve { reset_state: true }] {
            let opts = GradOptions::default()
                .solver(SolverOptions::default().rtol(1e-10).atol(1e-10))
                .method(method);
            let op = OdeSolve::new(field(), opts);
            let (_, rule) = op.linearize(&inputs).unwrap();
            let jv = rule.jvp(&v).unwrap();
            let ju = rule.vjp(std::slice::from_ref(&u)).unwrap();
            let (lhs, rhs) = (u.dot(&jv[0]), inner(&ju, &v));
            // The JVP is the tangent of the solver's steps and the direct/checkpointed VJPs
            // their exact transpose: rounding only. The continuous adjoints approximate
            // that transpose to the solver's tolerance (1e-10).
            let bound = match method {
                Method::Direct | Method::Checkpointed { .. } | Method::RecursiveCheckpointed => 1e-12,
                _ => 1e-7,
            };
            prop_assert!((lhs - rhs).abs() <= bound * (1.0 + lhs.abs()), "{:?}: {} vs {}", method, lhs, rhs);
        }
    }
}

#[test]
fn tape_gradient_of_a_composed_loss_equals_the_direct_api() {
    let f = field();
    let theta: Vec<f64> = (0..P).map(|i| (0.7 * i as f64).sin()).collect();
    let ts = [0.3, 0.5, 1.4];
    let opts = GradOptions::default().method(Method::Interpolating);
    let op = OdeSolve::new(Rc::clone(&f), opts.clone());
    let tape = Tape::new();
    let th = tape.mat_var(col(&theta));
    let h0 = tape.mat_var(col(&[0.5, -1.0]));
    let t0 = tape.mat_var(DMatrix::from_element(1, 1, 0.0));
    let tv = tape.mat_var(col(&ts));
    let states = odeint(&op, &h0, &th, &t0, &tv).unwrap();
    let loss = states.tanh().sum();
    let g = tape.gradient(loss).unwrap();
    let (l, direct) = value_and_grad(&*f, &theta, &[0.5, -1.0], 0.0, &ts, &opts, |s| {
        (s.map(f64::tanh).sum(), s.map(|x| 1.0 - x.tanh().powi(2)))
    })
    .unwrap();
    // the tape's tanh kernel and f64::tanh differ by an ulp or two in the cotangents
    let close = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() < 1e-13 * (1.0 + y.abs()))
    };
    assert!((loss.value() - l).abs() < 1e-13);
    assert!(close(g.wrt_mat(&th).as_slice(), &direct.theta));
    assert!(close(g.wrt_mat(&h0).as_slice(), &direct.h0));
    assert!(close(&[g.wrt_mat(&t0)[(0, 0)]], &[direct.t0]));
    assert!(close(g.wrt_mat(&tv).as_slice(), &direct.ts));
    // plain evaluation of the op gives the same states
    let plain = odeint(
        &op,
        &col(&[0.5, -1.0]),
        &col(&theta),
        &DMatrix::zeros(1, 1),
        &col(&ts),
    )
    .unwrap();
    assert_eq!(plain, states.value());
}

#[test]
fn forward_mode_through_odeint_applies_the_jvp_rule() {
    let f = field();
    let theta: Vec<f64> = (0..P).map(|i| (0.3 * i as f64).cos()).collect();
    let ts = [0.4, 0.9];
    let op = OdeSolve::new(Rc::clone(&f), GradOptions::default());
    let dir: Vec<f64> = (0..P).map(|i| (1.7 * i as f64).sin()).collect();
    let dual = |x: &[f64], d: &[f64]| DualMat::new(col(x), col(d));
    let out = odeint(
        &op,
        &dual(&[0.5, -1.0], &[0.0, 0.0]),
        &dual(&theta, &dir),
        &dual(&[0.0], &[0.0]),
        &dual(&ts, &[0.0, 0.0]),
    )
    .unwrap();
    let (_, rule) = op
        .linearize(&[
            col(&[0.5, -1.0]),
            col(&theta),
            DMatrix::zeros(1, 1),
            col(&ts),
        ])
        .unwrap();
    let jv = rule
        .jvp(&[
            DMatrix::zeros(2, 1),
            col(&dir),
            DMatrix::zeros(1, 1),
            DMatrix::zeros(2, 1),
        ])
        .unwrap();
    assert_eq!(out.eps, jv[0]);
    // and against central differences of the states (tight tolerance)
    let opts = SolverOptions::default().rtol(1e-12).atol(1e-12);
    let at = |e: f64| {
        let th: Vec<f64> = theta.iter().zip(&dir).map(|(t, d)| t + e * d).collect();
        neuralode::solve(&*f, &th, &[0.5, -1.0], 0.0, &ts, &opts)
            .unwrap()
            .states
    };
    let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
    // the JVP at rtol 1e-6 against differences at 1e-12: solver error ~1e-6 relative
    assert!(
        (&fd - &out.eps).amax() < 1e-4 * (1.0 + fd.amax()),
        "{fd} vs {}",
        out.eps
    );
}
