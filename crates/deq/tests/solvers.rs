//! The forward solvers' specification: on random contractive maps every solver (and both
//! batch modes) reaches the same fixed point; Anderson and Broyden take no more
//! iterations than Picard on a family of affine contractions; the stats describe the
//! returned iterate; the regularized least squares agrees with an independent reference.

use deq::solvers::lstsq::regularized_lstsq;
use deq::solvers::{
    AndersonOptions, BroydenOptions, Method, PicardOptions, SolveStats, SolverOptions, solve,
};
use nalgebra::DMatrix;
use proptest::prelude::*;

/// f(z) = tanh(A z + C) column by column, with ‖A‖₂ <= ‖A‖_F = `rate` < 1: a contraction
/// with constant `rate` (tanh' <= 1).
#[derive(Clone, Debug)]
struct Contraction {
    a: DMatrix<f64>,
    c: DMatrix<f64>,
}

impl Contraction {
    fn eval(&self, z: &DMatrix<f64>, cols: &[usize]) -> DMatrix<f64> {
        let c = DMatrix::from_fn(z.nrows(), cols.len(), |i, j| self.c[(i, cols[j])]);
        (&self.a * z + c).map(f64::tanh)
    }
}

fn contraction(
    max_d: usize,
    max_b: usize,
    rate: std::ops::Range<f64>,
) -> impl Strategy<Value = Contraction> {
    (1..=max_d, 1..=max_b, rate).prop_flat_map(|(d, b, rate)| {
        (
            proptest::collection::vec(-1.0..1.0f64, d * d),
            proptest::collection::vec(-2.0..2.0f64, d * b),
        )
            .prop_map(move |(a, c)| {
                let a = DMatrix::from_vec(d, d, a);
                let norm = a.norm().max(1e-3);
                Contraction {
                    a: a * (rate / norm),
                    c: DMatrix::from_vec(d, b, c),
                }
            })
    })
}

fn methods() -> [Method; 5] {
    [
        Method::picard(),
        Method::Picard(PicardOptions { damping: 0.7 }),
        Method::anderson(),
        Method::Anderson(AndersonOptions {
            memory: 2,
            regularization: 1e-8,
            damping: 0.8,
        }),
        Method::broyden(),
    ]
}

