//! The library's Newton method (`solvers::newton`): what it guarantees.
//!
//! - It converges to ‖∇ₓL‖ ≤ grad_tol on smooth strongly convex problems, plain and with
//!   chord steps, to the same minimizer (within what the tolerance allows), taking no more
//!   Hessians with chord steps than without.
//! - Where the Hessian is not positive definite it shifts it (reported) and still descends.
//! - It fails loudly: invalid options, non-finite inputs and stalls are typed errors with
//!   the numbers (the stall carries the gradient-norm trace).
//! - Its factor, handed to the backward pass, gives the exact hypergradient.

use ad_core::{MatOps, Real};
use implicit::hyper::{InnerSolver, ValidationLoss, hypergradient, newton_inner};
use implicit::linear::{Method, SolveError};
use implicit::solvers::newton::{NewtonError, NewtonOptions, minimize_newton};
use implicit::{IftOptions, ImplicitError, Objective};
use nalgebra::DMatrix;
use proptest::prelude::*;

/// L(x, θ) = ½‖x − θ‖² + ¼‖x‖⁴ + ½ Σ wᵢ xᵢ² with weights w ≥ 0: strongly convex.
struct Quartic {
    w: DMatrix<f64>,
}

impl Objective for Quartic {
    fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
        x.sub(&t[0]).sq_norm() * 0.5
            + x.sq_norm().square() * 0.25
            + x.square().dot(&x.constant_like(self.w.clone())) * 0.5
    }
}

fn col(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

/// How many Hessians the chord rule assembles along a run with this gradient-norm trace:
/// one at iteration 0, and one at each later iteration i (a step taken: i < the last
/// entry) whose norm exceeds `ratio` times the previous one.
fn fresh_hessians(trace: &[f64], ratio: f64) -> usize {
    (0..trace.len() - 1)
        .filter(|&i| i == 0 || trace[i] > ratio * trace[i - 1])
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Plain Newton and chord steps reach the same minimizer: both stop at ‖∇L‖ ≤ 1e-10
    /// and L is 1-strongly convex, so each is within 1e-10 of x*, and of each other within
    /// 2e-10.
    #[test]
    fn plain_and_chord_newton_agree(
        theta in prop::collection::vec(-3.0f64..3.0, 1..8),
        w in prop::collection::vec(0.0f64..2.0, 8),
    ) {
        let n = theta.len();
        let obj = Quartic { w: col(&w[..n]) };
        let t = [col(&theta)];
        let x0 = DMatrix::zeros(n, 1);
        let plain = minimize_newton(&obj, &t, &x0, &NewtonOptions::default().reuse_ratio(0.0)).unwrap();
        let chord = minimize_newton(&obj, &t, &x0, &NewtonOptions::default()).unwrap();
        for s in [&plain, &chord] {
            prop_assert!(s.report.grad_norm <= 1e-10, "{:?}", s.report);
            prop_assert_eq!(s.report.grad_norm_trace.len(), s.report.iterations + 1);
            prop_assert_eq!(s.report.shifted, 0);
        }
        prop_assert_eq!(plain.report.hessians, plain.report.iterations);
        prop_assert!(chord.report.hessians <= plain.report.hessians);
        // The chord rule, read off the trace: a fresh Hessian at the first iteration and
        // wherever ‖∇L‖ did not fall to reuse_ratio times the previous norm.
        // The factor is handed over exactly when the last step was a Newton step (a fresh
        // Hessian; none of these is shifted).
        prop_assert!(plain.factor.is_some());
        for ratio in [0.2, 0.6] {
            let s = minimize_newton(&obj, &t, &x0, &NewtonOptions::default().reuse_ratio(ratio)).unwrap();
            let trace = &s.report.grad_norm_trace;
            prop_assert_eq!(s.report.hessians, fresh_hessians(trace, ratio));
            let last_fresh = trace.len() >= 2 && {
                let i = trace.len() - 2;
                i == 0 || trace[i] > ratio * trace[i - 1]
            };
            prop_assert_eq!(s.factor.is_some(), last_fresh, "{:?}", s.report);
        }
        prop_assert!((&plain.x - &chord.x).amax() <= 2e-10);
    }
}

/// L = ¼x⁴ − ½x² + θx starts at x0 = 0.1, where L'' = 3x² − 1 < 0: the Hessian is shifted
/// (reported), the step still descends, and Newton finds the minimizer.
#[test]
fn indefinite_hessian_is_shifted_and_newton_still_descends() {
    struct DoubleWell;
    impl Objective for DoubleWell {
        fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
            let x = x.get(0, 0);
            x.powi(4) * 0.25 - x.square() * 0.5 + x * t[0].get(0, 0)
        }
    }
    let s = minimize_newton(
        &DoubleWell,
        &[col(&[0.3])],
        &col(&[0.1]),
        &NewtonOptions::default(),
    )
    .unwrap();
    assert!(
        s.report.shifted >= 1 && s.report.shifted <= s.report.hessians,
        "{:?}",
        s.report
    );
    let x = s.x[0];
    assert!(
        (x.powi(3) - x + 0.3).abs() <= 1e-10 && 3.0 * x * x - 1.0 > 0.0,
        "x = {x}"
    );
}

