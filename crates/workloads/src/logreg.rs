//! Logistic regression with one L2 hyperparameter per feature (the JAXopt paper's
//! setting), parametrized by `u_j = log λ_j`:
//!
//! ```text
//! L(w, u) = (1/n) Σ_i [softplus(x_i·w) − c_i x_i·w] + ½ Σ_j exp(u_j) w_j²
//! V(w)    = (1/n_v) Σ_i [softplus(xv_i·w) − cv_i xv_i·w]
//! dV/du_j = −(H⁻¹ ∇V)_j λ_j w*_j,   H = Xᵀ diag(σ(1−σ)) X / n + diag(λ)
//! ```
//!
//! [`LogReg::newton`] solves the inner problem to ‖∇L‖ ≤ 1e-10 with a dense Newton method
//! (the Hessian is `d x d`) and returns the Cholesky factor of the Hessian at its last
//! iterate, which the implicit backward solve reuses.
//!
//! ```
//! use implicit::hyper::hypergradient;
//! use workloads::{data, LogLoss, LogReg, NewtonOptions};
//! use implicit::IftOptions;
//! let w2 = data::w2();
//! let inner = LogReg::new(&w2.train)?;
//! let val = LogLoss::new(&w2.val)?;
//! let u = data::w2_log_lambda(50);
//! let mut newton = inner.newton_solver(NewtonOptions::default());
//! let h = hypergradient(&inner, &val, &u, &mut newton, &IftOptions::default())?;
//! let norm = h.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
//! assert!((norm - 0.00481000608726).abs() < 1e-12);
//! # Ok::<(), implicit::ImplicitError>(())
//! ```

use std::sync::Arc;

use ad_core::{AdError, MatOps};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use implicit::hyper::{InnerSolution, ValidationLoss};
use implicit::linear::{DenseCholesky, SolveOptions};
use implicit::{Factor, ImplicitError, Linearization, Objective};

use crate::data::Dataset;
use crate::kernels::{self as blas, check_finite};
use crate::ridge::{check_data, check_weights};

/// The mean logistic loss of `x w` against 0/1 labels `c`, in any mode.
fn log_loss<M: MatOps>(x: &Arc<DMatrix<f64>>, c: &Arc<DMatrix<f64>>, w: &M) -> M::Scalar {
    let z = w.shared(x).matmul(w);
    z.softplus().sub(&z.mul_elem(&w.shared(c))).mean()
}

/// Check that labels are 0 or 1.
fn check_labels(y: &DVector<f64>) -> Result<(), ImplicitError> {
    match y.iter().position(|&c| c != 0.0 && c != 1.0) {
        Some(index) => Err(ImplicitError::InvalidOption {
            name: "label (must be 0 or 1)",
            value: y[index],
            reason: "logistic regression needs 0/1 labels",
        }),
        None => Ok(()),
    }
}

/// Options of [`LogReg::newton`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NewtonOptions {
    /// Stop when ‖∇L‖₂ ≤ this. Default `1e-10`.
    pub gtol: f64,
    /// Newton steps allowed. Default `100`.
    pub max_iters: usize,
    /// Factor the Hessian at the final iterate (one more weighted Gram matrix) rather than
    /// hand over the factor of the last step's Hessian, which the backward solve then
    /// refines against the exact Hessian. Default `true`.
    pub final_hessian: bool,
    /// Keep the current Hessian factorization for the next step (a chord step: one
    /// gradient, no new Hessian) while the last step cut ‖∇L‖ by at least this factor;
    /// near the solution the old factor is nearly exact and convergence stays fast. `0`
    /// (the default) is plain Newton: a new Hessian every step.
    pub reuse_ratio: f64,
}

impl Default for NewtonOptions {
    fn default() -> Self {
        NewtonOptions {
            gtol: 1e-10,
            max_iters: 100,
            final_hessian: true,
            reuse_ratio: 0.0,
        }
    }
}

/// What [`LogReg::newton`] found.
#[derive(Clone, Debug)]
pub struct NewtonSolution {
    /// The minimizer w*.
    pub x: Vec<f64>,
    /// Newton steps taken.
    pub iterations: usize,
    /// Hessians formed and factored (the final one included).
    pub hessians: usize,
    /// ‖∇L(w*)‖₂.
    pub grad_norm: f64,
    /// Cholesky factor of the Hessian (at w*, or at the previous iterate when
    /// `final_hessian` is off).
    pub factor: DenseCholesky,
}

