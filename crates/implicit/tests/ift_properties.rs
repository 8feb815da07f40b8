//! Executable specification of the implicit function theorem (`Implicit`, `implicit_node`,
//! `implicit_scalar_node`, the unrolled baseline). Read this file to learn what is
//! guaranteed; every property runs over random problem instances (seeded data, sizes
//! n = dim x in 1..=12, p = dim θ in 1..=5):
//!
//! 1. **Finite differences.** The implicit JVP, VJP and Jacobian of x*(θ) agree with
//!    central differences of *re-solving* the inner problem at θ ± h·e_k, for four kinds
//!    of problem: ridge regression (closed form, scalar or per-feature λ), logistic
//!    regression with an L2 penalty (Newton), a nonsymmetric root
//!    F(x, θ) = A x + tanh(x)·s(θ) − b(θ) (Newton) and a contractive fixed point
//!    z = tanh(W z + U θ + c) (iteration).
//! 2. **Dot-product test.** `<vjp(u), v> == <u, jvp(v)>` up to the bound the linear-solve
//!    tolerance implies, and `jacobian()` equals the stacked JVPs.
//! 3. **Ridge hypergradient** equals the closed form to 1e-8 relative.
//! 4. **Argmin = root.** Writing F = ∇ₓL by hand as a `RootCondition` gives the same
//!    Jacobian as the `Objective`, for every linear method (CG, MINRES, GMRES, BiCGSTAB,
//!    LU, Cholesky). A factorization supplied by the caller (`with_factor`) gives the same
//!    answers without materializing or factoring A: one product with A per solve (the
//!    check of its true residual). A factorization made by `Lu` / `Cholesky` is made once.
//! 5. **Unrolled → implicit.** Differentiating through T gradient-descent steps converges
//!    to the implicit gradient as T grows, inside the O(T q^T) envelope of gradient
//!    descent, and is below 1e-6 relative for T = 1024; the on-tape and the replayed
//!    unrolled forms agree to rounding.
//! 6. **Solver as a tape node.** `implicit_node` / `implicit_scalar_node` inside a larger
//!    computation (θ computed from other variables, a loss downstream of x*) give the
//!    gradient of the whole pipeline in reverse mode (`Tape::gradient`) and its tangent in
//!    forward mode (`Tape::forward`).
//!
//! Bad input is specified in `ift_errors.rs`.
//!
//! Run with `--nocapture` to see the worst agreement measured for each property.
//!
//! Tolerances are derived, never tuned: see the comments at `FD_STEP`, `dot_product_bound`
//! and in each test.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;

use ad_core::{AdError, MatOps, Real, ScalarFn, Seeds, Tape, Unary, Var, grad, hessian};
use implicit::linear::{DenseCholesky, DenseLu, Method};
use implicit::unrolled::{IterationMap, unroll_on_tape, unrolled_gradient_descent};
use implicit::{
    Argmin, ArgminHessian, Factor, FixedPoint, FixedPointMap, IftOptions, Implicit, ImplicitError,
    Linearization, Objective, RecordedRoot, Root, RootCondition, ScalarObjective,
    ScalarRootCondition, Scalars, implicit_node, implicit_scalar_node,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

// =======================================================================================
// Harness: run a property over random cases and print the worst measured agreement.
// =======================================================================================

/// Run `property` on `cases` random values of `strategy` (or `PROPTEST_CASES`); it returns
/// named measurements (errors), whose worst values are printed (see them with
/// `--nocapture`). Failing cases are saved next to this file, as with `proptest!`.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<Vec<(&'static str, f64)>, TestCaseError>,
) where
    S::Value: Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let worst: RefCell<BTreeMap<&'static str, f64>> = RefCell::new(BTreeMap::new());
    let result = TestRunner::new(config).run(&strategy, |value| {
        for (key, v) in property(value)? {
            let mut w = worst.borrow_mut();
            let e = w.entry(key).or_insert(0.0);
            *e = e.max(v);
        }
        Ok(())
    });
    eprintln!("{name}: worst over {cases} cases: {:?}", worst.borrow());
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Sizes and a seed: n = dim x, p = dim θ.
fn sizes() -> impl Strategy<Value = (usize, usize, u64)> {
    (1usize..=12, 1usize..=5, any::<u64>())
}

/// SplitMix64: the instance data comes from the case's seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unif(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.unif(lo, hi)).collect()
    }
    fn mat(&mut self, r: usize, c: usize, lo: f64, hi: f64) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |_, _| self.unif(lo, hi))
    }
}

