//! # neuralode — neural ODEs with adjoint gradients
//!
//! **Status: not yet implemented.** This crate will solve ODEs with `ode_solvers` and
//! compute gradients by the adjoint method (backsolve, interpolating, checkpointed),
//! with a direct baseline for comparison. Nothing here works yet.
