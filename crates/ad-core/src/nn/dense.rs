//! [`Dense`]: one fully connected layer's shape and activation, and its forward pass.

use nalgebra::{DMatrix, DMatrixView};

use super::Activation;
use crate::matrix::MatOps;

/// One fully connected layer: `y = act(x W^T + b)` for a batch `x` stored one sample per
/// row (`batch x inputs`), `W` an `outputs x inputs` matrix (PyTorch's orientation) and `b`
/// a bias of length `outputs`.
///
/// A layer owns no numbers: its `inputs * outputs + outputs` parameters live in a flat
/// vector, `W` first (row-major), then `b`, as in PyTorch's `nn.Linear` and JAX's
/// `ravel_pytree`.
///
/// ```
/// use ad_core::nn::{Activation, Dense};
/// use nalgebra::DMatrix;
/// let layer = Dense::new(2, 1, Activation::Identity);
/// // W = [3, 4] (1x2), b = [0.5]
/// let y = layer.forward_f64(&[3.0, 4.0, 0.5], &DMatrix::from_row_slice(1, 2, &[1.0, 2.0]));
/// assert_eq!(y[(0, 0)], 3.0 + 8.0 + 0.5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Dense {
    /// Input width (columns of the batch it reads).
    pub inputs: usize,
    /// Output width (columns of the batch it writes).
    pub outputs: usize,
    /// The nonlinearity after the affine map.
    pub activation: Activation,
}

/// One layer's parameters as matrices of any mode, cut from a flat parameter column by
/// [`Dense::unflatten`] or [`Mlp::unflatten`](super::Mlp::unflatten).
#[derive(Clone, Debug)]
pub struct LayerParams<M> {
    /// `W^T`, an `inputs x outputs` matrix: the row-major `W` read column-major.
    pub wt: M,
    /// The bias as a `1 x outputs` row.
    pub bias: M,
}

impl Dense {
    /// A layer from `inputs` to `outputs` features.
    pub fn new(inputs: usize, outputs: usize, activation: Activation) -> Dense {
        Dense {
            inputs,
            outputs,
            activation,
        }
    }

    /// Number of weights, `inputs * outputs`.
    pub fn num_weights(&self) -> usize {
        self.inputs * self.outputs
    }

    /// Number of parameters, `inputs * outputs + outputs`.
    pub fn num_params(&self) -> usize {
        self.num_weights() + self.outputs
    }

    /// Cut this layer's block, starting at `offset` of the `n x 1` column `flat`, into
    /// `W^T` and the bias row: one [`column_block`](MatOps::column_block) node each (one
    /// copy), no transpose.
    ///
    /// Panics if the block does not fit in `flat` or `flat` is not a column.
    #[track_caller]
    pub fn unflatten<M: MatOps>(&self, flat: &M, offset: usize) -> LayerParams<M> {
        assert!(
            flat.ncols() == 1,
            "ad-core: Dense::unflatten: parameters must be an n x 1 column, got {}x{}",
            flat.nrows(),
            flat.ncols()
        );
        let (i, o, nw) = (self.inputs, self.outputs, self.num_weights());
        LayerParams {
            wt: flat.column_block(offset, i, o),
            bias: flat.column_block(offset + nw, 1, o),
        }
    }

    /// The layer on a batch of any mode: `act(x * wt + bias_row)`, three nodes
    /// (two for `Identity`).
    ///
    /// Panics (with both shapes) if `x` does not have `inputs` columns.
    #[track_caller]
    pub fn forward<M: MatOps>(&self, p: &LayerParams<M>, x: &M) -> M {
        self.check_batch(x.shape());
        self.activation.apply(&x.matmul(&p.wt).add_row(&p.bias))
    }

    /// The layer on a plain batch, reading this layer's block `params` (length
    /// [`num_params`](Dense::num_params)) in place, without copying it.
    ///
    /// Panics if `params` has the wrong length or `x` the wrong number of columns.
    #[track_caller]
    pub fn forward_f64(&self, params: &[f64], x: &DMatrix<f64>) -> DMatrix<f64> {
        assert!(
            params.len() == self.num_params(),
            "ad-core: Dense::forward_f64: a {}->{} layer needs {} parameters, got {}",
            self.inputs,
            self.outputs,
            self.num_params(),
            params.len()
        );
        self.check_batch(x.shape());
        let nw = self.num_weights();
        let wt = DMatrixView::from_slice(&params[..nw], self.inputs, self.outputs);
        let mut z = x * wt;
        for (mut col, &b) in z.column_iter_mut().zip(&params[nw..]) {
            col.add_scalar_mut(b);
        }
        match self.activation.unary() {
            Some(f) => MatOps::unary(&z, f),
            None => z,
        }
    }

    #[track_caller]
    fn check_batch(&self, shape: (usize, usize)) {
        assert!(
            shape.1 == self.inputs,
            "ad-core: dense layer {}->{}: the batch is {}x{}, expected {} columns",
            self.inputs,
            self.outputs,
            shape.0,
            shape.1,
            self.inputs
        );
    }
}
