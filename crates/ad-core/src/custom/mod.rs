//! Custom ops: a value computed outside the tape, with user-supplied VJP and JVP rules.
//!
//! This is how solvers enter the tape: the forward solve runs in plain `f64` (any algorithm,
//! black box allowed) and only the solution is recorded, as one node whose rules apply, say,
//! the implicit function theorem. A rule may fail (a backward linear solve that does not
//! converge): the failure surfaces as [`AdError::CustomRule`](crate::AdError::CustomRule)
//! from the sweep, never as a silent zero gradient; NaN or infinite numbers from a rule as
//! [`AdError::CustomNonFinite`](crate::AdError::CustomNonFinite).
//!
//! Blocks: inputs and outputs are lists of matrices. A group of scalar [`Var`]s is one
//! `n x 1` block.
//!
//! # Example: a root found by Newton, differentiated by the implicit function theorem
//!
//! x*(a) solves x³ + a·x − 1 = 0. With F(x, a) = x³ + a x − 1, the theorem gives
//! dx*/da = −(∂F/∂a)/(∂F/∂x) = −x / (3x² + a).
//!
//! ```
//! use ad_core::{custom_scalar_op, FnRule, Real, Tape};
//! use nalgebra::DMatrix;
//!
//! fn newton_root(a: f64) -> f64 {
//!     let mut x = 1.0;
//!     for _ in 0..50 { x -= (x * x * x + a * x - 1.0) / (3.0 * x * x + a); }
//!     x
//! }
//!
//! let tape = Tape::new();
//! let a = tape.var(2.0);
//! let x = newton_root(a.value());
//! let dxda = -x / (3.0 * x * x + a.value()); // implicit function theorem
//! let rule = FnRule::new(
//!     "cubic_root",
//!     move |out_bar: &[DMatrix<f64>]| Ok(vec![&out_bar[0] * dxda]), // VJP
//!     move |in_dot: &[DMatrix<f64>]| Ok(vec![&in_dot[0] * dxda]),   // JVP
//! );
//! let root = custom_scalar_op(rule, &[a], &[x])[0];
//! let loss = root * root;                    // anything downstream
//! let g = tape.gradient(loss).unwrap().wrt(a);
//! // check against re-solving at a ± h
//! let h = 1e-6;
//! let fd = (newton_root(2.0 + h).powi(2) - newton_root(2.0 - h).powi(2)) / (2.0 * h);
//! assert!((g - fd).abs() < 1e-8);
//! ```

pub(crate) mod record;

use nalgebra::DMatrix;

use crate::matrix::{MatOps, MatVar};
pub use crate::rule::{CustomFn, CustomRule, FnRule};
use crate::tape::active_id;
use crate::var::Var;

/// Record a custom op with matrix inputs and outputs; returns one [`MatVar`] per output.
///
/// `outputs` are the values the op computed (outside the tape). The rule's `vjp` receives
/// one adjoint per output and must return one adjoint per input (same shapes); `jvp` the
/// other way round. Inputs must live on the active tape. To use a function in every mode
/// (plain, forward, reverse), implement [`CustomFn`] and apply it with [`MatOps::custom`].
pub fn custom_op(
    rule: impl CustomRule,
    inputs: &[MatVar],
    outputs: Vec<DMatrix<f64>>,
) -> Vec<MatVar> {
    let tape = record::common_tape(inputs.iter().map(|m| m.tape_id()))
        .or_else(active_id)
        .expect("ad-core: custom_op needs an active tape");
    let ins: Vec<_> = inputs.iter().map(|m| (m.index(), m.shape())).collect();
    let shapes: Vec<_> = outputs.iter().map(|m| m.shape()).collect();
    let ids = record::record_mats(tape, Box::new(rule), &ins, outputs);
    ids.iter()
        .zip(shapes)
        .map(|(&i, (r, c))| MatVar::from_parts(tape, i, r, c))
        .collect()
}

/// Record a custom op on scalar inputs with scalar outputs; returns one [`Var`] per output.
///
/// The rule sees the inputs as one `n x 1` block and the outputs as one `m x 1` block.
/// If every input is a constant, the outputs are constants and nothing is recorded.
pub fn custom_scalar_op(rule: impl CustomRule, inputs: &[Var], outputs: &[f64]) -> Vec<Var> {
    Var::record_custom(Box::new(rule), inputs, outputs)
}
