//! Bad input and solver failure give typed errors carrying the numbers.

use ad_core::MatOps;
use nalgebra::DMatrix;
use neuralode::problems::W4;
use neuralode::{
    GradOptions, Method, NodeError, SolverOptions, TapeDynamics, VectorField, forward, solve,
};

fn w4() -> W4 {
    W4::new()
}

#[test]
fn non_finite_inputs_name_the_entry() {
    let w = w4();
    let o = SolverOptions::default();
    let mut theta = w.theta.clone();
    theta[7] = f64::NAN;
    match solve(&w.f, &theta, &w.h0, 0.0, &w.ts, &o) {
        Err(NodeError::NonFinite {
            what,
            index: 7,
            value,
        }) => {
            assert_eq!(what, "parameters theta");
            assert!(value.is_nan());
        }
        other => panic!("{other:?}"),
    }
    match solve(&w.f, &w.theta, &[0.0, f64::INFINITY], 0.0, &w.ts, &o) {
        Err(NodeError::NonFinite {
            what: "initial state h0",
            index: 1,
            value,
        }) => {
            assert_eq!(value, f64::INFINITY)
        }
        other => panic!("{other:?}"),
    }
    match solve(&w.f, &w.theta, &w.h0, f64::NAN, &w.ts, &o) {
        Err(NodeError::NonFinite {
            what: "initial time t0",
            index: 0,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let pass = forward(&w.f, &w.theta, &w.h0, 0.0, &w.ts, &GradOptions::default()).unwrap();
    let mut bar = DMatrix::zeros(50, 2);
    bar[(3, 1)] = f64::NEG_INFINITY;
    match pass.vjp(&w.f, &bar) {
        Err(NodeError::NonFinite {
            what: "cotangent of the states",
            index: 53,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    match pass.vjp(&w.f, &DMatrix::zeros(49, 2)) {
        Err(NodeError::Length {
            expected: 50,
            got: 49,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_times_and_lengths() {
    let w = w4();
    let o = SolverOptions::default();
    match solve(&w.f, &w.theta, &w.h0, 0.0, &[0.1, 0.5, 0.5], &o) {
        Err(NodeError::TimesOutOfOrder {
            index: 2,
            previous,
            value,
        }) => {
            assert_eq!((previous, value), (0.5, 0.5))
        }
        other => panic!("{other:?}"),
    }
    match solve(&w.f, &w.theta, &w.h0, 1.0, &[0.5, 2.0], &o) {
        Err(NodeError::TimeBeforeStart {
            index: 0,
            value,
            t0,
        }) => assert_eq!((value, t0), (0.5, 1.0)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        solve(&w.f, &w.theta, &w.h0, 0.0, &[], &o),
        Err(NodeError::NoObservations)
    ));
    match solve(&w.f, &w.theta[..100], &w.h0, 0.0, &w.ts, &o) {
        Err(NodeError::Length {
            what: "parameters theta",
            expected: 252,
            got: 100,
        }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_options_are_rejected_with_their_name() {
    let check = |o: SolverOptions, name: &str| match o.validate() {
        Err(NodeError::InvalidOption { name: n, .. }) => assert_eq!(n, name),
        other => panic!("{name}: {other:?}"),
    };
    let d = SolverOptions::default;
    check(d().rtol(f64::NAN), "rtol");
    check(d().atol(-1.0), "atol");
    check(d().rtol(0.0).atol(0.0), "rtol");
    check(d().max_steps(0), "max_steps");
    check(d().first_step(0.0), "first_step");
    check(d().max_step(f64::INFINITY), "max_step");
    check(d().safety(1.5), "safety");
    check(d().fac_min(1.0), "fac_min");
    check(d().fac_max(0.5), "fac_max");
    check(d().beta(0.3), "beta");
    let g = GradOptions::default().method(Method::Checkpointed { every: 0 });
    match g.validate() {
        Err(NodeError::InvalidOption {
            name: "Checkpointed::every",
            value,
            ..
        }) => {
            assert_eq!(value, 0.0)
        }
        other => panic!("{other:?}"),
    }
    let w = w4();
    let bad = GradOptions::default().adjoint_solver(SolverOptions::default().atol(f64::NAN));
    assert!(matches!(
        forward(&w.f, &w.theta, &w.h0, 0.0, &w.ts, &bad),
        Err(NodeError::InvalidOption { name: "atol", .. })
    ));
}

#[test]
fn step_budget_reports_time_and_stats() {
    let w = w4();
    let o = SolverOptions::default().rtol(1e-8).atol(1e-8).max_steps(10);
    match solve(&w.f, &w.theta, &w.h0, 0.0, &w.ts, &o) {
        Err(NodeError::MaxSteps {
            t,
            max_steps: 10,
            phase: "forward",
            stats,
        }) => {
            assert!(t > 0.0 && t < 10.0, "t = {t}");
            assert_eq!(stats.accepted_forward + stats.rejected_forward, 10);
            assert!(stats.nfe_forward >= 60);
        }
        other => panic!("{other:?}"),
    }
    // the adjoint solve's own budget
    let g = GradOptions::default()
        .solver(SolverOptions::default().rtol(1e-8).atol(1e-8))
        .adjoint_solver(SolverOptions::default().rtol(1e-8).atol(1e-8).max_steps(3))
        .method(Method::Interpolating);
    let pass = forward(&w.f, &w.theta, &w.h0, 0.0, &w.ts, &g).unwrap();
    let (_, bar) = w.loss(pass.states());
    match pass.vjp(&w.f, &bar) {
        Err(NodeError::MaxSteps {
            max_steps: 3,
            phase: "adjoint",
            t,
            stats,
        }) => {
            assert!((9.8..=10.0).contains(&t), "t = {t}");
            assert!(stats.accepted_forward > 0 && stats.vjp_backward > 0);
        }
        other => panic!("{other:?}"),
    }
}

/// h' = θ h² (blows up at t = 1/(θ h0)).
struct BlowUp;
impl VectorField for BlowUp {
    fn dim(&self) -> usize {
        1
    }
    fn param_shapes(&self) -> Vec<(usize, usize)> {
        vec![(1, 1)]
    }
    fn eval<M: MatOps>(&self, _t: f64, h: &M, theta: &[M]) -> M {
        theta[0].matmul(&h.mul_elem(h))
    }
}

#[test]
fn blow_up_is_a_step_size_underflow_near_the_singularity() {
    let f = TapeDynamics::new(BlowUp);
    match solve(&f, &[1.0], &[1.0], 0.0, &[2.0], &SolverOptions::default()) {
        Err(NodeError::StepSizeUnderflow {
            t,
            h,
            phase: "forward",
            stats,
        }) => {
            assert!((t - 1.0).abs() < 1e-3, "t = {t}");
            assert!(h.abs() < 1e-12, "h = {h}");
            assert!(stats.accepted_forward > 10);
        }
        other => panic!("{other:?}"),
    }
}

/// h' = θ (cos t − h): stiff for large θ.
struct Relax;
impl VectorField for Relax {
    fn dim(&self) -> usize {
        1
    }
    fn param_shapes(&self) -> Vec<(usize, usize)> {
        vec![(1, 1)]
    }
    fn eval<M: MatOps>(&self, t: f64, h: &M, theta: &[M]) -> M {
        theta[0].matmul(&h.constant_like(DMatrix::from_element(1, 1, t.cos())).sub(h))
    }
}

#[test]
fn stiffness_is_detected() {
    let f = TapeDynamics::new(Relax);
    let o = SolverOptions::default().stiffness_check(1);
    match solve(&f, &[1e4], &[0.0], 0.0, &[10.0], &o) {
        Err(NodeError::Stiff {
            t,
            h_lambda,
            phase: "forward",
            stats,
        }) => {
            assert!(t > 0.0 && t < 10.0);
            assert!(h_lambda > 3.25);
            assert!(stats.accepted_forward >= 15);
        }
        other => panic!("{other:?}"),
    }
    // without the test the solve grinds through (non-stiff solver, tiny steps)
    let r = solve(&f, &[1e4], &[0.0], 0.0, &[1.0], &o.stiffness_check(0)).unwrap();
    assert!(r.stats.accepted_forward > 1000);
}

#[test]
fn tape_fields_answer_nan_at_non_finite_points_instead_of_panicking() {
    use neuralode::{Dynamics, VjpMode};
    for mode in [VjpMode::FreshTape, VjpMode::Recording] {
        let f = TapeDynamics::new(BlowUp).with_mode(mode);
        let (mut fo, mut hb, mut tb) = ([0.0], [0.0], [0.0]);
        f.vjp(
            0.0,
            &[f64::INFINITY],
            &[1.0],
            &[1.0],
            &mut fo,
            &mut hb,
            &mut tb,
        );
        assert!(
            fo[0].is_nan() && hb[0].is_nan() && tb[0].is_nan(),
            "{mode:?}"
        );
    }
}
