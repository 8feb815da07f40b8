//! The choice of backward pass (`IftOptions::backward`), in reverse and forward mode.
//!
//! Each pass views the condition as the map f(x) = x + σF(x) (σ = +1 for fixed points,
//! where F = f − z; σ = −1 for argmins, f a gradient step), so J_f = I + σA and
//! ∂f/∂θ = σB with A = ∂F/∂x, B = ∂F/∂θ materialized from the library's own products:
//!
//! 1. **Phantom = the damped iteration.** k steps g ← (1−τ)g + τ(J_fᵀg + x̄) from g = x̄,
//!    θ̄ = (∂f/∂θ)ᵀg, recomputed densely here, agree with the library to rounding; so do
//!    the forward-mode steps.
//! 2. **At the rate of the contraction.** Its distance to the exact derivative (dense LU
//!    here) is at most ‖∂f/∂θ‖₂ ρᵏ ‖x̄ − g*‖ with ρ = ‖(1−τ)I + τJ_f‖₂, for k from 1 to
//!    80; so many steps give the exact gradient.
//! 3. **Jacobian-free** is θ̄ = (∂f/∂θ)ᵀx̄ and ẋ = ∂f/∂θ θ̇.
//! 4. **Reports are filled**: the pass, its steps, its products (k + 1 reverse, k + 2
//!    forward), and the relative residual ‖Aᵀw − x̄‖/‖x̄‖ (‖Aẋ + Bθ̇‖/‖Bθ̇‖), which equals
//!    the dense one and bounds the error: ‖θ̄ − θ̄*‖ ≤ ‖B‖‖A⁻¹‖ · residual · ‖x̄‖.
//! 5. A solver node with the phantom pass backpropagates exactly what `Implicit` gives and
//!    reports the pass.

mod ift_common;

use ad_core::{MatOps, Tape};
use implicit::{
    Backward, Direction, FixedPoint, IftOptions, IftReport, Implicit, Linearization, implicit_node,
};
use nalgebra::DMatrix;
use proptest::prelude::*;

use ift_common::blocks::{BatchDeq, MatRidge};
use ift_common::*;

/// The spectral norm ‖M‖₂ (from the symmetric eigenvalues of MᵀM, not an SVD).
fn spectral(m: &DMatrix<f64>) -> f64 {
    (m.transpose() * m)
        .symmetric_eigenvalues()
        .max()
        .max(0.0)
        .sqrt()
}

/// The dense quantities of one instance.
struct Dense {
    sigma: f64,
    a: DMatrix<f64>,
    b: DMatrix<f64>,
}

impl Dense {
    fn of<L: Linearization>(imp: &Implicit<L>) -> Dense {
        let (a, b) = imp.blocks();
        Dense {
            sigma: imp.linearization().map_sign(),
            a,
            b,
        }
    }
    fn jf(&self) -> DMatrix<f64> {
        DMatrix::identity(self.a.nrows(), self.a.nrows()) + &self.a * self.sigma
    }
    fn bf(&self) -> DMatrix<f64> {
        &self.b * self.sigma
    }
    /// ρ = ‖(1−τ)I + τJ_f‖₂.
    fn rate(&self, tau: f64) -> f64 {
        let n = self.a.nrows();
        spectral(&(DMatrix::identity(n, n) * (1.0 - tau) + self.jf() * tau))
    }
}

