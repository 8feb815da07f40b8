//! Implicit differentiation of argmin's solutions.

use super::*;
use ad_core::{MatFn, MatOps, Tape};
use implicit::solvers::argmin_rs::{
    ArgminMethod, LbfgsOptions, NewtonCgOptions, minimize, minimize_newton_cg,
};
use implicit::solvers::forward_solver;
use implicit::{Argmin, IftOptions, Implicit, implicit_node};
use nalgebra::DMatrix;

/// The accuracy of the re-solves behind the finite differences: Newton-CG reaches 1e-10 on
/// every one of 40 seeded problems of this kind, in at most 4 iterations.
const FD_EPS: f64 = 1e-10;
/// The finite-difference step in θ.
const FD_H: f64 = 1e-3;

/// Validation loss g(x*(θ)), re-solving the inner problem at θ with Newton-CG to `FD_EPS`.
fn val_after_solve(obj: &Logistic, val: &Logistic, theta: &[f64]) -> f64 {
    let opts = NewtonCgOptions::default().grad_tol(FD_EPS);
    let sol = minimize_newton_cg(obj, theta, &[0.0; D], &opts).unwrap();
    val.data_loss(&DMatrix::from_column_slice(D, 1, &sol.x))
}

/// Central differences of θ ↦ g(x*(θ)) with step h.
fn fd_hypergradient(obj: &Logistic, val: &Logistic, theta: &[f64], h: f64) -> Vec<f64> {
    (0..theta.len())
        .map(|j| {
            let (mut tp, mut tm) = (theta.to_vec(), theta.to_vec());
            tp[j] += h;
            tm[j] -= h;
            (val_after_solve(obj, val, &tp) - val_after_solve(obj, val, &tm)) / (2.0 * h)
        })
        .collect()
}

/// ∇g at x (the validation loss's gradient).
fn val_grad(val: &Logistic, x: &[f64]) -> Vec<f64> {
    struct G<'a>(&'a Logistic);
    impl MatFn for G<'_> {
        fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
            self.0.data_loss(&p[0])
        }
    }
    let (_, g) =
        ad_core::value_and_grad_mat(&G(val), &[DMatrix::from_column_slice(D, 1, x)]).unwrap();
    g[0].as_slice().to_vec()
}

/// The implicit hypergradient ∇θ g(x*(θ)) evaluated at the point `x`.
fn implicit_hypergradient(obj: &Logistic, val: &Logistic, x: &[f64], theta: &[f64]) -> Vec<f64> {
    let imp = Implicit::argmin_vec(obj, x, theta, IftOptions::default()).unwrap();
    let (hyper, report) = imp.vjp_flat(&val_grad(val, x)).unwrap();
    assert!(report.linear.as_ref().unwrap().converged);
    hyper
}

/// Finite differences with step h and 2h, and the error budget of comparing them with an
/// implicit hypergradient computed at a solution accurate to `eps_fwd`.
struct FdReference {
    fd: Vec<f64>,
    fd_2h: Vec<f64>,
    g_norm: f64,
    mu: f64,
}

impl FdReference {
    fn new(obj: &Logistic, val: &Logistic, theta: &[f64]) -> Self {
        let x = minimize_newton_cg(
            obj,
            theta,
            &[0.0; D],
            &NewtonCgOptions::default().grad_tol(FD_EPS),
        )
        .unwrap()
        .x;
        FdReference {
            fd: fd_hypergradient(obj, val, theta, FD_H),
            fd_2h: fd_hypergradient(obj, val, theta, 2.0 * FD_H),
            g_norm: norm(&val_grad(val, &x)),
            mu: mu(theta),
        }
    }

    /// Tolerance for component j, from the numbers that bound each error:
    /// - each re-solve stops at ‖∇ₓL‖ <= ε = FD_EPS, so ‖x̂ − x*‖ <= ε/μ (μ-strong convexity)
    ///   and g moves by at most ‖∇g‖·ε/μ to first order; the central difference divides the
    ///   two errors by 2h: at most G ε/(μ h), with G = 2‖∇g(x*)‖ as a margin for the nearby
    ///   points;
    /// - the truncation error c h² of the central difference, estimated by Richardson from
    ///   the difference with step 2h: |FD(2h) − FD(h)| / 3;
    /// - `implicit_side`: the implicit hypergradient is evaluated at the argmin solution, not
    ///   at x*; measured by the caller as its change over displacements of size ε_fwd/μ;
    /// - the backward linear solve (rtol 1e-10): covered by an absolute 1e-10.
    ///
    /// A factor 2 on the sum covers the higher-order terms.
    fn tolerance(&self, j: usize, implicit_side: f64) -> f64 {
        let inner = 2.0 * self.g_norm * FD_EPS / (self.mu * FD_H);
        let truncation = (self.fd_2h[j] - self.fd[j]).abs() / 3.0;
        2.0 * (inner + truncation + implicit_side) + 1e-10
    }
}

