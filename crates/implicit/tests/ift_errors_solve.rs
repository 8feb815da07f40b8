//! Failing solves in the implicit function theorem: singular and indefinite systems, a
//! backward solve that fails inside a tape (an error and a failed report, never a zero
//! gradient), a failing forward solver, a wrong factorization, and the unrolled baseline's
//! bad input. The input checks are in `ift_errors.rs`.

mod ift_common;

use std::error::Error;

use ad_core::{AdError, MatOps, Tape};
use ift_common::bad::*;
use implicit::linear::{DenseLu, Method, SolveError, SolveOptions};
use implicit::unrolled::unrolled_gradient_descent;
use implicit::{
    Argmin, Backward, Direction, Factor, IftOptions, Implicit, ImplicitError, Objective,
    RootCondition, implicit_node, implicit_scalar_node,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

// =======================================================================================
// Singular and indefinite systems
// =======================================================================================

/// F(x, θ) = m ⊙ (x − P θ) with some mᵢ = 0: those rows of ∂F/∂x are zero (F does not
/// determine xᵢ), so ∂F/∂x = diag(m) is singular. x = Pθ is a root.
#[derive(Clone, Debug)]
struct Degenerate {
    mask: DMatrix<f64>,
    proj: DMatrix<f64>,
}

impl RootCondition for Degenerate {
    fn residual<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        let theta = &theta[0];
        let target = x.constant_like(self.proj.clone()).matmul(theta);
        x.sub(&target).mul_elem(&x.constant_like(self.mask.clone()))
    }
}

/// A saddle: L(x, θ) = ½ Σⱼ dⱼ xⱼ² − Σⱼ θ_{j mod p} cⱼ xⱼ with some dⱼ < 0. Its stationary
/// point x*ⱼ = θ_{j mod p} cⱼ / dⱼ is not a minimum: the Hessian diag(d) is indefinite.
#[derive(Clone, Debug)]
struct Saddle {
    d: DMatrix<f64>,
    c: DMatrix<f64>,
    g: DMatrix<f64>,
}

impl Saddle {
    fn random(n: usize, p: usize, seed: u64, negative: usize) -> Saddle {
        let mut rng = SplitMix(seed);
        let d = DMatrix::from_fn(n, 1, |j, _| {
            let mag = rng.unif(0.5, 2.0);
            if j == negative { -mag } else { mag }
        });
        Saddle {
            d,
            c: rng.mat(n, 1, 0.5, 1.5),
            g: groups(n, p),
        }
    }
    fn solution(&self, theta: &[f64]) -> Vec<f64> {
        let lam = &self.g * col(theta);
        (0..self.d.nrows())
            .map(|j| lam[j] * self.c[j] / self.d[j])
            .collect()
    }
    /// θ̄ = (dx*/dθ)ᵀ x̄ in closed form: θ̄_k = Σ_{j mod p = k} x̄ⱼ cⱼ / dⱼ.
    fn vjp(&self, x_bar: &[f64]) -> Vec<f64> {
        let p = self.g.ncols();
        let mut out = vec![0.0; p];
        for (j, xb) in x_bar.iter().enumerate() {
            out[j % p] += xb * self.c[j] / self.d[j];
        }
        out
    }
}

