//! Operators from ad-core derivative products.

use super::*;
use ad_core::{MatFn, MatOps, Real, ScalarFn, VectorFn};
use implicit::linear::SolveError;
use implicit::linear::{
    HessianOperator, JacobianOperator, LinearOperator, MatHessianOperator, Method, OperatorError,
    Preconditioner, SolveOptions, Structure, cg, ridge, solve,
};
use nalgebra::{DMatrix, DVector};
use proptest::collection::vec;
use proptest::prelude::*;

struct Energy;
impl ScalarFn for Energy {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let mut s = S::zero();
        for i in 0..x.len() {
            let next = x[(i + 1) % x.len()];
            s += (x[i] * next).sin() + x[i].square() * x[i].exp() * 0.5 + (x[i] - next).square();
        }
        s
    }
}

struct Residual;
impl VectorFn for Residual {
    fn eval<S: Real>(&self, x: &[S]) -> Vec<S> {
        let n = x.len();
        let mut out: Vec<S> = (0..n)
            .map(|i| x[i] * 3.0 + (x[(i + 1) % n] * x[i]).tanh() - x[(i + 2) % n].sin())
            .collect();
        out.push(x.iter().copied().sum::<S>().square()); // one more output: rectangular
        out
    }
}

struct Quad {
    data: DMatrix<f64>,
}
impl MatFn for Quad {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let x = p[0].constant_like(self.data.clone());
        let h = x.matmul(&p[0]).add_row(&p[1]).tanh();
        h.sq_norm()
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn hessian_operator_matches_the_dense_hessian(
        x in vec(-1.0f64..1.0, 1..12), v in vec(-1.0f64..1.0, 12)
    ) {
        let n = x.len();
        let v = &v[..n];
        let op = HessianOperator::new(&Energy, &x);
        prop_assert_eq!(op.structure(), Structure::SYMMETRIC);
        prop_assert_eq!(op.point(), &x[..]);
        let mut y = vec![0.0; n];
        op.apply(v, &mut y).unwrap();
        let h = ad_core::hessian(&Energy, &x).unwrap();
        let expect = &h * DVector::from_column_slice(v);
        for i in 0..n {
            prop_assert!((y[i] - expect[i]).abs() <= 1e-12 * (1.0 + expect[i].abs()));
        }
        // A Hessian is symmetric: its transpose product is the same product.
        let mut yt = vec![f64::NAN; n];
        op.apply_transpose(v, &mut yt).unwrap();
        prop_assert_eq!(&yt, &y);
        // Dense methods materialize it (n products), Krylov methods never do.
        let b: Vec<f64> = (0..n).map(|i| 1.0 + i as f64).collect();
        let shifted = ridge(&op, 50.0); // make it positive definite
        let opts = SolveOptions::default().rtol(1e-10);
        let dense = solve(&shifted, &b, None, Method::Cholesky, &opts).unwrap();
        prop_assert_eq!(dense.report.matvecs, n);
        let krylov = solve(&shifted, &b, None, Method::Cg, &opts).unwrap();
        let diff = dense.x.iter().zip(&krylov.x).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        prop_assert!(diff <= 1e-8);
    }

    #[test]
    fn jacobian_operator_matches_the_dense_jacobian(
        x in vec(-1.0f64..1.0, 3..10), v in vec(-1.0f64..1.0, 11)
    ) {
        let n = x.len();
        let op = JacobianOperator::new(&Residual, &x);
        prop_assert_eq!((op.nrows(), op.ncols()), (n + 1, n));
        prop_assert_eq!(op.point(), &x[..]);
        prop_assert_eq!(op.value(), &Residual.eval(&x)[..]);
        let j = ad_core::jacobian(&Residual, &x).unwrap();
        let mut y = vec![0.0; n + 1];
        op.apply(&v[..n], &mut y).unwrap();
        let expect = &j * DVector::from_column_slice(&v[..n]);
        let mut yt = vec![0.0; n];
        op.apply_transpose(&v[..n + 1], &mut yt).unwrap();
        let expect_t = j.transpose() * DVector::from_column_slice(&v[..n + 1]);
        for i in 0..n + 1 {
            prop_assert!((y[i] - expect[i]).abs() <= 1e-12 * (1.0 + expect[i].abs()));
        }
        for i in 0..n {
            prop_assert!((yt[i] - expect_t[i]).abs() <= 1e-12 * (1.0 + expect_t[i].abs()));
        }
        // A least-squares solve through jvp/vjp only.
        let sol = solve(&op, &v[..n + 1], None, Method::Auto, &SolveOptions::default().rtol(1e-10)).unwrap();
        prop_assert_eq!(sol.report.method, Method::NormalCg);
        // CG on the normal equations stops at ||J^T r|| <= 1e-10 ||J^T b||, an error of about
        // cond(J)^2 * 1e-10 relative; 1e-7 leaves room for cond(J) up to about 30.
        let expect = least_squares_qr(&j, &v[..n + 1]);
        for i in 0..n {
            prop_assert!((sol.x[i] - expect[i]).abs() <= 1e-7 * (1.0 + expect.norm()));
        }
    }

