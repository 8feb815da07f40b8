//! Record once, many products: a function recorded at a point gives vector-Jacobian and
//! Jacobian-vector products there by replaying the tape, without re-evaluating it.

use nalgebra::DMatrix;

use crate::error::{AdError, check_finite};
use crate::matrix::{MatOps, MatVar, assert_same_shape};
use crate::sweep::Seeds;
use crate::tape::Tape;

/// A function of matrix blocks recorded at one point: [`Recording::vjp`] is one reverse
/// sweep, [`Recording::jvp`] one forward sweep over the same records, as many times as
/// needed (e.g. the products of a Krylov solve).
///
/// A `Recording` owns a [`Tape`] scope: sweep it while it is the innermost scope (opening
/// another `Tape` meanwhile is fine once that one has ended).
///
/// ```
/// use ad_core::{MatOps, Recording};
/// use nalgebra::DMatrix;
/// // F(W, x) = tanh(W x), recorded at one point
/// let w = DMatrix::from_row_slice(2, 2, &[0.5, -0.3, 0.2, 0.1]);
/// let x = DMatrix::from_column_slice(2, 1, &[1.0, 2.0]);
/// let rec = Recording::new(&[w, x], |p| vec![p[0].matmul(&p[1]).tanh()]).unwrap();
/// let u = DMatrix::from_column_slice(2, 1, &[1.0, 0.0]);
/// let bars = rec.vjp(&[u.clone()]).unwrap();            // one reverse sweep
/// let dots = rec.jvp(&[DMatrix::zeros(2, 2), DMatrix::from_column_slice(2, 1, &[1.0, 0.0])])
///     .unwrap();                                          // one forward sweep
/// // <vjp(u), v> == <u, jvp(v)> with v = (0, e1)
/// assert!((bars[1][0] - u.dot(&dots[0])).abs() < 1e-15);
/// ```
pub struct Recording {
    inputs: Vec<MatVar>,
    outputs: Vec<MatVar>,
    tape: Tape,
}

impl Recording {
    /// Record `f` at the input blocks `at` (copied onto a new tape as variables).
    ///
    /// # Errors
    /// [`AdError::NonFinite`] naming the first NaN or infinite entry of `at`.
    pub fn new(
        at: &[DMatrix<f64>],
        f: impl FnOnce(&[MatVar]) -> Vec<MatVar>,
    ) -> Result<Recording, AdError> {
        for m in at {
            check_finite("recording point (input blocks)", m.as_slice())?;
        }
        let tape = Tape::new();
        let inputs: Vec<MatVar> = at.iter().map(|m| tape.mat_var_copy(m)).collect();
        let outputs = f(&inputs);
        Ok(Recording {
            inputs,
            outputs,
            tape,
        })
    }

    /// The input blocks' shapes.
    pub fn input_shapes(&self) -> Vec<(usize, usize)> {
        self.inputs.iter().map(MatOps::shape).collect()
    }

    /// The output blocks' shapes.
    pub fn output_shapes(&self) -> Vec<(usize, usize)> {
        self.outputs.iter().map(MatOps::shape).collect()
    }

    /// The output values at the recorded point.
    pub fn outputs(&self) -> Vec<DMatrix<f64>> {
        self.outputs.iter().map(MatOps::value).collect()
    }

    /// The vector-Jacobian product: input adjoints from output cotangents `out_bar` (one
    /// per output block, same shapes; panics otherwise). One reverse sweep.
    pub fn vjp(&self, out_bar: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, AdError> {
        check_blocks("Recording::vjp", &self.output_shapes(), out_bar);
        for u in out_bar {
            check_finite("cotangents out_bar", u.as_slice())?;
        }
        let mut seeds = Seeds::new();
        for (y, u) in self.outputs.iter().zip(out_bar) {
            seeds = seeds.mat(y, u.clone());
        }
        let mut g = self.tape.backward(&seeds)?;
        Ok(self.inputs.iter().map(|x| g.take_mat(x)).collect())
    }

    /// The Jacobian-vector product: output tangents from input tangents `in_dot` (one per
    /// input block, same shapes; panics otherwise). One forward sweep.
    pub fn jvp(&self, in_dot: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, AdError> {
        check_blocks("Recording::jvp", &self.input_shapes(), in_dot);
        for v in in_dot {
            check_finite("tangents in_dot", v.as_slice())?;
        }
        let mut seeds = Seeds::new();
        for (x, v) in self.inputs.iter().zip(in_dot) {
            seeds = seeds.mat(x, v.clone());
        }
        let t = self.tape.forward(&seeds)?;
        Ok(self.outputs.iter().map(|y| t.of_mat(y)).collect())
    }

    /// `k` VJPs at once. `out_bars[j]` holds the cotangents of output block `j` as the
    /// columns of an `(entries of block j) x k` matrix (each column the block flattened
    /// column-major); the result holds, per input block, an `(entries) x k` matrix of
    /// adjoints the same way: `J^T U` for the stacked Jacobian `J`. Runs one reverse sweep
    /// per column (not yet a batched sweep).
    pub fn vjp_batch(&self, out_bars: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, AdError> {
        batch(&self.output_shapes(), &self.input_shapes(), out_bars, |u| {
            self.vjp(u)
        })
    }

    /// `k` JVPs at once, stacked as in [`Recording::vjp_batch`]: per output block an
    /// `(entries) x k` matrix `J V`. Runs one forward sweep per column.
    pub fn jvp_batch(&self, in_dots: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, AdError> {
        batch(&self.input_shapes(), &self.output_shapes(), in_dots, |v| {
            self.jvp(v)
        })
    }
}

/// Panic unless `blocks` has the given shapes (a programmer error).
#[track_caller]
fn check_blocks(what: &str, shapes: &[(usize, usize)], blocks: &[DMatrix<f64>]) {
    assert!(
        shapes.len() == blocks.len(),
        "ad-core: {what}: {} blocks given, {} expected",
        blocks.len(),
        shapes.len()
    );
    for (&s, b) in shapes.iter().zip(blocks) {
        assert_same_shape(what, s, b.shape());
    }
}

/// Apply a product column by column: `stacked[j]` is `(entries of from[j]) x k`.
fn batch(
    from: &[(usize, usize)],
    to: &[(usize, usize)],
    stacked: &[DMatrix<f64>],
    product: impl Fn(&[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, AdError>,
) -> Result<Vec<DMatrix<f64>>, AdError> {
    assert!(
        from.len() == stacked.len(),
        "ad-core: batched product: {} blocks given, {} expected",
        stacked.len(),
        from.len()
    );
    let k = stacked.first().map_or(0, |m| m.ncols());
    for (&(r, c), m) in from.iter().zip(stacked) {
        assert_same_shape("batched product", (r * c, k), m.shape());
    }
    let mut out: Vec<DMatrix<f64>> = to.iter().map(|&(r, c)| DMatrix::zeros(r * c, k)).collect();
    for col in 0..k {
        let dirs: Vec<DMatrix<f64>> = from
            .iter()
            .zip(stacked)
            .map(|(&(r, c), m)| DMatrix::from_column_slice(r, c, m.column(col).as_slice()))
            .collect();
        for (o, res) in out.iter_mut().zip(product(&dirs)?) {
            o.column_mut(col).copy_from_slice(res.as_slice());
        }
    }
    Ok(out)
}
