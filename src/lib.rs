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
//! | [`deq`] | `deq` | deep equilibrium layers (in progress) |
//! | [`neuralode`] | `neuralode` | neural ODEs with adjoints (in progress) |
//! | [`metalearn`] | `metalearn` | MAML / FOMAML / iMAML (in progress) |
//! | [`nalgebra`] | `nalgebra` | the matrix and vector types |
//!
//! Guides: `docs/coming-from-jax.md`, `docs/ad-core.md`, `docs/implicit.md`. Their code
//! blocks run as doctests of this crate, so they compile with `diffprog` alone.

pub use ad_core as ad;
pub use deq;
pub use implicit;
pub use metalearn;
pub use nalgebra;
pub use neuralode;

/// The names most programs need, in one import: `use diffprog::prelude::*;`.
pub mod prelude {
    pub use ad_core::prelude::*;
    pub use implicit::prelude::*;
    pub use nalgebra::{DMatrix, DVector};
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
}
