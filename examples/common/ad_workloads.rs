//! Workloads shared by the `ad_overhead` example and ad-core's criterion bench
//! (`crates/ad-core/benches/ad.rs` includes this file with `#[path]`), so both measure
//! exactly the same functions.
//!
//! Every function is written once, generically: scalar ones against [`Real`], the MLP loss
//! against [`MatOps`]. Inputs are deterministic formulas (no RNG).
//!
//! [`Nd`] is a thin `Copy` newtype over num-dual's `Dual64` implementing [`Real`] by
//! delegating each operation to num-dual, so the peer runs the very same generic function.
//! num-dual has no `sigmoid`/`softplus`; they are written from num-dual's `exp`/`ln_1p` in
//! the usual overflow-safe way, as a num-dual user would.

#![allow(dead_code)]

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};
use std::sync::Arc;

use ad_core::{MatFn, MatOps, Real, ScalarFn};
use nalgebra::DMatrix;
use num_dual::DualNum;

// ---------------------------------------------------------------------------------------
// Scalar workloads
// ---------------------------------------------------------------------------------------

/// Number of inputs of the transcendental-heavy scalar function.
pub const SCALAR_N: usize = 100;
/// Passes over the inputs; each pass adds `SCALAR_N` terms of 23 operations.
pub const SCALAR_ROUNDS: usize = 5;

/// A transcendental-heavy scalar function: `SCALAR_ROUNDS * x.len()` terms of 23
/// operations each (6 of them tanh/sin/sqrt/exp/ln/softplus), about 11.5k operations for
/// 100 inputs.
pub fn scalar_fn<S: Real>(x: &[S]) -> S {
    let n = x.len();
    let mut acc = S::zero();
    for r in 0..SCALAR_ROUNDS {
        let shift = 1 + 7 * r;
        let c = 0.1 * (r as f64 + 1.0);
        for i in 0..n {
            let a = x[i];
            let b = x[(i + shift) % n];
            let t = (a * b * 0.5 + c).tanh(); // 4 ops
            let s = (a - b).sin() * t; // 3
            let q = (a * a + 1.0).sqrt(); // 3
            let e = (b * 0.3 - c).exp() / q; // 4
            let l = (q + t).ln(); // 2 (q >= 1 and t > -1, so q + t > 0)
            let p = (s - e).softplus(); // 2
            acc = acc + s + e * 0.1 + l + p; // 5
        }
    }
    acc
}

/// The same function with only the primitives whose derivative rules num-dual and ad-core
/// implement identically (no tanh, no softplus): isolates per-operation overhead.
pub fn scalar_fn_common<S: Real>(x: &[S]) -> S {
    let n = x.len();
    let mut acc = S::zero();
    for r in 0..SCALAR_ROUNDS {
        let shift = 1 + 7 * r;
        let c = 0.1 * (r as f64 + 1.0);
        for i in 0..n {
            let a = x[i];
            let b = x[(i + shift) % n];
            let t = (a * b * 0.5 + c).sin(); // 4 ops
            let s = (a - b).sin() * t; // 3
            let q = (a * a + 1.0).sqrt(); // 3
            let e = (b * 0.3 - c).exp() / q; // 4
            let l = (q + t).ln(); // 2
            let p = (s - e).exp(); // 2
            acc = acc + s + e * 0.1 + l + p; // 5
        }
    }
    acc
}

/// [`scalar_fn`] as a [`ScalarFn`] for the drivers.
pub struct Transcendental;
impl ScalarFn for Transcendental {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        scalar_fn(x)
    }
}

/// Extended Rosenbrock: `sum over pairs 100 (x[2i+1] - x[2i]^2)^2 + (x[2i] - 1)^2`.
pub fn rosenbrock<S: Real>(x: &[S]) -> S {
    let mut acc = S::zero();
    for pair in x.chunks_exact(2) {
        let (a, b) = (pair[0], pair[1]);
        acc = acc + (b - a.square()).square() * 100.0 + (a - 1.0).square();
    }
    acc
}

/// [`rosenbrock`] as a [`ScalarFn`].
pub struct Rosenbrock;
impl ScalarFn for Rosenbrock {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        rosenbrock(x)
    }
}

/// Size of the Rosenbrock workload.
pub const ROSENBROCK_N: usize = 1000;

