//! Bad input gives typed errors carrying the numbers.

use super::small_spd;
use implicit::linear::SolveError;
use implicit::linear::{
    DenseCholesky, DenseLu, FnOperator, Jacobi, Method, OperatorError, SolveOptions, SolveReport,
    bicgstab, cg, gmres, minres, normal_cg, solve, solve_preconditioned,
};
use nalgebra::DMatrix;

const ALL: [Method; 8] = [
    Method::Cg,
    Method::Minres,
    Method::Gmres,
    Method::Bicgstab,
    Method::NormalCg,
    Method::Lu,
    Method::Cholesky,
    Method::Auto,
];

#[test]
fn non_finite_inputs_are_typed_errors() {
    let a = small_spd();
    let opts = SolveOptions::default();
    for method in ALL {
        let err = solve(&a, &[1.0, f64::NAN, 0.0], None, method, &opts).unwrap_err();
        assert!(
            matches!(err, SolveError::NonFinite { what: "right-hand side b", index: 1, value } if value.is_nan()),
            "{method}: {err}"
        );
        let err = solve(
            &a,
            &[1.0, 2.0, 3.0],
            Some(&[0.0, 0.0, f64::INFINITY]),
            method,
            &opts,
        )
        .unwrap_err();
        assert!(
            matches!(err, SolveError::NonFinite { what: "initial guess x0", index: 2, value } if value == f64::INFINITY),
            "{method}: {err}"
        );
        // An operator that produces NaN.
        let bad = FnOperator::new(3, |x: &[f64], y: &mut [f64]| {
            y.copy_from_slice(x);
            y[2] = f64::NAN;
        })
        .with_transpose(|x: &[f64], y: &mut [f64]| y.copy_from_slice(x));
        let err = solve(&bad, &[1.0, 2.0, 3.0], None, method, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                SolveError::NonFinite {
                    what: "operator output",
                    index: 2,
                    ..
                }
            ),
            "{method}: {err}"
        );
        assert!(err.to_string().contains("non-finite operator output"));
    }
    // A non-finite option.
    let err = solve(
        &a,
        &[1.0; 3],
        None,
        Method::Cg,
        &opts.clone().rtol(f64::NAN),
    )
    .unwrap_err();
    assert!(
        matches!(err, SolveError::InvalidOption { name: "rtol", .. }),
        "{err}"
    );
    let err = solve(&a, &[1.0; 3], None, Method::Gmres, &opts.clone().restart(0)).unwrap_err();
    assert!(
        matches!(
            err,
            SolveError::InvalidOption {
                name: "restart",
                ..
            }
        ),
        "{err}"
    );
    let err = Jacobi::new(&[1.0, f64::NAN]).unwrap_err();
    assert!(matches!(
        err,
        SolveError::NonFinite {
            what: "Jacobi diagonal",
            index: 1,
            ..
        }
    ));
    let err = Jacobi::new(&[1.0, 0.0]).unwrap_err();
    assert!(
        matches!(err, SolveError::Singular { pivot: 1, .. }),
        "{err}"
    );
}