/// `?` for library errors inside a property: the error's message fails the case.
trait OrFail<T> {
    fn or_fail(self) -> Result<T, TestCaseError>;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self) -> Result<T, TestCaseError> {
        self.map_err(|e| TestCaseError::fail(format!("unexpected error: {e}")))
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn diff_norm(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// ‖a − b‖ / ‖b‖ (0 when both vanish).
fn rel(a: &[f64], b: &[f64]) -> f64 {
    let d = diff_norm(a, b);
    if d == 0.0 { 0.0 } else { d / norm(b) }
}

fn col(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

fn unit(n: usize, k: usize) -> Vec<f64> {
    let mut e = vec![0.0; n];
    e[k] = 1.0;
    e
}

/// Column j of x has λ from θ_{j mod p}: p = 1 is one λ for all features, p = n one per
/// feature; `groups · θ` is the per-feature λ as an `n x 1` column.
fn groups(n: usize, p: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, p, |j, k| if j % p == k { 1.0 } else { 0.0 })
}

/// Rescale a design matrix so that ‖X‖₂² / m ≤ 4: with λ ≥ 0.5 this keeps every inner
/// problem's Hessian in [0.5, 6], condition number ≤ 12 (the tolerances below use it).
fn design(rng: &mut Rng, m: usize, n: usize) -> DMatrix<f64> {
    let mut x = rng.mat(m, n, -1.7, 1.7);
    let s = x.singular_values().max();
    let cap = (4.0 * m as f64).sqrt();
    if s > cap {
        x *= cap / s;
    }
    x
}

// =======================================================================================
// Problem families, each with an accurate forward solve
// =======================================================================================

/// Ridge regression, λ = groups·θ:
/// L(w, θ) = ‖X w − y‖² / 2m + ½ Σⱼ λⱼ wⱼ², solved in closed form by Cholesky.
#[derive(Clone, Debug)]
struct Ridge {
    x: DMatrix<f64>,
    y: DMatrix<f64>,
    g: DMatrix<f64>,
    xv: DMatrix<f64>,
    yv: DMatrix<f64>,
}

impl Ridge {
    fn random(n: usize, p: usize, seed: u64) -> Ridge {
        let mut rng = Rng::new(seed);
        let (m, mv) = (n + 8, n + 5);
        let w_true = rng.mat(n, 1, -1.0, 1.0);
        let x = design(&mut rng, m, n);
        let y = &x * &w_true + rng.mat(m, 1, -0.3, 0.3);
        let xv = design(&mut rng, mv, n);
        let yv = &xv * &w_true + rng.mat(mv, 1, -0.3, 0.3);
        Ridge {
            x,
            y,
            g: groups(n, p),
            xv,
            yv,
        }
    }
    fn theta(&self, seed: u64) -> Vec<f64> {
        Rng::new(seed ^ 0xA5A5).vec(self.g.ncols(), 0.5, 2.0)
    }
    fn m(&self) -> f64 {
        self.x.nrows() as f64
    }
    fn lam(&self, theta: &[f64]) -> DVector<f64> {
        &self.g * DVector::from_column_slice(theta)
    }
    /// A(θ) = XᵀX/m + diag(λ): the Hessian, also ∂F/∂x of the root form.
    fn a(&self, theta: &[f64]) -> DMatrix<f64> {
        self.x.transpose() * &self.x / self.m() + DMatrix::from_diagonal(&self.lam(theta))
    }
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        let b = self.x.transpose() * &self.y / self.m();
        let w = self.a(theta).cholesky().unwrap().solve(&b);
        w.as_slice().to_vec()
    }
    /// dw*/dθ = −A⁻¹ diag(w*) G, in closed form.
    fn jacobian(&self, theta: &[f64]) -> DMatrix<f64> {
        let w = DVector::from_vec(self.solve(theta));
        let b = DMatrix::from_diagonal(&w) * &self.g;
        -self.a(theta).cholesky().unwrap().solve(&b)
    }
    fn val_loss<M: MatOps>(&self, w: &M) -> M::Scalar {
        let r = w
            .constant_like(self.xv.clone())
            .matmul(w)
            .sub(&w.constant_like(self.yv.clone()));
        r.sq_norm() / (2.0 * self.xv.nrows() as f64)
    }
    fn val_grad(&self, w: &[f64]) -> Vec<f64> {
        let r = &self.xv * col(w) - &self.yv;
        (self.xv.transpose() * r / self.xv.nrows() as f64)
            .as_slice()
            .to_vec()
    }
    /// The hypergradient of the validation loss, in closed form: (dw*/dθ)ᵀ ∇L_val(w*).
    fn hypergradient(&self, theta: &[f64]) -> Vec<f64> {
        let g = self.val_grad(&self.solve(theta));
        (self.jacobian(theta).transpose() * col(&g))
            .as_slice()
            .to_vec()
    }
    /// ∇ₓL written with matrix ops (the root form and the gradient-descent step share it).
    fn gradient<M: MatOps>(&self, w: &M, theta: &M) -> M {
        let x = w.constant_like(self.x.clone());
        let r = x.matmul(w).sub(&w.constant_like(self.y.clone()));
        let lam = w.constant_like(self.g.clone()).matmul(theta);
        x.transpose()
            .matmul(&r)
            .scale_f64(1.0 / self.m())
            .add(&lam.mul_elem(w))
    }
}

impl Objective for Ridge {
    fn value<M: MatOps>(&self, w: &M, theta: &M) -> M::Scalar {
        let r = w
            .constant_like(self.x.clone())
            .matmul(w)
            .sub(&w.constant_like(self.y.clone()));
        let lam = w.constant_like(self.g.clone()).matmul(theta);
        r.sq_norm() / (2.0 * self.m()) + lam.dot(&w.square()) * 0.5
    }
}

/// F = ∇ₓL written by hand: the same problem as a root.
impl RootCondition for Ridge {
    fn residual<M: MatOps>(&self, w: &M, theta: &M) -> M {
        self.gradient(w, theta)
    }
}

/// Logistic regression with an L2 penalty per feature group, written with scalars:
/// L(w, θ) = (1/m) Σᵢ [softplus(zᵢ) − yᵢ zᵢ] + ½ Σⱼ θ_{j mod p} wⱼ², z = X w.
#[derive(Clone, Debug)]
struct Logistic {
    x: DMatrix<f64>,
    y: Vec<f64>,
    p: usize,
}

impl Logistic {
    fn random(n: usize, p: usize, seed: u64) -> Logistic {
        let mut rng = Rng::new(seed);
        let m = n + 10;
        let x = design(&mut rng, m, n);
        let w_true = rng.mat(n, 1, -2.0, 2.0);
        let z = &x * &w_true;
        let y = (0..m)
            .map(|i| {
                let prob = 1.0 / (1.0 + (-z[i]).exp());
                if rng.unif(0.0, 1.0) < prob { 1.0 } else { 0.0 }
            })
            .collect();
        Logistic { x, y, p }
    }
    fn theta(&self, seed: u64) -> Vec<f64> {
        Rng::new(seed ^ 0x5A5A).vec(self.p, 0.5, 2.0)
    }
    fn z<S: Real>(&self, w: &[S], i: usize) -> S {
        (0..w.len()).map(|j| w[j] * self.x[(i, j)]).sum::<S>()
    }

    /// Newton with exact derivatives from ad-core (`grad`, `hessian`) and a backtracking
    /// line search, until ‖∇L‖ ≤ 1e-13, then two more steps: Newton converges
    /// quadratically, so those put w at the rounding floor (‖∇L‖ ~ 1e-16).
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        let f = AtTheta(self, theta);
        let n = self.x.ncols();
        let mut w = vec![0.0; n];
        let mut extra = 0;
        for _ in 0..100 {
            let g = grad(&f, &w).unwrap();
            if norm(&g) <= 1e-13 {
                extra += 1;
                if extra > 2 {
                    return w;
                }
            }
            let h = hessian(&f, &w).unwrap();
            let step = h.cholesky().unwrap().solve(&DVector::from_vec(g.clone()));
            let f0 = f.eval(&w);
            let slope = dot(&g, step.as_slice());
            let mut t = 1.0;
            loop {
                let trial: Vec<f64> = w.iter().zip(step.iter()).map(|(a, s)| a - t * s).collect();
                if norm(&g) < 1e-6 || f.eval(&trial) <= f0 - 1e-4 * t * slope || t < 1e-6 {
                    w = trial;
                    break;
                }
                t *= 0.5;
            }
        }
        panic!("Newton did not converge on the logistic problem");
    }
}

