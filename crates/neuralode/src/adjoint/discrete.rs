//! The discrete adjoint: the exact reverse sweep of the solver's own steps (the
//! derivative of the computation the forward solve performed, step sizes held fixed).
//! Used whole by [`Method::Direct`](crate::Method::Direct) and segment by segment, after
//! recomputing each from a checkpoint, by [`Method::Checkpointed`](crate::Method::Checkpointed).

use nalgebra::DMatrix;

use crate::dynamics::Dynamics;
use crate::error::NodeError;
use crate::forward::{ForwardData, step_error};
use crate::stats::SolveStats;
use crate::stepper::Stepper;
use crate::tableau::{A, dense_weights};
use crate::trajectory::{ObsLoc, Steps};

/// The running state of a reverse sweep.
pub(crate) struct Sweep {
    /// Cotangent of the state at the end of the step about to be swept.
    pub ybar: Vec<f64>,
    /// Cotangent of that step's last stage (the next step's first, by FSAL).
    pub kbar_fsal: Vec<f64>,
    pub theta_bar: Vec<f64>,
    /// Observations not yet swept: indices `0..cursor`.
    pub cursor: usize,
    pub vjps: usize,
    kbar: Vec<Vec<f64>>,
    ybar_n: Vec<f64>,
    point: Vec<f64>,
    yb: Vec<f64>,
    tb: Vec<f64>,
    fbuf: Vec<f64>,
}

impl Sweep {
    pub fn new(d: usize, p: usize, n_obs: usize) -> Sweep {
        Sweep {
            ybar: vec![0.0; d],
            kbar_fsal: vec![0.0; d],
            theta_bar: vec![0.0; p],
            cursor: n_obs,
            vjps: 0,
            kbar: vec![vec![0.0; d]; 7],
            ybar_n: vec![0.0; d],
            point: vec![0.0; d],
            yb: vec![0.0; d],
            tb: vec![0.0; p],
            fbuf: vec![0.0; d],
        }
    }

    /// `yb = J_hᵀ a` at (t, point), θ̄ += J_θᵀ a.
    fn vjp_at<D: Dynamics + ?Sized>(&mut self, f: &D, theta: &[f64], t: f64, s: usize) {
        let a = &self.kbar[s];
        f.vjp(
            t,
            &self.point,
            theta,
            a,
            &mut self.fbuf,
            &mut self.yb,
            &mut self.tb,
        );
        for (g, v) in self.theta_bar.iter_mut().zip(&self.tb) {
            *g += v;
        }
        self.vjps += 1;
    }

    /// Sweep back over `steps` (global indices `offset..offset + steps.len()`).
    pub fn segment<D: Dynamics + ?Sized>(
        &mut self,
        f: &D,
        theta: &[f64],
        steps: &Steps,
        offset: usize,
        locs: &[ObsLoc],
        ybar_obs: &DMatrix<f64>,
    ) {
        let d = self.ybar.len();
        for m in (0..steps.len()).rev() {
            let n = offset + m;
            let h = steps.h[n - offset];
            for kb in self.kbar.iter_mut() {
                kb.iter_mut().for_each(|v| *v = 0.0);
            }
            self.kbar[6].copy_from_slice(&self.kbar_fsal);
            self.ybar_n.iter_mut().for_each(|v| *v = 0.0);
            while self.cursor > 0 {
                let ObsLoc::Step { step, theta: th } = locs[self.cursor - 1] else {
                    break;
                };
                if step != n {
                    break;
                }
                let k = self.cursor - 1;
                let w = dense_weights(th);
                for j in 0..d {
                    let g = ybar_obs[(k, j)];
                    self.ybar_n[j] += g;
                    for i in 0..7 {
                        self.kbar[i][j] += h * w[i] * g;
                    }
                }
                self.cursor -= 1;
            }
            for s in (1..7).rev() {
                steps.stage_input(m, s, &mut self.point);
                let t = steps.stage_time(m, s);
                if self.kbar[s].iter().any(|&v| v != 0.0) {
                    self.vjp_at(f, theta, t, s);
                } else {
                    self.yb.iter_mut().for_each(|v| *v = 0.0);
                }
                if s == 6 {
                    for (y, v) in self.yb.iter_mut().zip(&self.ybar) {
                        *y += v;
                    }
                }
                for (y, v) in self.ybar_n.iter_mut().zip(&self.yb) {
                    *y += v;
                }
                for j in 0..s {
                    let c = h * A[s][j];
                    if c != 0.0 {
                        for (kb, v) in self.kbar[j].iter_mut().zip(&self.yb) {
                            *kb += c * v;
                        }
                    }
                }
            }
            std::mem::swap(&mut self.kbar_fsal, &mut self.kbar[0]);
            std::mem::swap(&mut self.ybar, &mut self.ybar_n);
        }
    }