impl From<NewtonSolution> for InnerSolution {
    fn from(s: NewtonSolution) -> Self {
        InnerSolution {
            x: s.x,
            iterations: s.iterations,
            factor: Some(Factor::Cholesky(s.factor)),
        }
    }
}

/// L2-regularized logistic regression on training data, hyperparameters `u = log λ`.
#[derive(Clone, Debug)]
pub struct LogReg {
    x: Arc<DMatrix<f64>>,
    /// `Xᵀ` (contiguous rows of X: `Xᵀ r` as an axpy-form product).
    xt: DMatrix<f64>,
    c: Arc<DMatrix<f64>>,
}

impl LogReg {
    /// On `data` with 0/1 labels in `data.y` (checked: shapes, finiteness, labels).
    pub fn new(data: &Dataset) -> Result<Self, ImplicitError> {
        check_data("rows of labels y (must match the rows of X)", data)?;
        check_labels(&data.y)?;
        Ok(LogReg {
            x: Arc::new(data.x.clone()),
            xt: data.x.transpose(),
            c: Arc::new(DMatrix::from_column_slice(
                data.y.len(),
                1,
                data.y.as_slice(),
            )),
        })
    }

    /// `(n, d)`.
    pub fn dims(&self) -> (usize, usize) {
        self.x.shape()
    }

    /// λ = exp(u), checked (length d, finite).
    pub fn lambdas(&self, u: &[f64]) -> Result<Vec<f64>, ImplicitError> {
        let d = self.x.ncols();
        if u.len() != d {
            return Err(ImplicitError::Dimension {
                what: "log-lambda hyperparameters u",
                expected: d,
                got: u.len(),
            });
        }
        check_finite("log-lambda hyperparameters u", u)?;
        Ok(u.iter().map(|v| v.exp()).collect())
    }

    /// ∇L(w) and the curvature weights σ(1−σ)/n of the rows, in plain `f64`.
    fn gradient(&self, w: &[f64], lam: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (rows, d) = self.x.shape();
        let n = rows as f64;
        let mut z = vec![0.0; rows];
        blas::gemv(self.x.as_slice(), w, &mut z);
        // σ(z) by ad-core's vectorized kernel, into s; then r (in z) and s.
        let mut s = vec![0.0; rows];
        ad_core::kernels::sigmoid(&z, &mut s);
        for ((zi, si), ci) in z.iter_mut().zip(&mut s).zip(self.c.as_slice()) {
            let p = *si;
            *zi = (p - ci) / n;
            *si = p * (1.0 - p) / n;
        }
        let mut g = vec![0.0; d];
        blas::gemv(self.xt.as_slice(), &z, &mut g);
        for ((gj, l), wj) in g.iter_mut().zip(lam).zip(w) {
            *gj += l * wj;
        }
        (g, s)
    }

    /// The Hessian `Xᵀ diag(s) X + diag(λ)` (lower triangle by weighted dot products,
    /// mirrored).
    fn hessian(&self, s: &[f64], lam: &[f64]) -> DMatrix<f64> {
        let mut h = blas::gram(&self.xt, &self.x, Some(s));
        for (j, l) in lam.iter().enumerate() {
            h[(j, j)] += l;
        }
        h
    }

    /// Minimize L(·, u) by Newton's method from `warm_start` (zero if `None`) until
    /// ‖∇L‖ ≤ `gtol`.
    ///
    /// # Errors
    /// [`NotAtSolution`](ImplicitError::NotAtSolution) with the gradient norm reached if
    /// the steps run out; a failed Cholesky; non-finite or mis-sized `u` or warm start.
    pub fn newton(
        &self,
        u: &[f64],
        warm_start: Option<&[f64]>,
        options: &NewtonOptions,
    ) -> Result<NewtonSolution, ImplicitError> {
        let lam = self.lambdas(u)?;
        let d = lam.len();
        let mut w = match warm_start {
            Some(w0) if w0.len() != d => {
                return Err(ImplicitError::Dimension {
                    what: "warm start w0",
                    expected: d,
                    got: w0.len(),
                });
            }
            Some(w0) => {
                check_finite("warm start w0", w0)?;
                w0.to_vec()
            }
            None => vec![0.0; d],
        };
        let exact = SolveOptions::default().rtol(1e-12);
        let mut factor: Option<DenseCholesky> = None;
        let mut hessians = 0;
        let mut prev_gnorm = f64::INFINITY;
        for it in 0..=options.max_iters {
            let (g, s) = self.gradient(&w, &lam);
            check_finite("Newton gradient", &g)?;
            let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
            let mut fresh = || -> Result<DenseCholesky, ImplicitError> {
                hessians += 1;
                Ok(DenseCholesky::factor(&self.hessian(&s, &lam), 0.0)?)
            };
            if gnorm <= options.gtol {
                let factor = match factor {
                    Some(f) if !options.final_hessian => f,
                    _ => fresh()?,
                };
                return Ok(NewtonSolution {
                    x: w,
                    iterations: it,
                    hessians,
                    grad_norm: gnorm,
                    factor,
                });
            }
            if it == options.max_iters {
                return Err(ImplicitError::NotAtSolution {
                    residual: gnorm,
                    tolerance: options.gtol,
                });
            }
            let chol = match factor.take() {
                Some(f) if gnorm <= options.reuse_ratio * prev_gnorm => f,
                _ => fresh()?,
            };
            let step = chol.solve(&g, None, &exact)?.x;
            w.iter_mut().zip(&step).for_each(|(wi, si)| *wi -= si);
            factor = Some(chol);
            prev_gnorm = gnorm;
        }
        unreachable!("the loop returns at it == max_iters")
    }