/// L(·, θ) at fixed θ, as an ad-core function for `grad` / `hessian`.
struct AtTheta<'a>(&'a Logistic, &'a [f64]);

impl ScalarFn for AtTheta<'_> {
    fn eval<S: Real>(&self, w: &[S]) -> S {
        let theta: Vec<S> = self.1.iter().map(|&t| S::from_f64(t)).collect();
        self.0.value(w, &theta)
    }
}

impl ScalarObjective for Logistic {
    fn value<S: Real>(&self, w: &[S], theta: &[S]) -> S {
        let m = self.x.nrows();
        let data = (0..m)
            .map(|i| {
                let z = self.z(w, i);
                z.softplus() - z * self.y[i]
            })
            .sum::<S>()
            / m as f64;
        let penalty = (0..w.len())
            .map(|j| theta[j % self.p] * w[j].square())
            .sum::<S>();
        data + penalty * 0.5
    }
}

/// F = ∇ₓL by hand: (1/m) Σᵢ (σ(zᵢ) − yᵢ) Xᵢ + λ ⊙ w.
impl ScalarRootCondition for Logistic {
    fn residual<S: Real>(&self, w: &[S], theta: &[S]) -> Vec<S> {
        let m = self.x.nrows();
        let r: Vec<S> = (0..m).map(|i| self.z(w, i).sigmoid() - self.y[i]).collect();
        (0..w.len())
            .map(|j| {
                (0..m).map(|i| r[i] * self.x[(i, j)]).sum::<S>() / m as f64
                    + theta[j % self.p] * w[j]
            })
            .collect()
    }
}

/// A nonsymmetric root problem: F(x, θ) = A x + tanh(x) ⊙ s(θ) − b(θ) with
/// s(θ) = 2σ(E θ) ∈ (0, 2), b(θ) = D θ + b₀, and A = 3I + R/n (‖R/n‖ ≤ 1). The symmetric
/// part of ∂F/∂x = A + diag(s ⊙ sech²x) is ≥ 2I, so the root is unique and every Jacobian
/// is well conditioned (‖·‖ ≤ 6, smallest singular value ≥ 2).
#[derive(Clone, Debug)]
struct TanhRoot {
    a: DMatrix<f64>,
    e: DMatrix<f64>,
    d: DMatrix<f64>,
    b0: DMatrix<f64>,
}

impl TanhRoot {
    fn random(n: usize, p: usize, seed: u64) -> TanhRoot {
        let mut rng = Rng::new(seed);
        let r = rng.mat(n, n, -1.0, 1.0) / n as f64;
        TanhRoot {
            a: DMatrix::identity(n, n) * 3.0 + r,
            e: rng.mat(n, p, -1.0, 1.0),
            d: rng.mat(n, p, -2.0, 2.0),
            b0: rng.mat(n, 1, -1.0, 1.0),
        }
    }
    fn theta(&self, seed: u64) -> Vec<f64> {
        Rng::new(seed ^ 0x3C3C).vec(self.e.ncols(), -1.0, 1.0)
    }
    fn f(&self, x: &[f64], theta: &[f64]) -> DVector<f64> {
        let r = self.residual(&col(x), &col(theta));
        DVector::from_column_slice(r.as_slice())
    }
    /// ∂F/∂x, by hand (what a Newton solver has at the end: see `with_factor`).
    fn jac_x(&self, x: &[f64], theta: &[f64]) -> DMatrix<f64> {
        let s = (&self.e * col(theta)).map(|v| 2.0 / (1.0 + (-v).exp()));
        let diag = DVector::from_fn(x.len(), |i, _| s[i] * (1.0 - x[i].tanh().powi(2)));
        &self.a + DMatrix::from_diagonal(&diag)
    }
    /// Damped Newton until ‖F‖ ≤ 1e-13, then two more steps (rounding floor, see Logistic).
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        let n = self.a.nrows();
        let mut x = vec![0.0; n];
        let mut extra = 0;
        for _ in 0..100 {
            let f = self.f(&x, theta);
            let fnorm = f.norm();
            if fnorm <= 1e-13 {
                extra += 1;
                if extra > 2 {
                    return x;
                }
            }
            let step = self.jac_x(&x, theta).lu().solve(&f).unwrap();
            let mut t = 1.0;
            loop {
                let trial: Vec<f64> = x.iter().zip(step.iter()).map(|(a, s)| a - t * s).collect();
                if fnorm < 1e-6
                    || self.f(&trial, theta).norm() <= (1.0 - 0.5 * t) * fnorm
                    || t < 1e-6
                {
                    x = trial;
                    break;
                }
                t *= 0.5;
            }
        }
        panic!("Newton did not converge on the tanh root problem");
    }
}

impl RootCondition for TanhRoot {
    fn residual<M: MatOps>(&self, x: &M, theta: &M) -> M {
        let s = x
            .constant_like(self.e.clone())
            .matmul(theta)
            .sigmoid()
            .scale_f64(2.0);
        let b = x
            .constant_like(self.d.clone())
            .matmul(theta)
            .add(&x.constant_like(self.b0.clone()));
        x.constant_like(self.a.clone())
            .matmul(x)
            .add(&x.tanh().mul_elem(&s))
            .sub(&b)
    }
}

/// A contractive fixed point z = tanh(W z + U θ + c) with ‖W‖₂ ≤ ‖W‖_F = 0.5.
#[derive(Clone, Debug)]
struct Deq {
    w: DMatrix<f64>,
    u: DMatrix<f64>,
    c: DMatrix<f64>,
}

impl Deq {
    fn random(n: usize, p: usize, seed: u64) -> Deq {
        let mut rng = Rng::new(seed);
        let r = rng.mat(n, n, -1.0, 1.0);
        let scale = 0.5 / r.norm().max(1e-300);
        Deq {
            w: r * scale,
            u: rng.mat(n, p, -1.0, 1.0),
            c: rng.mat(n, 1, -0.5, 0.5),
        }
    }
    fn theta(&self, seed: u64) -> Vec<f64> {
        Rng::new(seed ^ 0x6969).vec(self.u.ncols(), -1.0, 1.0)
    }
    /// Fixed-point iteration until ‖z_{k+1} − z_k‖ ≤ 1e-15 (error ≤ q/(1 − q) times that
    /// step, q ≤ 0.5), i.e. to 1e-14 and in practice to the rounding floor.
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        let t = col(theta);
        let mut z = DMatrix::zeros(self.w.nrows(), 1);
        for _ in 0..1000 {
            let next = self.map(&z, &t);
            let step = (&next - &z).norm();
            z = next;
            if step <= 1e-15 {
                return z.as_slice().to_vec();
            }
        }
        panic!("fixed-point iteration did not converge");
    }
}

