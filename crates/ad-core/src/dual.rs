//! Forward-mode dual numbers `re + eps·ε` with ε² = 0, generic over the inner scalar.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use num_traits::{One, Zero};

use crate::error::AdError;
use crate::real::Real;
use crate::rule::CustomFn;
use crate::unary::{Sc, Unary};

/// A dual number: a value `re` and one directional derivative `eps`.
///
/// `Dual<f64>` is forward mode; `Dual<Dual<f64>>` gives second derivatives;
/// `Dual<Var>` records the tangent on the tape, so reverse mode over it yields
/// Hessian-vector products (see [`hvp`](crate::hvp)).
///
/// ```
/// use ad_core::{Dual, Real};
/// // d/dx tanh(x^2) at x = 0.7
/// let x = Dual::variable(0.7);
/// let y = (x * x).tanh();
/// let expected = 2.0 * 0.7 * (1.0 - (0.49f64).tanh().powi(2));
/// assert!((y.eps - expected).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Dual<T> {
    /// The value.
    pub re: T,
    /// The derivative along the seeded direction.
    pub eps: T,
}

/// Dual numbers over `f64`, the usual forward-mode scalar.
pub type Dual64 = Dual<f64>;

impl<T: Real> Dual<T> {
    /// A dual number from its value and derivative part.
    #[inline]
    pub fn new(re: T, eps: T) -> Self {
        Dual { re, eps }
    }
    /// A constant: derivative part zero.
    #[inline]
    pub fn constant(re: T) -> Self {
        Dual { re, eps: T::zero() }
    }
    /// The independent variable: derivative part one.
    #[inline]
    pub fn variable(re: T) -> Self {
        Dual { re, eps: T::one() }
    }
    /// `f(self)` whose value `y` is computed; the tangent comes from the table of [`Unary`].
    #[inline]
    fn elementwise(self, f: Unary, y: T) -> Self {
        let eps = f.chain(&Sc(self.re), &Sc(y), &Sc(self.eps)).0;
        Dual { re: y, eps }
    }
    /// Scale the derivative part by `d` (the chain rule for a unary function with
    /// value `v` and derivative `d`).
    #[inline]
    fn chain(self, v: T, d: T) -> Self {
        Dual {
            re: v,
            eps: self.eps * d,
        }
    }
}

impl<T: Real> PartialEq for Dual<T> {
    fn eq(&self, other: &Self) -> bool {
        self.re == other.re
    }
}
impl<T: Real> PartialOrd for Dual<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.re.partial_cmp(&other.re)
    }
}
impl<T: Real> fmt::Display for Dual<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} + {}ε", self.re, self.eps)
    }
}

impl<T: Real> Add for Dual<T> {
    type Output = Self;
    #[inline]
    fn add(self, o: Self) -> Self {
        Dual::new(self.re + o.re, self.eps + o.eps)
    }
}
impl<T: Real> Sub for Dual<T> {
    type Output = Self;
    #[inline]
    fn sub(self, o: Self) -> Self {
        Dual::new(self.re - o.re, self.eps - o.eps)
    }
}
impl<T: Real> Mul for Dual<T> {
    type Output = Self;
    #[inline]
    fn mul(self, o: Self) -> Self {
        Dual::new(self.re * o.re, self.re * o.eps + self.eps * o.re)
    }
}
impl<T: Real> Div for Dual<T> {
    type Output = Self;
    #[inline]
    fn div(self, o: Self) -> Self {
        let q = self.re / o.re;
        Dual::new(q, (self.eps - q * o.eps) / o.re)
    }
}
impl<T: Real> Neg for Dual<T> {
    type Output = Self;
    #[inline]
    fn neg(self) -> Self {
        Dual::new(-self.re, -self.eps)
    }
}

impl<T: Real> Add<f64> for Dual<T> {
    type Output = Self;
    #[inline]
    fn add(self, c: f64) -> Self {
        Dual::new(self.re + c, self.eps)
    }
}
impl<T: Real> Sub<f64> for Dual<T> {
    type Output = Self;
    #[inline]
    fn sub(self, c: f64) -> Self {
        Dual::new(self.re - c, self.eps)
    }
}
impl<T: Real> Mul<f64> for Dual<T> {
    type Output = Self;
    #[inline]
    fn mul(self, c: f64) -> Self {
        Dual::new(self.re * c, self.eps * c)
    }
}
impl<T: Real> Div<f64> for Dual<T> {
    type Output = Self;
    #[inline]
    fn div(self, c: f64) -> Self {
        Dual::new(self.re / c, self.eps / c)
    }
}
impl<T: Real> Add<Dual<T>> for f64 {
    type Output = Dual<T>;
    #[inline]
    fn add(self, x: Dual<T>) -> Dual<T> {
        x + self
    }
}
impl<T: Real> Sub<Dual<T>> for f64 {
    type Output = Dual<T>;
    #[inline]
    fn sub(self, x: Dual<T>) -> Dual<T> {
        Dual::new(-x.re + self, -x.eps)
    }
}
impl<T: Real> Mul<Dual<T>> for f64 {
    type Output = Dual<T>;
    #[inline]
    fn mul(self, x: Dual<T>) -> Dual<T> {
        x * self
    }
}
impl<T: Real> Div<Dual<T>> for f64 {
    type Output = Dual<T>;
    #[inline]
    fn div(self, x: Dual<T>) -> Dual<T> {
        let q = T::from_f64(self) / x.re;
        Dual::new(q, -(q * x.eps) / x.re)
    }
}

