//! # deq — deep equilibrium layers
//!
//! TODO crate docs.

#![deny(missing_docs)]

pub mod error;
pub mod layer;
pub mod linearization;
pub mod map;
pub mod solvers;

pub use error::DeqError;
pub use layer::{DeqLayer, DeqOptions, DeqOutput};
pub use map::{EquilibriumMap, MonotoneLayer, Scaling, TanhLayer};
