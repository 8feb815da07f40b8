//! Reusable scratch space for the Krylov solvers.

use crate::linear::error::SolveError;
use crate::linear::method::Method;
use crate::linear::options::SolveOptions;
use crate::linear::report::{Solution, SolveReport};

/// Scratch space for the Krylov solvers, allocated once and reused across solves (faer's
/// explicit scratch space, in our terms): the iterate, the solver's work vectors and, for
/// GMRES, its Krylov basis and small least-squares factors.
///
/// [`solve_with`](crate::linear::solve_with) borrows it; the solution is then read with
/// [`solution`](Workspace::solution). A workspace sized by [`Workspace::new`] for a method,
/// shape and restart length never allocates again for solves of that size; one that is
/// too small grows to fit (once) and is kept at that size. So a loop of solves allocates
/// nothing after the first — the per-solve allocations of [`solve`](crate::linear::solve)
/// (which builds a fresh workspace each time) disappear.
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{solve_with, Method, SolveOptions, Workspace};
/// let a = DMatrix::from_row_slice(2, 2, &[4.0, 1.0, 1.0, 3.0]);
/// let opts = SolveOptions::default();
/// let mut ws = Workspace::new(Method::Cg, 2, 2, &opts);
/// for k in 0..3 {
///     let b = [1.0, k as f64];
///     let report = solve_with(&mut ws, &a, &b, None, None, Method::Cg, &opts).unwrap();
///     assert!(report.converged);
///     let x = ws.solution();
///     assert!((4.0 * x[0] + x[1] - 1.0).abs() < 1e-9);
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Workspace {
    x: Vec<f64>,
    vectors: Vec<f64>,
    small: Vec<f64>,
}

/// The work vectors a method needs: `(count, length)` pairs and the size of its small
/// dense scratch, for an `nrows x ncols` operator.
pub(crate) fn layout(
    method: Method,
    nrows: usize,
    ncols: usize,
    restart: usize,
    memory: usize,
) -> ([(usize, usize); 2], usize) {
    let n = ncols;
    match method {
        Method::Cg => ([(4, n), (0, 0)], 0),
        Method::Minres => ([(7, n), (0, 0)], 0),
        Method::Bicgstab => ([(7, n), (0, 0)], 0),
        Method::Richardson => ([(2, n), (0, 0)], 0),
        Method::Anderson => {
            let m = anderson_memory(memory, n);
            // r, f, f_prev, g_prev and m differences of f and of g; Gram, factor, γ.
            ([(4, n), (2 * m, n)], 2 * m * m + m)
        }
        Method::NormalCg => ([(2, nrows), (3, n)], 0),
        Method::Gmres => {
            let m = gmres_basis(restart, n);
            // Basis (m + 1 vectors) and r, w, z; Hessenberg (m + 1) x m, cs, sn, g, coef.
            ([(m + 1 + 3, n), (0, 0)], (m + 1) * m + 4 * m + 1)
        }
        Method::Lu | Method::Cholesky | Method::Auto => ([(0, 0), (0, 0)], 0),
    }
}

/// Anderson's history length on an `n`-column operator: the memory, at most `n` (more
/// differences than dimensions are linearly dependent), at least 1.
pub(crate) fn anderson_memory(memory: usize, n: usize) -> usize {
    memory.min(n).max(1)
}

/// The GMRES basis size: the restart length, at most `n` (a Krylov space has at most `n`
/// dimensions), at least 1.
pub(crate) fn gmres_basis(restart: usize, n: usize) -> usize {
    restart.min(n).max(1)
}

impl Workspace {
    /// A workspace sized for `method` ([`Method::Auto`] is not resolved here: pass the
    /// method that will run) on an `nrows x ncols` operator with these options (GMRES's
    /// basis follows [`SolveOptions::restart`]). The dense methods need no workspace.
    pub fn new(method: Method, nrows: usize, ncols: usize, opts: &SolveOptions) -> Self {
        let (parts, small) = layout(method, nrows, ncols, opts.restart, opts.memory);
        let total: usize = parts.iter().map(|(k, len)| k * len).sum();
        Workspace {
            x: Vec::with_capacity(ncols),
            vectors: vec![0.0; total],
            small: vec![0.0; small],
        }
    }

    /// The solution of the last successful [`solve_with`](crate::linear::solve_with) (after
    /// a failed one: its last iterate, also carried by the error).
    pub fn solution(&self) -> &[f64] {
        &self.x
    }

    /// Run one solve in a fresh workspace and return its solution with the report (what the
    /// convenience entry points `cg`, `solve`, ... do).
    pub(crate) fn run_fresh(
        run: impl FnOnce(&mut Workspace) -> Result<SolveReport, SolveError>,
    ) -> Result<Solution, SolveError> {
        let mut ws = Workspace::default();
        let report = run(&mut ws)?;
        Ok(Solution {
            x: ws.into_solution(),
            report,
        })
    }

    /// Take the solution out, leaving the workspace without an iterate buffer.
    pub fn into_solution(self) -> Vec<f64> {
        self.x
    }

    /// Replace the solution (a dense method's result).
    pub(crate) fn set_solution(&mut self, x: &[f64]) {
        self.x.clear();
        self.x.extend_from_slice(x);
    }

    /// Heap storage held, in `f64` entries (for memory tables).
    pub fn capacity(&self) -> usize {
        self.x.capacity() + self.vectors.capacity() + self.small.capacity()
    }

    /// The iterate (length `n`), `K` zeroed work vectors of the given lengths and a zeroed
    /// small scratch of length `small`, growing the storage only if it is too small.
    pub(crate) fn split<const K: usize>(
        &mut self,
        n: usize,
        lens: [usize; K],
        small: usize,
    ) -> (&mut [f64], [&mut [f64]; K], &mut [f64]) {
        self.x.resize(n, 0.0);
        let total: usize = lens.iter().sum();
        if self.vectors.len() < total {
            self.vectors.resize(total, 0.0);
        }
        if self.small.len() < small {
            self.small.resize(small, 0.0);
        }
        let mut rest: &mut [f64] = &mut self.vectors[..total];
        let parts = lens.map(|len| {
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            part.fill(0.0);
            part
        });
        let small = &mut self.small[..small];
        small.fill(0.0);
        (&mut self.x, parts, small)
    }
}
