//! Restarted GMRES with right preconditioning, for general square systems.

use crate::linear::common::Ctx;
use crate::linear::error::SolveError;
use crate::linear::kernels::{axpy, dot, norm, scale};
use crate::linear::method::Method;
use crate::linear::operator::LinearOperator;
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{Solution, SolveReport};
use crate::linear::workspace::{Workspace, gmres_basis};

/// Solve `A x = b` for a general square `A` by GMRES restarted every
/// [`SolveOptions::restart`] steps, from `x0` (zero if `None`), with an optional right
/// preconditioner (`A M^{-1} u = b`, `x = M^{-1} u`, so the residual monitored is the true
/// one).
///
/// The Krylov basis (`(restart + 1) x n`), the Hessenberg matrix and the Givens rotations
/// are allocated once per solve (or never, with a reused [`Workspace`] and
/// [`solve_with`](crate::linear::solve_with)). Orthogonalization is modified Gram-Schmidt with one
/// selective re-orthogonalization pass ("twice is enough"). Each restart recomputes the
/// true residual.
///
/// # Errors
/// [`NotConverged`](SolveError::NotConverged) when the iterations run out;
/// [`Stalled`](SolveError::Stalled) when restarted GMRES stagnates (no progress over
/// [`SolveOptions::stall_window`] iterations), [`Diverged`](SolveError::Diverged);
/// [`Breakdown`](SolveError::Breakdown) if the least-squares problem is singular (the
/// operator is singular on the Krylov space); input errors and operator failures as for
/// [`cg`](crate::linear::cg).
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{gmres, SolveOptions};
/// let a = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, -1.0, 3.0]); // nonsymmetric
/// let sol = gmres(&a, &[3.0, 2.0], None, None, &SolveOptions::default()).unwrap();
/// assert!((sol.x[0] - 1.0).abs() < 1e-10 && (sol.x[1] - 1.0).abs() < 1e-10);
/// ```
pub fn gmres<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    Workspace::run_fresh(|ws| gmres_with(ws, op, b, x0, precond, opts))
}

/// [`gmres`] in a reusable [`Workspace`]: the solution is left in [`Workspace::solution`].
pub(crate) fn gmres_with<A: LinearOperator + ?Sized>(
    ws: &mut Workspace,
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<SolveReport, SolveError> {
    let mut ctx = Ctx::new(op, b, x0, precond, opts, Method::Gmres)?;
    let n = op.ncols();
    // A Krylov space has at most n dimensions: a longer basis would only cost memory.
    let m = gmres_basis(opts.restart, n);
    let ld = m + 1;
    let (x, [basis, r, w, z], small) = ws.split(n, [n * (m + 1), n, n, n], ld * m + 4 * m + 1);
    ctx.start(x0, x);
    let (h, small) = small.split_at_mut(ld * m);
    let (cs, small) = small.split_at_mut(m);
    let (sn, small) = small.split_at_mut(m);
    let (coef, g) = small.split_at_mut(m);

    let mut rnorm = ctx.initial_residual(b, x, x0.is_some(), r)?;
    let mut it = 0;
    loop {
        // Here `r` is the true residual b - A x.
        if rnorm <= ctx.tol || it >= ctx.max_iters {
            return ctx.finish(x, it, rnorm);
        }
        ctx.check_restart(x, it, rnorm)?;
        basis[..n].copy_from_slice(r);
        scale(1.0 / rnorm, &mut basis[..n]);
        g.fill(0.0);
        g[0] = rnorm;
        let mut k = 0;
        let mut stopped = None;
        for j in 0..m {
            // w = A M^{-1} v_j
            if ctx.has_precond() {
                ctx.precond(&basis[j * n..(j + 1) * n], z)?;
                ctx.apply(z, w)?;
            } else {
                ctx.apply(&basis[j * n..(j + 1) * n], w)?;
            }
            let hcol = &mut h[j * ld..(j + 1) * ld];
            hcol.fill(0.0);
            let before = norm(w);
            for pass in 0..2 {
                for i in 0..=j {
                    let vi = &basis[i * n..(i + 1) * n];
                    let hij = dot(w, vi);
                    hcol[i] += hij;
                    axpy(-hij, vi, w);
                }
                // Re-orthogonalize only if cancellation was severe.
                if pass == 0 && norm(w) > 0.7 * before {
                    break;
                }
            }
            let hnext = norm(w);
            hcol[j + 1] = hnext;
            for i in 0..j {
                let (a, c) = (hcol[i], hcol[i + 1]);
                hcol[i] = cs[i] * a + sn[i] * c;
                hcol[i + 1] = -sn[i] * a + cs[i] * c;
            }
            let (a, c) = (hcol[j], hcol[j + 1]);
            let rr = a.hypot(c);
            let (cj, sj) = if rr == 0.0 {
                (1.0, 0.0)
            } else {
                (a / rr, c / rr)
            };
            cs[j] = cj;
            sn[j] = sj;
            hcol[j] = rr;
            hcol[j + 1] = 0.0;
            g[j + 1] = -sj * g[j];
            g[j] *= cj;
            it += 1;
            k = j + 1;
            if g[j + 1].abs() <= ctx.tol || it >= ctx.max_iters || hnext == 0.0 {
                break;
            }
            if let Some(stop) = ctx.progress(it, g[j + 1].abs()) {
                stopped = Some(stop);
                break;
            }
            let next = &mut basis[(j + 1) * n..(j + 2) * n];
            next.copy_from_slice(w);
            scale(1.0 / hnext, next);
        }
        // Solve the k x k triangular system R y = g, then x += M^{-1} V y.
        for i in (0..k).rev() {
            let mut s = g[i];
            for l in (i + 1)..k {
                s -= h[l * ld + i] * coef[l];
            }
            let rii = h[i * ld + i];
            if rii == 0.0 {
                return Err(ctx.breakdown(
                    b,
                    x,
                    r,
                    it,
                    "zero diagonal in the Hessenberg factor: the operator is singular on the Krylov space",
                ));
            }
            coef[i] = s / rii;
        }
        w.fill(0.0);
        for i in 0..k {
            axpy(coef[i], &basis[i * n..(i + 1) * n], w);
        }
        if ctx.has_precond() {
            ctx.precond(w, z)?;
            axpy(1.0, z, x);
        } else {
            axpy(1.0, w, x);
        }
        if let Some(stop) = stopped {
            // The iterate is updated with the best least-squares step of the cycle first.
            return Err(ctx.stopped(b, x, r, it, stop));
        }
        rnorm = ctx.residual(b, x, r)?;
    }
}
