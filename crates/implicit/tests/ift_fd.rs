//! Implicit derivatives against finite differences of re-solving, the dot-product test
//! and the ridge hypergradient's closed form, for four problem families (column x, one
//! column θ). See `ift_blocks.rs` for matrix x and several blocks. Run with `--nocapture` to
//! see the worst agreement measured for each property; tolerances are derived at `FD_STEP`
//! (in `ift_common/harness.rs`) and in each test.

mod ift_common;

use ad_core::Tape;
use ift_common::*;
use implicit::linear::Method;
use implicit::{Argmin, IftOptions, Implicit, implicit_node};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// =======================================================================================
// 1. Implicit derivatives = finite differences of re-solving
// =======================================================================================

/// VJP, JVP and Jacobian against central differences of re-solving, relative to the size
/// of the map (see `FD_STEP`): ‖vjp(u) − J_fdᵀu‖ / (S ‖u‖), ‖jvp(v) − J_fd v‖ / (S ‖v‖),
/// ‖J − J_fd‖ / S with S = `fd_scale(‖J_fd‖, p)` (Frobenius norms, which also covers θ_k
/// that x* does not depend on).
fn fd_property(
    kind: usize,
    (n, p, seed): (usize, usize, u64),
) -> Result<Vec<(&'static str, f64)>, TestCaseError> {
    let fam = family(kind, n, p, seed);
    let theta = fam.theta();
    let x = fam.solve(&theta);
    let imp = fam.implicit(&x, &theta, IftOptions::default()).or_fail()?;
    let mut rng = SplitMix::new(seed ^ 0xF00D);
    let (u, v) = (rng.vec(n, -1.0, 1.0), rng.vec(p, -1.0, 1.0));
    let jac = imp.jacobian().or_fail()?;
    let fd = fd_jacobian(&|t| fam.solve(t), &theta, FD_STEP);
    prop_assert!(fd.norm() > 0.0, "x* does not depend on θ: {fam:?}");
    let scale = fd_scale(fd.norm(), p);
    let vjp = imp.vjp(&u).or_fail()?;
    let jvp = imp.jvp(&v).or_fail()?;
    let fd_vjp = fd.transpose() * col(&u);
    let fd_jvp = &fd * col(&v);
    let e_vjp = diff_norm(&vjp, fd_vjp.as_slice()) / (scale * norm(&u));
    let e_jvp = diff_norm(&jvp, fd_jvp.as_slice()) / (scale * norm(&v));
    let e_jac = (&jac - &fd).norm() / scale;
    for (what, e) in [("vjp", e_vjp), ("jvp", e_jvp), ("jacobian", e_jac)] {
        prop_assert!(
            e <= FD_TOL,
            "{what} vs finite differences: relative error {e:.3e} > {FD_TOL:.0e}\nJ = {jac}\nJ_fd = {fd}"
        );
    }
    Ok(vec![("vjp", e_vjp), ("jvp", e_jvp), ("jacobian", e_jac)])
}

/// Ridge regression (scalar λ when p = 1, per-feature λ when p ≥ n, grouped otherwise).
#[test]
fn ridge_derivatives_match_finite_differences_of_resolving() {
    check("ridge FD", 64, sizes(), |s| fd_property(0, s));
}

/// Logistic regression + L2, re-solved by Newton.
#[test]
fn logistic_derivatives_match_finite_differences_of_resolving() {
    check("logistic FD", 64, sizes(), |s| fd_property(1, s));
}

/// A nonsymmetric root problem, re-solved by Newton.
#[test]
fn root_derivatives_match_finite_differences_of_resolving() {
    check("tanh root FD", 64, sizes(), |s| fd_property(2, s));
}

/// A contractive fixed point, re-solved by iteration.
#[test]
fn fixed_point_derivatives_match_finite_differences_of_resolving() {
    check("fixed point FD", 64, sizes(), |s| fd_property(3, s));
}

// =======================================================================================
// 2. Reverse and forward mode are adjoint: the dot-product test
// =======================================================================================