impl FixedPointMap for Deq {
    fn map<M: MatOps>(&self, z: &M, theta: &M) -> M {
        z.constant_like(self.w.clone())
            .matmul(z)
            .add(&z.constant_like(self.u.clone()).matmul(theta))
            .add(&z.constant_like(self.c.clone()))
            .tanh()
    }
}

// =======================================================================================
// One interface over the four families
// =======================================================================================

/// Implicit derivatives at one solution, whatever the linearization.
trait Derivs {
    fn vjp(&self, u: &[f64]) -> Result<Vec<f64>, ImplicitError>;
    fn jvp(&self, v: &[f64]) -> Result<Vec<f64>, ImplicitError>;
    fn jacobian(&self) -> Result<DMatrix<f64>, ImplicitError>;
    /// A = ∂F/∂x and B = ∂F/∂θ materialized from the linearization's products.
    fn blocks(&self) -> (DMatrix<f64>, DMatrix<f64>);
}

impl<L: Linearization> Derivs for Implicit<L> {
    fn vjp(&self, u: &[f64]) -> Result<Vec<f64>, ImplicitError> {
        Implicit::vjp(self, u).map(|(t, _)| t)
    }
    fn jvp(&self, v: &[f64]) -> Result<Vec<f64>, ImplicitError> {
        Implicit::jvp(self, v).map(|(x, _)| x)
    }
    fn jacobian(&self) -> Result<DMatrix<f64>, ImplicitError> {
        Implicit::jacobian(self)
    }
    fn blocks(&self) -> (DMatrix<f64>, DMatrix<f64>) {
        let lin = self.linearization();
        let (n, p) = lin.dims();
        let mut a = DMatrix::zeros(n, n);
        for j in 0..n {
            a.set_column(j, &DVector::from_vec(lin.a_mul(&unit(n, j)).unwrap()));
        }
        let mut b = DMatrix::zeros(n, p);
        for k in 0..p {
            b.set_column(k, &DVector::from_vec(lin.b_mul(&unit(p, k)).unwrap()));
        }
        (a, b)
    }
}

/// A random instance with an accurate forward solve.
trait Family: Debug {
    fn theta(&self) -> Vec<f64>;
    fn solve(&self, theta: &[f64]) -> Vec<f64>;
    fn implicit(
        &self,
        x: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Box<dyn Derivs + '_>, ImplicitError>;
}

#[derive(Debug)]
struct Inst<T> {
    problem: T,
    seed: u64,
}

impl Family for Inst<Ridge> {
    fn theta(&self) -> Vec<f64> {
        self.problem.theta(self.seed)
    }
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        self.problem.solve(theta)
    }
    fn implicit(
        &self,
        x: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Box<dyn Derivs + '_>, ImplicitError> {
        Ok(Box::new(Implicit::argmin(
            &self.problem,
            x,
            theta,
            options,
        )?))
    }
}

impl Family for Inst<Scalars<Logistic>> {
    fn theta(&self) -> Vec<f64> {
        self.problem.0.theta(self.seed)
    }
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        self.problem.0.solve(theta)
    }
    fn implicit(
        &self,
        x: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Box<dyn Derivs + '_>, ImplicitError> {
        Ok(Box::new(Implicit::argmin(
            &self.problem,
            x,
            theta,
            options,
        )?))
    }
}

impl Family for Inst<TanhRoot> {
    fn theta(&self) -> Vec<f64> {
        self.problem.theta(self.seed)
    }
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        self.problem.solve(theta)
    }
    fn implicit(
        &self,
        x: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Box<dyn Derivs + '_>, ImplicitError> {
        Ok(Box::new(Implicit::root(&self.problem, x, theta, options)?))
    }
}

impl Family for Inst<Deq> {
    fn theta(&self) -> Vec<f64> {
        self.problem.theta(self.seed)
    }
    fn solve(&self, theta: &[f64]) -> Vec<f64> {
        self.problem.solve(theta)
    }
    fn implicit(
        &self,
        x: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Box<dyn Derivs + '_>, ImplicitError> {
        Ok(Box::new(Implicit::fixed_point(
            &self.problem,
            x,
            theta,
            options,
        )?))
    }
}

fn family(kind: usize, n: usize, p: usize, seed: u64) -> Box<dyn Family> {
    match kind {
        0 => Box::new(Inst {
            problem: Ridge::random(n, p, seed),
            seed,
        }),
        1 => Box::new(Inst {
            problem: Scalars(Logistic::random(n, p, seed)),
            seed,
        }),
        2 => Box::new(Inst {
            problem: TanhRoot::random(n, p, seed),
            seed,
        }),
        _ => Box::new(Inst {
            problem: Deq::random(n, p, seed),
            seed,
        }),
    }
}

// =======================================================================================
// 1. Implicit derivatives = finite differences of re-solving
// =======================================================================================

/// Finite-difference step and tolerances. The central difference of the re-solved x* has
/// error
///   ‖(x̃(θ+h e) − x̃(θ−h e)) / 2h − ∂x*/∂θ·e‖ ≤ h² M₃ / 6 + ε / h,
/// where M₃ bounds the third derivative of x*(θ) along e and ε the forward-solve error.
/// - The first term is relative to the size of the derivative: the families are built
///   uniformly well conditioned (strong monotonicity μ ≥ 0.5, Lipschitz constant ≤ 6,
///   θ-dependence of unit size), so M₃ ≲ 6‖∂x*/∂θ‖/μ² ≈ 24‖∂x*/∂θ‖ (ridge:
///   x⁽ᵏ⁾ = k!(−A⁻¹D)ᵏx, the others alike); with h = 1e-5 that is ≲ 4e-10 relative.
///   `FD_TOL` = 1e-8 leaves a factor of 25.
/// - The second is absolute: the forward solves reach ε ≤ 1e-14 (closed form: κ·u ≈ 1e-15;
///   Newton and the fixed-point iteration run to the rounding floor, see their `solve`),
///   hence `FD_ABS` = ε/h = 1e-9 per unit direction. It matters only where ∂x*/∂θ is tiny
///   (x* ≈ 0, saturated tanh), where relative agreement cannot be resolved by FD.
///
/// So an FD comparison of a map of Frobenius norm ‖J‖ along k unit directions allows
/// FD_TOL·‖J‖ + FD_ABS·√k, i.e. FD_TOL × `fd_scale(‖J‖, k)`; the tests report the error
/// divided by that scale (measured worst case: about 2e-10, also over 1000 cases per family).
const FD_STEP: f64 = 1e-5;
const FD_TOL: f64 = 1e-8;
const FD_ABS: f64 = 1e-9;

