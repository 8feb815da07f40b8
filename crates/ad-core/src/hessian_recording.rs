//! Record once, many second-order products: a scalar function of matrix blocks recorded at
//! one point gives its gradient, Hessian-vector products (`k` directions in one sweep) and
//! dense Hessian blocks there, by replaying the tape.

use nalgebra::DMatrix;

use crate::Real;
use crate::error::{AdError, check_finite};
use crate::matrix::{MatOps, MatVar, assert_same_shape};
use crate::second_order::hessian_products;
use crate::sweep::Seeds;
use crate::tape::Tape;
use crate::var::Var;

/// A scalar function `L(B_1, .., B_m)` of matrix blocks, recorded once at a point.
///
/// - [`gradient`](HessianRecording::gradient): one reverse sweep;
/// - [`hvp_batch`](HessianRecording::hvp_batch): `H V` for `k` directions in one
///   forward-over-reverse sweep of matrix operations (a dense Hessian block is the
///   batch with `V = I`: [`hessian_columns`](HessianRecording::hessian_columns));
///
/// all by replay: the function itself runs once. Blocks and directions are flattened
/// column-major; `H` is the Hessian over all blocks' entries in order.
///
/// Every op of the matrix tier and scalar arithmetic has a second-order rule; a custom op
/// (`MatOps::custom`) has none, and a second-order sweep through one is an
/// [`AdError::CustomSecondOrder`].
///
/// ```
/// use ad_core::{HessianRecording, MatOps};
/// use nalgebra::DMatrix;
/// // L(w) = sum(tanh(A w)) for a constant A
/// let a = DMatrix::from_row_slice(2, 2, &[1.0, 2.0, -0.5, 0.3]);
/// let w = DMatrix::from_column_slice(2, 1, &[0.1, -0.2]);
/// let rec = HessianRecording::new(&[w], |p| p[0].constant_like(a.clone()).matmul(&p[0]).tanh().sum())
///     .unwrap();
/// let h = rec.hessian_columns(0).unwrap().remove(0);   // 2 x 2, one sweep
/// let z = &a * DMatrix::from_column_slice(2, 1, &[0.1, -0.2]);
/// // H = Aᵀ diag(tanh''(z)) A
/// let d2 = z.map(|v| -2.0 * v.tanh() * (1.0 - v.tanh().powi(2)));
/// let expected = a.transpose() * DMatrix::from_diagonal(&d2.column(0)) * &a;
/// assert!((h - expected).norm() < 1e-14);
/// ```
pub struct HessianRecording {
    inputs: Vec<MatVar>,
    loss: Var,
    tape: Tape,
}

impl HessianRecording {
    /// Record `f` at the blocks `at` (copied onto a new second-order tape as variables).
    ///
    /// # Errors
    /// [`AdError::NonFinite`] naming the first NaN or infinite entry of `at`.
    pub fn new(
        at: &[DMatrix<f64>],
        f: impl FnOnce(&[MatVar]) -> Var,
    ) -> Result<HessianRecording, AdError> {
        for m in at {
            check_finite("recording point (input blocks)", m.as_slice())?;
        }
        let tape = Tape::new_second_order();
        let inputs: Vec<MatVar> = at.iter().map(|m| tape.mat_var_copy(m)).collect();
        let loss = f(&inputs);
        Ok(HessianRecording { inputs, loss, tape })
    }

    /// The function's value at the recorded point.
    pub fn value(&self) -> f64 {
        self.loss.value()
    }

    /// The blocks' shapes.
    pub fn input_shapes(&self) -> Vec<(usize, usize)> {
        self.inputs.iter().map(MatOps::shape).collect()
    }

    /// The gradient, one matrix per block. One reverse sweep.
    pub fn gradient(&self) -> Result<Vec<DMatrix<f64>>, AdError> {
        let mut g = self.tape.backward(&Seeds::new().var(self.loss, 1.0))?;
        Ok(self.inputs.iter().map(|x| g.take_mat(x)).collect())
    }

