//! Bad input and solver failures are typed errors carrying their numbers, or the explicit
//! fallback the caller asked for; nothing fails silently.

use ad_core::Tape;
use deq::solvers::{AndersonOptions, Method, MethodKind, PicardOptions, SolverOptions, solve};
use deq::{DeqError, DeqLayer, DeqOptions, TanhLayer};
use implicit::{IftOptions, ImplicitError};
use nalgebra::DMatrix;

fn id_map(z: &DMatrix<f64>, _: &[usize]) -> DMatrix<f64> {
    z.map(|v| 0.5 * v + 1.0)
}

fn invalid(opts: SolverOptions) -> (&'static str, f64) {
    match solve(id_map, &DMatrix::zeros(2, 1), &opts) {
        Err(DeqError::InvalidOption { name, value, .. }) => (name, value),
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

#[test]
fn invalid_options_are_rejected_before_any_work() {
    let d = SolverOptions::default;
    let (name, value) = invalid(d().tol(f64::NAN));
    assert!(name == "tol" && value.is_nan());
    assert_eq!(invalid(d().tol(-1.0)), ("tol", -1.0));
    assert_eq!(invalid(d().tol(0.0)), ("tol", 0.0));
    assert_eq!(invalid(d().max_iters(0)), ("max_iters", 0.0));
    assert_eq!(
        invalid(d().divergence_factor(0.5)),
        ("divergence_factor", 0.5)
    );
    let (name, value) = invalid(d().method(Method::Picard(PicardOptions { damping: f64::NAN })));
    assert!(name == "picard.damping" && value.is_nan());
    assert_eq!(
        invalid(d().method(Method::Picard(PicardOptions { damping: -0.5 }))),
        ("picard.damping", -0.5)
    );
    let anderson = |memory, regularization, damping| {
        d().method(Method::Anderson(AndersonOptions {
            memory,
            regularization,
            damping,
        }))
    };
    assert_eq!(invalid(anderson(0, 0.0, 1.0)), ("anderson.memory", 0.0));
    assert_eq!(
        invalid(anderson(3, -1e-3, 1.0)),
        ("anderson.regularization", -1e-3)
    );
    assert_eq!(invalid(anderson(3, 0.0, 1.5)), ("anderson.damping", 1.5));
    // A bad method in the fallback chain is caught up front too.
    assert_eq!(
        invalid(
            d().fallback(vec![Method::Broyden(deq::solvers::BroydenOptions {
                memory: 0
            })])
        ),
        ("broyden.memory", 0.0)
    );
    // Options round-trip through serde, and a misspelled field is not silently ignored.
    let json = serde_json::to_string(&d().method(Method::broyden())).unwrap();
    let back: SolverOptions = serde_json::from_str(&json).unwrap();
    assert_eq!(back, d().method(Method::broyden()));
    let typo = serde_json::from_str::<SolverOptions>(r#"{"tol": 1e-8, "stop_mode": "Relative"}"#);
    assert!(
        typo.unwrap_err()
            .to_string()
            .contains("unknown field `stop_mode`")
    );
    let typo = serde_json::from_str::<SolverOptions>(r#"{"method": {"Anderson": {"memroy": 3}}}"#);
    assert!(
        typo.unwrap_err()
            .to_string()
            .contains("unknown field `memroy`")
    );
    let partial: SolverOptions = serde_json::from_str(r#"{"tol": 1e-8}"#).unwrap();
    assert_eq!(partial, d().tol(1e-8)); // absent fields take their defaults
}

#[test]
fn a_non_finite_start_is_named() {
    let mut z0 = DMatrix::zeros(3, 2);
    z0[(2, 1)] = f64::INFINITY;
    match solve(id_map, &z0, &SolverOptions::default()) {
        Err(DeqError::NonFinite {
            what,
            block,
            row,
            col,
            value,
        }) => {
            assert_eq!(
                (what, block, row, col, value),
                ("initial state z0", 0, 2, 1, f64::INFINITY)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_diverging_map_is_detected_with_its_numbers() {
    // z = 2 z + 1 from 0: residual doubles every step.
    let f = |z: &DMatrix<f64>, _: &[usize]| z.map(|v| 2.0 * v + 1.0);
    let opts = SolverOptions::default()
        .method(Method::picard())
        .divergence_factor(1e3);
    match solve(f, &DMatrix::zeros(1, 1), &opts) {
        Err(DeqError::Diverged {
            method,
            iteration,
            sample,
            residual,
            initial,
            factor,
            stats,
        }) => {
            assert_eq!(
                (method, sample, factor, initial),
                (MethodKind::Picard, 0, 1e3, 1.0)
            );
            assert!(
                residual > 1e3 && iteration == 11,
                "{residual} at {iteration}"
            );
            assert_eq!(stats.iterations, iteration);
            assert_eq!(stats.lowest_residual, 1.0); // the start was the best iterate
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn running_out_of_iterations_is_an_error_with_the_stats() {
    let f = |z: &DMatrix<f64>, _: &[usize]| z.map(|v| 0.99 * v + 1.0);
    let opts = SolverOptions::default()
        .method(Method::picard())
        .max_iters(5);
    match solve(f, &DMatrix::zeros(1, 1), &opts) {
        Err(DeqError::NotConverged {
            method,
            residual,
            tolerance,
            iterations,
            stats,
        }) => {
            assert_eq!(
                (method, tolerance, iterations),
                (MethodKind::Picard, 1e-10, 5)
            );
            assert!((residual - 0.99f64.powi(4)).abs() < 1e-12);
            assert_eq!(stats.residual_trace.len(), 5);
            assert!(!stats.converged);
        }
        other => panic!("{other:?}"),
    }
}

/// z = c − z: plain iteration oscillates between 0 and c forever with a constant residual.
fn oscillating(z: &DMatrix<f64>, _: &[usize]) -> DMatrix<f64> {
    z.map(|v| 2.0 - v)
}

#[test]
fn stagnation_is_detected() {
    let opts = SolverOptions::default()
        .method(Method::picard())
        .stall_window(10);
    match solve(oscillating, &DMatrix::zeros(1, 1), &opts) {
        Err(DeqError::Stagnated {
            method,
            sample,
            lowest,
            window,
            iteration,
            ..
        }) => {
            assert_eq!(
                (method, sample, lowest, window, iteration),
                (MethodKind::Picard, 0, 2.0, 10, 11)
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_explicit_fallback_recovers_and_is_reported() {
    // Plain iteration stagnates; Anderson solves the linear problem from the best iterate.
    let opts = SolverOptions::default()
        .method(Method::picard())
        .stall_window(10)
        .fallback(vec![Method::anderson()]);
    let sol = solve(oscillating, &DMatrix::zeros(1, 1), &opts).unwrap();
    assert!((sol.z[0] - 1.0).abs() < 1e-10);
    assert_eq!(sol.stats.method, MethodKind::Anderson);
    assert_eq!(sol.stats.attempts.len(), 1);
    assert_eq!(sol.stats.attempts[0].method, MethodKind::Picard);
    assert_eq!(sol.stats.attempts[0].iterations, 11);
    assert!(sol.stats.function_evals > sol.stats.iterations);
    // Damped Picard also recovers (z ← ½z + ½(2 − z) = 1 in one step).
    let damped = SolverOptions::default()
        .method(Method::picard())
        .stall_window(10)
        .fallback(vec![Method::Picard(PicardOptions { damping: 0.5 })]);
    assert!(solve(oscillating, &DMatrix::zeros(1, 1), &damped).is_ok());
}

#[test]
fn an_exhausted_fallback_chain_lists_every_failure() {
    // z = z + 1 has no fixed point: the residual stays 1 whatever the method.
    let f = |z: &DMatrix<f64>, _: &[usize]| z.map(|v| v + 1.0);
    let opts = SolverOptions::default()
        .method(Method::anderson())
        .stall_window(20)
        .fallback(vec![Method::picard()]);
    match solve(f, &DMatrix::zeros(1, 1), &opts) {
        Err(DeqError::FallbackExhausted { failures }) => {
            assert_eq!(failures.len(), 2);
            assert!(failures.iter().all(|e| e.stats().is_some()));
            assert!(matches!(
                failures[0],
                DeqError::Stagnated {
                    method: MethodKind::Anderson,
                    ..
                }
            ));
            assert!(matches!(
                failures[1],
                DeqError::Stagnated {
                    method: MethodKind::Picard,
                    ..
                }
            ));
            // Anderson's least squares was singular (ΔG = 0) at every step: it restarted.
            assert!(failures[0].stats().unwrap().restarts >= 19);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_map_returning_nan_is_named() {
    let f = |z: &DMatrix<f64>, _: &[usize]| z.map(|v| if v > 0.5 { f64::NAN } else { v + 0.3 });
    match solve(
        f,
        &DMatrix::zeros(2, 3),
        &SolverOptions::default().method(Method::picard()),
    ) {
        Err(DeqError::MapNonFinite {
            iteration,
            sample,
            row,
            value,
            stats,
            ..
        }) => {
            assert_eq!((iteration, sample, row), (3, 0, 0));
            assert!(value.is_nan());
            assert_eq!(stats.iterations, 3);
        }
        other => panic!("{other:?}"),
    }
}

fn theta() -> Vec<DMatrix<f64>> {
    vec![
        DMatrix::from_fn(3, 3, |i, j| 0.1 * (i as f64 - j as f64)),
        DMatrix::from_element(3, 2, 0.3),
        DMatrix::from_element(3, 1, 0.1),
    ]
}

#[test]
fn the_layer_checks_shapes_blocks_and_values() {
    let layer = DeqLayer::new(TanhLayer::default());
    let x = DMatrix::from_element(2, 4, 0.5);
    let mut t = theta();
    t[1] = DMatrix::zeros(3, 5);
    match layer.solve(&x, &t) {
        Err(DeqError::Shape { expected, got, .. }) => assert_eq!((expected, got), ((3, 2), (3, 5))),
        other => panic!("{other:?}"),
    }
    match layer.solve(&x, &theta()[..2]) {
        Err(DeqError::BlockCount { expected, got }) => assert_eq!((expected, got), (3, 2)),
        other => panic!("{other:?}"),
    }
    let mut t = theta();
    t[2][(1, 0)] = f64::NAN;
    match layer.solve(&x, &t) {
        Err(DeqError::NonFinite {
            what,
            block,
            row,
            col,
            ..
        }) => {
            assert_eq!((what, block, row, col), ("parameters theta", 2, 1, 0))
        }
        other => panic!("{other:?}"),
    }
    let mut xb = x.clone();
    xb[(0, 3)] = f64::NEG_INFINITY;
    match layer.solve(&xb, &theta()) {
        Err(DeqError::NonFinite { what, row, col, .. }) => {
            assert_eq!((what, row, col), ("input x", 0, 3))
        }
        other => panic!("{other:?}"),
    }
    let bad = DeqLayer::new(TanhLayer::normalized(-1.0));
    assert!(matches!(
        bad.solve(&x, &theta()),
        Err(DeqError::InvalidOption {
            name: "scaling.gain",
            ..
        })
    ));
}

#[test]
fn the_layer_reports_a_forward_solve_above_the_accepted_residual() {
    // Forward to 1e-4 only, while implicit accepts 1e-8: no gradient is made from it.
    let opts = DeqOptions::default()
        .solver(SolverOptions::default().method(Method::picard()).tol(1e-4))
        .ift(IftOptions::default().residual_tol(1e-8));
    let layer = DeqLayer::new(TanhLayer::default()).with_options(opts);
    let tape = Tape::new();
    let t: Vec<_> = theta().into_iter().map(|m| tape.mat_var(m)).collect();
    let x = tape.constant_mat(DMatrix::from_element(2, 4, 0.5));
    match layer.forward(&x, &t) {
        Err(DeqError::Implicit(ImplicitError::NotAtSolution {
            residual,
            tolerance,
        })) => {
            assert!(residual > 1e-8 && residual <= 1e-4 * 2.0 && tolerance == 1e-8);
        }
        other => panic!("{other:?}"),
    }
    // Invalid implicit options are caught before the forward solve.
    let layer = DeqLayer::new(TanhLayer::default())
        .with_options(DeqOptions::default().ift(IftOptions::default().residual_tol(f64::NAN)));
    assert!(matches!(
        layer.forward(&x, &t),
        Err(DeqError::Implicit(ImplicitError::InvalidOption {
            name: "residual_tol",
            ..
        }))
    ));
}

/// z = tanh(−3 z + U x + b) per entry: a unique fixed point where ∂f/∂z ≈ −3, so plain
/// iteration cannot find it and the adjoint fixed-point iteration cannot differentiate
/// it. Anderson finds z*; the Richardson backward pass then fails loudly through
/// `tape.gradient` (with the node's failed report), while GMRES differentiates it.
#[test]
fn a_failed_backward_pass_is_an_error_not_a_gradient() {
    use ad_core::MatOps;
    use implicit::linear::{Method as LinMethod, SolveError};
    let theta = vec![
        DMatrix::identity(2, 2) * -3.0,
        DMatrix::from_element(2, 1, 0.3),
        DMatrix::from_column_slice(2, 1, &[0.1, -0.2]),
    ];
    let x = DMatrix::from_element(1, 3, 0.5);
    let picard = DeqLayer::new(TanhLayer::default()).with_options(
        DeqOptions::default().solver(SolverOptions::default().method(Method::picard())),
    );
    assert!(picard.solve(&x, &theta).unwrap_err().is_solver_failure());
    let run = |method: LinMethod| {
        let layer = DeqLayer::new(TanhLayer::default()).with_options(
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::anderson()))
                .ift(IftOptions::default().method(method)),
        );
        let tape = Tape::new();
        let v: Vec<_> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
        let out = layer.forward_data(&x, &v).unwrap();
        let g = tape.gradient(out.z.sum()).map(|g| g.wrt_mat(&v[2]));
        (g, out.node.failures())
    };
    let (g, failures) = run(LinMethod::Gmres);
    assert!(g.is_ok() && failures.is_empty());
    let (g, failures) = run(LinMethod::Richardson);
    match g {
        Err(ad_core::AdError::CustomRule { source, .. }) => {
            let e = source
                .downcast_ref::<ImplicitError>()
                .expect("an implicit error");
            assert!(
                matches!(
                    e,
                    ImplicitError::Linear(SolveError::Diverged { .. } | SolveError::Stalled { .. })
                ),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(failures.len(), 1);
}
