//! The forward tangent of the solve (a JVP): the tangent of every stage of the solver's
//! own steps, carried along a re-run of the forward solve. It is exactly the transpose of
//! the discrete adjoint, so the pair passes the dot-product test to rounding.

use nalgebra::DMatrix;

use crate::dynamics::Dynamics;
use crate::error::NodeError;
use crate::forward::step_error;
use crate::options::SolverOptions;
use crate::stats::SolveStats;
use crate::stepper::Stepper;
use crate::tableau::{A, C, dense_weights};

/// Tangents of the states at the observation times.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tangent<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    h0: &[f64],
    t0: f64,
    ts: &[f64],
    opts: &SolverOptions,
    h0_dot: &[f64],
    theta_dot: &[f64],
    t0_dot: f64,
    ts_dot: &[f64],
) -> Result<DMatrix<f64>, NodeError> {
    let d = h0.len();
    let kk = ts.len();
    let mut out = DMatrix::zeros(kk, d);
    let mut f0 = vec![0.0; d];
    f.eval(t0, h0, theta, &mut f0);
    // moving t0 acts like moving h0 by −f(t0, h0) dt0
    let mut v: Vec<f64> = (0..d).map(|j| h0_dot[j] - f0[j] * t0_dot).collect();
    let mut fk = vec![0.0; d];
    let mut next = 0;
    while next < kk && ts[next] == t0 {
        for j in 0..d {
            out[(next, j)] = v[j] + f0[j] * ts_dot[next];
        }
        next += 1;
    }
    let mut kdot = vec![vec![0.0; d]; 7];
    f.jvp(t0, h0, theta, &v, theta_dot, &mut kdot[0]);
    let (mut yi, mut ydot, mut yo) = (vec![0.0; d], vec![0.0; d], vec![0.0; d]);
    let mut sys = |t: f64, y: &[f64], dy: &mut [f64]| f.eval(t, y, theta, dy);
    let t_end = ts[kk - 1];
    let mut st = Stepper::new(&mut sys, t0, t_end, h0, d, opts, None);
    while !st.done {
        let r = st.step(&mut sys, |s| {
            let h = s.h;
            for i in 1..7 {
                yi.copy_from_slice(s.y);
                ydot.copy_from_slice(&v);
                for j in 0..i {
                    let c = h * A[i][j];
                    for q in 0..d {
                        yi[q] += c * s.k[j][q];
                        ydot[q] += c * kdot[j][q];
                    }
                }
                let (lo, hi) = kdot.split_at_mut(i);
                let _ = lo;
                f.jvp(s.t + C[i] * h, &yi, theta, &ydot, theta_dot, &mut hi[0]);
            }
            while next < kk && ts[next] <= s.t_new {
                let th = ((ts[next] - s.t) / h).clamp(0.0, 1.0);
                let w = dense_weights(th);
                for q in 0..d {
                    yo[q] = s.y[q];
                    out[(next, q)] = v[q];
                    for i in 0..7 {
                        yo[q] += h * w[i] * s.k[i][q];
                        out[(next, q)] += h * w[i] * kdot[i][q];
                    }
                }
                f.eval(ts[next], &yo, theta, &mut fk);
                for q in 0..d {
                    out[(next, q)] += fk[q] * ts_dot[next];
                }
                next += 1;
            }
            // the new state's tangent is the last stage input's (FSAL)
            v.copy_from_slice(&ydot);
            kdot.swap(0, 6);
        });
        r.map_err(|e| step_error(e, "tangent", SolveStats::default()))?;
    }
    Ok(out)
}
