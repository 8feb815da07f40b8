//! Derivative drivers: gradients, JVPs, VJPs, Jacobians, Hessians and Hessian-vector
//! products of functions written once against [`Real`] (or [`MatOps`]).
//!
//! Rust closures cannot be generic, so a function is a type implementing [`ScalarFn`],
//! [`VectorFn`] or [`MatFn`], whose one generic method is evaluated on whichever scalar
//! the driver needs. Every driver rejects non-finite inputs with [`AdError::NonFinite`].
//!
//! ```
//! use ad_core::{grad, hessian, Real, ScalarFn};
//! struct Rosenbrock;
//! impl ScalarFn for Rosenbrock {
//!     fn eval<S: Real>(&self, x: &[S]) -> S {
//!         (S::from_f64(1.0) - x[0]).square() + (x[1] - x[0].square()).square() * 100.0
//!     }
//! }
//! let g = grad(&Rosenbrock, &[1.0, 1.0]).unwrap();
//! assert_eq!(g, vec![0.0, 0.0]);
//! let h = hessian(&Rosenbrock, &[1.0, 1.0]).unwrap();
//! assert_eq!(h[(0, 0)], 802.0);
//! assert_eq!(h[(0, 1)], -400.0);
//! ```

use nalgebra::DMatrix;

use crate::dual::Dual;
use crate::error::{AdError, check_finite};
use crate::matrix::{DualMat, MatOps};
use crate::real::Real;
use crate::sweep::Seeds;
use crate::tape::Tape;
use crate::var::Var;

/// A scalar function of a vector, written once for every scalar mode.
pub trait ScalarFn {
    /// Evaluate at `x`.
    fn eval<S: Real>(&self, x: &[S]) -> S;
}

/// A vector function of a vector, written once for every scalar mode.
pub trait VectorFn {
    /// Evaluate at `x`.
    fn eval<S: Real>(&self, x: &[S]) -> Vec<S>;
}

/// A scalar function of several matrices, written once for every matrix mode.
///
/// Data the function needs (a batch, targets) lives in `self` as `DMatrix<f64>` and
/// enters with [`MatOps::constant_like`].
pub trait MatFn {
    /// Evaluate at `params`.
    fn eval<M: MatOps>(&self, params: &[M]) -> M::Scalar;
}

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), AdError> {
    if expected == got {
        Ok(())
    } else {
        Err(AdError::Length {
            what,
            expected,
            got,
        })
    }
}

/// The value and the gradient of `f` at `x` (one recording, one reverse sweep).
pub fn value_and_grad(f: &impl ScalarFn, x: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
    check_finite("point x", x)?;
    let tape = Tape::new();
    let xs = tape.vars(x);
    let y = f.eval(&xs);
    let g = tape.gradient(y)?;
    Ok((y.value(), g.wrt_all(&xs)))
}

/// The gradient of `f` at `x`.
pub fn grad(f: &impl ScalarFn, x: &[f64]) -> Result<Vec<f64>, AdError> {
    value_and_grad(f, x).map(|(_, g)| g)
}

/// The Hessian-vector product `H(x) v`, by reverse mode over forward mode (`Dual<Var>`):
/// exact, no finite differences, about the cost of a few gradients.
pub fn hvp(f: &impl ScalarFn, x: &[f64], v: &[f64]) -> Result<Vec<f64>, AdError> {
    check_finite("point x", x)?;
    check_finite("direction v", v)?;
    check_len("direction v", x.len(), v.len())?;
    let tape = Tape::new();
    let re = tape.vars(x);
    let xs: Vec<Dual<Var>> = re
        .iter()
        .zip(v)
        .map(|(&r, &d)| Dual::new(r, Var::constant(d)))
        .collect();
    let y = f.eval(&xs);
    let g = tape.gradient(y.eps)?;
    Ok(g.wrt_all(&re))
}

/// The Hessian of `f` at `x`, one Hessian-vector product per column.
pub fn hessian(f: &impl ScalarFn, x: &[f64]) -> Result<DMatrix<f64>, AdError> {
    let n = x.len();
    let mut h = DMatrix::zeros(n, n);
    let mut e = vec![0.0; n];
    for j in 0..n {
        e[j] = 1.0;
        let col = hvp(f, x, &e)?;
        h.column_mut(j).copy_from_slice(&col);
        e[j] = 0.0;
    }
    Ok(h)
}

/// The value `f(x)` and the Jacobian-vector product `J(x) v` (forward mode, one pass).
pub fn jvp(f: &impl VectorFn, x: &[f64], v: &[f64]) -> Result<(Vec<f64>, Vec<f64>), AdError> {
    check_finite("point x", x)?;
    check_finite("direction v", v)?;
    check_len("direction v", x.len(), v.len())?;
    let xs: Vec<Dual<f64>> = x.iter().zip(v).map(|(&a, &d)| Dual::new(a, d)).collect();
    let ys = f.eval(&xs);
    Ok((
        ys.iter().map(|y| y.re).collect(),
        ys.iter().map(|y| y.eps).collect(),
    ))
}

