//! The reverse-mode scalar [`Var`].

use std::fmt;
use std::iter::Sum;
use std::marker::PhantomData;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

use num_traits::{One, Zero};

use crate::custom::record;
use crate::error::AdError;
use crate::real::{Real, column, sigmoid_f64, softplus_sigmoid_f64};
use crate::rule::{self, CustomFn, CustomRule};
use crate::tape::{NONE, Tape, linear, push_scalar};
use crate::unary::{Sc, Unary};

/// A scalar recorded on a [`Tape`] (or a constant, which is recorded nowhere).
///
/// `Var` is 16 bytes and `Copy`: it carries its value, the id of its tape and its node index.
/// Arithmetic on variables records nodes on their tape; arithmetic involving only constants
/// records nothing. Using a `Var` after its tape's scope ended panics with a clear message.
/// Tapes are thread-local, so `Var` is neither `Send` nor `Sync` (num-traits and nalgebra's
/// `Scalar` do not ask for either; nalgebra's `RealField`/`ComplexField` would).
///
/// ```
/// use ad_core::{Real, Tape, Var};
/// let tape = Tape::new();
/// let x = tape.var(0.5);
/// let c = Var::constant(3.0);
/// let y = (x * c).exp();
/// assert_eq!(tape.gradient(y).unwrap().wrt(x), 3.0 * 1.5f64.exp());
/// ```
#[derive(Clone, Copy)]
pub struct Var {
    value: f64,
    tape: u32,
    index: u32,
    /// Tape ids are per thread: a `Var` must not leave its thread (`!Send`, `!Sync`).
    _thread: PhantomData<*const ()>,
}

impl Var {
    /// A constant: recorded on no tape, derivative zero.
    #[inline]
    pub const fn constant(value: f64) -> Var {
        Var {
            value,
            tape: 0,
            index: NONE,
            _thread: PhantomData,
        }
    }

    /// True when this is a constant (not on any tape).
    #[inline]
    pub fn is_constant(&self) -> bool {
        self.index == NONE
    }

    /// The id of the tape this variable lives on (0 for constants).
    #[inline]
    pub fn tape_id(&self) -> u32 {
        self.tape
    }

    #[inline]
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    #[inline]
    pub(crate) fn from_parts(value: f64, tape: u32, index: u32) -> Var {
        Var {
            value,
            tape,
            index,
            _thread: PhantomData,
        }
    }

    /// Record a unary node `value = f(self)` with derivative `d`.
    #[inline]
    pub(crate) fn unary(self, value: f64, d: f64) -> Var {
        self.unary_curved(value, d, || 0.0)
    }

    /// Record `y = f(self)` with `f'(self) = d`; `d2` gives `f''(self)`, asked for only on
    /// second-order tapes.
    #[inline]
    pub(crate) fn unary_curved(self, value: f64, d: f64, d2: impl FnOnce() -> f64) -> Var {
        if self.is_constant() {
            return Var::constant(value);
        }
        let index = push_scalar(self.tape, [self.index, NONE], [d, 0.0], || [d2(), 0.0, 0.0]);
        Var::from_parts(value, self.tape, index)
    }

    /// Record `y = f(self)` with the derivative from the table of [`Unary`]; `aux` is the
    /// auxiliary value it needs (see [`Unary::derivative_uses`]; ignored if none).
    #[inline]
    fn elementwise(self, f: Unary, y: f64, aux: f64) -> Var {
        let d = f.chain_with(&Sc(self.value), &Sc(y), &Sc(aux), &Sc(1.0)).0;
        let x = self.value;
        self.unary_curved(y, d, || f.second_derivative(x, y, d))
    }

    /// Record a binary node `value = f(a, b)` with partials `da`, `db`.
    #[inline]
    pub(crate) fn binary(a: Var, b: Var, value: f64, da: f64, db: f64) -> Var {
        Var::binary_curved(a, b, value, da, db, linear)
    }

    /// Record a binary node as [`Var::binary`] does; `h` gives its second partials
    /// `[∂²/∂a², ∂²/∂a∂b, ∂²/∂b²]`, asked for only on second-order tapes.
    #[inline]
    pub(crate) fn binary_curved(
        a: Var,
        b: Var,
        value: f64,
        da: f64,
        db: f64,
        h: impl FnOnce() -> [f64; 3],
    ) -> Var {
        match (a.is_constant(), b.is_constant()) {
            (true, true) => Var::constant(value),
            (false, true) => a.unary_curved(value, da, || h()[0]),
            (true, false) => b.unary_curved(value, db, || h()[2]),
            (false, false) => {
                if a.tape != b.tape {
                    // Let the tape explain which of the two is stale or outer.
                    let stale = if crate::tape::active_id() == Some(a.tape) {
                        b.tape
                    } else {
                        a.tape
                    };
                    crate::tape::with_tape(stale, |_| ());
                }
                let index = push_scalar(a.tape, [a.index, b.index], [da, db], h);
                Var::from_parts(value, a.tape, index)
            }
        }
    }
}

