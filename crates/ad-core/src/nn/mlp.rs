//! [`Mlp`]: a stack of dense layers over one flat parameter vector.

use std::ops::Range;

use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut, DVectorView, DVectorViewMut, Dyn};

use super::{Activation, Dense, LayerParams};
use crate::error::AdError;
use crate::matrix::MatOps;

/// A multilayer perceptron: dense layers whose widths chain, with all parameters in ONE
/// flat vector laid out as PyTorch's `parameters()` or JAX's `ravel_pytree` lay them out:
/// for each layer in order, `W` (`outputs x inputs`, row-major), then `b` (`outputs`).
///
/// The architecture holds no numbers, so one `Mlp` serves any number of parameter vectors
/// (MAML's `theta` and every task's adapted `phi`).
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp};
/// use nalgebra::DMatrix;
/// let mlp = Mlp::new(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
/// assert_eq!(mlp.num_params(), 1761);
/// assert_eq!(mlp.weight_range(1), 80..1680); // W2 follows W1 (40) and b1 (40)
/// let theta = mlp.init(Init::HeNormal, 7);
/// let y = mlp.forward_f64(&theta, &DMatrix::from_column_slice(5, 1, &[0.0, 1.0, 2.0, 3.0, 4.0]));
/// assert_eq!(y.shape(), (5, 1));
/// assert_eq!(mlp.weights(&theta, 1)[(2, 3)], theta[80 + 2 * 40 + 3]); // W2[2,3], row-major
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "MlpRepr", into = "MlpRepr")]
pub struct Mlp {
    layers: Vec<Dense>,
    /// `offsets[l]` is where layer `l`'s block starts; the last entry is the total.
    offsets: Vec<usize>,
}

/// What is stored: the layers only (offsets are derived), checked on load.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MlpRepr {
    layers: Vec<Dense>,
}

impl From<Mlp> for MlpRepr {
    fn from(m: Mlp) -> MlpRepr {
        MlpRepr { layers: m.layers }
    }
}

impl TryFrom<MlpRepr> for Mlp {
    type Error = String;
    fn try_from(r: MlpRepr) -> Result<Mlp, String> {
        check_layers(&r.layers)?;
        Ok(Mlp::build(r.layers))
    }
}

/// Why a list of layers is not a network, if it is not.
fn check_layers(layers: &[Dense]) -> Result<(), String> {
    if layers.is_empty() {
        return Err("an MLP needs at least one layer".into());
    }
    for (l, d) in layers.iter().enumerate() {
        if d.inputs == 0 || d.outputs == 0 {
            return Err(format!(
                "layer {l} has a zero width ({}->{})",
                d.inputs, d.outputs
            ));
        }
    }
    let total = layers.iter().try_fold(0usize, |acc, d| {
        d.inputs
            .checked_mul(d.outputs)
            .and_then(|w| w.checked_add(d.outputs))
            .and_then(|n| n.checked_add(acc))
    });
    if total.is_none() {
        return Err("the number of parameters overflows usize".into());
    }
    for (l, w) in layers.windows(2).enumerate() {
        if w[0].outputs != w[1].inputs {
            return Err(format!(
                "layer {l} has {} outputs but layer {} takes {} inputs",
                w[0].outputs,
                l + 1,
                w[1].inputs
            ));
        }
    }
    Ok(())
}

impl Mlp {
    /// A network with the given widths (`widths[0]` inputs, `widths.last()` outputs),
    /// `hidden` after every layer but the last and `output` after the last.
    ///
    /// `Mlp::new(&[1, 40, 40, 1], Activation::Relu, Activation::Identity)` is the usual
    /// regression network. Panics if fewer than two widths are given or one is zero.
    #[track_caller]
    pub fn new(widths: &[usize], hidden: Activation, output: Activation) -> Mlp {
        assert!(
            widths.len() >= 2,
            "ad-core: Mlp::new: need at least two widths (inputs and outputs), got {widths:?}"
        );
        let n = widths.len() - 1;
        let layers = (0..n)
            .map(|l| {
                let act = if l + 1 == n { output } else { hidden };
                Dense::new(widths[l], widths[l + 1], act)
            })
            .collect();
        Mlp::from_layers(layers)
    }

