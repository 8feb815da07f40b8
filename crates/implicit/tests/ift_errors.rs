//! Bad input to the implicit function theorem (`Implicit`, `implicit_node`,
//! `implicit_scalar_node`, the unrolled baseline): what is guaranteed.
//!
//! Every kind of bad input returns a typed [`ImplicitError`] that says what was wrong and
//! carries the numbers — never a number, never a silent zero gradient:
//!
//! | bad input | error |
//! |---|---|
//! | NaN / ±∞ in θ, x*, x̄, θ̇, or a forward solver's output | `NonFinite { what, index, value }` |
//! | NaN / ±∞ in the problem's data (seen in F(x*, θ)) | `NonFinite` naming the residual entry |
//! | x̄ / θ̇ of the wrong length, F of the wrong shape, θ not a column | `Dimension { what, expected, got }` |
//! | an inner solution that is not one (‖F(x*, θ)‖ above `residual_tol`) | `NotAtSolution { residual, tolerance }` |
//! | a singular ∂F/∂x with dense LU | `Singular { pivot, value, threshold, size }` |
//! | an indefinite Hessian (a saddle point) with CG | `NegativeCurvature { iteration, curvature, report }` (MINRES succeeds) |
//! | a backward solve out of iterations, inside a tape | `AdError::CustomRule` whose source is `NotConverged { report }` |
//! | a forward solver that fails | `ForwardSolver(its error)` |
//! | a caller's factorization that does not factor ∂F/∂x | `NotConverged` (refinement against the true A fails) |
//! | unrolled gradient descent on non-finite input, or diverging | `NonFinite` / `InvalidOption` / `Dimension` |
//!
//! Randomized parts use proptest (sizes n in 1..=10, p in 1..=5, seeded data).

use std::error::Error;

use ad_core::{AdError, MatOps, Real, Tape};
use implicit::linear::{DenseLu, Method, SolveError, SolveOptions};
use implicit::unrolled::unrolled_gradient_descent;
use implicit::{
    Argmin, Factor, FixedPointMap, IftOptions, Implicit, ImplicitError, Objective, Root,
    RootCondition, ScalarRootCondition, Scalars, implicit_node, implicit_scalar_node,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// =======================================================================================
// Problems
// =======================================================================================

/// SplitMix64, for seeded data.
struct Rng(u64);

impl Rng {
    fn unif(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        lo + (hi - lo) * ((z >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.unif(lo, hi)).collect()
    }
    fn mat(&mut self, r: usize, c: usize, lo: f64, hi: f64) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |_, _| self.unif(lo, hi))
    }
}

fn col(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn unit(n: usize, k: usize) -> Vec<f64> {
    let mut e = vec![0.0; n];
    e[k] = 1.0;
    e
}

/// Column j of x has λ = θ_{j mod p}.
fn groups(n: usize, p: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, p, |j, k| if j % p == k { 1.0 } else { 0.0 })
}

/// Ridge regression with λ = groups·θ: L(w, θ) = ‖Xw − y‖²/2m + ½ Σⱼ λⱼ wⱼ².
#[derive(Clone, Debug)]
struct Ridge {
    x: DMatrix<f64>,
    y: DMatrix<f64>,
    g: DMatrix<f64>,
}

impl Ridge {
    fn random(n: usize, p: usize, seed: u64) -> Ridge {
        let mut rng = Rng(seed);
        let m = n + 6;
        Ridge {
            x: rng.mat(m, n, -1.0, 1.0),
            y: rng.mat(m, 1, -1.0, 1.0),
            g: groups(n, p),
        }
    }
    fn theta(&self) -> Vec<f64> {
        (0..self.g.ncols()).map(|k| 0.5 + 0.25 * k as f64).collect()
    }
    fn a(&self, theta: &[f64]) -> DMatrix<f64> {
        let m = self.x.nrows() as f64;
        self.x.transpose() * &self.x / m
            + DMatrix::from_diagonal(&(&self.g * DVector::from_column_slice(theta)))
    }
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        let b = self.x.transpose() * &self.y / self.x.nrows() as f64;
        let w = self.a(theta).cholesky().unwrap().solve(&b);
        w.as_slice().to_vec()
    }
    /// F(w, θ) = ∇ₓL in plain f64.
    fn f(&self, w: &[f64], theta: &[f64]) -> Vec<f64> {
        self.residual(&col(w), &col(theta)).as_slice().to_vec()
    }
}

