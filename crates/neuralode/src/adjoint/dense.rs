//! Where the interpolating adjoint reads h(t): the stored forward steps, segments
//! recomputed from checkpoints on demand, or single steps served last to first by
//! recursive bisection (memory logarithmic in the number of steps).

use std::collections::VecDeque;

use crate::adjoint::discrete::ReverseSegments;
use crate::dynamics::Dynamics;
use crate::forward::ForwardData;
use crate::stepper::Stepper;
use crate::trajectory::Steps;

pub(crate) enum Dense<'a> {
    Stored(&'a Steps),
    Replay(Replay<'a>),
    Reverse(Reverse),
}

/// Segments recomputed from checkpoints, the two most recent kept.
pub(crate) struct Replay<'a> {
    checkpoints: &'a [(usize, Stepper)],
    n_steps: usize,
    loaded: Vec<(usize, Steps)>,
    nfe: usize,
}

/// Steps recomputed last to first; kept while the backward solve may still need them.
pub(crate) struct Reverse {
    segs: ReverseSegments,
    /// Loaded steps, latest first (each a one-step `Steps`).
    loaded: VecDeque<Steps>,
}

impl<'a> Dense<'a> {
    pub fn new(fwd: &'a ForwardData, recursive: bool) -> Dense<'a> {
        match &fwd.steps {
            Some(steps) => Dense::Stored(steps),
            None if recursive => Dense::Reverse(Reverse {
                segs: ReverseSegments::new(fwd.checkpoints[0].1.snapshot(), fwd.n_steps),
                loaded: VecDeque::new(),
            }),
            None => Dense::Replay(Replay {
                checkpoints: &fwd.checkpoints,
                n_steps: fwd.n_steps,
                loaded: Vec::with_capacity(2),
                nfe: 0,
            }),
        }
    }

    /// f-evaluations spent recomputing the forward steps.
    pub fn nfe(&self) -> usize {
        match self {
            Dense::Stored(_) => 0,
            Dense::Replay(r) => r.nfe,
            Dense::Reverse(r) => r.segs.nfe,
        }
    }

    /// The backward solve accepted a step ending at `t`: it never looks later again.
    pub fn release_after(&mut self, t: f64) {
        if let Dense::Reverse(r) = self {
            while r.loaded.len() > 1 && r.loaded.front().is_some_and(|s| s.t[0] > t) {
                r.loaded.pop_front();
            }
        }
    }

    /// h(t) into `out`. Recomputation replays steps the forward solve accepted, with the
    /// same arithmetic, so it cannot fail.
    pub fn eval_at<D: Dynamics + ?Sized>(&mut self, f: &D, theta: &[f64], t: f64, out: &mut [f64]) {
        let mut sys = |t: f64, y: &[f64], dy: &mut [f64]| f.eval(t, y, theta, dy);
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
            Dense::Reverse(r) => {
                // pull earlier steps until one starts at or before t
                while r.loaded.back().is_none_or(|s| s.t[0] > t) {
                    match r.segs.next(&mut sys, out.len()) {
                        Some((_, steps)) => r
                            .loaded
                            .push_back(steps.expect("replaying steps the forward solve accepted")),
                        None => break, // t before t0 by rounding: the first step serves
                    }
                }
                let s = r
                    .loaded
                    .iter()
                    .find(|s| s.t[0] <= t)
                    .or(r.loaded.back())
                    .expect("at least one step");
                s.eval_at(t, out);
            }
        }
    }
}