    #[test]
    fn mat_hessian_operator_matches_hvp_mat(
        w in vec(-1.0f64..1.0, 6), bias in vec(-1.0f64..1.0, 2), v in vec(-1.0f64..1.0, 8)
    ) {
        let quad = Quad { data: DMatrix::from_row_slice(4, 3, &[
            0.5, -1.0, 0.3, 1.0, 0.2, -0.7, -0.4, 0.9, 0.1, 0.6, -0.3, 0.8]) };
        let params = vec![DMatrix::from_column_slice(3, 2, &w), DMatrix::from_column_slice(1, 2, &bias)];
        let op = MatHessianOperator::new(&quad, &params);
        prop_assert_eq!((op.nrows(), op.ncols()), (8, 8));
        let blocks = op.unflatten(&v);
        prop_assert_eq!(MatHessianOperator::<Quad>::flatten(&blocks), v.clone());
        let mut y = vec![0.0; 8];
        op.apply(&v, &mut y).unwrap();
        let expect = MatHessianOperator::<Quad>::flatten(&ad_core::hvp_mat(&quad, &params, &blocks).unwrap());
        prop_assert_eq!(&y, &expect);
        // Symmetric, declared and in its transpose product.
        prop_assert_eq!(op.structure(), Structure::SYMMETRIC);
        let mut yt = vec![f64::NAN; 8];
        op.apply_transpose(&v, &mut yt).unwrap();
        prop_assert_eq!(yt, expect);
        // Symmetric: <u, H v> == <H u, v>.
        let u: Vec<f64> = v.iter().rev().copied().collect();
        let (mut hv, mut hu) = (vec![0.0; 8], vec![0.0; 8]);
        op.apply(&v, &mut hv).unwrap();
        op.apply(&u, &mut hu).unwrap();
        let (a, b): (f64, f64) = (u.iter().zip(&hv).map(|(p, q)| p * q).sum(), hu.iter().zip(&v).map(|(p, q)| p * q).sum());
        prop_assert!((a - b).abs() <= 1e-12 * (1.0 + a.abs()));
    }
}

#[test]
fn hessian_operator_failure_is_an_operator_error() {
    let x = [0.1, f64::NAN];
    let op = HessianOperator::new(&Energy, &x);
    let err = cg(&op, &[1.0, 1.0], None, None, &SolveOptions::default()).unwrap_err();
    match err {
        SolveError::Operator(OperatorError::Ad(ad_core::AdError::NonFinite {
            what,
            index,
            value,
        })) => {
            assert_eq!((what, index), ("point x", 1));
            assert!(value.is_nan());
        }
        other => panic!("expected an operator error, got {other:?}"),
    }
}

#[test]
fn preconditioner_trait_objects_and_closures() {
    let a = small_spd();
    let m = implicit::linear::FnPreconditioner::new(3, |r: &[f64], z: &mut [f64]| {
        z[0] = r[0] / 4.0;
        z[1] = r[1] / 3.0;
        z[2] = r[2] / 2.0;
    });
    let dynp: &dyn Preconditioner = &m;
    let sol = cg(
        &a,
        &[1.0, 2.0, 3.0],
        None,
        Some(dynp),
        &SolveOptions::default(),
    )
    .unwrap();
    assert!(sol.report.converged && sol.report.precond_applications >= sol.report.iterations);
}
