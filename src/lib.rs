//! # diffprog — implicit differentiation and differentiable programming
//!
//! The umbrella crate: it re-exports every crate of the workspace under a short name.
//!
//! | module | crate | what |
//! |---|---|---|
//! | [`ad`] | `ad-core` | dual numbers, reverse-mode tape, Hessian-vector products, custom ops, `nn` |
//! | [`implicit`] | `implicit` | implicit function theorem, linear solvers, hyperparameter optimization |
//! | [`deq`] | `deq` | deep equilibrium layers (in progress) |
//! | [`neuralode`] | `neuralode` | neural ODEs with adjoints (in progress) |
//! | [`metalearn`] | `metalearn` | MAML / FOMAML / iMAML (in progress) |

pub use ad_core as ad;
pub use deq;
pub use implicit;
pub use metalearn;
pub use neuralode;

/// The names most programs need, in one import: `use diffprog::prelude::*;`.
pub mod prelude {
    pub use ad_core::prelude::*;
}
