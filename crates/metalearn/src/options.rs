//! Options of the algorithms: [`InnerSgd`], [`ImamlOptions`] and their stopping rules.

use serde::{Deserialize, Serialize};

use crate::error::{MetaError, check_count, check_positive};
use crate::task_gradient::Rates;

/// `steps` plain gradient steps `phi <- phi - lr * grad L_support(phi)` from `theta`: the
/// inner loop of MAML, FOMAML and Reptile, and the fine-tuning of the evaluation protocol.
///
/// ```
/// use metalearn::InnerSgd;
/// let inner = InnerSgd::default().steps(5);
/// assert_eq!((inner.steps, inner.lr), (5, 0.01));
/// assert!(InnerSgd::default().lr(f64::NAN).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InnerSgd {
    /// Number of inner steps (at least 1). Default 1.
    pub steps: usize,
    /// Inner learning rate alpha. Default 0.01 (Finn et al. 2017's sinusoid value).
    pub lr: f64,
}

impl Default for InnerSgd {
    fn default() -> Self {
        InnerSgd { steps: 1, lr: 0.01 }
    }
}

impl InnerSgd {
    /// Set the number of steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// Set the inner learning rate.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }

    /// The inner loop's rate and number of steps.
    pub(crate) fn rates(&self) -> (Rates<'static>, usize) {
        (Rates::One(self.lr), self.steps)
    }

    /// [`MetaError::InvalidOption`] for zero steps, a learning rate that is not finite and
    /// positive, or one so small or large that `steps * lr` or its inverse (Reptile's
    /// scale) is not finite.
    pub fn validate(&self) -> Result<(), MetaError> {
        check_count("inner steps", self.steps)?;
        check_positive("inner lr", self.lr)?;
        let span = self.steps as f64 * self.lr;
        if span.is_finite() && (1.0 / span).is_finite() {
            Ok(())
        } else {
            Err(MetaError::InvalidOption {
                name: "inner lr",
                value: self.lr,
                reason: "steps * lr and its inverse must be finite",
            })
        }
    }
}

/// When an iterative part of iMAML stops.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Stop {
    /// Stop as soon as the residual (gradient norm for the inner problem, relative residual
    /// for CG) is at most `tol`; reaching `max_iters` first is an error
    /// ([`MetaError::InnerNotConverged`], or [`MetaError::Linear`] for CG).
    Tolerance {
        /// The tolerance.
        tol: f64,
        /// The iteration limit.
        max_iters: usize,
    },
    /// Run exactly `iters` iterations and accept the result whatever its residual (the
    /// fixed budgets of the reference iMAML code and of the W5 workload); the residual
    /// reached is reported in the stats.
    Fixed {
        /// The number of iterations.
        iters: usize,
    },
}

impl Stop {
    /// The iteration limit (or budget).
    pub fn max_iters(&self) -> usize {
        match *self {
            Stop::Tolerance { max_iters, .. } => max_iters,
            Stop::Fixed { iters } => iters,
        }
    }

    fn validate(&self, name_tol: &'static str, name_iters: &'static str) -> Result<(), MetaError> {
        match *self {
            Stop::Tolerance { tol, max_iters } => {
                check_positive(name_tol, tol)?;
                check_count(name_iters, max_iters)
            }
            Stop::Fixed { iters } => check_count(name_iters, iters),
        }
    }
}

/// iMAML (Rajeswaran et al. 2019): the inner problem
/// `phi* = argmin L_support(phi) + lambda/2 ||phi - theta||^2`, solved by gradient descent
/// from `theta`, and the meta-gradient `(I + H/lambda)^{-1} grad L_query(phi*)` by
/// implicit's conjugate gradient on Hessian-vector products (`H` the support loss's
/// Hessian at `phi*`).
///
/// The defaults solve the inner problem to a gradient norm of `1e-6` (at most 2000 steps)
/// and the linear system to a relative residual of `1e-8`: an exact meta-gradient, not a
/// budget. [`ImamlOptions::w5`] gives the fixed budgets of the peers' W5 workload.
///
/// ```
/// use metalearn::{ImamlOptions, Stop};
/// let opts = ImamlOptions::default().lambda(1.0).inner(Stop::Fixed { iters: 50 });
/// assert!(opts.validate().is_ok());
/// assert!(ImamlOptions::default().lambda(-1.0).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImamlOptions {
    /// Proximal strength lambda. Default 2.
    pub lambda: f64,
    /// Step size of the inner gradient descent. Default 0.01.
    pub inner_lr: f64,
    /// Stopping rule of the inner solve, on `||grad L_support(phi) + lambda (phi - theta)||`.
    pub inner: Stop,
    /// Stopping rule of CG, on the relative residual of `(I + H/lambda) x = g`.
    pub cg: Stop,
    /// Take back any inner step that increases the proximal objective (or leaves the
    /// finite numbers) and retry it with half the step size: the inner objective never
    /// increases, whatever the curvature. Default `true`; [`ImamlOptions::w5`] turns it
    /// off (plain gradient descent, as the reference code).
    pub backtrack: bool,
}

