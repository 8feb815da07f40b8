//! The elementwise functions of the matrix tier ([`Unary`]) and the one table of their
//! derivatives, which every mode uses: `Var` and `Dual` (scalars), the tape's reverse rule
//! (plain `f64` slices) and `DualMat` (whole matrices of any mode).

use crate::real::{Real, sign_f64};

/// Elementwise functions available on matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Unary {
    /// tanh(x).
    Tanh,
    /// e^x.
    Exp,
    /// ln(x).
    Ln,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// ln(1 + e^x).
    Softplus,
    /// max(x, 0); derivative 0 at 0.
    Relu,
    /// sqrt(x).
    Sqrt,
    /// x^2.
    Square,
    /// |x|; derivative 0 at 0.
    Abs,
    /// sin(x).
    Sin,
    /// cos(x).
    Cos,
}

/// The arithmetic a derivative rule needs, on one scalar or one whole matrix of any mode
/// (matrices: elementwise). Scalars take part through [`Sc`].
pub(crate) trait ChainArith: Sized {
    /// `self * b`.
    fn mul(&self, b: &Self) -> Self;
    /// `self / b`.
    fn div(&self, b: &Self) -> Self;
    /// `self - b`.
    fn sub(&self, b: &Self) -> Self;
    /// `c * self`.
    fn scale(&self, c: f64) -> Self;
    /// `f(self)`.
    fn apply(&self, f: Unary) -> Self;
    /// A constant (no derivative) holding `f` of the primal values.
    fn constant_map(&self, f: fn(f64) -> f64) -> Self;
}

/// A scalar of any mode seen as [`ChainArith`].
#[derive(Clone, Copy)]
pub(crate) struct Sc<S>(pub S);

impl<S: Real> ChainArith for Sc<S> {
    #[inline(always)]
    fn mul(&self, b: &Self) -> Self {
        Sc(self.0 * b.0)
    }
    #[inline(always)]
    fn div(&self, b: &Self) -> Self {
        Sc(self.0 / b.0)
    }
    #[inline(always)]
    fn sub(&self, b: &Self) -> Self {
        Sc(self.0 - b.0)
    }
    #[inline(always)]
    fn scale(&self, c: f64) -> Self {
        Sc(self.0 * c)
    }
    #[inline(always)]
    fn apply(&self, f: Unary) -> Self {
        Sc(f.apply(self.0))
    }
    #[inline(always)]
    fn constant_map(&self, f: fn(f64) -> f64) -> Self {
        Sc(S::from_f64(f(self.0.value())))
    }
}

/// The derivative of ReLU: 1 for x > 0, else 0.
#[inline(always)]
fn step(x: f64) -> f64 {
    if x > 0.0 { 1.0 } else { 0.0 }
}

impl Unary {
    /// Every elementwise function, for tests and tables.
    pub const ALL: [Unary; 11] = [
        Unary::Tanh,
        Unary::Exp,
        Unary::Ln,
        Unary::Sigmoid,
        Unary::Softplus,
        Unary::Relu,
        Unary::Sqrt,
        Unary::Square,
        Unary::Abs,
        Unary::Sin,
        Unary::Cos,
    ];

    /// Apply the function to one scalar of any mode.
    pub fn apply<S: Real>(self, x: S) -> S {
        match self {
            Unary::Tanh => x.tanh(),
            Unary::Exp => x.exp(),
            Unary::Ln => x.ln(),
            Unary::Sigmoid => x.sigmoid(),
            Unary::Softplus => x.softplus(),
            Unary::Relu => x.relu(),
            Unary::Sqrt => x.sqrt(),
            Unary::Square => x.square(),
            Unary::Abs => x.abs(),
            Unary::Sin => x.sin(),
            Unary::Cos => x.cos(),
        }
    }

