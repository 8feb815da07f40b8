//! The implicit function theorem: derivatives of x*(θ) defined by F(x*(θ), θ) = 0.
//!
//! With A = ∂F/∂x and B = ∂F/∂θ at the solution,
//! - reverse mode (VJP): θ̄ = −Bᵀ w, where Aᵀ w = x̄;
//! - forward mode (JVP): ẋ = −A⁻¹ B θ̇;
//! - the Jacobian dx*/dθ = −A⁻¹ B, by whichever of the two needs fewer solves.
//!
//! x may be a matrix of any shape and θ several blocks (see [`problem`](crate::problem)):
//! [`Implicit::vjp`] takes x̄ shaped like x and returns one θ̄ per block,
//! [`Implicit::jvp`] takes one θ̇ per block, and [`Implicit::jacobian`] is the n x p matrix
//! over the flattening — x column-major; the blocks each column-major, concatenated in
//! order — which [`Implicit::vjp_flat`] and [`Implicit::jvp_flat`] also use.
//!
//! Before differentiating, the options are validated and the optimality residual
//! ‖F(x*, θ)‖ is checked: the implicit derivative's error grows linearly with the inner
//! solution's error (Blondel et al. 2022), and an early-stopped inner solver gives wrong,
//! even wrong-signed, gradients. Above the tolerance the result is
//! [`ImplicitError::NotAtSolution`], never a number. The backward pass is an option
//! ([`Backward`]): the exact solve, the phantom gradient or Jacobian-free backprop.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::adapters::FixedPointResidual;
use crate::backward::IftReport;
use crate::backward::{Backward, Direction};
use crate::checks;
use crate::error::{ImplicitError, check_finite};
use crate::linear::Factor;
use crate::linear::kernels::norm;
use crate::linear::{Method, SolveOptions};
use crate::linearize::{ArgminHessian, Linearization, RecordedRoot, Shapes};
use crate::problem::{FixedPointMap, Objective, RootCondition};

/// Options of an implicit differentiation. Validated ([`IftOptions::validate`]) before
/// any work.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct IftOptions {
    /// Linear solver for the systems with A or Aᵀ (`Auto`: CG for argmins, whose A is a
    /// Hessian, GMRES otherwise). Used by [`Backward::Exact`].
    pub method: Method,
    /// Tolerances and limits of that linear solve.
    pub linear: SolveOptions,
    /// Largest accepted optimality residual ‖F(x*, θ)‖₂ before differentiating (finite,
    /// `>= 0`).
    pub residual_tol: f64,
    /// Estimate the gradient error left by the linear solve (one extra loose solve).
    pub estimate_error: bool,
    /// The backward (and forward-mode) pass.
    pub backward: Backward,
    /// The shape x* must have, if known: checked before any user code runs, so a forward
    /// solver returning x* of the wrong shape is [`ImplicitError::Shape`], not a panic
    /// inside the problem's matrix products. `None`: any shape.
    pub solution_shape: Option<(usize, usize)>,
    /// With [`Method::Auto`]: systems of at most this many unknowns whose linearization
    /// [`assembles`](crate::Linearization::assembles) A in one batched sweep (argmin
    /// problems) are assembled and factored densely (Cholesky, LU if A is indefinite),
    /// the factor reused by every later product; larger ones stay matrix-free (CG / GMRES).
    /// 0 turns the dense path off. Default 64: on a well-conditioned ridge problem (CG in 9
    /// iterations) assembly wins up to d = 50 and loses from d = 100 (docs/benchmarks.md,
    /// "Dense or matrix-free"); problems that need more CG iterations cross over later.
    pub dense_up_to: usize,
}

