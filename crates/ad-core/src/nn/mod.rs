//! Small neural networks on matrix variables: [`Dense`] layers, [`Mlp`]s over one flat
//! parameter vector, seeded [`Init`]ializations, losses, and [`Model`]s saved as JSON.
//!
//! A network is written once against [`MatOps`](crate::MatOps), so the same forward pass
//! runs on plain `DMatrix<f64>`, on the tape ([`MatVar`](crate::MatVar), gradients) and in
//! reverse over forward mode (`DualMat<MatVar>`, Hessian-vector products). Parameters are
//! one flat vector in PyTorch's and JAX's layout, and derivatives come back flat:
//!
//! ```
//! use ad_core::nn::{column, mse, Activation, Init, Mlp};
//! use ad_core::{value_and_grad_mat, MatFn, MatOps};
//! use nalgebra::DMatrix;
//!
//! // A loss written once for every matrix mode: the MSE of a 2-16-1 tanh network.
//! struct Loss { mlp: Mlp, x: DMatrix<f64>, y: DMatrix<f64> }
//! impl MatFn for Loss {
//!     fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
//!         let (x, y) = (p[0].constant_like(self.x.clone()), p[0].constant_like(self.y.clone()));
//!         mse(&self.mlp.forward(&p[0], &x), &y)
//!     }
//! }
//! let mlp = Mlp::new(&[2, 16, 1], Activation::Tanh, Activation::Identity);
//! let theta = mlp.init(Init::XavierUniform, 0); // flat: W1 (row-major), b1, W2, b2
//! let x = DMatrix::from_row_slice(3, 2, &[0.1, -0.4, 0.7, 0.2, -0.5, 0.9]);
//! let y = DMatrix::from_row_slice(3, 1, &[0.3, -0.1, 0.8]);
//! let loss = Loss { mlp, x, y };
//!
//! let (_, g) = value_and_grad_mat(&loss, &[column(&theta)]).unwrap(); // one 65x1 column
//! let k = 5; // W1[2, 1]
//! let at = |d: f64| { let mut t = theta.clone(); t[k] += d; loss.eval(&[column(&t)]) };
//! let fd = (at(1e-6) - at(-1e-6)) / 2e-6;
//! assert!((g[0][k] - fd).abs() < 1e-8);
//! ```
//!
//! [`MseLoss`] packages this loss, with `value_and_grad` and `hvp` over `&[f64]` vectors.
//!
//! Layout: for each layer in order, `W` (`outputs x inputs`, row-major) then `b`
//! (`outputs`). A row-major `W` read column-major is `W^T` (`inputs x outputs`), so on a
//! batch stored one sample per row the layer is `act(X * W^T + b_row)` with `W^T` a slice
//! and a reshape of the flat column, and no transpose node.

mod activation;
mod dense;
mod init;
mod loss;
mod mlp;
mod model;

use nalgebra::DMatrix;

pub use activation::Activation;
pub use dense::{Dense, LayerParams};
pub use init::Init;
pub use loss::{MseLoss, check_batch, mse};
pub use mlp::Mlp;
pub use model::Model;

/// A flat parameter vector as the `n x 1` column the matrix drivers take.
pub fn column(params: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(params.len(), 1, params)
}
