//! # deq — deep equilibrium layers
//!
//! **Status: not yet implemented.** This crate will hold fixed-point solvers (Picard,
//! Anderson, Broyden) and equilibrium layers whose backward pass uses the implicit
//! function theorem (or Jacobian-free / phantom gradients). Nothing here works yet.
