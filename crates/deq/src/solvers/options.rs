//! Typed, validated options of the forward solvers.
//!
//! Each method carries its own options ([`PicardOptions`], [`AndersonOptions`],
//! [`BroydenOptions`]) inside [`Method`], so an option that does not apply to the chosen
//! method cannot be set (nothing is silently ignored). [`SolverOptions`] holds what all
//! methods share: tolerance, stopping rule, iteration limit, divergence and stagnation
//! detection, and the explicit fallback chain.

use serde::{Deserialize, Serialize};

pub use super::kind::MethodKind;
use crate::error::{DeqError, require};

/// Damped fixed-point (Picard) iteration: z ← (1 − τ) z + τ f(z).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PicardOptions {
    /// Damping τ in (0, 1] (1: plain iteration).
    pub damping: f64,
}

impl Default for PicardOptions {
    fn default() -> Self {
        PicardOptions { damping: 1.0 }
    }
}

/// Anderson acceleration (type II) with memory m, a regularized least-squares solve by
/// Householder QR, and restarts when that system is singular.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AndersonOptions {
    /// Memory m: the number of past differences kept (>= 1).
    pub memory: usize,
    /// Ridge λ of the least-squares solve, relative to ‖ΔG‖²_F (finite, >= 0; 0 means
    /// none, and a singular system then restarts the history).
    pub regularization: f64,
    /// Mixing β in (0, 1] (1: undamped).
    pub damping: f64,
}

impl Default for AndersonOptions {
    fn default() -> Self {
        AndersonOptions {
            memory: 5,
            regularization: 1e-10,
            damping: 1.0,
        }
    }
}

/// Limited-memory "good" Broyden on g(z) = f(z) − z, the inverse Jacobian estimate
/// H = −I + Σ uᵢvᵢᵀ keeping the last `memory` rank-one updates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BroydenOptions {
    /// Number of rank-one updates kept (>= 1); the oldest is dropped first.
    pub memory: usize,
}

impl Default for BroydenOptions {
    fn default() -> Self {
        BroydenOptions { memory: 20 }
    }
}

/// A forward solver and its own options.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Method {
    /// Damped fixed-point iteration.
    Picard(PicardOptions),
    /// Anderson acceleration.
    Anderson(AndersonOptions),
    /// Limited-memory Broyden.
    Broyden(BroydenOptions),
}

impl Default for Method {
    fn default() -> Self {
        Method::Anderson(AndersonOptions::default())
    }
}

impl Method {
    /// Picard with default options.
    pub fn picard() -> Method {
        Method::Picard(PicardOptions::default())
    }
    /// Anderson with default options.
    pub fn anderson() -> Method {
        Method::Anderson(AndersonOptions::default())
    }
    /// Broyden with default options.
    pub fn broyden() -> Method {
        Method::Broyden(BroydenOptions::default())
    }
    /// The method's name.
    pub fn kind(&self) -> MethodKind {
        match self {
            Method::Picard(_) => MethodKind::Picard,
            Method::Anderson(_) => MethodKind::Anderson,
            Method::Broyden(_) => MethodKind::Broyden,
        }
    }

    /// Bytes of solver state per sample of dimension `d` (f64 entries: Anderson keeps
    /// 2m differences plus the previous iterate and residual, Broyden 2 vectors per
    /// update plus the same, Picard nothing beyond the driver's buffers).
    pub fn state_bytes_per_sample(&self, d: usize) -> usize {
        let floats = match self {
            Method::Picard(_) => 0,
            Method::Anderson(a) => (2 * a.memory + 2) * d + a.memory * (a.memory + 2),
            Method::Broyden(b) => (2 * b.memory + 3) * d,
        };
        floats * std::mem::size_of::<f64>()
    }

    /// Check the method's own options.
    pub fn validate(&self) -> Result<(), DeqError> {
        match *self {
            Method::Picard(p) => require(
                p.damping > 0.0 && p.damping <= 1.0,
                "picard.damping",
                p.damping,
                "must be in (0, 1]",
            ),
            Method::Anderson(a) => {
                require(
                    a.memory >= 1,
                    "anderson.memory",
                    a.memory as f64,
                    "must be at least 1",
                )?;
                require(
                    a.regularization.is_finite() && a.regularization >= 0.0,
                    "anderson.regularization",
                    a.regularization,
                    "must be finite and >= 0",
                )?;
                require(
                    a.damping > 0.0 && a.damping <= 1.0,
                    "anderson.damping",
                    a.damping,
                    "must be in (0, 1]",
                )
            }
            Method::Broyden(b) => require(
                b.memory >= 1,
                "broyden.memory",
                b.memory as f64,
                "must be at least 1",
            ),
        }
    }
}

