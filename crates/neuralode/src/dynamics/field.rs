//! [`VectorField`]: f written once against ad-core's `MatOps`; [`TapeDynamics`] gives it
//! values (plain `DMatrix`), VJPs (a tape per call) and JVPs (forward mode).

use ad_core::{DualMat, MatOps, MatVar, Recording, Tape};
use nalgebra::DMatrix;

use super::Dynamics;

/// A vector field written once against [`MatOps`]: `h` is a `dim x 1` column, `theta` the
/// parameter blocks (shapes from [`param_shapes`](VectorField::param_shapes)); returns
/// the `dim x 1` derivative. The time enters as a constant.
///
/// ```
/// use ad_core::MatOps;
/// use neuralode::{Dynamics, TapeDynamics, VectorField};
/// /// h' = A h
/// struct Linear(usize);
/// impl VectorField for Linear {
///     fn dim(&self) -> usize { self.0 }
///     fn param_shapes(&self) -> Vec<(usize, usize)> { vec![(self.0, self.0)] }
///     fn eval<M: MatOps>(&self, _t: f64, h: &M, theta: &[M]) -> M { theta[0].matmul(h) }
/// }
/// let f = TapeDynamics::new(Linear(2));
/// let a = [0.0, 1.0, -1.0, 0.0]; // column-major: A = [[0, -1], [1, 0]]
/// let (mut out, mut hb, mut tb) = ([0.0; 2], [0.0; 2], [0.0; 4]);
/// f.vjp(0.0, &[1.0, 2.0], &a, &[1.0, 0.0], &mut out, &mut hb, &mut tb);
/// assert_eq!(out, [-2.0, 1.0]);
/// assert_eq!(hb, [0.0, -1.0]);            // A^T e1
/// assert_eq!(tb, [1.0, 0.0, 2.0, 0.0]);   // e1 h^T, column-major
/// ```
pub trait VectorField {
    /// Length of the state.
    fn dim(&self) -> usize;
    /// Shapes of the parameter blocks; the flat vector is their column-major
    /// concatenation.
    fn param_shapes(&self) -> Vec<(usize, usize)>;
    /// f(t, h; θ) in any matrix mode.
    fn eval<M: MatOps>(&self, t: f64, h: &M, theta: &[M]) -> M;
}

/// How [`TapeDynamics`] computes a VJP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VjpMode {
    /// A fresh [`Tape`], the scalar ⟨a, f⟩, one reverse sweep.
    #[default]
    FreshTape,
    /// ad-core's [`Recording`] at the point, one `vjp` replay (record-once products; at a
    /// new point each time it is also one recording per call).
    Recording,
}

/// The [`Dynamics`] of a [`VectorField`], derivatives by ad-core.
#[derive(Clone, Debug)]
pub struct TapeDynamics<F> {
    field: F,
    mode: VjpMode,
    shapes: Vec<(usize, usize)>,
}

impl<F: VectorField> TapeDynamics<F> {
    /// VJPs by a fresh tape per call.
    pub fn new(field: F) -> TapeDynamics<F> {
        let shapes = field.param_shapes();
        TapeDynamics {
            field,
            mode: VjpMode::FreshTape,
            shapes,
        }
    }

    /// Choose how VJPs are computed.
    #[must_use]
    pub fn with_mode(mut self, mode: VjpMode) -> Self {
        self.mode = mode;
        self
    }

    /// The field.
    pub fn field(&self) -> &F {
        &self.field
    }

    /// Cut a flat parameter vector into blocks.
    pub fn blocks(&self, theta: &[f64]) -> Vec<DMatrix<f64>> {
        let mut off = 0;
        self.shapes
            .iter()
            .map(|&(r, c)| {
                let m = DMatrix::from_column_slice(r, c, &theta[off..off + r * c]);
                off += r * c;
                m
            })
            .collect()
    }
}

fn column(x: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(x.len(), 1, x)
}

fn write_blocks(blocks: &[DMatrix<f64>], out: &mut [f64]) {
    let mut off = 0;
    for b in blocks {
        out[off..off + b.len()].copy_from_slice(b.as_slice());
        off += b.len();
    }
}

