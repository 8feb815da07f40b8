//! Hyperparameter optimization by implicit differentiation: the gradient of a validation
//! loss with respect to the hyperparameters of an inner argmin, and hypergradient descent.
//!
//! - [`hypergradient`]: dV(x*(θ), θ)/dθ for any inner [`Objective`](crate::Objective), any
//!   [`ValidationLoss`] and any [`InnerSolver`] (a closure; warm starts and reuse of the
//!   solver's Hessian factorization supported); [`newton_inner`] is the library's Newton
//!   method as one (dense Hessians, its factor reused by the backward pass);
//! - [`optimize`]: Adam over θ with warm-started inner solves and a serializable [`Trace`];
//!   [`optimize_lbfgs`]: argmin's L-BFGS over θ with the same hypergradients;
//!
//! The W1/W2 problems of the benchmarks (ridge and logistic regression on the peers' data)
//! are not part of this API: they live in the workspace's dev-only `workloads` crate.
//!
//! ```
//! use ad_core::MatOps;
//! use implicit::hyper::{hypergradient, InnerSolution, ValidationLoss};
//! use implicit::{Factor, IftOptions, ImplicitError, Objective};
//! use implicit::linear::DenseCholesky;
//! use nalgebra::DMatrix;
//! // Ridge in two unknowns: L(x, λ) = ½ xᵀA x − bᵀx + ½ λ‖x‖²,  V(x) = ½‖x − t‖².
//! struct Inner;
//! impl Objective for Inner {
//!     fn value<M: MatOps>(&self, x: &M, l: &[M]) -> M::Scalar {
//!         let a = x.constant_like(DMatrix::from_row_slice(2, 2, &[2.0, 0.5, 0.5, 1.0]));
//!         let b = x.constant_like(DMatrix::from_column_slice(2, 1, &[1.0, -1.0]));
//!         x.dot(&a.matmul(x)) * 0.5 - x.dot(&b) + l[0].get(0, 0) * x.sq_norm() * 0.5
//!     }
//! }
//! struct Val;
//! impl ValidationLoss for Val {
//!     fn loss<M: MatOps>(&self, x: &M, _l: &M) -> M::Scalar { x.add_f64(-0.2).sq_norm() * 0.5 }
//! }
//! // Forward: Cholesky of A + λI; backward: the same factor, reused (and checked).
//! let mut solver = |l: &[f64], _warm: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
//!     let h = DMatrix::from_row_slice(2, 2, &[2.0 + l[0], 0.5, 0.5, 1.0 + l[0]]);
//!     let chol = DenseCholesky::factor(&h, 0.0)?;
//!     let x = chol.solve(&[1.0, -1.0], None, &Default::default())?.x;
//!     Ok(InnerSolution { x, iterations: 1, factor: Some(Factor::Cholesky(chol)) })
//! };
//! let h = hypergradient(&Inner, &Val, &[0.1], &mut solver, &IftOptions::default())?;
//! // Central difference of V(x*(λ)) as a check.
//! let v = |l: f64| {
//!     let det = (2.0 + l) * (1.0 + l) - 0.25;
//!     let x = [((1.0 + l) + 0.5) / det, (-(2.0 + l) - 0.5) / det];
//!     0.5 * ((x[0] - 0.2f64).powi(2) + (x[1] - 0.2f64).powi(2))
//! };
//! let fd = (v(0.1 + 1e-6) - v(0.1 - 1e-6)) / 2e-6;
//! assert!((h.grad[0] - fd).abs() < 1e-8 * fd.abs().max(1.0));
//! # Ok::<(), ImplicitError>(())
//! ```

mod hypergrad;
mod lbfgs;
mod newton_inner;
mod optimize;

pub use hypergrad::{
    Hypergradient, InnerSolution, InnerSolver, ValidationLoss, hypergradient, hypergradient_at,
    hypergradient_linearized, hypergradient_warm, validation_value_and_grad,
};
pub use lbfgs::{LbfgsOutcome, optimize_lbfgs};
pub use newton_inner::newton_inner;
pub use optimize::{HyperOptions, Trace, TraceStep, optimize, optimize_observed};
