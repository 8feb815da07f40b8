//! The linearization of an optimality condition at a solution: the four products the
//! implicit function theorem needs, matrix-free.
//!
//! With A = ∂F/∂x (n x n) and B = ∂F/∂θ (n x p) at (x*, θ):
//! - reverse mode: θ̄ = −Bᵀ w where Aᵀ w = x̄;
//! - forward mode: ẋ = −A⁻¹ B θ̇.
//!
//! Products act on flat vectors: x (any shape) is flattened column-major to n entries, and
//! the parameter blocks are flattened column-major and concatenated in order to p entries.
//! [`Shapes`] converts between the flat vectors and the matrices.

use std::marker::PhantomData;

use ad_core::{AdError, HessianRecording, MatOps, MatVar, Seeds, Tape};
use nalgebra::DMatrix;

use crate::error::ImplicitError;
use crate::problem::{Objective, RootCondition};

/// The shapes of the solution x and of the parameter blocks θ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shapes {
    /// Shape of x.
    pub x: (usize, usize),
    /// Shape of each parameter block, in order.
    pub theta: Vec<(usize, usize)>,
}

impl Shapes {
    /// The shapes of the given point.
    pub fn of(x: &DMatrix<f64>, theta: &[DMatrix<f64>]) -> Shapes {
        Shapes {
            x: x.shape(),
            theta: theta.iter().map(|t| t.shape()).collect(),
        }
    }

    /// A column x of length n and one column block θ of length p.
    pub fn columns(n: usize, p: usize) -> Shapes {
        Shapes {
            x: (n, 1),
            theta: vec![(p, 1)],
        }
    }

    /// n: the number of entries of x.
    pub fn n(&self) -> usize {
        self.x.0 * self.x.1
    }

    /// p: the number of entries of all parameter blocks together.
    pub fn p(&self) -> usize {
        self.theta.iter().map(|(r, c)| r * c).sum()
    }

    /// A flat vector of n entries as a matrix of x's shape; panics on a wrong length.
    pub fn x_matrix(&self, flat: &[f64]) -> DMatrix<f64> {
        DMatrix::from_column_slice(self.x.0, self.x.1, flat)
    }

    /// A flat vector of p entries cut into the parameter blocks; panics on a wrong length.
    pub fn theta_blocks(&self, flat: &[f64]) -> Vec<DMatrix<f64>> {
        assert_eq!(
            flat.len(),
            self.p(),
            "implicit: {} entries cannot be cut into blocks {:?}",
            flat.len(),
            self.theta
        );
        let mut start = 0;
        self.theta
            .iter()
            .map(|&(r, c)| {
                let block = DMatrix::from_column_slice(r, c, &flat[start..start + r * c]);
                start += r * c;
                block
            })
            .collect()
    }

    /// Blocks flattened column-major and concatenated.
    pub fn flatten(blocks: &[DMatrix<f64>]) -> Vec<f64> {
        blocks.iter().flat_map(|b| b.iter().copied()).collect()
    }
}

/// Matrix-free products with the blocks of the Jacobian of F at a point.
///
/// Products act on flat vectors: x flattened column-major to n entries, the parameter
/// blocks flattened column-major and concatenated to p entries (see [`Shapes`]).
pub trait Linearization {
    /// `(n, p)`: numbers of entries of x and of θ.
    fn dims(&self) -> (usize, usize);
    /// Shapes of x and of the parameter blocks (default: a column x and one column θ).
    fn shapes(&self) -> Shapes {
        let (n, p) = self.dims();
        Shapes::columns(n, p)
    }
    /// F(x, θ) at the linearization point (the optimality residual), flattened.
    fn residual(&self) -> &[f64];
    /// True when A is symmetric (argmin problems: A is a Hessian).
    fn symmetric(&self) -> bool;
    /// The sign σ of the fixed-point map f(x) = x + σF(x) that the phantom and
    /// Jacobian-free backward passes iterate: +1 for roots and fixed points (then
    /// F = f − x exactly), −1 for argmins (f is a unit gradient step x − ∇ₓL). The default
    /// is −1 when A is symmetric, +1 otherwise.
    fn map_sign(&self) -> f64 {
        if self.symmetric() { -1.0 } else { 1.0 }
    }
    /// A v.
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError>;
    /// Aᵀ u.
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError>;
    /// B w.
    fn b_mul(&self, w: &[f64]) -> Result<Vec<f64>, AdError>;
    /// Bᵀ u.
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError>;
    /// `(Aᵀ u, Bᵀ u)`; override when one pass gives both (the default makes two).
    fn transpose_products(&self, u: &[f64]) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        Ok((self.at_mul(u)?, self.bt_mul(u)?))
    }
    /// Whether [`Linearization::assemble`] is cheap: the dense A and Bᵀ in one batched
    /// sweep (recorded argmin problems). Then `Implicit` factors A for small systems
    /// (see [`IftOptions::dense_up_to`](crate::IftOptions::dense_up_to)). Default: false.
    fn assembles(&self) -> bool {
        false
    }
    /// A (n x n) and Bᵀ (p x n) as dense matrices. The default builds them column by
    /// column, n products with A and n with Bᵀ.
    fn assemble(&self) -> Result<(DMatrix<f64>, DMatrix<f64>), AdError> {
        let (n, p) = self.dims();
        let mut a = DMatrix::zeros(n, n);
        let mut bt = DMatrix::zeros(p, n);
        let mut e = vec![0.0; n];
        for i in 0..n {
            e[i] = 1.0;
            a.column_mut(i).copy_from_slice(&self.a_mul(&e)?);
            bt.column_mut(i).copy_from_slice(&self.bt_mul(&e)?);
            e[i] = 0.0;
        }
        Ok((a, bt))
    }
}