/// See `FD_STEP`: the scale an FD error of a map of norm `size` along `k` unit directions
/// is measured against.
fn fd_scale(size: f64, k: usize) -> f64 {
    size + (k as f64).sqrt() * FD_ABS / FD_TOL
}

/// Central-difference Jacobian of the re-solved x*(θ), one column per θ_k (2p solves).
fn fd_jacobian(solve: &dyn Fn(&[f64]) -> Vec<f64>, theta: &[f64], h: f64) -> DMatrix<f64> {
    let x0 = solve(theta);
    let mut jac = DMatrix::zeros(x0.len(), theta.len());
    for k in 0..theta.len() {
        let mut tp = theta.to_vec();
        let mut tm = theta.to_vec();
        tp[k] += h;
        tm[k] -= h;
        let (xp, xm) = (solve(&tp), solve(&tm));
        for i in 0..x0.len() {
            jac[(i, k)] = (xp[i] - xm[i]) / (2.0 * h);
        }
    }
    jac
}

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
    let mut rng = Rng::new(seed ^ 0xF00D);
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

/// What the linear-solve tolerance implies for the dot-product test. The VJP solves
/// Aᵀw = u to a residual r₁ and the JVP solves A y = −B v to a residual r₂, each with
/// ‖rᵢ‖ ≤ max(rtol‖rhs‖, atol). Then
///   <vjp(u), v> − <u, jvp(v)> = r₁ᵀ A⁻¹ B v + uᵀ A⁻¹ r₂,
/// so the gap is at most ‖A⁻¹‖ (‖r₁‖ ‖Bv‖ + ‖u‖ ‖r₂‖) ≤ 2 rtol ‖A⁻¹‖ ‖u‖ ‖Bv‖ (+ atol
/// terms), plus rounding in the products (a few ulps of ‖u‖ ‖A⁻¹‖ ‖B‖ ‖v‖ per entry).
/// Relative to ‖u‖ ‖J‖ ‖v‖ that is ≤ 2 rtol κ(A) ≈ 2.4e-9 for rtol = 1e-10, κ ≤ 12.
fn dot_product_bound(
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    u: &[f64],
    v: &[f64],
    opts: &IftOptions,
) -> f64 {
    let a_inv = 1.0 / a.clone().singular_values().min();
    let bv = (b * col(v)).norm();
    let (rtol, atol) = (opts.linear.rtol, opts.linear.atol);
    let solves = a_inv * ((rtol * norm(u) + atol) * bv + norm(u) * (rtol * bv + atol));
    let rounding = 1e3 * f64::EPSILON * a_inv * norm(u) * b.norm() * norm(v);
    solves + rounding
}

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
        let mut rng = Rng::new(seed ^ 0xD07);
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
/// (default options: CG, rtol 1e-10) and through `implicit_node` on a tape, equals the closed
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
        let imp = Implicit::argmin(&r, &w, &theta, IftOptions::default()).or_fail()?;
        let (hg, report) = imp.vjp(&r.val_grad(&w)).or_fail()?;
        prop_assert!(report.linear.converged && report.linear.method == Method::Cg);
        let e_vjp = rel(&hg, &expect);
        prop_assert!(
            e_vjp <= 1e-8,
            "implicit {hg:?} vs closed form {expect:?}: {e_vjp:.3e}"
        );
        drop(imp);

        // The same through the tape: θ → w*(θ) (one node) → validation loss.
        let tape = Tape::new();
        let tv = tape.vector_var(&theta);
        let solver = |t: &[f64]| Ok::<_, std::convert::Infallible>(r.solve(t));
        let (wv, node) =
            implicit_node(Argmin(r.clone()), &tv, solver, IftOptions::default()).or_fail()?;
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
                    let argmin = Implicit::argmin(&r, &w, &theta, opts.clone()).or_fail()?;
                    jacs.push((format!("argmin {m}"), argmin.jacobian().or_fail()?));
                    drop(argmin);
                    let root = Implicit::root(&r, &w, &theta, opts).or_fail()?;
                    jacs.push((format!("root {m}"), root.jacobian().or_fail()?));
                }
                compare(jacs, &r.jacobian(&theta))?;
            } else {
                let l = Scalars(Logistic::random(n, p, seed));
                let theta = l.0.theta(seed);
                let w = l.0.solve(&theta);
                let lu = IftOptions::default().method(Method::Lu);
                let reference = Implicit::argmin(&l, &w, &theta, lu)
                    .or_fail()?
                    .jacobian()
                    .or_fail()?;
                let mut jacs = Vec::new();
                for m in METHODS {
                    let opts = IftOptions::default().method(m);
                    let argmin = Implicit::argmin(&l, &w, &theta, opts.clone()).or_fail()?;
                    jacs.push((format!("argmin {m}"), argmin.jacobian().or_fail()?));
                    drop(argmin);
                    let root = Implicit::root(&l, &w, &theta, opts).or_fail()?;
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
}

impl<L> Counting<L> {
    fn new(inner: L) -> Self {
        Counting {
            inner,
            a_products: Cell::new(0),
            b_products: Cell::new(0),
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
    let before = imp.linearization().a_products.get();
    let (vjp, rv) = imp.vjp(u).or_fail()?;
    let (jvp, rj) = imp.jvp(v).or_fail()?;
    let jac = imp.jacobian().or_fail()?;
    let (n, p) = imp.dims();
    Ok(Cost {
        vjp,
        jvp,
        jac,
        products: imp.linearization().a_products.get() - before,
        solves: 2 + n.min(p),
        matvecs: rv.linear.matvecs.max(rj.linear.matvecs),
        iterations: rv.linear.iterations.max(rj.linear.iterations),
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
            let mut rng = Rng::new(seed ^ 0xFAC);
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
                            let lin = Counting::new(RecordedRoot::new(&r, &w, &theta).or_fail()?);
                            let imp = Implicit::from_linearization(lin, no_estimate.clone())
                                .or_fail()?
                                .with_factor(factor.clone());
                            derivatives_and_cost(&imp, &u, &v)?
                        } else {
                            let lin = Counting::new(ArgminHessian::new(&r, &w, &theta).or_fail()?);
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
                let krylov = Implicit::root(&t, &x, &theta, IftOptions::default()).or_fail()?;
                let jac0 = krylov.jacobian().or_fail()?;
                drop(krylov);
                let lin = Counting::new(RecordedRoot::new(&t, &x, &theta).or_fail()?);
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
            let lin = Counting::new(ArgminHessian::new(&r, &w, &theta).or_fail()?);
            let imp = Implicit::from_linearization(
                lin,
                IftOptions::default().method(m).estimate_error(false),
            )
            .or_fail()?;
            let (_, first) = imp.jvp(&unit(p, 0)).or_fail()?;
            prop_assert_eq!(
                first.linear.matvecs,
                n,
                "{}: materializing A costs n products",
                m
            );
            let after_factor = imp.linearization().a_products.get();
            prop_assert_eq!(after_factor, n);
            imp.jacobian().or_fail()?;
            imp.vjp(&unit(n, 0)).or_fail()?;
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

// =======================================================================================
// 5. The unrolled gradient converges to the implicit one
// =======================================================================================

/// Rounding left in the unrolled hypergradient: each of the T steps adds rounding of order
/// κ·u, so after T = 1024 steps (κ ≤ 12) it is ~1024 · 12 · 1.1e-16 ≈ 1.4e-12 relative.
const ROUNDING_FLOOR: f64 = 1e-11;

/// One gradient-descent step on the ridge objective, x ← x − η ∇ₓL(x, θ).
struct GdStep<'a> {
    ridge: &'a Ridge,
    eta: f64,
}

impl IterationMap for GdStep<'_> {
    fn step<M: MatOps>(&self, x: &M, theta: &M) -> M {
        x.sub(&self.ridge.gradient(x, theta).scale_f64(self.eta))
    }
}

/// Differentiating through T steps of gradient descent (η = 1/L, from x₀ = 0) on ridge
/// regression, the hypergradient converges to the implicit one (= the closed form) as T
/// grows, within the convergence envelope of gradient descent, and is below 1e-6 relative
/// for T = 1024. Both unrolled forms — recorded on the tape (`unroll_on_tape`) and replayed
/// with second-order products (`unrolled_gradient_descent(..).vjp`) — give the same
/// numbers (1e-12 relative: they differ only in rounding).
///
/// The envelope. With Q = I − ηA (eigenvalues in [0, q], q = 1 − μ/L = 1 − 1/κ) and
/// x₀ = 0, x_T = x* − Qᵀx*, so the Jacobian error is
///   E_T e_k = −(∂Qᵀ/∂θ_k) x* − Qᵀ J* e_k,  ∂Qᵀ/∂θ_k = −η Σⱼ Qʲ D_k Q^{T−1−j},
/// hence ‖E_T‖_F ≤ √p η T q^{T−1} ‖x*‖ + q^T ‖J*‖_F; the hypergradient error
/// E_Tᵀ g_T + J*ᵀ(g_T − g*) (g = ∇L_val, at x_T or x*) is then at most
///   ‖E_T‖_F ‖g_T‖ + ‖J*‖ ‖H_val‖ q^T ‖x*‖.
/// This is O(T q^T): it decreases for T > κ — the error itself may wobble (it is a sum of
/// such terms with both signs, seen to grow from T = 8 to 16 on some instances) but never
/// leaves the envelope — and for T = 1024 ≥ 85κ it is far below 1e-6.
#[test]
fn unrolled_gradient_converges_to_implicit_gradient() {
    check("unrolled", 64, sizes(), |(n, p, seed)| {
        let r = Ridge::random(n, p, seed);
        let theta = r.theta(seed);
        let eig = r.a(&theta).symmetric_eigenvalues();
        let (mu, big_l) = (eig.min(), eig.max());
        let (eta, kappa) = (1.0 / big_l, big_l / mu);
        let q = 1.0 - mu / big_l;
        let w = r.solve(&theta);
        let (j_star, expect) = (r.jacobian(&theta), r.hypergradient(&theta));
        let h_val = (r.xv.transpose() * &r.xv / r.xv.nrows() as f64)
            .symmetric_eigenvalues()
            .max();
        let implicit = Implicit::argmin(&r, &w, &theta, IftOptions::default())
            .or_fail()?
            .vjp(&r.val_grad(&w))
            .or_fail()?
            .0;
        prop_assert!(rel(&implicit, &expect) <= 1e-8);
        let x0 = vec![0.0; n];
        let mut errors = Vec::new();
        let mut worst_forms = 0.0f64;
        let mut worst_envelope = 0.0f64;
        let mut last_gradient = Vec::new();
        for t in (0..=10).map(|k| 1usize << k) {
            let tape = Tape::new();
            let tv = tape.vector_var(&theta);
            let x_t = unroll_on_tape(&GdStep { ridge: &r, eta }, &x0, &tv, t);
            let on_tape = tape.gradient(r.val_loss(&x_t)).or_fail()?.wrt_mat(&tv);
            let x_t = x_t.value();
            drop(tape);
            let gd = unrolled_gradient_descent(&r, &x0, &theta, eta, t).or_fail()?;
            prop_assert!(rel(&gd.x, x_t.as_slice()) <= 1e-12);
            let g_t = r.val_grad(&gd.x);
            let replayed = gd.vjp(&r, &theta, eta, &g_t).or_fail()?;
            let forms = rel(on_tape.as_slice(), &replayed);
            worst_forms = worst_forms.max(forms);
            prop_assert!(
                forms <= 1e-12,
                "T = {t}: tape {on_tape} vs replay {replayed:?}: {forms:.3e}"
            );

            let tf = t as f64;
            let e_jac = (p as f64).sqrt() * eta * tf * q.powf(tf - 1.0) * norm(&w)
                + q.powf(tf) * j_star.norm();
            let envelope = e_jac * norm(&g_t) + j_star.norm() * h_val * q.powf(tf) * norm(&w);
            let error = diff_norm(&replayed, &expect);
            let allowed = envelope + ROUNDING_FLOOR * norm(&expect);
            worst_envelope = worst_envelope.max(error / allowed);
            prop_assert!(
                error <= allowed,
                "T = {t}: error {error:.3e} outside the envelope {envelope:.3e} (κ = {kappa:.1})"
            );
            errors.push((t, error / norm(&expect)));
            last_gradient = replayed;
        }
        let last = errors.last().unwrap().1;
        prop_assert!(
            last <= 1e-6,
            "T = 1024: {last:.3e} (κ = {kappa:.1}): {errors:?}"
        );
        let vs_implicit = rel(&last_gradient, &implicit);
        prop_assert!(
            vs_implicit <= 1e-6,
            "T = 1024 vs implicit VJP: {vs_implicit:.3e}"
        );
        Ok(vec![
            ("tape vs replay", worst_forms),
            ("error / envelope", worst_envelope),
            ("T=1 vs closed form", errors[0].1),
            ("T=16 vs closed form", errors[4].1),
            ("T=128 vs closed form", errors[7].1),
            ("T=1024 vs closed form", last),
            ("T=1024 vs implicit", vs_implicit),
            ("kappa", kappa),
        ])
    });
}

// =======================================================================================
// 6. A solver as one node of a larger tape computation
// =======================================================================================

/// θ = c + ½ tanh(M φ) from inputs φ (q x 1), then x*(θ) by a solver node, then
/// loss = ½‖x*‖² + (K x*)·θ + Σ sin(x*): θ reaches the loss both through x* and directly.
#[derive(Clone, Debug)]
struct Pipeline {
    m: DMatrix<f64>,
    c: DMatrix<f64>,
    k: DMatrix<f64>,
}

impl Pipeline {
    fn random(n: usize, p: usize, q: usize, seed: u64) -> Pipeline {
        let mut rng = Rng::new(seed ^ 0xBEEF);
        Pipeline {
            m: rng.mat(p, q, -1.0, 1.0),
            c: rng.mat(p, 1, -0.5, 0.5),
            k: rng.mat(p, n, -1.0, 1.0),
        }
    }
    fn encode<M: MatOps>(&self, phi: &M) -> M {
        phi.constant_like(self.m.clone())
            .matmul(phi)
            .tanh()
            .scale_f64(0.5)
            .add(&phi.constant_like(self.c.clone()))
    }
    fn head<M: MatOps>(&self, x: &M, theta: &M) -> M::Scalar {
        x.sq_norm() * 0.5
            + x.constant_like(self.k.clone()).matmul(x).dot(theta)
            + x.unary(Unary::Sin).sum()
    }
}

/// A pipeline in plain f64: inputs ↦ (x*, loss), re-solving its inner problem.
type Rerun<'a> = &'a dyn Fn(&[f64]) -> (Vec<f64>, f64);

/// Central differences of a pipeline that re-solves its inner problem: the gradient of the
/// loss and the Jacobian of x* (2·dim runs).
fn fd_pipeline(run: Rerun<'_>, at: &[f64], h: f64) -> (Vec<f64>, DMatrix<f64>) {
    let n = run(at).0.len();
    let mut grad = vec![0.0; at.len()];
    let mut jac = DMatrix::zeros(n, at.len());
    for i in 0..at.len() {
        let (mut a, mut b) = (at.to_vec(), at.to_vec());
        a[i] += h;
        b[i] -= h;
        let ((xa, la), (xb, lb)) = (run(&a), run(&b));
        grad[i] = (la - lb) / (2.0 * h);
        for r in 0..n {
            jac[(r, i)] = (xa[r] - xb[r]) / (2.0 * h);
        }
    }
    (grad, jac)
}

/// What a tape gave for a pipeline with one solver node, and what to compare it with.
struct PipelineRun {
    /// ∇loss with respect to the inputs (reverse mode).
    grad: Vec<f64>,
    /// The adjoint x̄ = ∂loss/∂x* (reverse mode).
    x_bar: Vec<f64>,
    /// The loss tangent along `dir` (forward mode).
    loss_dot: f64,
    /// The tangents of x* and of θ along `dir` (forward mode).
    x_dot: Vec<f64>,
    theta_dot: Vec<f64>,
}

/// The checks shared by both pipelines, given the derivatives the tape gave, the blocks
/// A, B of the inner problem at (x*, θ), and central differences of re-running the
/// pipeline:
/// - reverse mode vs FD: ‖∇loss − fd‖ ≤ FD_TOL·(‖∇loss‖ + ‖x̄‖ S), the scale of the
///   FD error: it enters through x*, whose FD Jacobian J_fd (q input directions) is
///   accurate to FD_TOL·S, S = `fd_scale(‖J_fd‖, q)`;
/// - forward vs reverse: `loss_dot − ∇loss·d` is exactly the dot-product gap of the solver
///   node, `<x̄, jvp(θ̇)> − <vjp(x̄), θ̇>` (the rest of the tape is exact), so it must be
///   within `dot_product_bound(A, B, x̄, θ̇)`;
/// - the tangent of x* vs FD: ‖ẋ − J_fd d‖ ≤ FD_TOL S ‖d‖.
fn check_pipeline(
    run: &PipelineRun,
    dir: &[f64],
    (a, b): (DMatrix<f64>, DMatrix<f64>),
    (fd, fd_x): (Vec<f64>, DMatrix<f64>),
) -> Result<Vec<(&'static str, f64)>, TestCaseError> {
    let s = fd_scale(fd_x.norm(), dir.len());
    let scale = norm(&run.grad) + norm(&run.x_bar) * s;
    let e_grad = diff_norm(&run.grad, &fd) / scale;
    prop_assert!(
        e_grad <= FD_TOL,
        "gradient {:?} vs FD {fd:?}: {e_grad:.3e}",
        run.grad
    );

    let gap = (run.loss_dot - dot(&run.grad, dir)).abs();
    let rounding = 1e-14 * (run.loss_dot.abs() + norm(&run.grad) * norm(dir));
    let bound =
        dot_product_bound(&a, &b, &run.x_bar, &run.theta_dot, &IftOptions::default()) + rounding;
    prop_assert!(
        gap <= bound,
        "forward {:e} vs reverse {:e}: gap {gap:.3e} > bound {bound:.3e}",
        run.loss_dot,
        dot(&run.grad, dir)
    );

    let fd_xdot = &fd_x * col(dir);
    let e_xdot = diff_norm(&run.x_dot, fd_xdot.as_slice()) / (s * norm(dir));
    prop_assert!(
        e_xdot <= FD_TOL,
        "x tangent {:?} vs FD {fd_xdot}: {e_xdot:.3e}",
        run.x_dot
    );
    Ok(vec![
        ("gradient vs FD", e_grad),
        ("forward vs reverse / bound", gap / bound),
        ("x tangent vs FD", e_xdot),
    ])
}

/// `implicit_node` (θ an `p x 1` matrix variable computed from inputs φ) inside a tape,
/// with the nonsymmetric root (kind 0) or the fixed point (kind 1) as inner problem:
/// reverse mode (`Tape::gradient`) gives the gradient of the whole pipeline (finite
/// differences of re-running it, re-solving each time), forward mode (`Tape::forward`,
/// the node's JVP rule) gives its tangent, consistent with reverse mode, and the tangent of
/// x* (see `check_pipeline`). Each mode costs the node one linear solve.
#[test]
fn implicit_node_in_a_pipeline_backpropagates_and_supports_forward_mode() {
    let strategy = (0usize..2, sizes(), 1usize..=3);
    check(
        "implicit_node pipeline",
        64,
        strategy,
        |(kind, (n, p, seed), q)| {
            let pipe = Pipeline::random(n, p, q, seed);
            let phi0 = Rng::new(seed ^ 0x1234).vec(q, -1.0, 1.0);
            let dir = Rng::new(seed ^ 0x4321).vec(q, -1.0, 1.0);
            let troot = TanhRoot::random(n, p, seed);
            let deq = Deq::random(n, p, seed);
            let solve = |t: &[f64]| {
                if kind == 0 {
                    troot.solve(t)
                } else {
                    deq.solve(t)
                }
            };

            let tape = Tape::new();
            let phi = tape.vector_var(&phi0);
            let theta = pipe.encode(&phi);
            let forward_solver = |t: &[f64]| Ok::<_, std::convert::Infallible>(solve(t));
            let opts = IftOptions::default();
            let (x, node) = if kind == 0 {
                implicit_node(Root(troot.clone()), &theta, forward_solver, opts)
            } else {
                implicit_node(FixedPoint(deq.clone()), &theta, forward_solver, opts)
            }
            .or_fail()?;
            let loss = pipe.head(&x, &theta);
            let adjoints = tape.gradient(loss).or_fail()?;
            let tangents = tape.forward(&Seeds::new().mat(&phi, col(&dir))).or_fail()?;
            let run = PipelineRun {
                grad: adjoints.wrt_mat(&phi).as_slice().to_vec(),
                x_bar: adjoints.wrt_mat(&x).as_slice().to_vec(),
                loss_dot: tangents.of(loss),
                x_dot: tangents.of_mat(&x).as_slice().to_vec(),
                theta_dot: tangents.of_mat(&theta).as_slice().to_vec(),
            };
            let (x_star, theta_star) = (x.value(), theta.value());
            drop(tape);
            prop_assert_eq!(node.reports().len(), 2, "one VJP and one JVP solve");

            let (xs, ts) = (x_star.as_slice(), theta_star.as_slice());
            let blocks = if kind == 0 {
                Implicit::root(&troot, xs, ts, IftOptions::default())
                    .or_fail()?
                    .blocks()
            } else {
                Implicit::fixed_point(&deq, xs, ts, IftOptions::default())
                    .or_fail()?
                    .blocks()
            };
            let rerun = |ph: &[f64]| {
                let theta = pipe.encode(&col(ph));
                let x = solve(theta.as_slice());
                let loss = pipe.head(&col(&x), &theta);
                (x, loss)
            };
            check_pipeline(&run, &dir, blocks, fd_pipeline(&rerun, &phi0, FD_STEP))
        },
    );
}

/// `implicit_scalar_node` (θ as scalar `Var`s computed from other variables) with an argmin
/// inner problem (logistic regression, λ_k = 1.25 + ½ sin(a_k b + k)), in a pipeline whose
/// loss also uses θ and b directly: the same guarantees as `implicit_node`, with forward
/// mode seeded by `Seeds::vars`.
#[test]
fn implicit_scalar_node_in_a_pipeline_backpropagates_and_supports_forward_mode() {
    check(
        "implicit_scalar_node pipeline",
        64,
        sizes(),
        |(n, p, seed)| {
            let logistic = Logistic::random(n, p, seed);
            let mut rng = Rng::new(seed ^ 0x777);
            let inputs0 = rng.vec(p + 1, -1.0, 1.0);
            let dir = rng.vec(p + 1, -1.0, 1.0);
            let c = rng.vec(n, -1.0, 1.0);
            fn encode<S: Real>(inputs: &[S]) -> Vec<S> {
                let (a, b) = inputs.split_at(inputs.len() - 1);
                a.iter()
                    .enumerate()
                    .map(|(k, &ak)| (ak * b[0] + k as f64).sin() * 0.5 + 1.25)
                    .collect()
            }
            fn head<S: Real>(x: &[S], theta: &[S], b: S, c: &[f64]) -> S {
                let lin: S = x.iter().zip(c).map(|(&xi, &ci)| xi * ci).sum();
                let sq: S = x.iter().map(|&xi| xi.square()).sum();
                lin + sq * theta[0] + b * x[0]
            }

            let tape = Tape::new();
            let inputs = tape.vars(&inputs0);
            let theta = encode(&inputs);
            let solver = |t: &[f64]| Ok::<_, std::convert::Infallible>(logistic.solve(t));
            let problem = Argmin(Scalars(logistic.clone()));
            let (x, node) =
                implicit_scalar_node(problem, &theta, solver, IftOptions::default()).or_fail()?;
            let loss: Var = head(&x, &theta, inputs[p], &c);
            let adjoints = tape.gradient(loss).or_fail()?;
            let tangents = tape.forward(&Seeds::new().vars(&inputs, &dir)).or_fail()?;
            let run = PipelineRun {
                grad: adjoints.wrt_all(&inputs),
                x_bar: adjoints.wrt_all(&x),
                loss_dot: tangents.of(loss),
                x_dot: tangents.of_all(&x),
                theta_dot: tangents.of_all(&theta),
            };
            let x_star: Vec<f64> = x.iter().map(|v| v.value_f64()).collect();
            let theta_star: Vec<f64> = theta.iter().map(|v| v.value_f64()).collect();
            drop(tape);
            prop_assert_eq!(node.reports().len(), 2);

            let l = Scalars(logistic.clone());
            let blocks = Implicit::argmin(&l, &x_star, &theta_star, IftOptions::default())
                .or_fail()?
                .blocks();
            let rerun = |ins: &[f64]| {
                let theta = encode(ins);
                let x = logistic.solve(&theta);
                let loss = head(&x, &theta, ins[p], &c);
                (x, loss)
            };
            check_pipeline(&run, &dir, blocks, fd_pipeline(&rerun, &inputs0, FD_STEP))
        },
    );
}
