//! [`Val`]: plain `f64` matrices that may borrow the tape's values, so the forward sweep
//! evaluates each op's one JVP rule (on `DualMat<Val>`) without copying its inputs.

use std::cell::OnceCell;

use nalgebra::DMatrix;

use super::linalg::{self, Alloc};
use super::{MatOps, Unary};

/// A plain matrix, borrowed or owned, or a known zero (allocated only if read).
#[derive(Clone, Debug)]
pub(crate) enum Val<'a> {
    Borrowed(&'a DMatrix<f64>),
    Owned(DMatrix<f64>),
    Zero(usize, usize, OnceCell<DMatrix<f64>>),
}

impl<'a> Val<'a> {
    /// A borrowed matrix.
    pub(crate) fn borrowed(m: &'a DMatrix<f64>) -> Self {
        Val::Borrowed(m)
    }
    /// The known-zero tangent of a `rows x cols` matrix.
    pub(crate) fn zero(rows: usize, cols: usize) -> Self {
        Val::Zero(rows, cols, OnceCell::new())
    }
    fn own(m: DMatrix<f64>) -> Val<'static> {
        Val::Owned(m)
    }
    /// The matrix, copied only if borrowed.
    pub(crate) fn into_owned(self) -> DMatrix<f64> {
        match self {
            Val::Borrowed(m) => m.clone(),
            Val::Owned(m) => m,
            Val::Zero(r, c, cell) => cell.into_inner().unwrap_or_else(|| DMatrix::zeros(r, c)),
        }
    }
    fn m(&self) -> &DMatrix<f64> {
        match self {
            Val::Borrowed(m) => m,
            Val::Owned(m) => m,
            Val::Zero(r, c, cell) => cell.get_or_init(|| DMatrix::zeros(*r, *c)),
        }
    }
}

impl MatOps for Val<'_> {
    type Scalar = f64;

    fn shape(&self) -> (usize, usize) {
        match self {
            Val::Zero(r, c, _) => (*r, *c),
            _ => self.m().shape(),
        }
    }
    fn constant_like(&self, m: DMatrix<f64>) -> Self {
        Val::own(m)
    }
    fn value(&self) -> DMatrix<f64> {
        self.m().clone()
    }
    fn zeros_like(&self, rows: usize, cols: usize) -> Self {
        Val::zero(rows, cols)
    }
    fn is_known_zero(&self) -> bool {
        matches!(self, Val::Zero(..))
    }
    fn matmul(&self, b: &Self) -> Self {
        Val::own(self.m().matmul(b.m()))
    }
    fn transpose(&self) -> Self {
        Val::own(MatOps::transpose(self.m()))
    }
    fn add(&self, b: &Self) -> Self {
        Val::own(MatOps::add(self.m(), b.m()))
    }
    fn sub(&self, b: &Self) -> Self {
        Val::own(MatOps::sub(self.m(), b.m()))
    }
    fn mul_elem(&self, b: &Self) -> Self {
        Val::own(self.m().mul_elem(b.m()))
    }
    fn div_elem(&self, b: &Self) -> Self {
        Val::own(self.m().div_elem(b.m()))
    }
    fn add_row(&self, row: &Self) -> Self {
        Val::own(self.m().add_row(row.m()))
    }
    fn add_col(&self, col: &Self) -> Self {
        Val::own(self.m().add_col(col.m()))
    }
    fn scale(&self, s: f64) -> Self {
        Val::own(self.m().scale_f64(s))
    }
    fn scale_f64(&self, c: f64) -> Self {
        Val::own(self.m().scale_f64(c))
    }
    fn add_f64(&self, c: f64) -> Self {
        Val::own(self.m().add_f64(c))
    }
    fn unary(&self, f: Unary) -> Self {
        Val::own(self.m().unary(f))
    }
    fn sum(&self) -> f64 {
        MatOps::sum(self.m())
    }
    fn dot(&self, b: &Self) -> f64 {
        MatOps::dot(self.m(), b.m())
    }
    fn get(&self, i: usize, j: usize) -> f64 {
        self.m()[(i, j)]
    }
    fn from_scalars_like(&self, rows: usize, cols: usize, data: &[f64]) -> Self {
        Val::own(DMatrix::from_column_slice(rows, cols, data))
    }
    fn slice(&self, row0: usize, col0: usize, nrows: usize, ncols: usize) -> Self {
        Val::own(MatOps::slice(self.m(), row0, col0, nrows, ncols))
    }
    fn concat(parts: &[Self], horizontal: bool) -> Self {
        let refs: Vec<&DMatrix<f64>> = parts.iter().map(|p| p.m()).collect();
        Val::own(linalg::concat(&refs, horizontal, Alloc::System))
    }
    fn reshape(&self, rows: usize, cols: usize) -> Self {
        Val::own(MatOps::reshape(self.m(), rows, cols))
    }
}
