//! A solution map θ ↦ x*(θ) as an ad-core [`CustomFn`], so it works inside any function
//! written against `MatOps`, in every mode: the plain `f64` evaluation solves, forward mode
//! (`DualMat`) applies the implicit JVP, the tape (`MatVar`) records one node whose VJP is
//! the implicit function theorem. A loss containing a solver can then be handed to
//! `value_and_grad_mat` or `jvp_mat` like any other function.
//!
//! Second order through a solver (an `hvp_mat` of such a loss) is not derived from the
//! first-order rule: `MatOps::custom` returns `AdError::CustomSecondOrder` naming the op.

use std::cell::RefCell;
use std::rc::Rc;

use ad_core::{CustomFn, CustomRule, RuleError};
use nalgebra::DMatrix;

use crate::backward::IftReport;
use crate::ift::IftOptions;
use crate::node::{ImplicitProblem, prepare};
use crate::solver_output::SolverOutput;

/// x*(θ) defined by `problem` and computed by `solver`, as a custom function of the
/// parameter blocks θ (one input per block; one output, x*).
///
/// Every evaluation solves afresh (a solver node per call); the reports of every
/// derivative pass, failed ones included, accumulate in [`SolutionFn::reports`].
///
/// ```
/// use ad_core::{value_and_grad_mat, MatFn, MatOps};
/// use implicit::{Argmin, IftOptions, Objective, SolutionFn};
/// use nalgebra::DMatrix;
/// // x*(θ) = argmin_x ½‖x − c‖² + θ/2 ‖x‖² = c / (1 + θ), c = (1, −2)
/// #[derive(Clone)]
/// struct Shrink;
/// impl Objective for Shrink {
///     fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
///         let c = x.constant_like(DMatrix::from_column_slice(2, 1, &[1.0, -2.0]));
///         x.sub(&c).sq_norm() * 0.5 + t[0].get(0, 0) * x.sq_norm() * 0.5
///     }
/// }
/// let solver = |t: &[DMatrix<f64>]| DMatrix::from_column_slice(2, 1, &[1.0, -2.0]) / (1.0 + t[0][0]);
/// let x_star = SolutionFn::new(Argmin(Shrink), solver, IftOptions::default());
/// // A loss containing the solver, written once against MatOps: ‖x*(θ)‖².
/// struct Loss<'a, F>(&'a F);
/// impl<F: ad_core::CustomFn> MatFn for Loss<'_, F> {
///     fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
///         M::custom(self.0, p).expect("the solve succeeds here")[0].sq_norm()
///     }
/// }
/// let theta = DMatrix::from_element(1, 1, 0.5);
/// let (value, g) = value_and_grad_mat(&Loss(&x_star), &[theta])?;
/// assert!((value - 5.0 / 2.25).abs() < 1e-12);
/// assert!((g[0][0] + 10.0 / 1.5f64.powi(3)).abs() < 1e-10); // d‖x*‖²/dθ = −10/(1+θ)³
/// assert_eq!(x_star.reports().len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SolutionFn<P, S> {
    problem: P,
    solver: S,
    options: IftOptions,
    reports: Rc<RefCell<Vec<IftReport>>>,
}

impl<P, S> SolutionFn<P, S> {
    /// A solution map from a problem ([`Root`](crate::Root), [`Argmin`](crate::Argmin) or
    /// [`FixedPoint`](crate::FixedPoint); share data through `Arc`), a forward solver
    /// called at every evaluation, and the options of the derivative passes.
    pub fn new(problem: P, solver: S, options: IftOptions) -> Self {
        SolutionFn {
            problem,
            solver,
            options,
            reports: Rc::new(RefCell::new(Vec::new())),
        }
    }

    /// Reports of every derivative pass so far (VJPs and JVPs, failed ones included).
    pub fn reports(&self) -> Vec<IftReport> {
        self.reports.borrow().clone()
    }
}

impl<P, S, R> CustomFn for SolutionFn<P, S>
where
    P: ImplicitProblem + Clone,
    S: Fn(&[DMatrix<f64>]) -> R,
    R: SolverOutput,
{
    type Rule = Box<dyn CustomRule>;

    fn name(&self) -> &str {
        "implicit"
    }

    fn linearize(
        &self,
        inputs: &[DMatrix<f64>],
    ) -> Result<(Vec<DMatrix<f64>>, Box<dyn CustomRule>), RuleError> {
        let (x, mut rule, _) = prepare(
            self.problem.clone(),
            inputs.to_vec(),
            &self.solver,
            self.options.clone(),
            false,
        )?;
        rule.reports = Rc::clone(&self.reports);
        Ok((vec![x], Box::new(rule)))
    }
}
