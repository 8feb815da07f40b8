//! Typed, validated options: [`SolverOptions`] (tolerances, step limits, controller),
//! [`Method`] (how gradients are computed) and [`GradOptions`].

use crate::error::NodeError;

/// Options of the adaptive Dormand–Prince 5(4) solver (the crate's own stepper, whose
/// defaults are those of `ode_solvers::Dopri5`, so both take the same steps).
///
/// ```
/// use neuralode::SolverOptions;
/// let o = SolverOptions::default().rtol(1e-8).atol(1e-8).max_steps(10_000);
/// assert!(o.validate().is_ok());
/// assert!(SolverOptions::default().rtol(f64::NAN).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SolverOptions {
    /// Relative tolerance (default 1e-6).
    pub rtol: f64,
    /// Absolute tolerance (default 1e-6).
    pub atol: f64,
    /// Maximum number of step attempts, accepted plus rejected (default 100 000).
    pub max_steps: usize,
    /// First step size; `None` chooses it with Hairer's heuristic (two f evaluations).
    pub first_step: Option<f64>,
    /// Largest step size; `None` means the whole interval.
    pub max_step: Option<f64>,
    /// Safety factor of the step-size controller (default 0.9).
    pub safety: f64,
    /// Smallest ratio between successive steps (default 0.2).
    pub fac_min: f64,
    /// Largest ratio between successive steps (default 10).
    pub fac_max: f64,
    /// PI-controller coefficient beta (default 0.04, Hairer's choice for Dopri5).
    pub beta: f64,
    /// Check for stiffness every this many accepted steps (0 = never; default 1000).
    pub stiffness_check: usize,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            rtol: 1e-6,
            atol: 1e-6,
            max_steps: 100_000,
            first_step: None,
            max_step: None,
            safety: 0.9,
            fac_min: 0.2,
            fac_max: 10.0,
            beta: 0.04,
            stiffness_check: 1000,
        }
    }
}

macro_rules! setter {
    ($name:ident, $t:ty, $doc:literal) => {
        #[doc = $doc]
        #[must_use]
        pub fn $name(mut self, v: $t) -> Self {
            self.$name = v;
            self
        }
    };
}

impl SolverOptions {
    setter!(rtol, f64, "Set the relative tolerance.");
    setter!(atol, f64, "Set the absolute tolerance.");
    setter!(max_steps, usize, "Set the step budget.");
    setter!(safety, f64, "Set the controller's safety factor.");
    setter!(fac_min, f64, "Set the smallest step ratio.");
    setter!(fac_max, f64, "Set the largest step ratio.");
    setter!(beta, f64, "Set the PI coefficient beta.");
    setter!(
        stiffness_check,
        usize,
        "Check stiffness every this many steps (0: never)."
    );

    /// Set the first step size.
    #[must_use]
    pub fn first_step(mut self, h: f64) -> Self {
        self.first_step = Some(h);
        self
    }

    /// Set the largest step size.
    #[must_use]
    pub fn max_step(mut self, h: f64) -> Self {
        self.max_step = Some(h);
        self
    }

    /// Check every field: finite non-negative tolerances, not both zero, a positive step
    /// budget, positive step sizes, a safety factor in (0, 1], `fac_min` in (0, 1),
    /// `fac_max` > 1, `beta` in [0, 0.2).
    pub fn validate(&self) -> Result<(), NodeError> {
        let bad = |name, value, reason| {
            Err(NodeError::InvalidOption {
                name,
                value,
                reason,
            })
        };
        for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(name, v, "must be finite and >= 0");
            }
        }
        if self.rtol == 0.0 && self.atol == 0.0 {
            return bad("rtol", 0.0, "rtol and atol cannot both be zero");
        }
        if self.max_steps == 0 {
            return bad("max_steps", 0.0, "must be at least 1");
        }
        for (name, v) in [("first_step", self.first_step), ("max_step", self.max_step)] {
            if let Some(h) = v
                && !(h.is_finite() && h > 0.0)
            {
                return bad(name, h, "must be finite and > 0");
            }
        }
        if !(self.safety > 0.0 && self.safety <= 1.0) {
            return bad("safety", self.safety, "must lie in (0, 1]");
        }
        if !(self.fac_min > 0.0 && self.fac_min < 1.0) {
            return bad("fac_min", self.fac_min, "must lie in (0, 1)");
        }
        if !(self.fac_max > 1.0 && self.fac_max.is_finite()) {
            return bad("fac_max", self.fac_max, "must be finite and > 1");
        }
        if !(self.beta >= 0.0 && self.beta < 0.2) {
            return bad("beta", self.beta, "must lie in [0, 0.2)");
        }
        Ok(())
    }
}