/// The shift rule as documented: the smallest μ = 10^k · 1e-10 · max(1, max|hᵢᵢ|) making
/// the Hessian positive definite. L = ¼x⁴ − ¼x² + θx at x0 = 0 has L'' = −0.5, so
/// μ = 1 (k = 10), the shifted Hessian is 0.5 and the full step −θ/0.5 = −0.2 is taken.
#[test]
fn the_shift_is_the_smallest_power_of_ten_that_works() {
    struct Well;
    impl Objective for Well {
        fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
            let x = x.get(0, 0);
            x.powi(4) * 0.25 - x.square() * 0.25 + x * t[0].get(0, 0)
        }
    }
    let s = minimize_newton(
        &Well,
        &[col(&[0.1])],
        &col(&[0.0]),
        &NewtonOptions::default(),
    )
    .unwrap();
    assert!(
        s.report.shifted >= 1 && s.report.shifted <= s.report.hessians,
        "{:?}",
        s.report
    );
    let x1: f64 = -0.2;
    let g1 = x1.powi(3) - 0.5 * x1 + 0.1;
    let got = s.report.grad_norm_trace[1];
    assert!(
        (got - g1.abs()).abs() <= 1e-12,
        "‖∇L(x1)‖ = {got}, expected {}",
        g1.abs()
    );
}

/// Backtracking halves the step until L has decreased by at least armijo · t · slope:
/// L = √(1 + x²) + θx with θ = 0 from x0 = 2 has the Newton step −x(1 + x²) = −10, which
/// overshoots; with armijo = 0.4, t = 1 and t = 1/2 give no decrease and t = 1/4 (x1 = −0.5)
/// is the first that is enough (L drops by 1.118 against 0.4 · 0.25 · 8.944 = 0.894). Every
/// trial point is recorded once, besides x0.
#[test]
fn backtracking_takes_the_first_step_with_enough_decrease() {
    struct Hyperbola;
    impl Objective for Hyperbola {
        fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
            let x = x.get(0, 0);
            (x.square() + 1.0).sqrt() + x * t[0].get(0, 0)
        }
    }
    let s = minimize_newton(
        &Hyperbola,
        &[col(&[0.0])],
        &col(&[2.0]),
        &NewtonOptions::default().armijo(0.4),
    )
    .unwrap();
    let g1 = 0.5 / 1.25f64.sqrt();
    let got = s.report.grad_norm_trace[1];
    assert!((got - g1).abs() <= 1e-14, "‖∇L(x1)‖ = {got}, expected {g1}");
    assert!(s.x[0].abs() <= 1e-8, "{}", s.x[0]);
    let r = &s.report;
    assert!(r.line_search_evaluations >= r.iterations + 2, "{r:?}");
    assert_eq!(r.recordings, r.line_search_evaluations + 1, "{r:?}");
}