macro_rules! assign_ops {
    ($($tr:ident $m:ident $op:tt $rhs:ty),*) => {$(
        impl<T: Real> $tr<$rhs> for Dual<T> {
            #[inline]
            fn $m(&mut self, o: $rhs) { *self = *self $op o; }
        }
    )*};
}
assign_ops!(AddAssign add_assign + Dual<T>, SubAssign sub_assign - Dual<T>,
    MulAssign mul_assign * Dual<T>, DivAssign div_assign / Dual<T>,
    AddAssign add_assign + f64, SubAssign sub_assign - f64,
    MulAssign mul_assign * f64, DivAssign div_assign / f64);

impl<T: Real> Zero for Dual<T> {
    fn zero() -> Self {
        Dual::constant(T::zero())
    }
    fn is_zero(&self) -> bool {
        self.re.is_zero() && self.eps.is_zero()
    }
}
impl<T: Real> One for Dual<T> {
    fn one() -> Self {
        Dual::constant(T::one())
    }
}
impl<T: Real> Sum for Dual<T> {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::zero(), |a, b| a + b)
    }
}

impl<T: Real> Real for Dual<T> {
    #[inline]
    fn from_f64(x: f64) -> Self {
        Dual::constant(T::from_f64(x))
    }
    #[inline]
    fn value(&self) -> f64 {
        self.re.value()
    }
    #[inline]
    fn exp(self) -> Self {
        self.elementwise(Unary::Exp, self.re.exp())
    }
    #[inline]
    fn ln(self) -> Self {
        self.elementwise(Unary::Ln, self.re.ln())
    }
    #[inline]
    fn ln_1p(self) -> Self {
        Dual::new(self.re.ln_1p(), self.eps / (self.re + 1.0))
    }
    #[inline]
    fn sqrt(self) -> Self {
        self.elementwise(Unary::Sqrt, self.re.sqrt())
    }
    #[inline]
    fn powi(self, n: i32) -> Self {
        if n == 0 {
            return Dual::constant(T::one());
        }
        let p = self.re.powi(n - 1);
        self.chain(self.re.powi(n), p * f64::from(n))
    }
    #[inline]
    fn powf(self, y: Self) -> Self {
        let z = self.re.powf(y.re);
        let mut eps = self.eps * y.re * self.re.powf(y.re - 1.0);
        // d/dy x^y = x^y ln x, defined only for x > 0.
        if self.re.value() > 0.0 {
            eps += z * self.re.ln() * y.eps;
        }
        Dual::new(z, eps)
    }
    #[inline]
    fn sin(self) -> Self {
        self.elementwise(Unary::Sin, self.re.sin())
    }
    #[inline]
    fn cos(self) -> Self {
        self.elementwise(Unary::Cos, self.re.cos())
    }
    #[inline]
    fn tanh(self) -> Self {
        self.elementwise(Unary::Tanh, self.re.tanh())
    }
    #[inline]
    fn sigmoid(self) -> Self {
        self.elementwise(Unary::Sigmoid, self.re.sigmoid())
    }
    #[inline]
    fn softplus(self) -> Self {
        self.elementwise(Unary::Softplus, self.re.softplus())
    }
    #[inline]
    fn abs(self) -> Self {
        self.elementwise(Unary::Abs, self.re.abs())
    }
    fn custom<F: CustomFn>(f: &F, inputs: &[Self]) -> Result<Vec<Self>, AdError> {
        let re: Vec<T> = inputs.iter().map(|d| d.re).collect();
        let eps: Vec<T> = inputs.iter().map(|d| d.eps).collect();
        let (re, eps) = T::custom_tangents(f, &re, &eps)?;
        Ok(re
            .into_iter()
            .zip(eps)
            .map(|(r, e)| Dual::new(r, e))
            .collect())
    }
    #[inline]
    fn square(self) -> Self {
        // (re eps) 2 rather than re eps + eps re: one tape node fewer on `Dual<Var>`.
        self.elementwise(Unary::Square, self.re.square())
    }
}
