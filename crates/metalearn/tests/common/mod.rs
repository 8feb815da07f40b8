//! Shared helpers of metalearn's tests: small random networks and tasks, and an
//! independent MAML meta-loss written against `MatOps` (the inner gradient by hand, so the
//! whole inner loop is on the tape).

#![allow(dead_code)]

use ad_core::nn::{Activation, Init, Mlp, mse};
use ad_core::{MatFn, MatOps};
use metalearn::{Sinusoid, Task, TaskDistribution};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A 1-h-1 tanh network (smooth, so finite differences apply) with Xavier parameters.
pub fn small_mlp(hidden: usize, seed: u64) -> (Mlp, Vec<f64>) {
    let mlp = Mlp::new(&[1, hidden, 1], Activation::Tanh, Activation::Identity);
    let mut theta = mlp.init(Init::XavierUniform, seed);
    // non-zero biases, so no symmetry hides a wrong term
    let n = theta.len();
    for (i, t) in theta.iter_mut().enumerate() {
        *t += 0.1 * ((i as f64 + seed as f64) * 0.77).sin() / (n as f64).sqrt();
    }
    (mlp, theta)
}

/// A sinusoid task with `k` support and `k` query points.
pub fn sinusoid_task(seed: u64, k: usize) -> Task {
    Sinusoid::default()
        .sample(&mut StdRng::seed_from_u64(seed), k, k)
        .unwrap()
}

/// The MAML meta-loss of one task, `L_query(phi_k(theta))`, for a 1-h-1 tanh network,
/// with the support gradient written by hand in `MatOps` so that the tape records the
/// whole inner loop (the "differentiate through the unrolled loop" way of higher and
/// learn2learn).
pub struct UnrolledMaml<'a> {
    pub mlp: &'a Mlp,
    pub task: &'a Task,
    pub steps: usize,
    pub lr: f64,
}

/// The support loss's gradient of a 1-h-1 tanh network, as a flat column.
pub fn hand_grad<M: MatOps>(mlp: &Mlp, theta: &M, x: &DMatrix<f64>, y: &DMatrix<f64>) -> M {
    let p = mlp.unflatten(theta);
    let (w1t, b1, w2t, b2) = (&p[0].wt, &p[0].bias, &p[1].wt, &p[1].bias);
    let n = x.nrows();
    let h_dim = w1t.ncols();
    let xm = theta.constant_like(x.clone());
    let ym = theta.constant_like(y.clone());
    let ones = theta.constant_like(DMatrix::from_element(1, n, 1.0));
    let h = xm.matmul(w1t).add_row(b1).tanh();
    let out = h.matmul(w2t).add_row(b2);
    let d_out = out.sub(&ym).scale_f64(2.0 / n as f64);
    let g_w2t = h.transpose().matmul(&d_out); // h x 1
    let g_b2 = ones.matmul(&d_out); // 1 x 1
    let dh = d_out.matmul(&w2t.transpose()); // n x h
    let one = theta.constant_like(DMatrix::from_element(n, h_dim, 1.0));
    let dz = dh.mul_elem(&one.sub(&h.mul_elem(&h)));
    let g_w1t = xm.transpose().matmul(&dz); // 1 x h (= W1 row-major, h x 1)
    let g_b1 = ones.matmul(&dz); // 1 x h
    M::vcat(&[g_w1t.reshape(h_dim, 1), g_b1.reshape(h_dim, 1), g_w2t, g_b2])
}

impl MatFn for UnrolledMaml<'_> {
    fn eval<M: MatOps>(&self, params: &[M]) -> M::Scalar {
        let mut phi = params[0].clone();
        for _ in 0..self.steps {
            let g = hand_grad(self.mlp, &phi, &self.task.support_x, &self.task.support_y);
            phi = phi.sub(&g.scale_f64(self.lr));
        }
        let xq = phi.constant_like(self.task.query_x.clone());
        let yq = phi.constant_like(self.task.query_y.clone());
        mse(&self.mlp.forward(&phi, &xq), &yq)
    }
}

/// Relative distance `||a - b|| / max(||b||, floor)`.
pub fn rel_dist(a: &[f64], b: &[f64], floor: f64) -> f64 {
    let d: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let n: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    d / n.max(floor)
}