impl Objective for Ridge {
    fn value<M: MatOps>(&self, w: &M, theta: &M) -> M::Scalar {
        let r = w
            .constant_like(self.x.clone())
            .matmul(w)
            .sub(&w.constant_like(self.y.clone()));
        let lam = w.constant_like(self.g.clone()).matmul(theta);
        r.sq_norm() / (2.0 * self.x.nrows() as f64) + lam.dot(&w.square()) * 0.5
    }
}

impl RootCondition for Ridge {
    fn residual<M: MatOps>(&self, w: &M, theta: &M) -> M {
        let x = w.constant_like(self.x.clone());
        let r = x.matmul(w).sub(&w.constant_like(self.y.clone()));
        let lam = w.constant_like(self.g.clone()).matmul(theta);
        x.transpose()
            .matmul(&r)
            .scale_f64(1.0 / self.x.nrows() as f64)
            .add(&lam.mul_elem(w))
    }
}

/// A contractive fixed point z = tanh(W z + U θ), ‖W‖_F = 0.5.
#[derive(Clone, Debug)]
struct Deq {
    w: DMatrix<f64>,
    u: DMatrix<f64>,
}

impl Deq {
    fn random(n: usize, p: usize, seed: u64) -> Deq {
        let mut rng = Rng(seed);
        let r = rng.mat(n, n, -1.0, 1.0);
        let scale = 0.5 / r.norm().max(1e-300);
        Deq {
            w: r * scale,
            u: rng.mat(n, p, -1.0, 1.0),
        }
    }
}

impl FixedPointMap for Deq {
    fn map<M: MatOps>(&self, z: &M, theta: &M) -> M {
        z.constant_like(self.w.clone())
            .matmul(z)
            .add(&z.constant_like(self.u.clone()).matmul(theta))
            .tanh()
    }
}

fn bad_value() -> impl Strategy<Value = f64> {
    prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)]
}

/// `value` is the bad value put in (NaN compares by kind).
fn same_value(got: f64, put: f64) -> bool {
    (got.is_nan() && put.is_nan()) || got == put
}

/// Assert `err` is `NonFinite { what, index, value }` with these fields.
fn assert_non_finite(
    err: &ImplicitError,
    what: &str,
    index: usize,
    value: f64,
) -> Result<(), TestCaseError> {
    match err {
        ImplicitError::NonFinite {
            what: w,
            index: i,
            value: v,
        } => {
            prop_assert_eq!(*w, what);
            prop_assert_eq!(*i, index);
            prop_assert!(same_value(*v, value), "value {} instead of {}", v, value);
            prop_assert!(err.to_string().contains(what), "message: {}", err);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "expected NonFinite({what}, {index}, {value}), got {other:?}"
        ))),
    }
}

/// The error of a `Result` whose `Ok` type need not be `Debug`.
fn error_of<T>(r: Result<T, ImplicitError>) -> ImplicitError {
    match r {
        Ok(_) => panic!("expected an error, got a value"),
        Err(e) => e,
    }
}

/// A forward solver that must not run (the input was rejected before).
fn must_not_run(_: &[f64]) -> Result<Vec<f64>, String> {
    panic!("the forward solver ran on rejected input")
}

// =======================================================================================
// Non-finite input
// =======================================================================================

