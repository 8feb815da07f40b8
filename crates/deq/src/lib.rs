//! # deq — deep equilibrium layers
//!
//! A DEQ layer's output is the fixed point z* = f(z*, x; θ). deq finds it with a forward
//! solver (Picard, Anderson, Broyden) in plain `f64`, and records it on ad-core's tape as
//! one node whose backward pass is implicit's: the exact implicit gradient, the phantom
//! gradient or Jacobian-free backprop. Memory does not depend on the iteration count.
//!
//! ```
//! use ad_core::{MatOps, Tape};
//! use deq::{DeqLayer, DeqOptions, TanhLayer, solvers::{Method, SolverOptions}};
//! use nalgebra::DMatrix;
//! let layer = DeqLayer::new(TanhLayer::normalized(0.9))      // z = tanh(W z + U x + b), ‖W‖ = 0.9
//!     .with_options(DeqOptions::default().solver(SolverOptions::default().method(Method::anderson())));
//! let tape = Tape::new();
//! let w = tape.mat_var(DMatrix::from_fn(4, 4, |i, j| ((i * 4 + j) as f64).sin()));
//! let u = tape.mat_var(DMatrix::from_fn(4, 2, |i, j| ((i + j) as f64).cos()));
//! let b = tape.mat_var(DMatrix::from_element(4, 1, 0.1));
//! let x = tape.mat_var(DMatrix::from_fn(2, 8, |i, j| (i as f64 + 1.0) * (j as f64 - 4.0) * 0.2));
//! let out = layer.forward(&x, &[w, u, b])?;                  // z*: 4 x 8, one node
//! let g = tape.gradient(out.z.square().mean())?;            // implicit backward pass
//! assert!(g.wrt_mat(&w).norm() > 0.0 && g.wrt_mat(&x).norm() > 0.0);
//! assert!(out.stats.converged && out.node.last_report().unwrap().succeeded());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | what |
//! |---|---|
//! | [`solvers`] | Picard (damped), Anderson (memory m, ridge, QR least squares, restarts), limited-memory Broyden; per-sample convergence, stats, lowest-residual iterate, divergence and stagnation errors, explicit fallback chains |
//! | [`map`] | the layer map trait [`EquilibriumMap`] (written once against `MatOps`), [`TanhLayer`] (optional weight normalization), the monotone [`MonotoneLayer`] |
//! | [`layer`] | [`DeqLayer`]: solve forward, record z* as one tape node; gradients reach θ and x |
//! | [`regularization`] | Jacobian regularization: a Hutchinson estimate of ‖∂f/∂z‖²_F on the tape |
//! | [`linearization`] | the fixed-point condition as an implicit problem (what implicit's backward passes use) |
//! | [`error`] | [`DeqError`]: one enum, every variant with its numbers |
//!
//! The backward pass is [`implicit::IftOptions::backward`] in [`DeqOptions::ift`]:
//! `Exact` (a linear solve: GMRES by default, `linear::Method::Richardson`, the
//! fixed-point iteration on the adjoint, or `linear::Method::Anderson`, that iteration
//! with Anderson mixing), `Phantom { steps, damping }` or `JacobianFree`.
//! See `docs/deq.md` for the guide and `tests/` for the guarantees.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod error;
pub mod layer;
pub mod linearization;
pub mod map;
pub mod regularization;
pub mod solvers;

pub use error::DeqError;
pub use layer::{DeqLayer, DeqOptions, DeqOutput};
pub use map::{EquilibriumMap, MonotoneLayer, Scaling, TanhLayer};

/// The names most programs need: `use deq::prelude::*;`.
pub mod prelude {
    pub use crate::solvers::{Method, SolverOptions, StopMode};
    pub use crate::{DeqError, DeqLayer, DeqOptions, EquilibriumMap, MonotoneLayer, TanhLayer};
}
