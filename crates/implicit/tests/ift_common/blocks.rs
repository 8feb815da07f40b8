//! Problem families with a matrix solution and 2–3 parameter blocks of random shapes.
//!
//! - [`MatRidge`]: X (d x k) minimizes ½‖A X − Y‖²/m + ½ Σ exp(P) ∘ X², with Y = B + R
//!   (blocks [P (d x k), R (m x k)]) or Y = B + r q (blocks [P, r (m x 1), q (1 x k)]);
//!   the same condition written by hand as a root; closed-form forward solve, column by
//!   column.
//! - [`BatchDeq`]: Z (n x k, a batch) = tanh(W Z + U X + b 1ᵀ) with blocks [W, U] or
//!   [W, U, b] (‖W‖_F ≤ 0.5, so the map is a contraction); solved by iteration.

use ad_core::MatOps;
use implicit::{FixedPointMap, Objective, RootCondition, Shapes};
use nalgebra::{DMatrix, DVector};

use super::harness::SplitMix;

/// Matrix ridge regression with a per-entry penalty (see the module docs).
#[derive(Clone, Debug)]
pub struct MatRidge {
    pub a: DMatrix<f64>,
    pub b: DMatrix<f64>,
    pub k: usize,
    /// 2: blocks [P, R]; 3: blocks [P, r, q].
    pub blocks: usize,
}

impl MatRidge {
    pub fn random(d: usize, k: usize, blocks: usize, seed: u64) -> MatRidge {
        let mut rng = SplitMix::new(seed ^ 0xB10C);
        let m = d + 3;
        MatRidge {
            a: rng.mat(m, d, -1.0, 1.0),
            b: rng.mat(m, k, -1.0, 1.0),
            k,
            blocks,
        }
    }
    pub fn shapes(&self) -> Shapes {
        let (m, d) = self.a.shape();
        let theta = if self.blocks == 2 {
            vec![(d, self.k), (m, self.k)]
        } else {
            vec![(d, self.k), (m, 1), (1, self.k)]
        };
        Shapes {
            x: (d, self.k),
            theta,
        }
    }
    pub fn theta(&self, seed: u64) -> Vec<DMatrix<f64>> {
        let mut rng = SplitMix::new(seed ^ 0x7E7A);
        self.shapes()
            .theta
            .iter()
            .map(|&(r, c)| rng.mat(r, c, -1.0, 1.0))
            .collect()
    }
    fn targets<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        let b = x.constant_like(self.b.clone());
        if self.blocks == 2 {
            b.add(&theta[1])
        } else {
            b.add(&theta[1].matmul(&theta[2]))
        }
    }
    /// Closed form: (AᵀA/m + diag exp(P_:j)) x_j = Aᵀ y_j / m, column by column.
    pub fn solve(&self, theta: &[DMatrix<f64>]) -> DMatrix<f64> {
        let m = self.a.nrows() as f64;
        let y = self.targets(&self.b, theta);
        let gram = self.a.transpose() * &self.a / m;
        let rhs = self.a.transpose() * y / m;
        let mut x = DMatrix::zeros(self.a.ncols(), self.k);
        for j in 0..self.k {
            let pen =
                DVector::from_iterator(self.a.ncols(), theta[0].column(j).iter().map(|v| v.exp()));
            let sys = &gram + DMatrix::from_diagonal(&pen);
            let col = sys
                .cholesky()
                .expect("SPD")
                .solve(&rhs.column(j).into_owned());
            x.set_column(j, &col);
        }
        x
    }
}

impl Objective for MatRidge {
    fn value<M: MatOps>(&self, x: &M, theta: &[M]) -> M::Scalar {
        let r = x
            .constant_like(self.a.clone())
            .matmul(x)
            .sub(&self.targets(x, theta));
        r.sq_norm() * (0.5 / self.a.nrows() as f64)
            + theta[0].exp().mul_elem(&x.square()).sum() * 0.5
    }
}

/// The same optimality condition written by hand: F = Aᵀ(A X − Y)/m + exp(P) ∘ X.
#[derive(Clone, Debug)]
pub struct MatRidgeRoot(pub MatRidge);

impl RootCondition for MatRidgeRoot {
    fn residual<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        let a = x.constant_like(self.0.a.clone());
        let r = a.matmul(x).sub(&self.0.targets(x, theta));
        a.transpose()
            .matmul(&r)
            .scale_f64(1.0 / self.0.a.nrows() as f64)
            .add(&theta[0].exp().mul_elem(x))
    }
}

/// A batched equilibrium layer (see the module docs).
#[derive(Clone, Debug)]
pub struct BatchDeq {
    /// The batch of inputs (m x k), data.
    pub input: DMatrix<f64>,
    pub n: usize,
    /// 2: blocks [W, U]; 3: blocks [W, U, b].
    pub blocks: usize,
}

impl BatchDeq {
    pub fn random(n: usize, m: usize, k: usize, blocks: usize, seed: u64) -> BatchDeq {
        BatchDeq {
            input: SplitMix::new(seed ^ 0xDE0).mat(m, k, -1.0, 1.0),
            n,
            blocks,
        }
    }
    pub fn shapes(&self) -> Shapes {
        let m = self.input.nrows();
        let mut theta = vec![(self.n, self.n), (self.n, m)];
        if self.blocks == 3 {
            theta.push((self.n, 1));
        }
        Shapes {
            x: (self.n, self.input.ncols()),
            theta,
        }
    }
    /// W with ‖W‖_F = `w_norm` (≤ 0.5 keeps the map a contraction under FD steps).
    pub fn theta(&self, seed: u64, w_norm: f64) -> Vec<DMatrix<f64>> {
        let mut rng = SplitMix::new(seed ^ 0x7E7B);
        let w = rng.mat(self.n, self.n, -1.0, 1.0);
        let scale = w_norm / w.norm().max(1e-300);
        let mut theta = vec![w * scale, rng.mat(self.n, self.input.nrows(), -1.0, 1.0)];
        if self.blocks == 3 {
            theta.push(rng.mat(self.n, 1, -0.5, 0.5));
        }
        theta
    }
    /// Iterate to a step of 1e-15 (error ≤ q/(1 − q) times that, q ≤ 0.5).
    pub fn solve(&self, theta: &[DMatrix<f64>]) -> DMatrix<f64> {
        let mut z = DMatrix::zeros(self.n, self.input.ncols());
        for _ in 0..2000 {
            let next = self.map(&z, theta);
            let step = (&next - &z).norm();
            z = next;
            if step <= 1e-15 {
                return z;
            }
        }
        panic!("fixed-point iteration did not converge");
    }
}

impl FixedPointMap for BatchDeq {
    fn map<M: MatOps>(&self, z: &M, theta: &[M]) -> M {
        let pre = theta[0]
            .matmul(z)
            .add(&theta[1].matmul(&z.constant_like(self.input.clone())));
        let pre = if self.blocks == 3 {
            pre.add_col(&theta[2])
        } else {
            pre
        };
        pre.tanh()
    }
}
