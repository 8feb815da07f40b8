//! Argmin and root formulations agree for every linear method; a factorization supplied by
//! the caller (`with_factor`) is reused, one product with A per solve; one made by `Lu` /
//! `Cholesky` is made once.

mod ift_common;

use std::cell::Cell;

use ad_core::AdError;
use ift_common::*;
use implicit::linear::{DenseCholesky, DenseLu, Method};
use implicit::{ArgminHessian, Factor, IftOptions, Implicit, Linearization, RecordedRoot, Scalars};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// =======================================================================================
// 4. Argmin and root formulations agree, for every linear method; reuse of a factorization
// =======================================================================================

const METHODS: [Method; 6] = [
    Method::Cg,
    Method::Minres,
    Method::Gmres,
    Method::Bicgstab,
    Method::Lu,
    Method::Cholesky,
];

/// Writing F = ∇ₓL by hand as a `RootCondition` (differentiated by recording F) and giving
/// the `Objective` (differentiated by exact Hessian-vector products) yield the same
/// Jacobian dx*/dθ, with every linear method. A is SPD here, so every method applies.
/// Reference: the closed form (ridge) or dense LU on the argmin form (logistic). Each
/// solve stops at relative residual 1e-10, so each column is within κ(A)·1e-10 ≤ 1.2e-9 of
/// the truth: 1e-8 relative (Frobenius) holds with margin.
#[test]
fn argmin_and_root_formulations_agree_for_every_method() {
    check(
        "argmin = root",
        64,
        (0usize..2, sizes()),
        |(kind, (n, p, seed))| {
            let mut worst = 0.0f64;
            let mut compare = |jacs: Vec<(String, DMatrix<f64>)>, reference: &DMatrix<f64>| {
                for (what, j) in jacs {
                    let e = (&j - reference).norm() / reference.norm();
                    worst = worst.max(e);
                    prop_assert!(
                        e <= 1e-8,
                        "{what}: relative error {e:.3e}\n{j}\nvs {reference}"
                    );
                }
                Ok(())
            };
            if kind == 0 {
                let r = Ridge::random(n, p, seed);
                let theta = r.theta(seed);
                let w = r.solve(&theta);
                let mut jacs = Vec::new();
                for m in METHODS {
                    let opts = IftOptions::default().method(m);
                    let argmin = Implicit::argmin_vec(&r, &w, &theta, opts.clone()).or_fail()?;
                    jacs.push((format!("argmin {m}"), argmin.jacobian().or_fail()?));
                    drop(argmin);
                    let root = Implicit::root_vec(&r, &w, &theta, opts).or_fail()?;
                    jacs.push((format!("root {m}"), root.jacobian().or_fail()?));
                }
                compare(jacs, &r.jacobian(&theta))?;
            } else {
                let l = Scalars(Logistic::random(n, p, seed));
                let theta = l.0.theta(seed);
                let w = l.0.solve(&theta);
                let lu = IftOptions::default().method(Method::Lu);
                let reference = Implicit::argmin_vec(&l, &w, &theta, lu)
                    .or_fail()?
                    .jacobian()
                    .or_fail()?;
                let mut jacs = Vec::new();
                for m in METHODS {
                    let opts = IftOptions::default().method(m);
                    let argmin = Implicit::argmin_vec(&l, &w, &theta, opts.clone()).or_fail()?;
                    jacs.push((format!("argmin {m}"), argmin.jacobian().or_fail()?));
                    drop(argmin);
                    let root = Implicit::root_vec(&l, &w, &theta, opts).or_fail()?;
                    jacs.push((format!("root {m}"), root.jacobian().or_fail()?));
                }
                compare(jacs, &reference)?;
            }
            Ok(vec![("max relative difference", worst)])
        },
    );
}

/// A linearization that counts its products with A (and with B).
struct Counting<L> {
    inner: L,
    a_products: Cell<usize>,
    b_products: Cell<usize>,
    /// Calls of `transpose_products` (one pass for Aᵀu and Bᵀu).
    joint_passes: Cell<usize>,
}

impl<L> Counting<L> {
    fn new(inner: L) -> Self {
        Counting {
            inner,
            a_products: Cell::new(0),
            b_products: Cell::new(0),
            joint_passes: Cell::new(0),
        }
    }
}

