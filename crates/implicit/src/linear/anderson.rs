//! Anderson acceleration of Richardson iteration (Anderson 1965; Walker and Ni 2011), for
//! systems A = I − K with ρ(K) < 1: the adjoint (I − J_fᵀ) u = ḡ of a contractive fixed
//! point, as locuslab/deq and torchdeq solve it.
//!
//! With g(x) = x + M⁻¹(b − A x) the Richardson map and f(x) = g(x) − x its residual,
//! step k mixes the last m steps: γ = argmin ‖f_k − ΔF γ‖² + λ‖γ‖² over the differences
//! ΔF of successive residuals, and x_{k+1} = g(x_k) − ΔG γ with ΔG the differences of
//! successive g. On a linear system this is GMRES without the orthogonal basis (the two
//! coincide in exact arithmetic with unlimited memory, Walker and Ni), so it needs far
//! fewer products than plain Richardson at the cost of m dot products and one m-column
//! update per step.

use crate::linear::common::Ctx;
use crate::linear::error::SolveError;
use crate::linear::kernels::dense::{cholesky_in_place, cholesky_solve_in_place};
use crate::linear::kernels::{axpy, dot};
use crate::linear::method::Method;
use crate::linear::operator::LinearOperator;
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{Solution, SolveReport};
use crate::linear::workspace::{Workspace, anderson_memory};

/// Relative Tikhonov regularization of the m x m least-squares system, against its largest
/// diagonal entry: keeps the Cholesky factor defined when successive residual differences
/// become nearly parallel (a singular Anderson system, the crash of locuslab/deq #20).
const RIDGE: f64 = 1e-12;

/// Solve `A x = b` by Anderson-accelerated Richardson iteration with memory
/// [`SolveOptions::memory`] from `x0` (zero if `None`), with an optional preconditioner
/// M (the base step is `x ← x + M⁻¹(b − A x)`). One product per iteration; the residual
/// `b − A x` is computed afresh at every iterate, so the stopping test is on the true
/// residual. Converges where Richardson does (ρ(I − M⁻¹A) < 1) and usually in far fewer
/// iterations. When the small least-squares system is singular even with its
/// regularization, the history is dropped and the next step is a plain Richardson step. A
/// step that raises the residual does not restart the history: on linear systems that
/// restart never helped and often cost iterations (`scripts/repro/anderson_restart.py`:
/// more iterations in 2,100 of 4,845 non-normal systems, fewer in 197; three systems
/// converged only without it).
///
/// # Errors
/// As for [`richardson`](crate::linear::richardson): [`Diverged`](SolveError::Diverged)
/// and [`Stalled`](SolveError::Stalled) when it makes no progress,
/// [`NotConverged`](SolveError::NotConverged) when the iterations run out, input errors
/// and operator failures as for [`cg`](crate::linear::cg).
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{anderson, richardson, SolveOptions};
/// // A = I − K with ρ(K) = 0.9: Richardson needs many steps, Anderson few.
/// let k = DMatrix::from_fn(6, 6, |i, j| if i == j { 0.9 - 0.1 * i as f64 } else { 0.01 });
/// let a = DMatrix::identity(6, 6) - k;
/// let b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let opts = SolveOptions::default().max_iters(1000);
/// let fast = anderson(&a, &b, None, None, &opts).unwrap();
/// let slow = richardson(&a, &b, None, None, &opts).unwrap();
/// assert!(fast.report.matvecs < slow.report.matvecs / 4);
/// assert!((&a * nalgebra::DVector::from_column_slice(&fast.x)
///     - nalgebra::DVector::from_column_slice(&b)).norm() < 1e-9 * 10.0);
/// ```
pub fn anderson<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    Workspace::run_fresh(|ws| anderson_with(ws, op, b, x0, precond, opts))
}