    /// The linearization of ∇L at (w, u) with hand-written products (two gemv per Hessian
    /// product; B = ∂(λ ⊙ w)/∂u = diag(λ ⊙ w)), for
    /// [`hypergradient_linearized`](implicit::hyper::hypergradient_linearized).
    pub fn linearization(
        &self,
        w: &[f64],
        u: &[f64],
    ) -> Result<LogRegLinearization<'_>, ImplicitError> {
        let lam = self.lambdas(u)?;
        check_weights(self.x.ncols(), w)?;
        let (residual, s) = self.gradient(w, &lam);
        Ok(LogRegLinearization {
            model: self,
            w: w.to_vec(),
            lam,
            s: DVector::from_vec(s),
            residual,
        })
    }

    /// Newton's method as an [`InnerSolver`](implicit::hyper::InnerSolver) (warm starts honoured).
    pub fn newton_solver(
        &self,
        options: NewtonOptions,
    ) -> impl FnMut(&[f64], Option<&[f64]>) -> Result<InnerSolution, ImplicitError> + '_ {
        move |u, warm| self.newton(u, warm, &options).map(InnerSolution::from)
    }
}

/// The linearization of logistic regression's optimality condition with hand-written
/// products: A = Xᵀ diag(σ(1−σ)/n) X + diag(λ), B = diag(λ ⊙ w).
pub struct LogRegLinearization<'a> {
    model: &'a LogReg,
    w: Vec<f64>,
    lam: Vec<f64>,
    s: DVector<f64>,
    residual: Vec<f64>,
}

impl Linearization for LogRegLinearization<'_> {
    fn dims(&self) -> (usize, usize) {
        (self.w.len(), self.w.len())
    }
    fn residual(&self) -> &[f64] {
        &self.residual
    }
    fn symmetric(&self) -> bool {
        true
    }
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        let x = self.model.x.as_slice();
        let mut t = vec![0.0; self.s.len()];
        blas::gemv(x, v, &mut t);
        t.iter_mut()
            .zip(self.s.iter())
            .for_each(|(ti, si)| *ti *= si);
        let mut y = vec![0.0; v.len()];
        blas::gemv(self.model.xt.as_slice(), &t, &mut y);
        for ((yi, l), vi) in y.iter_mut().zip(&self.lam).zip(v) {
            *yi += l * vi;
        }
        Ok(y)
    }
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.a_mul(u)
    }
    fn b_mul(&self, t: &[f64]) -> Result<Vec<f64>, AdError> {
        Ok((0..t.len())
            .map(|j| self.lam[j] * self.w[j] * t[j])
            .collect())
    }
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.b_mul(u)
    }
}

impl Objective for LogReg {
    fn value<M: MatOps>(&self, w: &M, u: &[M]) -> M::Scalar {
        let u = &u[0];
        log_loss(&self.x, &self.c, w) + u.exp().mul_elem(&w.square()).sum() * 0.5
    }
}

/// The mean logistic loss on validation data, `V(w)`.
#[derive(Clone, Debug)]
pub struct LogLoss {
    x: Arc<DMatrix<f64>>,
    /// `Xᵀ` (contiguous rows of X: `Xᵀ r` as an axpy-form product).
    xt: DMatrix<f64>,
    c: Arc<DMatrix<f64>>,
}

