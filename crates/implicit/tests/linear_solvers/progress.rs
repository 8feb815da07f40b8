//! Solvers that cannot make progress say so, with their numbers, instead of running to the
//! iteration limit.

use implicit::linear::{
    FnOperator, Method, SolveError, SolveOptions, bicgstab, cg, gmres, minres, normal_cg, solve,
};
use nalgebra::DMatrix;

/// The cyclic shift `e_i -> e_{i+1 mod n}`: orthogonal, so every Krylov method can solve it,
/// but restarted GMRES with a basis shorter than `n` makes no progress at all from
/// `b = e_0` (each cycle's best step is zero).
fn cyclic_shift(n: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, n, |i, j| if i == (j + 1) % n { 1.0 } else { 0.0 })
}

fn unit(n: usize, k: usize) -> Vec<f64> {
    let mut e = vec![0.0; n];
    e[k] = 1.0;
    e
}

#[test]
fn stagnating_restarted_gmres_is_stalled_after_the_window() {
    let n = 20;
    let a = cyclic_shift(n);
    let b = unit(n, 0);
    let opts = SolveOptions::default().restart(5).stall_window(30);
    match gmres(&a, &b, None, None, &opts).unwrap_err() {
        SolveError::Stalled {
            best_residual,
            window,
            report,
            x,
        } => {
            assert_eq!(window, 30);
            // Not a single step of progress: the best residual is the initial one, ||b|| = 1.
            assert_eq!(best_residual, 1.0);
            assert_eq!(report.method, Method::Gmres);
            // Stopped at the window, far from the iteration limit max(10 n, 100) = 200.
            assert_eq!(report.iterations, 30);
            assert_eq!(report.residual_norm, 1.0);
            assert_eq!(report.initial_residual_norm, 1.0);
            assert!(!report.converged);
            assert_eq!(x, vec![0.0; n]);
        }
        other => panic!("expected Stalled, got {other:?}"),
    }
    // Full GMRES (basis n) solves it: x = A^T b = e_{n-1}.
    let full = gmres(&a, &b, None, None, &SolveOptions::default().restart(n)).unwrap();
    assert!((full.x[n - 1] - 1.0).abs() < 1e-12 && full.report.iterations == n);
}

#[test]
fn minres_on_an_inconsistent_singular_system_stalls_instead_of_running_on() {
    // diag(1, 2, 0) x = (1, 1, 1): no solution; the least-squares residual is e_2, norm 1.
    // MINRES (without QLP) is not reliable here: its Lanczos matrix is singular too, so its
    // iterate can wander along the null space e_2 and its running estimate undershoots.
    // What must hold: it stops, saying it stalled, long before the iteration limit (100).
    let a = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![1.0, 2.0, 0.0]));
    let b = [1.0, 1.0, 1.0];
    let opts = SolveOptions::default().stall_window(10);
    match minres(&a, &b, None, None, &opts).unwrap_err() {
        SolveError::Stalled {
            best_residual,
            window,
            report,
            x,
        } => {
            assert_eq!(window, 10);
            assert!(best_residual.is_finite() && best_residual < 3f64.sqrt());
            // No iterate can beat the least-squares residual 1.
            assert!(
                report.residual_norm >= 1.0 - 1e-12 && !report.converged,
                "{report}"
            );
            assert!(report.iterations < 100, "{report}");
            assert_eq!(report.method, Method::Minres);
            assert!(x.len() == 3 && x.iter().all(|v| v.is_finite()));
        }
        other => panic!("expected Stalled, got {other:?}"),
    }
}