/// How the residual ‖f(z) − z‖ is compared with the tolerance (per sample).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum StopMode {
    /// ‖f(z) − z‖₂ <= tol.
    #[default]
    Absolute,
    /// ‖f(z) − z‖₂ <= tol · ‖f(z)‖₂ (absolute when f(z) = 0).
    Relative,
}

/// Options shared by every forward solver. Validated ([`SolverOptions::validate`]) before
/// any work.
///
/// ```
/// use deq::solvers::{Method, SolverOptions, StopMode};
/// let opts = SolverOptions::default()
///     .method(Method::anderson())
///     .tol(1e-8)
///     .stop(StopMode::Relative)
///     .fallback(vec![Method::picard()]);     // Anderson, then plain iteration
/// assert!(opts.validate().is_ok());
/// assert!(SolverOptions::default().tol(f64::NAN).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SolverOptions {
    /// The solver tried first.
    pub method: Method,
    /// Tried in order after a failure of the previous solver (not converged, diverged,
    /// stagnated, non-finite map value), each from the best iterate so far. Empty (the
    /// default): the failure is returned as an error.
    pub fallback: Vec<Method>,
    /// Residual tolerance (finite, > 0).
    pub tol: f64,
    /// Absolute or relative stopping.
    pub stop: StopMode,
    /// Maximum number of iterations (map evaluations per sample), >= 1.
    pub max_iters: usize,
    /// Each column of the state is its own problem, with its own convergence (converged
    /// samples stop costing map evaluations; requires a map that treats columns
    /// independently, as a DEQ layer does). `false`: the whole batch is one vector,
    /// stopped on its Frobenius norm.
    pub per_sample: bool,
    /// A sample whose residual exceeds this factor times its first residual has diverged
    /// (> 1; `f64::INFINITY` turns the check off).
    pub divergence_factor: f64,
    /// A sample whose lowest residual has not improved for this many iterations has
    /// stagnated (0 turns the check off).
    pub stall_window: usize,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            method: Method::default(),
            fallback: Vec::new(),
            tol: 1e-10,
            stop: StopMode::Absolute,
            max_iters: 500,
            per_sample: true,
            divergence_factor: 1e6,
            stall_window: 50,
        }
    }
}

impl SolverOptions {
    /// Set the first solver.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }
    /// Set the fallback chain.
    pub fn fallback(mut self, chain: Vec<Method>) -> Self {
        self.fallback = chain;
        self
    }
    /// Set the tolerance.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }
    /// Set the stopping rule.
    pub fn stop(mut self, stop: StopMode) -> Self {
        self.stop = stop;
        self
    }
    /// Set the iteration limit.
    pub fn max_iters(mut self, n: usize) -> Self {
        self.max_iters = n;
        self
    }
    /// Per-sample (true) or whole-batch (false) convergence.
    pub fn per_sample(mut self, on: bool) -> Self {
        self.per_sample = on;
        self
    }
    /// Set the divergence factor.
    pub fn divergence_factor(mut self, f: f64) -> Self {
        self.divergence_factor = f;
        self
    }
    /// Set the stagnation window (0: off).
    pub fn stall_window(mut self, n: usize) -> Self {
        self.stall_window = n;
        self
    }

    /// Check every option: [`DeqError::InvalidOption`] naming it and its value.
    pub fn validate(&self) -> Result<(), DeqError> {
        require(
            self.tol.is_finite() && self.tol > 0.0,
            "tol",
            self.tol,
            "must be finite and > 0",
        )?;
        require(
            self.max_iters >= 1,
            "max_iters",
            self.max_iters as f64,
            "must be at least 1",
        )?;
        require(
            self.divergence_factor > 1.0,
            "divergence_factor",
            self.divergence_factor,
            "must be > 1 (infinity turns the check off)",
        )?;
        self.method.validate()?;
        self.fallback.iter().try_for_each(Method::validate)
    }

    /// Upper bound on the bytes of solver state for a `d x batch` state: the largest
    /// method of the chain, plus the driver's buffers (iterate, best iterate, map output,
    /// residual). Independent of `max_iters`.
    pub fn memory_bytes(&self, d: usize, batch: usize) -> usize {
        let per = std::iter::once(&self.method)
            .chain(&self.fallback)
            .map(|m| m.state_bytes_per_sample(d))
            .max()
            .unwrap_or(0);
        (per + 4 * d * std::mem::size_of::<f64>()) * batch
    }
}
