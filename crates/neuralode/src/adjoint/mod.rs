//! Backward passes: the discrete adjoint (direct, checkpointed) and the continuous adjoint
//! (backsolve, interpolating).

pub(crate) mod continuous;
pub(crate) mod dense;
pub(crate) mod discrete;
pub(crate) mod tangent;
