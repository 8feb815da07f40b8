//! Richardson (fixed-point) iteration: solves I − K systems with ρ(K) < 1 to the
//! tolerance with one product per iteration, and reports a system it cannot solve as a
//! typed error with its numbers.

use implicit::linear::{Method, SolveError, SolveOptions, richardson, solve};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

proptest! {
    /// A = I − K with ‖K‖_F = rate < 1: the answer agrees with dense LU (to the solve's
    /// tolerance, amplified by ‖A⁻¹‖ <= 1 / (1 − rate) <= 10), one product per iteration,
    /// and dispatch through `Method::Richardson` gives the same.
    #[test]
    fn contractive_systems_are_solved(
        n in 1usize..12,
        entries in proptest::collection::vec(-1.0..1.0f64, 144),
        rhs in proptest::collection::vec(-1.0..1.0f64, 12),
        rate in 0.0..0.9f64,
    ) {
        let k = DMatrix::from_column_slice(n, n, &entries[..n * n]);
        let k = &k * (rate / k.norm().max(1e-12));
        let a = DMatrix::identity(n, n) - k;
        let b = &rhs[..n];
        let opts = SolveOptions::default().rtol(1e-12).atol(0.0).max_iters(2000);
        let sol = richardson(&a, b, None, None, &opts).unwrap();
        let reference = a.clone().lu().solve(&DVector::from_column_slice(b)).unwrap();
        let err = (DVector::from_column_slice(&sol.x) - &reference).norm();
        prop_assert!(err <= 1e-10 * (1.0 + reference.norm()), "{err}");
        prop_assert!(sol.report.converged && sol.report.method == Method::Richardson);
        prop_assert_eq!(sol.report.matvecs, sol.report.iterations);
        let again = solve(&a, b, None, Method::Richardson, &opts).unwrap();
        prop_assert_eq!(again.x, sol.x);
    }
}

/// ρ(I − A) > 1: the iteration grows, and stops as `Diverged` with its report.
#[test]
fn a_non_contractive_system_diverges_loudly() {
    let a = DMatrix::from_row_slice(2, 2, &[-1.0, 0.0, 0.0, 0.5]); // I − A has eigenvalue 2
    match richardson(&a, &[1.0, 1.0], None, None, &SolveOptions::default()) {
        Err(SolveError::Diverged { report, .. }) => {
            assert!(!report.converged && report.method == Method::Richardson);
            assert!(report.residual_norm > report.initial_residual_norm);
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
}
