//! Problems and helpers of the error tests (`ift_errors*.rs`).

use std::error::Error;

use ad_core::{AdError, MatOps, Real, Tape};
use implicit::linear::{DenseLu, Method, SolveOptions};
use implicit::unrolled::unrolled_gradient_descent;
use implicit::{
    Argmin, Backward, Factor, FixedPointMap, IftOptions, Implicit, ImplicitError, Objective, Root,
    RootCondition, ScalarRootCondition, Scalars, implicit_node, implicit_scalar_node,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

pub fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

// =======================================================================================
// Problems
// =======================================================================================

/// SplitMix64, for seeded data.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn unif(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        lo + (hi - lo) * ((z >> 11) as f64 / (1u64 << 53) as f64)
    }
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.unif(lo, hi)).collect()
    }
    pub fn mat(&mut self, r: usize, c: usize, lo: f64, hi: f64) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |_, _| self.unif(lo, hi))
    }
}

pub fn col(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub fn unit(n: usize, k: usize) -> Vec<f64> {
    let mut e = vec![0.0; n];
    e[k] = 1.0;
    e
}

/// Column j of x has λ = θ_{j mod p}.
pub fn groups(n: usize, p: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, p, |j, k| if j % p == k { 1.0 } else { 0.0 })
}

/// Ridge regression with λ = groups·θ: L(w, θ) = ‖Xw − y‖²/2m + ½ Σⱼ λⱼ wⱼ².
#[derive(Clone, Debug)]
pub struct Ridge {
    pub x: DMatrix<f64>,
    pub y: DMatrix<f64>,
    pub g: DMatrix<f64>,
}

impl Ridge {
    pub fn random(n: usize, p: usize, seed: u64) -> Ridge {
        let mut rng = SplitMix(seed);
        let m = n + 6;
        Ridge {
            x: rng.mat(m, n, -1.0, 1.0),
            y: rng.mat(m, 1, -1.0, 1.0),
            g: groups(n, p),
        }
    }
    pub fn theta(&self) -> Vec<f64> {
        (0..self.g.ncols()).map(|k| 0.5 + 0.25 * k as f64).collect()
    }
    pub fn a(&self, theta: &[f64]) -> DMatrix<f64> {
        let m = self.x.nrows() as f64;
        self.x.transpose() * &self.x / m
            + DMatrix::from_diagonal(&(&self.g * DVector::from_column_slice(theta)))
    }
    pub fn solve(&self, theta: &[f64]) -> Vec<f64> {
        let b = self.x.transpose() * &self.y / self.x.nrows() as f64;
        let w = self.a(theta).cholesky().unwrap().solve(&b);
        w.as_slice().to_vec()
    }
    /// F(w, θ) = ∇ₓL in plain f64.
    pub fn f(&self, w: &[f64], theta: &[f64]) -> Vec<f64> {
        self.residual(&col(w), &[col(theta)]).as_slice().to_vec()
    }
}

impl Objective for Ridge {
    fn value<M: MatOps>(&self, w: &M, theta: &[M]) -> M::Scalar {
        let theta = &theta[0];
        let r = w
            .constant_like(self.x.clone())
            .matmul(w)
            .sub(&w.constant_like(self.y.clone()));
        let lam = w.constant_like(self.g.clone()).matmul(theta);
        r.sq_norm() / (2.0 * self.x.nrows() as f64) + lam.dot(&w.square()) * 0.5
    }
}

impl RootCondition for Ridge {
    fn residual<M: MatOps>(&self, w: &M, theta: &[M]) -> M {
        let theta = &theta[0];
        let x = w.constant_like(self.x.clone());
        let r = x.matmul(w).sub(&w.constant_like(self.y.clone()));
        let lam = w.constant_like(self.g.clone()).matmul(theta);
        x.transpose()
            .matmul(&r)
            .scale_f64(1.0 / self.x.nrows() as f64)
            .add(&lam.mul_elem(w))
    }
}

/// A contractive fixed point z = tanh(W z + U θ), ‖W‖_F = 0.5.
#[derive(Clone, Debug)]
pub struct Deq {
    pub w: DMatrix<f64>,
    pub u: DMatrix<f64>,
}