/// A deterministic evaluation point of length `n` (entries in about [-0.9, 0.9]).
pub fn point(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| 0.8 * (1.3 * i as f64 + 0.2).sin() + 0.1 * (0.7 * i as f64).cos())
        .collect()
}

/// A deterministic direction of length `n` (for HVPs and JVPs).
pub fn direction(n: usize) -> Vec<f64> {
    (0..n).map(|i| (0.7 * i as f64 + 0.5).cos()).collect()
}

// ---------------------------------------------------------------------------------------
// MLP loss on matrix variables
// ---------------------------------------------------------------------------------------

/// A tanh MLP regression loss with fixed data: parameters `[W1, b1, W2, b2, ...]`, `W` of
/// shape `in x out`, `b` a `1 x out` row, batch stored one sample per row.
pub struct MlpLoss {
    /// Inputs, `batch x widths[0]` (shared: they enter each evaluation without a copy).
    pub x: Arc<DMatrix<f64>>,
    /// Targets, `batch x widths[last]`.
    pub y: Arc<DMatrix<f64>>,
    /// Layer widths, input first.
    pub widths: Vec<usize>,
}

impl MlpLoss {
    /// Deterministic inputs and targets for the given widths and batch size.
    pub fn new(widths: &[usize], batch: usize) -> MlpLoss {
        let (d_in, d_out) = (widths[0], *widths.last().unwrap());
        let x = DMatrix::from_fn(batch, d_in, |b, i| {
            (0.5 * b as f64 + 0.9 * i as f64 + 0.1).cos()
        });
        let y = DMatrix::from_fn(batch, d_out, |b, o| 0.5 * (0.3 * b as f64 + o as f64).sin());
        MlpLoss {
            x: Arc::new(x),
            y: Arc::new(y),
            widths: widths.to_vec(),
        }
    }

    /// Deterministic parameters, scaled by `1/sqrt(fan_in)` so tanh stays unsaturated.
    pub fn params(&self) -> Vec<DMatrix<f64>> {
        self.pattern(0.0)
    }

    /// A deterministic direction in parameter space (for HVPs).
    pub fn direction(&self) -> Vec<DMatrix<f64>> {
        self.pattern(2.0)
    }

    fn pattern(&self, phase: f64) -> Vec<DMatrix<f64>> {
        let mut out = Vec::new();
        for (l, w) in self.widths.windows(2).enumerate() {
            let (fan_in, fan_out) = (w[0], w[1]);
            let s = 1.0 / (fan_in as f64).sqrt();
            let k = l as f64 + phase;
            out.push(DMatrix::from_fn(fan_in, fan_out, |i, j| {
                s * (0.37 * i as f64 + 1.11 * j as f64 + k).sin()
            }));
            out.push(DMatrix::from_fn(1, fan_out, |_, j| {
                0.1 * (0.5 * j as f64 + k).cos()
            }));
        }
        out
    }

    /// Total number of parameters.
    pub fn n_params(&self) -> usize {
        self.widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }
}

/// The loss `mean((mlp(x) - y)^2)` with tanh hidden layers and a linear output layer,
/// written once for every matrix mode. The data enter by reference (`MatOps::shared`: no
/// copy on the tape; plain `f64` evaluation copies).
pub fn mlp_loss<M: MatOps>(x: &Arc<DMatrix<f64>>, y: &Arc<DMatrix<f64>>, p: &[M]) -> M::Scalar {
    let layers = p.len() / 2;
    let mut h = p[0].shared(x);
    for l in 0..layers {
        let z = h.matmul(&p[2 * l]).add_row(&p[2 * l + 1]);
        h = if l + 1 < layers { z.tanh() } else { z };
    }
    let r = h.sub(&h.shared(y));
    r.sq_norm() / (r.nrows() * r.ncols()) as f64
}

impl MatFn for MlpLoss {
    fn eval<M: MatOps>(&self, params: &[M]) -> M::Scalar {
        mlp_loss(&self.x, &self.y, params)
    }
}

/// The small MLP: 1-40-40-1, batch 10.
pub fn mlp_small() -> MlpLoss {
    MlpLoss::new(&[1, 40, 40, 1], 10)
}

/// The large MLP: 64-256-256-10, batch 128.
pub fn mlp_large() -> MlpLoss {
    MlpLoss::new(&[64, 256, 256, 10], 128)
}

// ---------------------------------------------------------------------------------------
// num-dual's Dual64 behind ad-core's Real trait
// ---------------------------------------------------------------------------------------

