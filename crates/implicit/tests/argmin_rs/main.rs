//! argmin integration: argmin's L-BFGS and Newton-CG on ad-core functions, the matrix-free
//! Hessian operator, and implicit differentiation of the solutions they return.
//!
//! The seeded test problems and helpers live here; the tests are grouped by job in the
//! modules below.

mod adapters;
mod failures;
mod hessian;
mod implicit_diff;
mod solvers;

use ad_core::{MatOps, Real, ScalarFn};
use implicit::solvers::argmin_rs::{Differentiable, ObjectiveAt};
use implicit::{Objective, ScalarObjective};
use nalgebra::{DMatrix, DVector};

// ---------------------------------------------------------------------------------------
// Seeded data and the test problems
// ---------------------------------------------------------------------------------------

/// SplitMix64: a small seeded generator, so the data do not depend on any crate version.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// Features `a` (m x d) and labels `y` in {-1, +1} from a noisy linear teacher.
fn classification(m: usize, d: usize, seed: u64) -> (DMatrix<f64>, DMatrix<f64>) {
    let mut rng = Rng(seed);
    let teacher: Vec<f64> = (0..d).map(|_| 2.0 * rng.uniform()).collect();
    let a = DMatrix::from_fn(m, d, |_, _| rng.uniform());
    let y = DMatrix::from_fn(m, 1, |i, _| {
        let s: f64 = (0..d).map(|j| a[(i, j)] * teacher[j]).sum::<f64>() + 0.5 * rng.uniform();
        if s >= 0.0 { 1.0 } else { -1.0 }
    });
    (a, y)
}

/// Logistic regression with one L2 hyperparameter per feature:
/// L(x, θ) = mean_i softplus(−y_i a_iᵀx) + ½ Σ_j exp(θ_j) x_j².
/// Strongly convex in x with modulus at least min_j exp(θ_j).
#[derive(Clone, Debug)]
struct Logistic {
    a: DMatrix<f64>,
    y: DMatrix<f64>,
}

impl Logistic {
    fn new(m: usize, d: usize, seed: u64) -> Self {
        let (a, y) = classification(m, d, seed);
        Logistic { a, y }
    }
    /// The data term alone (also the validation loss).
    fn data_loss<M: MatOps>(&self, x: &M) -> M::Scalar {
        let a = x.constant_like(self.a.clone());
        let y = x.constant_like(self.y.clone());
        a.matmul(x).mul_elem(&y).neg().softplus().mean()
    }
}

impl Objective for Logistic {
    fn value<M: MatOps>(&self, x: &M, theta: &[M]) -> M::Scalar {
        self.data_loss(x) + theta[0].exp().mul_elem(&x.square()).sum() * 0.5
    }
}

/// The same objective written with scalars (an independent code path: `Dual<Var>` instead
/// of `DualMat<MatVar>`).
#[derive(Clone, Debug)]
struct LogisticScalar(Logistic);

impl ScalarObjective for LogisticScalar {
    fn value<S: Real>(&self, x: &[S], theta: &[S]) -> S {
        let (a, y) = (&self.0.a, &self.0.y);
        let m = a.nrows();
        let mut data = S::from_f64(0.0);
        for i in 0..m {
            let mut z = S::from_f64(0.0);
            for (j, &xj) in x.iter().enumerate() {
                z += xj * a[(i, j)];
            }
            data += (z * (-y[(i, 0)])).softplus();
        }
        let mut reg = S::from_f64(0.0);
        for (xj, tj) in x.iter().zip(theta) {
            reg += tj.exp() * xj.square();
        }
        data * (1.0 / m as f64) + reg * 0.5
    }
}

/// x ↦ L(x, θ) for the scalar version, as an ad-core `ScalarFn` (for `ad_core::hessian`).
struct AtThetaFn<'a> {
    objective: &'a LogisticScalar,
    theta: Vec<f64>,
}

impl ScalarFn for AtThetaFn<'_> {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let t: Vec<S> = self.theta.iter().map(|&v| S::from_f64(v)).collect();
        self.objective.value(x, &t)
    }
}

/// Ridge regression with per-feature L2: L(x, θ) = ½ mean (a_iᵀx − b_i)² + ½ Σ exp(θ_j) x_j².
#[derive(Clone, Debug)]
struct Ridge {
    a: DMatrix<f64>,
    b: DMatrix<f64>,
}

impl Objective for Ridge {
    fn value<M: MatOps>(&self, x: &M, theta: &[M]) -> M::Scalar {
        let a = x.constant_like(self.a.clone());
        let b = x.constant_like(self.b.clone());
        a.matmul(x).sub(&b).square().mean() * 0.5 + theta[0].exp().mul_elem(&x.square()).sum() * 0.5
    }
}

impl Ridge {
    fn closed_form(&self, theta: &[f64]) -> DVector<f64> {
        let m = self.a.nrows() as f64;
        let h = self.a.transpose() * &self.a / m
            + DMatrix::from_diagonal(&DVector::from_iterator(
                theta.len(),
                theta.iter().map(|t| t.exp()),
            ));
        let rhs = self.a.transpose() * &self.b / m;
        h.cholesky().unwrap().solve(&rhs).column(0).into_owned()
    }
}

const D: usize = 5;

fn theta0() -> Vec<f64> {
    [0.5f64, 0.2, 1.0, 0.1, 0.3]
        .iter()
        .map(|v| v.ln())
        .collect()
}

/// Strong-convexity modulus guaranteed by the regularizer: min_j exp(θ_j).
fn mu(theta: &[f64]) -> f64 {
    theta.iter().map(|t| t.exp()).fold(f64::INFINITY, f64::min)
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

fn dist(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

fn value_at(obj: &impl Objective, x: &[f64], theta: &[f64]) -> f64 {
    ObjectiveAt::new(obj, theta).unwrap().value(x).unwrap()
}

fn grad_at(obj: &impl Objective, x: &[f64], theta: &[f64]) -> Vec<f64> {
    ObjectiveAt::new(obj, theta)
        .unwrap()
        .value_and_grad(x)
        .unwrap()
        .1
}
