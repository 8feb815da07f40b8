//! The exact backward pass: the linear solve with A or Aᵀ (Krylov, dense, or a factor
//! given by the caller), with its residual and error estimate.

use std::rc::Rc;

use crate::backward::{Direction, IftReport, relative};
use crate::error::{ImplicitError, check_finite};
use crate::ift::Implicit;
use crate::linear::Factor;
use crate::linear::kernels::norm;
use crate::linear::{
    DenseCholesky, DenseLu, LinearOperator, Method, OperatorError, SolveError, SolveOptions,
    SolveReport, Structure, solve,
};
use crate::linearize::Linearization;

/// A or Aᵀ of a linearization as a linear operator (products counted).
struct JacobianBlock<'a, L> {
    imp: &'a Implicit<L>,
    transpose: bool,
}

impl<L: Linearization> LinearOperator for JacobianBlock<'_, L> {
    fn nrows(&self) -> usize {
        self.imp.lin.dims().0
    }
    fn ncols(&self) -> usize {
        self.imp.lin.dims().0
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let r = self.imp.a_product(self.transpose, x)?;
        y.copy_from_slice(&r);
        Ok(())
    }
    fn apply_transpose(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let r = self.imp.a_product(!self.transpose, x)?;
        y.copy_from_slice(&r);
        Ok(())
    }
    fn structure(&self) -> Structure {
        let sym = self.imp.lin.symmetric();
        Structure {
            symmetric: sym,
            positive_definite: sym,
        }
    }
}

/// A solve's answer, its report and, when its last residual check was a transpose pass
/// (a given factor, reverse mode), what that pass made.
struct Solved {
    y: Vec<f64>,
    report: SolveReport,
    last_pass: Option<LastPass>,
}

/// `Bᵀy` and the residual `rhs − op(A) y` (ridge included) of the final iterate, from
/// one pass of the linearization.
struct LastPass {
    bt_y: Vec<f64>,
    residual: Vec<f64>,
}

/// A residual `rhs − op(A) y`, its norm and, for `Aᵀ`, `Bᵀy` from the same pass.
struct Checked {
    r: Vec<f64>,
    norm: f64,
    bt_y: Option<Vec<f64>>,
}

impl<L: Linearization> Implicit<L> {
    /// Whether `Method::Auto` assembles A densely here (small, and assembled in one sweep).
    fn assembles(&self) -> bool {
        self.options.method == Method::Auto
            && self.lin.assembles()
            && self.lin.dims().0 <= self.options.dense_up_to
    }

    /// A assembled in one batched sweep and factored: Cholesky when A is symmetric (an
    /// error if it is not positive definite), LU otherwise. Bᵀ, from the same sweep, is kept
    /// for the products that follow.
    fn assembled_factor(&self) -> Result<Factor, ImplicitError> {
        self.count();
        let (a, bt) = self.lin.assemble()?;
        let ridge = self.options.linear.ridge;
        let factor = if self.lin.symmetric() {
            // A Hessian that is not positive definite means x* is not a strict minimizer
            // (a saddle, or a flat direction): an error, as CG's negative curvature is,
            // never a silent derivative of a stationary point. `Method::Lu` or `Minres`
            // differentiate stationary points on request.
            Factor::Cholesky(DenseCholesky::factor(&a, ridge)?)
        } else {
            Factor::Lu(DenseLu::factor(&a, ridge)?)
        };
        *self.assembled.borrow_mut() = Some(Rc::new((a, bt)));
        Ok(factor)
    }

    /// The dense factorization, made on first use.
    fn dense_factor(&self, method: Method) -> Result<Rc<Factor>, ImplicitError> {
        if let Some(f) = self.factor.borrow().as_ref() {
            return Ok(f.clone());
        }
        if self.assembles() {
            let f = Rc::new(self.assembled_factor()?);
            *self.factor.borrow_mut() = Some(f.clone());
            return Ok(f);
        }
        let op = JacobianBlock {
            imp: self,
            transpose: false,
        };
        let ridge = self.options.linear.ridge;
        let f = Rc::new(match method {
            Method::Cholesky => Factor::Cholesky(DenseCholesky::factor(&op, ridge)?),
            _ => Factor::Lu(DenseLu::factor(&op, ridge)?),
        });
        *self.factor.borrow_mut() = Some(f.clone());
        Ok(f)
    }

    fn method(&self) -> Method {
        match self.options.method {
            Method::Auto if self.assembles() => Method::Cholesky,
            Method::Auto if self.lin.symmetric() => Method::Cg,
            Method::Auto => Method::Gmres,
            m => m,
        }
    }

