//! The implicit function theorem: derivatives of x*(θ) defined by F(x*(θ), θ) = 0.
//!
//! With A = ∂F/∂x and B = ∂F/∂θ at the solution,
//! - reverse mode (VJP): θ̄ = −Bᵀ w, where Aᵀ w = x̄;
//! - forward mode (JVP): ẋ = −A⁻¹ B θ̇;
//! - the Jacobian dx*/dθ = −A⁻¹ B, by whichever of the two needs fewer solves.
//!
//! Before differentiating, the optimality residual ‖F(x*, θ)‖ is checked: the implicit
//! derivative's error grows linearly with the inner solution's error (Blondel et al. 2022),
//! and an early-stopped inner solver gives wrong, even wrong-signed, gradients. Above the
//! tolerance the result is [`ImplicitError::NotAtSolution`], never a number.

use std::cell::RefCell;
use std::rc::Rc;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{ImplicitError, check_finite};
use crate::linear::kernels::norm;
use crate::linear::{
    DenseCholesky, DenseLu, LinearOperator, Method, OperatorError, SolveError, SolveOptions,
    SolveReport, Structure, solve,
};
use crate::linearize::{ArgminHessian, Linearization, RecordedRoot};
use crate::problem::{FixedPointMap, FixedPointResidual, Objective, RootCondition};

/// Options of an implicit differentiation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IftOptions {
    /// Linear solver for the systems with A or Aᵀ (`Auto`: CG for argmins, whose A is a
    /// Hessian, GMRES otherwise).
    pub method: Method,
    /// Tolerances and limits of that linear solve.
    pub linear: SolveOptions,
    /// Largest accepted optimality residual ‖F(x*, θ)‖₂ before differentiating.
    pub residual_tol: f64,
    /// Estimate the gradient error left by the linear solve (one extra loose solve).
    pub estimate_error: bool,
}

impl Default for IftOptions {
    fn default() -> Self {
        IftOptions {
            method: Method::Auto,
            linear: SolveOptions::default().rtol(1e-10).atol(1e-14),
            residual_tol: 1e-6,
            estimate_error: true,
        }
    }
}

impl IftOptions {
    /// Set the linear solver.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    /// Set the linear solve's options.
    pub fn linear(mut self, linear: SolveOptions) -> Self {
        self.linear = linear;
        self
    }
    /// Set the accepted optimality residual.
    pub fn residual_tol(mut self, tol: f64) -> Self {
        self.residual_tol = tol;
        self
    }
    /// Turn the error estimate on or off.
    pub fn estimate_error(mut self, on: bool) -> Self {
        self.estimate_error = on;
        self
    }
}

/// What an implicit derivative cost and how accurate it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IftReport {
    /// ‖F(x*, θ)‖₂ at the point differentiated.
    pub forward_residual: f64,
    /// The linear solve with A (forward mode) or Aᵀ (reverse mode).
    pub linear: SolveReport,
    /// Estimated norm of the error the linear solve left in the result: ‖Bᵀ A⁻ᵀ r‖ (reverse)
    /// or ‖A⁻¹ r‖ (forward) for the final residual r, from one extra solve to 10% relative
    /// accuracy. `None` when not requested or when that solve failed.
    pub linear_error_estimate: Option<f64>,
}

/// A or Aᵀ of a linearization as a linear operator.
struct JacobianBlock<'a, L: ?Sized> {
    lin: &'a L,
    transpose: bool,
}

impl<L: Linearization + ?Sized> LinearOperator for JacobianBlock<'_, L> {
    fn nrows(&self) -> usize {
        self.lin.dims().0
    }
    fn ncols(&self) -> usize {
        self.lin.dims().0
    }
    fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let r = if self.transpose {
            self.lin.at_mul(x)
        } else {
            self.lin.a_mul(x)
        }?;
        y.copy_from_slice(&r);
        Ok(())
    }
    fn apply_transpose(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let r = if self.transpose {
            self.lin.a_mul(x)
        } else {
            self.lin.at_mul(x)
        }?;
        y.copy_from_slice(&r);
        Ok(())
    }
    fn structure(&self) -> Structure {
        let sym = self.lin.symmetric();
        Structure {
            symmetric: sym,
            positive_definite: sym,
        }
    }
}