/// The shift's unit is max(1, max|hᵢᵢ|): L = 2x² + ¼y⁴ − ¼y² + θy at (0, 0) has
/// H = diag(4, −0.5), so μ = 10^k · 4e-10 with k = 10 (μ = 4; 0.4 does not repair it), the
/// shifted Hessian is diag(8, 3.5) and the full step is (0, −θ/3.5).
#[test]
fn the_shift_scales_with_the_largest_diagonal_entry() {
    struct Scaled;
    impl Objective for Scaled {
        fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
            let (a, b) = (x.get(0, 0), x.get(1, 0));
            a.square() * 2.0 + b.powi(4) * 0.25 - b.square() * 0.25 + b * t[0].get(0, 0)
        }
    }
    let s = minimize_newton(
        &Scaled,
        &[col(&[0.1])],
        &col(&[0.0, 0.0]),
        &NewtonOptions::default(),
    )
    .unwrap();
    assert!(
        s.report.shifted >= 1 && s.report.shifted <= s.report.hessians,
        "{:?}",
        s.report
    );
    let y1: f64 = -0.1 / 3.5;
    let g1 = y1.powi(3) - 0.5 * y1 + 0.1;
    let got = s.report.grad_norm_trace[1];
    assert!(
        (got - g1.abs()).abs() <= 1e-12,
        "‖∇L(x1)‖ = {got}, expected {}",
        g1.abs()
    );
}

/// L = a·x·y + θ(x + y) has the Hessian [[0, a], [a, 0]] (eigenvalues ±a). Twenty shifts
/// reach μ = 1e-10 · 10^19 = 1e9 < a = 5e9: the run fails with the last factorization's
/// numbers instead of shifting without end.
#[test]
fn a_hessian_no_shift_repairs_is_a_typed_error() {
    struct Saddle;
    impl Objective for Saddle {
        fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
            let (a, b) = (x.get(0, 0), x.get(1, 0));
            a * b * 5e9 + (a + b) * t[0].get(0, 0)
        }
    }
    let err = minimize_newton(
        &Saddle,
        &[col(&[1.0])],
        &col(&[0.0, 0.0]),
        &NewtonOptions::default(),
    )
    .unwrap_err();
    match err {
        NewtonError::Linear(SolveError::NotPositiveDefinite {
            pivot, value, size, ..
        }) => {
            assert_eq!((pivot, size), (1, 2));
            // μ − a²/μ at μ = 1e9.
            let expected = 1e9 - 25e18 / 1e9;
            assert!((value - expected).abs() <= 1e-9 * expected.abs(), "{value}");
        }
        other => panic!("expected NotPositiveDefinite, got {other:?}"),
    }
}

/// Near x*, a step changes L by less than its rounding: the full step is accepted when L
/// does not grow beyond 4 ulp of |L| (the decrease Armijo asks for is not resolvable).
/// Logistic losses over a few thousand points reach ‖∇L‖ ≤ 1e-10 this way: their last
/// steps decrease L by ~‖∇L‖²/λ_min ≈ 1e-16 or less, below the summation noise of L.
#[test]
fn steps_below_the_resolution_of_l_are_accepted_near_the_minimizer() {
    struct Logistic {
        x: DMatrix<f64>,
        y: DMatrix<f64>,
    }
    impl Objective for Logistic {
        fn value<M: MatOps>(&self, w: &M, t: &[M]) -> M::Scalar {
            let z = w.constant_like(self.x.clone()).matmul(w);
            let margins = z.mul_elem(&w.constant_like(self.y.clone())).neg();
            margins.softplus().mean() + w.sq_norm() * t[0].get(0, 0)
        }
    }
    for seed in 0..8u64 {
        let (n, d) = (3000, 4);
        let f = |i: usize, j: usize| {
            ((i * 7919 + j * 104729 + seed as usize * 31) as f64 * 0.618).sin()
        };
        let x = DMatrix::from_fn(n, d, f);
        let y = DMatrix::from_fn(n, 1, |i, _| {
            if f(i, d) + 0.3 * f(i, 0) > 0.0 {
                1.0
            } else {
                -1.0
            }
        });
        let s = minimize_newton(
            &Logistic { x, y },
            &[col(&[1e-3])],
            &DMatrix::zeros(d, 1),
            &NewtonOptions::default().grad_tol(1e-10),
        )
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert!(s.report.grad_norm <= 1e-10, "seed {seed}: {:?}", s.report);
    }
}

