//! The ODE solve as a custom op on the ad-core tape: [`OdeSolve`] (a [`CustomFn`]) and
//! [`odeint`], which returns the states at the observation times as one `K x dim` matrix
//! of the caller's mode, so any loss composes and `Tape::gradient` works.
//!
//! Inputs (blocks): h0 (`dim x 1`), θ (`p x 1`), t0 (`1 x 1`), ts (`K x 1`). The VJP runs
//! the method of the options; the JVP is the forward tangent of the solver's steps.

use std::rc::Rc;

use ad_core::{AdError, CustomFn, CustomRule, MatOps, RuleError};
use nalgebra::DMatrix;

use crate::dynamics::Dynamics;
use crate::error::NodeError;
use crate::grad::{ForwardPass, forward};
use crate::options::GradOptions;

/// An ODE solve with its gradient method, usable as a custom function in every mode.
pub struct OdeSolve<D> {
    f: Rc<D>,
    opts: GradOptions,
}

impl<D: Dynamics + 'static> OdeSolve<D> {
    /// The solve of `f` with these options.
    pub fn new(f: Rc<D>, opts: GradOptions) -> OdeSolve<D> {
        OdeSolve { f, opts }
    }
}

/// The rule at one point: the forward pass, differentiated on demand.
pub struct OdeRule<D> {
    f: Rc<D>,
    pass: ForwardPass,
}

/// The four blocks, their shapes checked: h0 `dim x 1`, θ `p x 1`, t0 `1 x 1`, ts `K x 1`.
fn blocks<'a, D: Dynamics>(
    f: &D,
    inputs: &'a [DMatrix<f64>],
) -> Result<[&'a DMatrix<f64>; 4], RuleError> {
    let [h0, theta, t0, ts] = inputs else {
        return Err(format!(
            "odeint takes 4 blocks (h0, theta, t0, ts), got {}",
            inputs.len()
        )
        .into());
    };
    for (what, m, expected) in [
        ("odeint block h0", h0, (f.dim(), 1)),
        ("odeint block theta", theta, (f.num_params(), 1)),
        ("odeint block t0", t0, (1, 1)),
        ("odeint block ts", ts, (ts.len(), 1)),
    ] {
        if m.shape() != expected {
            return Err(Box::new(NodeError::Shape {
                what,
                expected,
                got: m.shape(),
            }));
        }
    }
    Ok([h0, theta, t0, ts])
}

fn col(x: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(x.len(), 1, x)
}

impl<D: Dynamics + 'static> CustomRule for OdeRule<D> {
    fn name(&self) -> &str {
        "neuralode::odeint"
    }
    fn vjp(&self, u: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        let g = self.pass.vjp(&*self.f, &u[0])?;
        Ok(vec![
            col(&g.h0),
            col(&g.theta),
            DMatrix::from_element(1, 1, g.t0),
            col(&g.ts),
        ])
    }
    fn jvp(&self, v: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        Ok(vec![self.pass.jvp(
            &*self.f,
            v[0].as_slice(),
            v[1].as_slice(),
            v[2][(0, 0)],
            v[3].as_slice(),
        )?])
    }
}

impl<D: Dynamics + 'static> CustomFn for OdeSolve<D> {
    type Rule = OdeRule<D>;
    fn name(&self) -> &str {
        "neuralode::odeint"
    }
    fn linearize(
        &self,
        inputs: &[DMatrix<f64>],
    ) -> Result<(Vec<DMatrix<f64>>, OdeRule<D>), RuleError> {
        let [h0, theta, t0, ts] = blocks(&*self.f, inputs)?;
        let pass = forward(
            &*self.f,
            theta.as_slice(),
            h0.as_slice(),
            t0[(0, 0)],
            ts.as_slice(),
            &self.opts,
        )?;
        let out = pass.states().clone();
        Ok((
            vec![out],
            OdeRule {
                f: Rc::clone(&self.f),
                pass,
            },
        ))
    }
    fn eval(&self, inputs: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        let [h0, theta, t0, ts] = blocks(&*self.f, inputs)?;
        let sol = crate::grad::solve(
            &*self.f,
            theta.as_slice(),
            h0.as_slice(),
            t0[(0, 0)],
            ts.as_slice(),
            &self.opts.solver,
        )?;
        Ok(vec![sol.states])
    }
}

/// The states at the observation times (`K x dim`) in the mode of the inputs: h0
/// (`dim x 1`), θ (`p x 1`), t0 (`1 x 1`), ts (`K x 1`); other shapes are a
/// [`NodeError::Shape`] inside the op's error.
///
/// ```
/// use std::rc::Rc;
/// use ad_core::nn::{Activation, Init, Mlp};
/// use ad_core::{MatOps, Tape};
/// use nalgebra::DMatrix;
/// use neuralode::{odeint, GradOptions, Method, MlpDynamics, OdeSolve};
/// let f = Rc::new(MlpDynamics::new(Mlp::new(&[2, 8, 2], Activation::Tanh, Activation::Identity)));
/// let op = OdeSolve::new(Rc::clone(&f), GradOptions::default().method(Method::Interpolating));
/// let tape = Tape::new();
/// let theta = tape.mat_var(DMatrix::from_vec(42, 1, f.mlp().init(Init::XavierUniform, 3)));
/// let h0 = tape.mat_var(DMatrix::from_column_slice(2, 1, &[1.0, 0.0]));
/// let t0 = tape.constant_mat(DMatrix::from_element(1, 1, 0.0));
/// let ts = tape.constant_mat(DMatrix::from_column_slice(3, 1, &[0.2, 0.7, 1.5]));
/// let states = odeint(&op, &h0, &theta, &t0, &ts)?;        // 3 x 2, on the tape
/// let loss = states.tanh().sum();                          // any loss composes
/// let g = tape.gradient(loss)?;
/// assert_eq!(g.wrt_mat(&theta).shape(), (42, 1));
/// # Ok::<(), ad_core::AdError>(())
/// ```
pub fn odeint<M: MatOps, D: Dynamics + 'static>(
    op: &OdeSolve<D>,
    h0: &M,
    theta: &M,
    t0: &M,
    ts: &M,
) -> Result<M, AdError> {
    let mut out = M::custom(op, &[h0.clone(), theta.clone(), t0.clone(), ts.clone()])?;
    Ok(out.remove(0))
}