impl LogLoss {
    /// On `data` with 0/1 labels (checked like [`LogReg::new`]).
    pub fn new(data: &Dataset) -> Result<Self, ImplicitError> {
        check_data(
            "rows of validation labels y (must match the rows of X)",
            data,
        )?;
        check_labels(&data.y)?;
        Ok(LogLoss {
            x: Arc::new(data.x.clone()),
            xt: data.x.transpose(),
            c: Arc::new(DMatrix::from_column_slice(
                data.y.len(),
                1,
                data.y.as_slice(),
            )),
        })
    }
}

impl ValidationLoss for LogLoss {
    fn loss<M: MatOps>(&self, w: &M, _u: &M) -> M::Scalar {
        log_loss(&self.x, &self.c, w)
    }

    /// Hand-written: `z = X_v w`, `∇V = X_vᵀ (σ(z) − c) / n_v`.
    fn value_and_grad(
        &self,
        w: &[f64],
        u: &[f64],
    ) -> Result<(f64, Vec<f64>, Vec<f64>), ImplicitError> {
        check_weights(self.x.ncols(), w)?;
        let (rows, d) = self.x.shape();
        let nv = rows as f64;
        let mut r = vec![0.0; rows];
        blas::gemv(self.x.as_slice(), w, &mut r);
        // softplus and σ by ad-core's vectorized kernels.
        let mut sp = vec![0.0; rows];
        let mut sg = vec![0.0; rows];
        ad_core::kernels::softplus(&r, &mut sp);
        ad_core::kernels::sigmoid(&r, &mut sg);
        let mut value = 0.0;
        for (((ri, ci), spi), sgi) in r.iter_mut().zip(self.c.as_slice()).zip(&sp).zip(&sg) {
            value += spi - ci * *ri;
            *ri = (sgi - ci) / nv;
        }
        let mut g = vec![0.0; d];
        blas::gemv(self.xt.as_slice(), &r, &mut g);
        Ok((value / nv, g, vec![0.0; u.len()]))
    }
}

/// The W2 hypergradient in plain `f64` (Newton, then one solve with the Hessian factor at
/// w*): the reference the implicit machinery is checked against. Returns
/// `(V(w*), dV/du, w*)`.
pub fn reference_hypergradient(
    inner: &LogReg,
    val: &LogLoss,
    u: &[f64],
) -> Result<(f64, Vec<f64>, Vec<f64>), ImplicitError> {
    let sol = inner.newton(u, None, &NewtonOptions::default())?;
    let (v, gv, _) = val.value_and_grad(&sol.x, u)?;
    let h_inv_gv = sol
        .factor
        .solve(&gv, None, &SolveOptions::default().rtol(1e-12))?
        .x;
    let grad = (0..u.len())
        .map(|j| -h_inv_gv[j] * u[j].exp() * sol.x[j])
        .collect();
    Ok((v, grad, sol.x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data;
    use implicit::IftOptions;
    use implicit::hyper::hypergradient_linearized;

    /// Chord steps while each step halves ‖∇L‖, then the Hessian at w* (the fastest W2
    /// setting of `examples/peers_w1_w2.rs`): fewer Hessians than plain Newton, the same
    /// hypergradient as the peers' README to 1e-9, no refinement backward.
    #[test]
    fn chord_steps_while_halving_give_the_reference_hypergradient() {
        let w2 = data::w2();
        let inner = LogReg::new(&w2.train).unwrap();
        let val = LogLoss::new(&w2.val).unwrap();
        let u = data::w2_log_lambda(50);
        let plain = inner.newton(&u, None, &NewtonOptions::default()).unwrap();
        let opts = NewtonOptions {
            reuse_ratio: 0.5,
            final_hessian: true,
            ..NewtonOptions::default()
        };
        let sol = inner.newton(&u, None, &opts).unwrap();
        assert!(sol.grad_norm <= 1e-10);
        assert!(
            sol.hessians < plain.hessians,
            "{} vs {}",
            sol.hessians,
            plain.hessians
        );
        let lin = inner.linearization(&sol.x, &u).unwrap();
        let h =
            hypergradient_linearized(lin, &val, &u, sol.into(), &IftOptions::default()).unwrap();
        let first5 = [
            0.00194819222505,
            0.000849266024013,
            0.000671863141446,
            0.00199852307218,
            -2.73471382252e-05,
        ];
        for (g, r) in h.grad.iter().zip(first5) {
            assert!(((g - r) / r).abs() < 1e-9, "{g} vs {r}");
        }
        let norm = h.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
        assert!(((norm - 0.00481000608726) / 0.00481000608726).abs() < 1e-9);
        assert_eq!(h.report.steps, 0);
    }
}