#[test]
fn a_residual_growing_past_the_divergence_factor_is_diverged() {
    // CG on diag(1, 100) from b = (1, 0.1): the first step takes the residual from
    // ||b|| = 1.005 to ||(0.495, -4.95)|| = 4.975 (CG's residual is not monotone). With
    // a divergence factor of 2 that growth is reported, with the numbers.
    let a = DMatrix::from_row_slice(2, 2, &[1.0, 0.0, 0.0, 100.0]);
    let b = [1.0, 0.1];
    let opts = SolveOptions::default().divergence(2.0);
    match cg(&a, &b, None, None, &opts).unwrap_err() {
        SolveError::Diverged {
            residual,
            factor,
            report,
            x,
        } => {
            let expect = (0.495f64 * 0.495 + 4.95 * 4.95).sqrt();
            assert!((residual - expect).abs() <= 1e-12 * expect, "{residual}");
            assert_eq!(factor, 2.0);
            assert_eq!(report.iterations, 1);
            assert!((report.residual_norm - expect).abs() <= 1e-12 * expect);
            assert!((report.initial_residual_norm - 1.01f64.sqrt()).abs() <= 1e-15);
            // alpha = r.r / r.Ar = 1.01 / 2: x = alpha b.
            assert!((x[0] - 0.505).abs() <= 1e-15 && (x[1] - 0.0505).abs() <= 1e-15);
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
    // The limit is relative: the same system scaled by 1e-3 diverges at the same step.
    let small = [1e-3, 1e-4];
    match cg(&a, &small, None, None, &opts).unwrap_err() {
        SolveError::Diverged { residual, .. } => {
            let expect = 1e-3 * (0.495f64 * 0.495 + 4.95 * 4.95).sqrt();
            assert!((residual - expect).abs() <= 1e-12 * expect, "{residual}");
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
    // The default factor (1e8) lets CG finish: two steps on a 2x2 system.
    let sol = cg(&a, &b, None, None, &SolveOptions::default()).unwrap();
    assert_eq!(sol.report.iterations, 2);
}

#[test]
fn bicgstab_that_makes_no_progress_is_an_error_with_its_report() {
    // A skew-symmetric operator: rhat^T A r = 0 right away, a breakdown (BiCGSTAB cannot
    // even start), reported with the residual at the start.
    let n = 6;
    let skew = FnOperator::new(n, |x: &[f64], y: &mut [f64]| {
        for i in 0..x.len() {
            let up = if i + 1 < x.len() { x[i + 1] } else { 0.0 };
            let down = if i > 0 { x[i - 1] } else { 0.0 };
            y[i] = up - down;
        }
    });
    let b = vec![1.0; n];
    match bicgstab(&skew, &b, None, None, &SolveOptions::default()).unwrap_err() {
        SolveError::Breakdown {
            method,
            reason,
            report,
            x,
        } => {
            assert_eq!(method, Method::Bicgstab);
            assert!(reason.contains("skew"), "{reason}");
            assert_eq!(report.iterations, 0);
            assert!((report.residual_norm - (n as f64).sqrt()).abs() <= 1e-15);
            assert_eq!(x, vec![0.0; n]);
        }
        other => panic!("expected Breakdown, got {other:?}"),
    }
}

#[test]
fn stall_and_divergence_options_are_validated() {
    let a = DMatrix::<f64>::identity(2, 2);
    let b = [1.0, 1.0];
    for (opts, name, value) in [
        (SolveOptions::default().stall_window(0), "stall_window", 0.0),
        (SolveOptions::default().divergence(1.0), "divergence", 1.0),
        (
            SolveOptions::default().divergence(f64::INFINITY),
            "divergence",
            f64::INFINITY,
        ),
    ] {
        match solve(&a, &b, None, Method::Cg, &opts).unwrap_err() {
            SolveError::InvalidOption {
                name: got,
                value: v,
                reason,
            } => {
                assert_eq!((got, v), (name, value));
                assert!(!reason.is_empty());
            }
            other => panic!("expected InvalidOption, got {other:?}"),
        }
    }
    // The automatic window is max(100, n).
    assert_eq!(SolveOptions::default().stall_window_for(10), 100);
    assert_eq!(SolveOptions::default().stall_window_for(500), 500);
}

/// BiCGSTAB on A = 2I: the first half step (s = r − αv) is already exact, and the solve
/// stops there after one iteration, with x = b/2.
#[test]
fn bicgstab_counts_a_solve_finished_at_the_half_step() {
    let a = DMatrix::<f64>::identity(3, 3) * 2.0;
    let sol = bicgstab(&a, &[2.0, -4.0, 6.0], None, None, &SolveOptions::default()).unwrap();
    assert_eq!(sol.x, vec![1.0, -2.0, 3.0]);
    assert_eq!(sol.report.iterations, 1);
    assert!(sol.report.converged);
}

/// Least squares by CGLS stops on the normal-equations residual, against
/// `rtol ||Aᵀ b||` (the report's tolerance and right-hand side say so).
#[test]
fn normal_cg_measures_least_squares_against_atb() {
    let a = DMatrix::from_row_slice(4, 2, &[1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0]);
    let b = [1.0, 2.0, 2.0, 5.0];
    let rtol = 1e-6;
    let sol = normal_cg(
        &a,
        &b,
        None,
        None,
        &SolveOptions::default().rtol(rtol).atol(0.0),
    )
    .unwrap();
    let atb = a.transpose() * nalgebra::DVector::from_column_slice(&b);
    assert!((sol.report.rhs_norm - atb.norm()).abs() <= 1e-12 * atb.norm());
    assert!((sol.report.tolerance - rtol * atb.norm()).abs() <= 1e-12 * rtol * atb.norm());
    assert!(sol.report.residual_norm <= sol.report.tolerance);
}

/// CGLS on a square system with a ridge solves `(A + ridge I) x = b`: the ridge enters the
/// transposed products too.
#[test]
fn normal_cg_with_a_ridge_solves_the_damped_system() {
    let a = DMatrix::from_row_slice(3, 3, &[2.0, 1.0, 0.0, -1.0, 3.0, 1.0, 0.5, 0.0, 1.5]);
    let b = [1.0, -2.0, 0.5];
    let ridge = 0.7;
    let opts = SolveOptions::default().rtol(1e-13).atol(0.0).ridge(ridge);
    let sol = normal_cg(&a, &b, None, None, &opts).unwrap();
    let damped = &a + DMatrix::<f64>::identity(3, 3) * ridge;
    let want = damped
        .lu()
        .solve(&nalgebra::DVector::from_column_slice(&b))
        .unwrap();
    for (x, w) in sol.x.iter().zip(want.iter()) {
        assert!((x - w).abs() < 1e-11, "{x} vs {w}");
    }
}

/// MINRES needs a positive definite preconditioner (its inner product is `rᵀ M⁻¹ r`). With
/// the indefinite `M = diag(1, −1)` and `b` mostly along the first axis the starting
/// product is positive and the next one is not: a `Breakdown` naming the preconditioner, not a
/// square root of a negative number carried on as NaN.
#[test]
fn minres_with_an_indefinite_preconditioner_breaks_down() {
    struct Indefinite;
    impl implicit::linear::Preconditioner for Indefinite {
        fn dim(&self) -> usize {
            2
        }
        fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<(), implicit::linear::OperatorError> {
            z[0] = r[0];
            z[1] = -r[1];
            Ok(())
        }
    }
    let a = DMatrix::from_row_slice(2, 2, &[2.0, 0.5, 0.5, 1.0]);
    match minres(
        &a,
        &[1.0, 0.1],
        None,
        Some(&Indefinite),
        &SolveOptions::default(),
    ) {
        Err(SolveError::Breakdown {
            method,
            reason,
            report,
            ..
        }) => {
            assert_eq!(method, Method::Minres);
            assert!(reason.contains("precondition"), "{reason}");
            assert!(!report.converged);
        }
        other => panic!("expected Breakdown, got {other:?}"),
    }
}

/// CGLS asked for more than rounding allows (rtol 1e-300 on an ill-conditioned, inconsistent
/// least-squares problem) stops as `Stalled` once ‖Aᵀr‖ stops improving, with its numbers,
/// instead of running to its iteration limit.
#[test]
fn normal_cg_stalls_loudly_below_its_rounding_floor() {
    let a = DMatrix::from_fn(30, 6, |i, j| {
        let t = (i as f64 + 1.0) / 30.0;
        t.powi(j as i32) // a Vandermonde block: cond(A) ~ 1e5, cond(A)² ~ 1e10
    });
    let b: Vec<f64> = (0..30).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
    let opts = SolveOptions::default()
        .rtol(1e-300)
        .atol(0.0)
        .max_iters(5000);
    expect_stalled(normal_cg(&a, &b, None, None, &opts).unwrap_err(), 5000);
}

/// A `Stalled` error, before the iteration limit, with a report that says not converged.
fn expect_stalled(err: SolveError, limit: usize) {
    match err {
        SolveError::Stalled { report, .. } => {
            assert!(report.iterations < limit && !report.converged, "{report:?}");
        }
        other => panic!("expected Stalled, got {other:?}"),
    }
}

/// CG asked for an unreachable accuracy on an ill-conditioned SPD system stops as
/// `Stalled` once its residual stops improving, not at its iteration limit. (The per-
/// iteration check and the true-residual check at restarts record into the same best
/// residual; this stall is caught either way.)
#[test]
fn cg_stalls_below_its_rounding_floor() {
    let n = 40;
    let a = DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            1e-6 + (i as f64 / n as f64).powi(4) * 2.0
        } else if i.abs_diff(j) == 1 {
            -0.3 * (i.min(j) as f64 / n as f64).powi(4)
        } else {
            0.0
        }
    });
    let b: Vec<f64> = (0..n).map(|i| ((i * 3) % 7) as f64 - 3.0).collect();
    let opts = SolveOptions::default()
        .rtol(1e-300)
        .atol(0.0)
        .max_iters(20_000);
    expect_stalled(cg(&a, &b, None, None, &opts).unwrap_err(), 20_000);
}

/// What CGLS's report counts: two products per iteration (`A p` and `Aᵀ r`), so solving to
/// a tighter tolerance adds exactly two per extra iteration, and its initial residual is
/// the normal equations' `‖Aᵀ b‖` (from x0 = 0). A preconditioned CG applies the
/// preconditioner once per iteration.
#[test]
fn reports_count_transposes_preconditioners_and_the_normal_residual() {
    // 40 x 15 with columns scaled by 1.4^j: CGLS needs all 15 steps for 1e-12, few for 1e-1.
    let a = DMatrix::from_fn(40, 15, |i, j| {
        (((i * 5 + j * 3) % 7) as f64 - 3.0 + if i == j { 4.0 } else { 0.0 })
            * 1.4f64.powi(j as i32)
    });
    let b: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).sin()).collect();
    let run = |rtol: f64| {
        normal_cg(
            &a,
            &b,
            None,
            None,
            &SolveOptions::default().rtol(rtol).atol(0.0),
        )
        .unwrap()
        .report
    };
    let (loose, tight) = (run(1e-1), run(1e-12));
    assert!(tight.iterations > loose.iterations, "{loose:?} {tight:?}");
    assert_eq!(
        tight.matvecs - loose.matvecs,
        2 * (tight.iterations - loose.iterations)
    );
    let atb = a.transpose() * nalgebra::DVector::from_column_slice(&b);
    assert!((tight.initial_residual_norm - atb.norm()).abs() <= 1e-12 * atb.norm());

    let spd = crate::tridiagonal(20, |i| 2.0 + i as f64, -1.0);
    let rhs = vec![1.0; 20];
    let jacobi = implicit::linear::Jacobi::from_operator(&spd).unwrap();
    let pcg = |rtol: f64| {
        implicit::linear::solve_preconditioned(
            &spd,
            &rhs,
            None,
            &jacobi,
            Method::Cg,
            &SolveOptions::default().rtol(rtol),
        )
        .unwrap()
        .report
    };
    let (loose, tight) = (pcg(1e-2), pcg(1e-12));
    assert!(tight.iterations > loose.iterations);
    assert_eq!(
        tight.precond_applications - loose.precond_applications,
        tight.iterations - loose.iterations
    );
}
