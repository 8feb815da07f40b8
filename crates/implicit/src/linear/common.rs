//! What every iterative solver shares: checking inputs, counting and checking products,
//! the true residual, watching for stalls and divergence, and turning the outcome into a
//! report or a typed error.

use crate::linear::checks::{check_len, check_symmetric};
use crate::linear::error::{SolveError, check_finite};
use crate::linear::kernels::{axpy, norm, sub_from};
use crate::linear::method::Method;
use crate::linear::operator::LinearOperator;
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{ResidualKind, SolveReport};

/// A residual counts as progress when it is below `1 - STALL_IMPROVEMENT` times the best
/// one seen so far; a stall is `stall_window` iterations without progress.
const STALL_IMPROVEMENT: f64 = 1e-3;

/// The state of one solve, apart from the solver's own vectors.
pub(crate) struct Ctx<'a, A: ?Sized> {
    op: &'a A,
    precond: Option<&'a dyn Preconditioner>,
    ridge: f64,
    pub method: Method,
    pub matvecs: usize,
    pub precond_apps: usize,
    pub rhs_norm: f64,
    pub tol: f64,
    pub max_iters: usize,
    initial_residual_norm: f64,
    pub residual_kind: ResidualKind,
    opts_rtol: f64,
    opts_atol: f64,
    stall_window: usize,
    divergence: f64,
    best: f64,
    best_iteration: usize,
}

/// Why an iteration stops early without a breakdown.
pub(crate) enum Stop {
    /// No progress over the stall window.
    Stalled,
    /// The residual grew past the divergence limit.
    Diverged(f64),
}

impl<'a, A: LinearOperator + ?Sized> Ctx<'a, A> {
    /// Check options, lengths, finiteness and (for CG and MINRES on a matrix) symmetry;
    /// return the context.
    pub fn new(
        op: &'a A,
        b: &[f64],
        x0: Option<&[f64]>,
        precond: Option<&'a dyn Preconditioner>,
        opts: &SolveOptions,
        method: Method,
    ) -> Result<Self, SolveError> {
        opts.validate()?;
        let (m, n) = (op.nrows(), op.ncols());
        if method != Method::NormalCg && m != n {
            return Err(SolveError::Dimension {
                what: "columns of the operator (this method needs a square system)",
                expected: m,
                got: n,
            });
        }
        if opts.ridge != 0.0 && m != n {
            return Err(SolveError::InvalidOption {
                name: "ridge",
                value: opts.ridge,
                reason: "a ridge needs a square operator",
            });
        }
        check_len("right-hand side b", m, b.len())?;
        if let Some(x0) = x0 {
            check_len("initial guess x0", n, x0.len())?;
        }
        if let Some(p) = precond {
            check_len("preconditioner dimension", n, p.dim())?;
        }
        check_finite("right-hand side b", b)?;
        if let Some(x0) = x0 {
            check_finite("initial guess x0", x0)?;
        }
        if matches!(method, Method::Cg | Method::Minres)
            && !op.structure().is_symmetric()
            && let Some(a) = op.as_matrix()
        {
            // Known to be a matrix, so known (not) to be symmetric: say so up front rather
            // than run to the iteration limit on a method that assumes symmetry.
            check_symmetric(a, method)?;
        }
        let rhs_norm = norm(b);
        let ctx = Ctx {
            op,
            precond,
            ridge: opts.ridge,
            method,
            matvecs: 0,
            precond_apps: 0,
            rhs_norm,
            tol: opts.tolerance(rhs_norm),
            max_iters: opts.max_iters_for(n),
            initial_residual_norm: f64::NAN,
            residual_kind: ResidualKind::System,
            opts_rtol: opts.rtol,
            opts_atol: opts.atol,
            stall_window: opts.stall_window_for(n),
            divergence: opts.divergence,
            best: f64::NAN,
            best_iteration: 0,
        };
        Ok(ctx)
    }

