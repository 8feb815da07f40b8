//! Reference forward solves with `ode_solvers` 0.6.2 (Dopri5, Dop853, Rk4) on the same
//! [`Dynamics`], for checking the crate's own stepper and for users who want those
//! methods. Observation times are reached by one solve per interval (sparse output),
//! since `ode_solvers` has no stepping API and its dense output runs forward only.
//!
//! ```
//! use ad_core::nn::{Activation, Init, Mlp};
//! use neuralode::reference::{solve_reference, RefMethod};
//! use neuralode::{solve, MlpDynamics, SolverOptions};
//! let f = MlpDynamics::new(Mlp::new(&[2, 8, 2], Activation::Tanh, Activation::Identity));
//! let theta = f.mlp().init(Init::XavierUniform, 2);
//! let ts = [0.5, 1.25, 2.0];
//! let ours = solve(&f, &theta, &[1.0, 0.0], 0.0, &ts, &SolverOptions::default().rtol(1e-10).atol(1e-10))?;
//! let theirs = solve_reference(&f, &theta, &[1.0, 0.0], 0.0, &ts, 1e-10, 1e-10, RefMethod::Dop853)?;
//! assert!((&ours.states - &theirs.states).amax() < 1e-8);
//! # Ok::<(), neuralode::NodeError>(())
//! ```

use nalgebra::{DMatrix, DVector};
use ode_solvers::{Dop853, Dopri5, OutputType, Rk4, System};

use crate::dynamics::Dynamics;
use crate::error::NodeError;
use crate::forward::validate_problem;
use crate::grad::Solution;
use crate::options::SolverOptions;
use crate::stats::SolveStats;

/// Which `ode_solvers` method.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RefMethod {
    /// Dormand–Prince 5(4), adaptive (tolerances finite, >= 0, not both zero).
    Dopri5,
    /// Dormand–Prince 8(5,3), adaptive (tolerances as for Dopri5).
    Dop853,
    /// Classical Runge–Kutta 4 with at most this step size (finite, > 0; each interval is
    /// cut into equal steps; the tolerances are not used).
    Rk4 {
        /// Largest step.
        max_step: f64,
    },
}

/// Adapts a [`Dynamics`] at fixed θ to `ode_solvers::System`.
pub struct OdeSystem<'a, D: ?Sized> {
    /// The field.
    pub f: &'a D,
    /// Its parameters.
    pub theta: &'a [f64],
}

impl<D: Dynamics + ?Sized> System<f64, DVector<f64>> for OdeSystem<'_, D> {
    fn system(&self, t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        self.f.eval(t, y.as_slice(), self.theta, dy.as_mut_slice());
    }
}

fn failed(method: &'static str, e: impl std::fmt::Display) -> NodeError {
    NodeError::Reference {
        method,
        message: e.to_string(),
    }
}

/// Check the options `method` uses: the tolerances of the adaptive methods as in
/// [`SolverOptions::validate`], Rk4's `max_step` finite and > 0.
fn validate_ref(rtol: f64, atol: f64, method: RefMethod) -> Result<(), NodeError> {
    match method {
        RefMethod::Dopri5 | RefMethod::Dop853 => {
            SolverOptions::default().rtol(rtol).atol(atol).validate()
        }
        RefMethod::Rk4 { max_step } if !(max_step.is_finite() && max_step > 0.0) => {
            Err(NodeError::InvalidOption {
                name: "Rk4::max_step",
                value: max_step,
                reason: "must be finite and > 0",
            })
        }
        RefMethod::Rk4 { .. } => Ok(()),
    }
}

/// States at the observation times by `ode_solvers`, one solve per interval. Invalid
/// options (see [`RefMethod`]) are a [`NodeError::InvalidOption`].
#[allow(clippy::too_many_arguments)]
pub fn solve_reference<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    h0: &[f64],
    t0: f64,
    ts: &[f64],
    rtol: f64,
    atol: f64,
    method: RefMethod,
) -> Result<Solution, NodeError> {
    validate_ref(rtol, atol, method)?;
    validate_problem(f, theta, h0, t0, ts)?;
    let mut y = DVector::from_column_slice(h0);
    let mut t = t0;
    let mut states = DMatrix::zeros(ts.len(), h0.len());
    let mut stats = SolveStats::default();
    for (k, &tk) in ts.iter().enumerate() {
        if tk > t {
            let sys = OdeSystem { f, theta };
            let (s, last) = match method {
                RefMethod::Dopri5 => {
                    let mut s = Dopri5::new(sys, t, tk, tk - t, y.clone(), rtol, atol);
                    s.set_output(OutputType::Sparse);
                    let st = s.integrate().map_err(|e| failed("Dopri5", e))?;
                    (st, s.y_out().last().cloned())
                }
                RefMethod::Dop853 => {
                    let mut s = Dop853::new(sys, t, tk, tk - t, y.clone(), rtol, atol);
                    s.set_output(OutputType::Sparse);
                    let st = s.integrate().map_err(|e| failed("Dop853", e))?;
                    (st, s.y_out().last().cloned())
                }
                RefMethod::Rk4 { max_step } => {
                    let n = ((tk - t) / max_step).ceil().max(1.0);
                    let mut s = Rk4::new(sys, t, y.clone(), tk, (tk - t) / n);
                    let st = s.integrate().map_err(|e| failed("Rk4", e))?;
                    (st, s.y_out().last().cloned())
                }
            };
            y = last.ok_or_else(|| failed("ode_solvers", "no output"))?;
            stats.nfe_forward += s.num_eval as usize;
            stats.accepted_forward += s.accepted_steps as usize;
            stats.rejected_forward += s.rejected_steps as usize;
            t = tk;
        }
        states.set_row(k, &y.transpose());
    }
    Ok(Solution { states, stats })
}