/// How much the implicit hypergradient can change when the solution it is evaluated at
/// moves by `radius` (the distance to x* certified by the solver's gradient tolerance):
/// the largest change over the ± coordinate displacements of that size.
fn implicit_sensitivity(
    obj: &Logistic,
    val: &Logistic,
    x: &[f64],
    theta: &[f64],
    radius: f64,
) -> f64 {
    let base = implicit_hypergradient(obj, val, x, theta);
    let mut worst: f64 = 0.0;
    for i in 0..x.len() {
        for sign in [-1.0, 1.0] {
            let mut xp = x.to_vec();
            xp[i] += sign * radius;
            let moved = implicit_hypergradient(obj, val, &xp, theta);
            worst = worst.max(dist(&moved, &base));
        }
    }
    worst
}

#[test]
fn hypergradient_of_argmin_solution_matches_finite_differences_of_re_solving() {
    let obj = Logistic::new(40, D, 7);
    let val = Logistic::new(30, D, 8);
    let theta = theta0();
    let reference = FdReference::new(&obj, &val, &theta);
    for (method, eps_fwd) in [
        (
            ArgminMethod::Lbfgs(LbfgsOptions::default().grad_tol(1e-9)),
            1e-9,
        ),
        (
            ArgminMethod::NewtonCg(NewtonCgOptions::default().grad_tol(1e-10)),
            1e-10,
        ),
    ] {
        let sol = minimize(&obj, &theta, &[0.0; D], &method).unwrap();
        assert!(sol.grad_norm <= eps_fwd);
        let hyper = implicit_hypergradient(&obj, &val, &sol.x, &theta);
        let side = implicit_sensitivity(&obj, &val, &sol.x, &theta, eps_fwd / reference.mu);
        eprintln!(
            "{}: |hyper| = {:.3e}, max |implicit - FD| = {:.3e}, tolerances {:.3e}..{:.3e} \
             (implicit side {side:.1e})",
            if matches!(method, ArgminMethod::Lbfgs(_)) {
                "L-BFGS"
            } else {
                "Newton-CG"
            },
            norm(&hyper),
            (0..D)
                .map(|j| (hyper[j] - reference.fd[j]).abs())
                .fold(0.0, f64::max),
            (0..D)
                .map(|j| reference.tolerance(j, side))
                .fold(f64::INFINITY, f64::min),
            (0..D)
                .map(|j| reference.tolerance(j, side))
                .fold(0.0, f64::max),
        );
        for j in 0..D {
            let tol = reference.tolerance(j, side);
            let err = (hyper[j] - reference.fd[j]).abs();
            assert!(
                err <= tol,
                "{method:?}, θ_{j}: implicit {} vs FD {}: |diff| = {err:e} > tol {tol:e}",
                hyper[j],
                reference.fd[j]
            );
            // The tolerance means something: well below the hypergradient itself.
            assert!(
                tol < 1e-3 * norm(&hyper),
                "tol {tol:e} vs |hyper| {:e}",
                norm(&hyper)
            );
        }
    }
}

#[test]
fn implicit_node_with_argmin_forward_solver_backpropagates_through_the_tape() {
    let obj = Logistic::new(40, D, 7);
    let val = Logistic::new(30, D, 8);
    let theta = theta0();
    let reference = FdReference::new(&obj, &val, &theta);
    for (method, eps_fwd) in [
        (
            ArgminMethod::Lbfgs(LbfgsOptions::default().grad_tol(1e-9)),
            1e-9,
        ),
        (
            ArgminMethod::NewtonCg(NewtonCgOptions::default().grad_tol(1e-10)),
            1e-10,
        ),
    ] {
        let tape = Tape::new();
        let t = tape.vector_var(&theta);
        let solve = forward_solver(&obj, vec![0.0; D], method.clone());
        let (x, node) =
            implicit_node(Argmin(obj.clone()), &[t], solve, IftOptions::default()).unwrap();
        assert!(node.forward_residual <= eps_fwd);
        // A downstream loss on the same tape: the validation loss plus a direct term in θ.
        let loss = val.data_loss(&x) + t.sq_norm() * 0.01;
        let g = tape.gradient(loss).unwrap().wrt_mat(&t);
        let report = node
            .last_report()
            .expect("the backward pass ran a linear solve");
        assert!(report.linear.as_ref().unwrap().converged);
        let x_star = x.value().as_slice().to_vec();
        // Same as the direct implicit VJP at the same solution ...
        let direct = implicit_hypergradient(&obj, &val, &x_star, &theta);
        // ... and as finite differences of re-solving.
        let side = implicit_sensitivity(&obj, &val, &x_star, &theta, eps_fwd / reference.mu);
        for j in 0..D {
            let want_direct = direct[j] + 0.02 * theta[j];
            assert!((g[j] - want_direct).abs() <= 1e-12 * (1.0 + want_direct.abs()));
            let want = reference.fd[j] + 0.02 * theta[j];
            let tol = reference.tolerance(j, side);
            assert!(
                (g[j] - want).abs() <= tol,
                "{method:?}, θ_{j}: tape {} vs FD {want} (tol {tol:e})",
                g[j]
            );
        }
    }
}