/// Check one instance in both directions for k steps of damping τ (k = 0: Jacobian-free);
/// returns the worst measured ratios.
fn check_pass<L: Linearization>(
    imp: &Implicit<L>,
    d: &Dense,
    (u, v): (&[f64], &[f64]),
    steps: usize,
    tau: f64,
) -> Result<Vec<(&'static str, f64)>, TestCaseError> {
    let n = d.a.nrows();
    let (jf, bf) = (d.jf(), d.bf());
    let (xb, td) = (col(u), col(v));
    let id = DMatrix::<f64>::identity(n, n);
    // Exact references by dense LU.
    let g_star = (&id - jf.transpose())
        .lu()
        .solve(&xb)
        .expect("I − J_fᵀ invertible");
    let bar_star = bf.transpose() * &g_star;
    let c = &bf * &td;
    let dot_star = (&id - &jf).lu().solve(&c).expect("I − J_f invertible");
    // The damped iterations, densely.
    let (mut g, mut y) = (xb.clone(), c.clone());
    for _ in 0..steps {
        g = &g * (1.0 - tau) + (jf.transpose() * &g + &xb) * tau;
        y = &y * (1.0 - tau) + (&jf * &y + &c) * tau;
    }
    let bar_dense = bf.transpose() * &g;
    let (bar, rv) = imp.vjp_flat(u).or_fail()?;
    let (dot_lib, rj) = imp.jvp_flat(v).or_fail()?;

    // 1 and 3: the library is the iteration, to rounding (k ≤ 80 steps of a contraction:
    // a few hundred ulps of the sizes involved).
    let scale_bar = spectral(&bf) * g.norm().max(xb.norm());
    let e_bar = (col(&bar) - &bar_dense).norm() / scale_bar.max(1e-300);
    prop_assert!(
        e_bar <= 1e-12,
        "phantom VJP vs dense iteration: {:e}",
        e_bar
    );
    let e_dot = (col(&dot_lib) - &y).norm() / y.norm().max(c.norm()).max(1e-300);
    prop_assert!(
        e_dot <= 1e-12,
        "phantom JVP vs dense iteration: {:e}",
        e_dot
    );

    // 2: the rate of the contraction (plus the rounding of the reference itself).
    let rho = d.rate(tau);
    let bound_bar =
        spectral(&bf) * rho.powi(steps as i32) * (&xb - &g_star).norm() + 1e-12 * scale_bar;
    let dist_bar = (col(&bar) - &bar_star).norm();
    prop_assert!(
        dist_bar <= bound_bar,
        "k={}: {:e} > {:e} (rho {})",
        steps,
        dist_bar,
        bound_bar,
        rho
    );
    let bound_dot =
        rho.powi(steps as i32) * (&c - &dot_star).norm() + 1e-12 * y.norm().max(c.norm());
    let dist_dot = (col(&dot_lib) - &dot_star).norm();
    prop_assert!(
        dist_dot <= bound_dot,
        "k={}: {:e} > {:e}",
        steps,
        dist_dot,
        bound_dot
    );

    // 4: reports.
    let expect_backward = if steps == 0 {
        Backward::JacobianFree
    } else {
        Backward::Phantom {
            steps,
            damping: tau,
        }
    };
    for (r, dir, products) in [
        (&rv, Direction::Reverse, steps + 1),
        (&rj, Direction::Forward, steps + 2),
    ] {
        prop_assert_eq!(r.backward, expect_backward);
        prop_assert_eq!(r.direction, dir);
        prop_assert_eq!((r.steps, r.products), (steps, products));
        prop_assert!(r.linear.is_none() && r.succeeded());
    }
    let res_bar = (d.a.transpose() * &g * d.sigma + &xb).norm() / xb.norm();
    let res_dot = (&d.a * &y * d.sigma + &c).norm() / c.norm().max(1e-300);
    prop_assert!(
        (rv.relative_residual - res_bar).abs() <= 1e-12 * (1.0 + res_bar),
        "{} vs {}",
        rv.relative_residual,
        res_bar
    );
    prop_assert!(
        (rj.relative_residual - res_dot).abs() <= 1e-12 * (1.0 + res_dot),
        "{} vs {}",
        rj.relative_residual,
        res_dot
    );
    // The residual bounds the error: θ̄ − θ̄* = σBᵀ(g − g*) = σBᵀ(−σA)⁻ᵀ r.
    let a_inv = d.a.clone().lu().try_inverse().expect("A invertible");
    let est = spectral(&d.b) * spectral(&a_inv) * rv.relative_residual * xb.norm() * (1.0 + 1e-9)
        + 1e-12 * scale_bar;
    prop_assert!(
        dist_bar <= est,
        "error {:e} above the residual's bound {:e}",
        dist_bar,
        est
    );
    Ok(vec![
        ("vjp vs dense iteration", e_bar),
        ("distance / rate bound", dist_bar / bound_bar),
    ])
}