/// [`anderson`] in a reusable [`Workspace`]: the solution is left in
/// [`Workspace::solution`].
pub(crate) fn anderson_with<A: LinearOperator + ?Sized>(
    ws: &mut Workspace,
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    precond: Option<&dyn Preconditioner>,
    opts: &SolveOptions,
) -> Result<SolveReport, SolveError> {
    let mut ctx = Ctx::new(op, b, x0, precond, opts, Method::Anderson)?;
    let n = op.ncols();
    let m = anderson_memory(opts.memory, n);
    let (x, [r, f, f_prev, g_prev, dfs, dgs], small) =
        ws.split(n, [n, n, n, n, n * m, n * m], 2 * m * m + m);
    let (gram, rest) = small.split_at_mut(m * m);
    let (chol, rest) = rest.split_at_mut(m * m);
    let (gamma, _) = rest.split_at_mut(m);
    ctx.start(x0, x);
    let mut rnorm = ctx.initial_residual(b, x, x0.is_some(), r)?;
    let mut history = History {
        m,
        n,
        len: 0,
        next: 0,
    };
    let mut it = 0;
    loop {
        // Here `r` is the true residual b − A x.
        if rnorm <= ctx.tol || it >= ctx.max_iters {
            return ctx.finish(x, it, rnorm);
        }
        ctx.precond(r, f)?;
        if it > 0 {
            history.push(f, f_prev, x, g_prev, dfs, dgs, gram);
        }
        f_prev.copy_from_slice(f);
        // g(x_k) = x_k + f_k, kept for the next difference; x_{k+1} = g(x_k) − ΔG γ.
        for ((g, xi), fi) in g_prev.iter_mut().zip(x.iter()).zip(f.iter()) {
            *g = xi + fi;
        }
        x.copy_from_slice(g_prev);
        if history.len > 0 && !history.mix(f, dfs, dgs, gram, chol, gamma, x) {
            history.reset();
        }
        it += 1;
        rnorm = ctx.residual(b, x, r)?;
        if rnorm > ctx.tol
            && let Some(stop) = ctx.progress(it, rnorm)
        {
            return Err(ctx.stopped(b, x, r, it, stop));
        }
    }
}

/// The circular history of the last `len <= m` differences, with their Gram matrix.
struct History {
    m: usize,
    n: usize,
    len: usize,
    next: usize,
}

impl History {
    /// Forget every stored difference (the valid slots are always `0..len`).
    fn reset(&mut self) {
        self.len = 0;
        self.next = 0;
    }

    /// Store Δf = f − f_prev and Δg = (x + f) − g_prev in the next slot and update the
    /// Gram matrix's row and column of that slot.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        f: &[f64],
        f_prev: &[f64],
        x: &[f64],
        g_prev: &[f64],
        dfs: &mut [f64],
        dgs: &mut [f64],
        gram: &mut [f64],
    ) {
        let (n, s) = (self.n, self.next);
        let df = &mut dfs[s * n..(s + 1) * n];
        for ((d, a), c) in df.iter_mut().zip(f).zip(f_prev) {
            *d = a - c;
        }
        let dg = &mut dgs[s * n..(s + 1) * n];
        for (((d, xi), fi), gp) in dg.iter_mut().zip(x).zip(f).zip(g_prev) {
            *d = (xi + fi) - gp;
        }
        self.len = (self.len + 1).min(self.m);
        self.next = (s + 1) % self.m;
        let df = &dfs[s * n..(s + 1) * n];
        for j in 0..self.len {
            let v = dot(df, &dfs[j * n..(j + 1) * n]);
            gram[s * self.m + j] = v;
            gram[j * self.m + s] = v;
        }
    }

    /// `x -= ΔG γ` with γ solving the regularized normal equations
    /// `(ΔFᵀΔF + λ I) γ = ΔFᵀ f`; false (and `x` untouched) when that system cannot be
    /// factored.
    #[allow(clippy::too_many_arguments)]
    fn mix(
        &self,
        f: &[f64],
        dfs: &[f64],
        dgs: &[f64],
        gram: &[f64],
        chol: &mut [f64],
        gamma: &mut [f64],
        x: &mut [f64],
    ) -> bool {
        let (n, k) = (self.n, self.len);
        let largest = (0..k).map(|j| gram[j * self.m + j]).fold(0.0, f64::max);
        if !(largest > 0.0 && largest.is_finite()) {
            return false;
        }
        for i in 0..k {
            for j in 0..k {
                chol[j * k + i] = gram[j * self.m + i];
            }
            chol[i * k + i] += RIDGE * largest;
            gamma[i] = dot(&dfs[i * n..(i + 1) * n], f);
        }
        if cholesky_in_place(&mut chol[..k * k], k, 0.0).is_err() {
            return false;
        }
        cholesky_solve_in_place(&chol[..k * k], &mut gamma[..k]);
        if gamma[..k].iter().any(|g| !g.is_finite()) {
            return false;
        }
        for (j, &gj) in gamma[..k].iter().enumerate() {
            axpy(-gj, &dgs[j * n..(j + 1) * n], x);
        }
        true
    }
}