/// Reject a residual whose shape differs from x's.
fn check_residual_shape(got: (usize, usize), x: (usize, usize)) -> Result<(), ImplicitError> {
    if got == x {
        Ok(())
    } else {
        Err(ImplicitError::Shape {
            what: "residual F(x, theta) (must have the shape of x)",
            expected: x,
            got,
        })
    }
}

/// A root condition recorded once on a tape at (x*, θ); every product is one sweep over
/// that recording (reverse for Aᵀu and Bᵀu together, forward for Av and Bw). The user's
/// residual runs exactly once, however many products are asked for.
pub struct RecordedRoot {
    x: MatVar,
    theta: Vec<MatVar>,
    f: MatVar,
    residual: Vec<f64>,
    shapes: Shapes,
    tape: Tape,
}

impl RecordedRoot {
    /// Record F(x, θ) once. Opens a tape that lives as long as the returned value: drop it
    /// before using variables of an enclosing tape again.
    ///
    /// # Errors
    /// [`Shape`](ImplicitError::Shape) if F's output is not shaped like x.
    pub fn new<C: RootCondition + ?Sized>(
        condition: &C,
        x: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
    ) -> Result<RecordedRoot, ImplicitError> {
        let tape = Tape::new();
        let xv = tape.mat_var(x.clone());
        let tv: Vec<MatVar> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
        let f = condition.residual(&xv, &tv);
        check_residual_shape(f.shape(), x.shape())?;
        let residual = f.value().as_slice().to_vec();
        Ok(RecordedRoot {
            x: xv,
            theta: tv,
            f,
            residual,
            shapes: Shapes::of(x, theta),
            tape,
        })
    }

    fn forward_product(&self, seed: Seeds) -> Result<Vec<f64>, AdError> {
        let mut t = self.tape.forward(&seed)?;
        Ok(t.take_mat(&self.f).data.into())
    }
}

impl Linearization for RecordedRoot {
    fn dims(&self) -> (usize, usize) {
        (self.shapes.n(), self.shapes.p())
    }
    fn shapes(&self) -> Shapes {
        self.shapes.clone()
    }
    fn residual(&self) -> &[f64] {
        &self.residual
    }
    fn symmetric(&self) -> bool {
        false
    }
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        self.forward_product(Seeds::new().mat(&self.x, self.shapes.x_matrix(v)))
    }
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        let mut g = self
            .tape
            .backward(&Seeds::new().mat(&self.f, self.shapes.x_matrix(u)))?;
        Ok(g.take_mat(&self.x).data.into())
    }
    fn b_mul(&self, w: &[f64]) -> Result<Vec<f64>, AdError> {
        let seeds = self
            .theta
            .iter()
            .zip(self.shapes.theta_blocks(w))
            .fold(Seeds::new(), |s, (t, d)| s.mat(t, d));
        self.forward_product(seeds)
    }
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.transpose_products(u).map(|(_, b)| b)
    }
    fn transpose_products(&self, u: &[f64]) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        let mut g = self
            .tape
            .backward(&Seeds::new().mat(&self.f, self.shapes.x_matrix(u)))?;
        let mut bt = Vec::with_capacity(self.shapes.p());
        for t in &self.theta {
            bt.extend_from_slice(g.take_mat(t).as_slice());
        }
        Ok((g.take_mat(&self.x).data.into(), bt))
    }
}

/// The linearization of F = ∇ₓL for an argmin problem: A = ∇ₓₓ²L (symmetric) and
/// B = ∇ₓθ²L, exact, recorded once.
///
/// L is recorded once at (x*, θ) on a second-order tape ([`HessianRecording`]); every
/// product replays it (one forward-over-reverse sweep; Aᵀu and Bᵀu come from the same
/// sweep), and [`Linearization::assemble`] builds the dense A and Bᵀ in one batched sweep
/// of matrix operations. The objective runs once, however many products are asked for.
pub struct ArgminHessian<'a, O: ?Sized> {
    recording: HessianRecording,
    shapes: Shapes,
    gradient: Vec<f64>,
    _objective: PhantomData<&'a O>,
}

