//! Conjugate gradient on the normal equations (CGLS).

use crate::linear::cg::NOT_PD_PRECOND;
use crate::linear::common::Ctx;
use crate::linear::error::SolveError;
use crate::linear::kernels::{axpy, dot, norm, not_above, xpby};
use crate::linear::method::Method;
use crate::linear::operator::LinearOperator;
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{ResidualKind, Solution, SolveReport};
use crate::linear::workspace::Workspace;

/// Solve `A^T A x = A^T b` by conjugate gradient (the CGLS form, which never forms
/// `A^T A` and keeps `r = b - A x` explicitly), from `x0` (zero if `None`), with an optional
/// preconditioner for `A^T A`.
///
/// - Square `A`: this solves `A x = b`, and stops on the system residual `||b - A x||`.
/// - Rectangular `A`: this solves the least-squares problem `min ||A x - b||`, and stops on
///   the normal-equations residual `||A^T (b - A x)|| <= max(rtol ||A^T b||, atol)` (the
///   report says so with [`ResidualKind::NormalEquations`]). A ridge is not allowed here.
///
/// **It squares the condition number**: its convergence depends on `cond(A)^2`, so it can
/// need far more iterations than GMRES or BiCGSTAB, and stalls earlier on ill-conditioned
/// systems. It is JAXopt's default linear solver, and a known weakness there; it is here for
/// comparison and for rectangular problems. Needs [`LinearOperator::apply_transpose`].
///
/// # Errors
/// [`Operator`](SolveError::Operator) with [`NoTranspose`](crate::linear::OperatorError::NoTranspose)
/// if the operator has no transpose; [`Breakdown`](SolveError::Breakdown) if `A p = 0`
/// for a search direction (`A^T A` singular) or the preconditioner is not positive
/// definite; [`Stalled`](SolveError::Stalled) / [`Diverged`](SolveError::Diverged) when
/// the residual stops decreasing (the squared condition number at work) or blows up;
/// [`NotConverged`](SolveError::NotConverged); input errors as for
/// [`cg`](crate::linear::cg).
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{normal_cg, SolveOptions, ResidualKind};
/// // Fit y = c0 + c1 t through (0, 1), (1, 3), (2, 5): a 3x2 least-squares problem.
/// let a = DMatrix::from_row_slice(3, 2, &[1.0, 0.0, 1.0, 1.0, 1.0, 2.0]);
/// let sol = normal_cg(&a, &[1.0, 3.0, 5.0], None, None, &SolveOptions::default()).unwrap();
/// assert_eq!(sol.report.residual_kind, ResidualKind::NormalEquations);
/// assert!((sol.x[0] - 1.0).abs() < 1e-9 && (sol.x[1] - 2.0).abs() < 1e-9);
/// ```
pub fn normal_cg<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    Workspace::run_fresh(|ws| normal_cg_with(ws, op, b, x0, precond, opts))
}

/// [`normal_cg`] in a reusable [`Workspace`]: the solution is left in [`Workspace::solution`].
pub(crate) fn normal_cg_with<A: LinearOperator + ?Sized>(
    ws: &mut Workspace,
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<SolveReport, SolveError> {
    let mut ctx = Ctx::new(op, b, x0, precond, opts, Method::NormalCg)?;
    let (m, n) = (op.nrows(), op.ncols());
    let square = m == n;
    let (x, [r, q, s, z, p], _) = ws.split(n, [m, m, n, n, n], 0);
    ctx.start(x0, x);

    let r0 = ctx.initial_residual(b, x, x0.is_some(), r)?;
    ctx.apply_transpose(r, s)?;
    let mut resid = if square {
        r0
    } else {
        // Least squares: measure against A^T b.
        let atb_norm = if x0.is_some() {
            ctx.apply_transpose(b, z)?;
            norm(z)
        } else {
            norm(s)
        };
        ctx.set_rhs_norm(atb_norm, ResidualKind::NormalEquations);
        let s0 = norm(s);
        ctx.set_initial_residual(s0);
        s0
    };
    let mut it = 0;
    loop {
        // Here r = b - A x and s = A^T r are true residuals.
        if resid <= ctx.tol || it >= ctx.max_iters {
            return ctx.finish(x, it, resid);
        }
        ctx.check_restart(x, it, resid)?;
        ctx.precond(s, z)?;
        let mut gamma = dot(s, z);
        if not_above(gamma, 0.0) {
            return Err(ctx.breakdown_at(x, it, resid, NOT_PD_PRECOND));
        }
        p.copy_from_slice(z);
        loop {
            ctx.apply(p, q)?;
            let qq = dot(q, q);
            if not_above(qq, 0.0) {
                let tr = true_residual(&mut ctx, b, x, r, s, square)?;
                return Err(ctx.breakdown_at(
                    x,
                    it,
                    tr,
                    "A p = 0 for a search direction p: A^T A is singular",
                ));
            }
            let alpha = gamma / qq;
            axpy(alpha, p, x);
            axpy(-alpha, q, r);
            ctx.apply_transpose(r, s)?;
            it += 1;
            resid = if square { norm(r) } else { norm(s) };
            if resid <= ctx.tol || it >= ctx.max_iters {
                break;
            }
            if let Some(stop) = ctx.progress(it, resid) {
                let tr = true_residual(&mut ctx, b, x, r, s, square)?;
                return Err(ctx.stop_error(x, it, tr, stop));
            }
            ctx.precond(s, z)?;
            let gamma_new = dot(s, z);
            if not_above(gamma_new, 0.0) {
                let tr = true_residual(&mut ctx, b, x, r, s, square)?;
                return Err(ctx.breakdown_at(x, it, tr, NOT_PD_PRECOND));
            }
            xpby(z, gamma_new / gamma, p);
            gamma = gamma_new;
        }
        resid = true_residual(&mut ctx, b, x, r, s, square)?;
    }
}

/// Recompute `r = b - A x` and `s = A^T r`; return the norm the stopping rule uses.
fn true_residual<A: LinearOperator + ?Sized>(
    ctx: &mut Ctx<'_, A>,
    b: &[f64],
    x: &[f64],
    r: &mut [f64],
    s: &mut [f64],
    square: bool,
) -> Result<f64, SolveError> {
    let rnorm = ctx.residual(b, x, r)?;
    ctx.apply_transpose(r, s)?;
    Ok(if square { rnorm } else { norm(s) })
}
