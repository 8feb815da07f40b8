//! The name of a solver method, without its options: used by the stats and the errors,
//! below both (it imports nothing of the crate).

use serde::{Deserialize, Serialize};

/// The name of a [`Method`](super::Method), without its options (used in errors and stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MethodKind {
    /// `Method::Picard`.
    Picard,
    /// `Method::Anderson`.
    Anderson,
    /// `Method::Broyden`.
    Broyden,
}