/// The returned iterate's residuals are the ones the stats report.
fn check_stats(f: &Contraction, z: &DMatrix<f64>, stats: &SolveStats, tol: f64) {
    let all: Vec<usize> = (0..z.ncols()).collect();
    let r = f.eval(z, &all) - z;
    if stats.sample_residuals.len() == z.ncols() {
        for (k, &res) in stats.sample_residuals.iter().enumerate() {
            let actual = r.column(k).norm();
            assert!(
                (actual - res).abs() <= 1e-12 + 1e-9 * res,
                "sample {k}: {actual} vs {res}"
            );
            assert!(res <= tol);
        }
        assert_eq!(
            stats.function_evals,
            stats.sample_iterations.iter().sum::<usize>()
        );
    }
    let worst = stats.sample_residuals.iter().copied().fold(0.0, f64::max);
    assert_eq!(stats.lowest_residual, worst);
    assert!(stats.converged && stats.attempts.is_empty());
    assert_eq!(stats.residual_trace.len(), stats.iterations);
    assert!(stats.residual_trace.iter().all(|r| r.is_finite()));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every method, per sample and whole-batch, converges to the same z* (unique, as f is
    /// a contraction). Tolerance: residual 1e-12 gives ‖z − z*‖ <= 1e-12 / (1 − 0.9) per
    /// sample, so two solutions agree to 2e-11 · √batch; 1e-9 leaves margin.
    #[test]
    fn every_solver_reaches_the_same_fixed_point(f in contraction(8, 4, 0.1..0.9)) {
        let z0 = DMatrix::zeros(f.c.nrows(), f.c.ncols());
        let tol = 1e-12;
        let reference = solve(|z: &DMatrix<f64>, c: &[usize]| f.eval(z, c), &z0,
            &SolverOptions::default().method(Method::picard()).tol(tol).max_iters(2000)).unwrap().z;
        for method in methods() {
            for per_sample in [true, false] {
                let opts = SolverOptions::default().method(method).tol(tol).max_iters(2000)
                    .per_sample(per_sample);
                let sol = solve(|z: &DMatrix<f64>, c: &[usize]| f.eval(z, c), &z0, &opts)
                    .unwrap_or_else(|e| panic!("{method:?} per_sample={per_sample}: {e}"));
                prop_assert!((&sol.z - &reference).norm() <= 1e-9,
                    "{:?}: {}", method, (&sol.z - &reference).norm());
                if per_sample {
                    check_stats(&f, &sol.z, &sol.stats, tol);
                } else {
                    prop_assert!(sol.stats.lowest_residual <= tol && sol.stats.converged);
                }
            }
        }
    }

    /// On affine contractions f(z) = A z + c with ‖A‖ = 0.9 (Picard needs ~260 iterations
    /// for 1e-12), Anderson with memory >= d and Broyden take no more iterations than
    /// Picard (both are exact on linear maps within about d + 2 steps).
    #[test]
    fn anderson_and_broyden_take_no_more_iterations_than_picard(f in contraction(6, 3, 0.9..0.9001)) {
        let affine = |z: &DMatrix<f64>, cols: &[usize]| {
            &f.a * z + DMatrix::from_fn(z.nrows(), cols.len(), |i, j| f.c[(i, cols[j])])
        };
        let z0 = DMatrix::zeros(f.c.nrows(), f.c.ncols());
        let run = |m: Method| solve(affine, &z0, &SolverOptions::default().method(m).tol(1e-12)
            .max_iters(2000)).unwrap().stats.iterations;
        let picard = run(Method::picard());
        let anderson = run(Method::Anderson(AndersonOptions { memory: 6, ..AndersonOptions::default() }));
        let broyden = run(Method::Broyden(BroydenOptions { memory: 20 }));
        prop_assert!(anderson <= picard && broyden <= picard,
            "picard {picard}, anderson {anderson}, broyden {broyden}");
    }

    /// The Householder-QR least squares agrees with an independent reference: the
    /// normal equations (AᵀA + λI) x = Aᵀb solved by nalgebra's LU, on well-conditioned
    /// problems (λ >= 1e-6·‖A‖², so cond(AᵀA + λI) <= 1e6 and the LU answer is good to
    /// ~1e-10 relative); and it satisfies the optimality condition Aᵀ(Ax − b) + λx = 0
    /// to rounding whatever the conditioning.
    #[test]
    fn least_squares_agrees_with_the_normal_equations(
        (n, k) in (1usize..12, 1usize..6),
        entries in proptest::collection::vec(-1.0..1.0f64, 72),
        rhs in proptest::collection::vec(-1.0..1.0f64, 12),
        log_lambda in -6.0..1.0f64,
    ) {
        let a = DMatrix::from_column_slice(n, k, &entries[..n * k]);
        let b = &rhs[..n];
        let lambda = 10f64.powf(log_lambda) * a.norm_squared().max(1e-3);
        let x = regularized_lstsq(&a, b, lambda).unwrap();
        let bv = nalgebra::DVector::from_column_slice(b);
        let normal = a.transpose() * &a + DMatrix::identity(k, k) * lambda;
        let reference = normal.clone().lu().solve(&(a.transpose() * &bv)).unwrap();
        let xv = nalgebra::DVector::from_column_slice(&x);
        prop_assert!((&xv - &reference).norm() <= 1e-8 * reference.norm().max(1e-12));
        let grad = a.transpose() * (&a * &xv - &bv) + &xv * lambda;
        prop_assert!(grad.norm() <= 1e-12 * (1.0 + normal.norm() * xv.norm() + a.norm() * bv.norm()));
    }
}

/// A singular system without a ridge is reported, with its pivot, not divided by.
#[test]
fn least_squares_reports_a_singular_system() {
    let a = DMatrix::from_row_slice(3, 2, &[1.0, 2.0, 2.0, 4.0, -1.0, -2.0]);
    let err = regularized_lstsq(&a, &[1.0, 0.0, 1.0], 0.0).unwrap_err();
    assert_eq!(err.column, 1);
    assert!(err.pivot <= 1e-13 * err.scale);
    // A zero ridge on a full-rank system is the plain least-squares solution.
    let b = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
    let x = regularized_lstsq(&b, &[1.0, 1.0, 3.0], 0.0).unwrap();
    assert!((x[0] - 4.0 / 3.0).abs() < 1e-14 && (x[1] - 4.0 / 3.0).abs() < 1e-14);
}

/// Anderson without a ridge on a one-dimensional problem: every pair of differences is
/// collinear, so the least-squares system is singular at the second step. The solver
/// restarts its history (counted) instead of crashing, and still converges.
#[test]
fn anderson_restarts_on_a_singular_least_squares_system() {
    let f = |z: &DMatrix<f64>, _: &[usize]| z.map(|v| 0.5 * v.cos());
    let opts = SolverOptions::default()
        .method(Method::Anderson(AndersonOptions {
            memory: 3,
            regularization: 0.0,
            damping: 1.0,
        }))
        .tol(1e-12);
    let sol = solve(f, &DMatrix::zeros(1, 1), &opts).unwrap();
    assert!(sol.stats.restarts > 0, "{:?}", sol.stats);
    assert!((0.5 * sol.z[0].cos() - sol.z[0]).abs() <= 1e-12);
}

/// Per-sample convergence: an easy sample stops costing evaluations while a hard one
/// continues; the map sees only the active columns.
#[test]
fn converged_samples_stop_costing_evaluations() {
    // Column 0: z = 0.1 z + 1 (fast); column 1: z = 0.95 z + 1 (slow).
    let rates = [0.1, 0.95];
    let f = |z: &DMatrix<f64>, cols: &[usize]| {
        DMatrix::from_fn(1, cols.len(), |_, j| rates[cols[j]] * z[(0, j)] + 1.0)
    };
    let sol = solve(
        f,
        &DMatrix::zeros(1, 2),
        &SolverOptions::default().method(Method::picard()),
    )
    .unwrap();
    let it = &sol.stats.sample_iterations;
    assert!(it[0] < 20 && it[1] > 300, "{it:?}");
    assert_eq!(sol.stats.function_evals, it[0] + it[1]);
    assert_eq!(sol.stats.map_calls, it[1]);
    assert!((sol.z[0] - 1.0 / 0.9).abs() < 1e-10 && (sol.z[1] - 20.0).abs() < 1e-8);
}

/// The solver's state is bounded by the options, not by the iteration limit.
#[test]
fn solver_memory_is_bounded_by_the_options() {
    let opts = |max_iters| {
        SolverOptions::default()
            .method(Method::anderson())
            .fallback(vec![Method::broyden()])
            .max_iters(max_iters)
    };
    assert_eq!(
        opts(10).memory_bytes(64, 32),
        opts(100_000).memory_bytes(64, 32)
    );
    // Anderson m = 5: 12 vectors of 64 plus a 5x7 scratch; Broyden 20: 43 vectors.
    assert_eq!(
        Method::anderson().state_bytes_per_sample(64),
        (12 * 64 + 35) * 8
    );
    assert_eq!(Method::broyden().state_bytes_per_sample(64), 43 * 64 * 8);
}