    /// `H V` for `k` directions at once. `dirs[b]` holds the directions' entries of block
    /// `b` as the columns of an `(entries of b) x k` matrix, or `None` for zero; at least
    /// one block must be given (panics otherwise, or on wrong shapes). Returns, per block,
    /// the `(entries) x k` matrix of `H V`'s entries there. One batched sweep.
    ///
    /// # Errors
    /// [`AdError::NonFinite`] for a non-finite direction; [`AdError::CustomSecondOrder`]
    /// if a custom op lies on the tape.
    pub fn hvp_batch(&self, dirs: &[Option<&DMatrix<f64>>]) -> Result<Vec<DMatrix<f64>>, AdError> {
        self.gradient_and_hvp_batch(dirs).map(|(_, hv)| hv)
    }

    /// The gradient (one matrix per block) and [`hvp_batch`](Self::hvp_batch)'s `H V`
    /// from the same sweep (a Newton step needs both).
    #[allow(clippy::type_complexity)]
    pub fn gradient_and_hvp_batch(
        &self,
        dirs: &[Option<&DMatrix<f64>>],
    ) -> Result<(Vec<DMatrix<f64>>, Vec<DMatrix<f64>>), AdError> {
        assert!(
            dirs.len() == self.inputs.len(),
            "ad-core: HessianRecording::hvp_batch: {} blocks given, {} expected",
            dirs.len(),
            self.inputs.len()
        );
        let k = dirs
            .iter()
            .flatten()
            .map(|d| d.ncols())
            .next()
            .expect("ad-core: HessianRecording::hvp_batch: every direction block is None");
        let mut seeds = Vec::new();
        for (x, d) in self.inputs.iter().zip(dirs) {
            let Some(d) = d else { continue };
            let (r, c) = x.shape();
            assert_same_shape("HessianRecording::hvp_batch", (r * c, k), d.shape());
            check_finite("directions", d.as_slice())?;
            // (entries x k) column-major is (r x c k) column-major: block j = column j.
            let mut seed = crate::tape::arena::take(r, c * k);
            seed.as_mut_slice().copy_from_slice(d.as_slice());
            seeds.push((x.index(), seed));
        }
        let mut so = self
            .tape
            .with_records(|data| hessian_products(data, self.loss, seeds, k))?;
        let mut grads = Vec::with_capacity(self.inputs.len());
        let mut hvs = Vec::with_capacity(self.inputs.len());
        for x in &self.inputs {
            let (r, c) = x.shape();
            let i = x.index() as usize;
            grads.push(so.madj[i].take().unwrap_or_else(|| DMatrix::zeros(r, c)));
            hvs.push(match so.mat_hv[i].take() {
                Some(m) => m.reshape_generic(nalgebra::Dyn(r * c), nalgebra::Dyn(k)),
                None => DMatrix::zeros(r * c, k),
            });
        }
        Ok((grads, hvs))
    }

    /// `H v` for one direction given as one matrix per block (shaped like the blocks).
    pub fn hvp(&self, dirs: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, AdError> {
        let flat: Vec<DMatrix<f64>> = self
            .inputs
            .iter()
            .zip(dirs)
            .map(|(x, d)| {
                assert_same_shape("HessianRecording::hvp", x.shape(), d.shape());
                DMatrix::from_column_slice(d.len(), 1, d.as_slice())
            })
            .collect();
        let refs: Vec<Option<&DMatrix<f64>>> = flat.iter().map(Some).collect();
        let hv = self.hvp_batch(&refs)?;
        Ok(hv
            .into_iter()
            .zip(&self.inputs)
            .map(|(m, x)| DMatrix::from_column_slice(x.nrows(), x.ncols(), m.as_slice()))
            .collect())
    }

    /// The Hessian's columns belonging to block `b`: per block `b'`, the dense
    /// `(entries of b') x (entries of b)` block `H[b', b]`. One batched sweep with `V = I`.
    pub fn hessian_columns(&self, b: usize) -> Result<Vec<DMatrix<f64>>, AdError> {
        let (r, c) = self.inputs[b].shape();
        let eye = DMatrix::identity(r * c, r * c);
        let dirs: Vec<Option<&DMatrix<f64>>> = (0..self.inputs.len())
            .map(|i| (i == b).then_some(&eye))
            .collect();
        self.hvp_batch(&dirs)
    }
}
