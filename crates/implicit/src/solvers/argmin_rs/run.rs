//! The runner shared by L-BFGS and Newton-CG: argmin's `Executor` under a monitor that
//! stops on the gradient norm, the iteration limit, or a step without progress.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use argmin::core::{
    Error as ArgminCoreError, Executor, IterState, KV, OptimizationResult, Problem, Solver, State,
    TerminationReason, TerminationStatus,
};
use nalgebra::DVector;

use super::error::{ArgminError, ArgminSolution, Termination, check_input};
use super::functions::Differentiable;
use super::monitor::{Shared, lock};
use super::problem::ArgminProblem;
use crate::linear::kernels::norm;

const NO_PROGRESS: &str = "no progress: the line search returned the previous iterate \
     (the cost no longer resolves the remaining decrease; ask for a larger grad_tol)";

pub(super) type DState<H> = IterState<DVector<f64>, DVector<f64>, (), H, (), f64>;

/// The last accepted iterate: point, cost, gradient norm, and the gradient argmin saw.
struct Accepted {
    x: Vec<f64>,
    cost: f64,
    grad_norm: f64,
    grad: Vec<f64>,
}

/// What a run knows about its progress, kept outside the solver (an `Executor` that
/// returns an error drops the solver).
#[derive(Default)]
struct Record {
    last: Option<Accepted>,
    converged: bool,
}

/// Wraps an argmin solver: replaces its stopping rules by the gradient-norm test, makes
/// sure every accepted iterate has its gradient, stops at the first recorded failure and
/// at steps that make no progress, and remembers the last accepted iterate (argmin's L-BFGS
/// loses it when its line search fails).
///
/// The inner solver's own `terminate` is not called: L-BFGS's tests are a gradient test
/// (ours) and a cost-change test, and Newton-CG's only test is a cost change. Near the
/// solution the cost stops resolving the decrease long before the gradient stops falling,
/// so a cost-change test stops them early (measured: Newton-CG at ‖∇f‖ ≈ 1e-8 with f ≈ 0.6).
struct Monitored<S> {
    inner: S,
    /// Stop when a step gives a curvature pair with `sᵀy <= 0` (quasi-Newton updates).
    check_curvature: bool,
    grad_tol: f64,
    scale: f64,
    shared: Arc<Shared>,
    record: Arc<Mutex<Record>>,
}

impl<S> Monitored<S> {
    fn check(&self) -> Result<(), ArgminCoreError> {
        if self.shared.failed() {
            Err(ArgminCoreError::msg("a function evaluation failed"))
        } else {
            Ok(())
        }
    }

    /// Fill in the cost and gradient of the state's point if missing, and remember it;
    /// returns the previously accepted iterate.
    fn complete<D: Differentiable, H>(
        &mut self,
        problem: &mut Problem<ArgminProblem<D>>,
        mut state: DState<H>,
    ) -> Result<(DState<H>, Option<Accepted>), ArgminCoreError> {
        let Some(x) = state.get_param().cloned() else {
            return Ok((state, None));
        };
        if !state.get_cost().is_finite() {
            let c = problem.cost(&x)?;
            state = state.cost(c);
        }
        if state.get_gradient().is_none() {
            let g = problem.gradient(&x)?;
            state = state.gradient(g);
        }
        let grad = state
            .get_gradient()
            .map_or_else(Vec::new, |g| g.as_slice().to_vec());
        let accepted = Accepted {
            x: x.as_slice().to_vec(),
            cost: state.get_cost() / self.scale,
            grad_norm: norm(&grad) / self.scale,
            grad,
        };
        let previous = lock(&self.record).last.replace(accepted);
        Ok((state, previous))
    }

    /// Why to stop after an accepted step from `prev` to `last`, if anything is wrong.
    fn stalled(&self, prev: &Accepted, last: &Accepted) -> Option<String> {
        if last.x == prev.x {
            return Some(NO_PROGRESS.to_string());
        }
        // More-Thuente reports its abnormal exits (step at its bounds, interval too small)
        // as success, with whatever point it has: an uphill step means it failed. Costs
        // are compared with an allowance of a few rounding errors.
        let allowance = 8.0 * f64::EPSILON * prev.cost.abs().max(f64::MIN_POSITIVE);
        if last.cost > prev.cost + allowance {
            return Some(format!(
                "the line search returned a higher cost ({:.6e} after {:.6e}): it failed \
                 (is the gradient consistent with the cost?)",
                last.cost, prev.cost
            ));
        }
        // L-BFGS stores the pair (s, y) = (Δx, Δ∇f) and divides by sᵀy and yᵀy next time: a
        // pair with sᵀy <= 0 (only rounding can give one after a strong-Wolfe line search)
        // makes its next direction NaN or uphill.
        if self.check_curvature {
            let sy: f64 = (0..last.x.len())
                .map(|i| (last.x[i] - prev.x[i]) * (last.grad[i] - prev.grad[i]))
                .sum();
            if sy.is_nan() || sy <= 0.0 {
                return Some(format!(
                    "curvature pair s^T y = {sy:.3e} <= 0: the step is below what the \
                     gradient resolves (ask for a larger grad_tol)"
                ));
            }
        }
        None
    }
}

