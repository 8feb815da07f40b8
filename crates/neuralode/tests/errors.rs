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

fn mlp_field() -> (neuralode::MlpDynamics, Vec<f64>) {
    use ad_core::nn::{Activation, Init, Mlp};
    let f =
        neuralode::MlpDynamics::new(Mlp::new(&[2, 8, 2], Activation::Tanh, Activation::Identity));
    let theta = f.mlp().init(Init::XavierUniform, 0);
    (f, theta)
}

const ALL_METHODS: [Method; 8] = [
    Method::Direct,
    Method::Checkpointed { every: 1 },
    Method::RecursiveCheckpointed,
    Method::Interpolating,
    Method::InterpolatingCheckpointed { every: 1 },
    Method::InterpolatingRecursive,
    Method::Backsolve { reset_state: true },
    Method::Backsolve { reset_state: false },
];

#[test]
fn only_observation_at_t0_gives_the_same_gradients_for_every_method() {
    use neuralode::{Dynamics, OdeSolve, odeint, value_and_grad};
    let (f, theta) = mlp_field();
    let h0 = [1.0, -0.5];
    let mut f0 = [0.0; 2];
    Dynamics::eval(&f, 0.5, &h0, &theta, &mut f0);
    let hf = h0[0] * f0[0] + h0[1] * f0[1];
    for method in ALL_METHODS {
        let opts = GradOptions::default().method(method);
        let (l, g) = value_and_grad(&f, &theta, &h0, 0.5, &[0.5], &opts, |s| {
            (0.5 * s.norm_squared(), s.clone())
        })
        .unwrap_or_else(|e| panic!("{method:?}: {e}"));
        // no step: dL/dh0 = dL/dh(t0), dL/dθ = 0
        assert_eq!(l, 0.625, "{method:?}");
        assert_eq!(g.h0, h0, "{method:?}");
        assert!(g.theta.iter().all(|&v| v == 0.0), "{method:?}");
        assert_eq!(g.theta.len(), theta.len());
        assert!(
            (g.t0 + hf).abs() < 1e-15 && (g.ts[0] - hf).abs() < 1e-15,
            "{method:?}"
        );
        // on the tape too
        let op = OdeSolve::new(std::rc::Rc::new(f.clone()), opts);
        let tape = ad_core::Tape::new();
        let th = tape.mat_var(DMatrix::from_column_slice(theta.len(), 1, &theta));
        let hv = tape.mat_var(DMatrix::from_column_slice(2, 1, &h0));
        let t0 = tape.mat_var(DMatrix::from_element(1, 1, 0.5));
        let ts = tape.mat_var(DMatrix::from_element(1, 1, 0.5));
        let s = odeint(&op, &hv, &th, &t0, &ts).unwrap();
        let gt = tape.gradient(s.mul_elem(&s).sum()).unwrap();
        assert_eq!(gt.wrt_mat(&hv).as_slice(), &[2.0, -1.0], "{method:?}");
        assert!(gt.wrt_mat(&th).iter().all(|&v| v == 0.0), "{method:?}");
    }
}

/// h' = θ (a constant drift).
struct Drift;
impl VectorField for Drift {
    fn dim(&self) -> usize {
        1
    }
    fn param_shapes(&self) -> Vec<(usize, usize)> {
        vec![(1, 1)]
    }
    fn eval<M: MatOps>(&self, _t: f64, _h: &M, theta: &[M]) -> M {
        theta[0].clone()
    }
}

