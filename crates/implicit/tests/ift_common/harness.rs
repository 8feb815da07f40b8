//! The property harness, random data, helpers and finite differences of re-solving.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;

use ad_core::{AdError, MatOps, Real, ScalarFn, Seeds, Tape, Unary, Var, grad, hessian};
use implicit::linear::{DenseCholesky, DenseLu, Method};
use implicit::unrolled::{unroll_on_tape, unrolled_gradient_descent};
use implicit::{
    Argmin, ArgminHessian, Backward, Factor, FixedPoint, FixedPointMap, IftOptions, Implicit,
    ImplicitError, Linearization, Objective, RecordedRoot, Root, RootCondition, ScalarObjective,
    ScalarRootCondition, Scalars, Shapes, implicit_node, implicit_scalar_node,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};

// =======================================================================================
// Harness: run a property over random cases and print the worst measured agreement.
// =======================================================================================

/// Run `property` on `cases` random values of `strategy` (or `PROPTEST_CASES`); it returns
/// named measurements (errors), whose worst values are printed (see them with
/// `--nocapture`). Failing cases are saved next to this file, as with `proptest!`.
pub fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<Vec<(&'static str, f64)>, TestCaseError>,
) where
    S::Value: Debug,
{
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let worst: RefCell<BTreeMap<&'static str, f64>> = RefCell::new(BTreeMap::new());
    let result = TestRunner::new(config).run(&strategy, |value| {
        for (key, v) in property(value)? {
            let mut w = worst.borrow_mut();
            let e = w.entry(key).or_insert(0.0);
            *e = e.max(v);
        }
        Ok(())
    });
    eprintln!("{name}: worst over {cases} cases: {:?}", worst.borrow());
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// Sizes and a seed: n = dim x, p = dim θ.
pub fn sizes() -> impl Strategy<Value = (usize, usize, u64)> {
    (1usize..=12, 1usize..=5, any::<u64>())
}

/// SplitMix64: the instance data comes from the case's seed.
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unif(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64)
    }
    pub fn vec(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f64> {
        (0..n).map(|_| self.unif(lo, hi)).collect()
    }
    pub fn mat(&mut self, r: usize, c: usize, lo: f64, hi: f64) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |_, _| self.unif(lo, hi))
    }
}

/// `?` for library errors inside a property: the error's message fails the case.
pub trait OrFail<T> {
    fn or_fail(self) -> Result<T, TestCaseError>;
}

impl<T, E: std::fmt::Display> OrFail<T> for Result<T, E> {
    fn or_fail(self) -> Result<T, TestCaseError> {
        self.map_err(|e| TestCaseError::fail(format!("unexpected error: {e}")))
    }
}

pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn diff_norm(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// ‖a − b‖ / ‖b‖ (0 when both vanish).
pub fn rel(a: &[f64], b: &[f64]) -> f64 {
    let d = diff_norm(a, b);
    if d == 0.0 { 0.0 } else { d / norm(b) }
}

pub fn col(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

pub fn unit(n: usize, k: usize) -> Vec<f64> {
    let mut e = vec![0.0; n];
    e[k] = 1.0;
    e
}

/// Column j of x has λ from θ_{j mod p}: p = 1 is one λ for all features, p = n one per
/// feature; `groups · θ` is the per-feature λ as an `n x 1` column.
pub fn groups(n: usize, p: usize) -> DMatrix<f64> {
    DMatrix::from_fn(n, p, |j, k| if j % p == k { 1.0 } else { 0.0 })
}

/// Rescale a design matrix so that ‖X‖₂² / m ≤ 4: with λ ≥ 0.5 this keeps every inner
/// problem's Hessian in [0.5, 6], condition number ≤ 12 (the tolerances below use it).
pub fn design(rng: &mut SplitMix, m: usize, n: usize) -> DMatrix<f64> {
    let mut x = rng.mat(m, n, -1.7, 1.7);
    let s = x.singular_values().max();
    let cap = (4.0 * m as f64).sqrt();
    if s > cap {
        x *= cap / s;
    }
    x
}

// 1. Implicit derivatives = finite differences of re-solving
// =======================================================================================

/// Finite-difference step and tolerances. The central difference of the re-solved x* has
/// error
///   ‖(x̃(θ+h e) − x̃(θ−h e)) / 2h − ∂x*/∂θ·e‖ ≤ h² M₃ / 6 + ε / h,
/// where M₃ bounds the third derivative of x*(θ) along e and ε the forward-solve error.
/// - The first term is relative to the size of the derivative: the families are built
///   uniformly well conditioned (strong monotonicity μ ≥ 0.5, Lipschitz constant ≤ 6,
///   θ-dependence of unit size), so M₃ ≲ 6‖∂x*/∂θ‖/μ² ≈ 24‖∂x*/∂θ‖ (ridge:
///   x⁽ᵏ⁾ = k!(−A⁻¹D)ᵏx, the others alike); with h = 1e-5 that is ≲ 4e-10 relative.
///   `FD_TOL` = 1e-8 leaves a factor of 25.
/// - The second is absolute: the forward solves reach ε ≤ 1e-14 (closed form: κ·u ≈ 1e-15;
///   Newton and the fixed-point iteration run to the rounding floor, see their `solve`),
///   hence `FD_ABS` = ε/h = 1e-9 per unit direction. It matters only where ∂x*/∂θ is tiny
///   (x* ≈ 0, saturated tanh), where relative agreement cannot be resolved by FD.
///
/// So an FD comparison of a map of Frobenius norm ‖J‖ along k unit directions allows
/// FD_TOL·‖J‖ + FD_ABS·√k, i.e. FD_TOL × `fd_scale(‖J‖, k)`; the tests report the error
/// divided by that scale (measured worst case: about 2e-10, also over 1000 cases per family).
pub const FD_STEP: f64 = 1e-5;
pub const FD_TOL: f64 = 1e-8;
pub const FD_ABS: f64 = 1e-9;

/// See `FD_STEP`: the scale an FD error of a map of norm `size` along `k` unit directions
/// is measured against.
pub fn fd_scale(size: f64, k: usize) -> f64 {
    size + (k as f64).sqrt() * FD_ABS / FD_TOL
}

/// Central-difference Jacobian of the re-solved x*(θ), one column per θ_k (2p solves).
pub fn fd_jacobian(solve: &dyn Fn(&[f64]) -> Vec<f64>, theta: &[f64], h: f64) -> DMatrix<f64> {
    let x0 = solve(theta);
    let mut jac = DMatrix::zeros(x0.len(), theta.len());
    for k in 0..theta.len() {
        let mut tp = theta.to_vec();
        let mut tm = theta.to_vec();
        tp[k] += h;
        tm[k] -= h;
        let (xp, xm) = (solve(&tp), solve(&tm));
        for i in 0..x0.len() {
            jac[(i, k)] = (xp[i] - xm[i]) / (2.0 * h);
        }
    }
    jac
}

/// What the linear-solve tolerance implies for the dot-product test. The VJP solves
/// Aᵀw = u to a residual r₁ and the JVP solves A y = −B v to a residual r₂, each with
/// ‖rᵢ‖ ≤ max(rtol‖rhs‖, atol). Then
///   <vjp(u), v> − <u, jvp(v)> = r₁ᵀ A⁻¹ B v + uᵀ A⁻¹ r₂,
/// so the gap is at most ‖A⁻¹‖ (‖r₁‖ ‖Bv‖ + ‖u‖ ‖r₂‖) ≤ 2 rtol ‖A⁻¹‖ ‖u‖ ‖Bv‖ (+ atol
/// terms), plus rounding in the products (a few ulps of ‖u‖ ‖A⁻¹‖ ‖B‖ ‖v‖ per entry).
/// Relative to ‖u‖ ‖J‖ ‖v‖ that is ≤ 2 rtol κ(A) ≈ 2.4e-9 for rtol = 1e-10, κ ≤ 12.
pub fn dot_product_bound(
    a: &DMatrix<f64>,
    b: &DMatrix<f64>,
    u: &[f64],
    v: &[f64],
    opts: &IftOptions,
) -> f64 {
    let a_inv = 1.0 / a.clone().singular_values().min();
    let bv = (b * col(v)).norm();
    let (rtol, atol) = (opts.linear.rtol, opts.linear.atol);
    let solves = a_inv * ((rtol * norm(u) + atol) * bv + norm(u) * (rtol * bv + atol));
    let rounding = 1e3 * f64::EPSILON * a_inv * norm(u) * b.norm() * norm(v);
    solves + rounding
}