/// num-dual's `Dual64`, wrapped so that it implements [`Real`]; every operation delegates
/// to num-dual (zero-cost after inlining).
#[derive(Clone, Copy, Debug)]
pub struct Nd(pub num_dual::Dual64);

impl Nd {
    /// A dual number `re + eps ε`.
    #[inline]
    pub fn new(re: f64, eps: f64) -> Nd {
        Nd(num_dual::Dual64::new(re, eps))
    }
}

macro_rules! nd_binary {
    ($($tr:ident $m:ident $atr:ident $am:ident $op:tt),*) => {$(
        impl $tr for Nd {
            type Output = Nd;
            #[inline]
            fn $m(self, o: Nd) -> Nd { Nd(self.0 $op o.0) }
        }
        impl $tr<f64> for Nd {
            type Output = Nd;
            #[inline]
            fn $m(self, c: f64) -> Nd { Nd(self.0 $op c) }
        }
        impl $atr for Nd {
            #[inline]
            fn $am(&mut self, o: Nd) { self.0 = self.0 $op o.0; }
        }
        impl $atr<f64> for Nd {
            #[inline]
            fn $am(&mut self, c: f64) { self.0 = self.0 $op c; }
        }
    )*};
}
nd_binary!(Add add AddAssign add_assign +, Sub sub SubAssign sub_assign -,
    Mul mul MulAssign mul_assign *, Div div DivAssign div_assign /);

impl Neg for Nd {
    type Output = Nd;
    #[inline]
    fn neg(self) -> Nd {
        Nd(-self.0)
    }
}
impl PartialEq for Nd {
    fn eq(&self, o: &Nd) -> bool {
        self.0.re == o.0.re
    }
}
impl PartialOrd for Nd {
    fn partial_cmp(&self, o: &Nd) -> Option<std::cmp::Ordering> {
        self.0.re.partial_cmp(&o.0.re)
    }
}
impl fmt::Display for Nd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}
impl num_traits::Zero for Nd {
    #[inline]
    fn zero() -> Nd {
        Nd::new(0.0, 0.0)
    }
    fn is_zero(&self) -> bool {
        self.0.re == 0.0 && self.0.eps == 0.0
    }
}
impl num_traits::One for Nd {
    #[inline]
    fn one() -> Nd {
        Nd::new(1.0, 0.0)
    }
}
impl Sum for Nd {
    fn sum<I: Iterator<Item = Nd>>(iter: I) -> Nd {
        iter.fold(Nd::new(0.0, 0.0), |a, b| a + b)
    }
}

impl Real for Nd {
    #[inline]
    fn from_f64(x: f64) -> Nd {
        Nd::new(x, 0.0)
    }
    #[inline]
    fn value(&self) -> f64 {
        self.0.re
    }
    #[inline]
    fn exp(self) -> Nd {
        Nd(self.0.exp())
    }
    #[inline]
    fn ln(self) -> Nd {
        Nd(self.0.ln())
    }
    #[inline]
    fn ln_1p(self) -> Nd {
        Nd(self.0.ln_1p())
    }
    #[inline]
    fn sqrt(self) -> Nd {
        Nd(self.0.sqrt())
    }
    #[inline]
    fn powi(self, n: i32) -> Nd {
        Nd(self.0.powi(n))
    }
    #[inline]
    fn powf(self, y: Nd) -> Nd {
        Nd(self.0.powd(y.0))
    }
    #[inline]
    fn sin(self) -> Nd {
        Nd(self.0.sin())
    }
    #[inline]
    fn cos(self) -> Nd {
        Nd(self.0.cos())
    }
    #[inline]
    fn tanh(self) -> Nd {
        Nd(self.0.tanh())
    }
    #[inline]
    fn sigmoid(self) -> Nd {
        if self.0.re >= 0.0 {
            Nd(((-self.0).exp() + 1.0).recip())
        } else {
            let e = self.0.exp();
            Nd(e / (e + 1.0))
        }
    }
    #[inline]
    fn softplus(self) -> Nd {
        if self.0.re > 0.0 {
            Nd(self.0 + (-self.0).exp().ln_1p())
        } else {
            Nd(self.0.exp().ln_1p())
        }
    }
    #[inline]
    fn abs(self) -> Nd {
        if self.0.re < 0.0 { -self } else { self }
    }
}