#[test]
fn dimension_mismatches_are_typed_errors() {
    let a = small_spd();
    let opts = SolveOptions::default();
    for method in ALL {
        let err = solve(&a, &[1.0, 2.0], None, method, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                SolveError::Dimension {
                    what: "right-hand side b",
                    expected: 3,
                    got: 2
                }
            ),
            "{method}: {err}"
        );
        let err = solve(&a, &[1.0, 2.0, 3.0], Some(&[0.0; 4]), method, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                SolveError::Dimension {
                    what: "initial guess x0",
                    expected: 3,
                    got: 4
                }
            ),
            "{method}: {err}"
        );
    }
    let jac = Jacobi::new(&[1.0, 1.0]).unwrap();
    for method in [
        Method::Cg,
        Method::Minres,
        Method::Gmres,
        Method::Bicgstab,
        Method::NormalCg,
    ] {
        let err = solve_preconditioned(&a, &[1.0; 3], None, &jac, method, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                SolveError::Dimension {
                    what: "preconditioner dimension",
                    expected: 3,
                    got: 2
                }
            ),
            "{method}: {err}"
        );
    }
    // Square methods refuse a rectangular operator; a ridge needs a square one.
    let rect = DMatrix::from_row_slice(2, 3, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
    for method in [
        Method::Cg,
        Method::Minres,
        Method::Gmres,
        Method::Bicgstab,
        Method::Lu,
        Method::Cholesky,
    ] {
        let err = solve(&rect, &[1.0, 2.0], None, method, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                SolveError::Dimension {
                    expected: 2,
                    got: 3,
                    ..
                }
            ),
            "{method}: {err}"
        );
    }
    let err = normal_cg(&rect, &[1.0, 2.0], None, None, &opts.clone().ridge(1.0)).unwrap_err();
    assert!(
        matches!(err, SolveError::InvalidOption { name: "ridge", .. }),
        "{err}"
    );
    // A preconditioner given to a dense method is refused, not ignored.
    let jac3 = Jacobi::new(&[1.0; 3]).unwrap();
    let err = solve_preconditioned(&a, &[1.0; 3], None, &jac3, Method::Lu, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            SolveError::InvalidOption {
                name: "preconditioner",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn singular_and_indefinite_dense_systems() {
    let singular = DMatrix::from_row_slice(3, 3, &[1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 1.0, 0.0, 1.0]);
    let err = DenseLu::factor(&singular, 0.0).unwrap_err();
    assert!(
        matches!(
            err,
            SolveError::Singular {
                what: "dense LU",
                size: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("singular"), "{err}");

    let indefinite = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, 1.0]);
    let err = DenseCholesky::factor(&indefinite, 0.0).unwrap_err();
    match err {
        SolveError::NotPositiveDefinite {
            pivot,
            value,
            threshold,
            size,
        } => {
            assert_eq!((pivot, size), (1, 2));
            // 1 - 2^2 exactly; the threshold scales with a_11 = 1.
            assert_eq!(value, -3.0);
            assert_eq!(threshold, 2.0 * f64::EPSILON);
        }
        e => panic!("{e}"),
    }
    let nonsym = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 0.0, 2.0]);
    let err = DenseCholesky::factor(&nonsym, 0.0).unwrap_err();
    assert!(
        matches!(err, SolveError::NotSymmetric { row: 1, col: 0, difference, .. } if difference == -1.0),
        "{err}"
    );
    // A ridge can make it definite.
    assert!(DenseCholesky::factor(&indefinite, 1.5).is_ok());
}

#[test]
fn krylov_breakdowns_are_errors_with_reports() {
    // Skew-symmetric: r^T A r = 0, so BiCGSTAB breaks down at once; GMRES still works.
    let skew = DMatrix::from_row_slice(2, 2, &[0.0, 1.0, -1.0, 0.0]);
    let err = bicgstab(&skew, &[1.0, 1.0], None, None, &SolveOptions::default()).unwrap_err();
    match &err {
        SolveError::Breakdown {
            method, report, x, ..
        } => {
            assert_eq!(*method, Method::Bicgstab);
            assert!(!report.converged && report.iterations == 0 && x == &vec![0.0, 0.0]);
        }
        e => panic!("{e}"),
    }
    assert!(err.to_string().contains("GMRES"), "{err}");
    let sol = gmres(&skew, &[1.0, 1.0], None, None, &SolveOptions::default()).unwrap();
    assert!(sol.report.converged);

    // An indefinite preconditioner for CG.
    let a = small_spd();
    let neg = Jacobi::new(&[-1.0, -1.0, -1.0]).unwrap();
    let err = cg(
        &a,
        &[1.0, 2.0, 3.0],
        None,
        Some(&neg),
        &SolveOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            SolveError::Breakdown {
                method: Method::Cg,
                ..
            }
        ),
        "{err}"
    );

    // MINRES on a singular system with b outside the range cannot converge.
    let sing = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 0.0]);
    let err = minres(
        &sing,
        &[1.0, 1.0],
        None,
        None,
        &SolveOptions::default().max_iters(20),
    )
    .unwrap_err();
    match err {
        SolveError::NotConverged { report, x } => {
            // The iteration limit (20) comes before the stall window (100).
            assert_eq!(report.iterations, 20);
            assert_eq!(report.method, Method::Minres);
            // The least-squares residual (the e_1 part of b) is 1; nothing does better.
            assert!(
                !report.converged && report.residual_norm >= 1.0 - 1e-12,
                "{report}"
            );
            // MINRES (without QLP) wanders along the null space e_2 of a singular system;
            // the last iterate is reported as it is.
            assert!(x.len() == 2 && x.iter().all(|v| v.is_finite()), "{x:?}");
        }
        other => panic!("expected NotConverged, got {other:?}"),
    }
}