/// The value `f(x)` and the vector-Jacobian product `u^T J(x)` (reverse mode, one sweep).
pub fn vjp(f: &impl VectorFn, x: &[f64], u: &[f64]) -> Result<(Vec<f64>, Vec<f64>), AdError> {
    check_finite("point x", x)?;
    check_finite("cotangent u", u)?;
    let tape = Tape::new();
    let xs = tape.vars(x);
    let ys = f.eval(&xs);
    check_len("cotangent u", ys.len(), u.len())?;
    let g = tape.backward(&Seeds::new().vars(&ys, u))?;
    Ok((ys.iter().map(|y| y.value()).collect(), g.wrt_all(&xs)))
}

/// The Jacobian by forward mode: one dual evaluation per input.
pub fn jacobian_forward(f: &impl VectorFn, x: &[f64]) -> Result<DMatrix<f64>, AdError> {
    check_finite("point x", x)?;
    let n = x.len();
    let mut cols = Vec::with_capacity(n);
    let mut xs: Vec<Dual<f64>> = x.iter().map(|&a| Dual::constant(a)).collect();
    for j in 0..n {
        xs[j].eps = 1.0;
        cols.push(f.eval(&xs).iter().map(|y| y.eps).collect::<Vec<_>>());
        xs[j].eps = 0.0;
    }
    let m = if n == 0 {
        f.eval(&xs).len()
    } else {
        cols[0].len()
    };
    Ok(DMatrix::from_fn(m, n, |i, j| cols[j][i]))
}

/// The Jacobian by reverse mode: one recording, one reverse sweep per output.
pub fn jacobian_reverse(f: &impl VectorFn, x: &[f64]) -> Result<DMatrix<f64>, AdError> {
    check_finite("point x", x)?;
    let tape = Tape::new();
    let xs = tape.vars(x);
    let ys = f.eval(&xs);
    let mut jac = DMatrix::zeros(ys.len(), x.len());
    for (i, &y) in ys.iter().enumerate() {
        let g = tape.gradient(y)?;
        for (j, &xj) in xs.iter().enumerate() {
            jac[(i, j)] = g.wrt(xj);
        }
    }
    Ok(jac)
}

/// The Jacobian, by reverse mode when there are fewer outputs than inputs, else forward.
pub fn jacobian(f: &impl VectorFn, x: &[f64]) -> Result<DMatrix<f64>, AdError> {
    let m = f.eval(x).len();
    if m < x.len() {
        jacobian_reverse(f, x)
    } else {
        jacobian_forward(f, x)
    }
}

/// Reject the first non-finite entry of the blocks `ms`; the index counts entries of the
/// blocks flattened one after the other (each column-major), so it is unambiguous.
fn check_blocks(what: &'static str, ms: &[DMatrix<f64>]) -> Result<(), AdError> {
    let mut offset = 0;
    for m in ms {
        check_finite(what, m.as_slice()).map_err(|e| match e {
            AdError::NonFinite { what, index, value } => AdError::NonFinite {
                what,
                index: offset + index,
                value,
            },
            other => other,
        })?;
        offset += m.len();
    }
    Ok(())
}

fn check_params(params: &[DMatrix<f64>]) -> Result<(), AdError> {
    check_blocks("parameter matrices", params)
}

/// Value and gradient of a matrix function (one recording on matrix variables).
pub fn value_and_grad_mat(
    f: &impl MatFn,
    params: &[DMatrix<f64>],
) -> Result<(f64, Vec<DMatrix<f64>>), AdError> {
    check_params(params)?;
    let tape = Tape::new();
    let ps: Vec<_> = params.iter().map(|p| tape.mat_var_copy(p)).collect();
    let y = f.eval(&ps);
    let mut g = tape.gradient(y)?;
    Ok((y.value(), ps.iter().map(|p| g.take_mat(p)).collect()))
}

/// Value and directional derivative of a matrix function along `v` (forward mode).
pub fn jvp_mat(
    f: &impl MatFn,
    params: &[DMatrix<f64>],
    v: &[DMatrix<f64>],
) -> Result<(f64, f64), AdError> {
    check_params(params)?;
    check_blocks("direction matrices", v)?;
    check_len("direction blocks", params.len(), v.len())?;
    let ps: Vec<_> = params
        .iter()
        .zip(v)
        .map(|(p, d)| DualMat::new(p.clone(), d.clone()))
        .collect();
    let y = f.eval(&ps);
    Ok((y.re, y.eps))
}

/// Hessian-vector product of a matrix function, by reverse mode over forward mode
/// (`DualMat<MatVar>`): exact and matrix-free.
pub fn hvp_mat(
    f: &impl MatFn,
    params: &[DMatrix<f64>],
    v: &[DMatrix<f64>],
) -> Result<Vec<DMatrix<f64>>, AdError> {
    check_params(params)?;
    check_blocks("direction matrices", v)?;
    check_len("direction blocks", params.len(), v.len())?;
    let tape = Tape::new();
    let re: Vec<_> = params.iter().map(|p| tape.mat_var_copy(p)).collect();
    let ps: Vec<_> = re
        .iter()
        .zip(v)
        .map(|(r, d)| DualMat::new(*r, tape.constant_mat_copy(d)))
        .collect();
    let y = f.eval(&ps);
    let mut g = tape.gradient(y.eps)?;
    Ok(re.iter().map(|r| g.take_mat(r)).collect())
}
