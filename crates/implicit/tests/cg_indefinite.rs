//! `SolveOptions::indefinite`: CG's recurrence continued past non-positive curvature.

use implicit::linear::{SolveError, SolveOptions, cg};
use nalgebra::DMatrix;

/// diag(3, -1, 2) with b = (1, 1, 1): the default stops at the first direction of
/// negative curvature; with `indefinite` the recurrence reaches the solution
/// (1/3, -1, 1/2) within n = 3 iterations, as CG does on any symmetric system whose
/// Lanczos process does not break down.
#[test]
fn indefinite_cg_solves_a_symmetric_indefinite_system() {
    let a = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![3.0, -1.0, 2.0]));
    let b = [1.0, 1.0, 1.0];
    let strict = cg(&a, &b, None, None, &SolveOptions::default().rtol(1e-12));
    assert!(matches!(strict, Err(SolveError::NegativeCurvature { .. })));
    let opts = SolveOptions::default().rtol(1e-12).indefinite(true);
    let sol = cg(&a, &b, None, None, &opts).unwrap();
    assert!(sol.report.converged && sol.report.iterations <= 3);
    for (x, want) in sol.x.iter().zip([1.0 / 3.0, -1.0, 0.5]) {
        assert!((x - want).abs() < 1e-12, "{x} vs {want}");
    }
}

/// A zero curvature (diag(1, -1), b = (1, 1): p^T A p = 0 at once) is a breakdown.
#[test]
fn indefinite_cg_reports_zero_curvature_as_breakdown() {
    let a = DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![1.0, -1.0]));
    let opts = SolveOptions::default().indefinite(true);
    match cg(&a, &[1.0, 1.0], None, None, &opts) {
        Err(SolveError::Breakdown { report, .. }) => assert_eq!(report.iterations, 0),
        other => panic!("expected a breakdown, got {other:?}"),
    }
}

/// Old option files (without the field) still load, with the default `false`.
#[test]
fn indefinite_defaults_to_false_in_old_files() {
    let o: SolveOptions = serde_json::from_str(r#"{"rtol":1e-6}"#).unwrap();
    assert!(!o.indefinite);
}