impl Deq {
    pub fn random(n: usize, p: usize, seed: u64) -> Deq {
        let mut rng = SplitMix(seed);
        let r = rng.mat(n, n, -1.0, 1.0);
        let scale = 0.5 / r.norm().max(1e-300);
        Deq {
            w: r * scale,
            u: rng.mat(n, p, -1.0, 1.0),
        }
    }
}

impl FixedPointMap for Deq {
    fn map<M: MatOps>(&self, z: &M, theta: &[M]) -> M {
        let theta = &theta[0];
        z.constant_like(self.w.clone())
            .matmul(z)
            .add(&z.constant_like(self.u.clone()).matmul(theta))
            .tanh()
    }
}

pub fn bad_value() -> impl Strategy<Value = f64> {
    prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)]
}

/// `value` is the bad value put in (NaN compares by kind).
pub fn same_value(got: f64, put: f64) -> bool {
    (got.is_nan() && put.is_nan()) || got == put
}

/// Assert `err` is `NonFinite { what, index, value }` with these fields.
pub fn assert_non_finite(
    err: &ImplicitError,
    what: &str,
    index: usize,
    value: f64,
) -> Result<(), TestCaseError> {
    match err {
        ImplicitError::NonFinite {
            what: w,
            index: i,
            value: v,
        } => {
            prop_assert_eq!(*w, what);
            prop_assert_eq!(*i, index);
            prop_assert!(same_value(*v, value), "value {} instead of {}", v, value);
            prop_assert!(err.to_string().contains(what), "message: {}", err);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "expected NonFinite({what}, {index}, {value}), got {other:?}"
        ))),
    }
}

/// The error of a `Result` whose `Ok` type need not be `Debug`.
pub fn error_of<T>(r: Result<T, ImplicitError>) -> ImplicitError {
    match r {
        Ok(_) => panic!("expected an error, got a value"),
        Err(e) => e,
    }
}

/// A forward solver that must not run (the input was rejected before).
pub fn must_not_run(_: &[f64]) -> Result<Vec<f64>, String> {
    panic!("the forward solver ran on rejected input")
}

/// [`must_not_run`] for a matrix node (θ in blocks).
pub fn must_not_run_blocks(_: &[DMatrix<f64>]) -> Result<Vec<f64>, String> {
    panic!("the forward solver ran on rejected input")
}

/// Assert `err` is `NonFiniteEntry { what, block, row, col, value }` with these fields.
pub fn assert_entry(
    err: &ImplicitError,
    what: &str,
    (block, row, col): (usize, usize, usize),
    value: f64,
) -> Result<(), TestCaseError> {
    match err {
        ImplicitError::NonFiniteEntry {
            what: w,
            block: b,
            row: r,
            col: c,
            value: v,
        } => {
            prop_assert_eq!(*w, what);
            prop_assert_eq!((*b, *r, *c), (block, row, col));
            prop_assert!(same_value(*v, value), "value {} instead of {}", v, value);
            prop_assert!(err.to_string().contains(what), "message: {}", err);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "expected NonFiniteEntry({what}, {block}, ({row}, {col}), {value}), got {other:?}"
        ))),
    }
}

/// Assert `err` is `Shape { what, expected, got }`, `what` containing `what`.
pub fn assert_shape(
    err: &ImplicitError,
    what: &str,
    expected: (usize, usize),
    got: (usize, usize),
) -> Result<(), TestCaseError> {
    match err {
        ImplicitError::Shape {
            what: w,
            expected: e,
            got: g,
        } => {
            prop_assert!(w.contains(what), "what = {:?}", w);
            prop_assert_eq!((*e, *g), (expected, got));
            let msg = err.to_string();
            let (es, gs) = (
                format!("{}x{}", expected.0, expected.1),
                format!("{}x{}", got.0, got.1),
            );
            prop_assert!(msg.contains(&es) && msg.contains(&gs), "message: {}", msg);
            Ok(())
        }
        other => Err(TestCaseError::fail(format!(
            "expected Shape({what}, {expected:?}, {got:?}), got {other:?}"
        ))),
    }
}
