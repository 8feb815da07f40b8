//! Four problem families with accurate forward solves, behind one interface.

use super::harness::*;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;

use ad_core::{AdError, MatOps, Real, ScalarFn, Seeds, Tape, Unary, Var, grad, hessian};
use implicit::linear::{DenseCholesky, DenseLu, Method};
use implicit::unrolled::{unroll_on_tape, unrolled_gradient_descent};
use implicit::{
    Argmin, ArgminHessian, Backward, Factor, FixedPoint, FixedPointMap, IftOptions, Implicit,
    ImplicitError, Linearization, Objective, RecordedRoot, Root, RootCondition, ScalarObjective,
    ScalarRootCondition, Scalars, Shapes, implicit_node, implicit_scalar_node,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

// =======================================================================================
// Problem families, each with an accurate forward solve
// =======================================================================================

/// Ridge regression, λ = groups·θ:
/// L(w, θ) = ‖X w − y‖² / 2m + ½ Σⱼ λⱼ wⱼ², solved in closed form by Cholesky.
#[derive(Clone, Debug)]
pub struct Ridge {
    pub x: DMatrix<f64>,
    pub y: DMatrix<f64>,
    pub g: DMatrix<f64>,
    pub xv: DMatrix<f64>,
    pub yv: DMatrix<f64>,
}

impl Ridge {
    pub fn random(n: usize, p: usize, seed: u64) -> Ridge {
        let mut rng = SplitMix::new(seed);
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
    pub fn theta(&self, seed: u64) -> Vec<f64> {
        SplitMix::new(seed ^ 0xA5A5).vec(self.g.ncols(), 0.5, 2.0)
    }
    pub fn m(&self) -> f64 {
        self.x.nrows() as f64
    }
    pub fn lam(&self, theta: &[f64]) -> DVector<f64> {
        &self.g * DVector::from_column_slice(theta)
    }
    /// A(θ) = XᵀX/m + diag(λ): the Hessian, also ∂F/∂x of the root form.
    pub fn a(&self, theta: &[f64]) -> DMatrix<f64> {
        self.x.transpose() * &self.x / self.m() + DMatrix::from_diagonal(&self.lam(theta))
    }
    pub fn solve(&self, theta: &[f64]) -> Vec<f64> {
        let b = self.x.transpose() * &self.y / self.m();
        let w = self.a(theta).cholesky().unwrap().solve(&b);
        w.as_slice().to_vec()
    }
    /// dw*/dθ = −A⁻¹ diag(w*) G, in closed form.
    pub fn jacobian(&self, theta: &[f64]) -> DMatrix<f64> {
        let w = DVector::from_vec(self.solve(theta));
        let b = DMatrix::from_diagonal(&w) * &self.g;
        -self.a(theta).cholesky().unwrap().solve(&b)
    }
    pub fn val_loss<M: MatOps>(&self, w: &M) -> M::Scalar {
        let r = w
            .constant_like(self.xv.clone())
            .matmul(w)
            .sub(&w.constant_like(self.yv.clone()));
        r.sq_norm() / (2.0 * self.xv.nrows() as f64)
    }
    pub fn val_grad(&self, w: &[f64]) -> Vec<f64> {
        let r = &self.xv * col(w) - &self.yv;
        (self.xv.transpose() * r / self.xv.nrows() as f64)
            .as_slice()
            .to_vec()
    }
    /// The hypergradient of the validation loss, in closed form: (dw*/dθ)ᵀ ∇L_val(w*).
    pub fn hypergradient(&self, theta: &[f64]) -> Vec<f64> {
        let g = self.val_grad(&self.solve(theta));
        (self.jacobian(theta).transpose() * col(&g))
            .as_slice()
            .to_vec()
    }
    /// ∇ₓL written with matrix ops (the root form and the gradient-descent step share it).
    pub fn gradient<M: MatOps>(&self, w: &M, theta: &M) -> M {
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
    fn value<M: MatOps>(&self, w: &M, theta: &[M]) -> M::Scalar {
        let theta = &theta[0];
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
    fn residual<M: MatOps>(&self, w: &M, theta: &[M]) -> M {
        let theta = &theta[0];
        self.gradient(w, theta)
    }
}

/// Logistic regression with an L2 penalty per feature group, written with scalars:
/// L(w, θ) = (1/m) Σᵢ [softplus(zᵢ) − yᵢ zᵢ] + ½ Σⱼ θ_{j mod p} wⱼ², z = X w.
#[derive(Clone, Debug)]
pub struct Logistic {
    pub x: DMatrix<f64>,
    pub y: Vec<f64>,
    pub p: usize,
}

impl Logistic {
    pub fn random(n: usize, p: usize, seed: u64) -> Logistic {
        let mut rng = SplitMix::new(seed);
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
    pub fn theta(&self, seed: u64) -> Vec<f64> {
        SplitMix::new(seed ^ 0x5A5A).vec(self.p, 0.5, 2.0)
    }
    pub fn z<S: Real>(&self, w: &[S], i: usize) -> S {
        (0..w.len()).map(|j| w[j] * self.x[(i, j)]).sum::<S>()
    }

    /// Newton with exact derivatives from ad-core (`grad`, `hessian`) and a backtracking
    /// line search, until ‖∇L‖ ≤ 1e-13, then two more steps: Newton converges
    /// quadratically, so those put w at the rounding floor (‖∇L‖ ~ 1e-16).
    pub fn solve(&self, theta: &[f64]) -> Vec<f64> {
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
pub struct AtTheta<'a>(&'a Logistic, &'a [f64]);

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
pub struct TanhRoot {
    pub a: DMatrix<f64>,
    pub e: DMatrix<f64>,
    pub d: DMatrix<f64>,
    pub b0: DMatrix<f64>,
}

impl TanhRoot {
    pub fn random(n: usize, p: usize, seed: u64) -> TanhRoot {
        let mut rng = SplitMix::new(seed);
        let r = rng.mat(n, n, -1.0, 1.0) / n as f64;
        TanhRoot {
            a: DMatrix::identity(n, n) * 3.0 + r,
            e: rng.mat(n, p, -1.0, 1.0),
            d: rng.mat(n, p, -2.0, 2.0),
            b0: rng.mat(n, 1, -1.0, 1.0),
        }
    }
    pub fn theta(&self, seed: u64) -> Vec<f64> {
        SplitMix::new(seed ^ 0x3C3C).vec(self.e.ncols(), -1.0, 1.0)
    }
    pub fn f(&self, x: &[f64], theta: &[f64]) -> DVector<f64> {
        let r = self.residual(&col(x), &[col(theta)]);
        DVector::from_column_slice(r.as_slice())
    }
    /// ∂F/∂x, by hand (what a Newton solver has at the end: see `with_factor`).
    pub fn jac_x(&self, x: &[f64], theta: &[f64]) -> DMatrix<f64> {
        let s = (&self.e * col(theta)).map(|v| 2.0 / (1.0 + (-v).exp()));
        let diag = DVector::from_fn(x.len(), |i, _| s[i] * (1.0 - x[i].tanh().powi(2)));
        &self.a + DMatrix::from_diagonal(&diag)
    }
    /// Damped Newton until ‖F‖ ≤ 1e-13, then two more steps (rounding floor, see Logistic).
    pub fn solve(&self, theta: &[f64]) -> Vec<f64> {
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
    fn residual<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        let theta = &theta[0];
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
pub struct Deq {
    pub w: DMatrix<f64>,
    pub u: DMatrix<f64>,
    pub c: DMatrix<f64>,
}

impl Deq {
    pub fn random(n: usize, p: usize, seed: u64) -> Deq {
        let mut rng = SplitMix::new(seed);
        let r = rng.mat(n, n, -1.0, 1.0);
        let scale = 0.5 / r.norm().max(1e-300);
        Deq {
            w: r * scale,
            u: rng.mat(n, p, -1.0, 1.0),
            c: rng.mat(n, 1, -0.5, 0.5),
        }
    }
    pub fn theta(&self, seed: u64) -> Vec<f64> {
        SplitMix::new(seed ^ 0x6969).vec(self.u.ncols(), -1.0, 1.0)
    }
    /// Fixed-point iteration until ‖z_{k+1} − z_k‖ ≤ 1e-15 (error ≤ q/(1 − q) times that
    /// step, q ≤ 0.5), i.e. to 1e-14 and in practice to the rounding floor.
    pub fn solve(&self, theta: &[f64]) -> Vec<f64> {
        let t = col(theta);
        let mut z = DMatrix::zeros(self.w.nrows(), 1);
        for _ in 0..1000 {
            let next = self.map(&z, std::slice::from_ref(&t));
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
    fn map<M: MatOps>(&self, z: &M, theta: &[M]) -> M {
        let theta = &theta[0];
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
pub trait Derivs {
    fn vjp(&self, u: &[f64]) -> Result<Vec<f64>, ImplicitError>;
    fn jvp(&self, v: &[f64]) -> Result<Vec<f64>, ImplicitError>;
    fn jacobian(&self) -> Result<DMatrix<f64>, ImplicitError>;
    /// A = ∂F/∂x and B = ∂F/∂θ materialized from the linearization's products.
    fn blocks(&self) -> (DMatrix<f64>, DMatrix<f64>);
}

impl<L: Linearization> Derivs for Implicit<L> {
    fn vjp(&self, u: &[f64]) -> Result<Vec<f64>, ImplicitError> {
        Implicit::vjp_flat(self, u).map(|(t, _)| t)
    }
    fn jvp(&self, v: &[f64]) -> Result<Vec<f64>, ImplicitError> {
        Implicit::jvp_flat(self, v).map(|(x, _)| x)
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
pub trait Family: Debug {
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
pub struct Inst<T> {
    pub problem: T,
    pub seed: u64,
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
        Ok(Box::new(Implicit::argmin_vec(
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
        Ok(Box::new(Implicit::argmin_vec(
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
        Ok(Box::new(Implicit::root_vec(
            &self.problem,
            x,
            theta,
            options,
        )?))
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
        Ok(Box::new(Implicit::fixed_point_vec(
            &self.problem,
            x,
            theta,
            options,
        )?))
    }
}

pub fn family(kind: usize, n: usize, p: usize, seed: u64) -> Box<dyn Family> {
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
