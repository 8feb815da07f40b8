//! The crate's own adaptive Dormand–Prince 5(4) stepper: a stepping API (which
//! `ode_solvers` lacks), either time direction, an error norm over the first `norm_len`
//! components only (the seminorm), and a state that can be cloned as a checkpoint.
//!
//! Step-size control, initial step and stiffness test follow Hairer's DOPRI5 with the
//! defaults of `ode_solvers::Dopri5`, so on the same problem both take the same steps.

use ad_core::all_finite;

use crate::options::SolverOptions;
use crate::tableau::{A, C, E};

/// Why stepping stopped.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StepFail {
    Underflow {
        t: f64,
        h: f64,
    },
    MaxSteps {
        t: f64,
        max_steps: usize,
    },
    Stiff {
        t: f64,
        h_lambda: f64,
    },
    /// Stages or the new state stayed non-finite down to the smallest step.
    NonFinite {
        t: f64,
        h: f64,
        what: &'static str,
    },
}

/// One accepted step: from `t` over `h` (signed), start state `y`, the seven stages
/// `k` (k[6] = f(t + h, y_new), reused as the next step's k[0]) and the end state.
pub(crate) struct StepView<'a> {
    pub t: f64,
    pub h: f64,
    /// The step's end time (exactly `t_end` on the last step).
    pub t_new: f64,
    pub y: &'a [f64],
    pub k: &'a [Vec<f64>],
}

/// The step-size controller's state (Hairer's PI controller).
#[derive(Clone, Debug)]
struct Control {
    alpha: f64,
    beta: f64,
    facc1: f64,
    facc2: f64,
    safety: f64,
    fac_old: f64,
    reject: bool,
    h_max: f64,
}

impl Control {
    /// Accept or reject an error `err`; returns the next step size (signed like `h`).
    fn decide(&mut self, err: f64, h: f64) -> (bool, f64) {
        let fac11 = err.powf(self.alpha);
        let fac = fac11 * self.fac_old.powf(-self.beta);
        let fac = self.facc2.max(self.facc1.min(fac / self.safety));
        let mut h_new = h / fac;
        if err <= 1.0 {
            self.fac_old = err.max(1e-4);
            if h_new.abs() > self.h_max {
                h_new = self.h_max.copysign(h);
            }
            if self.reject {
                h_new = h_new.abs().min(h.abs()).copysign(h);
            }
            self.reject = false;
            (true, h_new)
        } else {
            self.reject = true;
            (false, h / self.facc1.min(fac11 / self.safety))
        }
    }
}

/// A Dopri5 integration in progress (clone it to checkpoint).
#[derive(Clone, Debug)]
pub(crate) struct Stepper {
    pub t: f64,
    pub t_end: f64,
    /// Next step size to try (signed).
    pub h: f64,
    pub y: Vec<f64>,
    k: Vec<Vec<f64>>,
    ytmp: Vec<f64>,
    y_new: Vec<f64>,
    y_stiff: Vec<f64>,
    control: Control,
    rtol: f64,
    atol: f64,
    norm_len: usize,
    max_steps: usize,
    stiff_every: usize,
    iasti: u32,
    non_stiff: u32,
    /// What was non-finite in the last attempt, if it was rejected for that.
    non_finite: Option<&'static str>,
    /// Step attempts so far.
    pub attempts: usize,
    pub accepted: usize,
    pub rejected: usize,
    pub nfe: usize,
    pub done: bool,
}