impl<L: Linearization> Linearization for Counting<L> {
    fn dims(&self) -> (usize, usize) {
        self.inner.dims()
    }
    fn residual(&self) -> &[f64] {
        self.inner.residual()
    }
    fn symmetric(&self) -> bool {
        self.inner.symmetric()
    }
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        self.a_products.set(self.a_products.get() + 1);
        self.inner.a_mul(v)
    }
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.a_products.set(self.a_products.get() + 1);
        self.inner.at_mul(u)
    }
    fn b_mul(&self, w: &[f64]) -> Result<Vec<f64>, AdError> {
        self.b_products.set(self.b_products.get() + 1);
        self.inner.b_mul(w)
    }
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.b_products.set(self.b_products.get() + 1);
        self.inner.bt_mul(u)
    }
    fn transpose_products(&self, u: &[f64]) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        self.joint_passes.set(self.joint_passes.get() + 1);
        self.inner.transpose_products(u)
    }
}

/// A reverse-mode derivative with an exact given factor costs one pass of the
/// linearization: the check of the solve's true residual gives Aᵀw and Bᵀw together
/// (argmin problems make both in one second-order sweep), and Bᵀw is not made again.
#[test]
fn a_vjp_with_an_exact_factor_costs_one_pass() {
    for (n, p, seed) in [(3, 2, 1), (6, 3, 7), (9, 4, 11)] {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta(seed);
        let w = r.solve(&theta);
        let factor = Factor::Cholesky(DenseCholesky::factor(&r.a(&theta), 0.0).unwrap());
        let lin = Counting::new(ArgminHessian::new(&r, &col(&w), &[col(&theta)]).unwrap());
        let imp = Implicit::from_linearization(lin, IftOptions::default().estimate_error(false))
            .unwrap()
            .with_factor(factor);
        let u: Vec<f64> = (0..n).map(|i| (i as f64 + 0.5).sin()).collect();
        let (vjp, report) = imp.vjp_flat(&u).unwrap();
        let counts = imp.linearization();
        assert_eq!(
            (
                counts.joint_passes.get(),
                counts.a_products.get(),
                counts.b_products.get()
            ),
            (1, 0, 0),
            "n = {n}"
        );
        assert_eq!(report.linear.as_ref().unwrap().matvecs, 1);
        let exact = r.jacobian(&theta);
        for (j, g) in vjp.iter().enumerate() {
            let want: f64 = (0..n).map(|i| u[i] * exact[(i, j)]).sum();
            assert!(
                (g - want).abs() <= 1e-12 * (1.0 + want.abs()),
                "{g} vs {want}"
            );
        }
    }
}

/// What one `Implicit` gives and costs: VJP, JVP, Jacobian, the products with A they made
/// (counted at the linearization), the number of linear solves, and the largest
/// `matvecs` and `iterations` of the VJP / JVP reports.
struct Cost {
    vjp: Vec<f64>,
    jvp: Vec<f64>,
    jac: DMatrix<f64>,
    products: usize,
    solves: usize,
    matvecs: usize,
    iterations: usize,
}

/// Errors of a `Cost`'s VJP, JVP and Jacobian against the Jacobian `expect`, relative to
/// the size of the map: ‖vjp(u) − Jᵀu‖ / (‖J‖ ‖u‖), ‖jvp(v) − J v‖ / (‖J‖ ‖v‖), ‖ΔJ‖ / ‖J‖.
fn map_errors(cost: &Cost, expect: &DMatrix<f64>, u: &[f64], v: &[f64]) -> [f64; 3] {
    let size = expect.norm();
    [
        diff_norm(&cost.vjp, (expect.transpose() * col(u)).as_slice()) / (size * norm(u)),
        diff_norm(&cost.jvp, (expect * col(v)).as_slice()) / (size * norm(v)),
        (&cost.jac - expect).norm() / size,
    ]
}

