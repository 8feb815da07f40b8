//! Ridge regression with one shared L2 hyperparameter λ, or one per feature:
//!
//! ```text
//! L(w, λ) = ‖X w − y‖² / (2n) + ½ Σ_j λ_j w_j²,     A = XᵀX/n + diag(λ),  w* = A⁻¹ Xᵀy/n
//! ```
//!
//! Three ways to the same hypergradient:
//! - [`Ridge`] (data form) and [`RidgeGram`] (the same objective through the Gram matrix,
//!   up to a constant) are [`Objective`]s, so [`hypergradient`](implicit::hyper::hypergradient) and
//!   [`Implicit::argmin`](implicit::Implicit::argmin) work on them with exact tape products;
//! - [`RidgeGram::solve`] is the fast forward solve (Cholesky of A) whose factor the
//!   backward solve reuses; [`Ridge::solve_cg`] with [`Ridge::linearization`] is the
//!   matrix-free pair (never forms XᵀX);
//! - [`closed_form`] gives the reference: dV/dλ_j = −(A⁻¹ ∇V)_j w*_j.
//!
//! ```
//! use workloads::{closed_form, data, Penalty, Ridge, SquaredError};
//! let w1 = data::w1();
//! let ridge = Ridge::new(&w1.train, Penalty::Shared)?;
//! let val = SquaredError::new(&w1.val)?;
//! let cf = closed_form(&ridge, &val, &[0.1])?;
//! assert!((cf.grad[0] - 0.0694672879308).abs() < 1e-12);
//! # Ok::<(), implicit::ImplicitError>(())
//! ```

use std::sync::Arc;

use std::cell::RefCell;

use ad_core::{AdError, MatOps};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use implicit::hyper::ValidationLoss;
use implicit::linear::{
    DenseCholesky, LinearOperator, Method, OperatorError, Solution, SolveOptions, Structure, solve,
};
use implicit::{ImplicitError, Linearization, Objective};

use crate::data::Dataset;
use crate::kernels::{self as blas, check_finite};

/// How many L2 hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Penalty {
    /// One λ for every feature (θ has length 1).
    Shared,
    /// One λ_j per feature (θ has length d).
    PerFeature,
}

/// Check data shapes and values; returns `(n, d)`.
pub(crate) fn check_data(what: &'static str, data: &Dataset) -> Result<(), ImplicitError> {
    if data.x.nrows() != data.y.len() {
        return Err(ImplicitError::Dimension {
            what,
            expected: data.x.nrows(),
            got: data.y.len(),
        });
    }
    if data.x.nrows() == 0 || data.x.ncols() == 0 {
        return Err(ImplicitError::Dimension {
            what: "rows and columns of the design matrix (must be positive)",
            expected: 1,
            got: 0,
        });
    }
    check_finite("design matrix X", data.x.as_slice())?;
    check_finite("targets y", data.y.as_slice())
}

/// The per-feature λ from θ, checked (finite, right length).
fn lambdas(penalty: Penalty, d: usize, theta: &[f64]) -> Result<Vec<f64>, ImplicitError> {
    let expected = match penalty {
        Penalty::Shared => 1,
        Penalty::PerFeature => d,
    };
    if theta.len() != expected {
        return Err(ImplicitError::Dimension {
            what: "ridge hyperparameters theta",
            expected,
            got: theta.len(),
        });
    }
    check_finite("ridge hyperparameters theta", theta)?;
    Ok(match penalty {
        Penalty::Shared => vec![theta[0]; d],
        Penalty::PerFeature => theta.to_vec(),
    })
}

/// ½ Σ_j λ_j w_j² in any mode.
fn penalty_term<M: MatOps>(penalty: Penalty, w: &M, theta: &M) -> M::Scalar {
    match penalty {
        Penalty::Shared => theta.get(0, 0) * w.sq_norm() * 0.5,
        Penalty::PerFeature => theta.mul_elem(&w.square()).sum() * 0.5,
    }
}

