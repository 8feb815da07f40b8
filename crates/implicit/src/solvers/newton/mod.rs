//! The library's Newton method for argmin problems written against `MatOps`: each
//! iteration records L once, assembles the dense Hessian in one batched sweep of matrix
//! operations ([`ad_core::HessianRecording`]), factors it (Cholesky, shifted when not
//! positive definite) and takes a backtracking (Armijo) step. For small smooth problems;
//! large ones stay matrix-free (argmin's Newton-CG, [`super::argmin_rs`]).
//!
//! The factor of the last Hessian is returned with the solution: the backward pass reuses
//! it ([`Implicit::with_factor`](crate::Implicit::with_factor)), refining against exact
//! Hessian-vector products at x*, so no second factorization is needed.

use ad_core::HessianRecording;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

mod error;

pub use error::NewtonError;

use crate::linear::{DenseCholesky, Factor, SolveError};
use crate::problem::Objective;
use error::check_finite;

/// Options of [`minimize_newton`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NewtonOptions {
    /// Stop when ‖∇ₓL‖₂ ≤ `grad_tol` (finite, > 0; default 1e-10).
    pub grad_tol: f64,
    /// Newton iterations allowed (≥ 1; default 100).
    pub max_iters: usize,
    /// Sufficient-decrease constant of the Armijo test, in (0, 1) (default 1e-4).
    pub armijo: f64,
    /// Step halvings allowed per iteration (≥ 1; default 40).
    pub max_backtracks: usize,
    /// Chord steps: keep the last Hessian factor (a new gradient, no new Hessian) while
    /// the last step cut ‖∇ₓL‖ to at most this fraction, in [0, 1) (default 0.2). Near x*
    /// the old factor is nearly exact and convergence stays fast, at the cost of a gradient
    /// instead of a dense Hessian per step. 0: a new Hessian every step (plain Newton).
    /// A loose ratio (0.5) can trade quadratic convergence for many slow chord steps on
    /// problems whose chord contraction is just below it.
    pub reuse_ratio: f64,
}

impl Default for NewtonOptions {
    fn default() -> Self {
        NewtonOptions {
            grad_tol: 1e-10,
            max_iters: 100,
            armijo: 1e-4,
            max_backtracks: 40,
            reuse_ratio: 0.2,
        }
    }
}

impl NewtonOptions {
    /// Set the gradient tolerance.
    pub fn grad_tol(mut self, tol: f64) -> Self {
        self.grad_tol = tol;
        self
    }
    /// Set the iteration limit.
    pub fn max_iters(mut self, n: usize) -> Self {
        self.max_iters = n;
        self
    }
    /// Set the Armijo constant.
    pub fn armijo(mut self, c: f64) -> Self {
        self.armijo = c;
        self
    }
    /// Set the chord-step ratio (0: plain Newton).
    pub fn reuse_ratio(mut self, r: f64) -> Self {
        self.reuse_ratio = r;
        self
    }
    /// Set the number of step halvings allowed per iteration.
    pub fn max_backtracks(mut self, n: usize) -> Self {
        self.max_backtracks = n;
        self
    }

    /// [`NewtonError::InvalidOption`] naming the first unusable option.
    pub fn validate(&self) -> Result<(), NewtonError> {
        let bad = |name, value, reason| {
            Err(NewtonError::InvalidOption {
                name,
                value,
                reason,
            })
        };
        if !(self.grad_tol.is_finite() && self.grad_tol > 0.0) {
            return bad("newton.grad_tol", self.grad_tol, "must be finite and > 0");
        }
        if self.max_iters == 0 {
            return bad("newton.max_iters", 0.0, "must be at least 1");
        }
        if !(self.armijo > 0.0 && self.armijo < 1.0) {
            return bad("newton.armijo", self.armijo, "must be in (0, 1)");
        }
        if !(0.0..1.0).contains(&self.reuse_ratio) {
            return bad("newton.reuse_ratio", self.reuse_ratio, "must be in [0, 1)");
        }
        if self.max_backtracks == 0 {
            return bad("newton.max_backtracks", 0.0, "must be at least 1");
        }
        Ok(())
    }
}

