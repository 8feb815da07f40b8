//! Helpers shared by the property tests: a naive scalar-mode reference implementation of
//! [`MatOps`], central finite differences, matrix strategies and comparison helpers.
//!
//! Not every test file uses every helper.
#![allow(dead_code)]

pub mod dot;
pub mod prims;
pub mod scalar_program;

use ad_core::{MatFn, MatOps, Real, ScalarFn, Unary};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Relative step of every central difference in the suite: `h = H_REL * max(1, |x|)`.
///
/// A central difference `(f(x+h) - f(x-h)) / 2h` has truncation error `h^2/6 |f'''|` and
/// rounding error about `delta/h`, where `delta` is the absolute rounding error of one
/// evaluation of `f`. The two balance at `h ~ (3 delta / |f'''|)^(1/3)`, which for
/// `delta ~ 1e-14` and `f''' ~ 1..100` is 3e-5..7e-6; `1e-5` sits in that range.
pub const H_REL: f64 = 1e-5;

/// Step for coordinate `x`.
pub fn step(x: f64) -> f64 {
    H_REL * x.abs().max(1.0)
}

/// Central differences of a scalar function of a flat vector, one coordinate at a time.
///
/// The step actually taken is `(x+h) - (x-h)` as represented in floating point, so the
/// representation error of `x ± h` does not enter the quotient.
pub fn fd_grad(f: impl Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut xp = x.to_vec();
    (0..x.len())
        .map(|i| {
            let h = step(x[i]);
            xp[i] = x[i] + h;
            let fp = f(&xp);
            let hp = xp[i];
            xp[i] = x[i] - h;
            let fm = f(&xp);
            let hm = xp[i];
            xp[i] = x[i];
            (fp - fm) / (hp - hm)
        })
        .collect()
}

/// Central difference of a vector function along direction `v`: `(g(x+hv) - g(x-hv)) / 2h`.
pub fn fd_dir(g: impl Fn(&[f64]) -> Vec<f64>, x: &[f64], v: &[f64]) -> Vec<f64> {
    let scale = x.iter().fold(1.0f64, |m, a| m.max(a.abs()));
    let vn = norm_inf(v).max(1e-300);
    let h = H_REL * scale / vn;
    let xp: Vec<f64> = x.iter().zip(v).map(|(a, d)| a + h * d).collect();
    let xm: Vec<f64> = x.iter().zip(v).map(|(a, d)| a - h * d).collect();
    let (gp, gm) = (g(&xp), g(&xm));
    gp.iter()
        .zip(&gm)
        .map(|(p, m)| (p - m) / (2.0 * h))
        .collect()
}

/// Largest absolute entry.
pub fn norm_inf(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, a| m.max(a.abs()))
}

/// Euclidean norm.
pub fn norm2(x: &[f64]) -> f64 {
    x.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// Plain dot product.
pub fn dotv(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Proptest configuration: `cases` cases from a fixed seed, so every run checks the same
/// cases (DESIGN.md: every random choice takes a seed). Set `PROPTEST_CASES` and
/// `PROPTEST_RNG_SEED` to explore further; no persistence files are written.
pub fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let env = |name: &str| std::env::var_os(name).is_some();
    ProptestConfig {
        cases: if env("PROPTEST_CASES") {
            default.cases
        } else {
            cases
        },
        rng_seed: if env("PROPTEST_RNG_SEED") {
            default.rng_seed
        } else {
            proptest::test_runner::RngSeed::Fixed(0x00d1_ff00)
        },
        max_global_rejects: 4096,
        failure_persistence: None,
        ..default
    }
}

/// With `AD_TOL_REPORT=1`, every check prints a line each time it sees a new largest
/// ratio of error to allowed error, to re-derive tolerances (`--nocapture`).
pub fn report_ratio(what: &str, ratio: f64) {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static ON: OnceLock<bool> = OnceLock::new();
    if !*ON.get_or_init(|| std::env::var_os("AD_TOL_REPORT").is_some()) {
        return;
    }
    static MAX: OnceLock<Mutex<HashMap<String, f64>>> = OnceLock::new();
    let key: String = what.chars().filter(|c| !c.is_ascii_digit()).collect();
    let mut m = MAX.get_or_init(Default::default).lock().unwrap();
    let e = m.entry(key.clone()).or_insert(0.0);
    if ratio > *e {
        *e = ratio;
        eprintln!("tol-report {ratio:.3e} {key}");
    }
}

/// Every entry of `a` within `tol * max(floor, |a_i|, |b_i|)` of `b`; `what` names the check.
pub fn check_close(
    what: &str,
    a: &[f64],
    b: &[f64],
    rel: f64,
    floor: f64,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len(), "{}: lengths differ", what);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = floor.max(x.abs()).max(y.abs());
        report_ratio(what, (x - y).abs() / (rel * scale));
        prop_assert!(
            (x - y).abs() <= rel * scale,
            "{what}: entry {i}: {x:e} vs {y:e} (diff {:e}, allowed {:e})\n  a = {a:?}\n  b = {b:?}",
            (x - y).abs(),
            rel * scale
        );
    }
    Ok(())
}