impl Objective for Saddle {
    fn value<M: MatOps>(&self, x: &M, theta: &[M]) -> M::Scalar {
        let theta = &theta[0];
        let lin = x
            .constant_like(self.g.clone())
            .matmul(theta)
            .mul_elem(&x.constant_like(self.c.clone()));
        x.square().dot(&x.constant_like(self.d.clone())) * 0.5 - lin.dot(x)
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// A singular ∂F/∂x: dense LU is `Singular` with the pivot, its value (≤ the threshold
    /// n·u·max|aᵢⱼ|) and the size; and every other method, asked for a VJP whose system
    /// Aᵀw = x̄ has no solution, returns an error — never a number.
    #[test]
    fn singular_system_is_an_error_for_every_method(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(), zero in any::<prop::sample::Index>(),
    ) {
        let mut rng = SplitMix(seed);
        let z = zero.index(n);
        let mask = DMatrix::from_fn(n, 1, |j, _| if j == z { 0.0 } else { rng.unif(0.5, 2.0) });
        let proj = rng.mat(n, p, -1.0, 1.0);
        let problem = Degenerate { mask, proj: proj.clone() };
        let theta = rng.vec(p, -1.0, 1.0);
        let x = (&proj * col(&theta)).as_slice().to_vec();
        let lu = IftOptions::default().method(Method::Lu);
        let imp = Implicit::root_vec(&problem, &x, &theta, lu).unwrap();
        prop_assert_eq!(imp.forward_residual(), 0.0);
        match error_of(imp.jvp_flat(&unit(p, 0))) {
            ImplicitError::Linear(SolveError::Singular { what, pivot, value, threshold, size }) => {
                prop_assert_eq!(what, "dense LU");
                prop_assert_eq!(size, n);
                prop_assert!(pivot < n && value.abs() <= threshold, "pivot {} = {:e}, threshold {:e}", pivot, value, threshold);
            }
            other => return Err(TestCaseError::fail(format!("expected Singular, got {other:?}"))),
        }
        drop(imp);
        // Aᵀw = e_z is inconsistent (row z of A is zero): no method may return a number.
        // CG meets zero curvature on its first direction e_z; the Krylov methods break
        // down or run out of iterations; the factorizations find the zero pivot.
        for method in [Method::Cg, Method::Minres, Method::Gmres, Method::Bicgstab, Method::Cholesky, Method::Lu] {
            let imp = Implicit::root_vec(&problem, &x, &theta, IftOptions::default().method(method)).unwrap();
            let err = error_of(imp.vjp_flat(&unit(n, z)));
            let expected = match (method, &err) {
                (Method::Cg, ImplicitError::Linear(SolveError::NegativeCurvature { iteration: 0, curvature, .. })) => *curvature == 0.0,
                (Method::Minres | Method::Gmres | Method::Bicgstab,
                    ImplicitError::Linear(SolveError::NotConverged { report, .. } | SolveError::Breakdown { report, .. } | SolveError::Stalled { report, .. })) => {
                    !report.converged && report.residual_norm > report.tolerance
                }
                (Method::Cholesky, ImplicitError::Linear(SolveError::NotPositiveDefinite { size, .. })) => *size == n,
                (Method::Lu, ImplicitError::Linear(SolveError::Singular { size, .. })) => *size == n,
                _ => false,
            };
            prop_assert!(expected, "{:?}: {:?}", method, err);
        }
    }

    /// At a saddle point the Hessian is indefinite. Asking for CG — which needs a positive
    /// definite system, and which `Method::Auto` picks for argmins — is
    /// `NegativeCurvature` with the iteration and the curvature found (here the negative
    /// eigenvalue dₖ itself, met on the first direction x̄ = e_k), and the solve's report;
    /// Cholesky is `NotPositiveDefinite`. MINRES (symmetric indefinite) and LU succeed and
    /// give the closed-form derivative.
    #[test]
    fn indefinite_hessian_with_cg_is_negative_curvature_and_minres_succeeds(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(), neg in any::<prop::sample::Index>(),
    ) {
        let k = neg.index(n);
        let s = Saddle::random(n, p, seed, k);
        let theta: Vec<f64> = (0..p).map(|i| 0.5 + 0.1 * i as f64).collect();
        let x = s.solution(&theta);
        let x_bar = unit(n, k);
        // Auto with the dense path on (the default, n <= 64): the assembled Hessian's
        // Cholesky factorization fails at a non-positive pivot.
        let auto = Implicit::argmin_vec(&s, &x, &theta, IftOptions::default()).unwrap();
        let err = error_of(auto.vjp_flat(&x_bar));
        prop_assert!(matches!(err, ImplicitError::Linear(SolveError::NotPositiveDefinite { value, size, .. }) if value <= 0.0 && size == n), "{:?}", err);
        // Matrix-free (Auto with the dense path off, or CG asked for): negative curvature.
        for opts in [IftOptions::default().dense_up_to(0), IftOptions::default().method(Method::Cg)] {
            let imp = Implicit::argmin_vec(&s, &x, &theta, opts).unwrap();
            match error_of(imp.vjp_flat(&x_bar)) {
                ImplicitError::Linear(SolveError::NegativeCurvature { method, iteration, curvature, report, .. }) => {
                    prop_assert_eq!(method, Method::Cg);
                    prop_assert_eq!(iteration, 0);
                    prop_assert!((curvature - s.d[k]).abs() <= 1e-12 * s.d[k].abs(), "curvature {:e} vs d_k {:e}", curvature, s.d[k]);
                    prop_assert!(!report.converged && report.residual_norm > report.tolerance);
                }
                other => return Err(TestCaseError::fail(format!("expected NegativeCurvature, got {other:?}"))),
            }
        }
        let chol = Implicit::argmin_vec(&s, &x, &theta, IftOptions::default().method(Method::Cholesky)).unwrap();
        let err = error_of(chol.vjp_flat(&x_bar));
        prop_assert!(matches!(err, ImplicitError::Linear(SolveError::NotPositiveDefinite { value, size, .. }) if value <= 0.0 && size == n), "{:?}", err);
        let expect = s.vjp(&x_bar);
        for method in [Method::Minres, Method::Lu] {
            let imp = Implicit::argmin_vec(&s, &x, &theta, IftOptions::default().method(method)).unwrap();
            let (got, report) = imp.vjp_flat(&x_bar).unwrap();
            prop_assert!(report.linear.as_ref().unwrap().converged);
            let err = got.iter().zip(&expect).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            prop_assert!(err <= 1e-9 * norm(&expect), "{:?}: {:?} vs {:?}", method, got, expect);
        }
    }
}

// =======================================================================================
// Failures inside a tape: never a silent zero gradient
// =======================================================================================

proptest! {
    #![proptest_config(config(32))]

    /// JAXopt #466: there, a backward CG that fails to converge returns a zero (or
    /// garbage) gradient silently. Here, a solver node whose backward solve runs out of
    /// iterations makes `Tape::gradient` return `AdError::CustomRule { rule: "vjp" }`
    /// whose source downcasts to `ImplicitError::NotConverged` with the solve's report
    /// (iterations, residual above the tolerance, the tolerance asked for) and the last
    /// iterate; forward mode (`Tape::forward`) likewise with `rule: "jvp"`. No gradient
    /// is returned at all, so none can be mistaken for zero.
    #[test]
    fn backward_solve_failure_inside_a_tape_is_an_error_not_a_zero_gradient(
        n in 3usize..=10, p in 1usize..=5, seed in any::<u64>(),
    ) {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta();
        // CG (the dense path off: n <= 10 would be factored) starved of iterations.
        let starved = IftOptions::default()
            .dense_up_to(0)
            .linear(SolveOptions::default().rtol(1e-10).max_iters(1));
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let solver = |t: &[DMatrix<f64>]| Ok::<_, String>(r.solve(t[0].as_slice()));
        let (w, node) = implicit_node(Argmin(r.clone()), &[tv], solver, starved).unwrap();
        let loss = w.sq_norm();
        let x_bar: Vec<f64> = w.value().iter().map(|v| 2.0 * v).collect();

        let check_source = |err: AdError, expected_rule: &str, rhs_norm: f64| -> Result<(), TestCaseError> {
            match err {
                AdError::CustomRule { name, rule, source } => {
                    prop_assert_eq!(name, "implicit");
                    prop_assert_eq!(rule, expected_rule);
                    match source.downcast_ref::<ImplicitError>() {
                        Some(ImplicitError::Linear(SolveError::NotConverged { report, x })) => {
                            prop_assert_eq!(report.method, Method::Cg);
                            prop_assert_eq!(report.iterations, 1);
                            prop_assert!(!report.converged && report.residual_norm > report.tolerance);
                            prop_assert!((report.rhs_norm - rhs_norm).abs() <= 1e-12 * rhs_norm);
                            prop_assert!((report.tolerance - (1e-10 * rhs_norm).max(1e-14)).abs() <= 1e-12 * report.tolerance);
                            prop_assert_eq!(x.len(), n);
                            Ok(())
                        }
                        other => Err(TestCaseError::fail(format!("source is {other:?}"))),
                    }
                }
                other => Err(TestCaseError::fail(format!("expected CustomRule, got {other:?}"))),
            }
        };
        let err = match tape.gradient(loss) {
            Ok(g) => return Err(TestCaseError::fail(format!("a gradient was returned: {}", g.wrt_mat(&tv)))),
            Err(e) => e,
        };
        check_source(err, "vjp", norm(&x_bar))?;
        // Forward mode: the JVP's right-hand side is −B θ̇ = −diag(w) G θ̇.
        let theta_dot = vec![1.0; p];
        let rhs = (DMatrix::from_diagonal(&DVector::from_column_slice(w.value().as_slice())) * &r.g * col(&theta_dot)).norm();
        let seeds = ad_core::Seeds::new().mat(&tv, col(&theta_dot));
        let err = match tape.forward(&seeds) {
            Ok(_) => return Err(TestCaseError::fail("a tangent was returned")),
            Err(e) => e,
        };
        check_source(err, "jvp", rhs)?;
        // Both failures are in the node's reports, as failures with the solve's numbers.
        let reports = node.reports();
        prop_assert_eq!(reports.len(), 2);
        prop_assert_eq!(node.failures().len(), 2);
        for (report, direction, rhs_norm) in [(&reports[0], Direction::Reverse, norm(&x_bar)), (&reports[1], Direction::Forward, rhs)] {
            prop_assert!(!report.succeeded());
            prop_assert!(report.failure.as_deref().unwrap().contains("did not converge"), "{:?}", report.failure);
            prop_assert_eq!(report.direction, direction);
            prop_assert_eq!(report.backward, Backward::Exact);
            let linear = report.linear.as_ref().expect("the failed solve's report");
            prop_assert_eq!((linear.iterations, report.steps), (1, 1));
            prop_assert!(!linear.converged && linear.residual_norm > linear.tolerance);
            prop_assert!((report.relative_residual - linear.residual_norm / rhs_norm).abs() <= 1e-12 * report.relative_residual);
            prop_assert!(report.relative_residual > 1e-10, "above the rtol asked for");
        }
    }
}

/// A saddle inside a tape: the gradient call fails — with the default options (the small
/// Hessian assembled and factored) as `NotPositiveDefinite` with the pivot, matrix-free
/// (CG) as `NegativeCurvature` with the curvature — never a gradient of a "minimum" that
/// is not one.
#[test]
fn saddle_inside_a_tape_is_an_error() {
    let s = Saddle::random(4, 2, 7, 1);
    let theta = [0.5, 0.6];
    for dense in [true, false] {
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let x_star = s.solution(&theta);
        let solver = |_: &[DMatrix<f64>]| x_star.clone();
        let opts = IftOptions::default().dense_up_to(if dense { 256 } else { 0 });
        let (x, _) = implicit_node(Argmin(s.clone()), &[tv], solver, opts).unwrap();
        let err = tape.gradient(x.get(1, 0)).expect_err("an error");
        let AdError::CustomRule { source, .. } = err else {
            panic!("expected CustomRule, got {err:?}")
        };
        match source.downcast_ref::<ImplicitError>() {
            Some(ImplicitError::Linear(SolveError::NegativeCurvature { curvature, .. }))
                if !dense =>
            {
                assert!((curvature - s.d[1]).abs() <= 1e-12 * s.d[1].abs())
            }
            // The first negative diagonal entry d_1 of the (diagonal) Hessian is pivot 1.
            Some(ImplicitError::Linear(SolveError::NotPositiveDefinite {
                pivot,
                value,
                size,
                ..
            })) if dense => {
                assert_eq!((*pivot, *size), (1, 4));
                assert!(
                    (value - s.d[1]).abs() <= 1e-12 * s.d[1].abs(),
                    "{value} vs {}",
                    s.d[1]
                );
            }
            other => panic!("dense {dense}: unexpected {other:?}"),
        }
    }
}

/// The error a forward solver reports, with its own numbers.
#[derive(Debug)]
struct Diverged {
    iterations: usize,
    residual: f64,
}

impl std::fmt::Display for Diverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "diverged after {} iterations (residual {:e})",
            self.iterations, self.residual
        )
    }
}

