//! [`Activation`]: the elementwise nonlinearity after a dense layer.

use crate::matrix::{MatOps, Unary};
use crate::real::Real;

/// The elementwise function applied after a layer's affine map.
///
/// Every activation other than [`Identity`](Activation::Identity) is one [`Unary`] node,
/// so it costs one tape node per layer in every matrix mode.
///
/// ```
/// use ad_core::nn::Activation;
/// use nalgebra::DMatrix;
/// let z = DMatrix::from_row_slice(1, 3, &[-1.0, 0.0, 2.0]);
/// assert_eq!(Activation::Relu.apply(&z), DMatrix::from_row_slice(1, 3, &[0.0, 0.0, 2.0]));
/// assert_eq!(Activation::Identity.apply(&z), z);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Activation {
    /// No nonlinearity (a linear output layer).
    Identity,
    /// tanh(x).
    Tanh,
    /// max(x, 0); derivative 0 at 0 (as in PyTorch and JAX).
    Relu,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// ln(1 + e^x).
    Softplus,
}

impl Activation {
    /// Every activation, for tests and tables.
    pub const ALL: [Activation; 5] = [
        Activation::Identity,
        Activation::Tanh,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Softplus,
    ];

    /// The elementwise function, or `None` for [`Identity`](Activation::Identity).
    pub fn unary(self) -> Option<Unary> {
        match self {
            Activation::Identity => None,
            Activation::Tanh => Some(Unary::Tanh),
            Activation::Relu => Some(Unary::Relu),
            Activation::Sigmoid => Some(Unary::Sigmoid),
            Activation::Softplus => Some(Unary::Softplus),
        }
    }

    /// Apply to every entry of a matrix of any mode (`Identity` records nothing).
    pub fn apply<M: MatOps>(self, z: &M) -> M {
        match self.unary() {
            Some(f) => z.unary(f),
            None => z.clone(),
        }
    }

    /// Apply to one scalar of any mode.
    pub fn apply_scalar<S: Real>(self, z: S) -> S {
        match self.unary() {
            Some(f) => f.apply(z),
            None => z,
        }
    }
}
