//! Executable specification of the linear solvers (proptest).

use ad_core::{MatFn, MatOps, Real, ScalarFn, VectorFn};
use implicit::ImplicitError;
use implicit::linear::{
    DenseCholesky, DenseLu, FnOperator, HessianOperator, Jacobi, JacobianOperator, LinearOperator,
    MatHessianOperator, Method, OperatorError, Preconditioner, ResidualKind, Solution,
    SolveOptions, SolveReport, Structure, bicgstab, cg, gmres, minres, normal_cg, ridge, solve,
    solve_preconditioned,
};
use nalgebra::{DMatrix, DVector};
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Random systems
// ---------------------------------------------------------------------------------------

/// An orthogonal matrix from the QR factorization of a random matrix.
fn orthogonal(n: usize, entries: &[f64]) -> DMatrix<f64> {
    let m = DMatrix::from_column_slice(n, n, entries) + DMatrix::identity(n, n) * 1e-3;
    m.qr().q()
}

/// `Q diag(eigs) Q^T`, exactly symmetrized.
fn from_spectrum(q: &DMatrix<f64>, eigs: &[f64]) -> DMatrix<f64> {
    let d = DMatrix::from_diagonal(&DVector::from_column_slice(eigs));
    let a = q * d * q.transpose();
    (&a + a.transpose()) * 0.5
}

/// Eigenvalues log-spaced between 1 and `kappa`.
fn log_spaced(n: usize, kappa: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = if n == 1 {
                0.0
            } else {
                i as f64 / (n - 1) as f64
            };
            kappa.powf(t)
        })
        .collect()
}

#[derive(Debug, Clone)]
struct System {
    a: DMatrix<f64>,
    b: Vec<f64>,
}

/// SPD with condition number `kappa` in [1, 1e3].
fn spd_system() -> impl Strategy<Value = System> {
    (1usize..60).prop_flat_map(|n| {
        (vec(-1.0f64..1.0, n * n), vec(-1.0f64..1.0, n), 0.0f64..3.0).prop_map(
            move |(q, b, log_kappa)| System {
                a: from_spectrum(&orthogonal(n, &q), &log_spaced(n, 10f64.powf(log_kappa))),
                b: nonzero(b),
            },
        )
    })
}

/// Symmetric indefinite: eigenvalue magnitudes in [1, 100], random signs.
fn indefinite_system() -> impl Strategy<Value = System> {
    (2usize..60).prop_flat_map(|n| {
        (
            vec(-1.0f64..1.0, n * n),
            vec(-1.0f64..1.0, n),
            vec(any::<bool>(), n),
        )
            .prop_map(move |(q, b, signs)| {
                let mut eigs = log_spaced(n, 100.0);
                for (e, &s) in eigs.iter_mut().zip(&signs) {
                    if s {
                        *e = -*e;
                    }
                }
                // At least one of each sign.
                eigs[0] = eigs[0].abs();
                eigs[n - 1] = -eigs[n - 1].abs();
                System {
                    a: from_spectrum(&orthogonal(n, &q), &eigs),
                    b: nonzero(b),
                }
            })
    })
}

/// Nonsymmetric, well conditioned: `c I + E` with `||E||` small against `c`.
fn nonsymmetric_system() -> impl Strategy<Value = System> {
    (1usize..60).prop_flat_map(|n| {
        (vec(-1.0f64..1.0, n * n), vec(-1.0f64..1.0, n), 2.0f64..5.0).prop_map(move |(e, b, c)| {
            let e = DMatrix::from_column_slice(n, n, &e) * (0.5 / (n as f64).sqrt());
            System {
                a: DMatrix::identity(n, n) * c + e,
                b: nonzero(b),
            }
        })
    })
}

fn nonzero(mut b: Vec<f64>) -> Vec<f64> {
    if b.iter().all(|&v| v == 0.0) {
        b[0] = 1.0;
    }
    b
}

