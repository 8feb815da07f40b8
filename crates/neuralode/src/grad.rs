//! The public solve and gradient API: [`solve`] (forward only), [`forward`] (a forward
//! pass that keeps what its method needs) with [`ForwardPass::vjp`] and
//! [`ForwardPass::jvp`], and [`value_and_grad`] for a loss on the observed states.

use nalgebra::DMatrix;

use crate::adjoint::{continuous::continuous, discrete::discrete, tangent::tangent};
use crate::dynamics::Dynamics;
use crate::error::{NodeError, check_finite, check_len};
use crate::forward::{ForwardData, Keep, run, validate_problem};
use crate::options::{GradOptions, Method, SolverOptions};
use crate::stats::SolveStats;

/// The states at the observation times (`K x dim`, one row per time) and the stats.
#[derive(Clone, Debug)]
pub struct Solution {
    /// Row k is h(t_k).
    pub states: DMatrix<f64>,
    /// Function evaluations and steps.
    pub stats: SolveStats,
}

/// Solve dh/dt = f(t, h; θ) from (t0, h0) and return h at the observation times `ts`
/// (strictly increasing, none before t0) with the crate's Dopri5.
pub fn solve<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    h0: &[f64],
    t0: f64,
    ts: &[f64],
    opts: &SolverOptions,
) -> Result<Solution, NodeError> {
    opts.validate()?;
    validate_problem(f, theta, h0, t0, ts)?;
    let fwd = run(f, theta, h0, t0, ts, opts, Keep::Nothing)?;
    Ok(Solution {
        states: fwd.states,
        stats: fwd.stats,
    })
}

/// Gradients of a scalar loss of the observed states.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Gradients {
    /// ∂L/∂θ.
    pub theta: Vec<f64>,
    /// ∂L/∂h0.
    pub h0: Vec<f64>,
    /// ∂L/∂t0.
    pub t0: f64,
    /// ∂L/∂t_k, one per observation time.
    pub ts: Vec<f64>,
    /// Forward and backward counts.
    pub stats: SolveStats,
}

/// A forward solve that keeps what its gradient method needs; differentiate it with
/// [`vjp`](ForwardPass::vjp) (any number of times) or [`jvp`](ForwardPass::jvp).
#[derive(Clone, Debug)]
pub struct ForwardPass {
    theta: Vec<f64>,
    h0: Vec<f64>,
    t0: f64,
    ts: Vec<f64>,
    opts: GradOptions,
    data: ForwardData,
}

/// Solve forward for a gradient by `opts.method`.
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp};
/// use nalgebra::DMatrix;
/// use neuralode::{forward, GradOptions, Method, MlpDynamics};
/// let f = MlpDynamics::new(Mlp::new(&[2, 8, 2], Activation::Tanh, Activation::Identity));
/// let theta = f.mlp().init(Init::XavierUniform, 1);
/// let ts = [0.5, 1.0, 1.7];
/// let opts = GradOptions::default().method(Method::Interpolating);
/// let pass = forward(&f, &theta, &[1.0, 0.0], 0.0, &ts, &opts)?;
/// let states = pass.states().clone();              // 3 x 2
/// let g = pass.vjp(&f, &(&states * 2.0))?;         // gradient of sum of squares
/// assert_eq!((g.theta.len(), g.ts.len()), (theta.len(), 3));
/// # Ok::<(), neuralode::NodeError>(())
/// ```
pub fn forward<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    h0: &[f64],
    t0: f64,
    ts: &[f64],
    opts: &GradOptions,
) -> Result<ForwardPass, NodeError> {
    opts.validate()?;
    validate_problem(f, theta, h0, t0, ts)?;
    let keep = match opts.method {
        Method::Direct | Method::Interpolating => Keep::AllSteps,
        Method::Checkpointed { every } | Method::InterpolatingCheckpointed { every } => {
            Keep::Checkpoints(every)
        }
        // only the initial state
        Method::RecursiveCheckpointed | Method::InterpolatingRecursive => {
            Keep::Checkpoints(usize::MAX)
        }
        Method::Backsolve { .. } => Keep::Nothing,
    };
    let data = run(f, theta, h0, t0, ts, &opts.solver, keep)?;
    Ok(ForwardPass {
        theta: theta.to_vec(),
        h0: h0.to_vec(),
        t0,
        ts: ts.to_vec(),
        opts: opts.clone(),
        data,
    })
}

impl ForwardPass {
    /// The states at the observation times (`K x dim`).
    pub fn states(&self) -> &DMatrix<f64> {
        &self.data.states
    }

    /// The forward solve's counts.
    pub fn stats(&self) -> SolveStats {
        self.data.stats
    }

    /// Number of accepted forward steps.
    pub fn num_steps(&self) -> usize {
        self.data.n_steps
    }

    /// The options the pass was made with.
    pub fn options(&self) -> &GradOptions {
        &self.opts
    }

    /// Check that `f` has the pass's state size and parameter count.
    fn check_field<D: Dynamics + ?Sized>(&self, f: &D) -> Result<(), NodeError> {
        check_len("state size of the field", self.h0.len(), f.dim())?;
        check_len(
            "parameter count of the field",
            self.theta.len(),
            f.num_params(),
        )
    }