/// Properties 1–4 on a batched equilibrium layer (3 blocks, ‖W‖_F in [0.2, 0.5]) and on a
/// matrix ridge argmin (σ = −1, τ = min(1, 1/λ_max(H)), a contraction too).
#[test]
fn phantom_and_jacobian_free_passes_are_the_damped_iteration_and_converge() {
    let strategy = (
        0usize..2,
        1usize..=5,
        1usize..=3,
        any::<u64>(),
        0.2f64..0.5,
        0.5f64..=1.0,
        prop::sample::select(vec![0usize, 1, 5, 20, 80]),
    );
    check(
        "phantom / JFB",
        96,
        strategy,
        |(kind, rows, k, seed, w_norm, tau, steps)| {
            let mut rng = SplitMix::new(seed ^ 0xBAC);
            let deq = BatchDeq::random(rows, 2, k, 3, seed);
            let ridge = MatRidge::random(rows, k, 2, seed);
            let (theta, x) = if kind == 0 {
                let t = deq.theta(seed, w_norm);
                let x = deq.solve(&t);
                (t, x)
            } else {
                let t = ridge.theta(seed);
                let x = ridge.solve(&t);
                (t, x)
            };
            let exact = IftOptions::default();
            let (d, tau) = if kind == 0 {
                (
                    Dense::of(&Implicit::fixed_point(&deq, &x, &theta, exact).or_fail()?),
                    tau,
                )
            } else {
                let d = Dense::of(&Implicit::argmin(&ridge, &x, &theta, exact).or_fail()?);
                let lmax = d.a.clone().symmetric_eigenvalues().max();
                (d, (1.0 / lmax).min(1.0))
            };
            let backward = if steps == 0 {
                Backward::JacobianFree
            } else {
                Backward::Phantom {
                    steps,
                    damping: tau,
                }
            };
            let opts = IftOptions::default().backward(backward);
            let (n, p) = (d.b.nrows(), d.b.ncols());
            let (u, v) = (rng.vec(n, -1.0, 1.0), rng.vec(p, -1.0, 1.0));
            if kind == 0 {
                check_pass(
                    &Implicit::fixed_point(&deq, &x, &theta, opts).or_fail()?,
                    &d,
                    (&u, &v),
                    steps,
                    tau,
                )
            } else {
                check_pass(
                    &Implicit::argmin(&ridge, &x, &theta, opts).or_fail()?,
                    &d,
                    (&u, &v),
                    steps,
                    tau,
                )
            }
        },
    );
}

/// The exact pass reports its solve: the linear report, its iterations as steps, and a
/// relative residual within the tolerance asked for.
#[test]
fn exact_pass_reports_its_solve() {
    check(
        "exact reports",
        48,
        (1usize..=5, 1usize..=3, any::<u64>()),
        |(rows, k, seed)| {
            let deq = BatchDeq::random(rows, 2, k, 3, seed);
            let theta = deq.theta(seed, 0.5);
            let x = deq.solve(&theta);
            let imp = Implicit::fixed_point(&deq, &x, &theta, IftOptions::default()).or_fail()?;
            let (n, p) = imp.dims();
            let mut rng = SplitMix::new(seed);
            let (_, rv) = imp.vjp_flat(&rng.vec(n, -1.0, 1.0)).or_fail()?;
            let (_, rj) = imp.jvp_flat(&rng.vec(p, -1.0, 1.0)).or_fail()?;
            let check_report = |r: &IftReport, dir: Direction| -> Result<f64, TestCaseError> {
                let linear = r.linear.as_ref().expect("exact pass has a linear report");
                prop_assert_eq!((r.backward, r.direction), (Backward::Exact, dir));
                prop_assert_eq!(r.steps, linear.iterations);
                prop_assert!(linear.converged && r.products > linear.matvecs);
                // No ridge: the reported residual is the solve's, recomputed at its iterate.
                prop_assert!(
                    r.relative_residual * linear.rhs_norm <= linear.tolerance * (1.0 + 1e-12)
                );
                Ok(r.relative_residual)
            };
            Ok(vec![
                ("reverse residual", check_report(&rv, Direction::Reverse)?),
                ("forward residual", check_report(&rj, Direction::Forward)?),
            ])
        },
    );
}

/// Property 5: `implicit_node` with `Backward::Phantom` gives, through `Tape::gradient`,
/// the phantom VJP of `Implicit`, and its report names the pass.
#[test]
fn node_with_phantom_pass_backpropagates_the_phantom_gradient() {
    let deq = BatchDeq::random(4, 2, 3, 3, 11);
    let theta = deq.theta(11, 0.4);
    let weights = SplitMix::new(5).mat(4, 3, -1.0, 1.0);
    let pass = Backward::Phantom {
        steps: 7,
        damping: 0.9,
    };
    let opts = IftOptions::default().backward(pass);
    let tape = Tape::new();
    let vars: Vec<_> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
    let (z, node) = implicit_node(
        FixedPoint(deq.clone()),
        &vars,
        |t: &[DMatrix<f64>]| deq.solve(t),
        opts.clone(),
    )
    .unwrap();
    let loss = z.dot(&z.constant_like(weights.clone()));
    let grads = tape.gradient(loss).unwrap();
    let got: Vec<DMatrix<f64>> = vars.iter().map(|v| grads.wrt_mat(v)).collect();
    let z_star = z.value();
    drop(tape);
    let (expect, _) = Implicit::fixed_point(&deq, &z_star, &theta, opts)
        .unwrap()
        .vjp(&weights)
        .unwrap();
    assert_eq!(got, expect, "the same pass on the same recording");
    let report = node.last_report().unwrap();
    assert_eq!(
        (report.backward, report.steps, report.products),
        (pass, 7, 8)
    );
    assert!(report.relative_residual > 0.0 && report.relative_residual < 1.0);
}
