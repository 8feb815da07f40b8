//! BiCGSTAB (van der Vorst, 1992) with right preconditioning, for general square systems.

use crate::linear::common::Ctx;
use crate::linear::error::SolveError;
use crate::linear::kernels::{axpy, dot, norm, not_above};
use crate::linear::method::Method;
use crate::linear::operator::LinearOperator;
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{Solution, SolveReport};
use crate::linear::workspace::Workspace;

/// Solve `A x = b` for a general square `A` by BiCGSTAB, from `x0` (zero if `None`), with an
/// optional right preconditioner.
///
/// Two products and two preconditioner applications per iteration, eight vectors of length
/// `n` allocated once per solve (or never, with a reused [`Workspace`] and
/// [`solve_with`](crate::linear::solve_with)), memory independent of the iteration count
/// (unlike GMRES). On a
/// (near-)breakdown of the recurrence the method restarts from the true residual with a
/// fresh shadow vector; a breakdown right after a restart is an error.
///
/// # Errors
/// [`Breakdown`](SolveError::Breakdown) when the recurrence breaks down right after a
/// (re)start (for example on a skew-symmetric operator, where `r^T A r = 0`: use GMRES);
/// [`Stalled`](SolveError::Stalled) / [`Diverged`](SolveError::Diverged) when the erratic
/// residual stops improving over [`SolveOptions::stall_window`] iterations or blows up;
/// [`NotConverged`](SolveError::NotConverged) when the iterations run out; input errors
/// and operator failures as for [`cg`](crate::linear::cg).
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{bicgstab, SolveOptions};
/// let a = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, -1.0, 3.0]);
/// let sol = bicgstab(&a, &[3.0, 2.0], None, None, &SolveOptions::default()).unwrap();
/// assert!((sol.x[0] - 1.0).abs() < 1e-10 && (sol.x[1] - 1.0).abs() < 1e-10);
/// ```
pub fn bicgstab<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    Workspace::run_fresh(|ws| bicgstab_with(ws, op, b, x0, precond, opts))
}

/// [`bicgstab`] in a reusable [`Workspace`]: the solution is left in [`Workspace::solution`].
pub(crate) fn bicgstab_with<A: LinearOperator + ?Sized>(
    ws: &mut Workspace,
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<SolveReport, SolveError> {
    let mut ctx = Ctx::new(op, b, x0, precond, opts, Method::Bicgstab)?;
    let n = op.ncols();
    let (x, [r, rhat, p, v, phat, shat, t], _) = ws.split(n, [n; 7], 0);
    ctx.start(x0, x);

    let tiny = f64::EPSILON;
    let mut rnorm = ctx.initial_residual(b, x, x0.is_some(), r)?;
    let mut it = 0;
    loop {
        // Here `r` is the true residual b - A x; start with the shadow vector rhat = r.
        if rnorm <= ctx.tol || it >= ctx.max_iters {
            return ctx.finish(x, it, rnorm);
        }
        ctx.check_restart(x, it, rnorm)?;
        rhat.copy_from_slice(r);
        let rhat_norm = rnorm;
        let (mut rho, mut alpha, mut omega) = (1.0, 1.0, 1.0);
        v.fill(0.0);
        p.fill(0.0);
        let mut first = true;
        loop {
            let rho_new = dot(rhat, r);
            if not_above(rho_new.abs(), tiny * rhat_norm * rnorm) {
                if first {
                    return Err(ctx.breakdown_at(x, it, rnorm, BREAKDOWN_RHO));
                }
                break;
            }
            let beta = (rho_new / rho) * (alpha / omega);
            for i in 0..n {
                p[i] = r[i] + beta * (p[i] - omega * v[i]);
            }
            ctx.precond(p, phat)?;
            ctx.apply(phat, v)?;
            let rv = dot(rhat, v);
            if not_above(rv.abs(), tiny * rhat_norm * norm(v)) {
                if first {
                    return Err(ctx.breakdown_at(x, it, rnorm, BREAKDOWN_RV));
                }
                break;
            }
            alpha = rho_new / rv;
            // r becomes s = r - alpha v.
            axpy(-alpha, v, r);
            let snorm = norm(r);
            if snorm <= ctx.tol {
                axpy(alpha, phat, x);
                it += 1;
                break;
            }
            ctx.precond(r, shat)?;
            ctx.apply(shat, t)?;
            let tt = dot(t, t);
            omega = if tt > 0.0 { dot(t, r) / tt } else { 0.0 };
            axpy(alpha, phat, x);
            axpy(omega, shat, x);
            axpy(-omega, t, r);
            it += 1;
            rho = rho_new;
            rnorm = norm(r);
            if rnorm <= ctx.tol || it >= ctx.max_iters {
                break;
            }
            if let Some(stop) = ctx.progress(it, rnorm) {
                return Err(ctx.stopped(b, x, r, it, stop));
            }
            if omega == 0.0 || !omega.is_finite() {
                // Stabilization step made no progress: restart (an error if it happens
                // again right away).
                break;
            }
            first = false;
        }
        rnorm = ctx.residual(b, x, r)?;
    }
}

const BREAKDOWN_RHO: &str =
    "rho = rhat^T r vanished right after a restart (residual orthogonal to the shadow vector)";
const BREAKDOWN_RV: &str = "rhat^T A M^-1 p vanished right after a restart (for example a \
     skew-symmetric operator); use GMRES";
