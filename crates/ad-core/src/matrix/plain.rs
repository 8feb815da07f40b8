//! Plain evaluation: [`MatOps`] for `DMatrix<f64>`.

use nalgebra::DMatrix;

use super::linalg::{self, Alloc};
use super::{MatOps, Unary, assert_same_shape};
use crate::error::AdError;
use crate::rule::{self, CustomFn};

impl MatOps for DMatrix<f64> {
    type Scalar = f64;

    fn shape(&self) -> (usize, usize) {
        DMatrix::shape(self)
    }
    fn constant_like(&self, m: DMatrix<f64>) -> Self {
        m
    }
    fn value(&self) -> DMatrix<f64> {
        self.clone()
    }
    fn matmul(&self, b: &Self) -> Self {
        linalg::matmul(self, b, Alloc::System)
    }
    fn transpose(&self) -> Self {
        DMatrix::transpose(self)
    }
    fn add(&self, b: &Self) -> Self {
        assert_same_shape("add", self.shape(), b.shape());
        self + b
    }
    fn sub(&self, b: &Self) -> Self {
        assert_same_shape("sub", self.shape(), b.shape());
        self - b
    }
    fn mul_elem(&self, b: &Self) -> Self {
        assert_same_shape("mul_elem", self.shape(), b.shape());
        self.component_mul(b)
    }
    fn div_elem(&self, b: &Self) -> Self {
        assert_same_shape("div_elem", self.shape(), b.shape());
        self.component_div(b)
    }
    fn add_row(&self, row: &Self) -> Self {
        linalg::add_row(self, row, Alloc::System)
    }
    fn add_col(&self, col: &Self) -> Self {
        linalg::add_col(self, col, Alloc::System)
    }
    fn scale(&self, s: f64) -> Self {
        self * s
    }
    fn scale_f64(&self, c: f64) -> Self {
        self * c
    }
    fn add_f64(&self, c: f64) -> Self {
        self.add_scalar(c)
    }
    fn unary(&self, f: Unary) -> Self {
        linalg::unary_value(f, self, Alloc::System)
    }
    fn sum(&self) -> f64 {
        DMatrix::sum(self)
    }
    fn dot(&self, b: &Self) -> f64 {
        assert_same_shape("dot", self.shape(), b.shape());
        DMatrix::dot(self, b)
    }
    fn get(&self, i: usize, j: usize) -> f64 {
        self[(i, j)]
    }
    fn from_scalars_like(&self, rows: usize, cols: usize, data: &[f64]) -> Self {
        DMatrix::from_column_slice(rows, cols, data)
    }
    fn slice(&self, row0: usize, col0: usize, nrows: usize, ncols: usize) -> Self {
        linalg::slice(self, row0, col0, nrows, ncols, Alloc::System)
    }
    fn concat(parts: &[Self], horizontal: bool) -> Self {
        let refs: Vec<&DMatrix<f64>> = parts.iter().collect();
        linalg::concat(&refs, horizontal, Alloc::System)
    }
    fn reshape(&self, rows: usize, cols: usize) -> Self {
        linalg::reshape(self, rows, cols, Alloc::System)
    }
    fn column_block(&self, offset: usize, rows: usize, cols: usize) -> Self {
        super::check_column_block(self.shape(), offset, rows, cols);
        DMatrix::from_column_slice(rows, cols, &self.as_slice()[offset..offset + rows * cols])
    }
    fn custom<F: CustomFn>(f: &F, inputs: &[Self]) -> Result<Vec<Self>, AdError> {
        rule::eval_checked(f, inputs)
    }
    fn custom_tangents<F: CustomFn>(
        f: &F,
        re: &[Self],
        eps: &[Self],
    ) -> Result<(Vec<Self>, Vec<Self>), AdError> {
        let (outs, r) = rule::linearize_checked(f, re)?;
        let dots = rule::jvp_checked(f.name(), &r, eps, &outs)?;
        Ok((outs, dots))
    }
}