/// Implicit derivatives at one solution: linearize once, then ask for VJPs, JVPs or the
/// Jacobian as often as needed.
///
/// ```
/// use ad_core::Real;
/// use implicit::{Implicit, IftOptions, ScalarObjective, Scalars};
/// // x*(θ) = argmin_x ½(x − 3)² + θ/2 · x²  =  3 / (1 + θ)
/// struct Shrink;
/// impl ScalarObjective for Shrink {
///     fn value<S: Real>(&self, x: &[S], t: &[S]) -> S {
///         (x[0] - 3.0).square() * 0.5 + t[0] * x[0].square() * 0.5
///     }
/// }
/// let theta = 0.5;
/// let x_star = 3.0 / (1.0 + theta);
/// let imp = Implicit::argmin(&Scalars(Shrink), &[x_star], &[theta], IftOptions::default()).unwrap();
/// let (dx, report) = imp.jvp(&[1.0]).unwrap();
/// assert!((dx[0] + 3.0 / (1.0 + theta).powi(2)).abs() < 1e-12);
/// assert!(report.linear.converged);
/// ```
pub struct Implicit<L> {
    lin: L,
    options: IftOptions,
    forward_residual: f64,
    /// Dense factorization of A, made once on first use by `Lu` / `Cholesky` (or given by
    /// the caller) and reused by every later VJP, JVP and Jacobian column.
    factor: RefCell<Option<Rc<Factor>>>,
    /// Whether `factor` came from the caller ([`Implicit::with_factor`]): its solves are then
    /// checked against the true operator.
    factor_given: bool,
}

/// A dense factorization of A kept for reuse.
#[derive(Clone, Debug)]
pub enum Factor {
    /// LU (any nonsingular A); serves A and Aᵀ.
    Lu(DenseLu),
    /// Cholesky (symmetric positive definite A).
    Cholesky(DenseCholesky),
}

impl<L: Linearization> Implicit<L> {
    /// Wrap a linearization; fails if its optimality residual is not finite
    /// ([`NonFinite`](ImplicitError::NonFinite), naming the entry) or exceeds the tolerance
    /// ([`NotAtSolution`](ImplicitError::NotAtSolution)).
    pub fn from_linearization(lin: L, options: IftOptions) -> Result<Self, ImplicitError> {
        // A non-finite residual (NaN or infinite data, or an overflowing F) is named as
        // such, with the offending entry, rather than reported as a residual above the
        // tolerance.
        crate::error::check_finite("optimality residual F(x*, theta)", lin.residual())?;
        let forward_residual = norm(lin.residual());
        if !forward_residual.is_finite() || forward_residual > options.residual_tol {
            return Err(ImplicitError::NotAtSolution {
                residual: forward_residual,
                tolerance: options.residual_tol,
            });
        }
        Ok(Implicit {
            lin,
            options,
            forward_residual,
            factor: RefCell::new(None),
            factor_given: false,
        })
    }

    /// Reuse a factorization of A = ∂F/∂x made elsewhere — typically by the forward solve
    /// (Newton's last Jacobian, a ridge system's Cholesky factor) — instead of building one.
    /// Each derivative solve then costs one operator product: the check of its true
    /// residual `rhs − op(A) y`. If that is above the tolerance, the solve refines
    /// (`y += F⁻¹ r`, one product per step), so a factor of a nearby matrix (Newton's
    /// previous iterate) still gives the exact answer; a wrong factor shows up as a
    /// [`NotConverged`](crate::linear::SolveError::NotConverged) error, never as a silent wrong answer.
    pub fn with_factor(mut self, factor: Factor) -> Self {
        *self.factor.borrow_mut() = Some(Rc::new(factor));
        self.factor_given = true;
        self
    }

