//! The solve replayed in any matrix mode: the steps are chosen by a plain `f64` solve,
//! then every stage is recomputed with `MatOps` operations on a [`VectorField`]. On
//! `MatVar` this records the whole solver on the ad-core tape (discretize-then-optimize
//! on the tape: the baseline the hand-written [`Method::Direct`](crate::Method::Direct)
//! sweep must equal); on `DualMat` it is forward mode through the solver.
//!
//! ```
//! use ad_core::{MatOps, Tape};
//! use nalgebra::DMatrix;
//! use neuralode::{solve_unrolled, SolverOptions, VectorField};
//! struct Linear;
//! impl VectorField for Linear {
//!     fn dim(&self) -> usize { 2 }
//!     fn param_shapes(&self) -> Vec<(usize, usize)> { vec![(2, 2)] }
//!     fn eval<M: MatOps>(&self, _t: f64, h: &M, th: &[M]) -> M { th[0].matmul(h) }
//! }
//! let tape = Tape::new();
//! let a = tape.mat_var(DMatrix::from_row_slice(2, 2, &[-0.5, 1.0, -1.0, -0.5]));
//! let h0 = tape.mat_var(DMatrix::from_column_slice(2, 1, &[1.0, 0.0]));
//! let states = solve_unrolled(&Linear, &h0, &[a], 0.0, &[0.5, 1.0], &SolverOptions::default())?;
//! let g = tape.gradient(states.sum())?;                 // through every stage on the tape
//! assert_eq!(g.wrt_mat(&a).shape(), (2, 2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use ad_core::MatOps;

use crate::dynamics::{TapeDynamics, VectorField};
use crate::error::NodeError;
use crate::forward::{Keep, run, validate_problem};
use crate::options::SolverOptions;
use crate::tableau::{A, C, dense_weights};
use crate::trajectory::ObsLoc;

/// The states at the observation times (`K x dim`) in the mode of `h0` and `theta`, by
/// replaying the steps a plain solve chose.
pub fn solve_unrolled<M: MatOps, F: VectorField>(
    field: &F,
    h0: &M,
    theta: &[M],
    t0: f64,
    ts: &[f64],
    opts: &SolverOptions,
) -> Result<M, NodeError> {
    opts.validate()?;
    let plain = TapeDynamics::new(field);
    let theta_f: Vec<f64> = theta
        .iter()
        .flat_map(|m| m.value().as_slice().to_vec())
        .collect();
    let h0_f = h0.value();
    validate_problem(&plain, &theta_f, h0_f.as_slice(), t0, ts)?;
    let fwd = run(
        &plain,
        &theta_f,
        h0_f.as_slice(),
        t0,
        ts,
        opts,
        Keep::AllSteps,
    )?;
    let steps = fwd.steps.expect("kept");
    let mut rows: Vec<M> = Vec::with_capacity(ts.len());
    let mut obs = fwd.locs.iter().peekable();
    while let Some(ObsLoc::Start) = obs.peek() {
        rows.push(h0.transpose());
        obs.next();
    }
    let mut y = h0.clone();
    let mut k0 = field.eval(t0, &y, theta);
    for n in 0..steps.len() {
        let (t, h) = (steps.t[n], steps.h[n]);
        let mut k: Vec<M> = vec![k0.clone()];
        for s in 1..7 {
            let mut ys = y.clone();
            for j in 0..s {
                if A[s][j] != 0.0 {
                    ys = ys.add(&k[j].scale_f64(h * A[s][j]));
                }
            }
            k.push(field.eval(t + C[s] * h, &ys, theta));
            if s == 6 {
                while let Some(&&ObsLoc::Step { step, theta: th }) = obs.peek() {
                    if step != n {
                        break;
                    }
                    let w = dense_weights(th);
                    let mut out = y.clone();
                    for (i, ki) in k.iter().enumerate() {
                        if w[i] != 0.0 {
                            out = out.add(&ki.scale_f64(h * w[i]));
                        }
                    }
                    rows.push(out.transpose());
                    obs.next();
                }
                y = ys;
            }
        }
        k0 = k.pop().expect("seven stages");
    }
    Ok(M::vcat(&rows))
}