/// Ridge regression on training data (data form of the objective).
#[derive(Clone, Debug)]
pub struct Ridge {
    x: Arc<DMatrix<f64>>,
    /// `Xᵀ` (contiguous rows of X: `Xᵀ r` as an axpy-form product).
    xt: DMatrix<f64>,
    y: Arc<DMatrix<f64>>,
    penalty: Penalty,
}

impl Ridge {
    /// Ridge regression on `data` (checked: rows of X and y agree, all finite).
    pub fn new(data: &Dataset, penalty: Penalty) -> Result<Self, ImplicitError> {
        check_data("rows of y (must match the rows of X)", data)?;
        Ok(Ridge {
            x: Arc::new(data.x.clone()),
            xt: data.x.transpose(),
            y: Arc::new(DMatrix::from_column_slice(
                data.y.len(),
                1,
                data.y.as_slice(),
            )),
            penalty,
        })
    }

    /// `(n, d)`.
    pub fn dims(&self) -> (usize, usize) {
        self.x.shape()
    }

    /// The penalty kind.
    pub fn penalty(&self) -> Penalty {
        self.penalty
    }

    /// Number of hyperparameters (1 or d).
    pub fn n_hyper(&self) -> usize {
        match self.penalty {
            Penalty::Shared => 1,
            Penalty::PerFeature => self.x.ncols(),
        }
    }

    /// The per-feature λ for θ (checked).
    pub fn lambdas(&self, theta: &[f64]) -> Result<Vec<f64>, ImplicitError> {
        lambdas(self.penalty, self.x.ncols(), theta)
    }

    /// The Gram form: `XᵀX/n` (its lower triangle, mirrored), `Xᵀy/n`.
    pub fn gram(&self) -> RidgeGram {
        let (rows, d) = self.x.shape();
        let n = rows as f64;
        let mut g = blas::gram(&self.xt, &self.x, None);
        g /= n;
        let b = DMatrix::from_column_slice(d, 1, &self.rhs());
        RidgeGram {
            g,
            b,
            c: self.y.norm_squared() / (2.0 * n),
            penalty: self.penalty,
        }
    }

    /// `v ↦ XᵀX v/n + λ ⊙ v`, matrix-free (two gemv per product).
    pub fn operator(&self, theta: &[f64]) -> Result<RidgeOperator<'_>, ImplicitError> {
        Ok(RidgeOperator {
            ridge: self,
            lambdas: self.lambdas(theta)?,
            scratch: RefCell::new(DVector::zeros(self.x.nrows())),
        })
    }

    /// w*(θ) by conjugate gradient on the matrix-free operator, from `warm_start`.
    pub fn solve_cg(
        &self,
        theta: &[f64],
        warm_start: Option<&[f64]>,
        options: &SolveOptions,
    ) -> Result<Solution, ImplicitError> {
        let op = self.operator(theta)?;
        let b = self.rhs();
        Ok(solve(&op, &b, warm_start, Method::Cg, options)?)
    }

    /// `Xᵀy/n`.
    pub fn rhs(&self) -> Vec<f64> {
        let n = self.x.nrows() as f64;
        let mut b = vec![0.0; self.x.ncols()];
        blas::gemv(self.xt.as_slice(), self.y.as_slice(), &mut b);
        b.iter_mut().for_each(|v| *v /= n);
        b
    }

    /// The linearization of ∇L at (w, θ) with hand-written matrix-free products (for
    /// [`Implicit::from_linearization`](implicit::Implicit::from_linearization)).
    pub fn linearization(
        &self,
        w: &[f64],
        theta: &[f64],
    ) -> Result<RidgeLinearization<RidgeOperator<'_>>, ImplicitError> {
        RidgeLinearization::new(self.operator(theta)?, self.penalty, w, &self.rhs())
    }
}

