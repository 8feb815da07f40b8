//! How a solution is defined: a root, an argmin or a fixed point, written once against
//! ad-core's [`MatOps`] so the same code is evaluated, differentiated and linearized.
//!
//! The unknown `x` is a matrix of any shape (a column, or a batch of states as columns);
//! the parameters `theta` are several matrices of any shapes (for example `[W, U, b]`).
//! A residual F(x, θ) and a map f(z, θ) return a matrix of the same shape as `x` (or `z`);
//! anything else is reported as [`ImplicitError::Shape`](crate::ImplicitError::Shape).
//!
//! Each trait is implemented for `&T`, `Arc<T>`, `Rc<T>` and `Box<T>`, so a problem that
//! holds a large dataset can be shared by many nodes without copying it.
//!
//! Problems written with plain scalars, and the root condition of a fixed-point map, live
//! in [`adapters`](crate::adapters).

use std::rc::Rc;
use std::sync::Arc;

use ad_core::MatOps;

/// A root condition F(x, θ) = 0; F returns a matrix of the same shape as `x`.
pub trait RootCondition {
    /// F(x, θ), with `theta` the parameter blocks in their declared order.
    fn residual<M: MatOps>(&self, x: &M, theta: &[M]) -> M;
}

/// An objective L(x, θ) whose minimizer over x is the solution: F(x, θ) = ∇ₓL(x, θ) = 0.
pub trait Objective {
    /// L(x, θ), with `theta` the parameter blocks in their declared order.
    fn value<M: MatOps>(&self, x: &M, theta: &[M]) -> M::Scalar;
}

/// A map f(z, θ) whose fixed point z = f(z, θ) is the solution: F(z, θ) = f(z, θ) − z.
/// f returns a matrix of the same shape as `z`.
pub trait FixedPointMap {
    /// f(z, θ), with `theta` the parameter blocks in their declared order.
    fn map<M: MatOps>(&self, z: &M, theta: &[M]) -> M;
}

/// Implement the three problem traits for a pointer type that dereferences to the problem.
macro_rules! forward_through {
    ($($ptr:ty),*) => {$(
        impl<T: RootCondition + ?Sized> RootCondition for $ptr {
            fn residual<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
                (**self).residual(x, theta)
            }
        }
        impl<T: Objective + ?Sized> Objective for $ptr {
            fn value<M: MatOps>(&self, x: &M, theta: &[M]) -> M::Scalar {
                (**self).value(x, theta)
            }
        }
        impl<T: FixedPointMap + ?Sized> FixedPointMap for $ptr {
            fn map<M: MatOps>(&self, z: &M, theta: &[M]) -> M {
                (**self).map(z, theta)
            }
        }
    )*};
}

forward_through!(&T, Arc<T>, Rc<T>, Box<T>);