impl Error for Diverged {}

/// A forward solver that fails is `ForwardSolver` carrying its error unchanged (a message,
/// or a typed error that downcasts back with its numbers); nothing is recorded.
#[test]
fn forward_solver_failure_is_forward_solver_error() {
    let r = Ridge::random(4, 2, 3);
    let tape = Tape::new();
    let tv = tape.vector_var(&r.theta());
    let ops = tape.op_len();
    let failing =
        |_: &[DMatrix<f64>]| Err::<Vec<f64>, _>("line search failed at iteration 12".to_string());
    match error_of(implicit_node(
        Argmin(r.clone()),
        &[tv],
        failing,
        IftOptions::default(),
    )) {
        ImplicitError::ForwardSolver(e) => {
            assert_eq!(e.to_string(), "line search failed at iteration 12")
        }
        other => panic!("expected ForwardSolver, got {other:?}"),
    }
    let ts = tape.vars(&r.theta());
    let ops_scalar = tape.op_len();
    let typed = |_: &[f64]| {
        Err::<Vec<f64>, _>(Diverged {
            iterations: 40,
            residual: 3.5e2,
        })
    };
    let err = error_of(implicit_scalar_node(
        Argmin(r.clone()),
        &ts,
        typed,
        IftOptions::default(),
    ));
    let ImplicitError::ForwardSolver(source) = &err else {
        panic!("expected ForwardSolver, got {err:?}")
    };
    let d = source
        .downcast_ref::<Diverged>()
        .expect("the solver's own error type");
    assert_eq!((d.iterations, d.residual), (40, 3.5e2));
    assert!(
        err.to_string()
            .contains("forward solver failed: diverged after 40 iterations")
    );
    assert_eq!(tape.op_len(), ops_scalar);
    assert!(ops_scalar == ops, "the failed matrix node recorded nothing");
}