fn derivatives_and_cost<L: Linearization>(
    imp: &Implicit<Counting<L>>,
    u: &[f64],
    v: &[f64],
) -> Result<Cost, TestCaseError> {
    // A products, alone or with Bᵀ in one pass.
    let a_products =
        || imp.linearization().a_products.get() + imp.linearization().joint_passes.get();
    let before = a_products();
    let (vjp, rv) = imp.vjp_flat(u).or_fail()?;
    let (jvp, rj) = imp.jvp_flat(v).or_fail()?;
    let jac = imp.jacobian().or_fail()?;
    let (n, p) = imp.dims();
    Ok(Cost {
        vjp,
        jvp,
        jac,
        products: a_products() - before,
        solves: 2 + n.min(p),
        matvecs: rv
            .linear
            .as_ref()
            .unwrap()
            .matvecs
            .max(rj.linear.as_ref().unwrap().matvecs),
        iterations: rv
            .linear
            .as_ref()
            .unwrap()
            .iterations
            .max(rj.linear.as_ref().unwrap().iterations),
    })
}

/// `with_factor`: a factorization the caller already has — the ridge system's Cholesky or
/// LU factor of XᵀX/m + diag λ, the last Jacobian of a Newton solve — gives the same VJP,
/// JVP and Jacobian without materializing or factoring A: each derivative solve costs
/// exactly one product with A (the check of its true residual; counted at the
/// linearization and reported as `matvecs`), with the error estimate turned off. A factor
/// of a *nearby* matrix (here λ off by 2%, like Newton's previous iterate) still gives the
/// exact derivative, by iterative refinement against the true A (a few more products).
#[test]
fn with_factor_reuses_the_callers_factorization() {
    check(
        "with_factor",
        64,
        (0usize..2, sizes()),
        |(kind, (n, p, seed))| {
            let mut rng = SplitMix::new(seed ^ 0xFAC);
            let (u, v) = (rng.vec(n, -1.0, 1.0), rng.vec(p, -1.0, 1.0));
            let no_estimate = IftOptions::default().estimate_error(false);
            let mut worst = 0.0f64;
            let mut worst_nearby = 0.0f64;
            if kind == 0 {
                let r = Ridge::random(n, p, seed);
                let theta = r.theta(seed);
                let w = r.solve(&theta);
                let a = r.a(&theta);
                let exact = r.jacobian(&theta);
                let nearby_theta: Vec<f64> = theta.iter().map(|t| t * 1.02).collect();
                let nearby = r.a(&nearby_theta);
                let factors = [
                    (
                        Factor::Cholesky(DenseCholesky::factor(&a, 0.0).or_fail()?),
                        false,
                    ),
                    (Factor::Lu(DenseLu::factor(&a, 0.0).or_fail()?), false),
                    (
                        Factor::Cholesky(DenseCholesky::factor(&nearby, 0.0).or_fail()?),
                        true,
                    ),
                    (Factor::Lu(DenseLu::factor(&nearby, 0.0).or_fail()?), true),
                ];
                for (factor, is_nearby) in factors {
                    for root_form in [false, true] {
                        let cost = if root_form {
                            let lin = Counting::new(
                                RecordedRoot::new(&r, &col(&w), &[col(&theta)]).or_fail()?,
                            );
                            let imp = Implicit::from_linearization(lin, no_estimate.clone())
                                .or_fail()?
                                .with_factor(factor.clone());
                            derivatives_and_cost(&imp, &u, &v)?
                        } else {
                            let lin = Counting::new(
                                ArgminHessian::new(&r, &col(&w), &[col(&theta)]).or_fail()?,
                            );
                            let imp = Implicit::from_linearization(lin, no_estimate.clone())
                                .or_fail()?
                                .with_factor(factor.clone());
                            derivatives_and_cost(&imp, &u, &v)?
                        };
                        let e = map_errors(&cost, &exact, &u, &v);
                        if is_nearby {
                            // Refinement to relative residual 1e-10, κ ≤ 12: within 1.2e-9.
                            prop_assert!(
                                cost.iterations >= 1 && cost.matvecs == cost.iterations + 1
                            );
                            prop_assert!(cost.products >= cost.solves);
                            for e in e {
                                worst_nearby = worst_nearby.max(e);
                                prop_assert!(e <= 1e-8, "nearby factor vs closed form: {e:.3e}");
                            }
                        } else {
                            prop_assert_eq!(cost.products, cost.solves, "one A product per solve");
                            prop_assert!(cost.matvecs == 1 && cost.iterations == 0);
                            // Exact factor: the only error is rounding, κ·u ≈ 1e-15.
                            for e in e {
                                worst = worst.max(e);
                                prop_assert!(e <= 1e-12, "with_factor vs closed form: {e:.3e}");
                            }
                        }
                    }
                }
            } else {
                // Newton's last Jacobian for the nonsymmetric root problem.
                let t = TanhRoot::random(n, p, seed);
                let theta = t.theta(seed);
                let x = t.solve(&theta);
                let newton_lu = DenseLu::factor(&t.jac_x(&x, &theta), 0.0).or_fail()?;
                let krylov = Implicit::root_vec(&t, &x, &theta, IftOptions::default()).or_fail()?;
                let jac0 = krylov.jacobian().or_fail()?;
                drop(krylov);
                let lin = Counting::new(RecordedRoot::new(&t, &col(&x), &[col(&theta)]).or_fail()?);
                let imp = Implicit::from_linearization(lin, no_estimate)
                    .or_fail()?
                    .with_factor(Factor::Lu(newton_lu));
                let cost = derivatives_and_cost(&imp, &u, &v)?;
                prop_assert_eq!(cost.products, cost.solves, "one A product per solve");
                prop_assert!(cost.matvecs == 1 && cost.iterations == 0);
                // GMRES to relative residual 1e-10 with κ(A) ≤ 3: within ~3e-10 of the map's size.
                for e in map_errors(&cost, &jac0, &u, &v) {
                    worst = worst.max(e);
                    prop_assert!(e <= 1e-8, "with Newton's factor vs GMRES: {e:.3e}");
                }
            }
            let key = if kind == 0 {
                "ridge, exact factor vs closed form"
            } else {
                "Newton's factor vs GMRES"
            };
            Ok(vec![
                (key, worst),
                ("ridge, nearby factor vs closed form", worst_nearby),
            ])
        },
    );
}

