//! The dense factorizations' less travelled paths: iterative refinement on an
//! ill-conditioned system and its stall, the products spent materializing a matrix-free
//! operator, and a Cholesky factor used as a preconditioner.

use implicit::linear::{
    DenseCholesky, DenseLu, FnOperator, Method, SolveError, SolveOptions, solve,
    solve_preconditioned,
};
use nalgebra::{DMatrix, DVector};

/// The n x n Hilbert matrix (condition number ~1e13 at n = 10).
fn hilbert(n: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, n, |i, j| 1.0 / (i + j + 1) as f64)
}

fn residual(a: &DMatrix<f64>, x: &[f64], b: &[f64]) -> f64 {
    (a * DVector::from_column_slice(x) - DVector::from_column_slice(b)).norm()
}

/// How far two computations of ‖b − A x‖ in different summation orders may differ: each
/// carries a rounding error of at most about n ε (‖A‖_F ‖x‖ + ‖b‖), which on the Hilbert
/// systems (‖x‖ ~ 1e8) is the size of the residual itself.
fn residual_rounding(a: &DMatrix<f64>, x: &[f64], b: &[f64]) -> f64 {
    let n = a.nrows() as f64;
    2.0 * n
        * f64::EPSILON
        * (a.norm() * DVector::from_column_slice(x).norm() + DVector::from_column_slice(b).norm())
}

/// On the Hilbert matrix one LU solve leaves a residual above a tight tolerance; refinement
/// (x += A⁻¹ r while the residual at least halves) brings it under, and the report counts
/// the refinement steps and gives the true residual.
#[test]
fn refinement_reaches_a_tight_tolerance_on_an_ill_conditioned_system() {
    let a = hilbert(10);
    let b: Vec<f64> = (0..10).map(|i| 1.0 + i as f64).collect();
    let lu = DenseLu::factor(&a, 0.0).unwrap();
    let opts = SolveOptions::default().rtol(1e-15).atol(0.0);
    match lu.solve(&b, None, &opts) {
        Ok(sol) => {
            let r = residual(&a, &sol.x, &b);
            assert!((sol.report.residual_norm - r).abs() <= residual_rounding(&a, &sol.x, &b));
            assert!(sol.report.residual_norm <= sol.report.tolerance);
            assert!(sol.report.converged);
        }
        // Refinement may stall before 1e-15 in floating point: then the error says so with
        // a residual that is still far below one unrefined solve's.
        Err(SolveError::NotConverged { report, x }) => {
            assert!(!report.converged && report.residual_norm > report.tolerance);
            assert!(
                report.iterations < 10,
                "stalled refinement stops early: {}",
                report.iterations
            );
            let r = residual(&a, &x, &b);
            assert!((report.residual_norm - r).abs() <= residual_rounding(&a, &x, &b));
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

/// A tolerance no refinement can reach (zero) stops at the first step that does not halve
/// the residual: `NotConverged`, after few steps, never a loop to `max_iters`, and the
/// residual reported is the true one at the returned iterate.
#[test]
fn refinement_stops_when_it_no_longer_halves_the_residual() {
    let a = hilbert(8);
    let b: Vec<f64> = (0..8).map(|i| (i as f64).sin() + 2.0).collect();
    let lu = DenseLu::factor(&a, 0.0).unwrap();
    let opts = SolveOptions::default().rtol(0.0).atol(0.0).max_iters(1000);
    match lu.solve(&b, None, &opts) {
        Err(SolveError::NotConverged { report, x }) => {
            assert!(
                report.iterations >= 1 && report.iterations < 20,
                "{}",
                report.iterations
            );
            let r = residual(&a, &x, &b);
            assert!(r > 0.0);
            let bound = residual_rounding(&a, &x, &b);
            assert!(
                (report.residual_norm - r).abs() <= bound,
                "{} vs {r} (bound {bound:e})",
                report.residual_norm
            );
        }
        Ok(sol) => assert_eq!(
            sol.report.residual_norm, 0.0,
            "only an exact solve may converge"
        ),
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Factoring a matrix-free operator materializes it with one product per column, and the
/// solve's report counts them; LU and Cholesky alike.
#[test]
fn materializing_a_matrix_free_operator_is_counted() {
    let n = 6;
    let a = DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            4.0
        } else {
            1.0 / (1 + i + j) as f64
        }
    });
    let a2 = a.clone();
    let op = FnOperator::new(n, move |x: &[f64], y: &mut [f64]| {
        let v = &a2 * DVector::from_column_slice(x);
        y.copy_from_slice(v.as_slice());
    });
    let lu = DenseLu::factor(&op, 0.0).unwrap();
    assert_eq!(lu.matvecs(), n);
    let ch = DenseCholesky::factor(&a, 0.0).unwrap();
    assert_eq!(ch.matvecs(), 0, "an explicit matrix costs no products");
    let b = vec![1.0; n];
    for method in [Method::Lu, Method::Cholesky] {
        let sol = solve(&op, &b, None, method, &SolveOptions::default()).unwrap();
        assert!(
            sol.report.matvecs >= n,
            "{method:?}: {} products reported",
            sol.report.matvecs
        );
        assert!(residual(&a, &sol.x, &b) <= 1e-12);
    }
}

/// A Cholesky factor of A is the exact preconditioner of A: preconditioned CG converges in
/// one iteration (the preconditioned system is the identity).
#[test]
fn a_cholesky_factor_preconditions_cg_exactly() {
    let n = 12;
    let m = DMatrix::from_fn(n, n, |i, j| ((i * n + j) as f64 * 0.61).sin());
    let a = &m * m.transpose() + DMatrix::identity(n, n) * 0.1;
    let ch = DenseCholesky::factor(&a, 0.0).unwrap();
    let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.3).cos()).collect();
    let opts = SolveOptions::default().rtol(1e-10);
    let sol = solve_preconditioned(&a, &b, None, &ch, Method::Cg, &opts).unwrap();
    assert!(
        sol.report.iterations <= 2,
        "{} iterations",
        sol.report.iterations
    );
    assert!(residual(&a, &sol.x, &b) <= 1e-8 * DVector::from_column_slice(&b).norm());
}