/// A factorization given with `with_factor` that does not factor ∂F/∂x (here: of −A) is
/// caught by the true-residual check: `NotConverged` with the report, not a silent wrong
/// derivative.
#[test]
fn wrong_factor_is_not_converged() {
    let r = Ridge::random(6, 2, 11);
    let theta = r.theta();
    let w = r.solve(&theta);
    let wrong = DenseLu::factor(&(-r.a(&theta)), 0.0).unwrap();
    let imp = Implicit::argmin_vec(&r, &w, &theta, IftOptions::default())
        .unwrap()
        .with_factor(Factor::Lu(wrong));
    for err in [
        error_of(imp.vjp_flat(&[1.0; 6])),
        error_of(imp.jvp_flat(&[1.0, -1.0])),
    ] {
        match err {
            ImplicitError::Linear(SolveError::NotConverged { report, .. }) => {
                assert!(
                    !report.converged && report.residual_norm > report.tolerance,
                    "{report}"
                );
                assert_eq!(report.method, Method::Lu);
            }
            other => panic!("expected NotConverged, got {other:?}"),
        }
    }
}

/// A dense solve that fails after it materialized a matrix-free Jacobian (n products, then
/// LU) reports those n products too: here refinement cannot reach rtol = 1e-300, and the
/// `NotConverged`/`Stalled` report counts the 6 products that built the 6 x 6 matrix
/// (refinement checks its residuals against the built matrix, with no further products).
#[test]
fn failed_dense_solve_reports_the_products_that_materialized_the_matrix() {
    let r = Ridge::random(6, 2, 11);
    let theta = r.theta();
    let w = r.solve(&theta);
    let unreachable = SolveOptions::default().rtol(1e-300).atol(0.0);
    let opts = IftOptions::default()
        .method(Method::Lu)
        .dense_up_to(0)
        .linear(unreachable);
    let imp = Implicit::argmin_vec(&r, &w, &theta, opts).unwrap();
    match error_of(imp.vjp_flat(&[1.0; 6])) {
        ImplicitError::Linear(
            SolveError::NotConverged { report, .. } | SolveError::Stalled { report, .. },
        ) => {
            assert_eq!(report.method, Method::Lu);
            assert!(!report.converged);
            assert_eq!(report.matvecs, 6, "{report}");
            assert!(report.iterations >= 1, "{report}");
        }
        other => panic!("expected NotConverged or Stalled, got {other:?}"),
    }
}