impl Objective for Ridge {
    fn value<M: MatOps>(&self, w: &M, theta: &[M]) -> M::Scalar {
        let theta = &theta[0];
        let n = self.x.nrows() as f64;
        let r = w.shared(&self.x).matmul(w).sub(&w.shared(&self.y));
        r.sq_norm() / (2.0 * n) + penalty_term(self.penalty, w, theta)
    }
}

/// The ridge objective through its Gram matrix: `½ wᵀG w − bᵀw + c + ½ Σ λ_j w_j²` with
/// `G = XᵀX/n`, `b = Xᵀy/n`, `c = ‖y‖²/(2n)` — the same values, gradients and Hessians as
/// [`Ridge`], with `d x d` instead of `n x d` data on the tape.
#[derive(Clone, Debug)]
pub struct RidgeGram {
    g: DMatrix<f64>,
    b: DMatrix<f64>,
    c: f64,
    penalty: Penalty,
}

impl RidgeGram {
    /// `XᵀX/n`.
    pub fn gram(&self) -> &DMatrix<f64> {
        &self.g
    }

    /// `Xᵀy/n`.
    pub fn rhs(&self) -> &[f64] {
        self.b.as_slice()
    }

    /// Cholesky factor of `A = G + diag(λ)`.
    pub fn factor(&self, theta: &[f64]) -> Result<DenseCholesky, ImplicitError> {
        let lam = lambdas(self.penalty, self.g.nrows(), theta)?;
        let mut a = self.g.clone();
        for (i, l) in lam.iter().enumerate() {
            a[(i, i)] += l;
        }
        Ok(DenseCholesky::factor(&a, 0.0)?)
    }

    /// w*(θ) = A⁻¹ b by Cholesky, and the factor (for
    /// [`Implicit::with_factor`](implicit::Implicit::with_factor)).
    pub fn solve(&self, theta: &[f64]) -> Result<(Vec<f64>, DenseCholesky), ImplicitError> {
        let chol = self.factor(theta)?;
        let opts = SolveOptions::default().rtol(1e-14);
        let w = chol.solve(self.b.as_slice(), None, &opts)?.x;
        Ok((w, chol))
    }
}

impl RidgeGram {
    /// `v ↦ G v + λ ⊙ v` with the Gram matrix (one `d x d` gemv per product).
    pub fn operator(&self, theta: &[f64]) -> Result<GramOperator<'_>, ImplicitError> {
        Ok(GramOperator {
            g: &self.g,
            lambdas: lambdas(self.penalty, self.g.nrows(), theta)?,
        })
    }

    /// The linearization of ∇L at (w, θ) with hand-written products through the Gram
    /// matrix (for [`hypergradient_linearized`](implicit::hyper::hypergradient_linearized)).
    pub fn linearization(
        &self,
        w: &[f64],
        theta: &[f64],
    ) -> Result<RidgeLinearization<GramOperator<'_>>, ImplicitError> {
        RidgeLinearization::new(self.operator(theta)?, self.penalty, w, self.b.as_slice())
    }
}

impl Objective for RidgeGram {
    fn value<M: MatOps>(&self, w: &M, theta: &[M]) -> M::Scalar {
        let theta = &theta[0];
        let g = w.constant_like(self.g.clone());
        let b = w.constant_like(self.b.clone());
        w.dot(&g.matmul(w)) * 0.5 - w.dot(&b) + self.c + penalty_term(self.penalty, w, theta)
    }
}

/// `v ↦ XᵀX v/n + λ ⊙ v` without forming XᵀX (symmetric positive definite for λ > 0).
pub struct RidgeOperator<'a> {
    ridge: &'a Ridge,
    lambdas: Vec<f64>,
    scratch: RefCell<DVector<f64>>,
}