/// With `Lu` / `Cholesky`, A is materialized and factored once, on the first solve (whose
/// report counts the n products that cost), and reused by every later VJP, JVP and
/// Jacobian column at no further product.
#[test]
fn dense_factor_is_made_once_and_reused() {
    check("factor reuse", 64, sizes(), |(n, p, seed)| {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta(seed);
        let w = r.solve(&theta);
        for m in [Method::Lu, Method::Cholesky] {
            let lin = Counting::new(ArgminHessian::new(&r, &col(&w), &[col(&theta)]).or_fail()?);
            let imp = Implicit::from_linearization(
                lin,
                IftOptions::default().method(m).estimate_error(false),
            )
            .or_fail()?;
            let (_, first) = imp.jvp_flat(&unit(p, 0)).or_fail()?;
            prop_assert_eq!(
                first.linear.as_ref().unwrap().matvecs,
                n,
                "{}: materializing A costs n products",
                m
            );
            let after_factor = imp.linearization().a_products.get();
            prop_assert_eq!(after_factor, n);
            imp.jacobian().or_fail()?;
            imp.vjp_flat(&unit(n, 0)).or_fail()?;
            prop_assert_eq!(
                imp.linearization().a_products.get(),
                after_factor,
                "{} refactored",
                m
            );
        }
        Ok(vec![])
    });
}

/// CG on the normal equations reads Aᵀ through the operator's transpose: on a
/// nonsymmetric root problem it gives GMRES's VJP and JVP (both to 1e-10 relative
/// residual, κ(A) <= 3 on this family).
#[test]
fn normal_cg_on_a_nonsymmetric_system_agrees_with_gmres() {
    for (n, p, seed) in [(4, 2, 3), (7, 3, 5)] {
        let t = TanhRoot::random(n, p, seed);
        let theta = t.theta(seed);
        let x = t.solve(&theta);
        let u: Vec<f64> = (0..n).map(|i| (i as f64 + 0.3).cos()).collect();
        let v: Vec<f64> = (0..p).map(|j| (j as f64 + 0.7).sin()).collect();
        // One `Implicit` (one recording tape) at a time.
        let products = |method: Method| {
            let opts = IftOptions::default().estimate_error(false).method(method);
            let imp = Implicit::root_vec(&t, &x, &theta, opts).unwrap();
            (imp.vjp_flat(&u).unwrap().0, imp.jvp_flat(&v).unwrap().0)
        };
        let ((a, c), (b, d)) = (products(Method::Gmres), products(Method::NormalCg));
        for (g, h) in a.iter().zip(&b).chain(c.iter().zip(&d)) {
            assert!((g - h).abs() <= 1e-8 * (1.0 + g.abs()), "{g} vs {h}");
        }
    }
}