impl<D, S, H> Solver<ArgminProblem<D>, DState<H>> for Monitored<S>
where
    D: Differentiable,
    S: Solver<ArgminProblem<D>, DState<H>>,
{
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn init(
        &mut self,
        problem: &mut Problem<ArgminProblem<D>>,
        state: DState<H>,
    ) -> Result<(DState<H>, Option<KV>), ArgminCoreError> {
        let (state, kv) = self.inner.init(problem, state)?;
        self.check()?;
        let (state, _) = self.complete(problem, state)?;
        Ok((state, kv))
    }

    fn next_iter(
        &mut self,
        problem: &mut Problem<ArgminProblem<D>>,
        state: DState<H>,
    ) -> Result<(DState<H>, Option<KV>), ArgminCoreError> {
        self.shared
            .iteration
            .store(state.get_iter(), Ordering::Relaxed);
        let (state, kv) = self.inner.next_iter(problem, state)?;
        self.check()?;
        if state.terminated() {
            return Ok((state, kv));
        }
        let (state, previous) = self.complete(problem, state)?;
        let stop = {
            let record = lock(&self.record);
            match (previous.as_ref(), record.last.as_ref()) {
                (Some(prev), Some(last)) if last.grad_norm > self.grad_tol => {
                    self.stalled(prev, last)
                }
                _ => None,
            }
        };
        match stop {
            Some(reason) => Ok((
                state.terminate_with(TerminationReason::SolverExit(reason)),
                kv,
            )),
            None => Ok((state, kv)),
        }
    }

    fn terminate(&mut self, state: &DState<H>) -> TerminationStatus {
        if let Some(g) = state.get_gradient()
            && g.norm() / self.scale <= self.grad_tol
        {
            lock(&self.record).converged = true;
            return TerminationStatus::Terminated(TerminationReason::SolverConverged);
        }
        TerminationStatus::NotTerminated
    }
}

pub(super) fn check_grad_tol(tol: f64) -> Result<(), ArgminError> {
    if tol.is_finite() && tol > 0.0 {
        Ok(())
    } else {
        Err(ArgminError::InvalidOption {
            name: "grad_tol",
            value: tol,
            reason: "the gradient tolerance must be positive and finite",
        })
    }
}

pub(super) fn at_least_one(name: &'static str, n: usize) -> Result<(), ArgminError> {
    if n >= 1 {
        Ok(())
    } else {
        Err(ArgminError::InvalidOption {
            name,
            value: n as f64,
            reason: "must be at least 1",
        })
    }
}

fn classify(reason: Option<&TerminationReason>) -> Termination {
    match reason {
        Some(TerminationReason::MaxItersReached) => Termination::MaxIters,
        Some(TerminationReason::SolverExit(m)) => Termination::SolverExit(m.clone()),
        Some(r) => Termination::Other(r.text().to_string()),
        None => Termination::Other("not terminated".to_string()),
    }
}

pub(super) struct RunSpec {
    pub(super) name: &'static str,
    pub(super) grad_tol: f64,
    pub(super) max_iters: u64,
    pub(super) hvp_budget: Option<usize>,
    pub(super) scale: f64,
    pub(super) check_curvature: bool,
}

