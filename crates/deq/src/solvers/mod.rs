//! Forward solvers for z = f(z): damped Picard iteration, Anderson acceleration and
//! limited-memory Broyden, on a batch state (one sample per column) with per-sample
//! convergence.
//!
//! [`solve`] takes the map as a closure `f(z_active, cols)`: `z_active` holds the columns
//! `cols` of the state (the samples still iterating), and f returns its value on them, of
//! the same shape. Converged samples stop costing evaluations.
//!
//! Every run returns each sample's **lowest-residual iterate** (not merely the last) with
//! [`SolveStats`]: iterations, map evaluations, the residual trace, the lowest residual,
//! restarts. A run that does not reach the tolerance is an error carrying the stats:
//! [`NotConverged`](DeqError::NotConverged), [`Diverged`](DeqError::Diverged) (a residual
//! `divergence_factor` times its first), [`Stagnated`](DeqError::Stagnated) (no progress
//! in `stall_window` iterations), [`MapNonFinite`](DeqError::MapNonFinite). With an
//! explicit [`fallback`](SolverOptions::fallback) chain, the next method starts from the
//! best iterate so far instead, and the stats list the failed attempts.
//!
//! Memory is bounded by the options, independent of `max_iters`
//! ([`SolverOptions::memory_bytes`]): Anderson keeps 2m + 2 vectors per sample, Broyden
//! 2·memory + 3, Picard none beyond the driver's four (iterate, best, map value, residual).
//!
//! ```
//! use deq::solvers::{solve, Method, SolverOptions};
//! use nalgebra::DMatrix;
//! // z = 0.5 cos(z) per entry: a contraction; two samples of dimension 3.
//! let f = |z: &DMatrix<f64>, _cols: &[usize]| z.map(|v| 0.5 * v.cos());
//! let z0 = DMatrix::zeros(3, 2);
//! for method in [Method::picard(), Method::anderson(), Method::broyden()] {
//!     let sol = solve(f, &z0, &SolverOptions::default().method(method))?;
//!     let r = (sol.z.map(|v| 0.5 * v.cos()) - &sol.z).norm();
//!     assert!(r < 1e-9 && sol.stats.converged);
//! }
//! # Ok::<(), deq::DeqError>(())
//! ```

mod anderson;
mod broyden;
mod driver;
pub(crate) mod kind;
pub mod lstsq;
mod options;
mod sample_step;
pub(crate) mod stats;
mod step;
mod vecops;

use nalgebra::DMatrix;

pub use options::{
    AndersonOptions, BroydenOptions, Method, MethodKind, PicardOptions, SolverOptions, StopMode,
};
pub use stats::{Attempt, SolveStats};

use crate::error::{DeqError, check_finite};

/// Copy the columns `cols` of `m` into a new matrix (the active samples of a batch).
pub fn gather_columns(m: &DMatrix<f64>, cols: &[usize]) -> DMatrix<f64> {
    driver::gather(m, cols)
}

/// A fixed point and how it was found.
#[derive(Clone, Debug)]
pub struct Solution {
    /// Each sample's lowest-residual iterate (the shape of z₀).
    pub z: DMatrix<f64>,
    /// What the (successful) run did, with earlier failed attempts of a fallback chain.
    pub stats: SolveStats,
}

/// Solve z = f(z) from `z0` (one sample per column) with the options' method, then its
/// fallback chain if one is given.
///
/// # Errors
/// Invalid options ([`DeqError::InvalidOption`]); a non-finite z₀
/// ([`DeqError::NonFinite`]); a map output of the wrong shape ([`DeqError::Shape`]);
/// without a fallback chain, the solver's failure with its stats; with one,
/// [`DeqError::FallbackExhausted`] if every method fails.
pub fn solve<F>(mut f: F, z0: &DMatrix<f64>, options: &SolverOptions) -> Result<Solution, DeqError>
where
    F: FnMut(&DMatrix<f64>, &[usize]) -> DMatrix<f64>,
{
    options.validate()?;
    check_finite("initial state z0", 0, z0)?;
    if options.per_sample {
        return solve_chain(&mut f, z0, options);
    }
    // The whole batch as one column.
    let (d, b) = z0.shape();
    let all: Vec<usize> = (0..b).collect();
    let mut flat = |z: &DMatrix<f64>, _: &[usize]| -> DMatrix<f64> {
        let out = f(&DMatrix::from_column_slice(d, b, z.as_slice()), &all);
        if out.shape() != (d, b) {
            return out; // the driver reports the shape
        }
        DMatrix::from_column_slice(d * b, 1, out.as_slice())
    };
    let z0_flat = DMatrix::from_column_slice(d * b, 1, z0.as_slice());
    let mut sol = solve_chain(&mut flat, &z0_flat, options)?;
    sol.z = DMatrix::from_column_slice(d, b, sol.z.as_slice());
    Ok(sol)
}

fn solve_chain<F>(
    f: &mut F,
    z0: &DMatrix<f64>,
    options: &SolverOptions,
) -> Result<Solution, DeqError>
where
    F: FnMut(&DMatrix<f64>, &[usize]) -> DMatrix<f64>,
{
    let chain: Vec<&Method> = std::iter::once(&options.method)
        .chain(&options.fallback)
        .collect();
    let mut start = z0.clone();
    let mut failures = Vec::new();
    let mut attempts = Vec::new();
    let mut evals = 0;
    for method in chain {
        match driver::run(f, &start, method, options) {
            Ok((z, mut stats)) => {
                stats.function_evals += evals;
                stats.attempts = attempts;
                return Ok(Solution { z, stats });
            }
            Err(failure) => {
                let (err, best) = *failure;
                let Some(s) = err.stats() else {
                    return Err(err); // not a solver failure (a shape error): no fallback
                };
                if options.fallback.is_empty() {
                    return Err(err);
                }
                evals += s.function_evals;
                attempts.push(Attempt {
                    method: method.kind(),
                    iterations: s.iterations,
                    lowest_residual: s.lowest_residual,
                    error: err.to_string(),
                });
                failures.push(err);
                start = best;
            }
        }
    }
    Err(DeqError::FallbackExhausted { failures })
}