    /// Write the starting iterate into `x`: `x0`, or zero.
    pub fn start(&self, x0: Option<&[f64]>, x: &mut [f64]) {
        match x0 {
            Some(x0) => x.copy_from_slice(x0),
            None => x.fill(0.0),
        }
    }

    /// Record the (running) residual norm after iteration `iteration`; `Some` when the
    /// iteration has stalled (no progress over the stall window) or diverged (grown past
    /// `divergence` times the initial residual).
    pub fn progress(&mut self, iteration: usize, rnorm: f64) -> Option<Stop> {
        if rnorm > self.divergence * self.initial_residual_norm {
            return Some(Stop::Diverged(rnorm));
        }
        if self.best.is_nan() || rnorm < (1.0 - STALL_IMPROVEMENT) * self.best {
            self.best = rnorm;
            self.best_iteration = iteration;
            None
        } else if iteration - self.best_iteration >= self.stall_window {
            Some(Stop::Stalled)
        } else {
            None
        }
    }

    /// At a (re)start, where `rnorm` is the true residual of `x` after `iterations`
    /// iterations: the early-stop error if the solve has stalled or diverged. Catches a
    /// method whose every cycle ends where it began (restarted GMRES, MINRES on an
    /// inconsistent system).
    pub fn check_restart(
        &mut self,
        x: &[f64],
        iterations: usize,
        rnorm: f64,
    ) -> Result<(), SolveError> {
        if iterations == 0 {
            return Ok(());
        }
        match self.progress(iterations, rnorm) {
            Some(stop) => Err(self.stop_error(x, iterations, rnorm, stop)),
            None => Ok(()),
        }
    }

    /// The error for an early stop, with the residual recomputed at `x` (into the scratch
    /// `r`).
    pub fn stopped(
        &mut self,
        b: &[f64],
        x: &[f64],
        r: &mut [f64],
        iterations: usize,
        stop: Stop,
    ) -> SolveError {
        let rnorm = match self.residual(b, x, r) {
            Ok(rnorm) => rnorm,
            Err(e) => return e,
        };
        self.stop_error(x, iterations, rnorm, stop)
    }

    /// The error for an early stop at `x`, whose true residual norm is known to be `rnorm`.
    pub fn stop_error(&self, x: &[f64], iterations: usize, rnorm: f64, stop: Stop) -> SolveError {
        let report = Box::new(self.report(iterations, rnorm));
        match stop {
            Stop::Stalled => SolveError::Stalled {
                best_residual: self.best,
                window: self.stall_window,
                report,
                x: x.to_vec(),
            },
            Stop::Diverged(residual) => SolveError::Diverged {
                residual,
                factor: self.divergence,
                report,
                x: x.to_vec(),
            },
        }
    }

    /// Whether a preconditioner is in use.
    pub fn has_precond(&self) -> bool {
        self.precond.is_some()
    }

    /// Set the initial residual norm (when it is not `||b - A x0||`: normal equations).
    pub fn set_initial_residual(&mut self, rnorm: f64) {
        self.initial_residual_norm = rnorm;
        self.best = rnorm;
    }

    /// Measure residuals against another right-hand side norm (normal equations).
    pub fn set_rhs_norm(&mut self, rhs_norm: f64, kind: ResidualKind) {
        self.rhs_norm = rhs_norm;
        self.tol = (self.opts_rtol * rhs_norm).max(self.opts_atol);
        self.residual_kind = kind;
    }

    /// `y = (A + ridge I) x`, counted, with the output checked for finiteness.
    pub fn apply(&mut self, x: &[f64], y: &mut [f64]) -> Result<(), SolveError> {
        self.op.apply(x, y)?;
        self.matvecs += 1;
        if self.ridge != 0.0 {
            axpy(self.ridge, x, y);
        }
        check_finite("operator output", y)
    }