/// What a Newton run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NewtonReport {
    /// Newton steps taken.
    pub iterations: usize,
    /// ‖∇ₓL‖₂ at the returned point.
    pub grad_norm: f64,
    /// ‖∇ₓL‖₂ at every iterate, the start included.
    pub grad_norm_trace: Vec<f64>,
    /// L at the returned point.
    pub value: f64,
    /// Recordings of L: the start and every line-search trial (the accepted trial's
    /// recording gives the next iterate's gradient and Hessian by replay).
    pub recordings: usize,
    /// Trial points of the line search.
    pub line_search_evaluations: usize,
    /// Iterations whose Hessian was not positive definite and was shifted (`H + μI`).
    pub shifted: usize,
    /// Dense Hessians assembled and factored (the other steps were chord steps).
    pub hessians: usize,
}

/// x* with the run's report and the factor of the last Hessian (unshifted), for the
/// backward pass to reuse.
#[derive(Clone, Debug)]
pub struct NewtonSolution {
    /// The minimizer, shaped like `x0`.
    pub x: DMatrix<f64>,
    /// What the run did.
    pub report: NewtonReport,
    /// Cholesky factor of ∇ₓₓ²L at the last iterate before x*, when the last step was a
    /// Newton step (not a chord step) with an unshifted Hessian; else `None`, and the
    /// backward pass assembles the Hessian at x* itself.
    pub factor: Option<Factor>,
}

/// x*(θ) = argmin_x L(x, θ) by Newton's method with dense Hessians, from `x0`, to
/// ‖∇ₓL‖₂ ≤ `grad_tol`.
///
/// ```
/// use ad_core::{MatOps, Real};
/// use implicit::Objective;
/// use implicit::solvers::newton::{NewtonOptions, minimize_newton};
/// use nalgebra::DMatrix;
/// // L(x, θ) = ½‖x − θ‖² + ¼‖x‖⁴
/// struct Obj;
/// impl Objective for Obj {
///     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
///         x.sub(&t[0]).sq_norm() * 0.5 + x.sq_norm().square() * 0.25
///     }
/// }
/// let theta = [DMatrix::from_column_slice(2, 1, &[1.0, -0.5])];
/// let s = minimize_newton(&Obj, &theta, &DMatrix::zeros(2, 1), &NewtonOptions::default()).unwrap();
/// assert!(s.report.grad_norm <= 1e-10, "{:?}", s.report);
/// ```
///
/// # Errors
/// [`NewtonError::InvalidOption`]; [`NewtonError::NonFinite`] for non-finite inputs,
/// values, gradients or Hessians (naming the iteration); [`NewtonError::Stalled`] with the
/// report when the iteration limit is reached or no step decreases L (the report carries
/// the gradient-norm trace); a Hessian that no shift makes positive definite as
/// [`NewtonError::Linear`].
pub fn minimize_newton<O: Objective + ?Sized>(
    objective: &O,
    theta: &[DMatrix<f64>],
    x0: &DMatrix<f64>,
    options: &NewtonOptions,
) -> Result<NewtonSolution, NewtonError> {
    options.validate()?;
    check_finite("starting point x0", 0, x0.as_slice())?;
    for t in theta {
        check_finite("parameters theta", 0, t.as_slice())?;
    }
    let n = x0.len();
    let eye = DMatrix::identity(n, n);
    let mut report = NewtonReport::default();
    let mut x = x0.clone();
    // The last Hessian's factor, whether it was shifted, and ‖∇ₓL‖ when it was made
    // current (for the chord test).
    let mut last: Option<(DenseCholesky, f64)> = None;
    let mut prev_gnorm = f64::INFINITY;
    let mut fresh_step = false;
    let mut rec = record(objective, theta, &x, &mut report)?;
    loop {
        let value = rec.value();
        let it = report.iterations;
        check_finite("objective value", it, &[value])?;
        let g = rec.gradient()?.swap_remove(0);
        check_finite("gradient", it, g.as_slice())?;
        let gnorm = g.norm();
        report.grad_norm_trace.push(gnorm);
        (report.grad_norm, report.value) = (gnorm, value);
        if gnorm <= options.grad_tol {
            // Only a factor of the previous iterate's own Hessian is worth handing over:
            // an older (chord) one costs the backward pass more refinement products than
            // assembling the Hessian at x* afresh (measured on W2, docs/benchmarks.md).
            let factor = last
                .filter(|&(_, shift)| shift == 0.0 && fresh_step)
                .map(|(c, _)| Factor::Cholesky(c));
            return Ok(NewtonSolution { x, report, factor });
        }
        if report.iterations == options.max_iters {
            return Err(stalled(report, "iteration limit reached"));
        }
        let chord = options.reuse_ratio > 0.0
            && last.is_some()
            && gnorm <= options.reuse_ratio * prev_gnorm;
        prev_gnorm = gnorm;
        fresh_step = !chord;
        if !chord {
            // The Hessian in one batched sweep of the recording (V = I on x).
            let mut dirs: Vec<Option<&DMatrix<f64>>> = vec![None; theta.len() + 1];
            dirs[0] = Some(&eye);
            let h = rec.hvp_batch(&dirs)?.swap_remove(0);
            check_finite("Hessian", it, h.as_slice())?;
            let (chol, shift) = factor_shifted(&h)?;
            report.shifted += usize::from(shift > 0.0);
            report.hessians += 1;
            last = Some((chol, shift));
        }
        let (chol, _) = last.as_ref().expect("a factor was made or kept");
        let mut step = g.as_slice().to_vec();
        chol.inverse_in_place(&mut step);
        step.iter_mut().for_each(|s| *s = -*s);
        let slope: f64 = step.iter().zip(g.as_slice()).map(|(s, g)| s * g).sum();
        if slope.is_nan() || slope >= 0.0 {
            return Err(stalled(
                report,
                "the Newton direction is not a descent direction",
            ));
        }
        let step = DMatrix::from_column_slice(x.nrows(), x.ncols(), &step);
        (x, rec) = line_search(
            objective,
            theta,
            &x,
            &step,
            value,
            slope,
            options,
            &mut report,
        )?;
        report.iterations += 1;
    }
}

