//! The fused tape-free MLP field against the same network differentiated by ad-core (a
//! fresh tape, a `Recording`, forward mode), for every activation; dot-product tests.

use ad_core::nn::{Activation, Dense, Mlp};
use neuralode::{
    Dynamics, GradOptions, MlpDynamics, SolveStats, SolverOptions, TapeDynamics, VjpMode,
};
use proptest::prelude::*;

fn net(hidden: Activation, out: Activation) -> MlpDynamics {
    MlpDynamics::new(Mlp::from_layers(vec![
        Dense::new(3, 5, hidden),
        Dense::new(5, 4, hidden),
        Dense::new(4, 3, out),
    ]))
}

const P: usize = 3 * 5 + 5 + 5 * 4 + 4 + 4 * 3 + 3;

fn close(a: &[f64], b: &[f64]) -> bool {
    // the same products, summed in a different order (loops vs gemm), tanh by the same kernel
    a.iter()
        .zip(b)
        .all(|(x, y)| (x - y).abs() <= 1e-12 * (1.0 + y.abs()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn fused_mlp_matches_the_tape(
        theta in prop::collection::vec(-1.0..1.0f64, P),
        h in prop::collection::vec(-2.0..2.0f64, 3),
        a in prop::collection::vec(-1.0..1.0f64, 3),
        v in prop::collection::vec(-1.0..1.0f64, 3),
        td in prop::collection::vec(-1.0..1.0f64, P),
        which in 0..Activation::ALL.len(),
    ) {
        let act = Activation::ALL[which];
        let fused = net(act, Activation::Identity);
        let tape = TapeDynamics::new(net(act, Activation::Identity));
        let rec = TapeDynamics::new(net(act, Activation::Identity)).with_mode(VjpMode::Recording);
        let mut outs = Vec::new();
        for d in [&fused as &dyn Dynamics, &tape, &rec] {
            let (mut f, mut hb, mut tb, mut jv, mut e) = ([0.0; 3], [0.0; 3], vec![0.0; P], [0.0; 3], [0.0; 3]);
            d.vjp(0.0, &h, &theta, &a, &mut f, &mut hb, &mut tb);
            d.jvp(0.0, &h, &theta, &v, &td, &mut jv);
            d.eval(0.0, &h, &theta, &mut e);
            prop_assert_eq!(f, e);
            // dot-product test: <a, J (v, td)> = <J^T a, (v, td)>
            let lhs: f64 = a.iter().zip(&jv).map(|(x, y)| x * y).sum();
            let rhs: f64 = hb.iter().zip(&v).map(|(x, y)| x * y).sum::<f64>()
                + tb.iter().zip(&td).map(|(x, y)| x * y).sum::<f64>();
            prop_assert!((lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()), "{:?}: {} vs {}", act, lhs, rhs);
            outs.push((f.to_vec(), hb.to_vec(), tb, jv.to_vec()));
        }
        for o in &outs[1..] {
            prop_assert!(close(&outs[0].0, &o.0), "{:?} value", act);
            prop_assert!(close(&outs[0].1, &o.1), "{:?} h_bar", act);
            prop_assert!(close(&outs[0].2, &o.2), "{:?} theta_bar", act);
            prop_assert!(close(&outs[0].3, &o.3), "{:?} jvp", act);
        }
    }
}

#[test]
fn options_and_stats_round_trip_through_serde() {
    let o = GradOptions::default()
        .solver(SolverOptions::default().rtol(1e-9).first_step(0.01))
        .method(neuralode::Method::Checkpointed { every: 12 })
        .adjoint_solver(SolverOptions::default().max_steps(77));
    let s = serde_json::to_string(&o).unwrap();
    assert_eq!(serde_json::from_str::<GradOptions>(&s).unwrap(), o);
    let st = SolveStats {
        nfe_forward: 3,
        vjp_backward: 9,
        ..SolveStats::default()
    };
    assert_eq!(
        serde_json::from_str::<SolveStats>(&serde_json::to_string(&st).unwrap()).unwrap(),
        st
    );
    assert!(serde_json::from_str::<GradOptions>("{\"solver\": 3}").is_err());
}