    /// The other elementwise function whose value at `x` the derivative uses, if any:
    /// softplus' = sigmoid, sin' = cos, cos' = -sin.
    pub const fn derivative_uses(self) -> Option<Unary> {
        match self {
            Unary::Softplus => Some(Unary::Sigmoid),
            Unary::Sin => Some(Unary::Cos),
            Unary::Cos => Some(Unary::Sin),
            _ => None,
        }
    }

    /// `g * f'(x)` from `x`, the value `y = f(x)` and `aux = h(x)` where `h` is
    /// [`Unary::derivative_uses`] (`aux` is not read when that is `None`).
    ///
    /// This is the only place where the derivatives of the elementwise functions are
    /// written; `g` is a tangent (forward mode) or an adjoint (reverse mode).
    #[inline(always)]
    pub(crate) fn chain_with<A: ChainArith>(self, x: &A, y: &A, aux: &A, g: &A) -> A {
        match self {
            Unary::Tanh => g.sub(&y.mul(y).mul(g)),
            Unary::Exp => y.mul(g),
            Unary::Ln => g.div(x),
            Unary::Sigmoid => y.sub(&y.mul(y)).mul(g),
            Unary::Softplus | Unary::Sin => aux.mul(g),
            Unary::Cos => aux.mul(g).scale(-1.0),
            Unary::Relu => x.constant_map(step).mul(g),
            Unary::Sqrt => g.div(y).scale(0.5),
            Unary::Square => x.mul(g).scale(2.0),
            Unary::Abs => x.constant_map(sign_f64).mul(g),
        }
    }

    /// `g * f'(x)` from `x` and `y = f(x)` (computes the auxiliary value when needed).
    #[inline]
    pub(crate) fn chain<A: ChainArith>(self, x: &A, y: &A, g: &A) -> A {
        match self.derivative_uses() {
            Some(h) => self.chain_with(x, y, &x.apply(h), g),
            None => self.chain_with(x, y, x, g),
        }
    }

    /// The derivative `f'(x)`, given `x` and the already computed `y = f(x)`.
    ///
    /// ```
    /// use ad_core::Unary;
    /// let (x, y) = (0.3f64, 0.3f64.tanh());
    /// assert_eq!(Unary::Tanh.derivative(x, y), 1.0 - y * y);
    /// ```
    pub fn derivative<S: Real>(self, x: S, y: S) -> S {
        self.chain(&Sc(x), &Sc(y), &Sc(S::one())).0
    }

    /// The second derivative `f''(x)`, given `x`, `y = f(x)` and `d = f'(x)`: the
    /// derivative rule above run on dual numbers (no second table to keep in step).
    ///
    /// ```
    /// use ad_core::Unary;
    /// let (x, y) = (0.3f64, 0.3f64.tanh());
    /// let d2 = Unary::Tanh.second_derivative(x, y, 1.0 - y * y);
    /// assert!((d2 - (-2.0 * y * (1.0 - y * y))).abs() < 1e-15);
    /// ```
    pub fn second_derivative(self, x: f64, y: f64, d: f64) -> f64 {
        let aux = self.derivative_uses().map_or(x, |h| h.apply(x));
        self.second_derivative_with(x, y, d, aux)
    }

    /// [`Unary::second_derivative`] given also `aux = h(x)` for `h` =
    /// [`Unary::derivative_uses`] (not read when that is `None`): no transcendental
    /// function is evaluated for tanh, exp, sigmoid, softplus, square, sqrt, ln.
    #[inline]
    pub(crate) fn second_derivative_with(self, x: f64, y: f64, d: f64, aux: f64) -> f64 {
        use crate::Dual;
        let aux = match self.derivative_uses() {
            Some(h) => Dual::new(aux, h.derivative(x, aux)),
            None => Dual::new(x, 1.0),
        };
        let r = self.chain_with(
            &Sc(Dual::new(x, 1.0)),
            &Sc(Dual::new(y, d)),
            &Sc(aux),
            &Sc(Dual::new(1.0, 0.0)),
        );
        r.0.eps
    }
}