/// A field must return a `dim x 1` column, like the state it was given: a programmer error
/// otherwise, reported with both shapes.
#[track_caller]
fn check_output_shape(got: (usize, usize), dim: usize) {
    assert!(
        got == (dim, 1),
        "neuralode: VectorField::eval returned a {}x{} matrix for a state of {dim} entries \
         (expected {dim}x1)",
        got.0,
        got.1
    );
}

impl<F: VectorField> Dynamics for TapeDynamics<F> {
    fn dim(&self) -> usize {
        self.field.dim()
    }

    fn num_params(&self) -> usize {
        self.shapes.iter().map(|(r, c)| r * c).sum()
    }

    fn eval(&self, t: f64, h: &[f64], theta: &[f64], out: &mut [f64]) {
        let y = self.field.eval(t, &column(h), &self.blocks(theta));
        check_output_shape(y.shape(), h.len());
        out.copy_from_slice(y.as_slice());
    }

    fn vjp(
        &self,
        t: f64,
        h: &[f64],
        theta: &[f64],
        a: &[f64],
        f_out: &mut [f64],
        h_bar: &mut [f64],
        theta_bar: &mut [f64],
    ) {
        // a diverging solve can probe non-finite stages: answer NaN (the step is then
        // rejected, and the solver reports the failure) instead of asking the tape
        if h.iter().chain(a).chain(theta).any(|v| !v.is_finite()) {
            for out in [&mut *f_out, &mut *h_bar, &mut *theta_bar] {
                out.iter_mut().for_each(|v| *v = f64::NAN);
            }
            return;
        }
        let blocks = self.blocks(theta);
        match self.mode {
            VjpMode::FreshTape => {
                let tape = Tape::new();
                let hv = tape.mat_var(column(h));
                let th: Vec<MatVar> = blocks.into_iter().map(|b| tape.mat_var(b)).collect();
                let y = self.field.eval(t, &hv, &th);
                check_output_shape(y.shape(), h.len());
                f_out.copy_from_slice(y.value().as_slice());
                let s = y.dot(&hv.constant_like(column(a)));
                // plain matrix ops at finite points: the sweep has nothing that can fail
                let g = tape
                    .gradient(s)
                    .expect("neuralode: the sweep of a field's VJP failed");
                h_bar.copy_from_slice(g.wrt_mat(&hv).as_slice());
                let gs: Vec<DMatrix<f64>> = th.iter().map(|m| g.wrt_mat(m)).collect();
                write_blocks(&gs, theta_bar);
            }
            VjpMode::Recording => {
                let mut at = vec![column(h)];
                at.extend(blocks);
                let rec = Recording::new(&at, |v| vec![self.field.eval(t, &v[0], &v[1..])])
                    .expect("neuralode: the solvers pass finite points");
                check_output_shape(rec.outputs()[0].shape(), h.len());
                f_out.copy_from_slice(rec.outputs()[0].as_slice());
                let bars = rec
                    .vjp(&[column(a)])
                    .expect("neuralode: the solvers pass finite cotangents");
                h_bar.copy_from_slice(bars[0].as_slice());
                write_blocks(&bars[1..], theta_bar);
            }
        }
    }

    fn jvp(&self, t: f64, h: &[f64], theta: &[f64], v: &[f64], theta_dot: &[f64], out: &mut [f64]) {
        let hd = DualMat::new(column(h), column(v));
        let th: Vec<DualMat<DMatrix<f64>>> = self
            .blocks(theta)
            .into_iter()
            .zip(self.blocks(theta_dot))
            .map(|(x, d)| DualMat::new(x, d))
            .collect();
        let y = self.field.eval(t, &hd, &th);
        check_output_shape(y.eps.shape(), h.len());
        out.copy_from_slice(y.eps.as_slice());
    }
}

impl<F: VectorField + ?Sized> VectorField for &F {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn param_shapes(&self) -> Vec<(usize, usize)> {
        (**self).param_shapes()
    }
    fn eval<M: MatOps>(&self, t: f64, h: &M, theta: &[M]) -> M {
        (**self).eval(t, h, theta)
    }
}