#[test]
fn normal_cg_needs_a_transpose() {
    let op = FnOperator::new(2, |x: &[f64], y: &mut [f64]| {
        y[0] = x[0] + x[1];
        y[1] = x[1];
    });
    let err = normal_cg(&op, &[1.0, 1.0], None, None, &SolveOptions::default()).unwrap_err();
    assert!(
        matches!(err, SolveError::Operator(OperatorError::NoTranspose)),
        "{err}"
    );
    let op = op.with_transpose(|x: &[f64], y: &mut [f64]| {
        y[0] = x[0];
        y[1] = x[0] + x[1];
    });
    let sol = normal_cg(&op, &[1.0, 1.0], None, None, &SolveOptions::default()).unwrap();
    assert!((sol.x[0] - 0.0).abs() < 1e-10 && (sol.x[1] - 1.0).abs() < 1e-10);
}

#[test]
fn zero_rhs_and_empty_systems() {
    let a = small_spd();
    for method in ALL {
        let sol = solve(&a, &[0.0; 3], None, method, &SolveOptions::default()).unwrap();
        assert_eq!(sol.x, vec![0.0; 3], "{method}");
        assert_eq!(sol.report.iterations, 0);
        let empty = DMatrix::<f64>::zeros(0, 0);
        let sol = solve(&empty, &[], None, method, &SolveOptions::default()).unwrap();
        assert!(sol.x.is_empty() && sol.report.converged, "{method}");
    }
    // max_iters = 0 on a nonzero right-hand side is an error, never a silent zero
    // (the torchopt #222 failure).
    let err = cg(
        &a,
        &[1.0, 0.0, 0.0],
        None,
        None,
        &SolveOptions::default().max_iters(0),
    )
    .unwrap_err();
    assert_eq!(err.report().unwrap().iterations, 0);
}

#[test]
fn options_and_reports_round_trip_through_serde() {
    let opts = SolveOptions::default()
        .rtol(1e-7)
        .atol(1e-12)
        .max_iters(77)
        .ridge(0.5)
        .restart(12);
    let json = serde_json::to_string(&opts).unwrap();
    assert_eq!(serde_json::from_str::<SolveOptions>(&json).unwrap(), opts);
    // Missing fields take their defaults; unknown (misspelled) fields are errors.
    let partial: SolveOptions = serde_json::from_str(r#"{"rtol": 1e-4}"#).unwrap();
    assert_eq!(partial, SolveOptions::default().rtol(1e-4));
    let typo = serde_json::from_str::<SolveOptions>(r#"{"rtoll": 1e-4}"#).unwrap_err();
    assert!(typo.to_string().contains("unknown field `rtoll`"), "{typo}");

    let sol = cg(
        &small_spd(),
        &[1.0, 2.0, 3.0],
        None,
        None,
        &SolveOptions::default(),
    )
    .unwrap();
    let json = serde_json::to_string(&sol.report).unwrap();
    assert_eq!(
        serde_json::from_str::<SolveReport>(&json).unwrap(),
        sol.report
    );
    let text = sol.report.to_string();
    assert!(
        text.starts_with("CG:") && text.contains("converged"),
        "{text}"
    );
}

#[test]
fn error_is_send_sync_and_small() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SolveError>();
    assert!(
        std::mem::size_of::<SolveError>() <= 128,
        "{}",
        std::mem::size_of::<SolveError>()
    );
    // It can travel as an ad-core rule error.
    let e: ad_core::RuleError = Box::new(SolveError::Dimension {
        what: "x",
        expected: 1,
        got: 2,
    });
    assert!(e.to_string().contains("dimension mismatch"));
}

#[test]
fn implicit_error_wraps_the_linear_error_and_keeps_its_numbers() {
    let a = small_spd();
    let err = cg(
        &a,
        &[1.0, 2.0, 3.0],
        None,
        None,
        &SolveOptions::default().max_iters(1),
    )
    .unwrap_err();
    let (iterations, x) = match &err {
        SolveError::NotConverged { report, x } => (report.iterations, x.clone()),
        other => panic!("expected NotConverged, got {other:?}"),
    };
    assert_eq!(iterations, 1);
    let msg = err.to_string();
    let wrapped = implicit::ImplicitError::from(err);
    // Transparent: the same message, and the report and iterate are still reachable.
    assert_eq!(wrapped.to_string(), msg);
    assert_eq!(wrapped.report().unwrap().iterations, 1);
    assert_eq!(wrapped.last_iterate().unwrap(), &x[..]);
    match wrapped.as_linear() {
        Some(SolveError::NotConverged { report, .. }) => assert!(!report.converged),
        other => panic!("expected the linear error, got {other:?}"),
    }
}