impl Var {
    /// Record a custom op on scalars (see [`crate::custom_scalar_op`]); constants out if
    /// every input is a constant.
    pub(crate) fn record_custom(
        rule: Box<dyn CustomRule>,
        inputs: &[Var],
        outputs: &[f64],
    ) -> Vec<Var> {
        let Some(tape) = record::common_tape(
            inputs
                .iter()
                .filter(|v| !v.is_constant())
                .map(|v| v.tape_id()),
        ) else {
            return outputs.iter().map(|&v| Var::constant(v)).collect();
        };
        let in_ids: Vec<u32> = inputs.iter().map(|v| v.index()).collect();
        let ids = record::record_scalars(tape, rule, in_ids, outputs.len());
        ids.iter()
            .zip(outputs)
            .map(|(&i, &v)| Var::from_parts(v, tape, i))
            .collect()
    }
}

impl Tape {
    /// A new independent variable on this tape.
    pub fn var(&self, value: f64) -> Var {
        let index = push_scalar(self.id(), [NONE, NONE], [0.0, 0.0], linear);
        Var::from_parts(value, self.id(), index)
    }

    /// New independent variables on this tape, one per value.
    pub fn vars(&self, values: &[f64]) -> Vec<Var> {
        values.iter().map(|&v| self.var(v)).collect()
    }
}