/// A given factor of A + ρI with the solve's `ridge` ρ: the VJP is that of the damped
/// system, as without the factor (the residual check subtracts ρ y), and both report the
/// residual the damping leaves in the undamped system.
#[test]
fn a_given_factor_with_a_ridge_solves_the_damped_system() {
    let (n, p, seed) = (5, 2, 9);
    let r = Ridge::random(n, p, seed);
    let theta = r.theta(seed);
    let w = r.solve(&theta);
    let rho = 0.3;
    let damped = r.a(&theta) + DMatrix::identity(n, n) * rho;
    let opts = IftOptions::default()
        .estimate_error(false)
        .linear(implicit::linear::SolveOptions::default().ridge(rho));
    let u: Vec<f64> = (0..n).map(|i| 0.5 - 0.2 * i as f64).collect();
    let (a, ra) = Implicit::argmin_vec(&r, &w, &theta, opts.clone())
        .unwrap()
        .vjp_flat(&u)
        .unwrap();
    let (b, rb) = Implicit::argmin_vec(&r, &w, &theta, opts)
        .unwrap()
        .with_factor(Factor::Cholesky(
            DenseCholesky::factor(&damped, 0.0).unwrap(),
        ))
        .vjp_flat(&u)
        .unwrap();
    for (g, h) in a.iter().zip(&b) {
        assert!((g - h).abs() <= 1e-9 * (1.0 + g.abs()), "{g} vs {h}");
    }
    // Both report the residual the damping leaves in the undamped system,
    // ‖u − A w‖ / ‖u‖ with w = (A + ρI)⁻¹ u (= ρ‖w‖ / ‖u‖), not the damped solve's own.
    let uv = DVector::from_column_slice(&u);
    let wd = damped.clone().lu().solve(&uv).unwrap();
    let want = (&uv - r.a(&theta) * &wd).norm() / uv.norm();
    assert!(want > 1e-3, "{want}");
    for report in [ra, rb] {
        let got = report.relative_residual;
        assert!((got - want).abs() <= 1e-8 * want, "{got} vs {want}");
    }
}

/// A zero cotangent gives a zero VJP with relative residual 0 (0/0 read as 0, not NaN),
/// and every backward pass has its documented name.
#[test]
fn zero_cotangents_and_backward_names() {
    let (n, p, seed) = (4, 2, 1);
    let r = Ridge::random(n, p, seed);
    let theta = r.theta(seed);
    let w = r.solve(&theta);
    let imp = Implicit::argmin_vec(&r, &w, &theta, IftOptions::default()).unwrap();
    let (g, report) = imp.vjp_flat(&vec![0.0; n]).unwrap();
    assert!(g.iter().all(|&v| v == 0.0));
    assert_eq!(report.relative_residual, 0.0);
    use implicit::Backward;
    let names: Vec<_> = [
        Backward::Exact,
        Backward::Phantom {
            steps: 3,
            damping: 1.0,
        },
        Backward::JacobianFree,
    ]
    .iter()
    .map(Backward::name)
    .collect();
    assert_eq!(names, ["exact", "phantom", "jacobian-free"]);
}

