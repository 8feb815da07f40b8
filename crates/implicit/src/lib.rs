//! # implicit — gradients of solutions defined by conditions
//!
//! ```
//! use ad_core::{Real, ScalarFn};
//! use implicit::linear::{solve, HessianOperator, Method, SolveOptions};
//! // The Hessian of f(x) = sum_i exp(x_i) + (x_0 - x_1)^2 at x, applied matrix-free.
//! struct F;
//! impl ScalarFn for F {
//!     fn eval<S: Real>(&self, x: &[S]) -> S {
//!         x.iter().map(|xi| xi.exp()).sum::<S>() + (x[0] - x[1]).square()
//!     }
//! }
//! let x = [0.1, -0.4, 0.7];
//! let h = HessianOperator::new(&F, &x);
//! let sol = solve(&h, &[1.0, 0.0, -1.0], None, Method::Minres, &SolveOptions::default())?;
//! assert!(sol.report.converged && sol.report.residual_norm <= sol.report.tolerance);
//! # Ok::<(), implicit::ImplicitError>(())
//! ```
//!
//! **Status.** The [`linear`] module is implemented: matrix-free linear operators
//! (matrices, closures, ad-core Hessian-vector and Jacobian-vector products), conjugate
//! gradient with preconditioning, MINRES, GMRES(restart), BiCGSTAB, CG on the normal
//! equations and dense LU / Cholesky, all with warm starts, ridge damping and reports whose
//! final residual is recomputed; a solve that fails is an [`ImplicitError`] carrying its
//! report, never a silent result.
//!
//! The implicit function theorem for roots, argmins and fixed points (VJPs, JVPs, solvers
//! as ad-core tape nodes, hyperparameter optimization) is **in progress** and not in this
//! crate yet; it will build on these solvers.

#![deny(missing_docs)]

pub mod argmin_adapter;
pub mod error;
pub mod hyper;
pub mod ift;
pub mod linear;
pub mod linearize;
pub mod node;
pub mod problem;
pub mod unrolled;

pub use argmin_adapter::{
    ArgminError, ArgminMethod, ArgminProblem, ArgminSolution, HvpOperator, LbfgsOptions,
    NewtonCgOptions, minimize_lbfgs, minimize_newton_cg,
};
pub use error::ImplicitError;
pub use ift::{Factor, IftOptions, IftReport, Implicit};
pub use linearize::{ArgminHessian, Linearization, RecordedRoot};
pub use node::{
    Argmin, FixedPoint, ImplicitNode, ImplicitProblem, Root, implicit_node, implicit_scalar_node,
};
pub use problem::{
    FixedPointMap, FixedPointResidual, Objective, RootCondition, ScalarObjective,
    ScalarRootCondition, Scalars,
};