impl fmt::Debug for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_constant() {
            write!(f, "Var(const {})", self.value)
        } else {
            write!(f, "Var({} @tape{}#{})", self.value, self.tape, self.index)
        }
    }
}
impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.value, f)
    }
}
impl PartialEq for Var {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl PartialOrd for Var {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}
impl From<f64> for Var {
    fn from(x: f64) -> Var {
        Var::constant(x)
    }
}

impl Add for Var {
    type Output = Var;
    #[inline]
    fn add(self, o: Var) -> Var {
        Var::binary(self, o, self.value + o.value, 1.0, 1.0)
    }
}
impl Sub for Var {
    type Output = Var;
    #[inline]
    fn sub(self, o: Var) -> Var {
        Var::binary(self, o, self.value - o.value, 1.0, -1.0)
    }
}
impl Mul for Var {
    type Output = Var;
    #[inline]
    fn mul(self, o: Var) -> Var {
        Var::binary_curved(self, o, self.value * o.value, o.value, self.value, || {
            [0.0, 1.0, 0.0]
        })
    }
}
impl Div for Var {
    type Output = Var;
    #[inline]
    fn div(self, o: Var) -> Var {
        // The value is a true division, so it is bit-identical to plain f64 evaluation.
        let inv = 1.0 / o.value;
        let q = self.value / o.value;
        // a/b: ∂²/∂a∂b = -1/b², ∂²/∂b² = 2a/b³ = 2q/b².
        Var::binary_curved(self, o, q, inv, -q * inv, || {
            [0.0, -inv * inv, 2.0 * q * inv * inv]
        })
    }
}
impl Neg for Var {
    type Output = Var;
    #[inline]
    fn neg(self) -> Var {
        self.unary(-self.value, -1.0)
    }
}
impl Add<f64> for Var {
    type Output = Var;
    #[inline]
    fn add(self, c: f64) -> Var {
        self.unary(self.value + c, 1.0)
    }
}
impl Sub<f64> for Var {
    type Output = Var;
    #[inline]
    fn sub(self, c: f64) -> Var {
        self.unary(self.value - c, 1.0)
    }
}
impl Mul<f64> for Var {
    type Output = Var;
    #[inline]
    fn mul(self, c: f64) -> Var {
        self.unary(self.value * c, c)
    }
}
impl Div<f64> for Var {
    type Output = Var;
    #[inline]
    fn div(self, c: f64) -> Var {
        self.unary(self.value / c, 1.0 / c)
    }
}
impl Add<Var> for f64 {
    type Output = Var;
    #[inline]
    fn add(self, x: Var) -> Var {
        x + self
    }
}
impl Sub<Var> for f64 {
    type Output = Var;
    #[inline]
    fn sub(self, x: Var) -> Var {
        x.unary(self - x.value, -1.0)
    }
}
impl Mul<Var> for f64 {
    type Output = Var;
    #[inline]
    fn mul(self, x: Var) -> Var {
        x * self
    }
}
impl Div<Var> for f64 {
    type Output = Var;
    #[inline]
    fn div(self, x: Var) -> Var {
        let q = self / x.value;
        x.unary_curved(q, -q / x.value, || 2.0 * q / (x.value * x.value))
    }
}

macro_rules! var_assign_ops {
    ($($tr:ident $m:ident $op:tt $rhs:ty),*) => {$(
        impl $tr<$rhs> for Var {
            #[inline]
            fn $m(&mut self, o: $rhs) { *self = *self $op o; }
        }
    )*};
}
var_assign_ops!(AddAssign add_assign + Var, SubAssign sub_assign - Var,
    MulAssign mul_assign * Var, DivAssign div_assign / Var,
    AddAssign add_assign + f64, SubAssign sub_assign - f64,
    MulAssign mul_assign * f64, DivAssign div_assign / f64);

impl Zero for Var {
    fn zero() -> Var {
        Var::constant(0.0)
    }
    fn is_zero(&self) -> bool {
        self.is_constant() && self.value == 0.0
    }
}
impl One for Var {
    fn one() -> Var {
        Var::constant(1.0)
    }
}
impl Sum for Var {
    fn sum<I: Iterator<Item = Var>>(iter: I) -> Var {
        iter.fold(Var::zero(), |a, b| a + b)
    }
}

impl Real for Var {
    #[inline]
    fn from_f64(x: f64) -> Var {
        Var::constant(x)
    }
    #[inline]
    fn value(&self) -> f64 {
        self.value
    }
    #[inline]
    fn exp(self) -> Var {
        let v = self.value.exp();
        self.elementwise(Unary::Exp, v, v)
    }
    #[inline]
    fn ln(self) -> Var {
        self.elementwise(Unary::Ln, self.value.ln(), 0.0)
    }
    #[inline]
    fn ln_1p(self) -> Var {
        let d = 1.0 / (1.0 + self.value);
        self.unary_curved(self.value.ln_1p(), d, || -d * d)
    }
    #[inline]
    fn sqrt(self) -> Var {
        self.elementwise(Unary::Sqrt, self.value.sqrt(), 0.0)
    }
    #[inline]
    fn powi(self, n: i32) -> Var {
        if n == 0 {
            return Var::constant(1.0);
        }
        let p = self.value.powi(n - 1);
        let x = self.value;
        self.unary_curved(x.powi(n), f64::from(n) * p, || {
            f64::from(n) * f64::from(n - 1) * x.powi(n - 2)
        })
    }
    #[inline]
    fn powf(self, y: Var) -> Var {
        let v = self.value.powf(y.value);
        let dx = y.value * self.value.powf(y.value - 1.0);
        let dy = if self.value > 0.0 {
            v * self.value.ln()
        } else {
            0.0
        };
        let (a, b) = (self.value, y.value);
        Var::binary_curved(self, y, v, dx, dy, || {
            // a^b: ∂²/∂a² = b(b-1)a^(b-2), ∂²/∂a∂b = a^(b-1)(1 + b ln a), ∂²/∂b² = a^b ln²a.
            let ln = if a > 0.0 { a.ln() } else { 0.0 };
            [
                b * (b - 1.0) * a.powf(b - 2.0),
                a.powf(b - 1.0) * (1.0 + b * ln),
                v * ln * ln,
            ]
        })
    }
    #[inline]
    fn sin(self) -> Var {
        self.elementwise(Unary::Sin, self.value.sin(), self.value.cos())
    }
    #[inline]
    fn cos(self) -> Var {
        self.elementwise(Unary::Cos, self.value.cos(), self.value.sin())
    }
    #[inline]
    fn tanh(self) -> Var {
        self.elementwise(Unary::Tanh, self.value.tanh(), 0.0)
    }
    #[inline]
    fn sigmoid(self) -> Var {
        self.elementwise(Unary::Sigmoid, sigmoid_f64(self.value), 0.0)
    }
    #[inline]
    fn softplus(self) -> Var {
        // Softplus and its derivative's sigmoid share one `exp`.
        let (v, s) = softplus_sigmoid_f64(self.value);
        self.elementwise(Unary::Softplus, v, s)
    }
    #[inline]
    fn abs(self) -> Var {
        self.elementwise(Unary::Abs, self.value.abs(), 0.0)
    }
    #[inline]
    fn square(self) -> Var {
        self.elementwise(Unary::Square, self.value * self.value, 0.0)
    }
    fn custom<F: CustomFn>(f: &F, inputs: &[Var]) -> Result<Vec<Var>, AdError> {
        let values: Vec<f64> = inputs.iter().map(|v| v.value).collect();
        let (outs, r) = rule::linearize_checked(f, &column(&values))?;
        let outs = rule::column_output(f.name(), outs)?;
        Ok(Var::record_custom(Box::new(r), inputs, &outs))
    }
    #[inline]
    fn recip(self) -> Var {
        let r = 1.0 / self.value;
        self.unary_curved(r, -r * r, || 2.0 * r * r * r)
    }
}
