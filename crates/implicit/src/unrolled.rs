//! The unrolled baseline: differentiate *through* T iterations of a solver instead of at its
//! solution. Its memory grows linearly with T and, stopped early, its derivative is biased;
//! it is here to be compared with the implicit approach, and because some users need it.
//!
//! Two forms:
//! - [`unroll_on_tape`]: any iteration z ← f(z, θ) written as a [`FixedPointMap`] (the
//!   same trait the implicit fixed point uses) is recorded on θ's tape, T times; a loss of
//!   the result backpropagates with `Tape::gradient`.
//! - [`unrolled_gradient_descent`]: gradient descent on any [`Objective`], differentiated in
//!   reverse by replaying the stored iterates with exact second-order products (no tape, the
//!   same numbers as reverse mode through the loop).

use ad_core::{MatOps, MatVar};
use nalgebra::DMatrix;

use crate::checks::column;
use crate::error::{ImplicitError, check_finite};
use crate::linearize::ArgminHessian;
use crate::problem::{FixedPointMap, Objective};

/// Record `iterations` steps z ← f(z, θ) of a [`FixedPointMap`] from `x0` (any shape) on
/// θ's tape and return z_T.
///
/// ```
/// use ad_core::{MatOps, Tape};
/// use implicit::FixedPointMap;
/// use implicit::unrolled::unroll_on_tape;
/// use nalgebra::DMatrix;
/// // x ← x − η (x − θ): converges to θ, so dx_T/dθ → 1.
/// struct Relax;
/// impl FixedPointMap for Relax {
///     fn map<M: MatOps>(&self, x: &M, theta: &[M]) -> M {
///         x.sub(&x.sub(&theta[0]).scale_f64(0.5))
///     }
/// }
/// let tape = Tape::new();
/// let theta = tape.vector_var(&[2.0]);
/// let x = unroll_on_tape(&Relax, &DMatrix::zeros(1, 1), &[theta], 10);
/// let g = tape.gradient(x.sum()).unwrap().wrt_mat(&theta)[0];
/// assert!((g - (1.0 - 0.5f64.powi(10))).abs() < 1e-15);
/// ```
///
/// Panics (a programmer error) if `theta` is empty, or if a step returns a matrix shaped
/// unlike its input, naming both shapes.
pub fn unroll_on_tape<T: FixedPointMap + ?Sized>(
    map: &T,
    x0: &DMatrix<f64>,
    theta: &[MatVar],
    iterations: usize,
) -> MatVar {
    assert!(
        !theta.is_empty(),
        "implicit: unroll_on_tape needs at least one parameter block (to find the tape)"
    );
    let mut x = theta[0].constant_like(x0.clone());
    for _ in 0..iterations {
        let next = map.map(&x, theta);
        assert_eq!(
            next.shape(),
            x.shape(),
            "implicit: unroll_on_tape: the map returned a {:?} matrix for a {:?} input",
            next.shape(),
            x.shape()
        );
        x = next;
    }
    x
}

/// The result of [`unrolled_gradient_descent`].
#[derive(Clone, Debug)]
pub struct Unrolled {
    /// x_T.
    pub x: Vec<f64>,
    /// Every iterate x_0..x_T (kept for the reverse pass: memory grows with T).
    pub iterates: Vec<Vec<f64>>,
}

/// Run T steps of gradient descent x ← x − η ∇ₓL(x, θ) from `x0`, keeping the iterates.
///
/// # Errors
/// [`NonFinite`](ImplicitError::NonFinite) for non-finite `x0` or `theta`, and for an
/// iterate that is not finite (the run diverged: η above 2/L, or the data is not finite);
/// [`InvalidOption`](ImplicitError::InvalidOption) unless `step_size` is finite and > 0.
pub fn unrolled_gradient_descent<O: Objective>(
    objective: &O,
    x0: &[f64],
    theta: &[f64],
    step_size: f64,
    iterations: usize,
) -> Result<Unrolled, ImplicitError> {
    check_finite("initial point x0", x0)?;
    check_finite("parameters theta", theta)?;
    check_step_size(step_size)?;
    let theta_block = [column(theta)];
    let mut iterates = Vec::with_capacity(iterations + 1);
    let mut x = x0.to_vec();
    iterates.push(x.clone());
    for _ in 0..iterations {
        let g = ArgminHessian::new(objective, &column(&x), &theta_block)?
            .gradient()
            .to_vec();
        for (xi, gi) in x.iter_mut().zip(&g) {
            *xi -= step_size * gi;
        }
        // A diverging run (step size beyond 2/L) or non-finite data is an error, not a
        // result full of inf/NaN.
        check_finite(
            "gradient-descent iterate (diverged, or non-finite data: reduce step_size)",
            &x,
        )?;
        iterates.push(x.clone());
    }
    Ok(Unrolled { x, iterates })
}

fn check_step_size(step_size: f64) -> Result<(), ImplicitError> {
    if step_size.is_finite() && step_size > 0.0 {
        Ok(())
    } else {
        Err(ImplicitError::InvalidOption {
            name: "step_size",
            value: step_size,
            reason: "must be finite and > 0",
        })
    }
}

impl Unrolled {
    /// Reverse mode through the unrolled loop: given x̄_T = ∂loss/∂x_T, return ∂loss/∂θ.
    ///
    /// Replays the steps backwards: θ̄ −= η H_θx(x_t) x̄_{t+1} and
    /// x̄_t = x̄_{t+1} − η H_xx(x_t) x̄_{t+1}, both from one second-order pass per step.
    ///
    /// # Errors
    /// [`Dimension`](ImplicitError::Dimension) if `x_bar` is not as long as x;
    /// [`NonFinite`](ImplicitError::NonFinite) for non-finite `x_bar` or `theta`;
    /// [`InvalidOption`](ImplicitError::InvalidOption) for an unusable `step_size`.
    pub fn vjp<O: Objective>(
        &self,
        objective: &O,
        theta: &[f64],
        step_size: f64,
        x_bar: &[f64],
    ) -> Result<Vec<f64>, ImplicitError> {
        if x_bar.len() != self.x.len() {
            return Err(ImplicitError::Dimension {
                what: "cotangent x_bar",
                expected: self.x.len(),
                got: x_bar.len(),
            });
        }
        check_finite("cotangent x_bar", x_bar)?;
        check_finite("parameters theta", theta)?;
        check_step_size(step_size)?;
        let mut xb = x_bar.to_vec();
        let mut theta_bar = vec![0.0; theta.len()];
        let theta_block = [column(theta)];
        for x_t in self.iterates[..self.iterates.len() - 1].iter().rev() {
            let lin = ArgminHessian::products_only(objective, &column(x_t), &theta_block)?;
            let (hxx, hthx) = lin.second_order(&xb, &[])?;
            for (tb, h) in theta_bar.iter_mut().zip(&hthx) {
                *tb -= step_size * h;
            }
            for (x, h) in xb.iter_mut().zip(&hxx) {
                *x -= step_size * h;
            }
        }
        Ok(theta_bar)
    }
}