/// Cholesky of `h`, or of `h + μI` with the smallest μ = 10^k · 1e-10 · max(1, max|hᵢᵢ|)
/// that makes it positive definite (k < 20); returns the factor and μ.
fn factor_shifted(h: &DMatrix<f64>) -> Result<(DenseCholesky, f64), NewtonError> {
    let scale = h.diagonal().amax().max(1.0);
    let mut shift = 0.0;
    let mut tries = 0;
    loop {
        match DenseCholesky::factor(h, shift) {
            Ok(c) => return Ok((c, shift)),
            Err(SolveError::NotPositiveDefinite { .. }) if tries < 20 => {
                shift = if shift == 0.0 {
                    1e-10 * scale
                } else {
                    shift * 10.0
                };
                tries += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// L recorded at `x` (the recording gives the value, the gradient and the Hessian).
fn record<O: Objective + ?Sized>(
    objective: &O,
    theta: &[DMatrix<f64>],
    x: &DMatrix<f64>,
    report: &mut NewtonReport,
) -> Result<HessianRecording, NewtonError> {
    let mut at = Vec::with_capacity(theta.len() + 1);
    at.push(x.clone());
    at.extend(theta.iter().cloned());
    report.recordings += 1;
    Ok(HessianRecording::new(&at, |b| {
        objective.value(&b[0], &b[1..])
    })?)
}

/// Backtrack from the full step until L decreases enough (Armijo), or — for the full step
/// only, and only where the decrease Armijo asks for is below the resolution of L (near
/// x*) — does not increase beyond rounding. Each trial point is recorded (data enter the tape
/// by reference, nothing is copied); the accepted one's recording serves the next
/// iteration.
#[allow(clippy::too_many_arguments)]
fn line_search<O: Objective + ?Sized>(
    objective: &O,
    theta: &[DMatrix<f64>],
    x: &DMatrix<f64>,
    step: &DMatrix<f64>,
    value: f64,
    slope: f64,
    options: &NewtonOptions,
    report: &mut NewtonReport,
) -> Result<(DMatrix<f64>, HessianRecording), NewtonError> {
    let mut t = 1.0;
    for k in 0..=options.max_backtracks {
        let trial = x + step * t;
        let rec = record(objective, theta, &trial, report)?;
        let f = rec.value();
        report.line_search_evaluations += 1;
        let armijo = f <= value + options.armijo * t * slope;
        let resolution = 4.0 * f64::EPSILON * value.abs();
        let rounding = k == 0 && -options.armijo * slope <= resolution && f <= value + resolution;
        if f.is_finite() && (armijo || rounding) {
            return Ok((trial, rec));
        }
        t *= 0.5;
    }
    Err(stalled(
        report.clone(),
        "no step along the Newton direction decreases L",
    ))
}

fn stalled(report: NewtonReport, reason: &'static str) -> NewtonError {
    NewtonError::Stalled {
        reason,
        report: Box::new(report),
    }
}
