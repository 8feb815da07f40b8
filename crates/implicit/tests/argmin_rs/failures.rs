//! Failures are errors with numbers.

use super::*;
use ad_core::{AdError, Real, ScalarFn, Tape};
use implicit::solvers::argmin_rs::{
    ArgminError, ArgminMethod, Differentiable, Evaluation, LbfgsOptions, LineSearch,
    NewtonCgOptions, ScalarFnAdapter, Termination, minimize_lbfgs, minimize_newton_cg, run_lbfgs,
    run_newton_cg,
};
use implicit::solvers::forward_solver;
use implicit::{Argmin, IftOptions, ImplicitError, implicit_node};

#[test]
fn too_small_an_iteration_budget_is_an_error_with_the_numbers() {
    let obj = Logistic::new(40, D, 7);
    let theta = theta0();
    let tol = 1e-10;
    let lb = minimize_lbfgs(
        &obj,
        &theta,
        &[0.0; D],
        &LbfgsOptions::default().grad_tol(tol).max_iters(2),
    )
    .unwrap_err();
    let nc = minimize_newton_cg(
        &obj,
        &theta,
        &[0.0; D],
        &NewtonCgOptions::default().grad_tol(tol).max_iters(1),
    )
    .unwrap_err();
    for (err, name, iters) in [(lb, "L-BFGS", 2), (nc, "Newton-CG", 1)] {
        let msg = err.to_string();

        let x = err.last_iterate().unwrap().to_vec();
        match err {
            ArgminError::NotConverged {
                solver,
                grad_norm,
                tolerance,
                iterations,
                max_iters,
                termination,
                counts,
                ..
            } => {
                assert_eq!(solver, name);
                assert!(grad_norm > tol && grad_norm.is_finite());
                assert_eq!(tolerance, tol);
                assert_eq!((iterations, max_iters), (iters, iters));
                assert_eq!(termination, Termination::MaxIters);
                assert!(counts.gradient > 0);
                // The reported norm is the true gradient norm at the reported iterate.
                let g = norm(&grad_at(&obj, &x, &theta));
                assert!((g - grad_norm).abs() <= 1e-12 * g);
                assert!(
                    msg.contains(name)
                        && msg.contains("iterations")
                        && msg.contains("gradient tolerance")
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_unconverged_forward_solve_fails_the_implicit_node() {
    let obj = Logistic::new(40, D, 7);
    let tape = Tape::new();
    let t = tape.vector_var(&theta0());
    let solve = forward_solver(
        &obj,
        vec![0.0; D],
        ArgminMethod::Lbfgs(LbfgsOptions::default().max_iters(1)),
    );
    let err = implicit_node(Argmin(obj.clone()), &[t], solve, IftOptions::default()).unwrap_err();
    match err {
        ImplicitError::ForwardSolver(inner) => {
            // The forward solver reports the argmin run's error inside an ImplicitError.
            let inner = inner.downcast::<ImplicitError>().unwrap();
            match *inner {
                ImplicitError::Argmin(e) => {
                    assert!(matches!(
                        *e,
                        ArgminError::NotConverged { iterations: 1, .. }
                    ))
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
}

/// (x0 − 10)², but NaN once x0 > 3: L-BFGS's first line-search trial (x0 = 20) hits it.
struct NanTrap;
impl ScalarFn for NanTrap {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let f = (x[0] - 10.0).square() + x[1].square();
        if x[0].value() > 3.0 { f * f64::NAN } else { f }
    }
}

#[test]
fn a_non_finite_value_is_an_error_not_a_silent_line_search_exit() {
    // argmin's L-BFGS would report this as a successful "SolverExit"; we get the cause.
    for err in [
        run_lbfgs(
            ScalarFnAdapter(NanTrap),
            &[0.0, 1.0],
            &LbfgsOptions::default(),
        )
        .unwrap_err(),
        run_newton_cg(
            ScalarFnAdapter(NanTrap),
            &[0.0, 1.0],
            &NewtonCgOptions::default(),
        )
        .unwrap_err(),
    ] {
        // The message names the evaluation that failed.
        let message = err.to_string();
        assert!(
            message.starts_with("the objective value failed during argmin iteration"),
            "{message}"
        );
        match err {
            ArgminError::Function {
                during,
                iteration,
                source: AdError::NonFinite { what, index, value },
            } => {
                assert_eq!(during, Evaluation::Cost);
                // The first line-search trial of the first iteration hits the trap.
                assert!(iteration <= 1, "{iteration}");
                assert_eq!((what, index), ("objective value", 0));
                assert!(value.is_nan());
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A quadratic whose Hessian-vector products are NaN (a broken user implementation).
struct BadHessian;
impl Differentiable for BadHessian {
    fn value(&self, x: &[f64]) -> Result<f64, AdError> {
        Ok(x.iter().map(|v| v * v).sum())
    }
    fn value_and_grad(&self, x: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
        Ok((self.value(x)?, x.iter().map(|v| 2.0 * v).collect()))
    }
    fn hvp(&self, _x: &[f64], v: &[f64]) -> Result<Vec<f64>, AdError> {
        Ok(vec![f64::NAN; v.len()])
    }
}

#[test]
fn a_non_finite_hessian_product_is_an_error_and_does_not_hang_newton_cg() {
    // argmin's inner CG loop would never end on NaN products; the operator stops it.
    let err = run_newton_cg(BadHessian, &[1.0, 2.0], &NewtonCgOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("the Hessian-vector product failed during argmin iteration 0: "),
        "{message}"
    );
    match err {
        ArgminError::Function {
            during: Evaluation::HessianProduct,
            iteration: 0,
            source: AdError::NonFinite { what, .. },
        } => assert_eq!(what, "Hessian-vector product"),
        other => panic!("{other:?}"),
    }
}

/// ½‖x − 1‖² with a gradient of the wrong sign: argmin's line searches cannot succeed.
struct WrongGradient;
impl Differentiable for WrongGradient {
    fn value(&self, x: &[f64]) -> Result<f64, AdError> {
        Ok(x.iter().map(|v| (v - 1.0).powi(2)).sum::<f64>() * 0.5)
    }
    fn value_and_grad(&self, x: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
        Ok((self.value(x)?, x.iter().map(|v| 1.0 - v).collect()))
    }
    fn hvp(&self, _x: &[f64], v: &[f64]) -> Result<Vec<f64>, AdError> {
        Ok(v.to_vec())
    }
}

#[test]
fn a_failing_line_search_is_not_converged_with_argmins_reason() {
    // L-BFGS would report this as a successful exit, Newton-CG as a bare error.
    for err in [
        run_lbfgs(WrongGradient, &[0.0, 0.0], &LbfgsOptions::default()).unwrap_err(),
        run_newton_cg(WrongGradient, &[0.0, 0.0], &NewtonCgOptions::default()).unwrap_err(),
    ] {
        let msg = err.to_string();
        match err {
            ArgminError::NotConverged {
                grad_norm,
                termination: Termination::SolverExit(reason),
                x,
                ..
            } => {
                assert!(grad_norm > 1e-8 && x.len() == 2);
                assert!(!reason.is_empty() && msg.contains(&reason), "{msg}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn bad_options_and_inputs_are_typed_errors() {
    let obj = Logistic::new(10, D, 1);
    let theta = theta0();
    let bad_tol = minimize_lbfgs(
        &obj,
        &theta,
        &[0.0; D],
        &LbfgsOptions::default().grad_tol(0.0),
    );
    assert!(matches!(
        bad_tol,
        Err(ArgminError::InvalidOption {
            name: "grad_tol",
            ..
        })
    ));
    let bad_mem = minimize_lbfgs(&obj, &theta, &[0.0; D], &LbfgsOptions::default().memory(0));
    assert!(matches!(
        bad_mem,
        Err(ArgminError::InvalidOption { name: "memory", .. })
    ));
    let bad_cg = minimize_newton_cg(
        &obj,
        &theta,
        &[0.0; D],
        &NewtonCgOptions::default().max_cg_iters(0),
    );
    assert!(matches!(
        bad_cg,
        Err(ArgminError::InvalidOption {
            name: "max_cg_iters",
            ..
        })
    ));
    let mut x0 = [0.0; D];
    x0[2] = f64::NAN;
    let bad_x0 = minimize_lbfgs(&obj, &theta, &x0, &LbfgsOptions::default());
    assert!(matches!(
        bad_x0,
        Err(ArgminError::NonFinite {
            what: "initial guess x0",
            index: 2,
            ..
        })
    ));
    let mut bad_theta = theta.clone();
    bad_theta[0] = f64::INFINITY;
    let e = minimize_newton_cg(&obj, &bad_theta, &[0.0; D], &NewtonCgOptions::default());
    assert!(matches!(
        e,
        Err(ArgminError::NonFinite {
            what: "parameters theta",
            index: 0,
            ..
        })
    ));
}

#[test]
fn solutions_and_options_round_trip_through_serde() {
    let obj = Logistic::new(20, D, 2);
    let sol = minimize_lbfgs(&obj, &theta0(), &[0.0; D], &LbfgsOptions::default()).unwrap();
    let json = serde_json::to_string(&sol).unwrap();
    assert_eq!(
        serde_json::from_str::<implicit::ArgminSolution>(&json).unwrap(),
        sol
    );
    let m = ArgminMethod::NewtonCg(NewtonCgOptions::default().max_cg_iters(7));
    let json = serde_json::to_string(&m).unwrap();
    assert_eq!(serde_json::from_str::<ArgminMethod>(&json).unwrap(), m);
}

#[test]
fn implicit_error_wraps_the_argmin_error_and_keeps_the_last_iterate() {
    let obj = Logistic::new(40, D, 7);
    let err = minimize_lbfgs(
        &obj,
        &theta0(),
        &[0.0; D],
        &LbfgsOptions::default().max_iters(1),
    )
    .unwrap_err();
    let x = err.last_iterate().unwrap().to_vec();
    let grad_norm = err.grad_norm().unwrap();
    let msg = err.to_string();
    let wrapped = ImplicitError::from(err);
    assert_eq!(wrapped.to_string(), msg);
    assert_eq!(wrapped.last_iterate().unwrap(), &x[..]);
    assert!(wrapped.report().is_none());
    match wrapped.as_argmin() {
        Some(ArgminError::NotConverged {
            iterations,
            max_iters,
            grad_norm: g,
            ..
        }) => {
            assert_eq!((*iterations, *max_iters), (1, 1));
            assert_eq!(*g, grad_norm);
        }
        other => panic!("expected the argmin error, got {other:?}"),
    }
}

/// Newton-CG's cost scale (what argmin sees is `scale · f`) must be positive and finite.
#[test]
fn a_cost_scale_that_is_not_positive_and_finite_is_an_invalid_option() {
    let obj = Logistic::new(10, D, 1);
    let theta = theta0();
    for s in [0.0, -1.0, f64::INFINITY, f64::NAN] {
        let r = minimize_newton_cg(
            &obj,
            &theta,
            &[0.0; D],
            &NewtonCgOptions::default().cost_scale(s),
        );
        match r {
            Err(ArgminError::InvalidOption {
                name: "cost_scale",
                value,
                ..
            }) => assert!(
                value == s || (s.is_nan() && value.is_nan()),
                "{value} vs {s}"
            ),
            other => panic!("cost_scale {s}: expected InvalidOption, got {other:?}"),
        }
    }
    // the smallest positive scale is accepted
    let ok = minimize_newton_cg(
        &obj,
        &theta,
        &[0.0; D],
        &NewtonCgOptions::default().cost_scale(f64::MIN_POSITIVE),
    );
    assert!(
        !matches!(ok, Err(ArgminError::InvalidOption { .. })),
        "{ok:?}"
    );
}

/// Each builder sets the field it names and leaves the others as they were.
#[test]
fn option_builders_set_only_what_they_name() {
    let n = NewtonCgOptions::default()
        .grad_tol(1e-3)
        .max_iters(17)
        .max_cg_iters(7)
        .cost_scale(2.0)
        .line_search(LineSearch::HagerZhang);
    assert_eq!(
        (
            n.grad_tol,
            n.max_iters,
            n.max_cg_iters,
            n.cost_scale,
            n.line_search
        ),
        (1e-3, 17, 7, 2.0, LineSearch::HagerZhang)
    );
    let l = LbfgsOptions::default()
        .grad_tol(1e-4)
        .max_iters(9)
        .memory(3)
        .line_search(LineSearch::HagerZhang);
    assert_eq!(
        (l.grad_tol, l.max_iters, l.memory, l.line_search),
        (1e-4, 9, 3, LineSearch::HagerZhang)
    );
}