/// L = sqrt(1 + x²): from x0, the full Newton step lands at −x0³. From x0 = 1 it lands at
/// −1, where L is exactly as large: a resolvable decrease was asked for, so the step is
/// refused and halved (landing on x* = 0), not accepted as "rounding" (which would make
/// Newton cycle between ±1). From x0 = 1 + 1e-5 the full step raises L by ~1.4e-5, less
/// than Armijo's c·|slope| = 1.4e-4 but still an increase: refused too.
#[test]
fn a_full_step_that_does_not_decrease_l_is_halved() {
    struct Hyperbola;
    impl Objective for Hyperbola {
        fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
            (x.get(0, 0).square() + 1.0).sqrt() + t[0].get(0, 0)
        }
    }
    for x0 in [1.0, 1.0 + 1e-5] {
        let s = minimize_newton(
            &Hyperbola,
            &[col(&[0.0])],
            &col(&[x0]),
            &NewtonOptions::default(),
        )
        .unwrap_or_else(|e| panic!("x0 = {x0}: {e}"));
        assert!(s.x[0].abs() <= 1e-10, "x0 = {x0}: {:?}", s.report);
        // The first step was halved once: x1 = x0 − (x0 + x0³)/2, |∇L(x1)| ≈ |x1| ≤ 3e-5.
        assert!(
            s.report.grad_norm_trace[1] <= 3e-5,
            "x0 = {x0}: {:?}",
            s.report
        );
        assert!(s.report.line_search_evaluations >= 2);
    }
}

#[test]
fn invalid_options_are_named() {
    let obj = Quartic { w: col(&[0.0]) };
    let t = [col(&[1.0])];
    let x0 = col(&[0.0]);
    let cases = [
        (
            NewtonOptions::default().grad_tol(f64::NAN),
            "newton.grad_tol",
        ),
        (NewtonOptions::default().grad_tol(0.0), "newton.grad_tol"),
        (NewtonOptions::default().max_iters(0), "newton.max_iters"),
        (NewtonOptions::default().armijo(1.0), "newton.armijo"),
        (NewtonOptions::default().armijo(0.0), "newton.armijo"),
        (NewtonOptions::default().armijo(f64::NAN), "newton.armijo"),
        (
            NewtonOptions::default().reuse_ratio(f64::NAN),
            "newton.reuse_ratio",
        ),
        (
            NewtonOptions::default().reuse_ratio(1.0),
            "newton.reuse_ratio",
        ),
        (
            NewtonOptions::default().reuse_ratio(-0.1),
            "newton.reuse_ratio",
        ),
        (
            NewtonOptions::default().max_backtracks(0),
            "newton.max_backtracks",
        ),
    ];
    for (opts, expected) in cases {
        match minimize_newton(&obj, &t, &x0, &opts) {
            Err(NewtonError::InvalidOption { name, .. }) => assert_eq!(name, expected),
            other => panic!("{expected}: got {other:?}"),
        }
    }
}

#[test]
fn non_finite_inputs_are_named_with_position() {
    let obj = Quartic {
        w: col(&[0.0, 0.0]),
    };
    match minimize_newton(
        &obj,
        &[col(&[1.0, f64::NAN])],
        &col(&[0.0, 0.0]),
        &NewtonOptions::default(),
    ) {
        Err(NewtonError::NonFinite {
            what,
            iteration,
            index,
            value,
        }) => {
            assert_eq!((what, iteration, index), ("parameters theta", 0, 1));
            assert!(value.is_nan());
        }
        other => panic!("got {other:?}"),
    }
    match minimize_newton(
        &obj,
        &[col(&[1.0, 0.0])],
        &col(&[f64::INFINITY, 0.0]),
        &NewtonOptions::default(),
    ) {
        Err(NewtonError::NonFinite {
            what, index, value, ..
        }) => {
            assert_eq!(
                (what, index, value),
                ("starting point x0", 0, f64::INFINITY)
            );
        }
        other => panic!("got {other:?}"),
    }
}

