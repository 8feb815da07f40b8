//! The choice of backward pass, and what each pass reports.
//!
//! The exact pass solves the linear system of the implicit function theorem. The two
//! cheaper passes view the optimality condition as a fixed-point map f(x) = x + σF(x)
//! (σ = +1 for roots and fixed points, where F = f − z exactly; σ = −1 for argmins, where
//! f is the gradient step x − ∇ₓL) and replace (I − ∂f/∂x)⁻¹ by a truncated series:
//!
//! - [`Backward::Phantom`]: k damped steps on the adjoint, g ← (1−τ)g + τ(J_fᵀ g + x̄)
//!   from g = x̄ (Neumann steps when τ = 1), then θ̄ = (∂f/∂θ)ᵀ g. The error after k steps
//!   shrinks like ρ((1−τ)I + τJ_f)ᵏ. In forward mode, ẋ ← (1−τ)ẋ + τ(J_f ẋ + ∂f/∂θ θ̇)
//!   from ẋ = ∂f/∂θ θ̇.
//! - [`Backward::JacobianFree`]: the identity in place of the inverse (Jacobian-free
//!   backprop): θ̄ = (∂f/∂θ)ᵀ x̄, ẋ = ∂f/∂θ θ̇.
//!
//! Every pass reports the relative residual of the system it approximates — reverse mode
//! ‖Aᵀw − x̄‖/‖x̄‖, forward mode ‖Aẋ + Bθ̇‖/‖Bθ̇‖, with A = ∂F/∂x and B = ∂F/∂θ — from one
//! product: for the exact pass it is the solve's accuracy, for the others an error
//! estimate (the gradient error is at most ‖B‖·‖A⁻¹‖ times it, relative to ‖x̄‖).

use serde::{Deserialize, Serialize};

use crate::linear::SolveReport;

/// Which backward (and forward-mode) pass an implicit derivative uses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
pub enum Backward {
    /// The exact linear solve with A or Aᵀ (the method and tolerances of
    /// [`IftOptions`](crate::IftOptions)).
    #[default]
    Exact,
    /// `steps` damped fixed-point (Neumann when `damping` = 1) steps on the adjoint: the
    /// phantom gradient. `steps >= 1`, `0 < damping <= 1`.
    Phantom {
        /// Number of steps k (each one product with ∂F/∂x).
        steps: usize,
        /// Damping τ in (0, 1]; for argmins it is the gradient step size of the map.
        damping: f64,
    },
    /// The identity in place of (I − ∂f/∂x)⁻¹: Jacobian-free backprop.
    JacobianFree,
}

impl Backward {
    /// A short name ("exact", "phantom", "jacobian-free").
    pub fn name(&self) -> &'static str {
        match self {
            Backward::Exact => "exact",
            Backward::Phantom { .. } => "phantom",
            Backward::JacobianFree => "jacobian-free",
        }
    }
}

/// The direction of a derivative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Reverse mode: a vector-Jacobian product (θ̄ from x̄).
    Reverse,
    /// Forward mode: a Jacobian-vector product (ẋ from θ̇).
    Forward,
}

/// What an implicit derivative did, what it cost and how accurate it is.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IftReport {
    /// ‖F(x*, θ)‖₂ at the point differentiated.
    pub forward_residual: f64,
    /// Reverse or forward mode.
    pub direction: Direction,
    /// The pass that ran (with its steps and damping for the phantom pass).
    pub backward: Backward,
    /// Iterations of the linear solve (exact), steps taken (phantom), or 0 (Jacobian-free).
    pub steps: usize,
    /// Products with A = ∂F/∂x, Aᵀ, B = ∂F/∂θ or Bᵀ made (a reverse sweep giving Aᵀu and
    /// Bᵀu together counts once).
    pub products: usize,
    /// Relative residual of the system the pass approximates: ‖Aᵀw − x̄‖/‖x̄‖ (reverse) or
    /// ‖Aẋ + Bθ̇‖/‖Bθ̇‖ (forward); 0 for a zero right-hand side; `NaN` when the pass failed
    /// before it could be measured.
    pub relative_residual: f64,
    /// The linear solve (exact pass only; also for a failed solve).
    pub linear: Option<SolveReport>,
    /// Estimated norm of the error the linear solve left in the result: ‖Bᵀ A⁻ᵀ r‖ (reverse)
    /// or ‖A⁻¹ r‖ (forward) for the final residual r, from one extra solve to 10% relative
    /// accuracy. Exact pass only; `None` when not requested or when that solve failed.
    pub linear_error_estimate: Option<f64>,
    /// `None` on success; the error's message when the derivative failed (the report then
    /// holds what was known: the failed solve's numbers, for instance).
    pub failure: Option<String>,
}

impl IftReport {
    /// True when the derivative was computed (no failure).
    pub fn succeeded(&self) -> bool {
        self.failure.is_none()
    }

    /// The report of a derivative that failed with `error`.
    pub(crate) fn failed(
        forward_residual: f64,
        direction: Direction,
        backward: Backward,
        error: &crate::ImplicitError,
    ) -> IftReport {
        let linear = error.report().cloned();
        // A phantom pass that grew has no linear report; its own numbers say what it did.
        let (steps, relative_residual) = match (error, &linear) {
            (
                crate::ImplicitError::PhantomDiverged {
                    steps,
                    final_residual,
                    ..
                },
                _,
            ) => (*steps, *final_residual),
            (_, Some(r)) => (r.iterations, relative(r.residual_norm, r.rhs_norm)),
            (_, None) => (0, f64::NAN),
        };
        IftReport {
            forward_residual,
            direction,
            backward,
            steps,
            products: linear.as_ref().map_or(0, |r| r.matvecs),
            relative_residual,
            linear,
            linear_error_estimate: None,
            failure: Some(error.to_string()),
        }
    }
}

/// `num / den`, with 0/0 = 0.
pub(crate) fn relative(num: f64, den: f64) -> f64 {
    if den == 0.0 && num == 0.0 {
        0.0
    } else {
        num / den
    }
}
