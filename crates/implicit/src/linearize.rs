//! The linearization of an optimality condition at a solution: the four products the
//! implicit function theorem needs, matrix-free.
//!
//! With A = ∂F/∂x (n x n) and B = ∂F/∂θ (n x p) at (x*, θ):
//! - reverse mode: θ̄ = −Bᵀ w where Aᵀ w = x̄;
//! - forward mode: ẋ = −A⁻¹ B θ̇.

use ad_core::{AdError, DualMat, MatOps, MatVar, Seeds, Tape};
use nalgebra::DMatrix;

use crate::problem::{Objective, RootCondition};

/// Matrix-free products with the blocks of the Jacobian of F at a point.
pub trait Linearization {
    /// `(n, p)`: sizes of x and θ.
    fn dims(&self) -> (usize, usize);
    /// F(x, θ) at the linearization point (the optimality residual).
    fn residual(&self) -> &[f64];
    /// True when A is symmetric (argmin problems: A is a Hessian).
    fn symmetric(&self) -> bool;
    /// A v.
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError>;
    /// Aᵀ u.
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError>;
    /// B w.
    fn b_mul(&self, w: &[f64]) -> Result<Vec<f64>, AdError>;
    /// Bᵀ u.
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError>;
}

fn column(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

/// A root condition recorded once on a tape at (x*, θ); every product is one sweep over
/// that recording (reverse for Aᵀu and Bᵀu together, forward for Av and Bw).
pub struct RecordedRoot {
    x: MatVar,
    theta: MatVar,
    f: MatVar,
    residual: Vec<f64>,
    n: usize,
    p: usize,
    tape: Tape,
}

impl RecordedRoot {
    /// Record F(x, θ) once. Opens a tape that lives as long as the returned value: drop it
    /// before using variables of an enclosing tape again.
    pub fn new<C: RootCondition>(
        condition: &C,
        x: &[f64],
        theta: &[f64],
    ) -> Result<RecordedRoot, crate::ImplicitError> {
        let tape = Tape::new();
        let xv = tape.vector_var(x);
        let tv = tape.vector_var(theta);
        let f = condition.residual(&xv, &tv);
        if f.shape() != (x.len(), 1) {
            return Err(crate::ImplicitError::Dimension {
                what: "residual F(x, theta) rows (must be an n x 1 column like x)",
                expected: x.len(),
                got: f.nrows() * f.ncols(),
            });
        }
        let residual = f.value().as_slice().to_vec();
        Ok(RecordedRoot {
            x: xv,
            theta: tv,
            f,
            residual,
            n: x.len(),
            p: theta.len(),
            tape,
        })
    }

    /// Aᵀu and Bᵀu from one reverse sweep.
    pub fn transpose_products(&self, u: &[f64]) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        let g = self.tape.backward(&Seeds::new().mat(&self.f, column(u)))?;
        Ok((
            g.wrt_mat(&self.x).as_slice().to_vec(),
            g.wrt_mat(&self.theta).as_slice().to_vec(),
        ))
    }

    fn forward_product(&self, seed: Seeds) -> Result<Vec<f64>, AdError> {
        let t = self.tape.forward(&seed)?;
        Ok(t.of_mat(&self.f).as_slice().to_vec())
    }
}

impl Linearization for RecordedRoot {
    fn dims(&self) -> (usize, usize) {
        (self.n, self.p)
    }
    fn residual(&self) -> &[f64] {
        &self.residual
    }
    fn symmetric(&self) -> bool {
        false
    }
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        self.forward_product(Seeds::new().mat(&self.x, column(v)))
    }
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.transpose_products(u).map(|(a, _)| a)
    }
    fn b_mul(&self, w: &[f64]) -> Result<Vec<f64>, AdError> {
        self.forward_product(Seeds::new().mat(&self.theta, column(w)))
    }
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.transpose_products(u).map(|(_, b)| b)
    }
}

/// The linearization of F = ∇ₓL for an argmin problem: A = ∇ₓₓ²L (symmetric) and
/// B = ∇ₓθ²L, each product one reverse-over-forward pass (`DualMat<MatVar>`), exact.
pub struct ArgminHessian<'a, O> {
    objective: &'a O,
    x: Vec<f64>,
    theta: Vec<f64>,
    gradient: Vec<f64>,
}

impl<'a, O: Objective> ArgminHessian<'a, O> {
    /// Linearize at (x*, θ); computes ∇ₓL there (the optimality residual).
    pub fn new(objective: &'a O, x: &[f64], theta: &[f64]) -> Result<Self, AdError> {
        let tape = Tape::new();
        let xv = tape.vector_var(x);
        let tv = tape.vector_var(theta);
        let loss = objective.value(&xv, &tv);
        let gradient = tape.gradient(loss)?.wrt_mat(&xv).as_slice().to_vec();
        Ok(ArgminHessian {
            objective,
            x: x.to_vec(),
            theta: theta.to_vec(),
            gradient,
        })
    }

    /// Linearize at (x, θ) without computing ∇ₓL (for replaying products only; the
    /// residual then reads as empty).
    pub(crate) fn products_only(objective: &'a O, x: &[f64], theta: &[f64]) -> Self {
        ArgminHessian {
            objective,
            x: x.to_vec(),
            theta: theta.to_vec(),
            gradient: Vec::new(),
        }
    }

    /// ∇ₓL at the linearization point.
    pub fn gradient(&self) -> &[f64] {
        &self.gradient
    }

    /// Gradients with respect to (x, θ) of the directional derivative of L along (dx, dθ):
    /// `(H_xx dx + H_xθ dθ, H_θx dx + H_θθ dθ)`.
    pub fn second_order(
        &self,
        dx: &[f64],
        dtheta: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        let tape = Tape::new();
        let xv = tape.vector_var(&self.x);
        let tv = tape.vector_var(&self.theta);
        let xd = DualMat::new(xv, tape.constant_mat(column(dx)));
        let td = DualMat::new(tv, tape.constant_mat(column(dtheta)));
        let y = self.objective.value(&xd, &td);
        let g = tape.gradient(y.eps)?;
        Ok((
            g.wrt_mat(&xv).as_slice().to_vec(),
            g.wrt_mat(&tv).as_slice().to_vec(),
        ))
    }
}

impl<O: Objective> Linearization for ArgminHessian<'_, O> {
    fn dims(&self) -> (usize, usize) {
        (self.x.len(), self.theta.len())
    }
    fn residual(&self) -> &[f64] {
        &self.gradient
    }
    fn symmetric(&self) -> bool {
        true
    }
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        self.second_order(v, &vec![0.0; self.theta.len()])
            .map(|(a, _)| a)
    }
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.a_mul(u)
    }
    fn b_mul(&self, w: &[f64]) -> Result<Vec<f64>, AdError> {
        self.second_order(&vec![0.0; self.x.len()], w)
            .map(|(a, _)| a)
    }
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.second_order(u, &vec![0.0; self.theta.len()])
            .map(|(_, b)| b)
    }
}
