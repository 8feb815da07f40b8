//! Forward mode over any matrix mode: [`DualMat<M>`], where every primitive's JVP rule lives.

use std::sync::Arc;

use nalgebra::DMatrix;

use super::{MatOps, Unary};
use crate::dual::Dual;
use crate::error::AdError;
use crate::rule::CustomFn;

/// A matrix and its tangent (directional derivative), both of mode `M`.
///
/// `DualMat<DMatrix<f64>>` is plain forward mode; `DualMat<MatVar>` records the tangent
/// computation on the tape, so a reverse sweep from the tangent of a loss gives a
/// Hessian-vector product (see [`hvp_mat`](crate::hvp_mat)).
#[derive(Clone, Debug)]
pub struct DualMat<M> {
    /// The value.
    pub re: M,
    /// The tangent, same shape as `re`.
    pub eps: M,
}

impl<M: MatOps> DualMat<M> {
    /// A value with its tangent; panics if the shapes differ.
    pub fn new(re: M, eps: M) -> Self {
        super::assert_same_shape("DualMat::new", re.shape(), eps.shape());
        DualMat { re, eps }
    }
    /// `Some(x + y)`, skipping known-zero terms; `None` if both are known zeros.
    fn sum_skip_zeros(x: Option<M>, y: Option<M>) -> Option<M> {
        match (x, y) {
            (Some(x), Some(y)) => Some(x.add(&y)),
            (x, None) => x,
            (None, y) => y,
        }
    }
    /// `f(a, b)` unless `a` or `b` is a known zero (then the product term is skipped).
    fn term(a: &M, b: &M, f: impl FnOnce(&M, &M) -> M) -> Option<M> {
        if a.is_known_zero() || b.is_known_zero() {
            None
        } else {
            Some(f(a, b))
        }
    }
}

impl<M: MatOps> MatOps for DualMat<M> {
    type Scalar = Dual<M::Scalar>;

    fn shape(&self) -> (usize, usize) {
        self.re.shape()
    }
    fn constant_like(&self, m: DMatrix<f64>) -> Self {
        let re = self.re.constant_like(m);
        let (r, c) = re.shape();
        let eps = re.zeros_like(r, c);
        DualMat { re, eps }
    }
    fn value(&self) -> DMatrix<f64> {
        self.re.value()
    }
    fn shared(&self, data: &Arc<DMatrix<f64>>) -> Self {
        let re = self.re.shared(data);
        let (r, c) = re.shape();
        let eps = re.zeros_like(r, c);
        DualMat { re, eps }
    }
    fn zeros_like(&self, rows: usize, cols: usize) -> Self {
        let re = self.re.zeros_like(rows, cols);
        let eps = re.zeros_like(rows, cols);
        DualMat { re, eps }
    }
    fn is_known_zero(&self) -> bool {
        self.re.is_known_zero() && self.eps.is_known_zero()
    }
    fn matmul(&self, b: &Self) -> Self {
        // Product-rule terms with a known-zero tangent are skipped (exact zeros).
        let re = self.re.matmul(&b.re);
        let eps = Self::sum_skip_zeros(
            Self::term(&self.eps, &b.re, M::matmul),
            Self::term(&self.re, &b.eps, M::matmul),
        );
        let (r, c) = re.shape();
        let eps = eps.unwrap_or_else(|| re.zeros_like(r, c));
        DualMat { re, eps }
    }
    fn transpose(&self) -> Self {
        DualMat {
            re: self.re.transpose(),
            eps: self.eps.transpose(),
        }
    }
    fn add(&self, b: &Self) -> Self {
        DualMat {
            re: self.re.add(&b.re),
            eps: self.eps.add(&b.eps),
        }
    }
    fn sub(&self, b: &Self) -> Self {
        DualMat {
            re: self.re.sub(&b.re),
            eps: self.eps.sub(&b.eps),
        }
    }
    fn mul_elem(&self, b: &Self) -> Self {
        let re = self.re.mul_elem(&b.re);
        let eps = Self::sum_skip_zeros(
            Self::term(&self.eps, &b.re, M::mul_elem),
            Self::term(&self.re, &b.eps, M::mul_elem),
        );
        let (r, c) = re.shape();
        let eps = eps.unwrap_or_else(|| re.zeros_like(r, c));
        DualMat { re, eps }
    }
    fn div_elem(&self, b: &Self) -> Self {
        let q = self.re.div_elem(&b.re);
        let eps = self.eps.sub(&q.mul_elem(&b.eps)).div_elem(&b.re);
        DualMat { re: q, eps }
    }
    fn add_row(&self, row: &Self) -> Self {
        DualMat {
            re: self.re.add_row(&row.re),
            eps: self.eps.add_row(&row.eps),
        }
    }
    fn add_col(&self, col: &Self) -> Self {
        DualMat {
            re: self.re.add_col(&col.re),
            eps: self.eps.add_col(&col.eps),
        }
    }
    fn scale(&self, s: Dual<M::Scalar>) -> Self {
        DualMat {
            re: self.re.scale(s.re),
            eps: self.eps.scale(s.re).add(&self.re.scale(s.eps)),
        }
    }
    fn scale_f64(&self, c: f64) -> Self {
        DualMat {
            re: self.re.scale_f64(c),
            eps: self.eps.scale_f64(c),
        }
    }
    fn add_f64(&self, c: f64) -> Self {
        DualMat {
            re: self.re.add_f64(c),
            eps: self.eps.clone(),
        }
    }
    fn unary(&self, f: Unary) -> Self {
        let y = self.re.unary(f);
        let eps = f.chain(&self.re, &y, &self.eps);
        DualMat { re: y, eps }
    }
    fn custom<F: CustomFn>(f: &F, inputs: &[Self]) -> Result<Vec<Self>, AdError> {
        let re: Vec<M> = inputs.iter().map(|d| d.re.clone()).collect();
        let eps: Vec<M> = inputs.iter().map(|d| d.eps.clone()).collect();
        let (re, eps) = M::custom_tangents(f, &re, &eps)?;
        Ok(re
            .into_iter()
            .zip(eps)
            .map(|(re, eps)| DualMat { re, eps })
            .collect())
    }
    fn sum(&self) -> Dual<M::Scalar> {
        Dual::new(self.re.sum(), self.eps.sum())
    }
    fn dot(&self, b: &Self) -> Dual<M::Scalar> {
        Dual::new(
            self.re.dot(&b.re),
            self.eps.dot(&b.re) + self.re.dot(&b.eps),
        )
    }
    fn get(&self, i: usize, j: usize) -> Dual<M::Scalar> {
        Dual::new(self.re.get(i, j), self.eps.get(i, j))
    }
    fn from_scalars_like(&self, rows: usize, cols: usize, data: &[Dual<M::Scalar>]) -> Self {
        let re: Vec<M::Scalar> = data.iter().map(|d| d.re).collect();
        let eps: Vec<M::Scalar> = data.iter().map(|d| d.eps).collect();
        DualMat {
            re: self.re.from_scalars_like(rows, cols, &re),
            eps: self.re.from_scalars_like(rows, cols, &eps),
        }
    }
    fn slice(&self, row0: usize, col0: usize, nrows: usize, ncols: usize) -> Self {
        DualMat {
            re: self.re.slice(row0, col0, nrows, ncols),
            eps: self.eps.slice(row0, col0, nrows, ncols),
        }
    }
    fn concat(parts: &[Self], horizontal: bool) -> Self {
        let re: Vec<M> = parts.iter().map(|p| p.re.clone()).collect();
        let eps: Vec<M> = parts.iter().map(|p| p.eps.clone()).collect();
        DualMat {
            re: M::concat(&re, horizontal),
            eps: M::concat(&eps, horizontal),
        }
    }
    fn reshape(&self, rows: usize, cols: usize) -> Self {
        DualMat {
            re: self.re.reshape(rows, cols),
            eps: self.eps.reshape(rows, cols),
        }
    }
    fn column_block(&self, offset: usize, rows: usize, cols: usize) -> Self {
        DualMat {
            re: self.re.column_block(offset, rows, cols),
            eps: self.eps.column_block(offset, rows, cols),
        }
    }
}