proptest! {
    #![proptest_config(config(64))]

    /// NaN or ±∞ in θ, in x*, in x̄ or θ̇ is `NonFinite` with its position and value, for
    /// argmin, root and fixed-point problems and for both solver nodes (whose forward
    /// solver then does not run). A forward solver that returns a non-finite x* is caught
    /// before anything is recorded.
    #[test]
    fn non_finite_inputs_are_named_with_index_and_value(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(),
        pick in any::<prop::sample::Index>(), bad in bad_value(),
    ) {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta();
        let w = r.solve(&theta);
        let opts = IftOptions::default;

        let k = pick.index(p);
        let mut bad_theta = theta.clone();
        bad_theta[k] = bad;
        let deq = Deq::random(n, p, seed);
        for err in [
            error_of(Implicit::argmin(&r, &w, &bad_theta, opts())),
            error_of(Implicit::root(&r, &w, &bad_theta, opts())),
            error_of(Implicit::fixed_point(&deq, &w, &bad_theta, opts())),
        ] {
            assert_non_finite(&err, "parameters theta", k, bad)?;
        }

        let i = pick.index(n);
        let mut bad_w = w.clone();
        bad_w[i] = bad;
        assert_non_finite(&error_of(Implicit::argmin(&r, &bad_w, &theta, opts())), "solution x", i, bad)?;
        assert_non_finite(&error_of(Implicit::root(&r, &bad_w, &theta, opts())), "solution x", i, bad)?;

        let imp = Implicit::argmin(&r, &w, &theta, opts()).unwrap();
        let mut x_bar = vec![1.0; n];
        x_bar[i] = bad;
        assert_non_finite(&error_of(imp.vjp(&x_bar)), "cotangent x_bar", i, bad)?;
        let mut theta_dot = vec![1.0; p];
        theta_dot[k] = bad;
        assert_non_finite(&error_of(imp.jvp(&theta_dot)), "tangent theta_dot", k, bad)?;
        drop(imp);

        // Solver nodes: θ is checked before the forward solver runs, x* after it.
        let tape = Tape::new();
        let tv = tape.vector_var(&bad_theta);
        let err = error_of(implicit_node(Argmin(r.clone()), &tv, must_not_run, opts()));
        assert_non_finite(&err, "parameters theta", k, bad)?;
        let ts = tape.vars(&bad_theta);
        let err = error_of(implicit_scalar_node(Root(r.clone()), &ts, must_not_run, opts()));
        assert_non_finite(&err, "parameters theta", k, bad)?;
        let tv = tape.vector_var(&theta);
        let ops = tape.op_len();
        let bad_solver = |_: &[f64]| Ok::<_, String>(bad_w.clone());
        let err = error_of(implicit_node(Argmin(r.clone()), &tv, bad_solver, opts()));
        assert_non_finite(&err, "solution x", i, bad)?;
        prop_assert_eq!(tape.op_len(), ops, "nothing recorded");
    }

    /// NaN or ±∞ in the problem's own data (here one entry of the design matrix or of the
    /// targets) shows in the optimality residual F(x*, θ): `NonFinite` naming the residual
    /// and its first non-finite entry — not `NotAtSolution` with a NaN residual, and not
    /// a derivative full of NaN. The same through `implicit_node`.
    #[test]
    fn non_finite_data_is_named_in_the_residual(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(),
        row in any::<prop::sample::Index>(), column in any::<prop::sample::Index>(),
        in_targets in any::<bool>(), bad in bad_value(),
    ) {
        let clean = Ridge::random(n, p, seed);
        let theta = clean.theta();
        let w = clean.solve(&theta);
        let mut r = clean.clone();
        let i = row.index(r.x.nrows());
        if in_targets {
            r.y[i] = bad;
        } else {
            r.x[(i, column.index(n))] = bad;
        }
        let f = r.f(&w, &theta);
        let first = f.iter().position(|v| !v.is_finite()).expect("F sees the bad datum");
        let what = "optimality residual F(x*, theta)";
        for err in [
            error_of(Implicit::argmin(&r, &w, &theta, IftOptions::default())),
            error_of(Implicit::root(&r, &w, &theta, IftOptions::default())),
        ] {
            assert_non_finite(&err, what, first, f[first])?;
        }
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let solver = |_: &[f64]| Ok::<_, String>(w.clone());
        let err = error_of(implicit_node(Argmin(r.clone()), &tv, solver, IftOptions::default()));
        assert_non_finite(&err, what, first, f[first])?;
    }
}

// =======================================================================================
// Mismatched dimensions
// =======================================================================================

