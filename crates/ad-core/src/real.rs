//! The scalar trait user code is written against once.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use nalgebra::DMatrix;
use num_traits::{One, Zero};

use crate::error::AdError;
use crate::rule::{self, CustomFn};

/// A real scalar that every derivative mode can stand in for.
///
/// Write a function once against `S: Real` and it runs on
/// - `f64`: plain evaluation;
/// - [`Dual<T>`](crate::Dual): forward mode (and `Dual<Dual<f64>>` for second derivatives);
/// - [`Var`](crate::Var): reverse mode on the thread-local tape;
/// - `Dual<Var>`: reverse-over-forward, which gives Hessian-vector products.
///
/// Comparisons (`<`, `==`, [`Real::value`]) look at the primal value only, so branches in
/// user code pick the same path in every mode.
///
/// ```
/// use ad_core::{Real, Dual};
/// fn f<S: Real>(x: S) -> S { x.sin() * x + S::from_f64(2.0) }
/// let y = f(Dual::variable(1.5));
/// assert!((y.eps - (1.5f64.cos() * 1.5 + 1.5f64.sin())).abs() < 1e-15);
/// ```
pub trait Real:
    Copy
    + Debug
    + Display
    + PartialEq
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + AddAssign<f64>
    + SubAssign<f64>
    + MulAssign<f64>
    + DivAssign<f64>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
    + Div<f64, Output = Self>
    + Sum
    + Zero
    + One
{
    /// A constant (its derivative is zero in every mode).
    fn from_f64(x: f64) -> Self;
    /// The primal value, stripped of every derivative part.
    fn value(&self) -> f64;

    /// e^x.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// ln(1 + x), accurate near 0.
    fn ln_1p(self) -> Self;
    /// Square root.
    fn sqrt(self) -> Self;
    /// Integer power.
    fn powi(self, n: i32) -> Self;
    /// x^y with a variable exponent (defined for x > 0).
    fn powf(self, y: Self) -> Self;
    /// Sine.
    fn sin(self) -> Self;
    /// Cosine.
    fn cos(self) -> Self;
    /// Hyperbolic tangent.
    fn tanh(self) -> Self;
    /// Logistic sigmoid 1 / (1 + e^-x), evaluated without overflow.
    fn sigmoid(self) -> Self;
    /// Softplus ln(1 + e^x), evaluated without overflow.
    fn softplus(self) -> Self;
    /// Absolute value (derivative sign(x), and 0 at 0).
    fn abs(self) -> Self;

    /// x^2.
    fn square(self) -> Self {
        self * self
    }
    /// 1 / x.
    fn recip(self) -> Self {
        Self::one() / self
    }
    /// max(x, 0) (derivative 0 at 0).
    fn relu(self) -> Self {
        if self.value() > 0.0 {
            self
        } else {
            Self::zero()
        }
    }
    /// The larger of two values; ties pick `self`.
    fn max(self, other: Self) -> Self {
        if other.value() > self.value() {
            other
        } else {
            self
        }
    }
    /// The smaller of two values; ties pick `self`.
    fn min(self, other: Self) -> Self {
        if other.value() < self.value() {
            other
        } else {
            self
        }
    }
    /// True when the primal value is finite.
    fn is_finite(&self) -> bool {
        self.value().is_finite()
    }

    /// Apply a custom function ([`CustomFn`]) to scalars: it sees `inputs` as one `n x 1`
    /// block and must return one `m x 1` block. `f64` evaluates it, `Dual<f64>` applies its
    /// JVP rule, `Var` records a node; errors as for
    /// [`MatOps::custom`](crate::MatOps::custom). The default (a mode without custom
    /// functions) returns [`AdError::CustomUnsupported`].
    fn custom<F: CustomFn>(f: &F, inputs: &[Self]) -> Result<Vec<Self>, AdError> {
        let _ = inputs;
        Err(AdError::CustomUnsupported {
            name: f.name().to_string(),
            mode: std::any::type_name::<Self>(),
        })
    }
    /// Forward mode over this mode (`Dual<Self>`): outputs at `re` and their tangents given
    /// the inputs' tangents `eps`. The default (tape modes) accepts only zero tangents.
    #[doc(hidden)]
    #[allow(clippy::type_complexity)]
    fn custom_tangents<F: CustomFn>(
        f: &F,
        re: &[Self],
        eps: &[Self],
    ) -> Result<(Vec<Self>, Vec<Self>), AdError> {
        if eps.iter().any(|e| !e.is_zero()) {
            return Err(AdError::CustomSecondOrder {
                name: f.name().to_string(),
                block: 0,
            });
        }
        let outs = Self::custom(f, re)?;
        let zeros = vec![Self::zero(); outs.len()];
        Ok((outs, zeros))
    }
}

/// A slice of plain values as the `n x 1` block custom functions see.
pub(crate) fn column(xs: &[f64]) -> Vec<DMatrix<f64>> {
    vec![DMatrix::from_column_slice(xs.len(), 1, xs)]
}

/// Numerically stable logistic sigmoid on `f64`.
pub(crate) fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Numerically stable softplus ln(1 + e^x) on `f64`.
pub(crate) fn softplus_f64(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// Softplus and its derivative, the sigmoid, sharing one `exp`: bitwise the same values as
/// [`softplus_f64`] and [`sigmoid_f64`] (both use `e = exp(-|x|)`).
#[inline]
pub(crate) fn softplus_sigmoid_f64(x: f64) -> (f64, f64) {
    let e = (-x.abs()).exp();
    let l = e.ln_1p();
    if x > 0.0 {
        (x + l, 1.0 / (1.0 + e))
    } else {
        (l, e / (1.0 + e))
    }
}

/// Sign used as the derivative of |x|: 0 at 0 (and NaN stays NaN).
pub(crate) fn sign_f64(x: f64) -> f64 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        x * 0.0
    }
}

impl Real for f64 {
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn value(&self) -> f64 {
        *self
    }
    #[inline]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    #[inline]
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline]
    fn ln_1p(self) -> Self {
        f64::ln_1p(self)
    }
    #[inline]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline]
    fn powi(self, n: i32) -> Self {
        f64::powi(self, n)
    }
    #[inline]
    fn powf(self, y: Self) -> Self {
        f64::powf(self, y)
    }
    #[inline]
    fn sin(self) -> Self {
        f64::sin(self)
    }
    #[inline]
    fn cos(self) -> Self {
        f64::cos(self)
    }
    #[inline]
    fn tanh(self) -> Self {
        f64::tanh(self)
    }
    #[inline]
    fn sigmoid(self) -> Self {
        sigmoid_f64(self)
    }
    #[inline]
    fn softplus(self) -> Self {
        softplus_f64(self)
    }
    #[inline]
    fn abs(self) -> Self {
        f64::abs(self)
    }
    #[inline]
    fn recip(self) -> Self {
        1.0 / self
    }
    fn custom<F: CustomFn>(f: &F, inputs: &[f64]) -> Result<Vec<f64>, AdError> {
        let outs = rule::eval_checked(f, &column(inputs))?;
        rule::column_output(f.name(), outs)
    }
    fn custom_tangents<F: CustomFn>(
        f: &F,
        re: &[f64],
        eps: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>), AdError> {
        let (outs, r) = rule::linearize_checked(f, &column(re))?;
        let dots = rule::jvp_checked(f.name(), &r, &column(eps), &outs)?;
        Ok((
            rule::column_output(f.name(), outs)?,
            rule::column_output(f.name(), dots)?,
        ))
    }
}
