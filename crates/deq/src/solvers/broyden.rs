//! Limited-memory "good" Broyden, per sample, on g(z) = f(z) − z.
//!
//! The inverse Jacobian estimate is H = −I + Σ uᵢvᵢᵀ (−I: the Jacobian of g when f is
//! flat), the step z ← z − H g. After each step, with s = Δz and y = Δg, the rank-one
//! update H ← H + (s − H y)(sᵀH)/(sᵀH y) is kept, the oldest dropped beyond `memory`; an
//! update whose denominator vanishes is skipped (counted as a restart in the stats).

use super::options::BroydenOptions;
use super::sample_step::SampleStep;
use super::vecops::{axpy, dot};

pub(crate) struct Broyden {
    memory: usize,
    d: usize,
    u: Vec<f64>,
    v: Vec<f64>,
    count: usize,
    head: usize,
    prev_z: Vec<f64>,
    prev_g: Vec<f64>,
    has_prev: bool,
    hy: Vec<f64>,
    hts: Vec<f64>,
    s: Vec<f64>,
    y: Vec<f64>,
    restarts: usize,
}

impl Broyden {
    pub(crate) fn new(opts: BroydenOptions, d: usize) -> Broyden {
        Broyden {
            memory: opts.memory,
            d,
            u: vec![0.0; opts.memory * d],
            v: vec![0.0; opts.memory * d],
            count: 0,
            head: 0,
            prev_z: vec![0.0; d],
            prev_g: vec![0.0; d],
            has_prev: false,
            hy: vec![0.0; d],
            hts: vec![0.0; d],
            s: vec![0.0; d],
            y: vec![0.0; d],
            restarts: 0,
        }
    }

    /// out = H x (transpose: Hᵀ x) for H = −I + Σ uᵢvᵢᵀ.
    fn apply(&self, x: &[f64], out: &mut [f64], transpose: bool) {
        let d = self.d;
        out.iter_mut().zip(x).for_each(|(o, xi)| *o = -xi);
        for j in 0..self.count {
            let (uj, vj) = (&self.u[j * d..(j + 1) * d], &self.v[j * d..(j + 1) * d]);
            let (a, b) = if transpose { (vj, uj) } else { (uj, vj) };
            axpy(dot(b, x), a, out);
        }
    }
}

impl SampleStep for Broyden {
    fn step(&mut self, z: &mut [f64], g: &[f64]) {
        let d = self.d;
        if self.has_prev {
            let (mut s, mut y) = (std::mem::take(&mut self.s), std::mem::take(&mut self.y));
            for i in 0..d {
                s[i] = z[i] - self.prev_z[i];
                y[i] = g[i] - self.prev_g[i];
            }
            let (mut hy, mut hts) = (std::mem::take(&mut self.hy), std::mem::take(&mut self.hts));
            self.apply(&y, &mut hy, false);
            self.apply(&s, &mut hts, true);
            let denom = dot(&s, &hy);
            let size = dot(&s, &s).sqrt() * dot(&hy, &hy).sqrt();
            if denom.is_finite() && denom.abs() > 1e-12 * size && size > 0.0 {
                let slot = if self.count < self.memory {
                    self.count += 1;
                    self.count - 1
                } else {
                    let h = self.head;
                    self.head = (self.head + 1) % self.memory;
                    h
                };
                for i in 0..d {
                    self.u[slot * d + i] = (s[i] - hy[i]) / denom;
                    self.v[slot * d + i] = hts[i];
                }
            } else {
                self.restarts += 1;
            }
            self.hy = hy;
            self.hts = hts;
            self.s = s;
            self.y = y;
        }
        self.prev_z.copy_from_slice(z);
        self.prev_g.copy_from_slice(g);
        self.has_prev = true;
        // z ← z − H g
        let mut hg = std::mem::take(&mut self.hy);
        self.apply(g, &mut hg, false);
        for (zi, hi) in z.iter_mut().zip(&hg) {
            *zi -= hi;
        }
        self.hy = hg;
    }
    fn restarts(&self) -> usize {
        self.restarts
    }
}
