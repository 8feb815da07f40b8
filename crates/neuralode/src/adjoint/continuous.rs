//! The continuous adjoint (optimize-then-discretize): a(t) = ∂L/∂h(t) solved backward,
//! da/dt = −(∂f/∂h)ᵀa, dq/dt = −(∂f/∂θ)ᵀa, q(t_K) = 0, with a jump a += ∂L/∂h(t_k) at
//! each observation. Then ∂L/∂h0 = a(t0) and ∂L/∂θ = q(t0).
//!
//! Backsolve integrates h backward alongside ([h, a, q]); the interpolating adjoint takes
//! h(t) from the forward solve's dense output and integrates only [a, q]. With the
//! seminorm, q (and nothing else) is left out of the error norm.

use nalgebra::DMatrix;

use crate::dynamics::Dynamics;
use crate::error::NodeError;
use crate::forward::{ForwardData, step_error};
use crate::options::GradOptions;
use crate::stats::SolveStats;
use crate::stepper::Stepper;
use crate::trajectory::Steps;

/// Solve the adjoint backward; returns (h0̄, θ̄).
#[allow(clippy::too_many_arguments)]
pub(crate) fn continuous<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    t0: f64,
    ts: &[f64],
    fwd: &ForwardData,
    ybar_obs: &DMatrix<f64>,
    backsolve: Option<bool>,
    opts: &GradOptions,
    stats: &mut SolveStats,
) -> Result<(Vec<f64>, Vec<f64>), NodeError> {
    let d = f.dim();
    let p = theta.len();
    let kk = ts.len();
    let off = if backsolve.is_some() { d } else { 0 };
    let n_aug = off + d + p;
    let norm_len = if opts.seminorm { off + d } else { n_aug };
    let mut y = vec![0.0; n_aug];
    if backsolve.is_some() {
        for j in 0..d {
            y[j] = fwd.states[(kk - 1, j)];
        }
    }
    for j in 0..d {
        y[off + j] = ybar_obs[(kk - 1, j)];
    }
    let mut dense = match &fwd.steps {
        Some(steps) => Dense::Stored(steps),
        None => Dense::Replay(Replay {
            checkpoints: &fwd.checkpoints,
            n_steps: fwd.n_steps,
            loaded: Vec::with_capacity(2),
            nfe: 0,
        }),
    };
    let (mut hbuf, mut neg, mut fbuf) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let mut sys = |t: f64, y: &[f64], dy: &mut [f64]| {
        for j in 0..d {
            neg[j] = -y[off + j];
        }
        if off > 0 {
            let (dh, rest) = dy.split_at_mut(d);
            let (da, dq) = rest.split_at_mut(d);
            f.vjp(t, &y[..d], theta, &neg, dh, da, dq);
        } else {
            dense.eval_at(f, theta, t, &mut hbuf);
            let (da, dq) = dy.split_at_mut(d);
            f.vjp(t, &hbuf, theta, &neg, &mut fbuf, da, dq);
        }
    };
    let bopts = opts.backward();
    let mut h_next: Option<f64> = None;
    for k in (0..kk).rev() {
        let t_prev = if k > 0 { ts[k - 1] } else { t0 };
        if ts[k] > t_prev {
            let mut st = Stepper::new(&mut sys, ts[k], t_prev, &y, norm_len, bopts, h_next);
            let res = loop {
                match st.step(&mut sys, |_| {}) {
                    Ok(true) => break Ok(()),
                    Ok(false) => {}
                    Err(e) => break Err(e),
                }
            };
            stats.vjp_backward += st.nfe;
            if off > 0 {
                stats.nfe_backward += st.nfe;
            }
            stats.accepted_backward += st.accepted;
            stats.rejected_backward += st.rejected;
            res.map_err(|e| step_error(e, "adjoint", *stats))?;
            y.copy_from_slice(&st.y);
            h_next = Some(st.h.abs());
        }
        if k > 0 {
            for j in 0..d {
                y[off + j] += ybar_obs[(k - 1, j)];
            }
            if backsolve == Some(true) {
                for j in 0..d {
                    y[j] = fwd.states[(k - 1, j)];
                }
            }
        }
    }
    if let Dense::Replay(r) = &dense {
        stats.nfe_backward += r.nfe;
    }
    Ok((y[off..off + d].to_vec(), y[off + d..].to_vec()))
}

/// Where the interpolating adjoint reads h(t): the stored steps, or segments recomputed
/// from checkpoints on demand.
enum Dense<'a> {
    Stored(&'a Steps),
    Replay(Replay<'a>),
}

/// Segments recomputed from checkpoints, the two most recent kept.
struct Replay<'a> {
    checkpoints: &'a [(usize, Stepper)],
    n_steps: usize,
    loaded: Vec<(usize, Steps)>,
    nfe: usize,
}

impl Dense<'_> {
    fn eval_at<D: Dynamics + ?Sized>(&mut self, f: &D, theta: &[f64], t: f64, out: &mut [f64]) {
        match self {
            Dense::Stored(steps) => steps.eval_at(t, out),
            Dense::Replay(r) => {
                let c = r
                    .checkpoints
                    .partition_point(|(_, s)| s.t <= t)
                    .saturating_sub(1);
                let i = match r.loaded.iter().position(|(k, _)| *k == c) {
                    Some(i) => i,
                    None => {
                        let end = r.checkpoints.get(c + 1).map_or(r.n_steps, |(n, _)| *n);
                        let (start, st0) = &r.checkpoints[c];
                        let mut st = st0.clone();
                        let nfe0 = st.nfe;
                        let mut steps = Steps::new(out.len());
                        let mut sys = |t: f64, y: &[f64], dy: &mut [f64]| f.eval(t, y, theta, dy);
                        for _ in *start..end {
                            st.step(&mut sys, |s| steps.push(s))
                                .expect("replaying steps the forward solve accepted");
                        }
                        r.nfe += st.nfe - nfe0;
                        if r.loaded.len() == 2 {
                            r.loaded.remove(0);
                        }
                        r.loaded.push((c, steps));
                        r.loaded.len() - 1
                    }
                };
                r.loaded[i].1.eval_at(t, out);
            }
        }
    }
}
