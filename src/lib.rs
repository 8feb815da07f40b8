//! # diffprog — implicit differentiation and differentiable programming
//!
//! The umbrella crate: it re-exports every crate of the workspace under a short name, and
//! nalgebra (the matrix type every API takes), so `diffprog` is the only dependency a
//! program needs.
//!
//! ```
//! use diffprog::prelude::*;
//! use diffprog::nalgebra::DMatrix;
//!
//! // A loss written once against `MatOps`, differentiated in reverse mode.
//! struct Loss;
//! impl MatFn for Loss {
//!     fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar { p[0].tanh().sq_norm() }
//! }
//! let w = DMatrix::from_column_slice(2, 1, &[0.5, -1.0]);
//! let (value, g) = value_and_grad_mat(&Loss, &[w.clone()])?;
//! let expected = w.map(|v| 2.0 * v.tanh() * (1.0 - v.tanh().powi(2)));
//! assert!((&g[0] - expected).norm() < 1e-14 && value > 0.0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`ad`] | `ad-core` | dual numbers, reverse-mode tape, Hessian-vector products, custom ops, `nn`, `optim` |
//! | [`implicit`] | `implicit` | implicit function theorem, linear solvers, hyperparameter optimization |
//! | [`deq`] | `deq` | fixed-point solvers (Picard, Anderson, Broyden) and deep equilibrium layers with exact / phantom / Jacobian-free backward passes |
//! | [`neuralode`] | `neuralode` | neural ODEs: Dopri5, direct / checkpointed / recursive / interpolating / backsolve gradients, the ODE solve as a tape op |
//! | [`metalearn`] | `metalearn` | MAML, FOMAML, iMAML, Reptile; task distributions; parallel meta-batches; the sinusoid protocol |
//! | [`nalgebra`] | `nalgebra` | the matrix and vector types |
//!
//! Guides: `docs/coming-from-jax.md`, `docs/ad-core.md`, `docs/implicit.md`, `docs/deq.md`,
//! `docs/neuralode.md`, `docs/metalearn.md`. Their code blocks run as doctests of this crate, so they compile
//! with `diffprog` alone.
#![forbid(unsafe_code)]

pub use ad_core as ad;
pub use deq;
pub use implicit;
pub use metalearn;
pub use nalgebra;
pub use neuralode;

/// The names most programs need, in one import: `use diffprog::prelude::*;`.
pub mod prelude {
    pub use ad_core::prelude::*;
    pub use deq::{DeqError, DeqLayer, DeqOptions, EquilibriumMap, MonotoneLayer, TanhLayer};
    pub use implicit::prelude::*;
    pub use metalearn::prelude::*;
    pub use nalgebra::{DMatrix, DVector};
    // `Method`, `SolverOptions` and `Gradients` of deq and neuralode stay under their crates
    // (`deq::solvers::Method`, `neuralode::Method`): the names would clash.
    pub use neuralode::{
        Dynamics, GradOptions, MlpDynamics, NodeError, OdeSolve, TapeDynamics, VectorField, odeint,
        solve_unrolled,
    };
}

/// The guides of `docs/`, compiled and run as doctests of the umbrella crate.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../docs/coming-from-jax.md")]
    struct ComingFromJax;
    #[doc = include_str!("../docs/ad-core.md")]
    struct AdCore;
    #[doc = include_str!("../docs/implicit.md")]
    struct Implicit;
    #[doc = include_str!("../docs/deq.md")]
    struct Deq;
    #[doc = include_str!("../docs/neuralode.md")]
    struct NeuralOde;
    #[doc = include_str!("../docs/metalearn.md")]
    struct Metalearn;
}
