//! The vector field f_θ(h, t): the [`Dynamics`] trait the solvers use (values, VJPs and
//! JVPs on flat `f64` slices), the tape-free [`MlpDynamics`], and [`TapeDynamics`], which
//! gives any [`VectorField`] written once against ad-core's `MatOps` its derivatives.

mod field;
mod mlp;

pub use field::{TapeDynamics, VectorField, VjpMode};
pub use mlp::MlpDynamics;

/// A vector field dh/dt = f(t, h; θ) with its derivative products, on flat slices.
///
/// The state `h` has [`dim`](Dynamics::dim) entries, the parameters `theta`
/// [`num_params`](Dynamics::num_params). Every method overwrites its outputs.
pub trait Dynamics {
    /// Length of the state.
    fn dim(&self) -> usize;
    /// Length of the flat parameter vector.
    fn num_params(&self) -> usize;
    /// `out = f(t, h; θ)`.
    fn eval(&self, t: f64, h: &[f64], theta: &[f64], out: &mut [f64]);
    /// The value and the vector-Jacobian product at (t, h; θ) with cotangent `a`:
    /// `f_out = f`, `h_bar = (∂f/∂h)ᵀ a`, `theta_bar = (∂f/∂θ)ᵀ a`.
    #[allow(clippy::too_many_arguments)]
    fn vjp(
        &self,
        t: f64,
        h: &[f64],
        theta: &[f64],
        a: &[f64],
        f_out: &mut [f64],
        h_bar: &mut [f64],
        theta_bar: &mut [f64],
    );
    /// The Jacobian-vector product `out = (∂f/∂h) v + (∂f/∂θ) theta_dot`.
    fn jvp(&self, t: f64, h: &[f64], theta: &[f64], v: &[f64], theta_dot: &[f64], out: &mut [f64]);
}

impl<D: Dynamics + ?Sized> Dynamics for &D {
    fn dim(&self) -> usize {
        (**self).dim()
    }
    fn num_params(&self) -> usize {
        (**self).num_params()
    }
    fn eval(&self, t: f64, h: &[f64], theta: &[f64], out: &mut [f64]) {
        (**self).eval(t, h, theta, out)
    }
    fn vjp(
        &self,
        t: f64,
        h: &[f64],
        theta: &[f64],
        a: &[f64],
        f_out: &mut [f64],
        h_bar: &mut [f64],
        theta_bar: &mut [f64],
    ) {
        (**self).vjp(t, h, theta, a, f_out, h_bar, theta_bar)
    }
    fn jvp(&self, t: f64, h: &[f64], theta: &[f64], v: &[f64], theta_dot: &[f64], out: &mut [f64]) {
        (**self).jvp(t, h, theta, v, theta_dot, out)
    }
}
