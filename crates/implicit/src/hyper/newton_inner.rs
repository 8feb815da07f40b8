//! The library's Newton method as an [`InnerSolver`]: the default inner solver for small
//! smooth problems, handing its last Hessian factor to the backward pass.

use nalgebra::DMatrix;

use super::{InnerSolution, InnerSolver};
use crate::error::ImplicitError;
use crate::problem::Objective;
use crate::solvers::newton::{NewtonOptions, minimize_newton};

/// An [`InnerSolver`] running [`minimize_newton`] on L(·, θ) for x* with `n` entries (a
/// column), θ as one column block, from the warm start (or zeros). The factor of Newton's
/// last Hessian goes to the backward pass, which refines against exact products at x*
/// (see [`Implicit::with_factor`](crate::Implicit::with_factor)).
///
/// ```
/// use ad_core::MatOps;
/// use implicit::hyper::{ValidationLoss, hypergradient, newton_inner};
/// use implicit::solvers::newton::NewtonOptions;
/// use implicit::{IftOptions, Objective};
/// // x*(λ) = argmin ½‖x − 1‖² + ½ λ‖x‖² = 1/(1 + λ);  V = ½‖x‖²
/// struct Inner;
/// impl Objective for Inner {
///     fn value<M: MatOps>(&self, x: &M, l: &[M]) -> M::Scalar {
///         x.add_f64(-1.0).sq_norm() * 0.5 + l[0].get(0, 0) * x.sq_norm() * 0.5
///     }
/// }
/// struct Val;
/// impl ValidationLoss for Val {
///     fn loss<M: MatOps>(&self, x: &M, _l: &M) -> M::Scalar { x.sq_norm() * 0.5 }
/// }
/// let mut solver = newton_inner(&Inner, 3, NewtonOptions::default());
/// let h = hypergradient(&Inner, &Val, &[0.5], &mut solver, &IftOptions::default()).unwrap();
/// // dV/dλ = 3 x* dx*/dλ = -3 / (1 + λ)³
/// assert!((h.grad[0] + 3.0 / 1.5f64.powi(3)).abs() < 1e-12);
/// ```
pub fn newton_inner<O: Objective + ?Sized>(
    objective: &O,
    n: usize,
    options: NewtonOptions,
) -> impl InnerSolver + '_ {
    move |theta: &[f64], warm: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
        let x0 = match warm {
            Some(w) if w.len() == n => DMatrix::from_column_slice(n, 1, w),
            Some(w) => {
                return Err(ImplicitError::Dimension {
                    what: "warm start of the Newton inner solver",
                    expected: n,
                    got: w.len(),
                });
            }
            None => DMatrix::zeros(n, 1),
        };
        let t = [DMatrix::from_column_slice(theta.len(), 1, theta)];
        let s = minimize_newton(objective, &t, &x0, &options)?;
        Ok(InnerSolution {
            x: s.x.as_slice().to_vec(),
            iterations: s.report.iterations,
            factor: s.factor,
        })
    }
}
