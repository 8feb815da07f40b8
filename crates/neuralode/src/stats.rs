//! [`SolveStats`]: function evaluations and steps of a solve and its backward pass.

use std::fmt;

/// Counts of a forward solve and of the backward (gradient) pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SolveStats {
    /// Evaluations of f in the forward solve (including the initial-step heuristic).
    pub nfe_forward: usize,
    /// Evaluations of f in the backward pass (backsolve's state, recomputed segments).
    pub nfe_backward: usize,
    /// Vector-Jacobian products of f in the backward pass.
    pub vjp_backward: usize,
    /// Accepted steps of the forward solve.
    pub accepted_forward: usize,
    /// Rejected steps of the forward solve.
    pub rejected_forward: usize,
    /// Accepted steps of the backward solve (adjoint methods) or steps swept back (discrete).
    pub accepted_backward: usize,
    /// Rejected steps of the backward solve.
    pub rejected_backward: usize,
}

impl fmt::Display for SolveStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "forward: {} f-evals, {} accepted / {} rejected steps; backward: {} f-evals, {} VJPs, {} accepted / {} rejected steps",
            self.nfe_forward,
            self.accepted_forward,
            self.rejected_forward,
            self.nfe_backward,
            self.vjp_backward,
            self.accepted_backward,
            self.rejected_backward
        )
    }
}