/// F returning `extra_rows` more rows, or two columns, than x has.
struct WrongShape {
    extra_rows: usize,
    columns: usize,
}

impl RootCondition for WrongShape {
    fn residual<M: MatOps>(&self, x: &M, theta: &M) -> M {
        let n = x.nrows();
        let s = theta.sum();
        let data = vec![s; (n + self.extra_rows) * self.columns];
        x.from_scalars_like(n + self.extra_rows, self.columns, &data)
    }
}

/// A scalar root condition that returns one entry too many.
struct OneTooMany;

impl ScalarRootCondition for OneTooMany {
    fn residual<S: Real>(&self, x: &[S], theta: &[S]) -> Vec<S> {
        let mut f: Vec<S> = x.iter().map(|&xi| xi - theta[0]).collect();
        f.push(x[0] - theta[0]);
        f
    }
}

proptest! {
    #![proptest_config(config(32))]

    /// Lengths that depend on user data are checked: `Dimension { what, expected, got }`.
    #[test]
    fn mismatched_dimensions_are_dimension_errors(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(), extra in 1usize..=3,
    ) {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta();
        let w = r.solve(&theta);
        let dim = |err: ImplicitError, what: &str, expected: usize, got: usize| -> Result<(), TestCaseError> {
            match err {
                ImplicitError::Dimension { what: w, expected: e, got: g } => {
                    prop_assert!(w.contains(what), "what = {:?}", w);
                    prop_assert_eq!((e, g), (expected, got));
                    Ok(())
                }
                other => Err(TestCaseError::fail(format!("expected Dimension, got {other:?}"))),
            }
        };
        // x̄ and θ̇ of the wrong length.
        for imp_err in [
            error_of(Implicit::argmin(&r, &w, &theta, IftOptions::default()).unwrap().vjp(&vec![1.0; n + extra])),
            error_of(Implicit::root(&r, &w, &theta, IftOptions::default()).unwrap().vjp(&vec![1.0; n + extra])),
        ] {
            dim(imp_err, "cotangent x_bar", n, n + extra)?;
        }
        let err = error_of(Implicit::argmin(&r, &w, &theta, IftOptions::default()).unwrap().jvp(&vec![1.0; p + extra]));
        dim(err, "tangent theta_dot", p, p + extra)?;
        // F of the wrong shape.
        let wrong = WrongShape { extra_rows: extra, columns: 1 };
        dim(error_of(Implicit::root(&wrong, &w, &theta, IftOptions::default())), "residual", n, n + extra)?;
        let wide = WrongShape { extra_rows: 0, columns: 2 };
        dim(error_of(Implicit::root(&wide, &w, &theta, IftOptions::default())), "residual", n, 2 * n)?;
        dim(error_of(Implicit::root(&Scalars(OneTooMany), &w, &theta, IftOptions::default())), "residual", n, n + 1)?;
        // θ not a column, in a solver node.
        let tape = Tape::new();
        let square = tape.mat_var(DMatrix::from_element(p, 2, 0.5));
        let err = error_of(implicit_node(Argmin(r.clone()), &square, must_not_run, IftOptions::default()));
        dim(err, "theta", 1, 2)?;
        // A forward solver returning x* of the wrong length for a scalar root problem.
        let tv = tape.vector_var(&theta);
        let solver = |t: &[f64]| Ok::<_, String>(vec![t[0]; n + extra]);
        let err = error_of(implicit_node(Root(Scalars(OneTooMany)), &tv, solver, IftOptions::default()));
        dim(err, "residual", n + extra, n + extra + 1)?;
    }
}

// =======================================================================================
// An inner solution that is not one
// =======================================================================================