impl<'a, O: Objective + ?Sized> ArgminHessian<'a, O> {
    /// Linearize at (x*, θ): records L and computes ∇ₓL there (the optimality residual).
    pub fn new(
        objective: &'a O,
        x: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
    ) -> Result<Self, AdError> {
        let mut lin = Self::products_only(objective, x, theta)?;
        let g = lin.recording.gradient()?;
        lin.gradient = g[0].as_slice().to_vec();
        Ok(lin)
    }

    /// Linearize at (x, θ) without computing ∇ₓL (the residual then reads as empty).
    pub(crate) fn products_only(
        objective: &'a O,
        x: &DMatrix<f64>,
        theta: &[DMatrix<f64>],
    ) -> Result<Self, AdError> {
        let mut at = Vec::with_capacity(theta.len() + 1);
        at.push(x.clone());
        at.extend(theta.iter().cloned());
        let recording = HessianRecording::new(&at, |b| objective.value(&b[0], &b[1..]))?;
        Ok(ArgminHessian {
            recording,
            shapes: Shapes::of(x, theta),
            gradient: Vec::new(),
            _objective: PhantomData,
        })
    }

    /// ∇ₓL at the linearization point (flattened).
    pub fn gradient(&self) -> &[f64] {
        &self.gradient
    }

    /// L at the linearization point.
    pub fn value(&self) -> f64 {
        self.recording.value()
    }

    /// Gradients with respect to (x, θ) of the directional derivative of L along (dx, dθ)
    /// (flat vectors): `(H_xx dx + H_xθ dθ, H_θx dx + H_θθ dθ)`. An empty slice for `dx`
    /// or `dtheta` means a zero direction. One sweep of the recording.
    pub fn second_order(
        &self,
        dx: &[f64],
        dtheta: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        let xd = (!dx.is_empty()).then(|| DMatrix::from_column_slice(dx.len(), 1, dx));
        let td: Vec<Option<DMatrix<f64>>> = if dtheta.is_empty() {
            vec![None; self.shapes.theta.len()]
        } else {
            self.shapes
                .theta_blocks(dtheta)
                .into_iter()
                .map(|b| Some(DMatrix::from_column_slice(b.len(), 1, b.as_slice())))
                .collect()
        };
        let (n, p) = (self.shapes.n(), self.shapes.p());
        if xd.is_none() && td.iter().all(Option::is_none) {
            return Ok((vec![0.0; n], vec![0.0; p]));
        }
        let mut dirs = Vec::with_capacity(td.len() + 1);
        dirs.push(xd.as_ref());
        dirs.extend(td.iter().map(Option::as_ref));
        let hv = self.recording.hvp_batch(&dirs)?;
        let hx = hv[0].as_slice().to_vec();
        let ht = hv[1..].iter().flat_map(|m| m.iter().copied()).collect();
        Ok((hx, ht))
    }
}

impl<O: Objective + ?Sized> Linearization for ArgminHessian<'_, O> {
    fn dims(&self) -> (usize, usize) {
        (self.shapes.n(), self.shapes.p())
    }
    fn shapes(&self) -> Shapes {
        self.shapes.clone()
    }
    fn residual(&self) -> &[f64] {
        &self.gradient
    }
    fn symmetric(&self) -> bool {
        true
    }
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        self.second_order(v, &[]).map(|(a, _)| a)
    }
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.a_mul(u)
    }
    fn b_mul(&self, w: &[f64]) -> Result<Vec<f64>, AdError> {
        self.second_order(&[], w).map(|(a, _)| a)
    }
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.second_order(u, &[]).map(|(_, b)| b)
    }
    fn transpose_products(&self, u: &[f64]) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        self.second_order(u, &[])
    }
    fn assembles(&self) -> bool {
        true
    }
    fn assemble(&self) -> Result<(DMatrix<f64>, DMatrix<f64>), AdError> {
        // One batched sweep with the directions I on x: H[x, x] = A and H[θ_b, x] = Bᵀ.
        let cols = self.recording.hessian_columns(0)?;
        let (n, p) = (self.shapes.n(), self.shapes.p());
        let mut bt = DMatrix::zeros(p, n);
        let mut row = 0;
        for block in &cols[1..] {
            bt.rows_mut(row, block.nrows()).copy_from(block);
            row += block.nrows();
        }
        let mut cols = cols;
        Ok((cols.swap_remove(0), bt))
    }
}