    /// `y = (A + ridge I)^T x`, counted, with the output checked for finiteness.
    pub fn apply_transpose(&mut self, x: &[f64], y: &mut [f64]) -> Result<(), SolveError> {
        self.op.apply_transpose(x, y)?;
        self.matvecs += 1;
        if self.ridge != 0.0 {
            axpy(self.ridge, x, y);
        }
        check_finite("operator transpose output", y)
    }

    /// `z = M^{-1} r` (a copy without a preconditioner), checked for finiteness.
    pub fn precond(&mut self, r: &[f64], z: &mut [f64]) -> Result<(), SolveError> {
        match self.precond {
            Some(p) => {
                p.apply(r, z)?;
                self.precond_apps += 1;
                check_finite("preconditioner output", z)
            }
            None => {
                z.copy_from_slice(r);
                Ok(())
            }
        }
    }

    /// `r = b - A x`; returns `||r||`.
    pub fn residual(&mut self, b: &[f64], x: &[f64], r: &mut [f64]) -> Result<f64, SolveError> {
        self.apply(x, r)?;
        sub_from(b, r);
        Ok(norm(r))
    }

    /// The starting residual: `b` itself when starting from zero (no product), else
    /// `b - A x0`. Records its norm as the initial residual.
    pub fn initial_residual(
        &mut self,
        b: &[f64],
        x: &[f64],
        warm: bool,
        r: &mut [f64],
    ) -> Result<f64, SolveError> {
        let rnorm = if warm {
            self.residual(b, x, r)?
        } else {
            r.copy_from_slice(b);
            norm(r)
        };
        self.initial_residual_norm = rnorm;
        self.best = rnorm;
        Ok(rnorm)
    }

    /// The report for an iterate with true residual norm `residual_norm`.
    pub fn report(&self, iterations: usize, residual_norm: f64) -> SolveReport {
        SolveReport {
            method: self.method,
            iterations,
            matvecs: self.matvecs,
            precond_applications: self.precond_apps,
            initial_residual_norm: self.initial_residual_norm,
            residual_norm,
            rhs_norm: self.rhs_norm,
            tolerance: self.tol,
            residual_kind: self.residual_kind,
            converged: residual_norm <= self.tol,
        }
    }

    /// Success if the (true) residual is within tolerance, else `NotConverged`.
    pub fn finish(
        &self,
        x: &[f64],
        iterations: usize,
        residual_norm: f64,
    ) -> Result<SolveReport, SolveError> {
        let report = self.report(iterations, residual_norm);
        if report.converged {
            Ok(report)
        } else {
            Err(SolveError::NotConverged {
                report: Box::new(report),
                x: x.to_vec(),
            })
        }
    }

    /// A breakdown error, with the residual recomputed at `x` (into the scratch `r`).
    pub fn breakdown(
        &mut self,
        b: &[f64],
        x: &[f64],
        r: &mut [f64],
        iterations: usize,
        reason: &'static str,
    ) -> SolveError {
        match self.residual(b, x, r) {
            Ok(rnorm) => self.breakdown_at(x, iterations, rnorm, reason),
            Err(e) => e,
        }
    }

    /// A breakdown error at `x`, whose true residual norm is known to be `rnorm`.
    pub fn breakdown_at(
        &self,
        x: &[f64],
        iterations: usize,
        rnorm: f64,
        reason: &'static str,
    ) -> SolveError {
        SolveError::Breakdown {
            method: self.method,
            reason,
            report: Box::new(self.report(iterations, rnorm)),
            x: x.to_vec(),
        }
    }

    /// A negative-curvature error, with the residual recomputed at `x`.
    pub fn negative_curvature(
        &mut self,
        b: &[f64],
        x: &[f64],
        r: &mut [f64],
        iterations: usize,
        curvature: f64,
    ) -> SolveError {
        match self.residual(b, x, r) {
            Ok(rnorm) => SolveError::NegativeCurvature {
                method: self.method,
                iteration: iterations,
                curvature,
                report: Box::new(self.report(iterations, rnorm)),
                x: x.to_vec(),
            },
            Err(e) => e,
        }
    }
}