    /// Solve `op(A) y = rhs` with the given options (dense factor reused when there is one).
    /// With a caller-given factor and `transpose`, also `Bᵀy`, from the same pass as the
    /// residual check (see [`solve_given`](Self::solve_given)).
    fn solve_with(
        &self,
        transpose: bool,
        rhs: &[f64],
        opts: &SolveOptions,
    ) -> Result<Solved, ImplicitError> {
        let method = self.method();
        let given = self.factor.borrow().clone().filter(|_| self.factor_given);
        let mut last_pass = None;
        let sol = if let Some(factor) = given {
            let (sol, pass) = self.solve_given(&factor, transpose, rhs, opts)?;
            last_pass = pass;
            sol
        } else if matches!(method, Method::Lu | Method::Cholesky) {
            // The solve that makes the factorization reports the n products it cost.
            let fresh = self.factor.borrow().is_none();
            let factor = self.dense_factor(method)?;
            // An assembled A cost one sweep (counted by `assembled_factor`), not n products.
            let assembled = self.assembled.borrow().is_some();
            let (result, made) = match (&*factor, transpose) {
                (Factor::Lu(lu), false) => (lu.solve(rhs, None, opts), lu.matvecs()),
                (Factor::Lu(lu), true) => (lu.solve_transpose(rhs, None, opts), lu.matvecs()),
                // Cholesky factors a symmetric A, so Aᵀ = A.
                (Factor::Cholesky(ch), _) => (ch.solve(rhs, None, opts), ch.matvecs()),
            };
            let made = if fresh && !assembled { made } else { 0 };
            match result {
                Ok(mut sol) => {
                    sol.report.matvecs += made;
                    sol
                }
                Err(mut e) => {
                    if let Some(report) = e.report_mut() {
                        report.matvecs += made;
                    }
                    return Err(e.into());
                }
            }
        } else {
            let op = JacobianBlock {
                imp: self,
                transpose,
            };
            solve(&op, rhs, None, method, opts)?
        };
        Ok(Solved {
            y: sol.x,
            report: sol.report,
            last_pass,
        })
    }

    /// Solve `op(A) y = rhs` with a caller-given factor `F ≈ op(A)`: iterative refinement
    /// against the true operator (`y += F⁻¹ (rhs − op(A) y)`), stopping at the tolerance,
    /// after `max_iters` steps, or when the residual stops halving. For `Aᵀ` each residual
    /// check also gives `Bᵀy` (one pass of the linearization gives both), returned with the
    /// final `y`'s residual: a reverse-mode backward pass with a good factor then costs one
    /// pass, and its error estimate needs no second one.
    fn solve_given(
        &self,
        factor: &Factor,
        transpose: bool,
        rhs: &[f64],
        opts: &SolveOptions,
    ) -> Result<(crate::linear::Solution, Option<LastPass>), ImplicitError> {
        opts.validate()?;
        let inverse = |r: &mut [f64]| match (factor, transpose) {
            (Factor::Lu(lu), false) => lu.inverse_in_place(r),
            (Factor::Lu(lu), true) => lu.inverse_transpose_in_place(r),
            (Factor::Cholesky(ch), _) => ch.inverse_in_place(r),
        };
        let residual = |y: &[f64]| -> Result<Checked, ImplicitError> {
            let (mut r, bt_y) = if transpose {
                let (at_y, bt_y) = self.transpose_products(y)?;
                let r = rhs.iter().zip(&at_y).map(|(b, a)| b - a).collect();
                (r, Some(bt_y))
            } else {
                (self.residual_of(false, rhs, y)?, None)
            };
            if opts.ridge != 0.0 {
                r.iter_mut()
                    .zip(y)
                    .for_each(|(ri, yi)| *ri -= opts.ridge * yi);
            }
            let norm = norm(&r);
            Ok(Checked { r, norm, bt_y })
        };
        let rhs_norm = norm(rhs);
        let tol = opts.tolerance(rhs_norm);
        let max_iters = opts.max_iters_for(rhs.len());
        let mut y = rhs.to_vec();
        inverse(&mut y);
        let Checked {
            mut r,
            norm: mut rnorm,
            mut bt_y,
        } = residual(&y)?;
        let (mut iterations, mut matvecs) = (0, 1);
        while rnorm > tol && iterations < max_iters {
            inverse(&mut r);
            y.iter_mut().zip(&r).for_each(|(yi, di)| *yi += di);
            iterations += 1;
            let next = residual(&y)?;
            matvecs += 1;
            let stalled = next.norm.is_nan() || next.norm > 0.5 * rnorm;
            (r, rnorm, bt_y) = (next.r, next.norm, next.bt_y);
            if stalled {
                break;
            }
        }
        let report = SolveReport {
            method: match factor {
                Factor::Lu(_) => Method::Lu,
                Factor::Cholesky(_) => Method::Cholesky,
            },
            iterations,
            matvecs,
            precond_applications: iterations + 1,
            initial_residual_norm: rhs_norm,
            residual_norm: rnorm,
            rhs_norm,
            tolerance: tol,
            residual_kind: crate::linear::ResidualKind::System,
            converged: rnorm <= tol,
        };
        check_finite("solution", &y)?;
        if report.converged {
            let pass = bt_y.map(|bt_y| LastPass { bt_y, residual: r });
            Ok((crate::linear::Solution { x: y, report }, pass))
        } else {
            Err(SolveError::NotConverged {
                report: Box::new(report),
                x: y,
            }
            .into())
        }
    }

