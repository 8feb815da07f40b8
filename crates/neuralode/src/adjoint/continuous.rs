//! The continuous adjoint (optimize-then-discretize): a(t) = ∂L/∂h(t) solved backward,
//! da/dt = −(∂f/∂h)ᵀa, dq/dt = −(∂f/∂θ)ᵀa, q(t_K) = 0, with a jump a += ∂L/∂h(t_k) at
//! each observation. Then ∂L/∂h0 = a(t0) and ∂L/∂θ = q(t0).
//!
//! Backsolve integrates h backward alongside ([h, a, q]); the interpolating adjoint takes
//! h(t) from the forward solve's dense output and integrates only [a, q]. With the
//! seminorm, q (and nothing else) is left out of the error norm.

use nalgebra::DMatrix;

use crate::adjoint::dense::Dense;
use crate::dynamics::Dynamics;
use crate::error::NodeError;
use crate::forward::{ForwardData, step_error};
use crate::options::GradOptions;
use crate::options::Method;
use crate::stats::SolveStats;
use crate::stepper::Stepper;
use std::cell::RefCell;

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
    let dense = RefCell::new(Dense::new(
        fwd,
        matches!(opts.method, Method::InterpolatingRecursive),
    ));
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
            dense.borrow_mut().eval_at(f, theta, t, &mut hbuf);
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
                match st.step(&mut sys, |s| dense.borrow_mut().release_after(s.t_new)) {
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
    stats.nfe_backward += dense.borrow().nfe();
    Ok((y[off..off + d].to_vec(), y[off + d..].to_vec()))
}
