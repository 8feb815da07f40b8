//! Conjugate gradient, optionally preconditioned, for symmetric positive definite systems.

use crate::linear::common::Ctx;
use crate::linear::error::SolveError;
use crate::linear::kernels::{axpy, dot, norm, not_above, xpby};
use crate::linear::method::Method;
use crate::linear::operator::LinearOperator;
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{Solution, SolveReport};
use crate::linear::workspace::Workspace;

/// Solve `A x = b` for symmetric positive definite `A` by (preconditioned) conjugate
/// gradient, from `x0` (zero if `None`).
///
/// One product with `A` and one preconditioner application per iteration; five vectors of
/// length `n`, allocated once per solve (or never, with a reused [`Workspace`] and
/// [`solve_with`](crate::linear::solve_with)). When the running residual reaches the tolerance, the true
/// residual is recomputed; if rounding has made them drift apart, CG restarts from the true
/// residual within the same iteration budget.
///
/// # Errors
/// - [`NegativeCurvature`](SolveError::NegativeCurvature) if some direction has
///   `p^T A p <= 0` (the system is not positive definite: use MINRES, or a ridge);
/// - [`Breakdown`](SolveError::Breakdown) if `r^T M^{-1} r <= 0` (preconditioner not
///   positive definite);
/// - [`NotSymmetric`](SolveError::NotSymmetric) up front for a matrix that is not
///   symmetric (beyond `sqrt(eps) * max |a_ij|`) and not declared symmetric;
/// - [`Stalled`](SolveError::Stalled) / [`Diverged`](SolveError::Diverged) when the residual
///   stops decreasing over [`SolveOptions::stall_window`] iterations or grows past
///   [`SolveOptions::divergence`] times the initial one;
/// - [`NotConverged`](SolveError::NotConverged) when the iterations run out;
/// - input errors ([`Dimension`](SolveError::Dimension),
///   [`NonFinite`](SolveError::NonFinite), [`InvalidOption`](SolveError::InvalidOption))
///   and operator failures.
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{cg, SolveOptions};
/// let a = DMatrix::from_row_slice(2, 2, &[4.0, 1.0, 1.0, 3.0]);
/// let sol = cg(&a, &[1.0, 2.0], None, None, &SolveOptions::default()).unwrap();
/// assert!(sol.report.converged && sol.report.iterations <= 2);
/// assert!((sol.x[0] - 1.0 / 11.0).abs() < 1e-12 && (sol.x[1] - 7.0 / 11.0).abs() < 1e-12);
/// ```
pub fn cg<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    Workspace::run_fresh(|ws| cg_with(ws, op, b, x0, precond, opts))
}

/// [`cg`] in a reusable [`Workspace`]: the solution is left in [`Workspace::solution`].
pub(crate) fn cg_with<A: LinearOperator + ?Sized>(
    ws: &mut Workspace,
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<SolveReport, SolveError> {
    let mut ctx = Ctx::new(op, b, x0, precond, opts, Method::Cg)?;
    let n = op.ncols();
    let (x, [r, z, p, q], _) = ws.split(n, [n; 4], 0);
    ctx.start(x0, x);

    let mut rnorm = ctx.initial_residual(b, x, x0.is_some(), r)?;
    let mut it = 0;
    loop {
        // Here `r` is the true residual b - A x.
        if rnorm <= ctx.tol || it >= ctx.max_iters {
            return ctx.finish(x, it, rnorm);
        }
        ctx.check_restart(x, it, rnorm)?;
        ctx.precond(r, z)?;
        let mut rho = dot(r, z);
        if not_above(rho, 0.0) {
            return Err(ctx.breakdown(b, x, r, it, NOT_PD_PRECOND));
        }
        p.copy_from_slice(z);
        loop {
            ctx.apply(p, q)?;
            let pq = dot(p, q);
            if opts.indefinite {
                if pq == 0.0 || !pq.is_finite() {
                    return Err(ctx.breakdown(b, x, r, it, ZERO_CURVATURE));
                }
            } else if not_above(pq, 0.0) {
                let curvature = pq / dot(p, p);
                return Err(ctx.negative_curvature(b, x, r, it, curvature));
            }
            let alpha = rho / pq;
            axpy(alpha, p, x);
            axpy(-alpha, q, r);
            it += 1;
            rnorm = norm(r);
            if rnorm <= ctx.tol || it >= ctx.max_iters {
                break;
            }
            if let Some(stop) = ctx.progress(it, rnorm) {
                return Err(ctx.stopped(b, x, r, it, stop));
            }
            ctx.precond(r, z)?;
            let rho_new = dot(r, z);
            if not_above(rho_new, 0.0) {
                return Err(ctx.breakdown(b, x, r, it, NOT_PD_PRECOND));
            }
            xpby(z, rho_new / rho, p);
            rho = rho_new;
        }
        rnorm = ctx.residual(b, x, r)?;
    }
}

const ZERO_CURVATURE: &str = "p^T A p is zero or not finite (indefinite CG)";

pub(crate) const NOT_PD_PRECOND: &str =
    "r^T M^-1 r <= 0: the preconditioner is not positive definite";
