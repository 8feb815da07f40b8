//! # implicit — gradients of solutions defined by conditions
//!
//! The derivative of a solution x*(θ) — of a root F(x, θ) = 0, a minimizer of L(x, θ) or a
//! fixed point z = f(z, θ) — from the implicit function theorem, without differentiating
//! the procedure that found it:
//!
//! ```
//! use ad_core::{MatOps, Tape};
//! use implicit::{implicit_node, Argmin, IftOptions, Objective};
//! use nalgebra::DMatrix;
//! // x*(θ) = argmin_x ½‖x − c‖² + θ/2 ‖x‖² = c / (1 + θ)
//! struct Shrink;
//! impl Objective for Shrink {
//!     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
//!         let c = x.constant_like(DMatrix::from_column_slice(2, 1, &[1.0, -2.0]));
//!         x.sub(&c).sq_norm() * 0.5 + t[0].get(0, 0) * x.sq_norm() * 0.5
//!     }
//! }
//! let tape = Tape::new();
//! let theta = tape.vector_var(&[0.5]);
//! let solver = |t: &[DMatrix<f64>]| vec![1.0 / (1.0 + t[0][0]), -2.0 / (1.0 + t[0][0])];
//! let (x, node) = implicit_node(Argmin(Shrink), &[theta], solver, IftOptions::default())?;
//! let g = tape.gradient(x.sq_norm())?.wrt_mat(&theta)[0];   // d‖x*‖²/dθ = −2·5/(1+θ)³
//! assert!((g + 10.0 / 1.5f64.powi(3)).abs() < 1e-10);
//! assert!(node.last_report().unwrap().relative_residual < 1e-10);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | item | what |
//! |---|---|
//! | [`Objective`], [`RootCondition`], [`FixedPointMap`] | the three ways to define a solution, x of any shape, θ in blocks |
//! | [`Scalars`], [`FixedPointResidual`] | scalar-written problems and the root condition of a fixed-point map |
//! | [`Implicit`], [`IftOptions`] | VJPs, JVPs and Jacobians at a solution, options validated, residual-checked, with reports |
//! | [`Backward`], [`IftReport`] | the choice of backward pass (exact, phantom, Jacobian-free) and what it did |
//! | [`implicit_node`] | any forward solver as one node of ad-core's tape (reverse and forward mode) |
//! | [`SolutionFn`] | x*(θ) as an ad-core `CustomFn`: a solver inside any `MatOps` function, in every mode |
//! | [`SolverOutput`] | what a forward solver may return (x* directly, or a `Result`) |
//! | [`linear`] | matrix-free operators and CG, MINRES, GMRES, BiCGSTAB, Richardson, normal CG, dense LU/Cholesky |
//! | [`unrolled`] | the unrolled baseline (differentiating through T iterations of a [`FixedPointMap`]) |
//! | [`solvers::newton`] | the library's Newton method: dense Hessians from one batched sweep |
//! | [`solvers::argmin_rs`] | the argmin crate's L-BFGS and Newton-CG on ad-core functions, exact gradients and HVPs |
//! | [`hyper`] | hyperparameter optimization: hypergradients, Adam / L-BFGS outer loops |
//!
//! Every item has one path: the modules above are public, everything else is re-exported
//! here at the root.
//!
//! Failures are loud: an inner solution whose optimality residual exceeds the tolerance is
//! [`ImplicitError::NotAtSolution`]; a linear solve that does not converge is an error
//! carrying its report (inside a tape, `Tape::gradient` returns it) — never a zero gradient.
//! See `docs/implicit.md` for the guide and `tests/` for the guarantees.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod adapters;
mod backward;
mod checks;
mod error;
mod exact;
pub mod hyper;
mod ift;
pub mod linear;
mod linearize;
mod node;
mod phantom;
mod problem;
mod solution_fn;
mod solver_output;
pub mod solvers;
pub mod unrolled;

pub use adapters::{FixedPointResidual, ScalarObjective, ScalarRootCondition, Scalars};
pub use backward::{Backward, Direction, IftReport};
pub use error::{ImplicitError, check_finite};
pub use ift::{IftOptions, Implicit};
pub use linear::Factor;
pub use linear::SolveError;
pub use linearize::{ArgminHessian, Linearization, RecordedRoot, Shapes};
pub use node::{
    Argmin, FixedPoint, ImplicitNode, ImplicitProblem, Root, implicit_node, implicit_scalar_node,
};
pub use problem::{FixedPointMap, Objective, RootCondition};
pub use solution_fn::SolutionFn;
pub use solver_output::SolverOutput;
pub use solvers::argmin_rs::{
    ArgminError, ArgminMethod, ArgminProblem, ArgminSolution, HvpOperator, LbfgsOptions,
    NewtonCgOptions, minimize_lbfgs, minimize_newton_cg,
};

/// The names most programs need: `use implicit::prelude::*;` (also part of
/// `diffprog::prelude`).
pub mod prelude {
    pub use crate::{
        Argmin, Backward, FixedPoint, FixedPointMap, IftOptions, Implicit, ImplicitError,
        Objective, Root, RootCondition, SolutionFn, implicit_node,
    };
}