/// One iteration allowed on a problem that needs several: a `Stalled` error with the trace
/// (two gradient norms: the start and the one iterate), never a result.
#[test]
fn the_iteration_limit_is_a_stall_with_the_trace() {
    let obj = Quartic {
        w: col(&[0.0, 0.0]),
    };
    let err = minimize_newton(
        &obj,
        &[col(&[3.0, -2.0])],
        &col(&[0.0, 0.0]),
        &NewtonOptions::default().max_iters(1),
    )
    .unwrap_err();
    match &err {
        NewtonError::Stalled { reason, report } => {
            assert_eq!(*reason, "iteration limit reached");
            assert_eq!(report.iterations, 1);
            assert_eq!(report.grad_norm_trace.len(), 2);
            assert!(report.grad_norm > 1e-10 && report.grad_norm == report.grad_norm_trace[1]);
        }
        other => panic!("got {other:?}"),
    }
    // Joined into ImplicitError with its numbers.
    let joined: ImplicitError = err.into();
    assert!(
        joined.to_string().contains("iteration limit reached"),
        "{joined}"
    );
}

/// Ridge: x*(λ) = (A + λI)⁻¹ b; V = ½‖x‖². The hypergradient through `newton_inner` (its
/// factor reused and refined) equals the closed form −x*ᵀ(A + λI)⁻¹ x* to 1e-12 relative.
#[test]
fn newton_inner_gives_the_exact_hypergradient() {
    struct Ridge;
    impl Objective for Ridge {
        fn value<M: MatOps>(&self, x: &M, l: &[M]) -> M::Scalar {
            let a = x.constant_like(DMatrix::from_row_slice(
                3,
                3,
                &[3.0, 1.0, 0.0, 1.0, 2.0, 0.5, 0.0, 0.5, 1.0],
            ));
            let b = x.constant_like(col(&[1.0, -2.0, 0.5]));
            x.dot(&a.matmul(x)) * 0.5 - x.dot(&b) + l[0].get(0, 0) * x.sq_norm() * 0.5
        }
    }
    struct Val;
    impl ValidationLoss for Val {
        fn loss<M: MatOps>(&self, x: &M, _l: &M) -> M::Scalar {
            x.sq_norm() * 0.5
        }
    }
    let lam = 0.3;
    let h = DMatrix::from_row_slice(
        3,
        3,
        &[
            3.0 + lam,
            1.0,
            0.0,
            1.0,
            2.0 + lam,
            0.5,
            0.0,
            0.5,
            1.0 + lam,
        ],
    );
    let chol = h.clone().cholesky().unwrap();
    let x = chol.solve(&col(&[1.0, -2.0, 0.5]));
    let exact = -x.dot(&chol.solve(&x));
    let mut solver = newton_inner(&Ridge, 3, NewtonOptions::default());
    let hg = hypergradient(&Ridge, &Val, &[lam], &mut solver, &IftOptions::default()).unwrap();
    assert!(
        (hg.grad[0] - exact).abs() <= 1e-12 * exact.abs(),
        "{} vs {exact}",
        hg.grad[0]
    );
    let linear = hg.report.linear.unwrap();
    assert_eq!(linear.method, Method::Cholesky);
    assert!(linear.converged);
}

/// A warm start of the wrong length is `ImplicitError::Dimension` with both lengths, not a
/// panic inside the objective; a stalled inner Newton run reaches the caller joined into
/// `ImplicitError::Newton` with its report.
#[test]
fn newton_inner_rejects_a_wrong_warm_start_and_passes_stalls_on() {
    let obj = Quartic {
        w: col(&[0.0, 0.0]),
    };
    let mut solver = newton_inner(&obj, 2, NewtonOptions::default());
    match solver.solve(&[1.0, -1.0], Some(&[0.0, 0.0, 0.0])) {
        Err(ImplicitError::Dimension { expected, got, .. }) => assert_eq!((expected, got), (2, 3)),
        Err(e) => panic!("expected Dimension, got {e:?}"),
        Ok(_) => panic!("expected Dimension, got a solution"),
    }
    let mut starved = newton_inner(&obj, 2, NewtonOptions::default().max_iters(1));
    match starved.solve(&[3.0, -2.0], None) {
        Err(ImplicitError::Newton(NewtonError::Stalled { report, .. })) => {
            assert_eq!(report.iterations, 1);
            assert!(report.grad_norm > 1e-10);
        }
        Err(e) => panic!("expected Newton(Stalled), got {e:?}"),
        Ok(_) => panic!("expected Newton(Stalled), got a solution"),
    }
}