    /// The dense factorization, made on first use.
    fn dense_factor(&self, method: Method) -> Result<Rc<Factor>, ImplicitError> {
        if let Some(f) = self.factor.borrow().as_ref() {
            return Ok(f.clone());
        }
        let op = JacobianBlock {
            lin: &self.lin,
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

    /// ‖F(x*, θ)‖₂ at the linearization point.
    pub fn forward_residual(&self) -> f64 {
        self.forward_residual
    }

    /// The linearization (for custom products).
    pub fn linearization(&self) -> &L {
        &self.lin
    }

    /// `(n, p)`: sizes of x and θ.
    pub fn dims(&self) -> (usize, usize) {
        self.lin.dims()
    }

    fn method(&self) -> Method {
        match self.options.method {
            Method::Auto if self.lin.symmetric() => Method::Cg,
            Method::Auto => Method::Gmres,
            m => m,
        }
    }

    /// Solve `op(A) y = rhs`; returns the solution and the solve report.
    fn solve_block(
        &self,
        transpose: bool,
        rhs: &[f64],
    ) -> Result<(Vec<f64>, SolveReport), ImplicitError> {
        self.solve_with(transpose, rhs, &self.options.linear)
    }

    /// Solve `op(A) y = rhs` with the given options (dense factor reused when there is one).
    fn solve_with(
        &self,
        transpose: bool,
        rhs: &[f64],
        opts: &SolveOptions,
    ) -> Result<(Vec<f64>, SolveReport), ImplicitError> {
        let method = self.method();
        let given = self.factor.borrow().clone().filter(|_| self.factor_given);
        let sol = if let Some(factor) = given {
            self.solve_given(&factor, transpose, rhs, opts)?
        } else if matches!(method, Method::Lu | Method::Cholesky) {
            // The solve that makes the factorization reports the n products it cost.
            let fresh = self.factor.borrow().is_none();
            let factor = self.dense_factor(method)?;
            let (result, made) = match (&*factor, transpose) {
                (Factor::Lu(lu), false) => (lu.solve(rhs, None, opts), lu.matvecs()),
                (Factor::Lu(lu), true) => (lu.solve_transpose(rhs, None, opts), lu.matvecs()),
                // Cholesky factors a symmetric A, so Aᵀ = A.
                (Factor::Cholesky(ch), _) => (ch.solve(rhs, None, opts), ch.matvecs()),
            };
            let made = if fresh { made } else { 0 };
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
                lin: &self.lin,
                transpose,
            };
            solve(&op, rhs, None, method, opts)?
        };
        Ok((sol.x, sol.report))
    }

    /// Solve `op(A) y = rhs` with a caller-given factor `F ≈ op(A)`: iterative refinement
    /// against the true operator (`y += F⁻¹ (rhs − op(A) y)`), stopping at the tolerance,
    /// after `max_iters` steps, or when the residual stops halving.
    fn solve_given(
        &self,
        factor: &Factor,
        transpose: bool,
        rhs: &[f64],
        opts: &SolveOptions,
    ) -> Result<crate::linear::Solution, ImplicitError> {
        opts.validate()?;
        let inverse = |r: &mut [f64]| match (factor, transpose) {
            (Factor::Lu(lu), false) => lu.inverse_in_place(r),
            (Factor::Lu(lu), true) => lu.inverse_transpose_in_place(r),
            (Factor::Cholesky(ch), _) => ch.inverse_in_place(r),
        };
        let residual = |y: &[f64]| -> Result<(Vec<f64>, f64), ImplicitError> {
            let mut r = self.residual_of(transpose, rhs, y)?;
            if opts.ridge != 0.0 {
                r.iter_mut()
                    .zip(y)
                    .for_each(|(ri, yi)| *ri -= opts.ridge * yi);
            }
            let n = norm(&r);
            Ok((r, n))
        };
        let rhs_norm = norm(rhs);
        let tol = opts.tolerance(rhs_norm);
        let max_iters = opts.max_iters_for(rhs.len());
        let mut y = rhs.to_vec();
        inverse(&mut y);
        let (mut r, mut rnorm) = residual(&y)?;
        let (mut iterations, mut matvecs) = (0, 1);
        while rnorm > tol && iterations < max_iters {
            inverse(&mut r);
            y.iter_mut().zip(&r).for_each(|(yi, di)| *yi += di);
            iterations += 1;
            let (new_r, new) = residual(&y)?;
            matvecs += 1;
            let stalled = new.is_nan() || new > 0.5 * rnorm;
            (r, rnorm) = (new_r, new);
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
            Ok(crate::linear::Solution { x: y, report })
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
        self.solve_with(transpose, r, &loose).ok().map(|(s, _)| s)
    }

    /// Residual `rhs − op(A) y`.
    fn residual_of(
        &self,
        transpose: bool,
        rhs: &[f64],
        y: &[f64],
    ) -> Result<Vec<f64>, ImplicitError> {
        let ay = if transpose {
            self.lin.at_mul(y)?
        } else {
            self.lin.a_mul(y)?
        };
        Ok(rhs.iter().zip(&ay).map(|(b, a)| b - a).collect())
    }

    /// Reverse mode: θ̄ = −Bᵀ A⁻ᵀ x̄ for the cotangent `x_bar` of the solution.
    pub fn vjp(&self, x_bar: &[f64]) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        let (n, _) = self.dims();
        check_vector("cotangent x_bar", x_bar, n)?;
        let (w, linear) = self.solve_block(true, x_bar)?;
        let theta_bar: Vec<f64> = self.lin.bt_mul(&w)?.iter().map(|v| -v).collect();
        let linear_error_estimate = if self.options.estimate_error {
            let r = self.residual_of(true, x_bar, &w)?;
            match self.loose_correction(true, &r) {
                Some(s) => Some(norm(&self.lin.bt_mul(&s)?)),
                None => None,
            }
        } else {
            None
        };
        Ok((
            theta_bar,
            IftReport {
                forward_residual: self.forward_residual,
                linear,
                linear_error_estimate,
            },
        ))
    }

    /// Forward mode: ẋ = −A⁻¹ B θ̇ for the parameter tangent `theta_dot`.
    pub fn jvp(&self, theta_dot: &[f64]) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        let (_, p) = self.dims();
        check_vector("tangent theta_dot", theta_dot, p)?;
        let rhs: Vec<f64> = self.lin.b_mul(theta_dot)?.iter().map(|v| -v).collect();
        let (x_dot, linear) = self.solve_block(false, &rhs)?;
        let linear_error_estimate = if self.options.estimate_error {
            let r = self.residual_of(false, &rhs, &x_dot)?;
            self.loose_correction(false, &r).map(|s| norm(&s))
        } else {
            None
        };
        Ok((
            x_dot,
            IftReport {
                forward_residual: self.forward_residual,
                linear,
                linear_error_estimate,
            },
        ))
    }

