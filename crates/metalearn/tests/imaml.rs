//! iMAML's meta-gradient against the dense formula and against re-solving the proximal
//! inner problem at a perturbed theta, on linear-regression tasks (quadratic support loss:
//! the proximal problem is strongly convex).

mod common;

use ad_core::nn::{Activation, Mlp, MseLoss};
use common::rel_dist;
use metalearn::{Algorithm, ImamlOptions, LinearRegression, Stop, Task, TaskDistribution};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn linear(dim: usize) -> Mlp {
    Mlp::new(&[dim, 1], Activation::Identity, Activation::Identity)
}

fn task(dim: usize, seed: u64) -> Task {
    LinearRegression::new(dim)
        .noise(0.1)
        .sample(&mut StdRng::seed_from_u64(seed), 2 * dim, 6)
        .unwrap()
}

/// Tight budgets: inner gradient norm 1e-13 (GD with rate 0.02 contracts by at least
/// 1 - 0.02 lambda per step on these problems), CG to 1e-13 relative.
fn tight(lambda: f64) -> ImamlOptions {
    ImamlOptions::default()
        .lambda(lambda)
        .inner_lr(0.02)
        .inner(Stop::Tolerance {
            tol: 1e-13,
            max_iters: 100_000,
        })
        .cg(Stop::Tolerance {
            tol: 1e-13,
            max_iters: 100,
        })
}