pub(super) fn run<D, S, H>(
    f: D,
    x0: &[f64],
    solver: S,
    spec: RunSpec,
) -> Result<ArgminSolution, ArgminError>
where
    D: Differentiable,
    S: Solver<ArgminProblem<D>, DState<H>>,
{
    check_input("initial guess x0", x0)?;
    let problem = ArgminProblem::new(f)
        .hvp_budget(spec.hvp_budget)
        .scale(spec.scale);
    let shared = problem.shared.clone();
    let record = Arc::new(Mutex::new(Record::default()));
    let monitored = Monitored {
        inner: solver,
        check_curvature: spec.check_curvature,
        grad_tol: spec.grad_tol,
        scale: spec.scale,
        shared: shared.clone(),
        record: record.clone(),
    };
    let result = Executor::new(problem, monitored)
        .configure(|s| {
            s.param(DVector::from_column_slice(x0))
                .max_iters(spec.max_iters)
        })
        .ctrlc(false)
        .timer(false)
        .run();
    let record = std::mem::take(&mut *lock(&record));
    // A recorded failure is the real cause, whatever argmin made of it. A failure of the
    // function is reported as such; a breakdown of argmin's own iteration (a non-finite
    // trial point) after progress is a NotConverged with the numbers of the last iterate.
    let breakdown = match shared.take_failure() {
        Some(e @ ArgminError::NonFiniteIterate { .. }) if record.last.is_some() => Some(e),
        Some(e) => return Err(e),
        None => None,
    };
    let (iterations, termination) = match (breakdown, result) {
        (Some(e), _) => (
            shared.iteration.load(Ordering::Relaxed),
            Termination::SolverExit(e.to_string()),
        ),
        (None, result) => match result {
            Ok(OptimizationResult { state, .. }) => {
                let termination = if record.converged {
                    Termination::GradientTolerance
                } else {
                    classify(state.get_termination_reason())
                };
                (state.get_iter(), termination)
            }
            // argmin's own error (Newton-CG passes its line search's errors on): with an
            // accepted iterate, still a NotConverged with the numbers.
            Err(e) => {
                let iteration = shared.iteration.load(Ordering::Relaxed);
                if record.last.is_none() {
                    return Err(ArgminError::Solver {
                        solver: spec.name,
                        iteration,
                        message: e.to_string(),
                    });
                }
                (iteration, Termination::SolverExit(e.to_string()))
            }
        },
    };
    let counts = shared.counts();
    let Some(last) = record.last else {
        return Err(ArgminError::Solver {
            solver: spec.name,
            iteration: iterations,
            message: "argmin returned without an iterate".to_string(),
        });
    };
    if termination == Termination::GradientTolerance && last.grad_norm <= spec.grad_tol {
        Ok(ArgminSolution {
            x: last.x,
            cost: last.cost,
            grad_norm: last.grad_norm,
            iterations,
            termination,
            counts,
        })
    } else {
        Err(ArgminError::NotConverged {
            solver: spec.name,
            grad_norm: last.grad_norm,
            tolerance: spec.grad_tol,
            iterations,
            max_iters: spec.max_iters,
            cost: last.cost,
            termination,
            x: last.x,
            counts: Box::new(counts),
        })
    }
}

