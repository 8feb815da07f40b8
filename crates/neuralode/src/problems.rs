//! Ready-made problems: the W4 workload of the peer benchmarks (`../shared/peers`).

use ad_core::nn::{Activation, Mlp};
use nalgebra::DMatrix;

use crate::dynamics::MlpDynamics;

/// The W4 neural ODE: f(h) = W2 tanh(W1 h + b1) + b2 (2-50-2), h(0) = (2, 0), t0 = 0,
/// observations t_k = 0.2 (k + 1), k < 50, loss Σ_k ‖h(t_k) − (2 cos t_k, 2 sin t_k)‖²,
/// Dopri5 at rtol = atol = 1e-8 in the peers' runs.
#[derive(Clone, Debug)]
pub struct W4 {
    /// The field.
    pub f: MlpDynamics,
    /// W1, b1, W2, b2 in the `Mlp` layout (252 numbers; the peers' README says 152, a
    /// miscount: 100 + 50 + 100 + 2).
    pub theta: Vec<f64>,
    /// Initial state.
    pub h0: Vec<f64>,
    /// Observation times.
    pub ts: Vec<f64>,
    /// Targets, one row per observation.
    pub targets: DMatrix<f64>,
}

impl W4 {
    /// The workload's fixed weights and data.
    pub fn new() -> W4 {
        let hid = 50;
        let f = MlpDynamics::new(Mlp::new(
            &[2, hid, 2],
            Activation::Tanh,
            Activation::Identity,
        ));
        let mut theta = Vec::with_capacity(152);
        for i in 0..hid {
            for j in 0..2 {
                theta.push((1.1 * (i + 1) as f64 + 2.3 * (j + 1) as f64).sin());
            }
        }
        theta.extend((0..hid).map(|i| 0.1 * (0.9 * (i + 1) as f64).cos()));
        for j in 0..2 {
            for i in 0..hid {
                let (jf, i1) = ((j + 1) as f64, (i + 1) as f64);
                theta.push(0.3 * (0.5 * jf * i1 + 0.3 * i1).sin());
            }
        }
        theta.extend((0..2).map(|j| 0.05 * ((j + 1) as f64).sin()));
        let ts: Vec<f64> = (1..=50).map(|k| 0.2 * k as f64).collect();
        let targets = DMatrix::from_fn(50, 2, |k, j| {
            if j == 0 {
                2.0 * ts[k].cos()
            } else {
                2.0 * ts[k].sin()
            }
        });
        W4 {
            f,
            theta,
            h0: vec![2.0, 0.0],
            ts,
            targets,
        }
    }

    /// The loss and its gradient with respect to the states.
    pub fn loss(&self, states: &DMatrix<f64>) -> (f64, DMatrix<f64>) {
        let r = states - &self.targets;
        (r.norm_squared(), r * 2.0)
    }
}

impl Default for W4 {
    fn default() -> Self {
        W4::new()
    }
}