/// How the gradient through the solve is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Method {
    /// Discretize-then-optimize: the exact derivative of the solver's own steps (a reverse
    /// sweep over every stored stage). Memory grows linearly with the number of steps.
    Direct,
    /// The same derivative as [`Method::Direct`], storing only the solver state every
    /// `every` accepted steps and recomputing each segment in the backward pass (one
    /// more forward solve). Memory ~ (steps / every) checkpoints + `every` stored steps.
    Checkpointed {
        /// Accepted steps per segment (>= 1).
        every: usize,
    },
    /// The same derivative as [`Method::Direct`] in memory logarithmic in the number of
    /// steps: only the initial solver state is kept, and the backward pass serves the
    /// steps last to first by recursive bisection (O(log N) states held at once,
    /// O(N log N) steps recomputed).
    RecursiveCheckpointed,
    /// The continuous adjoint with the state solved backward alongside the adjoint
    /// ([h, a, ∫aᵀ∂f/∂θ]); memory independent of the number of steps, but the reverse
    /// solve of h can be unstable. `reset_state` puts h back to its forward value at each
    /// observation (as torchdiffeq does).
    Backsolve {
        /// Reset h to the forward solution at each observation time.
        reset_state: bool,
    },
    /// The continuous adjoint with h taken from the forward solve's dense output; only
    /// [a, ∫aᵀ∂f/∂θ] is integrated backward. Stable; stores the forward steps.
    Interpolating,
    /// The interpolating adjoint over a checkpointed forward solve: the solver state is
    /// kept every `every` accepted steps, and the dense output of a segment is recomputed
    /// when the backward solve reaches it (one more forward solve; at most two segments
    /// in memory). Same gradient as [`Method::Interpolating`].
    InterpolatingCheckpointed {
        /// Accepted steps per segment (>= 1).
        every: usize,
    },
    /// The interpolating adjoint in memory logarithmic in the number of steps: only the
    /// initial solver state is kept, and the forward steps are recomputed last to first by
    /// recursive bisection as the backward solve reaches them. Same gradient as
    /// [`Method::Interpolating`].
    InterpolatingRecursive,
}

impl Method {
    /// A short name for tables.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Direct => "direct",
            Method::Checkpointed { .. } => "checkpointed",
            Method::RecursiveCheckpointed => "recursive-checkpointed",
            Method::Backsolve { .. } => "backsolve",
            Method::Interpolating => "interpolating",
            Method::InterpolatingCheckpointed { .. } => "interpolating-checkpointed",
            Method::InterpolatingRecursive => "interpolating-recursive",
        }
    }
}

/// Options of a gradient: the forward solver, the method, and the adjoint solve's tolerances.
///
/// ```
/// use neuralode::{GradOptions, Method, SolverOptions};
/// let o = GradOptions::default()
///     .solver(SolverOptions::default().rtol(1e-8).atol(1e-8))
///     .method(Method::Interpolating);
/// assert!(o.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GradOptions {
    /// The forward solver's options.
    pub solver: SolverOptions,
    /// The gradient method (default [`Method::Direct`]).
    pub method: Method,
    /// Tolerances and limits of the backward solve of the adjoint methods; `None` uses
    /// the forward solver's.
    pub adjoint_solver: Option<SolverOptions>,
    /// Leave the parameter integral (and, for backsolve, nothing else) out of the adjoint
    /// solve's error norm (Kidger et al. 2021's seminorm; default true).
    pub seminorm: bool,
}

impl Default for GradOptions {
    fn default() -> Self {
        GradOptions {
            solver: SolverOptions::default(),
            method: Method::Direct,
            adjoint_solver: None,
            seminorm: true,
        }
    }
}

impl GradOptions {
    setter!(solver, SolverOptions, "Set the forward solver's options.");
    setter!(method, Method, "Set the gradient method.");
    setter!(seminorm, bool, "Use the seminorm in the adjoint solve.");

    /// Set the adjoint solve's options.
    #[must_use]
    pub fn adjoint_solver(mut self, o: SolverOptions) -> Self {
        self.adjoint_solver = Some(o);
        self
    }

    /// The options of the backward solve.
    pub fn backward(&self) -> &SolverOptions {
        self.adjoint_solver.as_ref().unwrap_or(&self.solver)
    }

    /// Validate the solver options and the method's parameters.
    pub fn validate(&self) -> Result<(), NodeError> {
        self.solver.validate()?;
        if let Some(o) = &self.adjoint_solver {
            o.validate()?;
        }
        if let Method::Checkpointed { every: 0 } | Method::InterpolatingCheckpointed { every: 0 } =
            self.method
        {
            return Err(NodeError::InvalidOption {
                name: "Checkpointed::every",
                value: 0.0,
                reason: "must be at least 1",
            });
        }
        Ok(())
    }
}
