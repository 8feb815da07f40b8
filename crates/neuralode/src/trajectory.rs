//! Stored forward steps ([`Steps`]), dense output from them, and where each observation
//! time falls ([`ObsLoc`]).

use crate::stepper::StepView;
use crate::tableau::{A, C, dense_weights};

/// Accepted steps: per step its start time, size, start state and seven stages.
#[derive(Clone, Debug, Default)]
pub(crate) struct Steps {
    pub d: usize,
    pub t: Vec<f64>,
    pub h: Vec<f64>,
    /// Per step `8 d` numbers: y, then k_1..k_7.
    pub data: Vec<f64>,
}

impl Steps {
    pub fn new(d: usize) -> Steps {
        Steps {
            d,
            ..Steps::default()
        }
    }

    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn push(&mut self, s: &StepView<'_>) {
        self.t.push(s.t);
        self.h.push(s.h);
        self.data.extend_from_slice(s.y);
        for k in s.k {
            self.data.extend_from_slice(k);
        }
    }

    pub fn y(&self, n: usize) -> &[f64] {
        let o = n * 8 * self.d;
        &self.data[o..o + self.d]
    }

    pub fn k(&self, n: usize, i: usize) -> &[f64] {
        let o = n * 8 * self.d + (i + 1) * self.d;
        &self.data[o..o + self.d]
    }

    /// Stage input Y_s = y + h Σ_j a_sj k_j of step n, into `out`.
    pub fn stage_input(&self, n: usize, s: usize, out: &mut [f64]) {
        out.copy_from_slice(self.y(n));
        for j in 0..s {
            let c = self.h[n] * A[s][j];
            if c != 0.0 {
                for (o, k) in out.iter_mut().zip(self.k(n, j)) {
                    *o += c * k;
                }
            }
        }
    }

    /// Stage time of step n.
    pub fn stage_time(&self, n: usize, s: usize) -> f64 {
        self.t[n] + C[s] * self.h[n]
    }

    /// Dense output of step n at theta into `out`.
    pub fn dense(&self, n: usize, theta: f64, out: &mut [f64]) {
        dense_into(self.y(n), |i| self.k(n, i), self.h[n], theta, out);
    }

    /// Index of the step whose interval contains t (steps run forward in time).
    pub fn locate(&self, t: f64) -> usize {
        let i = self.t.partition_point(|&s| s <= t);
        i.saturating_sub(1).min(self.len().saturating_sub(1))
    }

    /// Dense output at any time t in the covered interval.
    pub fn eval_at(&self, t: f64, out: &mut [f64]) {
        let n = self.locate(t);
        self.dense(n, (t - self.t[n]) / self.h[n], out);
    }
}

/// y + h Σ w_i(θ) k_i.
pub(crate) fn dense_into<'a>(
    y: &[f64],
    k: impl Fn(usize) -> &'a [f64],
    h: f64,
    theta: f64,
    out: &mut [f64],
) {
    let w = dense_weights(theta);
    out.copy_from_slice(y);
    for (i, wi) in w.iter().enumerate() {
        let c = h * wi;
        if c != 0.0 {
            for (o, kv) in out.iter_mut().zip(k(i)) {
                *o += c * kv;
            }
        }
    }
}

/// Where an observation lies: in accepted step `step` at fraction `theta`, or at t0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum ObsLoc {
    Start,
    Step { step: usize, theta: f64 },
}
