//! Losses: [`mse`] in any matrix mode, and [`MseLoss`], an MLP's mean squared error over
//! one batch as a [`MatFn`] of the flat parameter vector.

use nalgebra::DMatrix;

use super::{LayerParams, Mlp};
use crate::drivers::MatFn;
use crate::error::{AdError, check_finite};
use crate::matrix::{DualMat, MatOps, MatVar};
use crate::real::Real;
use crate::tape::Tape;

/// Mean squared error over all entries, `mean((pred - target)^2)`: two tape nodes.
///
/// Panics (with both shapes) if the shapes differ or have no entries (the mean of nothing
/// is undefined; data that may be empty is refused as a typed error by [`MseLoss::new`]
/// and [`check_batch`]).
///
/// ```
/// use ad_core::nn::mse;
/// use nalgebra::DMatrix;
/// let pred = DMatrix::from_row_slice(2, 1, &[1.0, 3.0]);
/// let target = DMatrix::from_row_slice(2, 1, &[0.0, 1.0]);
/// assert_eq!(mse(&pred, &target), (1.0 + 4.0) / 2.0);
/// ```
#[track_caller]
pub fn mse<M: MatOps>(pred: &M, target: &M) -> M::Scalar {
    let (r, c) = pred.shape();
    assert!(
        (r, c) == target.shape() && r * c > 0,
        "ad-core: mse: prediction is {r}x{c} and target is {}x{}: need equal, non-empty shapes",
        target.nrows(),
        target.ncols()
    );
    pred.sub(target).sq_norm() / (r * c) as f64
}

/// An MLP's mean squared error on one batch, as a function of its flat parameter column:
/// `L(theta) = mse(mlp(theta, x), y)`.
///
/// It implements [`MatFn`] with one parameter block, the `num_params x 1` column, so every
/// matrix driver applies and derivatives come back flat; [`value_and_grad`](Self::value_and_grad)
/// and [`hvp`](Self::hvp) wrap the drivers for `&[f64]` parameter vectors (what MAML's
/// inner loop and iMAML's conjugate gradients need).
///
/// ```
/// use ad_core::nn::{Activation, Init, Mlp, MseLoss};
/// use nalgebra::DMatrix;
/// let mlp = Mlp::new(&[1, 8, 1], Activation::Tanh, Activation::Identity);
/// let x = DMatrix::from_column_slice(4, 1, &[-1.0, -0.3, 0.2, 0.9]);
/// let y = x.map(f64::sin);
/// let loss = MseLoss::new(&mlp, &x, &y).unwrap();
/// let theta = mlp.init(Init::XavierUniform, 1);
/// let (l, g) = loss.value_and_grad(&theta).unwrap();
/// // one gradient step lowers the loss
/// let step: Vec<f64> = theta.iter().zip(&g).map(|(t, g)| t - 0.05 * g).collect();
/// assert!(loss.value(&step) < l);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct MseLoss<'a> {
    mlp: &'a Mlp,
    x: &'a DMatrix<f64>,
    y: &'a DMatrix<f64>,
}

/// Check a batch of data before a mean is taken over it: [`AdError::EmptyBatch`] if `x`
/// has no rows, [`AdError::NonFinite`] (with the column-major index and the value) for the
/// first NaN or infinite entry of `x` (`what = "inputs x"`) or `y` (`"targets y"`).
///
/// ```
/// use ad_core::{nn::check_batch, AdError};
/// use nalgebra::DMatrix;
/// let x = DMatrix::from_row_slice(2, 1, &[0.5, f64::NAN]);
/// let y = DMatrix::from_row_slice(2, 1, &[1.0, 2.0]);
/// assert!(matches!(check_batch(&x, &y), Err(AdError::NonFinite { index: 1, .. })));
/// ```
pub fn check_batch(x: &DMatrix<f64>, y: &DMatrix<f64>) -> Result<(), AdError> {
    if x.nrows() == 0 || y.nrows() == 0 {
        return Err(AdError::EmptyBatch {
            what: if x.nrows() == 0 {
                "inputs x"
            } else {
                "targets y"
            },
        });
    }
    check_finite("inputs x", x.as_slice())?;
    check_finite("targets y", y.as_slice())
}

