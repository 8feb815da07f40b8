//! Hyperparameter optimization by implicit differentiation: the gradient of a validation
//! loss with respect to the hyperparameters of an inner argmin, and hypergradient descent.
//!
//! - [`hypergradient`]: dV(x*(θ), θ)/dθ for any inner [`Objective`](crate::Objective), any
//!   [`ValidationLoss`] and any [`InnerSolver`] (a closure; warm starts and reuse of the
//!   solver's Hessian factorization supported);
//! - [`optimize`]: Adam over θ with warm-started inner solves and a serializable [`Trace`];
//!   [`optimize_lbfgs`]: argmin's L-BFGS over θ with the same hypergradients;
//! - [`Ridge`] / [`RidgeGram`]: ridge regression with a shared or per-feature λ, with its
//!   closed form ([`closed_form`]) to check against;
//! - [`LogReg`]: logistic regression with one L2 hyperparameter per feature (the JAXopt
//!   paper's setting), with a dense Newton inner solver;
//! - [`data`]: the W1/W2 data of the peer benchmarks.
//!
//! ```
//! use implicit::hyper::{closed_form, data, hypergradient, InnerSolution, Penalty, Ridge, SquaredError};
//! use implicit::{IftOptions, ImplicitError};
//! let w1 = data::w1();
//! let ridge = Ridge::new(&w1.train, Penalty::Shared)?;
//! let val = SquaredError::new(&w1.val)?;
//! let gram = ridge.gram();
//! // Forward: Cholesky of XᵀX/n + λI; backward: the same factor, reused.
//! let mut solver = |t: &[f64], _warm: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
//!     let (w, chol) = gram.solve(t)?;
//!     Ok(InnerSolution { x: w, iterations: 1, factor: Some(implicit::Factor::Cholesky(chol)) })
//! };
//! let h = hypergradient(&gram, &val, &[0.1], &mut solver, &IftOptions::default())?;
//! let exact = closed_form(&ridge, &val, &[0.1])?;
//! assert!((h.grad[0] - exact.grad[0]).abs() <= 1e-12 * exact.grad[0].abs());
//! # Ok::<(), ImplicitError>(())
//! ```

pub mod data;
mod hypergrad;
mod lbfgs;
mod logreg;
mod optimize;
mod ridge;

pub use hypergrad::{
    Hypergradient, InnerSolution, InnerSolver, ValidationLoss, hypergradient, hypergradient_at,
    hypergradient_linearized, hypergradient_warm, validation_value_and_grad,
};
pub use lbfgs::{LbfgsOutcome, optimize_lbfgs};
pub use logreg::{
    LogLoss, LogReg, LogRegLinearization, NewtonOptions, NewtonSolution, reference_hypergradient,
};
pub use optimize::{Adam, HyperOptions, Trace, TraceStep, optimize};
pub use ridge::{
    ClosedForm, GramOperator, Penalty, Ridge, RidgeGram, RidgeLinearization, RidgeOperator,
    SquaredError, closed_form,
};
