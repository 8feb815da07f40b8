//! Library solvers as forward solvers of solver nodes: given θ, return x*.

use nalgebra::DMatrix;

use crate::checks;
use crate::error::ImplicitError;
use crate::problem::Objective;
use crate::solvers::argmin_rs::{ArgminMethod, minimize};

/// A forward solver for [`implicit_node`](crate::implicit_node) /
/// [`implicit_scalar_node`](crate::implicit_scalar_node): given θ (one column block),
/// minimize L(·, θ) from `x0` with argmin and return x*. A run that stops short fails the
/// node (no tape entry); θ in several blocks is [`ImplicitError::BlockCount`].
///
/// Keep [`IftOptions::residual_tol`](crate::IftOptions::residual_tol) above the solver's
/// `grad_tol`: the node checks ‖∇ₓL(x*, θ)‖ again before recording.
///
/// ```
/// use ad_core::{MatOps, Real, Tape};
/// use implicit::solvers::argmin_rs::ArgminMethod;
/// use implicit::solvers::forward_solver;
/// use implicit::{implicit_node, Argmin, IftOptions, Objective};
/// // x*(θ) = argmin_x ½‖x − θ‖² + ¼‖x‖⁴, differentiated through a tape
/// #[derive(Clone)]
/// struct Obj;
/// impl Objective for Obj {
///     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
///         x.sub(&t[0]).sq_norm() * 0.5 + x.sq_norm().square() * 0.25
///     }
/// }
/// let tape = Tape::new();
/// let theta = tape.vector_var(&[1.0, -0.5]);
/// let solve = forward_solver(&Obj, vec![0.0; 2], ArgminMethod::default());
/// let (x, node) = implicit_node(Argmin(Obj), &[theta], solve, IftOptions::default()).unwrap();
/// let g = tape.gradient(x.sum()).unwrap();
/// assert_eq!(g.wrt_mat(&theta).len(), 2);
/// assert!(node.forward_residual <= 1e-8);
/// ```
pub fn forward_solver<O: Objective>(
    objective: &O,
    x0: Vec<f64>,
    method: ArgminMethod,
) -> impl FnOnce(&[DMatrix<f64>]) -> Result<Vec<f64>, ImplicitError> + '_ {
    move |theta: &[DMatrix<f64>]| {
        if theta.len() != 1 {
            return Err(ImplicitError::BlockCount {
                what: "argmin forward_solver parameters (one column block)",
                expected: 1,
                got: theta.len(),
            });
        }
        checks::shape(
            "argmin forward_solver parameters (one column block)",
            (theta[0].len(), 1),
            theta[0].shape(),
        )?;
        minimize(objective, theta[0].as_slice(), &x0, &method)
            .map(|s| s.x)
            .map_err(ImplicitError::from)
    }
}