/// The support loss's Hessian as a dense matrix, column by column from HVPs.
fn dense_hessian(mlp: &Mlp, task: &Task, at: &[f64]) -> DMatrix<f64> {
    let sup = MseLoss::new(mlp, &task.support_x, &task.support_y).unwrap();
    let n = at.len();
    DMatrix::from_fn(n, n, |i, j| {
        let mut e = vec![0.0; n];
        e[j] = 1.0;
        sup.hvp(at, &e).unwrap()[i]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The meta-gradient equals `(I + H/lambda)^{-1} grad L_query(phi*)` computed with a
    /// dense LU. Both solve the same system to ~1e-13; H has condition number < 1e3, so
    /// 1e-10 relative.
    #[test]
    fn imaml_matches_the_dense_formula(seed in 0u64..1000, dim in 1usize..5, lambda in 0.5f64..4.0) {
        let mlp = linear(dim);
        let t = task(dim, seed);
        let theta: Vec<f64> = (0..=dim).map(|i| ((i + 1) as f64 * 0.9 + seed as f64).sin()).collect();
        let tg = Algorithm::Imaml(tight(lambda)).task_gradient(&mlp, &theta, &t, 0).unwrap();
        // phi* in closed form: (H + lambda I) phi = lambda theta - c, with the gradient
        // H phi + c of the quadratic support loss.
        let sup = MseLoss::new(&mlp, &t.support_x, &t.support_y).unwrap();
        let h = dense_hessian(&mlp, &t, &theta);
        let zero = vec![0.0; theta.len()];
        let (_, c) = sup.value_and_grad(&zero).unwrap();
        let n = theta.len();
        let a = &h + DMatrix::identity(n, n) * lambda;
        let rhs = DVector::from_iterator(n, theta.iter().zip(&c).map(|(t, c)| lambda * t - c));
        let phi = a.clone().lu().solve(&rhs).unwrap();
        let qry = MseLoss::new(&mlp, &t.query_x, &t.query_y).unwrap();
        let (_, gq) = qry.value_and_grad(phi.as_slice()).unwrap();
        let m = DMatrix::identity(n, n) + &h / lambda;
        let want = m.lu().solve(&DVector::from_vec(gq)).unwrap();
        prop_assert!(rel_dist(&tg.grad, want.as_slice(), 1e-10) < 1e-10,
            "{:?} vs {:?}", tg.grad, want.as_slice());
        prop_assert!(tg.stats.inner_residual <= 1e-13 && tg.stats.cg_relative_residual <= 1e-13);
    }

    /// The meta-gradient equals central differences of `L_query(phi*(theta))` with the
    /// proximal problem re-solved (to 1e-13) at `theta +- h d`. The meta-loss is quadratic
    /// in theta here, so central differences are exact up to rounding: h = 1e-4 gives
    /// errors ~ 1e-16 / 1e-4 (rounding) + 1e-13 / 1e-4 (inner tolerance) ~ 1e-9.
    #[test]
    fn imaml_matches_resolving_at_a_perturbed_theta(seed in 0u64..1000, dim in 1usize..5, lambda in 0.5f64..4.0) {
        let mlp = linear(dim);
        let t = task(dim, seed + 500);
        let theta: Vec<f64> = (0..=dim).map(|i| ((i + 2) as f64 * 1.3 - seed as f64).cos()).collect();
        let alg = Algorithm::Imaml(tight(lambda));
        let tg = alg.task_gradient(&mlp, &theta, &t, 0).unwrap();
        let dir: Vec<f64> = (0..theta.len()).map(|i| ((i as f64) * 2.1 + 0.3).sin()).collect();
        let h = 1e-4;
        let at = |s: f64| {
            let th: Vec<f64> = theta.iter().zip(&dir).map(|(a, d)| a + s * d).collect();
            alg.task_gradient(&mlp, &th, &t, 0).unwrap().loss
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        let ad: f64 = tg.grad.iter().zip(&dir).map(|(g, d)| g * d).sum();
        let scale = tg.grad.iter().map(|g| g * g).sum::<f64>().sqrt()
            * dir.iter().map(|d| d * d).sum::<f64>().sqrt();
        prop_assert!((fd - ad).abs() <= 1e-7 * scale.max(1e-3), "fd {fd} vs ad {ad}");
    }
}

/// The W5 budgets on a network (indefinite `I + H/lambda`): the fixed budget returns the
/// iterate and reports its residuals; asking for a tolerance instead is a typed error.
#[test]
fn fixed_budget_reports_residuals() {
    let mlp = metalearn::w5::mlp();
    let theta = metalearn::w5::theta();
    let tasks = metalearn::w5::tasks();
    let tg = Algorithm::Imaml(ImamlOptions::w5())
        .task_gradient(&mlp, &theta, &tasks[5], 5)
        .unwrap();
    assert_eq!((tg.stats.inner_steps, tg.stats.cg_iterations), (100, 5));
    assert!(tg.stats.inner_residual > 1e-3 && tg.stats.cg_relative_residual > 1e-3);
}

/// On a small tanh network (non-quadratic support loss) with lambda large enough for a
/// strongly convex proximal problem, the meta-gradient equals `(I + H(phi*)/lambda)^{-1}
/// grad L_query(phi*)` with H assembled densely from HVPs at the returned phi* and solved
/// by LU; and phi* satisfies its optimality condition (checked through the reported
/// residual). CG to 1e-13 on a well-conditioned system: 1e-10 relative.
#[test]
fn imaml_matches_the_dense_formula_on_a_network() {
    let (mlp, theta) = common::small_mlp(5, 21);
    let t = common::sinusoid_task(22, 8);
    let lambda = 20.0;
    let opts = tight(lambda).inner_lr(0.01);
    let tg = Algorithm::Imaml(opts)
        .task_gradient(&mlp, &theta, &t, 0)
        .unwrap();
    assert!(tg.stats.inner_residual <= 1e-13);
    // phi* again, by the same iteration (the library does not return it)
    let sup = MseLoss::new(&mlp, &t.support_x, &t.support_y).unwrap();
    let mut phi = theta.clone();
    for _ in 0..100_000 {
        let (_, g) = sup.value_and_grad(&phi).unwrap();
        let r: Vec<f64> = g
            .iter()
            .zip(&phi)
            .zip(&theta)
            .map(|((g, p), th)| g + lambda * (p - th))
            .collect();
        if r.iter().map(|v| v * v).sum::<f64>().sqrt() <= 1e-13 {
            break;
        }
        phi.iter_mut().zip(&r).for_each(|(p, r)| *p -= 0.01 * r);
    }
    let n = phi.len();
    let h = dense_hessian(&mlp, &t, &phi);
    let qry = MseLoss::new(&mlp, &t.query_x, &t.query_y).unwrap();
    let (_, gq) = qry.value_and_grad(&phi).unwrap();
    let m = DMatrix::identity(n, n) + &h / lambda;
    let want = m.lu().solve(&DVector::from_vec(gq)).unwrap();
    assert!(rel_dist(&tg.grad, want.as_slice(), 1e-10) < 1e-10);
}

/// Backtracking makes the inner solve safe against a step size far too large for the
/// curvature: plain gradient descent with rate 5 diverges (a typed error), with
/// backtracking it converges to the same phi* (strongly convex here, so unique) and the
/// same meta-gradient as a stable rate (both to 1e-13, so 1e-9 relative).
#[test]
fn backtracking_rescues_a_too_large_inner_step() {
    let (mlp, theta) = common::small_mlp(5, 31);
    let t = common::sinusoid_task(32, 8);
    let safe = tight(20.0).inner_lr(0.01);
    let want = Algorithm::Imaml(safe)
        .task_gradient(&mlp, &theta, &t, 0)
        .unwrap();
    let big = safe.inner_lr(5.0);
    let got = Algorithm::Imaml(big)
        .task_gradient(&mlp, &theta, &t, 0)
        .unwrap();
    assert!(got.stats.inner_residual <= 1e-13);
    assert!(rel_dist(&got.grad, &want.grad, 1e-10) < 1e-9);
    assert!(matches!(
        Algorithm::Imaml(big.backtrack(false)).task_gradient(&mlp, &theta, &t, 2),
        Err(metalearn::MetaError::Diverged { task: 2, .. })
    ));
}