#[cfg(test)]
mod tests {
    use nalgebra::DMatrix;

    use crate::{DualMat, MatOps, MatVar, Tape};

    /// The gradient of the tangent of `sum(tanh(X W) .* (X W))` along `dW` (an HVP), for a
    /// data tangent `dx` on `X`.
    fn tangent_grad(dx: impl Fn(&MatVar) -> MatVar) -> DMatrix<f64> {
        let x = DMatrix::from_fn(40, 30, |i, j| (0.3 * i as f64 - 0.7 * j as f64).sin());
        let w = DMatrix::from_fn(30, 20, |i, j| (0.2 * i as f64 + 0.5 * j as f64).cos());
        let tape = Tape::new();
        let xv = tape.constant_mat(x);
        let wv = tape.mat_var(w.clone());
        let xd = DualMat::new(xv, dx(&xv));
        let wd = DualMat::new(wv, tape.constant_mat(w.map(|v| 0.5 - v)));
        let z = xd.matmul(&wd);
        let y = z.tanh().mul_elem(&z).sum();
        tape.gradient(y.eps).unwrap().wrt_mat(&wv)
    }

    #[test]
    fn known_zero_tangents_are_skipped_exactly() {
        let tracked = tangent_grad(|x| x.zeros_like(40, 30));
        let untracked = tangent_grad(|x| x.constant_like(DMatrix::zeros(40, 30)));
        assert!(
            !Tape::new()
                .constant_mat(DMatrix::zeros(1, 1))
                .is_known_zero()
        );
        assert_eq!(tracked, untracked);
    }

    #[test]
    fn repeated_recordings_reuse_the_arena() {
        let run = || tangent_grad(|x| x.zeros_like(40, 30));
        run();
        let idle = Tape::idle_buffer_bytes();
        assert!(
            idle >= 40 * 20 * 8,
            "values and adjoints come back: {idle} bytes"
        );
        for _ in 0..5 {
            run();
        }
        assert_eq!(Tape::idle_buffer_bytes(), idle);
    }
}