impl<'a> MseLoss<'a> {
    /// The loss of `mlp` on inputs `x` (`batch x inputs`) and targets `y`
    /// (`batch x outputs`), after checking the data once (see [`check_batch`]):
    /// [`AdError::EmptyBatch`] for a batch of no samples, [`AdError::NonFinite`] for a NaN
    /// or infinite input or target.
    ///
    /// Panics (with the shapes) if `x` or `y` does not fit the network or each other.
    #[track_caller]
    pub fn new(
        mlp: &'a Mlp,
        x: &'a DMatrix<f64>,
        y: &'a DMatrix<f64>,
    ) -> Result<MseLoss<'a>, AdError> {
        assert!(
            x.ncols() == mlp.inputs() && y.ncols() == mlp.outputs() && x.nrows() == y.nrows(),
            "ad-core: MseLoss: a {}->{} network cannot fit inputs {}x{} to targets {}x{}",
            mlp.inputs(),
            mlp.outputs(),
            x.nrows(),
            x.ncols(),
            y.nrows(),
            y.ncols()
        );
        check_batch(x, y)?;
        Ok(MseLoss { mlp, x, y })
    }

    /// The network.
    pub fn mlp(&self) -> &'a Mlp {
        self.mlp
    }

    /// The inputs, `batch x inputs`.
    pub fn x(&self) -> &'a DMatrix<f64> {
        self.x
    }

    /// The targets, `batch x outputs`.
    pub fn y(&self) -> &'a DMatrix<f64> {
        self.y
    }

    /// The loss at `params`, in plain `f64` (no tape).
    ///
    /// Panics if `params` has the wrong length.
    #[track_caller]
    pub fn value(&self, params: &[f64]) -> f64 {
        mse(&self.mlp.forward_f64(params, self.x), self.y)
    }

    /// The loss and its gradient with respect to the flat `params` (one recording, one
    /// reverse sweep).
    pub fn value_and_grad(&self, params: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
        self.mlp.check_params(params)?;
        check_finite("parameter matrices", params)?;
        let tape = Tape::new();
        let blocks = self.layer_blocks(params, |r, c, xs| tape.mat_var_from_slice(r, c, xs));
        let y = self.eval_layers(&blocks);
        let g = tape.gradient(y)?;
        Ok((y.value(), self.gather(&blocks, |m| g.wrt_mat_ref(m))))
    }

    /// The Hessian-vector product `H(params) v` over the flat vector, by reverse over
    /// forward mode: exact, no finite differences.
    pub fn hvp(&self, params: &[f64], v: &[f64]) -> Result<Vec<f64>, AdError> {
        self.mlp.check_params(params)?;
        if v.len() != params.len() {
            return Err(AdError::Length {
                what: "direction v",
                expected: params.len(),
                got: v.len(),
            });
        }
        check_finite("parameter matrices", params)?;
        check_finite("direction matrices", v)?;
        let tape = Tape::new();
        let (re, eps) = (
            self.layer_blocks(params, |r, c, xs| tape.mat_var_from_slice(r, c, xs)),
            self.layer_blocks(v, |r, c, xs| tape.constant_mat_from_slice(r, c, xs)),
        );
        let duals: Vec<_> = re
            .iter()
            .zip(&eps)
            .map(|(p, d)| LayerParams {
                wt: DualMat::new(p.wt, d.wt),
                bias: DualMat::new(p.bias, d.bias),
            })
            .collect();
        let y = self.eval_layers(&duals);
        let g = tape.gradient(y.eps)?;
        Ok(self.gather(&re, |m| g.wrt_mat_ref(m)))
    }

    /// The flat vector's blocks as one `W^T` (`inputs x outputs`) and one bias row
    /// (`1 x outputs`) per layer, each made by `mat(rows, cols, entries)`: the layout
    /// [`Mlp::unflatten`] cuts, entered directly as tape leaves. On the tape this skips
    /// `unflatten`'s slice and reshape nodes (two copies of every block forward, two
    /// passes backward: ~10% of a small network's gradient).
    fn layer_blocks<M>(
        &self,
        flat: &[f64],
        mut mat: impl FnMut(usize, usize, &[f64]) -> M,
    ) -> Vec<LayerParams<M>> {
        let mlp = self.mlp;
        (0..mlp.layers().len())
            .map(|l| {
                let d = &mlp.layers()[l];
                LayerParams {
                    wt: mat(d.inputs, d.outputs, &flat[mlp.weight_range(l)]),
                    bias: mat(1, d.outputs, &flat[mlp.bias_range(l)]),
                }
            })
            .collect()
    }

    /// The flat vector of the blocks' adjoints (`adjoint` gives `None` for a zero one).
    fn gather<'g>(
        &self,
        blocks: &[LayerParams<MatVar>],
        adjoint: impl Fn(&MatVar) -> Option<&'g DMatrix<f64>>,
    ) -> Vec<f64> {
        let mut out = vec![0.0; self.mlp.num_params()];
        for (l, b) in blocks.iter().enumerate() {
            for (m, range) in [
                (&b.wt, self.mlp.weight_range(l)),
                (&b.bias, self.mlp.bias_range(l)),
            ] {
                if let Some(a) = adjoint(m) {
                    out[range].copy_from_slice(a.as_slice());
                }
            }
        }
        out
    }

    /// The loss with the parameters given as layer blocks.
    fn eval_layers<M: MatOps>(&self, layers: &[LayerParams<M>]) -> M::Scalar {
        let any = &layers[0].wt;
        let x = any.constant_like(self.x.clone());
        let y = any.constant_like(self.y.clone());
        mse(&self.mlp.forward_layers(layers, &x), &y)
    }
}

impl MatFn for MseLoss<'_> {
    /// `params` must be one block: the flat `num_params x 1` column.
    fn eval<M: MatOps>(&self, params: &[M]) -> M::Scalar {
        assert!(
            params.len() == 1,
            "ad-core: MseLoss: expected one parameter block (the flat column), got {}",
            params.len()
        );
        self.eval_layers(&self.mlp.unflatten(&params[0]))
    }
}
