//! Every applicable method solves random systems to the requested tolerance.

use super::*;
use implicit::linear::SolveError;
use implicit::linear::{
    DenseCholesky, DenseLu, Jacobi, LinearOperator, Method, ResidualKind, SolveOptions, Structure,
    cg, gmres, minres, normal_cg, ridge, solve, solve_preconditioned,
};
use nalgebra::{DMatrix, DVector};
use proptest::collection::vec;
use proptest::prelude::*;

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
            Err(SolveError::NotPositiveDefinite { pivot, value, threshold, size }) => {
                prop_assert!(pivot < size && size == sys.a.nrows());
                // The threshold is n eps times the diagonal entry at the pivot.
                prop_assert!(threshold.abs() <= size as f64 * f64::EPSILON * sys.a[(pivot, pivot)].abs());
                prop_assert!(value <= threshold, "pivot {} = {:e} above {:e}", pivot, value, threshold);
            }
            other => prop_assert!(false, "Cholesky on indefinite: {:?}", other.map(|s| s.report)),
        }
        // CG either happens to succeed (it may, on an indefinite system) or reports the
        // negative curvature it met, with a consistent report.
        match run(Method::Cg, &sys.a, &sys.b, None) {
            Ok(sol) => check_solution(&sys.a, &sys.b, &sol, Method::Cg),
            Err(SolveError::NegativeCurvature { curvature, iteration, report, x, .. }) => {
                prop_assert!(curvature <= 0.0);
                prop_assert_eq!(report.iterations, iteration);
                prop_assert!(!report.converged);
                let resid = true_residual(&sys.a, &x, &sys.b);
                prop_assert!((report.residual_norm - resid).abs() <= 1e-9 * (1.0 + resid));
            }
            // Or it stalls without meeting negative curvature: still an error with a report.
            Err(SolveError::NotConverged { report, .. }) => prop_assert!(!report.converged),
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
            let SolveError::NotConverged { report, x } = &err else {
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
            SolveError::NegativeCurvature { method, iteration, curvature, report, .. } => {
                prop_assert_eq!(method, Method::Cg);
                prop_assert_eq!(iteration, 0);
                prop_assert!(curvature < 0.0);
                // The first direction is p = r0 = b (x0 = 0, no preconditioner), so the
                // curvature reported is the Rayleigh quotient bᵀ(−A)b / bᵀb (a few roundings).
                let b = nalgebra::DVector::from_column_slice(&sys.b);
                let rayleigh = b.dot(&(&a * &b)) / b.dot(&b);
                prop_assert!((curvature - rayleigh).abs() <= 1e-12 * rayleigh.abs(), "{} vs {}", curvature, rayleigh);
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
            // Plain CG may not converge at all on such a system (running out of iterations,
            // or lost to rounding and stalled, cond(A) being up to 1e13): also a win.
            Err(SolveError::NotConverged { report, .. }) => {
                prop_assert!(!report.converged && report.iterations == opts.max_iters_for(n));
            }
            Err(SolveError::Stalled { best_residual, window, report, .. }) => {
                prop_assert_eq!(window, opts.stall_window_for(n));
                prop_assert!(!report.converged && best_residual > report.tolerance);
            }
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
        let expect = least_squares_qr(&a, &b);
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
