//! The forward solve: the crate's Dopri5 from t0 to the last observation time, states at
//! the observation times by dense output, and what the backward pass needs kept.

use nalgebra::DMatrix;

use crate::dynamics::Dynamics;
use crate::error::{NodeError, check_finite, check_len};
use crate::options::SolverOptions;
use crate::stats::SolveStats;
use crate::stepper::{StepFail, StepView, Stepper};
use crate::trajectory::{ObsLoc, Steps, dense_into};

/// What the forward solve keeps for the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Nothing (backsolve needs only the states at the observations).
    Nothing,
    /// Every accepted step (direct, interpolating).
    AllSteps,
    /// The stepper every `n` accepted steps (checkpointed).
    Checkpoints(usize),
}

/// The result of a forward solve.
#[derive(Clone, Debug)]
pub(crate) struct ForwardData {
    pub states: DMatrix<f64>,
    pub locs: Vec<ObsLoc>,
    pub steps: Option<Steps>,
    /// (index of the next accepted step, the stepper before it).
    pub checkpoints: Vec<(usize, Stepper)>,
    pub n_steps: usize,
    pub stats: SolveStats,
}

/// Check the problem's data: lengths, finiteness, increasing times after t0.
pub(crate) fn validate_problem<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    h0: &[f64],
    t0: f64,
    ts: &[f64],
) -> Result<(), NodeError> {
    check_len("initial state h0", f.dim(), h0.len())?;
    check_len("parameters theta", f.num_params(), theta.len())?;
    check_finite("initial state h0", h0)?;
    check_finite("parameters theta", theta)?;
    check_finite("initial time t0", &[t0])?;
    check_finite("observation times", ts)?;
    if ts.is_empty() {
        return Err(NodeError::NoObservations);
    }
    if ts[0] < t0 {
        return Err(NodeError::TimeBeforeStart {
            index: 0,
            value: ts[0],
            t0,
        });
    }
    for i in 1..ts.len() {
        if ts[i] <= ts[i - 1] {
            return Err(NodeError::TimesOutOfOrder {
                index: i,
                previous: ts[i - 1],
                value: ts[i],
            });
        }
    }
    Ok(())
}

/// Turn a stepper failure into the crate's error.
pub(crate) fn step_error(e: StepFail, phase: &'static str, stats: SolveStats) -> NodeError {
    match e {
        StepFail::Underflow { t, h } => NodeError::StepSizeUnderflow { t, h, phase, stats },
        StepFail::MaxSteps { t, max_steps } => NodeError::MaxSteps {
            t,
            max_steps,
            phase,
            stats,
        },
        StepFail::Stiff { t, h_lambda } => NodeError::Stiff {
            t,
            h_lambda,
            phase,
            stats,
        },
        StepFail::NonFinite { t, h, what } => NodeError::Diverged {
            t,
            step: h,
            what,
            phase,
            stats,
        },
    }
}

/// Record the observations that fall in one accepted step; returns the time of the first
/// whose dense output is not finite.
fn observe(
    s: &StepView<'_>,
    step: usize,
    ts: &[f64],
    next: &mut usize,
    states: &mut DMatrix<f64>,
    locs: &mut Vec<ObsLoc>,
    out: &mut [f64],
) -> Option<f64> {
    let mut bad = None;
    while *next < ts.len() && ts[*next] <= s.t_new {
        let theta = ((ts[*next] - s.t) / s.h).clamp(0.0, 1.0);
        dense_into(s.y, |i| &s.k[i], s.h, theta, out);
        if bad.is_none() && out.iter().any(|v| !v.is_finite()) {
            bad = Some(ts[*next]);
        }
        for (j, v) in out.iter().enumerate() {
            states[(*next, j)] = *v;
        }
        locs.push(ObsLoc::Step { step, theta });
        *next += 1;
    }
    bad
}

/// Solve from (t0, h0) through the observation times (validated by the caller).
pub(crate) fn run<D: Dynamics + ?Sized>(
    f: &D,
    theta: &[f64],
    h0: &[f64],
    t0: f64,
    ts: &[f64],
    opts: &SolverOptions,
    keep: Keep,
) -> Result<ForwardData, NodeError> {
    let d = h0.len();
    let t_end = ts[ts.len() - 1];
    let mut sys = |t: f64, y: &[f64], dy: &mut [f64]| f.eval(t, y, theta, dy);
    let mut st = Stepper::new(&mut sys, t0, t_end, h0, d, opts, None);
    let mut states = DMatrix::zeros(ts.len(), d);
    let mut locs = Vec::with_capacity(ts.len());
    let mut next = 0;
    while next < ts.len() && ts[next] == t0 {
        for j in 0..d {
            states[(next, j)] = h0[j];
        }
        locs.push(ObsLoc::Start);
        next += 1;
    }
    let mut steps = (keep == Keep::AllSteps).then(|| Steps::new(d));
    let mut checkpoints = Vec::new();
    if let Keep::Checkpoints(_) = keep {
        // the initial state, even when there is no step (all times at t0)
        checkpoints.push((0, st.snapshot()));
    }
    let mut out = vec![0.0; d];
    let mut n = 0;
    let mut bad_obs = None;
    while !st.done {
        if let Keep::Checkpoints(every) = keep
            && n > 0
            && n % every == 0
        {
            checkpoints.push((n, st.snapshot()));
        }
        let r = st.step(&mut sys, |s| {
            if let Some(t) = observe(s, n, ts, &mut next, &mut states, &mut locs, &mut out) {
                bad_obs = bad_obs.or(Some((t, s.h)));
            }
            if let Some(steps) = steps.as_mut() {
                steps.push(s);
            }
        });
        let stats = SolveStats {
            nfe_forward: st.nfe,
            accepted_forward: st.accepted,
            rejected_forward: st.rejected,
            ..SolveStats::default()
        };
        if let Err(e) = r {
            return Err(step_error(e, "forward", stats));
        }
        if let Some((t, step)) = bad_obs {
            return Err(NodeError::Diverged {
                t,
                step,
                what: "dense output at an observation time",
                phase: "forward",
                stats,
            });
        }
        n += 1;
    }
    Ok(ForwardData {
        states,
        locs,
        steps,
        checkpoints,
        n_steps: n,
        stats: SolveStats {
            nfe_forward: st.nfe,
            accepted_forward: st.accepted,
            rejected_forward: st.rejected,
            ..SolveStats::default()
        },
    })
}