impl Stepper {
    /// Start at (t0, y0) towards t_end; evaluates f(t0, y0) and, without a first step,
    /// Hairer's initial-step heuristic (one more evaluation).
    pub fn new<F: FnMut(f64, &[f64], &mut [f64])>(
        sys: &mut F,
        t0: f64,
        t_end: f64,
        y0: &[f64],
        norm_len: usize,
        opts: &SolverOptions,
        first_step: Option<f64>,
    ) -> Stepper {
        let n = y0.len();
        let span = (t_end - t0).abs();
        let h_max = opts
            .max_step
            .unwrap_or(span)
            .min(span)
            .max(f64::MIN_POSITIVE);
        let mut s = Stepper {
            t: t0,
            t_end,
            h: 0.0,
            y: y0.to_vec(),
            k: vec![vec![0.0; n]; 7],
            ytmp: vec![0.0; n],
            y_new: vec![0.0; n],
            y_stiff: vec![0.0; n],
            control: Control {
                alpha: 0.2 - 0.75 * opts.beta,
                beta: opts.beta,
                facc1: 1.0 / opts.fac_min,
                facc2: 1.0 / opts.fac_max,
                safety: opts.safety,
                fac_old: 1e-4,
                reject: false,
                h_max,
            },
            rtol: opts.rtol,
            atol: opts.atol,
            norm_len: norm_len.min(n),
            max_steps: opts.max_steps,
            stiff_every: opts.stiffness_check,
            iasti: 0,
            non_stiff: 0,
            non_finite: None,
            attempts: 0,
            accepted: 0,
            rejected: 0,
            nfe: 0,
            done: t0 == t_end,
        };
        if s.done {
            return s;
        }
        sys(t0, &s.y, &mut s.k[0]);
        s.nfe += 1;
        let dir = (t_end - t0).signum();
        s.h = match first_step.or(opts.first_step) {
            Some(h) => h.min(h_max) * dir,
            None => s.initial_step(sys, dir),
        };
        s
    }

    /// Hairer's initial step (the `hinit` of DOPRI5, on the normed components).
    fn initial_step<F: FnMut(f64, &[f64], &mut [f64])>(&mut self, sys: &mut F, dir: f64) -> f64 {
        let m = self.norm_len;
        let (mut dny, mut dnf) = (0.0, 0.0);
        for i in 0..m {
            let sk = self.atol + self.rtol * self.y[i].abs();
            dny += (self.y[i] / sk).powi(2);
            dnf += (self.k[0][i] / sk).powi(2);
        }
        let mut h = if dnf <= 1e-10 || dny <= 1e-10 {
            1e-6
        } else {
            (dny / dnf).sqrt() * 0.01
        };
        h = h.min(self.control.h_max) * dir;
        for i in 0..self.y.len() {
            self.ytmp[i] = self.y[i] + h * self.k[0][i];
        }
        sys(self.t + h, &self.ytmp, &mut self.k[1]);
        self.nfe += 1;
        let mut der2 = 0.0;
        for i in 0..m {
            let sk = self.atol + self.rtol * self.y[i].abs();
            der2 += ((self.k[1][i] - self.k[0][i]) / sk).powi(2);
        }
        let der2 = der2.sqrt() / h.abs();
        let der12 = der2.max(dnf.sqrt());
        let h1 = if der12 <= 1e-15 {
            1e-6f64.max(h.abs() * 1e-3)
        } else {
            (0.01 / der12).powf(0.2)
        };
        (100.0 * h.abs()).min(h1).min(self.control.h_max) * dir
    }

