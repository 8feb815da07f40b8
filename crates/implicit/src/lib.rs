//! # implicit — gradients of solutions defined by conditions
//!
//! **Status: not yet implemented.** This crate will hold matrix-free linear solvers
//! (CG, MINRES, GMRES, BiCGSTAB, dense LU/Cholesky) and the implicit function theorem
//! for roots, argmins and fixed points, with solvers entering `ad-core`'s tape as
//! custom ops. Nothing here works yet; it exists so the workspace has its final shape.