/// The singularity threshold of LU is relative (n ε max|aᵢⱼ|): a well-conditioned matrix
/// at any scale factors, a singular one at any scale does not.
#[test]
fn lu_singularity_is_judged_relative_to_the_matrix_scale() {
    let n = 5;
    let base = DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            2.0
        } else {
            0.3 / (1 + i + j) as f64
        }
    });
    for scale in [1e-12, 1.0, 1e12] {
        let a = &base * scale;
        let lu = DenseLu::factor(&a, 0.0).unwrap_or_else(|e| panic!("scale {scale:e}: {e}"));
        let b = vec![scale; n];
        let sol = lu.solve(&b, None, &SolveOptions::default()).unwrap();
        assert!(residual(&a, &sol.x, &b) <= 1e-12 * scale * (n as f64).sqrt());
        let mut singular = a.clone();
        let row0 = singular.row(0).into_owned();
        singular.set_row(1, &row0);
        match DenseLu::factor(&singular, 0.0) {
            Err(SolveError::Singular { size, .. }) => assert_eq!(size, n),
            other => panic!(
                "scale {scale:e}: expected Singular, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

/// The zero matrix is symmetric: CG on it meets zero curvature (the matrix is not positive
/// definite), it is not reported as nonsymmetric.
#[test]
fn the_zero_matrix_is_symmetric_for_cg() {
    let a = DMatrix::<f64>::zeros(3, 3);
    match solve(
        &a,
        &[1.0, 0.0, 0.0],
        None,
        Method::Cg,
        &SolveOptions::default(),
    ) {
        Err(SolveError::NegativeCurvature {
            curvature,
            iteration,
            ..
        }) => {
            assert_eq!((curvature, iteration), (0.0, 0))
        }
        other => panic!(
            "expected NegativeCurvature, got {:?}",
            other.map(|s| s.report)
        ),
    }
}

/// Refinement runs only while it is needed and never past `max_iters`: a well-conditioned
/// solve that meets the tolerance at once reports 0 refinement steps, and a capped
/// refinement stops at its cap.
#[test]
fn refinement_respects_its_limits() {
    let n = 6;
    let a = DMatrix::from_fn(n, n, |i, j| if i == j { 3.0 } else { 0.1 });
    let b = vec![1.0; n];
    let lu = DenseLu::factor(&a, 0.0).unwrap();
    let sol = lu.solve(&b, None, &SolveOptions::default()).unwrap();
    assert_eq!(sol.report.iterations, 0);
    let h = hilbert(10);
    let hb: Vec<f64> = (0..10).map(|i| 1.0 + i as f64).collect();
    let hlu = DenseLu::factor(&h, 0.0).unwrap();
    let capped = SolveOptions::default().rtol(0.0).atol(0.0).max_iters(1);
    match hlu.solve(&hb, None, &capped) {
        Err(SolveError::NotConverged { report, .. }) => assert!(report.iterations <= 1),
        other => panic!("expected NotConverged, got {:?}", other.map(|s| s.report)),
    }
}

/// A failed dense solve of a matrix-free operator still reports the products spent
/// materializing it.
#[test]
fn a_failed_dense_solve_keeps_its_product_count() {
    let n = 8;
    let h = hilbert(n);
    let h2 = h.clone();
    let op = FnOperator::new(n, move |x: &[f64], y: &mut [f64]| {
        let v = &h2 * DVector::from_column_slice(x);
        y.copy_from_slice(v.as_slice());
    });
    let b = vec![1.0; n];
    let impossible = SolveOptions::default().rtol(0.0).atol(0.0);
    for method in [Method::Lu, Method::Cholesky] {
        match solve(&op, &b, None, method, &impossible) {
            // Exactly the n products of the materialization: the refinement itself works
            // on the materialized matrix.
            Err(SolveError::NotConverged { report, .. }) => {
                assert_eq!(report.matvecs, n, "{method:?}")
            }
            other => panic!(
                "{method:?}: expected NotConverged, got {:?}",
                other.map(|s| s.report)
            ),
        }
    }
}