// =======================================================================================
// The unrolled baseline
// =======================================================================================

/// Unrolled gradient descent rejects non-finite θ or x₀ (`NonFinite`), an unusable step
/// size (`InvalidOption`), a cotangent of the wrong length (`Dimension`), and reports a
/// diverging run (a step size beyond 2/L) as `NonFinite` instead of returning inf/NaN.
#[test]
fn unrolled_gradient_descent_rejects_bad_input() {
    let r = Ridge::random(5, 2, 5);
    let theta = r.theta();
    let x0 = vec![0.0; 5];
    let err = unrolled_gradient_descent(&r, &x0, &[0.5, f64::NAN], 0.1, 10).unwrap_err();
    assert!(
        matches!(err, ImplicitError::NonFinite { index: 1, .. }),
        "{err:?}"
    );
    let err = unrolled_gradient_descent(&r, &[0.0, 0.0, f64::INFINITY, 0.0, 0.0], &theta, 0.1, 10)
        .unwrap_err();
    assert!(
        matches!(err, ImplicitError::NonFinite { index: 2, value, .. } if value == f64::INFINITY),
        "{err:?}"
    );
    for eta in [0.0, -0.1, f64::NAN] {
        let err = unrolled_gradient_descent(&r, &x0, &theta, eta, 10).unwrap_err();
        assert!(
            matches!(
                err,
                ImplicitError::InvalidOption {
                    name: "step_size",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let big_l = r.a(&theta).symmetric_eigenvalues().max();
    let err = unrolled_gradient_descent(&r, &x0, &theta, 10.0 / big_l, 5000).unwrap_err();
    assert!(matches!(err, ImplicitError::NonFinite { .. }), "{err:?}");
    let gd = unrolled_gradient_descent(&r, &x0, &theta, 1.0 / big_l, 10).unwrap();
    let err = gd.vjp(&r, &theta, 1.0 / big_l, &[1.0; 4]).unwrap_err();
    assert!(
        matches!(
            err,
            ImplicitError::Dimension {
                expected: 5,
                got: 4,
                ..
            }
        ),
        "{err:?}"
    );
    let err = gd
        .vjp(&r, &theta, 1.0 / big_l, &[1.0, f64::NAN, 0.0, 0.0, 0.0])
        .unwrap_err();
    assert!(
        matches!(err, ImplicitError::NonFinite { index: 1, .. }),
        "{err:?}"
    );
}
