//! # neuralode — neural ODEs with adjoint gradients
//!
//! Solve dh/dt = f_θ(t, h) with an adaptive Dormand–Prince 5(4) method and differentiate a
//! loss on the states at irregular observation times with respect to θ, h0, t0 and the
//! times, by the method you choose:
//!
//! ```
//! use ad_core::nn::{Activation, Init, Mlp};
//! use neuralode::{value_and_grad, GradOptions, Method, MlpDynamics, SolverOptions};
//! let f = MlpDynamics::new(Mlp::new(&[2, 16, 2], Activation::Tanh, Activation::Identity));
//! let theta = f.mlp().init(Init::XavierUniform, 0);
//! let ts = [0.1, 0.35, 0.9, 2.0];                       // irregular observation times
//! let opts = GradOptions::default()
//!     .solver(SolverOptions::default().rtol(1e-8).atol(1e-8))
//!     .method(Method::Checkpointed { every: 8 });
//! let (loss, g) = value_and_grad(&f, &theta, &[1.0, -0.5], 0.0, &ts, &opts,
//!     |s| (0.5 * s.norm_squared(), s.clone()))?;
//! assert!(loss.is_finite() && g.theta.len() == theta.len() && g.ts.len() == 4);
//! # Ok::<(), neuralode::NodeError>(())
//! ```
//!
//! * Methods ([`Method`]): `Direct` (discretize-then-optimize, the exact derivative of the
//!   solver's steps), `Checkpointed` (the same numbers, segments recomputed),
//!   `RecursiveCheckpointed` (the same numbers in O(log N) memory),
//!   `Interpolating` (continuous adjoint on the forward dense output),
//!   `InterpolatingCheckpointed` / `InterpolatingRecursive` (the same numbers, segments
//!   recomputed; the latter in O(log N) memory) and `Backsolve`
//!   (continuous adjoint with the state solved backward).
//! * Dynamics ([`Dynamics`]): [`MlpDynamics`] (an `ad_core::nn::Mlp` with a fused,
//!   tape-free VJP) or any [`VectorField`] written once against `MatOps`, differentiated
//!   by ad-core ([`TapeDynamics`]).
//! * On the tape: [`odeint`] makes the solve one custom op of ad-core.
//! * [`reference`](mod@reference) runs `ode_solvers`' Dopri5, Dop853 and Rk4 on the same problems.
//!
//! See `docs/neuralode.md` for the guide and the measured limits of `ode_solvers` 0.6.2.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod adjoint;
pub mod dynamics;
mod error;
mod forward;
mod grad;
mod op;
mod options;
pub mod problems;
pub mod reference;
mod stats;
mod stepper;
mod tableau;
mod trajectory;
mod unrolled;

pub use dynamics::{Dynamics, MlpDynamics, TapeDynamics, VectorField, VjpMode};
pub use error::NodeError;
pub use grad::{ForwardPass, Gradients, Solution, forward, solve, value_and_grad};
pub use op::{OdeRule, OdeSolve, odeint};
pub use options::{GradOptions, Method, SolverOptions};
pub use stats::SolveStats;
pub use unrolled::solve_unrolled;

/// The names most programs need, without the generic ones (`solve`, `forward`,
/// `value_and_grad`, which stay behind `neuralode::`): `use neuralode::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Dynamics, GradOptions, Gradients, Method, MlpDynamics, NodeError, OdeSolve, SolverOptions,
        TapeDynamics, VectorField, odeint, solve_unrolled,
    };
}