/// Flatten matrices (column-major, one after the other).
pub fn flatten(ms: &[DMatrix<f64>]) -> Vec<f64> {
    ms.iter()
        .flat_map(|m| m.as_slice().iter().copied())
        .collect()
}

/// Inverse of [`flatten`] for the given shapes.
pub fn unflatten<S: Real>(x: &[S], shapes: &[(usize, usize)]) -> Vec<DMatrix<S>> {
    let mut off = 0;
    let out = shapes
        .iter()
        .map(|&(r, c)| {
            let m = DMatrix::from_column_slice(r, c, &x[off..off + r * c]);
            off += r * c;
            m
        })
        .collect();
    assert_eq!(off, x.len(), "unflatten: sizes do not add up");
    out
}

/// Shapes of a list of matrices.
pub fn shapes(ms: &[DMatrix<f64>]) -> Vec<(usize, usize)> {
    ms.iter().map(|m| m.shape()).collect()
}

// ---------------------------------------------------------------------------------------
// A naive reference matrix mode: `DMatrix<S>` of any `Real` scalar, loops only.
// ---------------------------------------------------------------------------------------

/// A matrix of scalars of any mode, with every [`MatOps`] primitive written as plain loops
/// over [`Real`] arithmetic. It shares no code with the library's matrix tier, so it is an
/// independent reference: evaluated on `Var` it gives the scalar-mode gradient, on
/// `Dual<Var>` (through the `hvp` driver) the scalar-mode Hessian-vector product.
#[derive(Clone, Debug)]
pub struct RefMat<S: Real>(pub DMatrix<S>);

impl<S: Real> RefMat<S> {
    fn a(&self, i: usize, j: usize) -> S {
        self.0[(i, j)]
    }
    fn same(&self, b: &Self) {
        assert_eq!(self.0.shape(), b.0.shape(), "RefMat: shapes differ");
    }
    fn zip(&self, b: &Self, f: impl Fn(S, S) -> S) -> Self {
        self.same(b);
        let (r, c) = self.0.shape();
        RefMat(DMatrix::from_fn(r, c, |i, j| f(self.a(i, j), b.a(i, j))))
    }
    fn map(&self, f: impl Fn(S) -> S) -> Self {
        let (r, c) = self.0.shape();
        RefMat(DMatrix::from_fn(r, c, |i, j| f(self.a(i, j))))
    }
}

impl<S: Real> MatOps for RefMat<S> {
    type Scalar = S;

