//! argmin's L-BFGS as the outer optimizer: the validation loss V(x*(θ), θ) as a
//! [`Differentiable`] function of θ whose gradient is our implicit hypergradient.
//!
//! ```
//! use ad_core::MatOps;
//! use implicit::solvers::argmin_rs::LbfgsOptions;
//! use implicit::hyper::{optimize_lbfgs, InnerSolution, ValidationLoss};
//! use implicit::{IftOptions, ImplicitError, Objective};
//! // x*(θ) = argmin ½(x − 1)² + ½θx² = 1/(1+θ);  V = ½(x − ½)² is smallest at θ = 1.
//! struct Inner;
//! impl Objective for Inner {
//!     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
//!         let t = &t[0];
//!         x.add_f64(-1.0).sq_norm() * 0.5 + t.get(0, 0) * x.sq_norm() * 0.5
//!     }
//! }
//! struct Val;
//! impl ValidationLoss for Val {
//!     fn loss<M: MatOps>(&self, x: &M, _t: &M) -> M::Scalar { x.add_f64(-0.5).sq_norm() * 0.5 }
//! }
//! let mut solver = |t: &[f64], _: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
//!     Ok(InnerSolution::new(vec![1.0 / (1.0 + t[0])], 0))
//! };
//! let opts = LbfgsOptions::default().grad_tol(1e-10);
//! let out = optimize_lbfgs(&Inner, &Val, &[0.2], &mut solver, &opts, &IftOptions::default())?;
//! assert!(out.converged && (out.theta[0] - 1.0).abs() < 1e-6);
//! assert!(out.trace.last().unwrap().val_loss < 1e-12);
//! # Ok::<(), ImplicitError>(())
//! ```

use std::cell::RefCell;

use ad_core::AdError;
use serde::{Deserialize, Serialize};

use super::hypergrad::{InnerSolver, ValidationLoss, hypergradient_warm};
use super::optimize::TraceStep;
use crate::error::{ImplicitError, check_finite};
use crate::ift::IftOptions;
use crate::problem::Objective;
use crate::solvers::argmin_rs::{ArgminError, Differentiable, LbfgsOptions, run_lbfgs};

/// What [`optimize_lbfgs`] found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LbfgsOutcome {
    /// The last accepted hyperparameters.
    pub theta: Vec<f64>,
    /// Whether ‖dV/dθ‖ reached `grad_tol` (else the iteration budget ran out, or argmin's
    /// line search gave up).
    pub converged: bool,
    /// L-BFGS iterations.
    pub iterations: u64,
    /// Every hypergradient evaluation (line-search trials included), in order.
    pub trace: Vec<TraceStep>,
}

struct State<'a, S: ?Sized> {
    solver: &'a mut S,
    warm: Option<Vec<f64>>,
    trace: Vec<TraceStep>,
}

/// V(x*(θ), θ) as a function of θ.
struct HyperFn<'a, 'b, O, V, S: ?Sized> {
    inner: &'a O,
    val: &'a V,
    ift: &'a IftOptions,
    state: &'b RefCell<State<'a, S>>,
}

fn wrap(e: ImplicitError) -> AdError {
    AdError::CustomRule {
        name: "hypergradient".to_string(),
        rule: "vjp",
        source: Box::new(e),
    }
}

impl<O: Objective, V: ValidationLoss, S: InnerSolver + ?Sized> Differentiable
    for HyperFn<'_, '_, O, V, S>
{
    fn value(&self, theta: &[f64]) -> Result<f64, AdError> {
        self.value_and_grad(theta).map(|(v, _)| v)
    }
    fn value_and_grad(&self, theta: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
        let mut st = self.state.borrow_mut();
        let State {
            solver,
            warm,
            trace,
        } = &mut *st;
        let h = hypergradient_warm(
            self.inner,
            self.val,
            theta,
            &mut **solver,
            warm.as_deref(),
            self.ift,
        )
        .map_err(wrap)?;
        trace.push(TraceStep::new(trace.len(), theta, &h));
        let out = (h.val_loss, h.grad);
        *warm = Some(h.x);
        Ok(out)
    }
    fn hvp(&self, _theta: &[f64], _v: &[f64]) -> Result<Vec<f64>, AdError> {
        Err(wrap(ImplicitError::InvalidOption {
            name: "outer Hessian",
            value: 0.0,
            reason: "hypergradient L-BFGS provides no Hessian-vector products",
        }))
    }
}

/// Minimize `V(x*(θ), θ)` over θ with argmin's L-BFGS (More-Thuente line search), every
/// gradient an implicit hypergradient and every inner solve warm-started from the last.
///
/// Running out of iterations is not an error here (hyperparameter searches are usually
/// given a budget): the outcome says `converged: false`. Failures of a hypergradient
/// (inner solver, unconverged inner solution, backward solve) are errors.
pub fn optimize_lbfgs<O, V, S>(
    inner: &O,
    val: &V,
    theta0: &[f64],
    solver: &mut S,
    options: &LbfgsOptions,
    ift: &IftOptions,
) -> Result<LbfgsOutcome, ImplicitError>
where
    O: Objective,
    V: ValidationLoss,
    S: InnerSolver + ?Sized,
{
    check_finite("initial hyperparameters theta0", theta0)?;
    let state = RefCell::new(State {
        solver,
        warm: None,
        trace: Vec::new(),
    });
    let f = HyperFn {
        inner,
        val,
        ift,
        state: &state,
    };
    let result = run_lbfgs(f, theta0, options);
    let trace = state.into_inner().trace;
    match result {
        Ok(sol) => Ok(LbfgsOutcome {
            theta: sol.x,
            converged: true,
            iterations: sol.iterations,
            trace,
        }),
        Err(ArgminError::NotConverged { x, iterations, .. }) => Ok(LbfgsOutcome {
            theta: x,
            converged: false,
            iterations,
            trace,
        }),
        Err(e) => Err(e.into()),
    }
}