    /// Close the sweep at (t0, h0): h0's cotangent, including observations at t0.
    pub fn finish<D: Dynamics + ?Sized>(
        &mut self,
        f: &D,
        theta: &[f64],
        t0: f64,
        h0: &[f64],
        ybar_obs: &DMatrix<f64>,
    ) -> Vec<f64> {
        self.point.copy_from_slice(h0);
        self.kbar[0].copy_from_slice(&self.kbar_fsal);
        let mut h0_bar = self.ybar.clone();
        if self.kbar[0].iter().any(|&v| v != 0.0) {
            self.vjp_at(f, theta, t0, 0);
            for (g, v) in h0_bar.iter_mut().zip(&self.yb) {
                *g += v;
            }
        }
        for k in 0..self.cursor {
            for (j, g) in h0_bar.iter_mut().enumerate() {
                *g += ybar_obs[(k, j)];
            }
        }
        self.cursor = 0;
        h0_bar
    }
}

/// The discrete adjoint over stored or recomputed steps. Returns (h0̄, θ̄).
#[allow(clippy::too_many_arguments)]
pub(crate) fn discrete<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    h0: &[f64],
    t0: f64,
    fwd: &ForwardData,
    ybar_obs: &DMatrix<f64>,
    stats: &mut SolveStats,
    recursive: bool,
) -> Result<(Vec<f64>, Vec<f64>), NodeError> {
    let mut sw = Sweep::new(h0.len(), theta.len(), fwd.locs.len());
    if recursive {
        let mut sys = |t: f64, y: &[f64], dy: &mut [f64]| f.eval(t, y, theta, dy);
        let mut segs = ReverseSegments::new(fwd.checkpoints[0].1.snapshot(), fwd.n_steps);
        while let Some((a, steps)) = segs.next(&mut sys, h0.len()) {
            let steps = steps.map_err(|e| step_error(e, "recomputed forward", *stats))?;
            stats.accepted_backward += steps.len();
            sw.segment(f, theta, &steps, a, &fwd.locs, ybar_obs);
        }
        stats.nfe_backward += segs.nfe;
    } else if let Some(steps) = &fwd.steps {
        sw.segment(f, theta, steps, 0, &fwd.locs, ybar_obs);
        stats.accepted_backward += steps.len();
    } else {
        let mut sys = |t: f64, y: &[f64], dy: &mut [f64]| f.eval(t, y, theta, dy);
        for (c, (start, st0)) in fwd.checkpoints.iter().enumerate().rev() {
            let end = fwd.checkpoints.get(c + 1).map_or(fwd.n_steps, |(n, _)| *n);
            let mut st = st0.clone();
            let nfe0 = st.nfe;
            let mut steps = Steps::new(h0.len());
            for _ in *start..end {
                st.step(&mut sys, |s| steps.push(s))
                    .map_err(|e| step_error(e, "recomputed forward", *stats))?;
            }
            stats.nfe_backward += st.nfe - nfe0;
            stats.accepted_backward += steps.len();
            sw.segment(f, theta, &steps, *start, &fwd.locs, ybar_obs);
        }
    }
    let h0_bar = sw.finish(f, theta, t0, h0, ybar_obs);
    stats.vjp_backward += sw.vjps;
    Ok((h0_bar, sw.theta_bar))
}

/// The forward steps `0..n` served last to first, one at a time, by recursive bisection
/// from the initial state: O(log n) solver states held, O(n log n) steps recomputed.
pub(crate) struct ReverseSegments {
    /// Pending ranges `[a, b)` of step indices, each with the solver state before step a.
    stack: Vec<(usize, usize, Stepper)>,
    /// f-evaluations spent recomputing.
    pub nfe: usize,
}

impl ReverseSegments {
    /// Steps `0..n_steps` from the solver state before step 0.
    pub fn new(start: Stepper, n_steps: usize) -> ReverseSegments {
        // the stack never exceeds log2(steps) + 1 entries: sized once, so memory does not
        // grow with the number of steps
        let mut stack = Vec::with_capacity(usize::BITS as usize);
        if n_steps > 0 {
            stack.push((0, n_steps, start));
        }
        ReverseSegments { stack, nfe: 0 }
    }

    /// The last pending step, recomputed (with its start index).
    #[allow(clippy::type_complexity)]
    pub fn next<F: FnMut(f64, &[f64], &mut [f64])>(
        &mut self,
        sys: &mut F,
        d: usize,
    ) -> Option<(usize, Result<Steps, crate::stepper::StepFail>)> {
        let (mut a, b, mut st) = self.stack.pop()?;
        let run = |st: &mut Stepper, k: usize, sys: &mut F, mut keep: Option<&mut Steps>| {
            for _ in 0..k {
                st.step(sys, |s| {
                    if let Some(steps) = keep.as_deref_mut() {
                        steps.push(s)
                    }
                })?;
            }
            Ok(())
        };
        while b - a > 1 {
            let mid = a + (b - a) / 2;
            let mut ahead = st.snapshot();
            let nfe0 = ahead.nfe;
            if let Err(e) = run(&mut ahead, mid - a, sys, None) {
                return Some((a, Err(e)));
            }
            self.nfe += ahead.nfe - nfe0;
            self.stack.push((a, mid, st));
            a = mid;
            st = ahead.snapshot();
        }
        let mut steps = Steps::new(d);
        let nfe0 = st.nfe;
        let r = run(&mut st, b - a, sys, Some(&mut steps));
        self.nfe += st.nfe - nfe0;
        Some((a, r.map(|()| steps)))
    }
}