    /// The seven stages of one step of size `h` from (t, y) into `k`, the end state into
    /// `ytmp` (k[0] must hold f(t, y)); returns what was not finite, if anything.
    pub fn stages<F: FnMut(f64, &[f64], &mut [f64])>(
        sys: &mut F,
        t: f64,
        h: f64,
        y: &[f64],
        k: &mut [Vec<f64>],
        ytmp: &mut [f64],
        y_stiff: &mut [f64],
    ) -> Option<&'static str> {
        let mut bad = None;
        for s in 1..7 {
            ytmp.copy_from_slice(y);
            for j in 0..s {
                let c = h * A[s][j];
                if c != 0.0 {
                    for (yt, kj) in ytmp.iter_mut().zip(&k[j]) {
                        *yt += c * kj;
                    }
                }
            }
            if bad.is_none() && !all_finite(ytmp) {
                bad = Some(if s == 6 { "new state" } else { "stage state" });
            }
            sys(t + C[s] * h, ytmp, &mut k[s]);
            if bad.is_none() && !all_finite(&k[s]) {
                bad = Some("stage derivative f(t, h)");
            }
            if s == 5 {
                y_stiff.copy_from_slice(ytmp);
            }
        }
        bad
    }

    /// Attempt steps until one is accepted; `on_accept` sees it before the state advances.
    /// Returns `Ok(true)` once `t_end` is reached.
    pub fn step<F: FnMut(f64, &[f64], &mut [f64])>(
        &mut self,
        sys: &mut F,
        mut on_accept: impl FnMut(&StepView<'_>),
    ) -> Result<bool, StepFail> {
        if self.done {
            return Ok(true);
        }
        self.ensure_buffers();
        if !all_finite(&self.k[0]) {
            return Err(StepFail::NonFinite {
                t: self.t,
                h: self.h,
                what: "derivative f at the start",
            });
        }
        let dir = (self.t_end - self.t).signum();
        loop {
            if self.attempts >= self.max_steps {
                return Err(StepFail::MaxSteps {
                    t: self.t,
                    max_steps: self.max_steps,
                });
            }
            if self.h == 0.0 || 0.1 * self.h.abs() <= f64::EPSILON * self.t.abs() {
                let (t, h) = (self.t, self.h);
                return Err(match self.non_finite {
                    Some(what) => StepFail::NonFinite { t, h, what },
                    None => StepFail::Underflow { t, h },
                });
            }
            let mut last = false;
            if (self.t + 1.01 * self.h - self.t_end) * dir > 0.0 {
                self.h = self.t_end - self.t;
                last = true;
            }
            self.attempts += 1;
            let h = self.h;
            let mut ytmp = std::mem::take(&mut self.ytmp);
            let bad = Self::stages(
                sys,
                self.t,
                h,
                &self.y,
                &mut self.k,
                &mut ytmp,
                &mut self.y_stiff,
            );
            self.nfe += 6;
            // the last stage's input is the 5th-order solution (FSAL)
            std::mem::swap(&mut self.y_new, &mut ytmp);
            self.ytmp = ytmp;
            self.non_finite = bad;
            if bad.is_some() {
                // an overflow is not an accepted step: shrink as much as the controller may
                self.rejected += 1;
                self.control.reject = true;
                self.h = h / self.control.facc1;
                continue;
            }
            let err = self.error_norm(h);
            let (ok, h_new) = self.control.decide(err, h);
            if !ok {
                self.rejected += 1;
                self.h = h_new;
                continue;
            }
            self.accepted += 1;
            self.stiffness_test(h)?;
            let t_new = if last { self.t_end } else { self.t + h };
            on_accept(&StepView {
                t: self.t,
                h,
                t_new,
                y: &self.y,
                k: &self.k,
            });
            std::mem::swap(&mut self.y, &mut self.y_new);
            self.k.swap(0, 6);
            self.t = t_new;
            self.h = h_new;
            self.done = last;
            return Ok(last);
        }
    }

    fn error_norm(&self, h: f64) -> f64 {
        let m = self.norm_len;
        let mut sum = 0.0;
        for i in 0..m {
            let mut e = 0.0;
            for s in 0..7 {
                e += E[s] * self.k[s][i];
            }
            let sc = self.atol + self.rtol * self.y[i].abs().max(self.y_new[i].abs());
            sum += (h * e / sc).powi(2);
        }
        (sum / m.max(1) as f64).sqrt()
    }

    fn stiffness_test(&mut self, h: f64) -> Result<(), StepFail> {
        if self.stiff_every == 0
            || !(self.accepted.is_multiple_of(self.stiff_every) || self.iasti > 0)
        {
            return Ok(());
        }
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..self.y.len() {
            num += (self.k[6][i] - self.k[5][i]).powi(2);
            den += (self.y_new[i] - self.y_stiff[i]).powi(2);
        }
        let h_lambda = if den > 0.0 {
            h.abs() * (num / den).sqrt()
        } else {
            0.0
        };
        if h_lambda > 3.25 {
            self.non_stiff = 0;
            self.iasti += 1;
            if self.iasti == 15 {
                return Err(StepFail::Stiff {
                    t: self.t,
                    h_lambda,
                });
            }
        } else {
            self.non_stiff += 1;
            if self.non_stiff == 6 {
                self.iasti = 0;
            }
        }
        Ok(())
    }

    /// A copy holding only what resuming needs (state, FSAL stage, controller, counters):
    /// the scratch buffers are dropped and reallocated by the first `step` after it.
    pub fn snapshot(&self) -> Stepper {
        let k = vec![self.k[0].clone()];
        Stepper {
            t: self.t,
            t_end: self.t_end,
            h: self.h,
            y: self.y.clone(),
            k,
            ytmp: Vec::new(),
            y_new: Vec::new(),
            y_stiff: Vec::new(),
            control: self.control.clone(),
            ..*self
        }
    }

    fn ensure_buffers(&mut self) {
        let n = self.y.len();
        if self.k.len() < 7 {
            self.k.resize(7, vec![0.0; n]);
            self.ytmp = vec![0.0; n];
            self.y_new = vec![0.0; n];
            self.y_stiff = vec![0.0; n];
        }
    }
}