    fn shape(&self) -> (usize, usize) {
        self.0.shape()
    }
    fn constant_like(&self, m: DMatrix<f64>) -> Self {
        let (r, c) = m.shape();
        RefMat(DMatrix::from_fn(r, c, |i, j| S::from_f64(m[(i, j)])))
    }
    fn value(&self) -> DMatrix<f64> {
        let (r, c) = self.0.shape();
        DMatrix::from_fn(r, c, |i, j| self.a(i, j).value())
    }
    fn matmul(&self, b: &Self) -> Self {
        let (m, k) = self.0.shape();
        assert_eq!(k, b.0.nrows(), "RefMat::matmul: inner dimensions");
        let n = b.0.ncols();
        RefMat(DMatrix::from_fn(m, n, |i, j| {
            (0..k).map(|l| self.a(i, l) * b.a(l, j)).sum()
        }))
    }
    fn transpose(&self) -> Self {
        let (r, c) = self.0.shape();
        RefMat(DMatrix::from_fn(c, r, |i, j| self.a(j, i)))
    }
    fn add(&self, b: &Self) -> Self {
        self.zip(b, |x, y| x + y)
    }
    fn sub(&self, b: &Self) -> Self {
        self.zip(b, |x, y| x - y)
    }
    fn mul_elem(&self, b: &Self) -> Self {
        self.zip(b, |x, y| x * y)
    }
    fn div_elem(&self, b: &Self) -> Self {
        self.zip(b, |x, y| x / y)
    }
    fn add_row(&self, row: &Self) -> Self {
        let (r, c) = self.0.shape();
        assert_eq!(row.0.shape(), (1, c), "RefMat::add_row");
        RefMat(DMatrix::from_fn(r, c, |i, j| self.a(i, j) + row.a(0, j)))
    }
    fn add_col(&self, col: &Self) -> Self {
        let (r, c) = self.0.shape();
        assert_eq!(col.0.shape(), (r, 1), "RefMat::add_col");
        RefMat(DMatrix::from_fn(r, c, |i, j| self.a(i, j) + col.a(i, 0)))
    }
    fn scale(&self, s: S) -> Self {
        self.map(|x| x * s)
    }
    fn scale_f64(&self, c: f64) -> Self {
        self.map(|x| x * c)
    }
    fn add_f64(&self, c: f64) -> Self {
        self.map(|x| x + c)
    }
    fn unary(&self, f: Unary) -> Self {
        self.map(|x| f.apply(x))
    }
    fn sum(&self) -> S {
        self.0.iter().copied().sum()
    }
    fn dot(&self, b: &Self) -> S {
        self.same(b);
        self.0.iter().zip(b.0.iter()).map(|(&x, &y)| x * y).sum()
    }
    fn get(&self, i: usize, j: usize) -> S {
        self.a(i, j)
    }
    fn from_scalars_like(&self, rows: usize, cols: usize, data: &[S]) -> Self {
        RefMat(DMatrix::from_column_slice(rows, cols, data))
    }
    fn slice(&self, row0: usize, col0: usize, nrows: usize, ncols: usize) -> Self {
        RefMat(DMatrix::from_fn(nrows, ncols, |i, j| {
            self.a(row0 + i, col0 + j)
        }))
    }
    fn concat(parts: &[Self], horizontal: bool) -> Self {
        if horizontal {
            let r = parts[0].0.nrows();
            let mut cols = Vec::new();
            for p in parts {
                assert_eq!(p.0.nrows(), r, "RefMat::hcat");
                for j in 0..p.0.ncols() {
                    cols.extend((0..r).map(|i| p.a(i, j)));
                }
            }
            let c = cols.len() / r.max(1);
            RefMat(DMatrix::from_column_slice(r, c, &cols))
        } else {
            let c = parts[0].0.ncols();
            let r: usize = parts.iter().map(|p| p.0.nrows()).sum();
            // (part, row within the part) of every output row
            let mut rows: Vec<(usize, usize)> = Vec::new();
            for (k, p) in parts.iter().enumerate() {
                assert_eq!(p.0.ncols(), c, "RefMat::vcat");
                rows.extend((0..p.0.nrows()).map(|i| (k, i)));
            }
            RefMat(DMatrix::from_fn(r, c, |i, j| {
                let (k, ii) = rows[i];
                parts[k].a(ii, j)
            }))
        }
    }
    fn reshape(&self, rows: usize, cols: usize) -> Self {
        assert_eq!(rows * cols, self.0.len(), "RefMat::reshape");
        RefMat(DMatrix::from_column_slice(rows, cols, self.0.as_slice()))
    }
}

/// A [`MatFn`] seen as a [`ScalarFn`] of its flattened parameters, evaluated through
/// [`RefMat`]: the scalar-mode drivers (`grad`, `hvp`, `hessian`) then give the reference
/// derivatives of the same function.
pub struct AsScalar<'a, F> {
    /// The matrix function.
    pub f: &'a F,
    /// Shapes of its parameter blocks.
    pub shapes: Vec<(usize, usize)>,
}

impl<F: MatFn> ScalarFn for AsScalar<'_, F> {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let ps: Vec<RefMat<S>> = unflatten(x, &self.shapes).into_iter().map(RefMat).collect();
        self.f.eval(&ps)
    }
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// A matrix dimension on either side of nalgebra's matrixmultiply threshold (5): half the
/// time 1..=5, half the time 6..=9.
pub fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![1usize..=5, 6usize..=9]
}

/// `(m, k, n)` for a product; a quarter of the cases have every dimension above 5, so
/// the strided-transpose (matrixmultiply) path is always exercised in forward and backward.
pub fn gemm_dims() -> impl Strategy<Value = (usize, usize, usize)> {
    prop_oneof![
        (dim(), dim(), dim()),
        (6usize..=9, 6usize..=9, 6usize..=9),
        (1usize..=5, 1usize..=5, 1usize..=5),
    ]
}

/// An `r x c` matrix with entries uniform in `lo..hi`.
pub fn mat(r: usize, c: usize, lo: f64, hi: f64) -> impl Strategy<Value = DMatrix<f64>> {
    proptest::collection::vec(lo..hi, r * c).prop_map(move |v| DMatrix::from_vec(r, c, v))
}

/// An `r x c` matrix with entries of magnitude in `lo..hi` and random sign (away from 0).
pub fn mat_away_from_zero(
    r: usize,
    c: usize,
    lo: f64,
    hi: f64,
) -> impl Strategy<Value = DMatrix<f64>> {
    proptest::collection::vec((lo..hi, any::<bool>()), r * c).prop_map(move |v| {
        DMatrix::from_iterator(r, c, v.into_iter().map(|(m, s)| if s { m } else { -m }))
    })
}
