//! MINRES (Paige and Saunders, 1975) for symmetric, possibly indefinite, systems.

use std::mem::swap;

use crate::linear::cg::NOT_PD_PRECOND;
use crate::linear::common::Ctx;
use crate::linear::error::SolveError;
use crate::linear::kernels::{axpy, dot, not_above};
use crate::linear::method::Method;
use crate::linear::operator::LinearOperator;
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{Solution, SolveReport};
use crate::linear::workspace::Workspace;

/// Solve `A x = b` for symmetric (possibly indefinite) `A` by MINRES, from `x0` (zero if
/// `None`), with an optional symmetric positive definite preconditioner.
///
/// MINRES minimizes `||b - A x||` over the Krylov space with short recurrences: one product
/// per iteration and seven vectors of length `n`, allocated once per solve (or never, with
/// a reused [`Workspace`] and [`solve_with`](crate::linear::solve_with)). Its running residual
/// estimate is the 2-norm without a preconditioner and the `M^{-1}`-norm with one (then
/// rescaled by the ratio of the two norms at the start); the stopping decision is always
/// confirmed with the true residual (restarting from it if the two disagree).
///
/// # Errors
/// [`NotConverged`](SolveError::NotConverged) when the iterations run out (for example
/// on a singular system with `b` outside the range), or [`Stalled`](SolveError::Stalled)
/// when the residual stops decreasing first; [`NotSymmetric`](SolveError::NotSymmetric) up
/// front for a matrix that is not symmetric and not declared so;
/// [`Breakdown`](SolveError::Breakdown) if the preconditioner is not positive definite;
/// input errors and operator failures as for [`cg`](crate::linear::cg).
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{minres, SolveOptions};
/// let a = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 2.0, -1.0]); // indefinite
/// let sol = minres(&a, &[3.0, 1.0], None, None, &SolveOptions::default()).unwrap();
/// assert!((sol.x[0] - 1.0).abs() < 1e-10 && (sol.x[1] - 1.0).abs() < 1e-10);
/// ```
pub fn minres<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    Workspace::run_fresh(|ws| minres_with(ws, op, b, x0, precond, opts))
}

/// [`minres`] in a reusable [`Workspace`]: the solution is left in [`Workspace::solution`].
pub(crate) fn minres_with<A: LinearOperator + ?Sized>(
    ws: &mut Workspace,
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<SolveReport, SolveError> {
    let mut ctx = Ctx::new(op, b, x0, precond, opts, Method::Minres)?;
    let n = op.ncols();
    let (x, [mut r1, mut r2, mut y, v, mut w, mut w1, mut w2], _) = ws.split(n, [n; 7], 0);
    ctx.start(x0, x);

    let mut rnorm = ctx.initial_residual(b, x, x0.is_some(), r1)?;
    let mut it = 0;
    loop {
        // Here `r1` is the true residual b - A x; run MINRES on A d = r1, adding d into x.
        if rnorm <= ctx.tol || it >= ctx.max_iters {
            return ctx.finish(x, it, rnorm);
        }
        ctx.check_restart(x, it, rnorm)?;
        ctx.precond(r1, y)?;
        let beta1 = dot(r1, y);
        if not_above(beta1, 0.0) {
            return Err(ctx.breakdown_at(x, it, rnorm, NOT_PD_PRECOND));
        }
        let beta1 = beta1.sqrt();
        // The running estimate phibar is ||r||_{M^-1}; scale it to the 2-norm the stopping
        // rule uses (exact at the restart, an estimate afterwards).
        let to_2norm = rnorm / beta1;
        r2.copy_from_slice(r1);
        w.fill(0.0);
        w2.fill(0.0);
        let (mut oldb, mut beta, mut dbar, mut epsln) = (0.0, beta1, 0.0, 0.0);
        let (mut phibar, mut cs, mut sn) = (beta1, -1.0, 0.0);
        let mut first = true;
        loop {
            // Lanczos step: v = y / beta, y = A v - (beta/oldb) r1 - (alfa/beta) r2.
            let s = 1.0 / beta;
            for (vi, yi) in v.iter_mut().zip(y.iter()) {
                *vi = s * yi;
            }
            ctx.apply(v, y)?;
            if !first {
                axpy(-beta / oldb, r1, y);
            }
            let alfa = dot(v, y);
            axpy(-alfa / beta, r2, y);
            swap(&mut r1, &mut r2);
            swap(&mut r2, &mut y);
            ctx.precond(r2, y)?;
            oldb = beta;
            let beta_sq = dot(r2, y);
            if beta_sq < 0.0 || beta_sq.is_nan() {
                rnorm = ctx.residual(b, x, r1)?;
                return Err(ctx.breakdown_at(x, it, rnorm, NOT_PD_PRECOND));
            }
            beta = beta_sq.sqrt();

            // Apply the previous rotation, then make a new one.
            let oldeps = epsln;
            let delta = cs * dbar + sn * alfa;
            let gbar = sn * dbar - cs * alfa;
            epsln = sn * beta;
            dbar = -cs * beta;
            let gamma = gbar.hypot(beta).max(f64::EPSILON);
            cs = gbar / gamma;
            sn = beta / gamma;
            let phi = cs * phibar;
            phibar *= sn;

            // Update the search direction and the iterate.
            let denom = 1.0 / gamma;
            swap(&mut w1, &mut w2);
            swap(&mut w2, &mut w);
            for i in 0..n {
                w[i] = (v[i] - oldeps * w1[i] - delta * w2[i]) * denom;
            }
            axpy(phi, w, x);
            it += 1;
            first = false;
            // beta == 0: the Krylov space is invariant, nothing more to gain from it.
            let estimate = phibar.abs() * to_2norm;
            if estimate <= ctx.tol || it >= ctx.max_iters || beta == 0.0 {
                break;
            }
            if let Some(stop) = ctx.progress(it, estimate) {
                return Err(ctx.stopped(b, x, r1, it, stop));
            }
        }
        rnorm = ctx.residual(b, x, r1)?;
    }
}