    /// Gradients from the cotangents of the observed states (`K x dim`), by the method of
    /// the options. `f` must be the field the pass was solved with (its sizes are checked).
    pub fn vjp<D: Dynamics + ?Sized>(
        &self,
        f: &D,
        states_bar: &DMatrix<f64>,
    ) -> Result<Gradients, NodeError> {
        self.check_field(f)?;
        let (k, d) = self.data.states.shape();
        check_len(
            "cotangent rows (one per observation)",
            k,
            states_bar.nrows(),
        )?;
        check_len("cotangent columns (state size)", d, states_bar.ncols())?;
        check_finite("cotangent of the states", states_bar.as_slice())?;
        let mut stats = self.data.stats;
        let (h0_bar, theta_bar) = match self.opts.method {
            Method::Direct | Method::Checkpointed { .. } | Method::RecursiveCheckpointed => {
                discrete(
                    f,
                    &self.theta,
                    &self.h0,
                    self.t0,
                    &self.data,
                    states_bar,
                    &mut stats,
                    self.opts.method == Method::RecursiveCheckpointed,
                )?
            }
            Method::Backsolve { reset_state } => continuous(
                f,
                &self.theta,
                self.t0,
                &self.ts,
                &self.data,
                states_bar,
                Some(reset_state),
                &self.opts,
                &mut stats,
            )?,
            Method::Interpolating
            | Method::InterpolatingCheckpointed { .. }
            | Method::InterpolatingRecursive => continuous(
                f,
                &self.theta,
                self.t0,
                &self.ts,
                &self.data,
                states_bar,
                None,
                &self.opts,
                &mut stats,
            )?,
        };
        // dL/dt_k = ȳ_k · f(t_k, h(t_k));  dL/dt0 = −h0̄ · f(t0, h0)
        let mut fk = vec![0.0; d];
        let mut yk = vec![0.0; d];
        let mut ts_bar = Vec::with_capacity(k);
        for i in 0..k {
            for j in 0..d {
                yk[j] = self.data.states[(i, j)];
            }
            f.eval(self.ts[i], &yk, &self.theta, &mut fk);
            ts_bar.push((0..d).map(|j| states_bar[(i, j)] * fk[j]).sum());
        }
        f.eval(self.t0, &self.h0, &self.theta, &mut fk);
        let t0_bar = -(0..d).map(|j| h0_bar[j] * fk[j]).sum::<f64>();
        stats.nfe_backward += k + 1;
        Ok(Gradients {
            theta: theta_bar,
            h0: h0_bar,
            t0: t0_bar,
            ts: ts_bar,
            stats,
        })
    }

    /// Tangents of the observed states (`K x dim`) from tangents of h0, θ, t0 and the
    /// times: the forward tangent of the solver's own steps (one more forward solve).
    pub fn jvp<D: Dynamics + ?Sized>(
        &self,
        f: &D,
        h0_dot: &[f64],
        theta_dot: &[f64],
        t0_dot: f64,
        ts_dot: &[f64],
    ) -> Result<DMatrix<f64>, NodeError> {
        self.check_field(f)?;
        check_len("tangent of h0", self.h0.len(), h0_dot.len())?;
        check_len("tangent of theta", self.theta.len(), theta_dot.len())?;
        check_len("tangent of the times", self.ts.len(), ts_dot.len())?;
        check_finite("tangent of h0", h0_dot)?;
        check_finite("tangent of theta", theta_dot)?;
        check_finite("tangent of t0", &[t0_dot])?;
        check_finite("tangent of the times", ts_dot)?;
        tangent(
            f,
            &self.theta,
            &self.h0,
            self.t0,
            &self.ts,
            &self.opts.solver,
            h0_dot,
            theta_dot,
            t0_dot,
            ts_dot,
        )
    }
}

/// The loss `loss(states) -> (value, ∂value/∂states)` and its gradients.
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp};
/// use neuralode::{value_and_grad, GradOptions, MlpDynamics};
/// let f = MlpDynamics::new(Mlp::new(&[2, 8, 2], Activation::Tanh, Activation::Identity));
/// let theta = f.mlp().init(Init::XavierUniform, 1);
/// let (loss, g) = value_and_grad(&f, &theta, &[1.0, 0.0], 0.0, &[0.3, 0.9], &GradOptions::default(),
///     |s| (s.norm_squared(), s * 2.0))?;
/// assert!(loss > 0.0 && g.h0.len() == 2);
/// # Ok::<(), neuralode::NodeError>(())
/// ```
pub fn value_and_grad<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    h0: &[f64],
    t0: f64,
    ts: &[f64],
    opts: &GradOptions,
    loss: impl FnOnce(&DMatrix<f64>) -> (f64, DMatrix<f64>),
) -> Result<(f64, Gradients), NodeError> {
    let pass = forward(f, theta, h0, t0, ts, opts)?;
    let (value, bar) = loss(pass.states());
    check_finite("loss value", &[value])?;
    let g = pass.vjp(f, &bar)?;
    Ok((value, g))
}
