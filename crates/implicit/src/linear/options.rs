//! Options shared by every linear solver.

use serde::{Deserialize, Serialize};

use crate::linear::error::SolveError;

/// Stopping rule and damping shared by every linear solver.
///
/// A solve stops when the residual satisfies `||b - A x|| <= max(rtol * ||b||, atol)`
/// (see [`SolveOptions::tolerance`]); the final residual is always recomputed from scratch
/// and the solve is an error if it is still above the tolerance.
///
/// ```
/// use implicit::linear::SolveOptions;
/// let opts = SolveOptions::default().rtol(1e-8).max_iters(200).ridge(1e-6);
/// assert_eq!(opts.tolerance(2.0), 2e-8);
/// ```
///
/// Deserializing rejects unknown fields, so a misspelled option in a saved configuration
/// is an error rather than silently ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolveOptions {
    /// Relative tolerance on the residual norm, relative to `||b||`. Default `1e-10`.
    pub rtol: f64,
    /// Absolute tolerance on the residual norm. Default `0`.
    pub atol: f64,
    /// Maximum number of iterations; `None` means `max(10 n, 100)` for an `n`-column
    /// operator. For GMRES an iteration is one Arnoldi step; for BiCGSTAB one full step
    /// (two products); for the dense methods, one step of iterative refinement.
    pub max_iters: Option<usize>,
    /// Damping: solve `(A + ridge I) x = b` instead of `A x = b` (every method, so all agree
    /// on the solution). Requires a square operator. Default `0`.
    pub ridge: f64,
    /// GMRES restart length (Krylov basis size). Default `30`; must be at least 1 (a value
    /// above `n` acts as `n`: full GMRES).
    pub restart: usize,
    /// [`Anderson`](crate::linear::Method::Anderson)'s memory: how many past steps each
    /// step mixes. Default `5` (locuslab/deq's and torchdeq's choice); must be at least 1
    /// (a value above `n` acts as `n`).
    pub memory: usize,
    /// Iterations without progress (no residual below 0.999 times the best one so far)
    /// after which an iterative solve stops with [`Stalled`](crate::linear::SolveError::Stalled).
    /// `None` (the default) means `max(100, n)` for an `n`-column operator: in exact
    /// arithmetic CG and MINRES finish within `n` iterations, so `n` iterations without
    /// progress is no plateau but a stall. Must be at least 1.
    pub stall_window: Option<usize>,
    /// An iterative solve whose residual grows beyond `divergence` times its initial
    /// residual stops with [`Diverged`](crate::linear::SolveError::Diverged). Default
    /// `1e8` (CG's residual can grow by up to `sqrt(cond(A))` on the way, so this flags
    /// only what cannot converge in double precision); must be greater than 1.
    pub divergence: f64,
    /// CG only: on a direction of non-positive curvature `p^T A p <= 0`, go on with the
    /// same recurrence (CG's iterates stay defined on a symmetric indefinite system as
    /// long as `p^T A p != 0`) instead of stopping with
    /// [`NegativeCurvature`](crate::linear::SolveError::NegativeCurvature). A zero or
    /// non-finite curvature is then a [`Breakdown`](crate::linear::SolveError::Breakdown).
    /// For reproducing fixed-budget CG runs (iMAML's reference code); the convergence test
    /// is unchanged. Default `false`.
    pub indefinite: bool,
}

impl Default for SolveOptions {
    fn default() -> Self {
        SolveOptions {
            rtol: 1e-10,
            atol: 0.0,
            max_iters: None,
            ridge: 0.0,
            restart: 30,
            memory: 5,
            stall_window: None,
            divergence: 1e8,
            indefinite: false,
        }
    }
}

impl SolveOptions {
    /// Set the relative tolerance.
    pub fn rtol(mut self, rtol: f64) -> Self {
        self.rtol = rtol;
        self
    }

    /// Set the absolute tolerance.
    pub fn atol(mut self, atol: f64) -> Self {
        self.atol = atol;
        self
    }

    /// Set the maximum number of iterations.
    pub fn max_iters(mut self, max_iters: usize) -> Self {
        self.max_iters = Some(max_iters);
        self
    }

    /// Set the ridge damping (solve `(A + ridge I) x = b`).
    pub fn ridge(mut self, ridge: f64) -> Self {
        self.ridge = ridge;
        self
    }

    /// Set Anderson's memory.
    pub fn memory(mut self, memory: usize) -> Self {
        self.memory = memory;
        self
    }

    /// Set the GMRES restart length.
    pub fn restart(mut self, restart: usize) -> Self {
        self.restart = restart;
        self
    }

    /// Set the stall window (iterations without progress before [`Stalled`](crate::linear::SolveError::Stalled)).
    pub fn stall_window(mut self, window: usize) -> Self {
        self.stall_window = Some(window);
        self
    }

    /// Set the divergence factor (growth of the residual before [`Diverged`](crate::linear::SolveError::Diverged)).
    pub fn divergence(mut self, factor: f64) -> Self {
        self.divergence = factor;
        self
    }

    /// Let CG continue past non-positive curvature (see [`SolveOptions::indefinite`]).
    pub fn indefinite(mut self, on: bool) -> Self {
        self.indefinite = on;
        self
    }

    /// The stall window for an operator with `n` columns.
    pub fn stall_window_for(&self, n: usize) -> usize {
        self.stall_window.unwrap_or_else(|| n.max(100))
    }

    /// The residual norm a solve must reach: `max(rtol * rhs_norm, atol)`.
    pub fn tolerance(&self, rhs_norm: f64) -> f64 {
        (self.rtol * rhs_norm).max(self.atol)
    }

    /// The iteration limit for an operator with `n` columns.
    pub fn max_iters_for(&self, n: usize) -> usize {
        self.max_iters
            .unwrap_or_else(|| n.saturating_mul(10).max(100))
    }

    /// Check that every option has a usable value.
    pub fn validate(&self) -> Result<(), SolveError> {
        let bad = |name: &'static str, value: f64, reason: &'static str| {
            Err(SolveError::InvalidOption {
                name,
                value,
                reason,
            })
        };
        if !(self.rtol.is_finite() && self.rtol >= 0.0) {
            return bad("rtol", self.rtol, "must be finite and >= 0");
        }
        if !(self.atol.is_finite() && self.atol >= 0.0) {
            return bad("atol", self.atol, "must be finite and >= 0");
        }
        if !self.ridge.is_finite() {
            return bad("ridge", self.ridge, "must be finite");
        }
        if self.restart == 0 {
            return bad("restart", 0.0, "must be at least 1");
        }
        if self.memory == 0 {
            return bad("memory", 0.0, "must be at least 1");
        }
        if self.stall_window == Some(0) {
            return bad("stall_window", 0.0, "must be at least 1");
        }
        if !(self.divergence.is_finite() && self.divergence > 1.0) {
            return bad("divergence", self.divergence, "must be finite and > 1");
        }
        Ok(())
    }
}