fn true_residual(a: &DMatrix<f64>, x: &[f64], b: &[f64]) -> f64 {
    (DVector::from_column_slice(b) - a * DVector::from_column_slice(x)).norm()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

const RTOL: f64 = 1e-8;

/// The solution meets the tolerance on the true residual, and the report says so honestly.
fn check_solution(a: &DMatrix<f64>, b: &[f64], sol: &Solution, method: Method) {
    let r = &sol.report;
    let bnorm = norm(b);
    let tol = RTOL * bnorm;
    let resid = true_residual(a, &sol.x, b);
    assert_eq!(r.method, method);
    assert!(r.converged, "{method}: {r}");
    assert!(
        resid <= tol * (1.0 + 1e-6),
        "{method}: true residual {resid:e} > tol {tol:e}; {r}"
    );
    assert!((r.tolerance - tol).abs() <= 1e-13 * tol, "{r}");
    assert!((r.rhs_norm - bnorm).abs() <= 1e-12 * bnorm);
    assert!(
        (r.residual_norm - resid).abs() <= 1e-4 * tol + 1e-3 * resid,
        "{method}: reported residual {:e} vs recomputed {resid:e}",
        r.residual_norm
    );
    assert_eq!(r.residual_kind, ResidualKind::System);
}

fn run(
    method: Method,
    a: &DMatrix<f64>,
    b: &[f64],
    x0: Option<&[f64]>,
) -> Result<Solution, ImplicitError> {
    let opts = SolveOptions::default().rtol(RTOL);
    solve(a, b, x0, method, &opts)
}

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Every applicable method solves random systems to the requested tolerance
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn spd_systems_are_solved_by_every_applicable_method(sys in spd_system()) {
        let n = sys.a.nrows();
        for method in [Method::Cg, Method::Minres, Method::Gmres, Method::Bicgstab,
                       Method::NormalCg, Method::Lu, Method::Cholesky] {
            let sol = run(method, &sys.a, &sys.b, None)
                .unwrap_or_else(|e| panic!("{method} on SPD n={n}: {e}"));
            check_solution(&sys.a, &sys.b, &sol, method);
        }
        // Jacobi-preconditioned CG and MINRES.
        let jac = Jacobi::from_operator(&sys.a).unwrap();
        let opts = SolveOptions::default().rtol(RTOL);
        for method in [Method::Cg, Method::Minres, Method::Gmres, Method::Bicgstab] {
            let sol = solve_preconditioned(&sys.a, &sys.b, None, &jac, method, &opts).unwrap();
            check_solution(&sys.a, &sys.b, &sol, method);
            prop_assert!(sol.report.precond_applications > 0 || sol.report.iterations == 0);
        }
        // Auto picks CG for a declared SPD operator.
        let declared = (&sys.a).with_structure(Structure::SPD);
        let sol = solve(&declared, &sys.b, None, Method::Auto, &opts).unwrap();
        check_solution(&sys.a, &sys.b, &sol, Method::Cg);
    }

    #[test]
    fn symmetric_indefinite_systems_are_solved(sys in indefinite_system()) {
        for method in [Method::Minres, Method::Lu, Method::Auto] {
            let sol = run(method, &sys.a, &sys.b, None)
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            let expected = if method == Method::Auto { Method::Minres } else { method };
            check_solution(&sys.a, &sys.b, &sol, expected);
        }
        // Restarted GMRES can stagnate on indefinite systems (a known property of the
        // method); unrestarted GMRES (restart >= n) cannot.
        let full = SolveOptions::default().rtol(RTOL).restart(60);
        let sol = gmres(&sys.a, &sys.b, None, None, &full).unwrap();
        check_solution(&sys.a, &sys.b, &sol, Method::Gmres);
        // Cholesky refuses an indefinite matrix, with the pivot.
        match run(Method::Cholesky, &sys.a, &sys.b, None) {
            Err(ImplicitError::NotPositiveDefinite { pivot, value, size }) => {
                prop_assert!(pivot < size && size == sys.a.nrows());
                prop_assert!(value <= 0.0 || value < 1e-10);
            }
            other => prop_assert!(false, "Cholesky on indefinite: {:?}", other.map(|s| s.report)),
        }
        // CG either happens to succeed (it may, on an indefinite system) or reports the
        // negative curvature it met, with a consistent report.
        match run(Method::Cg, &sys.a, &sys.b, None) {
            Ok(sol) => check_solution(&sys.a, &sys.b, &sol, Method::Cg),
            Err(ImplicitError::NegativeCurvature { curvature, iteration, report, x, .. }) => {
                prop_assert!(curvature <= 0.0);
                prop_assert_eq!(report.iterations, iteration);
                prop_assert!(!report.converged);
                let resid = true_residual(&sys.a, &x, &sys.b);
                prop_assert!((report.residual_norm - resid).abs() <= 1e-9 * (1.0 + resid));
            }
            // Or it stalls without meeting negative curvature: still an error with a report.
            Err(ImplicitError::NotConverged { report, .. }) => prop_assert!(!report.converged),
            Err(e) => prop_assert!(false, "CG on indefinite: unexpected {}", e),
        }
    }

    #[test]
    fn nonsymmetric_systems_are_solved(sys in nonsymmetric_system(), restart in 1usize..40) {
        for method in [Method::Gmres, Method::Bicgstab, Method::NormalCg, Method::Lu, Method::Auto] {
            let sol = run(method, &sys.a, &sys.b, None)
                .unwrap_or_else(|e| panic!("{method}: {e}"));
            // Auto: GMRES, except that a 1x1 matrix is symmetric (MINRES).
            let expected = match method {
                Method::Auto if sys.a.nrows() == 1 => Method::Minres,
                Method::Auto => Method::Gmres,
                m => m,
            };
            check_solution(&sys.a, &sys.b, &sol, expected);
        }
        // Any restart length works.
        let opts = SolveOptions::default().rtol(RTOL).restart(restart);
        let sol = gmres(&sys.a, &sys.b, None, None, &opts).unwrap();
        check_solution(&sys.a, &sys.b, &sol, Method::Gmres);
    }

    #[test]
    fn warm_start_from_the_solution_takes_zero_iterations(sys in spd_system()) {
        for method in [Method::Cg, Method::Minres, Method::Gmres, Method::Bicgstab,
                       Method::NormalCg, Method::Lu, Method::Cholesky] {
            let first = run(method, &sys.a, &sys.b, None).unwrap();
            let again = run(method, &sys.a, &sys.b, Some(&first.x)).unwrap();
            prop_assert_eq!(again.report.iterations, 0, "{}", method);
            prop_assert_eq!(&again.x, &first.x);
            prop_assert!(again.report.residual_norm <= again.report.tolerance);
        }
    }

    #[test]
    fn too_few_iterations_is_an_error_with_the_numbers(sys in spd_system(), k in 1usize..4) {
        let n = sys.a.nrows();
        prop_assume!(n > 8);
        // Spread the spectrum so that k < n iterations cannot be enough.
        let a = &sys.a + DMatrix::from_diagonal(&DVector::from_fn(n, |i, _| (i * i) as f64));
        let opts = SolveOptions::default().rtol(1e-12).max_iters(k);
        for method in [Method::Cg, Method::Minres, Method::Gmres, Method::Bicgstab, Method::NormalCg] {
            let err = solve(&a, &sys.b, None, method, &opts).unwrap_err();
            let ImplicitError::NotConverged { report, x } = &err else {
                panic!("{method}: expected NotConverged, got {err}");
            };
            prop_assert_eq!(report.method, method);
            prop_assert_eq!(report.iterations, k);
            prop_assert!(!report.converged);
            prop_assert!(report.residual_norm > report.tolerance);
            let resid = true_residual(&a, x, &sys.b);
            prop_assert!((report.residual_norm - resid).abs() <= 1e-9 * (1.0 + resid));
            prop_assert_eq!(err.report(), Some(&**report));
            prop_assert_eq!(err.last_iterate(), Some(&x[..]));
            let msg = err.to_string();
            prop_assert!(msg.contains("did not converge") && msg.contains(&format!("{k} iterations")), "{}", msg);
        }
    }

    #[test]
    fn cg_on_a_negative_definite_system_reports_negative_curvature(sys in spd_system()) {
        let a = -&sys.a;
        let err = run(Method::Cg, &a, &sys.b, None).unwrap_err();
        match err {
            ImplicitError::NegativeCurvature { method, iteration, curvature, report, .. } => {
                prop_assert_eq!(method, Method::Cg);
                prop_assert_eq!(iteration, 0);
                prop_assert!(curvature < 0.0);
                prop_assert!(!report.converged);
                prop_assert!((report.residual_norm - norm(&sys.b)).abs() <= 1e-12 * norm(&sys.b));
            }
            e => prop_assert!(false, "expected NegativeCurvature, got {}", e),
        }
    }

    #[test]
    fn jacobi_preconditioning_helps_on_badly_scaled_spd_systems(
        sys in spd_system(), logs in vec(-2.5f64..2.5, 60)
    ) {
        let n = sys.a.nrows();
        prop_assume!(n >= 10);
        // A = D S D with a well-conditioned S (cond <= 1e3) and a wild diagonal scaling D.
        let d = DVector::from_fn(n, |i, _| 10f64.powf(logs[i]));
        let a = DMatrix::from_fn(n, n, |i, j| d[i] * sys.a[(i, j)] * d[j]);
        let a = (&a + a.transpose()) * 0.5;
        let opts = SolveOptions::default().rtol(1e-8);
        let jac = Jacobi::from_operator(&a).unwrap();
        let pre = cg(&a, &sys.b, None, Some(&jac), &opts).unwrap();
        prop_assert!(true_residual(&a, &pre.x, &sys.b) <= pre.report.tolerance * (1.0 + 1e-6));
        match cg(&a, &sys.b, None, None, &opts) {
            Ok(plain) => prop_assert!(
                pre.report.iterations < plain.report.iterations,
                "preconditioned {} vs plain {}", pre.report.iterations, plain.report.iterations
            ),
            // Plain CG may not converge at all on such a system: also a win.
            Err(ImplicitError::NotConverged { .. }) => {}
            Err(e) => prop_assert!(false, "plain CG: {}", e),
        }
    }

    #[test]
    fn dense_factorizations_agree_with_krylov_methods(sys in spd_system()) {
        let opts = SolveOptions::default().rtol(1e-11);
        let x_chol = DenseCholesky::factor(&sys.a, 0.0).unwrap().solve(&sys.b, None, &opts).unwrap().x;
        let x_lu = DenseLu::factor(&sys.a, 0.0).unwrap().solve(&sys.b, None, &opts).unwrap().x;
        let x_cg = cg(&sys.a, &sys.b, None, None, &opts).unwrap().x;
        let x_mr = minres(&sys.a, &sys.b, None, None, &opts).unwrap().x;
        // Residuals 1e-11 ||b|| and cond <= 1e3 bound the distance between solutions.
        let scale = norm(&x_lu).max(1e-300);
        for (name, x) in [("Cholesky", &x_chol), ("CG", &x_cg), ("MINRES", &x_mr)] {
            let diff: f64 = x.iter().zip(&x_lu).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
            prop_assert!(diff <= 1e-7 * scale, "{} differs from LU by {:e} (|x| = {:e})", name, diff, scale);
        }
    }

    #[test]
    fn lu_transpose_solve_and_reuse(sys in nonsymmetric_system(), c in vec(-1.0f64..1.0, 60)) {
        let n = sys.a.nrows();
        let c = nonzero(c[..n].to_vec());
        let opts = SolveOptions::default().rtol(1e-12);
        let lu = DenseLu::factor(&sys.a, 0.0).unwrap();
        let x = lu.solve(&sys.b, None, &opts).unwrap();
        let y = lu.solve_transpose(&c, None, &opts).unwrap();
        prop_assert!(true_residual(&sys.a, &x.x, &sys.b) <= 1e-12 * norm(&sys.b) * (1.0 + 1e-6));
        prop_assert!(true_residual(&sys.a.transpose(), &y.x, &c) <= 1e-12 * norm(&c) * (1.0 + 1e-6));
        // Reusing the factorization costs no operator product.
        prop_assert_eq!(x.report.matvecs, 0);
        // The factorization as a preconditioner: GMRES converges in one step.
        let g = gmres(&sys.a, &sys.b, None, Some(&lu), &SolveOptions::default().rtol(1e-10)).unwrap();
        prop_assert!(g.report.iterations <= 2, "{}", g.report);
    }

    #[test]
    fn ridge_option_equals_the_damped_operator(sys in indefinite_system(), lam in 0.5f64..3.0) {
        let n = sys.a.nrows();
        let shift = 100.0 + lam * 200.0; // eigenvalues of A are in [-100, 100]
        let damped = &sys.a + DMatrix::identity(n, n) * shift;
        let opts = SolveOptions::default().rtol(1e-10);
        let expect = DenseLu::factor(&damped, 0.0).unwrap().solve(&sys.b, None, &opts).unwrap().x;
        let with_ridge = opts.clone().ridge(shift);
        for method in [Method::Cg, Method::Minres, Method::Gmres, Method::Bicgstab, Method::Lu, Method::Cholesky] {
            let sol = solve(&sys.a, &sys.b, None, method, &with_ridge).unwrap();
            prop_assert!(true_residual(&damped, &sol.x, &sys.b) <= sol.report.tolerance * (1.0 + 1e-6));
            let resid = true_residual(&damped, &sol.x, &sys.b);
            prop_assert!((sol.report.residual_norm - resid).abs()
                <= 1e-4 * sol.report.tolerance + 1e-3 * resid, "{}", sol.report);
            let diff = sol.x.iter().zip(&expect).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            prop_assert!(diff <= 1e-8 * (1.0 + norm(&expect)), "{}: {:e}", method, diff);
        }
        // The wrapper operator gives the same answer.
        let wrapped = ridge(&sys.a, shift);
        let sol = cg(&wrapped, &sys.b, None, None, &opts).unwrap();
        prop_assert!(true_residual(&damped, &sol.x, &sys.b) <= sol.report.tolerance * (1.0 + 1e-6));
    }

    #[test]
    fn normal_cg_solves_least_squares(
        (m, n) in (1usize..40).prop_flat_map(|n| (n..n + 30, Just(n))),
        entries in vec(-1.0f64..1.0, 70 * 40),
        b in vec(-1.0f64..1.0, 70),
    ) {
        // Random part of norm about 1 + sqrt(n / m) < 3: full column rank.
        let a = DMatrix::from_column_slice(m, n, &entries[..m * n]) / (m as f64).sqrt()
            + DMatrix::from_fn(m, n, |i, j| if i == j { 3.0 } else { 0.0 });
        let b = nonzero(b[..m].to_vec());
        let opts = SolveOptions::default().rtol(1e-10);
        let sol = normal_cg(&a, &b, None, None, &opts).unwrap();
        let expect = a.clone().svd(true, true).solve(&DVector::from_column_slice(&b), 1e-14).unwrap();
        let diff = (DVector::from_column_slice(&sol.x) - &expect).norm();
        prop_assert!(diff <= 1e-7 * (1.0 + expect.norm()), "diff {:e}", diff);
        let kind = if m == n { ResidualKind::System } else { ResidualKind::NormalEquations };
        prop_assert_eq!(sol.report.residual_kind, kind);
        if m > n {
            let atb = a.transpose() * DVector::from_column_slice(&b);
            prop_assert!((sol.report.rhs_norm - atb.norm()).abs() <= 1e-12 * atb.norm());
            let s = a.transpose() * (DVector::from_column_slice(&b) - &a * DVector::from_column_slice(&sol.x));
            prop_assert!(s.norm() <= sol.report.tolerance * (1.0 + 1e-6));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Bad input gives typed errors
// ---------------------------------------------------------------------------------------

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

fn small_spd() -> DMatrix<f64> {
    DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0])
}

#[test]
fn non_finite_inputs_are_typed_errors() {
    let a = small_spd();
    let opts = SolveOptions::default();
    for method in ALL {
        let err = solve(&a, &[1.0, f64::NAN, 0.0], None, method, &opts).unwrap_err();
        assert!(
            matches!(err, ImplicitError::NonFinite { what: "right-hand side b", index: 1, value } if value.is_nan()),
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
            matches!(err, ImplicitError::NonFinite { what: "initial guess x0", index: 2, value } if value == f64::INFINITY),
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
                ImplicitError::NonFinite {
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
        matches!(err, ImplicitError::InvalidOption { name: "rtol", .. }),
        "{err}"
    );
    let err = solve(&a, &[1.0; 3], None, Method::Gmres, &opts.clone().restart(0)).unwrap_err();
    assert!(
        matches!(
            err,
            ImplicitError::InvalidOption {
                name: "restart",
                ..
            }
        ),
        "{err}"
    );
    let err = Jacobi::new(&[1.0, f64::NAN]).unwrap_err();
    assert!(matches!(
        err,
        ImplicitError::NonFinite {
            what: "Jacobi diagonal",
            index: 1,
            ..
        }
    ));
    let err = Jacobi::new(&[1.0, 0.0]).unwrap_err();
    assert!(
        matches!(err, ImplicitError::Singular { pivot: 1, .. }),
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
                ImplicitError::Dimension {
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
                ImplicitError::Dimension {
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
                ImplicitError::Dimension {
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
                ImplicitError::Dimension {
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
        matches!(err, ImplicitError::InvalidOption { name: "ridge", .. }),
        "{err}"
    );
    // A preconditioner given to a dense method is refused, not ignored.
    let jac3 = Jacobi::new(&[1.0; 3]).unwrap();
    let err = solve_preconditioned(&a, &[1.0; 3], None, &jac3, Method::Lu, &opts).unwrap_err();
    assert!(
        matches!(
            err,
            ImplicitError::InvalidOption {
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
            ImplicitError::Singular {
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
        ImplicitError::NotPositiveDefinite { pivot, value, size } => {
            assert_eq!((pivot, size), (1, 2));
            assert!((value - (-3.0)).abs() < 1e-12, "{value}");
        }
        e => panic!("{e}"),
    }
    let nonsym = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 0.0, 2.0]);
    let err = DenseCholesky::factor(&nonsym, 0.0).unwrap_err();
    assert!(
        matches!(err, ImplicitError::NotSymmetric { row: 1, col: 0, difference, .. } if difference == -1.0),
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
        ImplicitError::Breakdown {
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
            ImplicitError::Breakdown {
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
    assert!(matches!(err, ImplicitError::NotConverged { .. }), "{err}");
}

#[test]
fn normal_cg_needs_a_transpose() {
    let op = FnOperator::new(2, |x: &[f64], y: &mut [f64]| {
        y[0] = x[0] + x[1];
        y[1] = x[1];
    });
    let err = normal_cg(&op, &[1.0, 1.0], None, None, &SolveOptions::default()).unwrap_err();
    assert!(
        matches!(err, ImplicitError::Operator(OperatorError::NoTranspose)),
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
    assert!(serde_json::from_str::<SolveOptions>(r#"{"rtoll": 1e-4}"#).is_err());

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
    assert_send_sync::<ImplicitError>();
    assert!(
        std::mem::size_of::<ImplicitError>() <= 128,
        "{}",
        std::mem::size_of::<ImplicitError>()
    );
    // It can travel as an ad-core rule error.
    let e: ad_core::RuleError = Box::new(ImplicitError::Dimension {
        what: "x",
        expected: 1,
        got: 2,
    });
    assert!(e.to_string().contains("dimension mismatch"));
}

// ---------------------------------------------------------------------------------------
// Operators from ad-core derivative products
// ---------------------------------------------------------------------------------------

struct Energy;
impl ScalarFn for Energy {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let mut s = S::zero();
        for i in 0..x.len() {
            let next = x[(i + 1) % x.len()];
            s += (x[i] * next).sin() + x[i].square() * x[i].exp() * 0.5 + (x[i] - next).square();
        }
        s
    }
}

struct Residual;
impl VectorFn for Residual {
    fn eval<S: Real>(&self, x: &[S]) -> Vec<S> {
        let n = x.len();
        let mut out: Vec<S> = (0..n)
            .map(|i| x[i] * 3.0 + (x[(i + 1) % n] * x[i]).tanh() - x[(i + 2) % n].sin())
            .collect();
        out.push(x.iter().copied().sum::<S>().square()); // one more output: rectangular
        out
    }
}

struct Quad {
    data: DMatrix<f64>,
}
impl MatFn for Quad {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let x = p[0].constant_like(self.data.clone());
        let h = x.matmul(&p[0]).add_row(&p[1]).tanh();
        h.sq_norm()
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn hessian_operator_matches_the_dense_hessian(
        x in vec(-1.0f64..1.0, 1..12), v in vec(-1.0f64..1.0, 12)
    ) {
        let n = x.len();
        let v = &v[..n];
        let op = HessianOperator::new(&Energy, &x);
        prop_assert_eq!(op.structure(), Structure::SYMMETRIC);
        let mut y = vec![0.0; n];
        op.apply(v, &mut y).unwrap();
        let h = ad_core::hessian(&Energy, &x).unwrap();
        let expect = &h * DVector::from_column_slice(v);
        for i in 0..n {
            prop_assert!((y[i] - expect[i]).abs() <= 1e-12 * (1.0 + expect[i].abs()));
        }
        // Dense methods materialize it (n products), Krylov methods never do.
        let b: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
        let shifted = ridge(&op, 50.0); // make it positive definite
        let opts = SolveOptions::default().rtol(1e-10);
        let dense = solve(&shifted, &b, None, Method::Cholesky, &opts).unwrap();
        prop_assert_eq!(dense.report.matvecs, n);
        let krylov = solve(&shifted, &b, None, Method::Cg, &opts).unwrap();
        let diff = dense.x.iter().zip(&krylov.x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        prop_assert!(diff <= 1e-8);
    }

    #[test]
    fn jacobian_operator_matches_the_dense_jacobian(
        x in vec(-1.0f64..1.0, 3..10), v in vec(-1.0f64..1.0, 11)
    ) {
        let n = x.len();
        let op = JacobianOperator::new(&Residual, &x);
        prop_assert_eq!((op.nrows(), op.ncols()), (n + 1, n));
        let j = ad_core::jacobian(&Residual, &x).unwrap();
        let mut y = vec![0.0; n + 1];
        op.apply(&v[..n], &mut y).unwrap();
        let expect = &j * DVector::from_column_slice(&v[..n]);
        let mut yt = vec![0.0; n];
        op.apply_transpose(&v[..n + 1], &mut yt).unwrap();
        let expect_t = j.transpose() * DVector::from_column_slice(&v[..n + 1]);
        for i in 0..n + 1 {
            prop_assert!((y[i] - expect[i]).abs() <= 1e-12 * (1.0 + expect[i].abs()));
        }
        for i in 0..n {
            prop_assert!((yt[i] - expect_t[i]).abs() <= 1e-12 * (1.0 + expect_t[i].abs()));
        }
        // A least-squares solve through jvp/vjp only.
        let sol = solve(&op, &v[..n + 1], None, Method::Auto, &SolveOptions::default().rtol(1e-10)).unwrap();
        prop_assert_eq!(sol.report.method, Method::NormalCg);
        let expect = j.clone().svd(true, true).solve(&DVector::from_column_slice(&v[..n + 1]), 1e-14).unwrap();
        for i in 0..n {
            prop_assert!((sol.x[i] - expect[i]).abs() <= 1e-7 * (1.0 + expect.norm()));
        }
    }

    #[test]
    fn mat_hessian_operator_matches_hvp_mat(
        w in vec(-1.0f64..1.0, 6), bias in vec(-1.0f64..1.0, 2), v in vec(-1.0f64..1.0, 8)
    ) {
        let quad = Quad { data: DMatrix::from_row_slice(4, 3, &[
            0.5, -1.0, 0.3, 1.0, 0.2, -0.7, -0.4, 0.9, 0.1, 0.6, -0.3, 0.8]) };
        let params = vec![DMatrix::from_column_slice(3, 2, &w), DMatrix::from_column_slice(1, 2, &bias)];
        let op = MatHessianOperator::new(&quad, &params);
        prop_assert_eq!(op.nrows(), 8);
        let blocks = op.unflatten(&v);
        prop_assert_eq!(MatHessianOperator::<Quad>::flatten(&blocks), v.clone());
        let mut y = vec![0.0; 8];
        op.apply(&v, &mut y).unwrap();
        let expect = MatHessianOperator::<Quad>::flatten(&ad_core::hvp_mat(&quad, &params, &blocks).unwrap());
        prop_assert_eq!(y, expect);
        // Symmetric: <u, H v> == <H u, v>.
        let u: Vec<f64> = v.iter().rev().copied().collect();
        let (mut hv, mut hu) = (vec![0.0; 8], vec![0.0; 8]);
        op.apply(&v, &mut hv).unwrap();
        op.apply(&u, &mut hu).unwrap();
        let (a, b): (f64, f64) = (u.iter().zip(&hv).map(|(p, q)| p * q).sum(), hu.iter().zip(&v).map(|(p, q)| p * q).sum());
        prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
    }
}

#[test]
fn hessian_operator_failure_is_an_operator_error() {
    let x = [0.1, f64::NAN];
    let op = HessianOperator::new(&Energy, &x);
    let err = cg(&op, &[1.0, 1.0], None, None, &SolveOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            ImplicitError::Operator(OperatorError::Ad(ad_core::AdError::NonFinite { .. }))
        ),
        "{err}"
    );
}

#[test]
fn preconditioner_trait_objects_and_closures() {
    let a = small_spd();
    let m = implicit::linear::FnPreconditioner::new(3, |r: &[f64], z: &mut [f64]| {
        z[0] = r[0] / 4.0;
        z[1] = r[1] / 3.0;
        z[2] = r[2] / 2.0;
    });
    let dynp: &dyn Preconditioner = &m;
    let sol = cg(
        &a,
        &[1.0, 2.0, 3.0],
        None,
        Some(dynp),
        &SolveOptions::default(),
    )
    .unwrap();
    assert!(sol.report.converged && sol.report.precond_applications >= sol.report.iterations);
}
