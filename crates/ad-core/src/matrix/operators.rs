//! Arithmetic operators for [`MatVar`] and [`DualMat`], so that matrix code reads like
//! the formula. Each operator is exactly one [`MatOps`] call (the same tape nodes):
//!
//! | expression | is |
//! |---|---|
//! | `a + b`, `a - b` | [`MatOps::add`], [`MatOps::sub`] (same shapes, else a panic with both) |
//! | `-a` | [`MatOps::neg`] |
//! | `a * c`, `c * a` (`c: f64`) | [`MatOps::scale_f64`] |
//! | `a + c`, `c + a`, `a - c` (`c: f64`) | [`MatOps::add_f64`] (with `-c` for `a - c`) |
//! | `c - a` (`c: f64`) | [`MatOps::neg`] then [`MatOps::add_f64`] |
//! | `a * s`, `s * a` (`s` the mode's scalar: [`Var`], `Dual<..>`) | [`MatOps::scale`] |
//!
//! Every operator takes its operands owned or borrowed (`&a + &b`, `a + &b`, ...). There is
//! no `a * b` between two matrices: write [`MatOps::matmul`] or [`MatOps::mul_elem`], so
//! that which product is meant is never a guess. Elementwise functions are methods of
//! [`MatOps`] (`a.sin()`, `a.abs()`, one per [`Unary`](super::Unary)).
//!
//! ```
//! use ad_core::{MatOps, Tape};
//! use nalgebra::DMatrix;
//! let tape = Tape::new();
//! let a = tape.mat_var(DMatrix::from_row_slice(2, 2, &[1.0, 2.0, 3.0, 4.0]));
//! let b = tape.mat_var(DMatrix::from_row_slice(2, 2, &[0.5, -1.0, 0.0, 2.0]));
//! let s = tape.var(3.0);
//! // 2 (a + b) - s b + 1, with operators and with the MatOps calls
//! let ops = (a + b) * 2.0 - b * s + 1.0;
//! let calls = a.add(&b).scale_f64(2.0).sub(&b.scale(s)).add_f64(1.0);
//! assert_eq!(ops.value(), calls.value());
//! let g = tape.gradient(ops.sum()).unwrap();
//! assert_eq!(g.wrt(s), -(0.5 - 1.0 + 0.0 + 2.0)); // d/ds = -sum(b)
//! assert_eq!(g.wrt_mat(&a), DMatrix::from_element(2, 2, 2.0));
//! ```

use std::ops::{Add, Mul, Neg, Sub};

use super::{DualMat, MatOps, MatVar};
use crate::dual::Dual;
use crate::var::Var;

/// `+` and `-` between two matrices of type `$t`, owned or borrowed.
macro_rules! mat_mat {
    ([$($g:tt)*] $t:ty) => {
        mat_mat!(@one [$($g)*] $t, Add, add);
        mat_mat!(@one [$($g)*] $t, Sub, sub);
    };
    (@one [$($g:tt)*] $t:ty, $tr:ident, $m:ident) => {
        impl<$($g)*> $tr<$t> for $t {
            type Output = $t;
            #[track_caller]
            fn $m(self, b: $t) -> $t {
                MatOps::$m(&self, &b)
            }
        }
        impl<'b, $($g)*> $tr<&'b $t> for $t {
            type Output = $t;
            #[track_caller]
            fn $m(self, b: &'b $t) -> $t {
                MatOps::$m(&self, b)
            }
        }
        impl<'a, $($g)*> $tr<$t> for &'a $t {
            type Output = $t;
            #[track_caller]
            fn $m(self, b: $t) -> $t {
                MatOps::$m(self, &b)
            }
        }
        impl<'a, 'b, $($g)*> $tr<&'b $t> for &'a $t {
            type Output = $t;
            #[track_caller]
            fn $m(self, b: &'b $t) -> $t {
                MatOps::$m(self, b)
            }
        }
    };
}

/// Negation, and `*`, `+`, `-` with a constant or a scalar of type `$s`, for the matrix
/// type `$t` owned and borrowed (`$r` is each in turn).
macro_rules! mat_scalar {
    ([$($g:tt)*] $t:ty, $s:ty) => {
        mat_scalar!(@each [$($g)*] $t, $t, $s);
        mat_scalar!(@each ['a, $($g)*] &'a $t, $t, $s);
    };
    (@each [$($g:tt)*] $r:ty, $t:ty, $s:ty) => {
        impl<$($g)*> Neg for $r {
            type Output = $t;
            fn neg(self) -> $t {
                MatOps::neg(&self)
            }
        }
        impl<$($g)*> Mul<f64> for $r {
            type Output = $t;
            fn mul(self, c: f64) -> $t {
                MatOps::scale_f64(&self, c)
            }
        }
        impl<$($g)*> Mul<$r> for f64 {
            type Output = $t;
            fn mul(self, a: $r) -> $t {
                MatOps::scale_f64(&a, self)
            }
        }
        impl<$($g)*> Add<f64> for $r {
            type Output = $t;
            fn add(self, c: f64) -> $t {
                MatOps::add_f64(&self, c)
            }
        }
        impl<$($g)*> Add<$r> for f64 {
            type Output = $t;
            fn add(self, a: $r) -> $t {
                MatOps::add_f64(&a, self)
            }
        }
        impl<$($g)*> Sub<f64> for $r {
            type Output = $t;
            fn sub(self, c: f64) -> $t {
                MatOps::add_f64(&self, -c)
            }
        }
        impl<$($g)*> Sub<$r> for f64 {
            type Output = $t;
            fn sub(self, a: $r) -> $t {
                MatOps::add_f64(&MatOps::neg(&a), self)
            }
        }
        impl<$($g)*> Mul<$s> for $r {
            type Output = $t;
            fn mul(self, s: $s) -> $t {
                MatOps::scale(&self, s)
            }
        }
        impl<$($g)*> Mul<$r> for $s {
            type Output = $t;
            fn mul(self, a: $r) -> $t {
                MatOps::scale(&a, self)
            }
        }
    };
}

mat_mat!([] MatVar);
mat_mat!([M: MatOps] DualMat<M>);
mat_scalar!([] MatVar, Var);
mat_scalar!([M: MatOps] DualMat<M>, Dual<M::Scalar>);
