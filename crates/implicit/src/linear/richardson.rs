//! Richardson (fixed-point) iteration, x ← x + M⁻¹(b − A x), for systems A = I − K with
//! ρ(K) < 1 — the adjoint system (I − J_fᵀ) u = ḡ of a contractive fixed point, where it
//! is the iteration u ← ḡ + J_fᵀ u.

use crate::linear::common::Ctx;
use crate::linear::error::SolveError;
use crate::linear::kernels::axpy;
use crate::linear::method::Method;
use crate::linear::operator::LinearOperator;
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{Solution, SolveReport};
use crate::linear::workspace::Workspace;

/// Solve `A x = b` by Richardson iteration from `x0` (zero if `None`), with an optional
/// preconditioner M (`x ← x + M⁻¹ r`). One product per iteration, two vectors of length
/// `n`, no orthogonalization: the cheapest solver per iteration, converging (linearly, at
/// the rate ρ(I − M⁻¹A)) only when that spectral radius is below 1 — as for the adjoint
/// of a contractive fixed point. Otherwise the divergence and stall checks stop it.
///
/// # Errors
/// [`Diverged`](SolveError::Diverged) / [`Stalled`](SolveError::Stalled) when
/// ρ(I − M⁻¹A) >= 1 (no progress over [`SolveOptions::stall_window`] iterations, or
/// growth past the divergence limit); [`NotConverged`](SolveError::NotConverged) when the
/// iterations run out; input errors and operator failures as for
/// [`cg`](crate::linear::cg).
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{richardson, SolveOptions};
/// // A = I − K with ‖K‖ = 0.5: u = b + K u.
/// let a = DMatrix::from_row_slice(2, 2, &[1.0, -0.3, 0.2, 0.6]);
/// let sol = richardson(&a, &[0.7, 0.8], None, None, &SolveOptions::default()).unwrap();
/// assert!((sol.x[0] - 1.0).abs() < 1e-9 && (sol.x[1] - 1.0).abs() < 1e-9);
/// assert_eq!(sol.report.matvecs, sol.report.iterations);
/// ```
pub fn richardson<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    Workspace::run_fresh(|ws| richardson_with(ws, op, b, x0, precond, opts))
}

/// [`richardson`] in a reusable [`Workspace`]: the solution is left in
/// [`Workspace::solution`].
pub(crate) fn richardson_with<A: LinearOperator + ?Sized>(
    ws: &mut Workspace,
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<SolveReport, SolveError> {
    let mut ctx = Ctx::new(op, b, x0, precond, opts, Method::Richardson)?;
    let n = op.ncols();
    let (x, [r, z], _) = ws.split(n, [n; 2], 0);
    ctx.start(x0, x);
    let mut rnorm = ctx.initial_residual(b, x, x0.is_some(), r)?;
    let mut it = 0;
    loop {
        // Here `r` is the true residual b − A x.
        if rnorm <= ctx.tol || it >= ctx.max_iters {
            return ctx.finish(x, it, rnorm);
        }
        ctx.precond(r, z)?;
        axpy(1.0, z, x);
        it += 1;
        rnorm = ctx.residual(b, x, r)?;
        if rnorm > ctx.tol
            && let Some(stop) = ctx.progress(it, rnorm)
        {
            return Err(ctx.stopped(b, x, r, it, stop));
        }
    }
}