    /// The Jacobian dx*/dθ (n x p): p forward solves or n reverse solves, whichever is fewer.
    pub fn jacobian(&self) -> Result<DMatrix<f64>, ImplicitError> {
        let (n, p) = self.dims();
        let mut jac = DMatrix::zeros(n, p);
        let mut e = vec![0.0; p.max(n)];
        if p <= n {
            for j in 0..p {
                e[j] = 1.0;
                let (col, _) = self.jvp(&e[..p])?;
                jac.column_mut(j).copy_from_slice(&col);
                e[j] = 0.0;
            }
        } else {
            for i in 0..n {
                e[i] = 1.0;
                let (row, _) = self.vjp(&e[..n])?;
                for (j, v) in row.iter().enumerate() {
                    jac[(i, j)] = *v;
                }
                e[i] = 0.0;
            }
        }
        Ok(jac)
    }
}

fn check_vector(what: &'static str, v: &[f64], expected: usize) -> Result<(), ImplicitError> {
    if v.len() != expected {
        return Err(ImplicitError::Dimension {
            what,
            expected,
            got: v.len(),
        });
    }
    check_finite(what, v)
}

fn check_point(x: &[f64], theta: &[f64]) -> Result<(), ImplicitError> {
    check_vector("solution x", x, x.len())?;
    check_vector("parameters theta", theta, theta.len())
}

impl Implicit<RecordedRoot> {
    /// Implicit derivatives of the root x* of F(·, θ) (F recorded once on a tape; every
    /// product is one sweep over that recording).
    pub fn root<C: RootCondition>(
        condition: &C,
        x_star: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        check_point(x_star, theta)?;
        Implicit::from_linearization(RecordedRoot::new(condition, x_star, theta)?, options)
    }

    /// Implicit derivatives of the fixed point z* = f(z*, θ) (F = f − I).
    pub fn fixed_point<F: FixedPointMap>(
        map: &F,
        z_star: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        Self::root(&FixedPointResidual(RefMap(map)), z_star, theta, options)
    }
}

impl<'a, O: Objective> Implicit<ArgminHessian<'a, O>> {
    /// Implicit derivatives of x* = argmin L(·, θ) (F = ∇ₓL; A is the Hessian, so CG with
    /// exact Hessian-vector products by default).
    pub fn argmin(
        objective: &'a O,
        x_star: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        check_point(x_star, theta)?;
        Implicit::from_linearization(ArgminHessian::new(objective, x_star, theta)?, options)
    }
}

/// A borrowed fixed-point map.
struct RefMap<'a, F>(&'a F);

impl<F: FixedPointMap> FixedPointMap for RefMap<'_, F> {
    fn map<M: ad_core::MatOps>(&self, z: &M, theta: &M) -> M {
        self.0.map(z, theta)
    }
}
