//! # implicit — gradients of solutions defined by conditions
//!
//! The derivative of a solution x*(θ) — of a root F(x, θ) = 0, a minimizer of L(x, θ) or a
//! fixed point z = f(z, θ) — from the implicit function theorem, without differentiating
//! the procedure that found it:
//!
//! ```
//! use ad_core::{MatOps, Tape};
//! use implicit::{implicit_node, Argmin, IftOptions, Objective};
//! // x*(θ) = argmin_x ½‖x − c‖² + θ/2 ‖x‖² = c / (1 + θ)
//! struct Shrink;
//! impl Objective for Shrink {
//!     fn value<M: MatOps>(&self, x: &M, t: &M) -> M::Scalar {
//!         let c = x.constant_like(nalgebra::DMatrix::from_column_slice(2, 1, &[1.0, -2.0]));
//!         x.sub(&c).sq_norm() * 0.5 + t.get(0, 0) * x.sq_norm() * 0.5
//!     }
//! }
//! let tape = Tape::new();
//! let theta = tape.vector_var(&[0.5]);
//! let solver = |t: &[f64]| Ok::<_, std::convert::Infallible>(vec![1.0 / (1.0 + t[0]), -2.0 / (1.0 + t[0])]);
//! let (x, node) = implicit_node(Argmin(Shrink), &theta, solver, IftOptions::default())?;
//! let g = tape.gradient(x.sq_norm())?.wrt_mat(&theta)[0];   // d‖x*‖²/dθ = −2·5/(1+θ)³
//! assert!((g + 10.0 / 1.5f64.powi(3)).abs() < 1e-10);
//! assert!(node.last_report().unwrap().linear.converged);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`problem`] | the three ways to define a solution (`RootCondition`, `Objective`, `FixedPointMap`) |
//! | [`ift`] | [`Implicit`]: VJPs, JVPs and Jacobians at a solution, residual-checked, with reports |
//! | [`node`] | [`implicit_node`]: any forward solver as one node of ad-core's tape (reverse and forward mode) |
//! | [`linear`] | matrix-free operators and CG, MINRES, GMRES, BiCGSTAB, normal CG, dense LU/Cholesky |
//! | [`unrolled`] | the unrolled baseline (differentiating through T iterations) |
//! | [`solvers::argmin_rs`] | the argmin crate's L-BFGS and Newton-CG on ad-core functions, exact gradients and HVPs |
//! | [`hyper`] | hyperparameter optimization: hypergradients, Adam / L-BFGS outer loops |
//!
//! Failures are loud: an inner solution whose optimality residual exceeds the tolerance is
//! [`ImplicitError::NotAtSolution`]; a linear solve that does not converge is an error
//! carrying its report (inside a tape, `Tape::gradient` returns it) — never a zero gradient.
//! See `docs/implicit.md` for the guide and `tests/` for the guarantees.

#![deny(missing_docs)]

pub mod error;
pub mod hyper;
pub mod ift;
pub mod linear;
pub mod linearize;
pub mod node;
pub mod problem;
pub mod solvers;
pub mod unrolled;

pub use error::ImplicitError;
pub use ift::{Factor, IftOptions, IftReport, Implicit};
pub use linear::SolveError;
pub use linearize::{ArgminHessian, Linearization, RecordedRoot};
pub use node::{
    Argmin, FixedPoint, ImplicitNode, ImplicitProblem, Root, implicit_node, implicit_scalar_node,
};
pub use problem::{
    FixedPointMap, FixedPointResidual, Objective, RootCondition, ScalarObjective,
    ScalarRootCondition, Scalars,
};
pub use solvers::argmin_rs::{
    ArgminError, ArgminMethod, ArgminProblem, ArgminSolution, HvpOperator, LbfgsOptions,
    NewtonCgOptions, minimize_lbfgs, minimize_newton_cg,
};
