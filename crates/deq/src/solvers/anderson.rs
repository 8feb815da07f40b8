//! Anderson acceleration (type II), per sample: the next iterate mixes the last m
//! iterates so that the mixed residual is smallest in the least-squares sense.
//!
//! With ΔX, ΔG the last m differences of iterates and residuals g = f(z) − z:
//! γ = argmin ‖g − ΔG γ‖² + λ‖ΔG‖²_F ‖γ‖² (QR, [`regularized_lstsq`]),
//! z ← z + β g − (ΔX + β ΔG) γ. A singular (or non-finite) least-squares system restarts
//! the history with a plain step, counted in the stats.

use super::lstsq::lstsq_columns;
use super::options::AndersonOptions;
use super::sample_step::SampleStep;

pub(crate) struct Anderson {
    opts: AndersonOptions,
    d: usize,
    dx: Vec<f64>,
    dg: Vec<f64>,
    count: usize,
    head: usize,
    prev_z: Vec<f64>,
    prev_g: Vec<f64>,
    has_prev: bool,
    restarts: usize,
    work: Vec<f64>,
    gamma: Vec<f64>,
}

impl Anderson {
    pub(crate) fn new(opts: AndersonOptions, d: usize) -> Anderson {
        Anderson {
            opts,
            d,
            dx: vec![0.0; opts.memory * d],
            dg: vec![0.0; opts.memory * d],
            count: 0,
            head: 0,
            prev_z: vec![0.0; d],
            prev_g: vec![0.0; d],
            has_prev: false,
            restarts: 0,
            work: Vec::new(),
            gamma: vec![0.0; opts.memory],
        }
    }
}

impl SampleStep for Anderson {
    fn step(&mut self, z: &mut [f64], g: &[f64]) {
        let (d, m, beta) = (self.d, self.opts.memory, self.opts.damping);
        if self.has_prev {
            let slot = self.head * d..(self.head + 1) * d;
            for (i, k) in slot.enumerate() {
                self.dx[k] = z[i] - self.prev_z[i];
                self.dg[k] = g[i] - self.prev_g[i];
            }
            self.head = (self.head + 1) % m;
            self.count = (self.count + 1).min(m);
        }
        self.prev_z.copy_from_slice(z);
        self.prev_g.copy_from_slice(g);
        self.has_prev = true;
        // The plain (mixing) step z + β g, then the history's correction.
        for (zi, gi) in z.iter_mut().zip(g) {
            *zi += beta * gi;
        }
        if self.count == 0 {
            return;
        }
        let k = self.count;
        let a = &self.dg[..k * d];
        let lambda = self.opts.regularization * super::vecops::norm(a).powi(2);
        let gamma = &mut self.gamma[..k];
        match lstsq_columns(a, d, k, g, lambda, &mut self.work, gamma) {
            Ok(()) if gamma.iter().all(|v| v.abs() < 1e12) => {
                for (j, gj) in gamma.iter().enumerate() {
                    let (dxj, dgj) = (&self.dx[j * d..(j + 1) * d], &self.dg[j * d..(j + 1) * d]);
                    for i in 0..d {
                        z[i] -= gj * (dxj[i] + beta * dgj[i]);
                    }
                }
            }
            _ => {
                // Singular or wild: forget the history, keep the plain step made above.
                self.count = 0;
                self.head = 0;
                self.restarts += 1;
            }
        }
    }
    fn restarts(&self) -> usize {
        self.restarts
    }
}