pub(super) fn argmin_setup(name: &'static str, e: ArgminCoreError) -> ArgminError {
    ArgminError::Solver {
        solver: name,
        iteration: 0,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! The stall rules of `Monitored::stalled`, one accepted step at a time.
    use super::*;

    fn monitored(check_curvature: bool) -> Monitored<()> {
        Monitored {
            inner: (),
            check_curvature,
            grad_tol: 1e-8,
            scale: 1.0,
            shared: Arc::default(),
            record: Arc::default(),
        }
    }

    fn at(x: &[f64], cost: f64, grad: &[f64]) -> Accepted {
        Accepted {
            x: x.to_vec(),
            cost,
            grad_norm: norm(grad),
            grad: grad.to_vec(),
        }
    }

    #[test]
    fn the_previous_point_again_is_no_progress() {
        let m = monitored(false);
        let prev = at(&[1.0, 2.0], 3.0, &[0.5, 0.5]);
        let same = at(&[1.0, 2.0], 2.0, &[0.5, 0.5]);
        assert_eq!(m.stalled(&prev, &same).as_deref(), Some(NO_PROGRESS));
    }

    /// A cost above the previous one by more than 8 ε |f| is a failed line search; up to
    /// that allowance (rounding of f near the minimizer) it is not, at any scale of f.
    #[test]
    fn a_higher_cost_beyond_rounding_is_a_failed_line_search() {
        let m = monitored(false);
        for f in [1e-3, 1.0, 1e3] {
            let allowance = 8.0 * f64::EPSILON * f;
            let prev = at(&[0.0], f, &[1.0]);
            for (up, stalls) in [
                (0.0, false),
                (0.5 * allowance, false),
                (allowance, false),
                (3.0 * allowance, true),
            ] {
                let last = at(&[0.1], f + up, &[1.0]);
                let got = m.stalled(&prev, &last);
                assert_eq!(got.is_some(), stalls, "f = {f}, up = {up:e}: {got:?}");
                if let Some(msg) = got {
                    assert!(
                        msg.starts_with("the line search returned a higher cost"),
                        "{msg}"
                    );
                }
            }
        }
    }

    /// With curvature checks (quasi-Newton), a step whose pair has sᵀy <= 0 or NaN stops
    /// the run; sᵀy > 0 does not; without the checks nothing is computed.
    #[test]
    fn a_curvature_pair_without_positive_curvature_stops_a_quasi_newton_run() {
        let prev = at(&[0.0, 0.0], 1.0, &[1.0, 1.0]);
        let cases = [
            (at(&[1.0, 0.0], 0.5, &[2.0, 1.0]), false), // sᵀy = 1
            (at(&[1.0, 0.0], 0.5, &[1.0, 5.0]), true),  // sᵀy = 0
            (at(&[1.0, 0.0], 0.5, &[0.0, 1.0]), true),  // sᵀy = -1
            (at(&[1.0, 0.0], 0.5, &[f64::NAN, 1.0]), true),
        ];
        for (last, stalls) in &cases {
            let got = monitored(true).stalled(&prev, last);
            assert_eq!(got.is_some(), *stalls, "{:?}: {got:?}", last.grad);
            if let Some(msg) = got {
                assert!(msg.starts_with("curvature pair s^T y ="), "{msg}");
            }
            assert_eq!(monitored(false).stalled(&prev, last), None);
        }
    }

    /// f(x) = x⁴/4 − x²/2 (a double well; f' = x³ − x).
    struct DoubleWell;
    impl ad_core::ScalarFn for DoubleWell {
        fn eval<S: ad_core::Real>(&self, x: &[S]) -> S {
            x[0].powi(4) * 0.25 - x[0].square() * 0.5
        }
    }

    /// A solver that jumps to a given point (with its cost and gradient) every iteration.
    struct Jump(f64);
    impl<D: Differentiable> Solver<ArgminProblem<D>, DState<()>> for Jump {
        fn name(&self) -> &str {
            "jump"
        }
        fn next_iter(
            &mut self,
            problem: &mut Problem<ArgminProblem<D>>,
            state: DState<()>,
        ) -> Result<(DState<()>, Option<KV>), ArgminCoreError> {
            let x = DVector::from_element(1, self.0);
            let cost = problem.cost(&x)?;
            let gradient = problem.gradient(&x)?;
            Ok((state.param(x).cost(cost).gradient(gradient), None))
        }
    }

    /// A step to a point that meets the tolerance converges even when its cost is higher
    /// (the stall rules judge only steps that have not converged), also when its gradient
    /// norm equals the tolerance exactly.
    #[test]
    fn a_step_that_meets_the_tolerance_converges_whatever_its_cost() {
        let f = |x: f64| x.powi(4) * 0.25 - x * x * 0.5;
        for (x1, tol) in [(0.0, 0.1), (0.25, norm(&[0.25f64.powi(3) - 0.25]))] {
            assert!(f(x1) > f(0.5) && (0.5f64.powi(3) - 0.5).abs() > tol);
            let spec = RunSpec {
                name: "jump",
                grad_tol: tol,
                max_iters: 5,
                hvp_budget: None,
                scale: 1.0,
                check_curvature: false,
            };
            let sol = run::<_, _, ()>(
                crate::solvers::argmin_rs::ScalarFnAdapter(DoubleWell),
                &[0.5],
                Jump(x1),
                spec,
            )
            .unwrap_or_else(|e| panic!("x1 = {x1}: {e}"));
            assert_eq!((sol.x[0], sol.iterations), (x1, 1));
            assert_eq!(sol.termination, Termination::GradientTolerance);
        }
    }

    /// An iteration that asks for a non-finite point after an accepted iterate is a
    /// breakdown: `NotConverged` with that iterate's numbers and the breakdown as the
    /// reason, not an error without them. And a run that reaches the tolerance on its last
    /// allowed iteration has converged.
    #[test]
    fn a_breakdown_after_progress_is_not_converged_with_the_last_iterate() {
        let spec = |max_iters| RunSpec {
            name: "jump",
            grad_tol: 0.1,
            max_iters,
            hvp_budget: None,
            scale: 1.0,
            check_curvature: false,
        };
        let well = || crate::solvers::argmin_rs::ScalarFnAdapter(DoubleWell);
        match run::<_, _, ()>(well(), &[0.5], Jump(f64::NAN), spec(5)) {
            Err(ArgminError::NotConverged {
                solver,
                grad_norm,
                cost,
                x,
                termination: Termination::SolverExit(reason),
                ..
            }) => {
                assert_eq!(
                    (solver, grad_norm, cost, x),
                    ("jump", 0.375, -0.109375, vec![0.5])
                );
                assert!(
                    reason.contains("non-finite point (entry 0 is NaN)"),
                    "{reason}"
                );
            }
            other => panic!("expected NotConverged, got {other:?}"),
        }
        let sol = run::<_, _, ()>(well(), &[0.5], Jump(0.0), spec(1)).unwrap();
        assert_eq!((sol.x[0], sol.iterations), (0.0, 1));
    }
}
