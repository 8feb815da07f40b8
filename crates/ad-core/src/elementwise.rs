//! Elementwise application of [`Unary`] functions to `f64` slices.
//!
//! The transcendental functions dominate network-sized work (see DESIGN.md), so the hot
//! ones go through the vectorized kernels of [`crate::kernels`] (at most 2 ulp from std).

use crate::kernels;
use crate::unary::Unary;

/// `out[i] = f(x[i])`.
pub(crate) fn apply(f: Unary, x: &[f64], out: &mut [f64]) {
    debug_assert_eq!(x.len(), out.len());
    match f {
        Unary::Relu => map(x, out, |v| if v > 0.0 { v } else { 0.0 }),
        Unary::Square => map(x, out, |v| v * v),
        Unary::Abs => map(x, out, f64::abs),
        Unary::Sqrt => map(x, out, f64::sqrt),
        Unary::Tanh => kernels::tanh(x, out),
        Unary::Exp => kernels::exp(x, out),
        Unary::Ln => kernels::ln(x, out),
        Unary::Sigmoid => kernels::sigmoid(x, out),
        Unary::Softplus => kernels::softplus(x, out),
        Unary::Sin | Unary::Cos => map(x, out, |v| f.apply(v)),
    }
}

#[inline]
fn map(x: &[f64], out: &mut [f64], f: impl Fn(f64) -> f64) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}
