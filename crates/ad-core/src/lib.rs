//! # ad-core — dual numbers, a reverse-mode tape, Hessian-vector products, custom ops
//!
//! Write a function once against [`Real`]; evaluate it on `f64`, differentiate it forward
//! with [`Dual`], backward with [`Var`], and to second order with `Dual<Var>`:
//!
//! ```
//! use ad_core::{grad, hvp, jvp, Real, ScalarFn, VectorFn};
//! struct Energy;
//! impl ScalarFn for Energy {
//!     fn eval<S: Real>(&self, x: &[S]) -> S { (x[0] * x[1]).sin() + x[1].exp() * x[0] }
//! }
//! let x = [0.5, -0.3];
//! let g = grad(&Energy, &x).unwrap();                  // reverse mode
//! let hv = hvp(&Energy, &x, &[1.0, 0.0]).unwrap();     // reverse over forward
//! assert!((g[0] - (-0.3 * (-0.15f64).cos() + (-0.3f64).exp())).abs() < 1e-15);
//! assert!((hv[0] - (-0.09 * (-0.15f64).sin())).abs() < 1e-15);
//! ```
//!
//! Network-sized code uses matrix variables ([`MatVar`]) through the [`MatOps`] trait: one
//! tape node per matrix operation, contiguous values and adjoints. Solvers enter the tape
//! as [custom ops](custom_op) whose VJP/JVP rules the user supplies; a rule that fails makes
//! the sweep return an error instead of a silent zero gradient.
//!
//! | mode | scalar | matrix | driver |
//! |---|---|---|---|
//! | plain | `f64` | `DMatrix<f64>` | call the function |
//! | forward | `Dual<f64>` | `DualMat<DMatrix<f64>>` | [`jvp`], [`jacobian_forward`], [`jvp_mat`] |
//! | reverse | `Var` | `MatVar` | [`grad`], [`vjp`], [`jacobian_reverse`], [`value_and_grad_mat`] |
//! | second order | `Dual<Var>` | `DualMat<MatVar>` | [`hvp`], [`hessian`], [`hvp_mat`] |
//!
//! The tape is thread-local, with an RAII scope ([`Tape`]) that nests. Data enter it by
//! reference ([`MatOps::shared`], [`Tape::constant_shared`]); a function recorded once
//! gives many products by replay ([`Recording`]); a solver or other black box with its own
//! derivative rules works in every mode as a [`CustomFn`] ([`MatOps::custom`],
//! [`Real::custom`]); [`testing::poison_buffers`] makes kernels' unwritten outputs show as
//! NaN. See `crates/ad-core/tests/` for the property tests that specify all of this.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod custom;
mod drivers;
mod dual;
mod elementwise;
mod error;
mod hessian_recording;
pub mod kernels;
mod matrix;
pub mod nn;
pub mod optim;
mod real;
mod recording;
mod rule;
mod second_order;
mod sweep;
mod tape;
pub mod testing;
mod unary;
mod var;

pub use custom::{CustomFn, CustomRule, FnRule, custom_op, custom_scalar_op};
pub use drivers::{
    MatFn, ScalarFn, VectorFn, grad, hessian, hvp, hvp_mat, jacobian, jacobian_forward,
    jacobian_reverse, jvp, jvp_mat, value_and_grad, value_and_grad_mat, vjp,
};
pub use dual::{Dual, Dual64};
pub use error::{AdError, RuleError, all_finite, check_finite};
pub use hessian_recording::HessianRecording;
pub use matrix::{DualMat, MatOps, MatVar, Unary};
pub use real::Real;
pub use recording::Recording;
pub use sweep::{Gradients, Seeds, Tangents};
pub use tape::Tape;
pub use var::Var;

/// The names most programs need: `use ad_core::prelude::*;`.
pub mod prelude {
    pub use crate::{
        AdError, CustomFn, Dual, Dual64, DualMat, MatFn, MatOps, MatVar, Real, Recording, ScalarFn,
        Seeds, Tape, Unary, Var, VectorFn, grad, hessian, hvp, hvp_mat, jvp, value_and_grad,
        value_and_grad_mat, vjp,
    };
}
