//! How a solution is defined: a root, an argmin or a fixed point, written once against
//! ad-core's [`MatOps`] so the same code is evaluated, differentiated and linearized.
//!
//! The unknown `x` (length n) and the parameters `theta` (length p) are column vectors
//! (`n x 1`, `p x 1`). Code that needs matrix-shaped parameters cuts them out of `theta`
//! with [`MatOps::slice`] and [`MatOps::reshape`] (one tape node each).

use ad_core::{MatOps, Real};

/// A root condition F(x, θ) = 0, with F returning an `n x 1` column like `x`.
pub trait RootCondition {
    /// F(x, θ).
    fn residual<M: MatOps>(&self, x: &M, theta: &M) -> M;
}

/// An objective L(x, θ) whose minimizer over x is the solution: F(x, θ) = ∇ₓL(x, θ) = 0.
pub trait Objective {
    /// L(x, θ).
    fn value<M: MatOps>(&self, x: &M, theta: &M) -> M::Scalar;
}

/// A map f(z, θ) whose fixed point z = f(z, θ) is the solution: F(z, θ) = f(z, θ) − z.
pub trait FixedPointMap {
    /// f(z, θ).
    fn map<M: MatOps>(&self, z: &M, theta: &M) -> M;
}

/// A root condition written with scalars (for small problems): F(x, θ) as a vector.
pub trait ScalarRootCondition {
    /// F(x, θ).
    fn residual<S: Real>(&self, x: &[S], theta: &[S]) -> Vec<S>;
}

/// An objective written with scalars (for small problems).
pub trait ScalarObjective {
    /// L(x, θ).
    fn value<S: Real>(&self, x: &[S], theta: &[S]) -> S;
}

/// Entries of a column as scalars (one node each on a tape).
fn column_scalars<M: MatOps>(m: &M) -> Vec<M::Scalar> {
    (0..m.nrows()).map(|i| m.get(i, 0)).collect()
}

/// Adapter: a [`ScalarRootCondition`] seen as a [`RootCondition`].
#[derive(Clone, Debug)]
pub struct Scalars<T>(pub T);

impl<T: ScalarRootCondition> RootCondition for Scalars<T> {
    fn residual<M: MatOps>(&self, x: &M, theta: &M) -> M {
        let f = self.0.residual(&column_scalars(x), &column_scalars(theta));
        x.from_scalars_like(f.len(), 1, &f)
    }
}

impl<T: ScalarObjective> Objective for Scalars<T> {
    fn value<M: MatOps>(&self, x: &M, theta: &M) -> M::Scalar {
        self.0.value(&column_scalars(x), &column_scalars(theta))
    }
}

/// The root condition of a fixed-point map: F(z, θ) = f(z, θ) − z.
#[derive(Clone, Debug)]
pub struct FixedPointResidual<F>(pub F);

impl<F: FixedPointMap> RootCondition for FixedPointResidual<F> {
    fn residual<M: MatOps>(&self, z: &M, theta: &M) -> M {
        self.0.map(z, theta).sub(z)
    }
}