proptest! {
    #![proptest_config(config(64))]

    /// x* off the solution by δ along a random direction: if ‖F(x*, θ)‖ exceeds
    /// `residual_tol`, the result is `NotAtSolution` carrying exactly that residual and
    /// that tolerance (users of other libraries get wrong-signed gradients here);
    /// otherwise derivatives are returned. Also through `implicit_node`, with a forward
    /// solver stopped early (a few gradient steps), before anything is recorded.
    #[test]
    fn unconverged_inner_solution_is_not_at_solution(
        n in 1usize..=10, p in 1usize..=5, seed in any::<u64>(),
        log_delta in -10.0f64..-1.0, log_tol in prop::sample::select(vec![-8.0, -6.0, -4.0]),
    ) {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta();
        let w = r.solve(&theta);
        let dir = Rng(seed ^ 1).vec(n, -1.0, 1.0);
        let off: Vec<f64> = w.iter().zip(&dir).map(|(a, d)| a + 10f64.powf(log_delta) * d).collect();
        let residual = norm(&r.f(&off, &theta));
        // F is evaluated by the library (on a tape) and here (plain f64): they agree to
        // rounding in F's terms, ~u·(‖XᵀX‖‖x‖ + ‖Xᵀy‖) ≲ 1e-14 for this data.
        let rounding = 1e-14;
        let tol = 10f64.powf(log_tol);
        let opts = IftOptions::default().residual_tol(tol);
        for result in [
            Implicit::argmin(&r, &off, &theta, opts.clone()).map(|i| i.forward_residual()),
            Implicit::root(&r, &off, &theta, opts.clone()).map(|i| i.forward_residual()),
        ] {
            match result {
                Err(ImplicitError::NotAtSolution { residual: got, tolerance }) => {
                    prop_assert!(residual > tol, "rejected a point with residual {:e} <= {:e}", residual, tol);
                    prop_assert!((got - residual).abs() <= rounding, "residual {:e} vs {:e}", got, residual);
                    prop_assert_eq!(tolerance, tol);
                }
                Ok(got) => {
                    prop_assert!(residual <= tol + rounding, "accepted a point with residual {:e} > {:e}", residual, tol);
                    prop_assert!((got - residual).abs() <= rounding);
                }
                Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
            }
        }

        // An early-stopped forward solver inside a node: three gradient-descent steps.
        let step = 1.0 / r.a(&theta).symmetric_eigenvalues().max();
        let early = |t: &[f64]| {
            let mut x = vec![0.0; n];
            for _ in 0..3 {
                let g = r.f(&x, t);
                x.iter_mut().zip(&g).for_each(|(xi, gi)| *xi -= step * gi);
            }
            Ok::<_, String>(x)
        };
        let stopped = early(&theta).unwrap();
        let residual = norm(&r.f(&stopped, &theta));
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let ops = tape.op_len();
        match implicit_node(Argmin(r.clone()), &tv, early, opts) {
            Err(ImplicitError::NotAtSolution { residual: got, tolerance }) => {
                prop_assert!((got - residual).abs() <= rounding);
                prop_assert_eq!(tolerance, tol);
                prop_assert_eq!(tape.op_len(), ops, "nothing recorded");
            }
            Ok(_) => prop_assert!(residual <= tol + rounding),
            Err(other) => return Err(TestCaseError::fail(format!("{other}"))),
        }
    }
}

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
    fn residual<M: MatOps>(&self, x: &M, theta: &M) -> M {
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
        let mut rng = Rng(seed);
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
    fn value<M: MatOps>(&self, x: &M, theta: &M) -> M::Scalar {
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
        let mut rng = Rng(seed);
        let z = zero.index(n);
        let mask = DMatrix::from_fn(n, 1, |j, _| if j == z { 0.0 } else { rng.unif(0.5, 2.0) });
        let proj = rng.mat(n, p, -1.0, 1.0);
        let problem = Degenerate { mask, proj: proj.clone() };
        let theta = rng.vec(p, -1.0, 1.0);
        let x = (&proj * col(&theta)).as_slice().to_vec();
        let lu = IftOptions::default().method(Method::Lu);
        let imp = Implicit::root(&problem, &x, &theta, lu).unwrap();
        prop_assert_eq!(imp.forward_residual(), 0.0);
        match error_of(imp.jvp(&unit(p, 0))) {
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
            let imp = Implicit::root(&problem, &x, &theta, IftOptions::default().method(method)).unwrap();
            let err = error_of(imp.vjp(&unit(n, z)));
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
        for method in [Method::Auto, Method::Cg] {
            let imp = Implicit::argmin(&s, &x, &theta, IftOptions::default().method(method)).unwrap();
            match error_of(imp.vjp(&x_bar)) {
                ImplicitError::Linear(SolveError::NegativeCurvature { method, iteration, curvature, report, .. }) => {
                    prop_assert_eq!(method, Method::Cg);
                    prop_assert_eq!(iteration, 0);
                    prop_assert!((curvature - s.d[k]).abs() <= 1e-12 * s.d[k].abs(), "curvature {:e} vs d_k {:e}", curvature, s.d[k]);
                    prop_assert!(!report.converged && report.residual_norm > report.tolerance);
                }
                other => return Err(TestCaseError::fail(format!("expected NegativeCurvature, got {other:?}"))),
            }
        }
        let chol = Implicit::argmin(&s, &x, &theta, IftOptions::default().method(Method::Cholesky)).unwrap();
        let err = error_of(chol.vjp(&x_bar));
        prop_assert!(matches!(err, ImplicitError::Linear(SolveError::NotPositiveDefinite { value, size, .. }) if value <= 0.0 && size == n), "{:?}", err);
        let expect = s.vjp(&x_bar);
        for method in [Method::Minres, Method::Lu] {
            let imp = Implicit::argmin(&s, &x, &theta, IftOptions::default().method(method)).unwrap();
            let (got, report) = imp.vjp(&x_bar).unwrap();
            prop_assert!(report.linear.converged);
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
    /// whose source downcasts to `ImplicitError::Linear(SolveError::NotConverged)` with the solve's report
    /// (iterations, residual above the tolerance, the tolerance asked for) and the last
    /// iterate; forward mode (`Tape::forward`) likewise with `rule: "jvp"`. No gradient
    /// is returned at all, so none can be mistaken for zero.
    #[test]
    fn backward_solve_failure_inside_a_tape_is_an_error_not_a_zero_gradient(
        n in 3usize..=10, p in 1usize..=5, seed in any::<u64>(),
    ) {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta();
        let starved = IftOptions::default().linear(SolveOptions::default().rtol(1e-10).max_iters(1));
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let solver = |t: &[f64]| Ok::<_, String>(r.solve(t));
        let (w, node) = implicit_node(Argmin(r.clone()), &tv, solver, starved).unwrap();
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
        prop_assert!(node.reports().is_empty(), "no report of a failed solve is kept as if it succeeded");
    }
}

/// A saddle inside a tape with the default (CG) options: the gradient call fails with the
/// `NegativeCurvature` error, carrying the curvature — not a gradient of a "minimum" that
/// is not one.
#[test]
fn saddle_inside_a_tape_is_an_error() {
    let s = Saddle::random(4, 2, 7, 1);
    let theta = [0.5, 0.6];
    let tape = Tape::new();
    let tv = tape.vector_var(&theta);
    let x_star = s.solution(&theta);
    let solver = |_: &[f64]| Ok::<_, String>(x_star.clone());
    let (x, _) = implicit_node(Argmin(s.clone()), &tv, solver, IftOptions::default()).unwrap();
    let err = tape.gradient(x.get(1, 0)).expect_err("an error");
    let AdError::CustomRule { source, .. } = err else {
        panic!("expected CustomRule, got {err:?}")
    };
    match source.downcast_ref::<ImplicitError>() {
        Some(ImplicitError::Linear(SolveError::NegativeCurvature { curvature, .. })) => {
            assert!((curvature - s.d[1]).abs() <= 1e-12 * s.d[1].abs())
        }
        other => panic!("expected NegativeCurvature, got {other:?}"),
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
    let failing = |_: &[f64]| Err::<Vec<f64>, _>("line search failed at iteration 12".to_string());
    match error_of(implicit_node(
        Argmin(r.clone()),
        &tv,
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
    let imp = Implicit::argmin(&r, &w, &theta, IftOptions::default())
        .unwrap()
        .with_factor(Factor::Lu(wrong));
    for err in [
        error_of(imp.vjp(&[1.0; 6])),
        error_of(imp.jvp(&[1.0, -1.0])),
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