impl LinearOperator for RidgeOperator<'_> {
    fn nrows(&self) -> usize {
        self.lambdas.len()
    }
    fn ncols(&self) -> usize {
        self.lambdas.len()
    }
    fn apply(&self, v: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        let n = self.ridge.x.nrows() as f64;
        let mut t = self.scratch.borrow_mut();
        blas::gemv(self.ridge.x.as_slice(), v, t.as_mut_slice());
        blas::gemv(self.ridge.xt.as_slice(), t.as_slice(), y);
        for ((yi, vi), l) in y.iter_mut().zip(v).zip(&self.lambdas) {
            *yi = *yi / n + l * vi;
        }
        Ok(())
    }
    fn structure(&self) -> Structure {
        Structure::SPD
    }
}

/// `v ↦ G v + λ ⊙ v` for a precomputed Gram matrix `G = XᵀX/n`.
pub struct GramOperator<'a> {
    g: &'a DMatrix<f64>,
    lambdas: Vec<f64>,
}

impl LinearOperator for GramOperator<'_> {
    fn nrows(&self) -> usize {
        self.lambdas.len()
    }
    fn ncols(&self) -> usize {
        self.lambdas.len()
    }
    fn apply(&self, v: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
        blas::gemv(self.g.as_slice(), v, y);
        for ((yi, vi), l) in y.iter_mut().zip(v).zip(&self.lambdas) {
            *yi += l * vi;
        }
        Ok(())
    }
    fn structure(&self) -> Structure {
        Structure::SPD
    }
}

/// The linearization of ridge's optimality condition `A w − b = 0` with hand-written
/// products: A = XᵀX/n + diag(λ) (matrix-free through X, or through the Gram matrix), and
/// B = ∂(λ ⊙ w)/∂θ (the column `w` for a shared λ, `diag(w)` per feature).
pub struct RidgeLinearization<A> {
    op: A,
    penalty: Penalty,
    w: Vec<f64>,
    residual: Vec<f64>,
}

impl<A: LinearOperator> RidgeLinearization<A> {
    fn new(op: A, penalty: Penalty, w: &[f64], b: &[f64]) -> Result<Self, ImplicitError> {
        let d = op.ncols();
        if w.len() != d {
            return Err(ImplicitError::Dimension {
                what: "ridge weights w",
                expected: d,
                got: w.len(),
            });
        }
        check_finite("ridge weights w", w)?;
        let mut residual = vec![0.0; d];
        op.apply(w, &mut residual)?;
        residual.iter_mut().zip(b).for_each(|(r, b)| *r -= b);
        Ok(RidgeLinearization {
            op,
            penalty,
            w: w.to_vec(),
            residual,
        })
    }

    fn a(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        let mut y = vec![0.0; v.len()];
        self.op
            .apply(v, &mut y)
            .expect("ridge operator products cannot fail");
        Ok(y)
    }
}

impl<A: LinearOperator> Linearization for RidgeLinearization<A> {
    fn dims(&self) -> (usize, usize) {
        let p = match self.penalty {
            Penalty::Shared => 1,
            Penalty::PerFeature => self.w.len(),
        };
        (self.w.len(), p)
    }
    fn residual(&self) -> &[f64] {
        &self.residual
    }
    fn symmetric(&self) -> bool {
        true
    }
    fn a_mul(&self, v: &[f64]) -> Result<Vec<f64>, AdError> {
        self.a(v)
    }
    fn at_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        self.a(u)
    }
    fn b_mul(&self, t: &[f64]) -> Result<Vec<f64>, AdError> {
        Ok(match self.penalty {
            Penalty::Shared => self.w.iter().map(|w| w * t[0]).collect(),
            Penalty::PerFeature => self.w.iter().zip(t).map(|(w, t)| w * t).collect(),
        })
    }
    fn bt_mul(&self, u: &[f64]) -> Result<Vec<f64>, AdError> {
        Ok(match self.penalty {
            Penalty::Shared => vec![self.w.iter().zip(u).map(|(w, u)| w * u).sum()],
            Penalty::PerFeature => self.w.iter().zip(u).map(|(w, u)| w * u).collect(),
        })
    }
}