#[test]
fn overflow_is_a_typed_error_never_a_non_finite_state() {
    let f = TapeDynamics::new(Drift);
    let o = SolverOptions::default();
    // h(1e308) = 1e309 is beyond f64
    match solve(&f, &[10.0], &[0.0], 0.0, &[1e308], &o) {
        Err(NodeError::Diverged {
            t,
            step,
            what,
            phase: "forward",
            stats,
        }) => {
            assert!(
                t > 0.0 && t < 1e308 && step.is_finite(),
                "t = {t}, step = {step}"
            );
            assert!(what.contains("state"), "{what}");
            assert!(stats.rejected_forward > 0);
        }
        other => panic!("{other:?}"),
    }
    // h(f64::MAX) = f64::MAX: finite states on success, and a VJP that is finite or an error
    for method in [Method::Direct, Method::Interpolating] {
        let g = GradOptions::default().method(method);
        match forward(&f, &[1.0], &[0.0], 0.0, &[f64::MAX], &g) {
            Ok(pass) => {
                assert!(pass.states().iter().all(|v| v.is_finite()), "{method:?}");
                if let Ok(gr) = pass.vjp(&f, &DMatrix::from_element(1, 1, 1.0)) {
                    assert!(gr.theta[0].is_finite() && gr.h0[0].is_finite(), "{gr:?}");
                }
            }
            Err(NodeError::Diverged {
                phase: "forward", ..
            }) => {}
            Err(e) => panic!("{method:?}: {e:?}"),
        }
    }
    // the message prints huge times in exponent form
    let msg = solve(&f, &[10.0], &[0.0], 0.0, &[1e308], &o)
        .unwrap_err()
        .to_string();
    assert!(msg.len() < 300 && msg.contains("e30"), "{msg}");
}

#[test]
fn huge_times_print_in_exponent_form() {
    let w = w4();
    let e = solve(
        &w.f,
        &w.theta,
        &w.h0,
        -1e308,
        &[-1.5e308],
        &SolverOptions::default(),
    );
    let msg = e.unwrap_err().to_string();
    assert!(
        msg.contains("t[0] = -1.5e308 lies before t0 = -1e308"),
        "{msg}"
    );
    let e = solve(
        &w.f,
        &w.theta,
        &w.h0,
        0.0,
        &[0.5, 0.5],
        &SolverOptions::default(),
    );
    assert!(e.unwrap_err().to_string().contains("t[1] = 0.5"));
}