    /// Solve `op(A) s = r` loosely (10% relative), to estimate the effect of the final
    /// residual `r`; `None` if that solve fails (the estimate is optional, the result is not).
    fn loose_correction(&self, transpose: bool, r: &[f64]) -> Option<Vec<f64>> {
        if norm(r) == 0.0 {
            return Some(vec![0.0; r.len()]);
        }
        let loose = self.options.linear.clone().rtol(0.1).atol(0.0);
        self.solve_with(transpose, r, &loose).ok().map(|s| s.y)
    }

    /// Residual `rhs − op(A) y`.
    fn residual_of(
        &self,
        transpose: bool,
        rhs: &[f64],
        y: &[f64],
    ) -> Result<Vec<f64>, ImplicitError> {
        let ay = self.a_product(transpose, y)?;
        Ok(rhs.iter().zip(&ay).map(|(b, a)| b - a).collect())
    }

    /// The relative residual of a solve, from its report when that is the residual of
    /// the system itself (no ridge: the report's residual is recomputed at the returned
    /// iterate), else `None` (the caller measures it with one product).
    fn reported_relative_residual(&self, linear: &SolveReport, rhs: &[f64]) -> Option<f64> {
        let exact = self.options.linear.ridge == 0.0
            && linear.residual_kind == crate::linear::ResidualKind::System;
        exact.then(|| relative(linear.residual_norm, norm(rhs)))
    }

    /// Reverse mode, exact: θ̄ = −Bᵀ w with Aᵀ w = x̄. When the residual x̄ − Aᵀw is
    /// needed (error estimate, or a ridge in the solve), Aᵀw comes from the same pass as
    /// Bᵀw.
    pub(crate) fn exact_vjp(&self, x_bar: &[f64]) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        let Solved {
            y: w,
            report: linear,
            last_pass,
        } = self.solve_with(true, x_bar, &self.options.linear)?;
        let reported = self.reported_relative_residual(&linear, x_bar);
        let (bt_w, r) = if let (Some(pass), Some(_)) = (last_pass, reported) {
            // The given factor's residual check already made Bᵀw and the residual
            // x̄ − Aᵀw (`reported` is `Some` only without a ridge, so that residual is the
            // system's own).
            let r = self.options.estimate_error.then_some(pass.residual);
            (pass.bt_y, r)
        } else if self.options.estimate_error || reported.is_none() {
            let (at_w, bt_w) = self.transpose_products(&w)?;
            let r: Vec<f64> = x_bar.iter().zip(&at_w).map(|(b, a)| b - a).collect();
            (bt_w, Some(r))
        } else {
            (self.bt_product(&w)?, None)
        };
        let theta_bar: Vec<f64> = bt_w.iter().map(|v| -v).collect();
        let linear_error_estimate = match (&r, self.options.estimate_error) {
            (Some(r), true) => match self.loose_correction(true, r) {
                Some(s) => Some(norm(&self.bt_product(&s)?)),
                None => None,
            },
            _ => None,
        };
        let mut report = self.report(Direction::Reverse);
        report.steps = linear.iterations;
        report.relative_residual =
            reported.unwrap_or_else(|| relative(norm(r.as_deref().unwrap_or(&[])), norm(x_bar)));
        report.linear = Some(linear);
        report.linear_error_estimate = linear_error_estimate;
        Ok((theta_bar, report))
    }

    /// Forward mode, exact: ẋ = −A⁻¹ B θ̇.
    pub(crate) fn exact_jvp(
        &self,
        theta_dot: &[f64],
    ) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        let rhs: Vec<f64> = self.b_product(theta_dot)?.iter().map(|v| -v).collect();
        let Solved {
            y: x_dot,
            report: linear,
            ..
        } = self.solve_with(false, &rhs, &self.options.linear)?;
        let reported = self.reported_relative_residual(&linear, &rhs);
        let r = if self.options.estimate_error || reported.is_none() {
            Some(self.residual_of(false, &rhs, &x_dot)?)
        } else {
            None
        };
        let linear_error_estimate = match (&r, self.options.estimate_error) {
            (Some(r), true) => self.loose_correction(false, r).map(|s| norm(&s)),
            _ => None,
        };
        let mut report = self.report(Direction::Forward);
        report.steps = linear.iterations;
        report.relative_residual =
            reported.unwrap_or_else(|| relative(norm(r.as_deref().unwrap_or(&[])), norm(&rhs)));
        report.linear = Some(linear);
        report.linear_error_estimate = linear_error_estimate;
        Ok((x_dot, report))
    }
}