/// The validation loss `V(w) = ‖X_v w − y_v‖² / (2 n_v)`.
#[derive(Clone, Debug)]
pub struct SquaredError {
    x: Arc<DMatrix<f64>>,
    /// `Xᵀ` (contiguous rows of X: `Xᵀ r` as an axpy-form product).
    xt: DMatrix<f64>,
    y: Arc<DMatrix<f64>>,
}

impl SquaredError {
    /// On validation data (checked like [`Ridge::new`]).
    pub fn new(data: &Dataset) -> Result<Self, ImplicitError> {
        check_data("rows of validation y (must match the rows of X)", data)?;
        Ok(SquaredError {
            x: Arc::new(data.x.clone()),
            xt: data.x.transpose(),
            y: Arc::new(DMatrix::from_column_slice(
                data.y.len(),
                1,
                data.y.as_slice(),
            )),
        })
    }
}

impl ValidationLoss for SquaredError {
    fn loss<M: MatOps>(&self, w: &M, _theta: &M) -> M::Scalar {
        let nv = self.x.nrows() as f64;
        let r = w.shared(&self.x).matmul(w).sub(&w.shared(&self.y));
        r.sq_norm() / (2.0 * nv)
    }

    /// Hand-written: `r = X_v w − y_v`, `V = ‖r‖²/(2n_v)`, `∇V = X_vᵀ r / n_v` (two gemv).
    fn value_and_grad(
        &self,
        w: &[f64],
        theta: &[f64],
    ) -> Result<(f64, Vec<f64>, Vec<f64>), ImplicitError> {
        check_weights(self.x.ncols(), w)?;
        let (rows, d) = self.x.shape();
        let nv = rows as f64;
        let mut r = vec![0.0; rows];
        blas::gemv(self.x.as_slice(), w, &mut r);
        let mut sq = 0.0;
        for (ri, yi) in r.iter_mut().zip(self.y.as_slice()) {
            *ri -= yi;
            sq += *ri * *ri;
        }
        let mut g = vec![0.0; d];
        blas::gemv(self.xt.as_slice(), &r, &mut g);
        g.iter_mut().for_each(|v| *v /= nv);
        Ok((sq / (2.0 * nv), g, vec![0.0; theta.len()]))
    }
}

/// Check the length and values of weights passed to a validation loss.
pub(crate) fn check_weights(d: usize, w: &[f64]) -> Result<(), ImplicitError> {
    if w.len() != d {
        return Err(ImplicitError::Dimension {
            what: "weights w of the validation loss",
            expected: d,
            got: w.len(),
        });
    }
    check_finite("weights w of the validation loss", w)
}

/// The closed-form solution and hypergradient of ridge regression.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClosedForm {
    /// w*(θ).
    pub x: Vec<f64>,
    /// V(w*(θ)).
    pub val_loss: f64,
    /// dV/dθ: `−∇Vᵀ A⁻¹ w*` for a shared λ, `−(A⁻¹ ∇V)_j w*_j` per feature.
    pub grad: Vec<f64>,
}

/// The closed form (dense solves with A = XᵀX/n + diag(λ)), as a reference.
pub fn closed_form(
    ridge: &Ridge,
    val: &SquaredError,
    theta: &[f64],
) -> Result<ClosedForm, ImplicitError> {
    let gram = ridge.gram();
    let (w, chol) = gram.solve(theta)?;
    let (val_loss, gv, _) = val.value_and_grad(&w, theta)?;
    let opts = SolveOptions::default().rtol(1e-14);
    let v = chol.solve(&gv, None, &opts)?.x;
    let per_feature = v.iter().zip(&w).map(|(v, w)| -v * w);
    let grad = match ridge.penalty {
        Penalty::Shared => vec![per_feature.sum()],
        Penalty::PerFeature => per_feature.collect(),
    };
    Ok(ClosedForm {
        x: w,
        val_loss,
        grad,
    })
}
