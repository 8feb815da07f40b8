//! Adapters between the problem traits: problems written with plain scalars
//! ([`ScalarObjective`], [`ScalarRootCondition`] wrapped in [`Scalars`]) and the root
//! condition of a fixed-point map ([`FixedPointResidual`]).
//!
//! A scalar problem sees `x` as the column-major list of its entries and θ as the
//! entries of every block, block after block (each column-major), so it works for any
//! shapes; its residual has as many entries as `x` and is put back in `x`'s shape.

use ad_core::{MatOps, Real};

use crate::problem::{FixedPointMap, Objective, RootCondition};

/// A root condition written with scalars (for small problems): F(x, θ) as a list with one
/// entry per entry of `x`.
pub trait ScalarRootCondition {
    /// F(x, θ).
    fn residual<S: Real>(&self, x: &[S], theta: &[S]) -> Vec<S>;
}

/// An objective written with scalars (for small problems).
pub trait ScalarObjective {
    /// L(x, θ).
    fn value<S: Real>(&self, x: &[S], theta: &[S]) -> S;
}

/// Entries of a matrix as scalars, column-major (one node each on a tape).
fn entries<M: MatOps>(m: &M) -> Vec<M::Scalar> {
    let (r, c) = m.shape();
    (0..c)
        .flat_map(|j| (0..r).map(move |i| (i, j)))
        .map(|(i, j)| m.get(i, j))
        .collect()
}

/// Entries of every block, block after block.
fn block_entries<M: MatOps>(blocks: &[M]) -> Vec<M::Scalar> {
    blocks.iter().flat_map(|b| entries(b)).collect()
}

/// Adapter: a [`ScalarRootCondition`] or [`ScalarObjective`] seen as a [`RootCondition`]
/// or [`Objective`].
#[derive(Clone, Debug)]
pub struct Scalars<T>(pub T);

impl<T: ScalarRootCondition> RootCondition for Scalars<T> {
    fn residual<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
        let f = self.0.residual(&entries(x), &block_entries(theta));
        let (r, c) = x.shape();
        if f.len() == r * c {
            x.from_scalars_like(r, c, &f)
        } else {
            // A wrong length comes back as a column, which the caller's shape check names.
            x.from_scalars_like(f.len(), 1, &f)
        }
    }
}

impl<T: ScalarObjective> Objective for Scalars<T> {
    fn value<M: MatOps>(&self, x: &M, theta: &[M]) -> M::Scalar {
        self.0.value(&entries(x), &block_entries(theta))
    }
}

/// The root condition of a fixed-point map: F(z, θ) = f(z, θ) − z.
#[derive(Clone, Debug)]
pub struct FixedPointResidual<F>(pub F);

impl<F: FixedPointMap> RootCondition for FixedPointResidual<F> {
    fn residual<M: MatOps>(&self, z: &M, theta: &[M]) -> M {
        let f = self.0.map(z, theta);
        if f.shape() != z.shape() {
            // Returned as is: the caller's shape check names both shapes (subtracting
            // would panic inside ad-core).
            return f;
        }
        f.sub(z)
    }
}
