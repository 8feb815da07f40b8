//! Matrix-free linear solvers: CG, MINRES, GMRES, BiCGSTAB, CG on the normal equations,
//! and dense LU / Cholesky for small systems.
//!
//! Every solver takes an operator ([`LinearOperator`]: a matrix, closures, or ad-core
//! Hessian/Jacobian products), a right-hand side, an optional warm start `x0`, an optional
//! [`Preconditioner`] (Krylov methods; see [`solve_preconditioned`]) and [`SolveOptions`],
//! and returns a [`Solution`]
//! whose [`SolveReport`] holds iterations, operator products and the **true** final
//! residual. A solve that did not reach `||b - A x|| <= max(rtol ||b||, atol)` is an
//! [`SolveError`] carrying that report and the last iterate — never a silent result.
//!
//! ```
//! use nalgebra::DMatrix;
//! use implicit::linear::{solve, solve_preconditioned, Jacobi, LinearOperator, Method, SolveOptions, Structure};
//! let a = DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0])
//!     .with_structure(Structure::SPD);
//! let b = [1.0, 2.0, 3.0];
//! let opts = SolveOptions::default().rtol(1e-12);
//! let sol = solve(&a, &b, None, Method::Auto, &opts).unwrap(); // picks CG
//! assert_eq!(sol.report.method, Method::Cg);
//! assert!(sol.report.converged && sol.report.residual_norm <= 1e-12 * sol.report.rhs_norm);
//!
//! // Warm start from the solution: nothing to do.
//! let again = solve(&a, &b, Some(&sol.x), Method::Cg, &opts).unwrap();
//! assert_eq!(again.report.iterations, 0);
//!
//! // Too few iterations is an error that carries the numbers.
//! let jacobi = Jacobi::from_operator(&a).unwrap();
//! let err = solve_preconditioned(&a, &b, None, &jacobi, Method::Cg, &opts.clone().max_iters(1))
//!     .unwrap_err();
//! let report = err.report().unwrap();
//! assert!(!report.converged && report.iterations == 1 && report.residual_norm > report.tolerance);
//! ```
//!
//! Buffers are allocated once per solve; the iteration loops allocate nothing (operators
//! built on ad-core products allocate inside their own `apply`). With a [`Workspace`] and
//! [`solve_with`], a loop of solves allocates nothing after the first.
//!
//! Solves that cannot make progress say so rather than run to the iteration limit:
//! [`SolveError::Stalled`] (no progress over [`SolveOptions::stall_window`] iterations),
//! [`SolveError::Diverged`], and [`SolveError::NotSymmetric`] up front when CG, MINRES or
//! Cholesky is asked to solve a matrix that is not symmetric.

mod ad_ops;
mod anderson;
mod bicgstab;
mod cg;
mod checks;
mod common;
mod dense;
mod error;
mod gmres;
/// The dense kernels (BLAS-1 on slices, matrix-vector products, Gram matrices, Cholesky).
/// Public only so that `benches/linear.rs` can race them against nalgebra; not a stable
/// API.
#[doc(hidden)]
pub mod kernels;
mod method;
mod minres;
mod normal_cg;
mod operator;
mod options;
mod precond;
mod report;
mod richardson;
mod workspace;

pub use ad_ops::{HessianOperator, JacobianOperator, MatHessianOperator};
pub use anderson::anderson;
pub use bicgstab::bicgstab;
pub use cg::cg;
pub use dense::{DenseCholesky, DenseLu, Factor, cholesky, lu};
pub use error::SolveError;
pub use gmres::gmres;
pub use method::Method;
pub use minres::minres;
pub use normal_cg::normal_cg;
pub use operator::{
    FnOperator, LinearOperator, NoTransposeFn, OperatorError, Ridge, Structure, WithStructure,
    ridge,
};
pub use options::SolveOptions;
pub use precond::{FnPreconditioner, Jacobi, Preconditioner};
pub use report::{ResidualKind, Solution, SolveReport};
pub use richardson::richardson;
pub use workspace::Workspace;

/// Solve `A x = b` (or `(A + ridge I) x = b`) with the chosen method, from the warm start
/// `x0` (zero if `None`; for the dense methods, the starting point of iterative
/// refinement).
///
/// [`Method::Auto`] picks from the operator's declared [`Structure`] and shape (see
/// [`Method::resolve`]); the report names the method that ran.
pub fn solve<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    method: Method,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    dispatch(op, b, x0, None, method, opts)
}

/// [`solve`] with a preconditioner `M ≈ A^{-1}` (see [`Preconditioner`] for how each
/// method uses it). The preconditioner is only borrowed, so the same one can serve the
/// forward and the adjoint solve. A dense method has no use for it: that is an
/// [`InvalidOption`](SolveError::InvalidOption) error rather than silently ignored.
pub fn solve_preconditioned<A: LinearOperator + ?Sized, P: Preconditioner + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: &P,
    method: Method,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    dispatch(op, b, x0, Some(&precond), method, opts)
}

/// [`solve`] / [`solve_preconditioned`] in a reusable [`Workspace`]: the solution is left
/// in [`Workspace::solution`] and the report returned. After the first solve of a given
/// size (or from a workspace made by [`Workspace::new`] for it), the Krylov methods
/// allocate nothing at all on success (errors carry copies of the report and the iterate).
/// The dense methods factor the operator, which allocates; use [`DenseLu`] /
/// [`DenseCholesky`] to factor once.
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{solve_with, Method, SolveOptions, Workspace};
/// let a = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, -1.0, 3.0]);
/// let mut ws = Workspace::default();
/// let report = solve_with(&mut ws, &a, &[3.0, 2.0], None, None, Method::Gmres, &SolveOptions::default())?;
/// assert!(report.converged);
/// assert!((ws.solution()[0] - 1.0).abs() < 1e-10 && (ws.solution()[1] - 1.0).abs() < 1e-10);
/// # Ok::<(), implicit::linear::SolveError>(())
/// ```
pub fn solve_with<A: LinearOperator + ?Sized>(
    ws: &mut Workspace,
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    method: Method,
    opts: &SolveOptions,
) -> Result<SolveReport, SolveError> {
    let method = method.resolve(op.structure(), op.nrows(), op.ncols());
    if method.is_dense() && precond.is_some() {
        return Err(SolveError::InvalidOption {
            name: "preconditioner",
            value: 1.0,
            reason: "a dense factorization does not use a preconditioner",
        });
    }
    let dense = |sol: Result<Solution, SolveError>, ws: &mut Workspace| {
        sol.map(|sol| {
            ws.set_solution(&sol.x);
            sol.report
        })
    };
    match method {
        Method::Cg => cg::cg_with(ws, op, b, x0, precond, opts),
        Method::Minres => minres::minres_with(ws, op, b, x0, precond, opts),
        Method::Gmres => gmres::gmres_with(ws, op, b, x0, precond, opts),
        Method::Bicgstab => bicgstab::bicgstab_with(ws, op, b, x0, precond, opts),
        Method::NormalCg => normal_cg::normal_cg_with(ws, op, b, x0, precond, opts),
        Method::Richardson => richardson::richardson_with(ws, op, b, x0, precond, opts),
        Method::Anderson => anderson::anderson_with(ws, op, b, x0, precond, opts),
        Method::Lu => dense(lu(op, b, x0, opts), ws),
        Method::Cholesky => dense(cholesky(op, b, x0, opts), ws),
        Method::Auto => unreachable!("Method::resolve never returns Auto"),
    }
}

fn dispatch<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    method: Method,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    Workspace::run_fresh(|ws| solve_with(ws, op, b, x0, precond, method, opts))
}