/// `<vjp(u), v> == <u, jvp(v)>` within `dot_product_bound`, for all four families, and
/// `jacobian()` equals the stacked JVPs `[jvp(e_1) … jvp(e_p)]` within the same bound per
/// entry (J_ik by VJP is `<vjp(e_i), e_k>`, by JVP `<e_i, jvp(e_k)>`); for p ≤ n the
/// Jacobian *is* the stacked JVPs, bit for bit.
#[test]
fn vjp_and_jvp_are_adjoint_and_jacobian_stacks_jvps() {
    let strategy = (0usize..4, sizes());
    check("dot product", 64, strategy, |(kind, (n, p, seed))| {
        let fam = family(kind, n, p, seed);
        let theta = fam.theta();
        let x = fam.solve(&theta);
        let opts = IftOptions::default();
        let imp = fam.implicit(&x, &theta, opts.clone()).or_fail()?;
        let (a, b) = imp.blocks();
        let mut rng = SplitMix::new(seed ^ 0xD07);
        let (u, v) = (rng.vec(n, -1.0, 1.0), rng.vec(p, -1.0, 1.0));
        let lhs = dot(&imp.vjp(&u).or_fail()?, &v);
        let rhs = dot(&u, &imp.jvp(&v).or_fail()?);
        let gap = (lhs - rhs).abs();
        let bound = dot_product_bound(&a, &b, &u, &v, &opts);
        prop_assert!(
            gap <= bound,
            "<vjp(u),v> = {lhs:e}, <u,jvp(v)> = {rhs:e}: gap {gap:.3e} > bound {bound:.3e}"
        );
        let jac = imp.jacobian().or_fail()?;
        let scale = jac.norm() * norm(&u) * norm(&v);
        let rel_gap = if scale > 0.0 { gap / scale } else { gap };

        let mut worst_entry = 0.0f64;
        for k in 0..p {
            let jvp_k = imp.jvp(&unit(p, k)).or_fail()?;
            for i in 0..n {
                let d = (jac[(i, k)] - jvp_k[i]).abs();
                if p <= n {
                    prop_assert!(
                        d == 0.0,
                        "jacobian column {k} differs from jvp(e_{k}) by {d:e}"
                    );
                }
                let entry_bound = dot_product_bound(&a, &b, &unit(n, i), &unit(p, k), &opts);
                prop_assert!(d <= entry_bound, "J[{i},{k}]: {d:.3e} > {entry_bound:.3e}");
                worst_entry = worst_entry.max(d / jac.norm().max(f64::MIN_POSITIVE));
            }
        }
        Ok(vec![
            ("dot gap / (|u| |J| |v|)", rel_gap),
            ("dot gap / bound", gap / bound),
            ("jacobian vs stacked jvp (rel)", worst_entry),
        ])
    });
}

// =======================================================================================
// 3. Ridge hypergradient = closed form
// =======================================================================================

/// The hypergradient of a validation loss through ridge regression, by the implicit VJP
/// (default options: the small Hessian assembled in one sweep and factored by Cholesky;
/// and matrix-free CG, rtol 1e-10) and through `implicit_node` on a tape, equals the closed
/// form (dw*/dθ)ᵀ∇L_val = −Gᵀ diag(w*) A⁻¹ ∇L_val to 1e-8 relative.
///
/// Why 1e-8: CG stops at ‖Aᵀw − g‖ ≤ 1e-10 ‖g‖, so the hypergradient error is at most
/// ‖B‖ ‖A⁻¹‖ 1e-10 ‖g‖ ≤ κ(A) 1e-10 ‖B‖‖g‖/‖A‖ — about 1.2e-9 of the natural scale for
/// κ ≤ 12; the closed form itself is exact to κ·u.
#[test]
fn ridge_hypergradient_equals_closed_form() {
    check("ridge hypergradient", 64, sizes(), |(n, p, seed)| {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta(seed);
        let w = r.solve(&theta);
        let expect = r.hypergradient(&theta);
        let cg =
            Implicit::argmin_vec(&r, &w, &theta, IftOptions::default().dense_up_to(0)).or_fail()?;
        let (hg_cg, report) = cg.vjp_flat(&r.val_grad(&w)).or_fail()?;
        prop_assert!(
            report.linear.as_ref().unwrap().converged
                && report.linear.as_ref().unwrap().method == Method::Cg
        );
        let e_cg = rel(&hg_cg, &expect);
        prop_assert!(e_cg <= 1e-8, "CG: relative error {e_cg:e}");
        let imp = Implicit::argmin_vec(&r, &w, &theta, IftOptions::default()).or_fail()?;
        let (hg, report) = imp.vjp_flat(&r.val_grad(&w)).or_fail()?;
        prop_assert!(
            report.linear.as_ref().unwrap().converged
                && report.linear.as_ref().unwrap().method == Method::Cholesky
        );
        let e_vjp = rel(&hg, &expect);
        prop_assert!(
            e_vjp <= 1e-8,
            "implicit {hg:?} vs closed form {expect:?}: {e_vjp:.3e}"
        );
        drop(imp);

        // The same through the tape: θ → w*(θ) (one node) → validation loss.
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let solver = |t: &[DMatrix<f64>]| r.solve(t[0].as_slice());
        let (wv, node) =
            implicit_node(Argmin(r.clone()), &[tv], solver, IftOptions::default()).or_fail()?;
        let loss = r.val_loss(&wv);
        let g = tape.gradient(loss).or_fail()?.wrt_mat(&tv);
        let e_node = rel(g.as_slice(), &expect);
        prop_assert!(
            e_node <= 1e-8,
            "node {g} vs closed form {expect:?}: {e_node:.3e}"
        );
        prop_assert!(node.reports().len() == 1 && node.forward_residual <= 1e-12);
        Ok(vec![("vjp", e_vjp), ("implicit_node", e_node)])
    });
}