#[test]
fn reference_solver_options_are_validated() {
    use neuralode::reference::{RefMethod, solve_reference};
    let (f, theta) = mlp_field();
    let run =
        |rtol, atol, m| solve_reference(&f, &theta, &[1.0, -0.5], 0.0, &[0.5, 1.0], rtol, atol, m);
    match run(1e-6, 1e-6, RefMethod::Rk4 { max_step: 0.0 }) {
        Err(NodeError::InvalidOption {
            name: "Rk4::max_step",
            value,
            ..
        }) => assert_eq!(value, 0.0),
        other => panic!("{other:?}"),
    }
    match run(1e-6, 1e-6, RefMethod::Rk4 { max_step: -1.0 }) {
        Err(NodeError::InvalidOption {
            name: "Rk4::max_step",
            value,
            ..
        }) => assert_eq!(value, -1.0),
        other => panic!("{other:?}"),
    }
    match run(1e-6, 1e-6, RefMethod::Rk4 { max_step: f64::NAN }) {
        Err(NodeError::InvalidOption {
            name: "Rk4::max_step",
            value,
            ..
        }) => assert!(value.is_nan()),
        other => panic!("{other:?}"),
    }
    for m in [RefMethod::Dopri5, RefMethod::Dop853] {
        match run(-1.0, -1.0, m) {
            Err(NodeError::InvalidOption {
                name: "rtol",
                value,
                ..
            }) => assert_eq!(value, -1.0),
            other => panic!("{other:?}"),
        }
        match run(1e-6, f64::INFINITY, m) {
            Err(NodeError::InvalidOption { name: "atol", .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(run(1e-6, 1e-6, RefMethod::Rk4 { max_step: 0.1 }).is_ok());
}

/// The `NodeError` inside an odeint failure.
fn odeint_error(e: ad_core::AdError) -> NodeError {
    match e {
        ad_core::AdError::CustomRule { source, .. } => *source
            .downcast::<NodeError>()
            .unwrap_or_else(|s| panic!("not a NodeError: {s}")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn odeint_checks_block_shapes_up_front() {
    use neuralode::{OdeSolve, odeint};
    let (f, theta) = mlp_field();
    let op = OdeSolve::new(std::rc::Rc::new(f), GradOptions::default());
    let col = |x: &[f64]| DMatrix::from_column_slice(x.len(), 1, x);
    let good = [
        col(&[1.0, -0.5]),
        col(&theta),
        DMatrix::from_element(1, 1, 0.0),
        col(&[0.3, 0.7]),
    ];
    let cases = [
        (2, DMatrix::zeros(0, 0), "odeint block t0", (1, 1), (0, 0)),
        (2, DMatrix::zeros(1, 2), "odeint block t0", (1, 1), (1, 2)),
        (
            0,
            DMatrix::from_row_slice(1, 2, &[1.0, -0.5]),
            "odeint block h0",
            (2, 1),
            (1, 2),
        ),
        (
            1,
            DMatrix::from_row_slice(1, 42, &theta),
            "odeint block theta",
            (42, 1),
            (1, 42),
        ),
        (
            3,
            DMatrix::from_row_slice(1, 2, &[0.3, 0.7]),
            "odeint block ts",
            (2, 1),
            (1, 2),
        ),
    ];
    for (block, m, name, exp, got) in cases {
        let mut b = good.clone();
        b[block] = m;
        let check = |e: NodeError| match e {
            NodeError::Shape {
                what,
                expected,
                got: g,
            } => {
                assert_eq!((what, expected, g), (name, exp, got))
            }
            other => panic!("{other:?}"),
        };
        // plain f64 mode
        check(odeint_error(
            odeint(&op, &b[0], &b[1], &b[2], &b[3]).unwrap_err(),
        ));
        // on the tape
        let tape = ad_core::Tape::new();
        let v: Vec<_> = b.iter().map(|m| tape.mat_var(m.clone())).collect();
        check(odeint_error(
            odeint(&op, &v[0], &v[1], &v[2], &v[3]).unwrap_err(),
        ));
    }
    assert!(odeint(&op, &good[0], &good[1], &good[2], &good[3]).is_ok());
}

#[test]
fn a_pass_differentiated_with_another_field_is_a_length_error() {
    use ad_core::nn::{Activation, Mlp};
    let (f, theta) = mlp_field();
    let pass = forward(
        &f,
        &theta,
        &[1.0, -0.5],
        0.0,
        &[0.5, 1.0],
        &GradOptions::default(),
    )
    .unwrap();
    let other =
        neuralode::MlpDynamics::new(Mlp::new(&[2, 3, 2], Activation::Tanh, Activation::Identity));
    match pass.vjp(&other, &DMatrix::zeros(2, 2)) {
        Err(NodeError::Length {
            what,
            expected: 42,
            got: 17,
        }) => {
            assert_eq!(what, "parameter count of the field")
        }
        other => panic!("{other:?}"),
    }
    match pass.jvp(&other, &[0.0; 2], &[0.0; 42], 0.0, &[0.0; 2]) {
        Err(NodeError::Length {
            expected: 42,
            got: 17,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let wider =
        neuralode::MlpDynamics::new(Mlp::new(&[3, 3, 3], Activation::Tanh, Activation::Identity));
    match pass.vjp(&wider, &DMatrix::zeros(2, 2)) {
        Err(NodeError::Length {
            what: "state size of the field",
            expected: 2,
            got: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
}

/// A field whose output is a row, not the state's column.
struct RowField;

impl VectorField for RowField {
    fn dim(&self) -> usize {
        2
    }
    fn param_shapes(&self) -> Vec<(usize, usize)> {
        vec![(1, 1)]
    }
    fn eval<M: MatOps>(&self, _t: f64, h: &M, theta: &[M]) -> M {
        theta[0].matmul(&h.transpose())
    }
}

/// A field of the wrong output shape is a programmer error: the panic names both shapes.
#[test]
#[should_panic(
    expected = "VectorField::eval returned a 1x2 matrix for a state of 2 entries (expected 2x1)"
)]
fn a_field_of_the_wrong_output_shape_panics_with_both_shapes() {
    let f = TapeDynamics::new(RowField);
    let _ = solve(
        &f,
        &[1.0],
        &[1.0, 2.0],
        0.0,
        &[1.0],
        &SolverOptions::default(),
    );
}
