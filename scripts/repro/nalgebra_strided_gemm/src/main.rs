//! `c = op(a) op(b)` through `Matrix::gemm` with `op(a)`, `op(b)` given as strided views
//! (a transposed operand is a view with row stride > 1), compared with the product of
//! owned copies. Arguments: m k n ta tb (ta, tb: 1 = transposed view).
use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut};

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .map(|s| s.parse().expect("a number"))
        .collect();
    let (m, k, n, ta, tb) = (a[0], a[1], a[2], a[3] == 1, a[4] == 1);
    let a_store: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
    let b_store: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.71).cos()).collect();
    let av = if ta {
        DMatrixView::from_slice_with_strides(&a_store, m, k, k, 1)
    } else {
        DMatrixView::from_slice_with_strides(&a_store, m, k, 1, m)
    };
    let bv = if tb {
        DMatrixView::from_slice_with_strides(&b_store, k, n, n, 1)
    } else {
        DMatrixView::from_slice_with_strides(&b_store, k, n, 1, k)
    };
    let mut c = vec![0.0; m * n];
    DMatrixViewMut::from_slice(&mut c, m, n).gemm(1.0, &av, &bv, 0.0);
    let want: DMatrix<f64> = av.into_owned() * bv.into_owned();
    let err = (DMatrix::from_column_slice(m, n, &c) - want).abs().max();
    println!("{m}x{k}x{n} ta={ta} tb={tb}: max error {err:e}");
}