impl Default for ImamlOptions {
    fn default() -> Self {
        ImamlOptions {
            lambda: 2.0,
            inner_lr: 0.01,
            inner: Stop::Tolerance {
                tol: 1e-6,
                max_iters: 2000,
            },
            cg: Stop::Tolerance {
                tol: 1e-8,
                max_iters: 200,
            },
            backtrack: true,
        }
    }
}

impl ImamlOptions {
    /// The W5 workload's budgets: lambda 2, exactly 100 inner steps of 0.01, exactly 5 CG
    /// iterations from zero, plain gradient descent (no backtracking).
    pub fn w5() -> ImamlOptions {
        ImamlOptions {
            lambda: 2.0,
            inner_lr: 0.01,
            inner: Stop::Fixed { iters: 100 },
            cg: Stop::Fixed { iters: 5 },
            backtrack: false,
        }
    }

    /// Set lambda.
    pub fn lambda(mut self, lambda: f64) -> Self {
        self.lambda = lambda;
        self
    }

    /// Set the inner step size.
    pub fn inner_lr(mut self, lr: f64) -> Self {
        self.inner_lr = lr;
        self
    }

    /// Set the inner stopping rule.
    pub fn inner(mut self, stop: Stop) -> Self {
        self.inner = stop;
        self
    }

    /// Turn the inner step's backtracking on or off.
    pub fn backtrack(mut self, on: bool) -> Self {
        self.backtrack = on;
        self
    }

    /// Set CG's stopping rule.
    pub fn cg(mut self, stop: Stop) -> Self {
        self.cg = stop;
        self
    }

    /// [`MetaError::InvalidOption`] for a lambda, step size or tolerance that is not finite
    /// and positive, or a zero iteration count.
    pub fn validate(&self) -> Result<(), MetaError> {
        check_positive("lambda", self.lambda)?;
        check_positive("inner_lr", self.inner_lr)?;
        self.inner.validate("inner tol", "inner iterations")?;
        self.cg.validate("cg tol", "cg iterations")
    }
}

/// Meta-SGD (Li et al. 2017): MAML whose inner step has a learned rate per parameter,
/// `phi <- phi - alpha ⊙ grad L_support(phi)`. The meta-parameters are `theta` and `alpha`,
/// one vector `[theta, alpha]` twice the network's length
/// ([`Algorithm::init_meta_params`](crate::Algorithm::init_meta_params) builds it), and both
/// are meta-learned: the meta-gradient of `alpha` is `-sum_j grad L_support(phi_j) ⊙ v_{j+1}`
/// with `v` the query gradient carried back through the steps.
///
/// ```
/// use metalearn::MetaSgdOptions;
/// let o = MetaSgdOptions::default().steps(2);
/// assert_eq!((o.steps, o.init_lr, o.first_order), (2, 0.01, false));
/// assert!(MetaSgdOptions::default().init_lr(f64::INFINITY).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetaSgdOptions {
    /// Inner steps (at least 1). Default 1.
    pub steps: usize,
    /// The rate every entry of `alpha` starts from (in `init_meta_params`). Default 0.01.
    pub init_lr: f64,
    /// Drop the second-order terms (the inner gradients are constants, as in FOMAML):
    /// `theta`'s meta-gradient is the query gradient at the adapted parameters, and
    /// `alpha`'s uses it at every step. Default `false` (exact, by Hessian-vector products
    /// through each step's `I - diag(alpha) H`).
    pub first_order: bool,
}

impl Default for MetaSgdOptions {
    fn default() -> Self {
        MetaSgdOptions {
            steps: 1,
            init_lr: 0.01,
            first_order: false,
        }
    }
}

impl MetaSgdOptions {
    /// Set the number of inner steps.
    pub fn steps(mut self, steps: usize) -> Self {
        self.steps = steps;
        self
    }

    /// Set the initial rate.
    pub fn init_lr(mut self, lr: f64) -> Self {
        self.init_lr = lr;
        self
    }

    /// Drop (`true`) or keep the second-order terms.
    pub fn first_order(mut self, on: bool) -> Self {
        self.first_order = on;
        self
    }

    /// [`MetaError::InvalidOption`] for zero steps or an initial rate that is not finite
    /// and positive. (The learned rates themselves may take any finite value.)
    pub fn validate(&self) -> Result<(), MetaError> {
        check_count("inner steps", self.steps)?;
        check_positive("init_lr", self.init_lr)
    }
}