    /// A network from explicit layers (for a different activation per layer).
    ///
    /// Panics unless there is at least one layer, no width is zero and each layer's
    /// `outputs` equals the next layer's `inputs`.
    #[track_caller]
    pub fn from_layers(layers: Vec<Dense>) -> Mlp {
        if let Err(e) = check_layers(&layers) {
            panic!("ad-core: Mlp::from_layers: {e}");
        }
        Mlp::build(layers)
    }

    fn build(layers: Vec<Dense>) -> Mlp {
        let mut offsets = Vec::with_capacity(layers.len() + 1);
        let mut off = 0;
        offsets.push(0);
        for d in &layers {
            off += d.num_params();
            offsets.push(off);
        }
        Mlp { layers, offsets }
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[Dense] {
        &self.layers
    }

    /// Number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Input width.
    pub fn inputs(&self) -> usize {
        self.layers[0].inputs
    }

    /// Output width.
    pub fn outputs(&self) -> usize {
        self.layers[self.layers.len() - 1].outputs
    }

    /// All widths, inputs first: `[1, 40, 40, 1]` for a 1-40-40-1 network.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.inputs())
            .chain(self.layers.iter().map(|d| d.outputs))
            .collect()
    }

    /// Length of the flat parameter vector.
    pub fn num_params(&self) -> usize {
        self.offsets[self.layers.len()]
    }

    /// Where layer `layer`'s block (its `W`, then its `b`) starts in the flat vector.
    #[track_caller]
    pub fn offset(&self, layer: usize) -> usize {
        self.check_layer(layer);
        self.offsets[layer]
    }

    /// The positions of layer `layer`'s whole block in the flat vector.
    #[track_caller]
    pub fn layer_range(&self, layer: usize) -> Range<usize> {
        self.check_layer(layer);
        self.offsets[layer]..self.offsets[layer + 1]
    }

    /// The positions of layer `layer`'s `W` (row-major) in the flat vector.
    #[track_caller]
    pub fn weight_range(&self, layer: usize) -> Range<usize> {
        let start = self.offset(layer);
        start..start + self.layers[layer].num_weights()
    }

    /// The positions of layer `layer`'s bias in the flat vector.
    #[track_caller]
    pub fn bias_range(&self, layer: usize) -> Range<usize> {
        self.weight_range(layer).end..self.offsets[layer + 1]
    }

    /// Reject a parameter vector of the wrong length with [`AdError::Length`] (for vectors
    /// that come from user data; the other methods panic on a wrong length instead).
    pub fn check_params(&self, params: &[f64]) -> Result<(), AdError> {
        if params.len() == self.num_params() {
            Ok(())
        } else {
            Err(AdError::Length {
                what: "MLP parameter vector",
                expected: self.num_params(),
                got: params.len(),
            })
        }
    }