impl Default for IftOptions {
    fn default() -> Self {
        IftOptions {
            method: Method::Auto,
            linear: SolveOptions::default().rtol(1e-10).atol(1e-14),
            residual_tol: 1e-6,
            estimate_error: true,
            backward: Backward::Exact,
            solution_shape: None,
            dense_up_to: 64,
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
    /// Set the backward pass.
    pub fn backward(mut self, backward: Backward) -> Self {
        self.backward = backward;
        self
    }
    /// Set the largest system assembled densely under [`Method::Auto`] (0: never).
    pub fn dense_up_to(mut self, n: usize) -> Self {
        self.dense_up_to = n;
        self
    }
    /// Declare the shape of x*.
    pub fn solution_shape(mut self, rows: usize, cols: usize) -> Self {
        self.solution_shape = Some((rows, cols));
        self
    }

    /// Check every option: [`InvalidOption`](ImplicitError::InvalidOption) naming it and
    /// its value for a residual tolerance that is negative or not finite (NaN would switch
    /// the residual check off), for invalid linear-solve options, and for a phantom pass
    /// with no steps or a damping outside (0, 1].
    pub fn validate(&self) -> Result<(), ImplicitError> {
        let bad = |name: &'static str, value: f64, reason: &'static str| {
            Err(ImplicitError::InvalidOption {
                name,
                value,
                reason,
            })
        };
        if !(self.residual_tol.is_finite() && self.residual_tol >= 0.0) {
            return bad("residual_tol", self.residual_tol, "must be finite and >= 0");
        }
        self.linear.validate()?;
        if let Backward::Phantom { steps, damping } = self.backward {
            if steps == 0 {
                return bad(
                    "backward.steps",
                    0.0,
                    "must be at least 1 (Backward::JacobianFree takes no steps)",
                );
            }
            if !(damping > 0.0 && damping <= 1.0) {
                return bad("backward.damping", damping, "must be in (0, 1]");
            }
        }
        Ok(())
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
/// let imp = Implicit::argmin_vec(&Scalars(Shrink), &[x_star], &[theta], IftOptions::default()).unwrap();
/// let (dx, report) = imp.jvp_flat(&[1.0]).unwrap();
/// assert!((dx[0] + 3.0 / (1.0 + theta).powi(2)).abs() < 1e-12);
/// assert!(report.linear.unwrap().converged && report.relative_residual < 1e-10);
/// ```
pub struct Implicit<L> {
    pub(crate) lin: L,
    pub(crate) options: IftOptions,
    pub(crate) forward_residual: f64,
    pub(crate) shapes: Shapes,
    /// Products with A, Aᵀ, B or Bᵀ made so far.
    pub(crate) products: Cell<usize>,
    /// Dense factorization of A, made once on first use by `Lu` / `Cholesky` (or given by
    /// the caller) and reused by every later VJP, JVP and Jacobian column.
    pub(crate) factor: RefCell<Option<Rc<Factor>>>,
    /// Whether `factor` came from the caller ([`Implicit::with_factor`]): its solves are then
    /// checked against the true operator.
    pub(crate) factor_given: bool,
    /// A and Bᵀ assembled densely (see [`IftOptions::dense_up_to`]): products with them
    /// are matrix-vector products, not sweeps.
    pub(crate) assembled: RefCell<Option<Rc<Assembled>>>,
}

/// A (n x n) and Bᵀ (p x n), assembled densely.
pub(crate) type Assembled = (DMatrix<f64>, DMatrix<f64>);

impl<L: Linearization> Implicit<L> {
    /// Wrap a linearization. Fails if the options are invalid
    /// ([`InvalidOption`](ImplicitError::InvalidOption)), if its optimality residual is not
    /// finite ([`NonFinite`](ImplicitError::NonFinite), naming the entry) or exceeds the
    /// tolerance ([`NotAtSolution`](ImplicitError::NotAtSolution)).
    pub fn from_linearization(lin: L, options: IftOptions) -> Result<Self, ImplicitError> {
        options.validate()?;
        // A non-finite residual (NaN or infinite data, or an overflowing F) is named as
        // such, with the offending entry, rather than reported as a residual above the
        // tolerance.
        check_finite("optimality residual F(x*, theta)", lin.residual())?;
        let forward_residual = norm(lin.residual());
        if forward_residual.is_nan() || forward_residual > options.residual_tol {
            return Err(ImplicitError::NotAtSolution {
                residual: forward_residual,
                tolerance: options.residual_tol,
            });
        }
        let shapes = lin.shapes();
        Ok(Implicit {
            lin,
            options,
            forward_residual,
            shapes,
            products: Cell::new(0),
            factor: RefCell::new(None),
            factor_given: false,
            assembled: RefCell::new(None),
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

    /// ‖F(x*, θ)‖₂ at the linearization point.
    pub fn forward_residual(&self) -> f64 {
        self.forward_residual
    }

    /// The linearization (for custom products).
    pub fn linearization(&self) -> &L {
        &self.lin
    }

    /// The options in use.
    pub fn options(&self) -> &IftOptions {
        &self.options
    }

    /// `(n, p)`: numbers of entries of x and of all parameter blocks.
    pub fn dims(&self) -> (usize, usize) {
        self.lin.dims()
    }

    /// Shapes of x and of the parameter blocks.
    pub fn shapes(&self) -> &Shapes {
        &self.shapes
    }

    /// Products with A, Aᵀ, B or Bᵀ made so far by this value (all derivatives together).
    pub fn products(&self) -> usize {
        self.products.get()
    }

    pub(crate) fn count(&self) {
        self.products.set(self.products.get() + 1);
    }

    /// `op(A) v`, counted (a product with an assembled A is a matrix-vector product).
    pub(crate) fn a_product(
        &self,
        transpose: bool,
        v: &[f64],
    ) -> Result<Vec<f64>, ad_core::AdError> {
        if let Some(ab) = self.assembled.borrow().as_ref() {
            let a = &ab.0;
            let v = nalgebra::DVectorView::from_slice(v, v.len());
            let r = if transpose { a.tr_mul(&v) } else { a * v };
            return Ok(r.as_slice().to_vec());
        }
        self.count();
        if transpose {
            self.lin.at_mul(v)
        } else {
            self.lin.a_mul(v)
        }
    }

    /// `B w`, counted.
    pub(crate) fn b_product(&self, w: &[f64]) -> Result<Vec<f64>, ad_core::AdError> {
        if let Some(ab) = self.assembled.borrow().as_ref() {
            let w = nalgebra::DVectorView::from_slice(w, w.len());
            return Ok(ab.1.tr_mul(&w).as_slice().to_vec());
        }
        self.count();
        self.lin.b_mul(w)
    }

    /// `Bᵀ u`, counted.
    pub(crate) fn bt_product(&self, u: &[f64]) -> Result<Vec<f64>, ad_core::AdError> {
        if let Some(ab) = self.assembled.borrow().as_ref() {
            let u = nalgebra::DVectorView::from_slice(u, u.len());
            return Ok((&ab.1 * u).as_slice().to_vec());
        }
        self.count();
        self.lin.bt_mul(u)
    }

    /// `(Aᵀ u, Bᵀ u)`, counted once.
    pub(crate) fn transpose_products(
        &self,
        u: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>), ad_core::AdError> {
        if self.assembled.borrow().is_some() {
            return Ok((self.a_product(true, u)?, self.bt_product(u)?));
        }
        self.count();
        self.lin.transpose_products(u)
    }

    /// Reverse mode: θ̄ (one matrix per parameter block) for the cotangent `x_bar` of the
    /// solution (shaped like x), by the pass of [`IftOptions::backward`].
    ///
    /// # Errors
    /// [`Shape`](ImplicitError::Shape) if `x_bar` is not shaped like x;
    /// [`NonFiniteEntry`](ImplicitError::NonFiniteEntry) for a non-finite entry; a failed
    /// linear solve (exact pass) with its report.
    pub fn vjp(
        &self,
        x_bar: &DMatrix<f64>,
    ) -> Result<(Vec<DMatrix<f64>>, IftReport), ImplicitError> {
        checks::shape(
            "cotangent x_bar (must have the shape of x)",
            self.shapes.x,
            x_bar.shape(),
        )?;
        checks::finite_matrix("cotangent x_bar", 0, x_bar)?;
        let (theta_bar, report) = self.vjp_checked(x_bar.as_slice())?;
        Ok((self.shapes.theta_blocks(&theta_bar), report))
    }

    /// Forward mode: ẋ (shaped like x) for one tangent θ̇ per parameter block.
    ///
    /// # Errors
    /// [`BlockCount`](ImplicitError::BlockCount) or [`Shape`](ImplicitError::Shape) if the
    /// blocks differ from θ's; [`NonFiniteEntry`](ImplicitError::NonFiniteEntry) for a
    /// non-finite entry; a failed linear solve (exact pass) with its report.
    pub fn jvp(
        &self,
        theta_dot: &[DMatrix<f64>],
    ) -> Result<(DMatrix<f64>, IftReport), ImplicitError> {
        checks::block_shapes(
            "tangent theta_dot (one block per parameter block)",
            &self.shapes.theta,
            theta_dot,
        )?;
        checks::finite_blocks("tangent theta_dot", theta_dot)?;
        let (x_dot, report) = self.jvp_checked(&Shapes::flatten(theta_dot))?;
        Ok((self.shapes.x_matrix(&x_dot), report))
    }

    /// [`vjp`](Self::vjp) on the flattening: x̄ as n entries (column-major), θ̄ as p entries
    /// (the blocks column-major, concatenated in order).
    pub fn vjp_flat(&self, x_bar: &[f64]) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        checks::length("cotangent x_bar", self.shapes.n(), x_bar.len())?;
        self.vjp(&self.shapes.x_matrix(x_bar))
            .map(|(blocks, report)| (Shapes::flatten(&blocks), report))
    }

    /// [`jvp`](Self::jvp) on the flattening: θ̇ as p entries, ẋ as n entries.
    pub fn jvp_flat(&self, theta_dot: &[f64]) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        checks::length("tangent theta_dot", self.shapes.p(), theta_dot.len())?;
        self.jvp(&self.shapes.theta_blocks(theta_dot))
            .map(|(x_dot, report)| (x_dot.as_slice().to_vec(), report))
    }

    /// The Jacobian dx*/dθ (n x p) over the flattening (see [`vjp_flat`](Self::vjp_flat)):
    /// p forward or n reverse derivatives, whichever is fewer, by the chosen pass.
    pub fn jacobian(&self) -> Result<DMatrix<f64>, ImplicitError> {
        let (n, p) = self.dims();
        let mut jac = DMatrix::zeros(n, p);
        let mut e = vec![0.0; p.max(n)];
        if p <= n {
            for j in 0..p {
                e[j] = 1.0;
                let (col, _) = self.jvp_flat(&e[..p])?;
                jac.column_mut(j).copy_from_slice(&col);
                e[j] = 0.0;
            }
        } else {
            for i in 0..n {
                e[i] = 1.0;
                let (row, _) = self.vjp_flat(&e[..n])?;
                for (j, v) in row.iter().enumerate() {
                    jac[(i, j)] = *v;
                }
                e[i] = 0.0;
            }
        }
        Ok(jac)
    }

    /// Reverse mode on a checked flat cotangent.
    fn vjp_checked(&self, x_bar: &[f64]) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        let before = self.products();
        let result = match self.options.backward {
            Backward::Exact => self.exact_vjp(x_bar),
            Backward::Phantom { steps, damping } => self.phantom_vjp(x_bar, steps, damping),
            Backward::JacobianFree => self.phantom_vjp(x_bar, 0, 1.0),
        };
        result.map(|(t, mut report)| {
            report.products = self.products() - before;
            (t, report)
        })
    }

    /// Forward mode on a checked flat tangent.
    fn jvp_checked(&self, theta_dot: &[f64]) -> Result<(Vec<f64>, IftReport), ImplicitError> {
        let before = self.products();
        let result = match self.options.backward {
            Backward::Exact => self.exact_jvp(theta_dot),
            Backward::Phantom { steps, damping } => self.phantom_jvp(theta_dot, steps, damping),
            Backward::JacobianFree => self.phantom_jvp(theta_dot, 0, 1.0),
        };
        result.map(|(x, mut report)| {
            report.products = self.products() - before;
            (x, report)
        })
    }

    /// A report of this value's pass, filled in by the caller.
    pub(crate) fn report(&self, direction: Direction) -> IftReport {
        IftReport {
            forward_residual: self.forward_residual,
            direction,
            backward: self.options.backward,
            steps: 0,
            products: 0,
            relative_residual: f64::NAN,
            linear: None,
            linear_error_estimate: None,
            failure: None,
        }
    }
}

/// The point (x*, θ) checked: finite entries, and x* of the declared shape if any.
fn check_point(
    x: &DMatrix<f64>,
    theta: &[DMatrix<f64>],
    options: &IftOptions,
) -> Result<(), ImplicitError> {
    options.validate()?;
    if let Some(expected) = options.solution_shape {
        checks::shape(
            "solution x (IftOptions::solution_shape)",
            expected,
            x.shape(),
        )?;
    }
    checks::finite_matrix("solution x", 0, x)?;
    checks::finite_blocks("parameters theta", theta)
}

impl Implicit<RecordedRoot> {
    /// Implicit derivatives of the root x* of F(·, θ), for x* of any shape and θ in blocks
    /// (F recorded once on a tape; every product is one sweep over that recording).
    ///
    /// # Errors
    /// Invalid options; non-finite x* or θ ([`NonFiniteEntry`](ImplicitError::NonFiniteEntry),
    /// naming the block and entry); x* unlike
    /// [`IftOptions::solution_shape`] or F unlike x ([`Shape`](ImplicitError::Shape));
    /// [`NotAtSolution`](ImplicitError::NotAtSolution).
    pub fn root<C: RootCondition + ?Sized>(
        condition: &C,
        x_star: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        check_point(x_star, theta, &options)?;
        Implicit::from_linearization(RecordedRoot::new(condition, x_star, theta)?, options)
    }

    /// [`root`](Self::root) for a column x* and one column block θ.
    pub fn root_vec<C: RootCondition + ?Sized>(
        condition: &C,
        x_star: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        Self::root(
            condition,
            &checks::column(x_star),
            &[checks::column(theta)],
            options,
        )
    }

    /// Implicit derivatives of the fixed point z* = f(z*, θ) (F = f − I).
    pub fn fixed_point<F: FixedPointMap + ?Sized>(
        map: &F,
        z_star: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        Self::root(&FixedPointResidual(map), z_star, theta, options)
    }

    /// [`fixed_point`](Self::fixed_point) for a column z* and one column block θ.
    pub fn fixed_point_vec<F: FixedPointMap + ?Sized>(
        map: &F,
        z_star: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        Self::fixed_point(
            map,
            &checks::column(z_star),
            &[checks::column(theta)],
            options,
        )
    }
}

impl<'a, O: Objective + ?Sized> Implicit<ArgminHessian<'a, O>> {
    /// Implicit derivatives of x* = argmin L(·, θ) (F = ∇ₓL; A is the Hessian, so CG with
    /// exact Hessian-vector products by default). Errors as for [`Implicit::root`].
    pub fn argmin(
        objective: &'a O,
        x_star: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        check_point(x_star, theta, &options)?;
        Implicit::from_linearization(ArgminHessian::new(objective, x_star, theta)?, options)
    }

    /// [`argmin`](Self::argmin) at a point whose residual, finiteness and options were
    /// checked already (by a solver node): ∇ₓL is not evaluated again, and the forward
    /// residual reads 0 (the node reports the one it checked).
    pub(crate) fn argmin_prechecked(
        objective: &'a O,
        x_star: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        Implicit::from_linearization(
            ArgminHessian::products_only(objective, x_star, theta)?,
            options,
        )
    }

    /// [`argmin`](Self::argmin) for a column x* and one column block θ.
    pub fn argmin_vec(
        objective: &'a O,
        x_star: &[f64],
        theta: &[f64],
        options: IftOptions,
    ) -> Result<Self, ImplicitError> {
        Self::argmin(
            objective,
            &checks::column(x_star),
            &[checks::column(theta)],
            options,
        )
    }
}
