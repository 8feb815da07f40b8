//! # workloads — the W1/W2 problems of diffprog's benchmarks (dev-only, not published)
//!
//! The peers' W1 (ridge regression, one λ) and W2 (logistic regression, 50 per-feature
//! λ) problems on their closed-form data (`../shared/peers/README.md`), for the tests,
//! benches and examples of the workspace. The library (`implicit::hyper`) keeps the
//! general hypergradient, [`ValidationLoss`](implicit::hyper::ValidationLoss) and the
//! outer loops; everything specific to these two problems lives here:
//!
//! - [`data`]: the data formulas, W1/W2 constants, a held-out test split;
//! - [`Ridge`] / [`RidgeGram`] / [`SquaredError`] / [`closed_form`]: ridge regression, as a
//!   general [`Objective`](implicit::Objective) and with hand-written products;
//! - [`LogReg`] / [`LogLoss`] / [`reference_hypergradient`]: logistic regression with a
//!   dense Newton solver and hand-written products;
//! - [`general`]: the validation losses with no derivative code (tape gradients only) and
//!   an evaluation counter, for the "general path" rows;
//! - [`reference`](mod@reference): the full reference hypergradients dumped from the numpy peer.
//!
//! ```
//! use workloads::{closed_form, data, Penalty, Ridge, SquaredError};
//! let w1 = data::w1();
//! let ridge = Ridge::new(&w1.train, Penalty::Shared)?;
//! let val = SquaredError::new(&w1.val)?;
//! let cf = closed_form(&ridge, &val, &[data::W1_LAMBDA])?;
//! assert!((cf.grad[0] - 0.0694672879308).abs() < 1e-12);
//! # Ok::<(), implicit::ImplicitError>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod data;
pub mod general;
pub mod kernels;
mod logreg;
pub mod reference;
mod ridge;

pub use logreg::{
    LogLoss, LogReg, LogRegLinearization, NewtonOptions, NewtonSolution, reference_hypergradient,
};
pub use ridge::{
    ClosedForm, GramOperator, Penalty, Ridge, RidgeGram, RidgeLinearization, RidgeOperator,
    SquaredError, closed_form,
};