    /// Layer `layer`'s `W` as an `outputs x inputs` view into `params` (PyTorch's
    /// orientation; strided, no copy).
    #[track_caller]
    pub fn weights<'a>(&self, params: &'a [f64], layer: usize) -> DMatrixView<'a, f64, Dyn, Dyn> {
        self.assert_len("weights", params.len());
        let data = &params[self.weight_range(layer)];
        let d = self.layers[layer];
        DMatrixView::from_slice_with_strides(data, d.outputs, d.inputs, d.inputs, 1)
    }

    /// Layer `layer`'s `W` as a mutable `outputs x inputs` view into `params`.
    #[track_caller]
    pub fn weights_mut<'a>(
        &self,
        params: &'a mut [f64],
        layer: usize,
    ) -> DMatrixViewMut<'a, f64, Dyn, Dyn> {
        self.assert_len("weights_mut", params.len());
        let data = &mut params[self.weight_range(layer)];
        let d = self.layers[layer];
        DMatrixViewMut::from_slice_with_strides_mut(data, d.outputs, d.inputs, d.inputs, 1)
    }

    /// Layer `layer`'s bias as a view into `params`.
    #[track_caller]
    pub fn bias<'a>(&self, params: &'a [f64], layer: usize) -> DVectorView<'a, f64> {
        self.assert_len("bias", params.len());
        let data = &params[self.bias_range(layer)];
        DVectorView::from_slice(data, data.len())
    }

    /// Layer `layer`'s bias as a mutable view into `params`.
    #[track_caller]
    pub fn bias_mut<'a>(&self, params: &'a mut [f64], layer: usize) -> DVectorViewMut<'a, f64> {
        self.assert_len("bias_mut", params.len());
        let data = &mut params[self.bias_range(layer)];
        let n = data.len();
        DVectorViewMut::from_slice(data, n)
    }

    /// Cut a flat `num_params x 1` parameter column of any mode into per-layer `W^T` and
    /// bias-row matrices (two nodes per layer, one [`MatOps::column_block`] each). The
    /// gradient with respect to `flat` then comes back as one flat column.
    ///
    /// Panics if `flat` is not a `num_params x 1` column.
    #[track_caller]
    pub fn unflatten<M: MatOps>(&self, flat: &M) -> Vec<LayerParams<M>> {
        let (r, c) = flat.shape();
        assert!(
            r == self.num_params() && c == 1,
            "ad-core: Mlp: parameters must be a {}x1 column for widths {:?}, got {r}x{c}",
            self.num_params(),
            self.widths()
        );
        self.layers
            .iter()
            .zip(&self.offsets)
            .map(|(d, &off)| d.unflatten(flat, off))
            .collect()
    }

    /// The network on a batch (`batch x inputs`, one sample per row) in any matrix mode,
    /// with `params` the flat `num_params x 1` column; returns `batch x outputs`.
    ///
    /// With `params` a [`MatVar`](crate::MatVar) the gradient is flat; with a
    /// `DualMat<MatVar>` a reverse sweep of the tangent gives Hessian-vector products over
    /// the flat vector (see [`hvp_mat`](crate::hvp_mat)). To apply the same parameters to
    /// several batches, [`unflatten`](Mlp::unflatten) once and call
    /// [`forward_layers`](Mlp::forward_layers).
    #[track_caller]
    pub fn forward<M: MatOps>(&self, params: &M, x: &M) -> M {
        self.forward_layers(&self.unflatten(params), x)
    }

    /// The network on a batch, with parameters already cut by [`unflatten`](Mlp::unflatten).
    #[track_caller]
    pub fn forward_layers<M: MatOps>(&self, params: &[LayerParams<M>], x: &M) -> M {
        assert!(
            params.len() == self.num_layers(),
            "ad-core: Mlp::forward_layers: {} layers of parameters for a {}-layer network",
            params.len(),
            self.num_layers()
        );
        let mut h = self.layers[0].forward(&params[0], x);
        for (d, p) in self.layers.iter().zip(params).skip(1) {
            h = d.forward(p, &h);
        }
        h
    }

    /// The network on a plain batch, reading the flat `params` in place (no copies, no
    /// tape).
    ///
    /// Panics if `params` has the wrong length (use [`check_params`](Mlp::check_params)
    /// first on untrusted data) or `x` the wrong number of columns.
    #[track_caller]
    pub fn forward_f64(&self, params: &[f64], x: &DMatrix<f64>) -> DMatrix<f64> {
        self.assert_len("forward_f64", params.len());
        let block = |l: usize| &params[self.offsets[l]..self.offsets[l + 1]];
        let mut h = self.layers[0].forward_f64(block(0), x);
        for l in 1..self.num_layers() {
            h = self.layers[l].forward_f64(block(l), &h);
        }
        h
    }

    #[track_caller]
    fn check_layer(&self, layer: usize) {
        assert!(
            layer < self.num_layers(),
            "ad-core: Mlp: layer {layer} out of range for a {}-layer network",
            self.num_layers()
        );
    }

    #[track_caller]
    fn assert_len(&self, what: &str, len: usize) {
        assert!(
            len == self.num_params(),
            "ad-core: Mlp::{what}: widths {:?} need {} parameters, got {len}",
            self.widths(),
            self.num_params()
        );
    }
}
