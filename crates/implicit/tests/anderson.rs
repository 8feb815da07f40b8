//! Anderson-accelerated Richardson iteration: solves I − K systems with ρ(K) < 1 to the
//! tolerance with one product per iteration, in no more iterations than Richardson on the
//! slowly contracting family below, survives singular least-squares systems, and reports
//! a system it cannot solve as a typed error with its numbers.

use implicit::linear::{
    Method, SolveError, SolveOptions, Workspace, anderson, richardson, solve, solve_with,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

/// A = I − K with ‖K‖_F = rate.
fn system(n: usize, entries: &[f64], rate: f64) -> DMatrix<f64> {
    let k = DMatrix::from_column_slice(n, n, &entries[..n * n]);
    let k = &k * (rate / k.norm().max(1e-12));
    DMatrix::identity(n, n) - k
}

proptest! {
    /// A = I − K with ‖K‖_F = rate < 1: the answer agrees with dense LU (to the solve's
    /// tolerance, amplified by ‖A⁻¹‖ <= 1 / (1 − rate) <= 100), one product per iteration,
    /// any memory from 1 to beyond n, and dispatch through `Method::Anderson` and a reused
    /// workspace give the same bits.
    #[test]
    fn contractive_systems_are_solved(
        n in 1usize..12,
        entries in proptest::collection::vec(-1.0..1.0f64, 144),
        rhs in proptest::collection::vec(-1.0..1.0f64, 12),
        rate in 0.0..0.99f64,
        memory in 1usize..15,
    ) {
        let a = system(n, &entries, rate);
        let b = &rhs[..n];
        let opts = SolveOptions::default().rtol(1e-12).max_iters(5000).memory(memory);
        let sol = anderson(&a, b, None, None, &opts).unwrap();
        let reference = a.clone().lu().solve(&DVector::from_column_slice(b)).unwrap();
        let err = (DVector::from_column_slice(&sol.x) - &reference).norm();
        prop_assert!(err <= 1e-10 * (1.0 + reference.norm()), "{err}");
        prop_assert!(sol.report.converged && sol.report.method == Method::Anderson);
        prop_assert_eq!(sol.report.matvecs, sol.report.iterations);
        let again = solve(&a, b, None, Method::Anderson, &opts).unwrap();
        prop_assert_eq!(&again.x, &sol.x);
        let mut ws = Workspace::new(Method::Anderson, n, n, &opts);
        for _ in 0..2 {
            solve_with(&mut ws, &a, b, None, None, Method::Anderson, &opts).unwrap();
            prop_assert_eq!(ws.solution(), &sol.x[..]);
        }
    }

    /// On slowly contracting systems (‖K‖_F from 0.9 to 0.99, where Richardson needs
    /// hundreds of products) the default memory of 5 needs at most as many products as
    /// Richardson: the point of the method.
    #[test]
    fn it_needs_no_more_products_than_richardson(
        n in 4usize..12,
        entries in proptest::collection::vec(-1.0..1.0f64, 144),
        rhs in proptest::collection::vec(-1.0..1.0f64, 12),
        rate in 0.9..0.99f64,
    ) {
        let a = system(n, &entries, rate);
        let b = &rhs[..n];
        let opts = SolveOptions::default().rtol(1e-10).max_iters(10_000);
        let fast = anderson(&a, b, None, None, &opts).unwrap();
        let slow = richardson(&a, b, None, None, &opts).unwrap();
        prop_assert!(
            fast.report.matvecs <= slow.report.matvecs,
            "Anderson {} products, Richardson {}", fast.report.matvecs, slow.report.matvecs
        );
    }
}

/// The iteration counts of the doc example, a diagonal-dominant K with ρ(K) near 0.9
/// (measured: Richardson 209 products, Anderson with memory 5 18, with memory 6 8).
#[test]
fn counts_on_a_slow_system() {
    let k = DMatrix::from_fn(
        6,
        6,
        |i, j| if i == j { 0.9 - 0.1 * i as f64 } else { 0.01 },
    );
    let a = DMatrix::identity(6, 6) - k;
    let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let opts = SolveOptions::default().max_iters(1000);
    let fast = anderson(&a, &b, None, None, &opts).unwrap();
    let slow = richardson(&a, &b, None, None, &opts).unwrap();
    assert!(slow.report.iterations >= 150, "{}", slow.report.iterations);
    assert!(fast.report.iterations <= 20, "{}", fast.report.iterations);
    // With memory >= n, Anderson is GMRES in disguise (Walker and Ni): x_{k+1} = g(x_k of
    // GMRES), and GMRES is exact after n = 6 steps; two more for rounding.
    let full = anderson(&a, &b, None, None, &opts.clone().memory(6)).unwrap();
    assert!(full.report.iterations <= 8, "{}", full.report.iterations);
}

/// K = c I makes every residual a multiple of the first: the differences are parallel and
/// the least-squares system is singular but for its regularization. The solve still
/// converges (the safeguard of locuslab/deq #20's crash).
#[test]
fn parallel_differences_do_not_break_it() {
    for c in [0.5, 0.9, -0.7] {
        let a = DMatrix::identity(5, 5) * (1.0 - c);
        let b = [1.0, -2.0, 3.0, 0.5, 0.25];
        let sol = anderson(&a, &b, None, None, &SolveOptions::default()).unwrap();
        for (x, bi) in sol.x.iter().zip(b) {
            assert!((x - bi / (1.0 - c)).abs() < 1e-9, "c = {c}: {x}");
        }
        // ... by mixing, not by falling back to Richardson (which needs ~ log(1e-10) /
        // log|c| steps, 219 for c = 0.9): the regularized system stays solvable.
        assert!(sol.report.iterations <= 4, "c = {c}: {:?}", sol.report);
    }
}

/// ρ(I − A) > 1 with a dominant growing mode: no mixing can save Richardson's base step
/// on this one (the growing direction is re-excited at every reset); it stops loudly as
/// `Diverged` or `Stalled`, with its report.
#[test]
fn a_non_contractive_system_is_an_error_with_its_numbers() {
    let a = DMatrix::from_row_slice(2, 2, &[-1.0, 0.0, 0.0, 0.5]); // I − A has eigenvalue 2
    let opts = SolveOptions::default().max_iters(400);
    match anderson(&a, &[1.0, 1.0], None, None, &opts) {
        Ok(sol) => {
            // Mixing may still find the solution of this 2x2 system exactly; then it must
            // be right.
            assert!((sol.x[0] + 1.0).abs() < 1e-9 && (sol.x[1] - 2.0).abs() < 1e-9);
        }
        Err(SolveError::Diverged { report, .. }) | Err(SolveError::Stalled { report, .. }) => {
            assert!(!report.converged && report.method == Method::Anderson);
        }
        Err(other) => panic!("expected Diverged or Stalled, got {other:?}"),
    }
}

/// A memory of 0 is an invalid option naming itself; a NaN right-hand side is rejected.
#[test]
fn bad_input_is_a_typed_error() {
    let a = DMatrix::<f64>::identity(2, 2) * 0.5;
    match anderson(
        &a,
        &[1.0, 1.0],
        None,
        None,
        &SolveOptions::default().memory(0),
    ) {
        Err(SolveError::InvalidOption { name, value, .. }) => {
            assert_eq!((name, value), ("memory", 0.0));
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
    match anderson(&a, &[1.0, f64::NAN], None, None, &SolveOptions::default()) {
        Err(SolveError::NonFinite { what, index, .. }) => {
            assert_eq!((what, index), ("right-hand side b", 1));
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

/// Option files written before `memory` existed still load, with the default 5; a saved
/// memory round-trips.
#[test]
fn memory_loads_from_old_and_new_option_files() {
    let old: SolveOptions = serde_json::from_str(r#"{"rtol":1e-6}"#).unwrap();
    assert_eq!(old.memory, 5);
    let saved = serde_json::to_string(&SolveOptions::default().memory(9)).unwrap();
    let back: SolveOptions = serde_json::from_str(&saved).unwrap();
    assert_eq!(back.memory, 9);
}

/// A = 0 (K = I): the residual never moves. Anderson must stop early with `Stalled` (its
/// report counting the iterations it spent, well under the budget), not spend the whole
/// budget and call it `NotConverged`.
#[test]
fn a_residual_that_never_moves_is_stalled_early() {
    let a = DMatrix::<f64>::zeros(3, 3);
    let opts = SolveOptions::default().max_iters(400);
    match anderson(&a, &[1.0, 1.0, 1.0], None, None, &opts) {
        Err(SolveError::Stalled { report, .. }) => {
            assert!(!report.converged && report.method == Method::Anderson);
            assert!(report.iterations < 400, "{}", report.iterations);
            assert!((report.residual_norm - 3f64.sqrt()).abs() < 1e-12);
        }
        other => panic!("expected Stalled, got {other:?}"),
    }
}

/// The first step is a plain Richardson step (nothing to mix yet): on the 1-D system
/// 0.5 x = 1 from 0, x1 = 1; then mixing (a regularized secant step) reaches x = 2 within
/// three iterations.
#[test]
fn the_first_step_is_richardson_then_mixing_finishes() {
    let a = DMatrix::from_element(1, 1, 0.5);
    let opts = SolveOptions::default().rtol(1e-14);
    let sol = anderson(&a, &[1.0], None, None, &opts).unwrap();
    assert!(sol.report.iterations <= 3, "{:?}", sol.report);
    assert_eq!(sol.x, vec![2.0]);
    let one = anderson(&a, &[1.0], None, None, &opts.clone().max_iters(1));
    let x1 = match one {
        Ok(s) => s.x,
        Err(e) => e.last_iterate().expect("an iterate").to_vec(),
    };
    assert_eq!(x1, vec![1.0]);
}