/// Refinement with a given factor stops as soon as a step fails to halve the residual: a
/// factor of 10 A (each step removes only a tenth of the error) is `NotConverged` after
/// one step, with its report, rather than a long crawl to the iteration limit, whatever
/// the scale of the cotangent.
#[test]
fn a_poor_factor_stops_refining_at_the_first_stall() {
    let (n, p, seed) = (5, 2, 4);
    let r = Ridge::random(n, p, seed);
    let theta = r.theta(seed);
    let w = r.solve(&theta);
    let poor = Factor::Cholesky(DenseCholesky::factor(&(r.a(&theta) * 10.0), 0.0).unwrap());
    let imp = Implicit::argmin_vec(&r, &w, &theta, IftOptions::default().estimate_error(false))
        .unwrap()
        .with_factor(poor);
    // The rule is relative: the same at any scale of the cotangent.
    for scale in [1.0, 1e-3, 1e3] {
        match imp.vjp_flat(&vec![scale; n]) {
            Err(implicit::ImplicitError::Linear(implicit::linear::SolveError::NotConverged {
                report,
                ..
            })) => {
                assert_eq!((report.iterations, report.matvecs), (1, 2), "scale {scale}");
                // The factor was applied to b and to the one step's residual.
                assert_eq!(report.precond_applications, 2);
                // y₀ = (10A)⁻¹b leaves 0.9 b; one refinement step leaves 0.81 b.
                let ratio = report.residual_norm / report.initial_residual_norm;
                assert!((ratio - 0.81).abs() < 1e-9, "{ratio}");
            }
            other => panic!("scale {scale}: expected NotConverged after one step, got {other:?}"),
        }
    }
}

/// With the default options a VJP (and a JVP) reports an estimate of the error its final
/// residual leaves (one loose extra solve), a relative residual within the solve's
/// tolerance, and `options()` returns the options it was built with.
#[test]
fn default_vjps_report_their_error_estimate() {
    let (n, p, seed) = (6, 3, 2);
    let r = Ridge::random(n, p, seed);
    let theta = r.theta(seed);
    let w = r.solve(&theta);
    // Matrix-free (CG), so the solve leaves a residual to estimate from.
    let opts = IftOptions::default().dense_up_to(0);
    let imp = Implicit::argmin_vec(&r, &w, &theta, opts.clone()).unwrap();
    assert!(imp.options().estimate_error && imp.options().dense_up_to == 0);
    let (_, report) = imp.vjp_flat(&vec![1.0; n]).unwrap();
    let (_, forward) = imp.jvp_flat(&vec![1.0; p]).unwrap();
    // The same VJP again costs and reports the same products (counted per call, not since
    // the value was built).
    let (_, again) = imp.vjp_flat(&vec![1.0; n]).unwrap();
    assert!(report.products > 0);
    assert_eq!(again.products, report.products);
    for report in [report, forward] {
        let estimate = report.linear_error_estimate.expect("an error estimate");
        assert!(estimate.is_finite() && estimate >= 0.0, "{estimate}");
        assert!(
            (0.0..=1e-10).contains(&report.relative_residual),
            "{}",
            report.relative_residual
        );
    }
    // Turned off, neither mode estimates.
    let quiet = Implicit::argmin_vec(&r, &w, &theta, opts.estimate_error(false)).unwrap();
    assert!(
        quiet
            .vjp_flat(&vec![1.0; n])
            .unwrap()
            .1
            .linear_error_estimate
            .is_none()
    );
    assert!(
        quiet
            .jvp_flat(&vec![1.0; p])
            .unwrap()
            .1
            .linear_error_estimate
            .is_none()
    );
}

/// The linearizations' documented signs of the map f = x + σF (−1 for argmins, a gradient
/// step; +1 for roots) and the argmin linearization's value of L at the point.
#[test]
fn linearization_signs_and_value() {
    let (n, p, seed) = (4, 2, 6);
    let r = Ridge::random(n, p, seed);
    let theta = r.theta(seed);
    let w = r.solve(&theta);
    {
        let lin = ArgminHessian::new(&r, &col(&w), &[col(&theta)]).unwrap();
        assert_eq!(lin.map_sign(), -1.0);
        let direct: f64 = implicit::Objective::value(&r, &col(&w), &[col(&theta)]);
        assert!((lin.value() - direct).abs() <= 1e-14 * (1.0 + direct.abs()));
    }
    let t = TanhRoot::random(n, p, seed);
    let theta = t.theta(seed);
    let x = t.solve(&theta);
    let root = RecordedRoot::new(&t, &col(&x), &[col(&theta)]).unwrap();
    assert_eq!(root.map_sign(), 1.0);
}
