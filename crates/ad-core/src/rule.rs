//! The rules of custom ops, as the user supplies them: [`CustomRule`] (a VJP and a JVP at
//! one point) and [`CustomFn`] (a function that evaluates itself and gives its rule).

use nalgebra::DMatrix;

use crate::error::{AdError, RuleError, check_finite};

/// The derivative rules of a custom op.
///
/// `vjp` maps the adjoints of the outputs (one matrix per output block) to the adjoints of
/// the inputs (one per input block); `jvp` maps input tangents to output tangents. Both
/// must be linear maps and adjoint to each other: `<vjp(u), v> == <u, jvp(v)>` (the
/// dot-product test, which the property tests check for the library's own ops).
pub trait CustomRule: 'static {
    /// A short name for error messages.
    fn name(&self) -> &str;
    /// Output adjoints to input adjoints.
    fn vjp(&self, output_adjoints: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError>;
    /// Input tangents to output tangents.
    fn jvp(&self, input_tangents: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError>;
}

type RuleFn = dyn Fn(&[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError>;

/// A [`CustomRule`] made of two closures.
pub struct FnRule {
    name: String,
    vjp: Box<RuleFn>,
    jvp: Box<RuleFn>,
}

impl FnRule {
    /// A rule from a name, a VJP closure and a JVP closure.
    pub fn new(
        name: impl Into<String>,
        vjp: impl Fn(&[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> + 'static,
        jvp: impl Fn(&[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> + 'static,
    ) -> FnRule {
        FnRule {
            name: name.into(),
            vjp: Box::new(vjp),
            jvp: Box::new(jvp),
        }
    }
}

impl CustomRule for FnRule {
    fn name(&self) -> &str {
        &self.name
    }
    fn vjp(&self, u: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        (self.vjp)(u)
    }
    fn jvp(&self, v: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        (self.jvp)(v)
    }
}

/// A boxed rule is a rule.
impl CustomRule for Box<dyn CustomRule> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn vjp(&self, u: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        (**self).vjp(u)
    }
    fn jvp(&self, v: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        (**self).jvp(v)
    }
}

/// A function computed outside the tape (a solver, a black box) that works in every mode:
/// it evaluates itself at plain input values and gives its linearization there.
///
/// Apply it with [`MatOps::custom`](crate::MatOps::custom) (blocks of matrices) or
/// [`Real::custom`](crate::Real::custom) (one block of scalars): `f64` and `DMatrix<f64>`
/// evaluate the value ([`CustomFn::eval`]); `Dual`/`DualMat` over plain values apply the
/// JVP rule; `Var`/`MatVar` record a custom node whose sweeps use the rule. A first-order
/// rule says nothing about second derivatives, so a tangent that is not known to be zero
/// on a tape mode (`Dual<Var>`, `DualMat<MatVar>`) is an
/// [`AdError::CustomSecondOrder`](crate::AdError::CustomSecondOrder), not a wrong
/// Hessian-vector product.
pub trait CustomFn {
    /// The rule [`CustomFn::linearize`] returns.
    type Rule: CustomRule;
    /// A short name for error messages.
    fn name(&self) -> &str;
    /// The outputs at `inputs` (one matrix per block) and the rule linearizing the
    /// function at that point.
    fn linearize(
        &self,
        inputs: &[DMatrix<f64>],
    ) -> Result<(Vec<DMatrix<f64>>, Self::Rule), RuleError>;
    /// The outputs only (plain evaluation). The default calls [`CustomFn::linearize`] and
    /// drops the rule; override it when the rule costs extra work (a factorization).
    fn eval(&self, inputs: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
        Ok(self.linearize(inputs)?.0)
    }
}

/// Reject the first non-finite entry of the blocks a rule returned.
pub(crate) fn check_rule_output(
    name: &str,
    rule: &'static str,
    blocks: &[DMatrix<f64>],
) -> Result<(), AdError> {
    for (block, m) in blocks.iter().enumerate() {
        if let Err(AdError::NonFinite { index, value, .. }) = check_finite("", m.as_slice()) {
            return Err(AdError::CustomNonFinite {
                name: name.to_string(),
                rule,
                block,
                index,
                value,
            });
        }
    }
    Ok(())
}

/// Evaluate `f` at plain values (the `eval` rule), checking its outputs are finite.
pub(crate) fn eval_checked<F: CustomFn>(
    f: &F,
    inputs: &[DMatrix<f64>],
) -> Result<Vec<DMatrix<f64>>, AdError> {
    let outs = f.eval(inputs).map_err(|e| eval_error(f.name(), e))?;
    check_rule_output(f.name(), "eval", &outs)?;
    Ok(outs)
}

/// Linearize `f` at plain values, checking its outputs are finite.
pub(crate) fn linearize_checked<F: CustomFn>(
    f: &F,
    inputs: &[DMatrix<f64>],
) -> Result<(Vec<DMatrix<f64>>, F::Rule), AdError> {
    let (outs, rule) = f.linearize(inputs).map_err(|e| eval_error(f.name(), e))?;
    check_rule_output(f.name(), "eval", &outs)?;
    Ok((outs, rule))
}

fn eval_error(name: &str, source: RuleError) -> AdError {
    AdError::CustomRule {
        name: name.to_string(),
        rule: "eval",
        source,
    }
}

/// The JVP of `rule` on `tangents`, checked: one finite block per output, same shapes.
pub(crate) fn jvp_checked(
    name: &str,
    rule: &impl CustomRule,
    tangents: &[DMatrix<f64>],
    outputs: &[DMatrix<f64>],
) -> Result<Vec<DMatrix<f64>>, AdError> {
    let dots = rule.jvp(tangents).map_err(|source| AdError::CustomRule {
        name: name.to_string(),
        rule: "jvp",
        source,
    })?;
    let expected: Vec<_> = outputs.iter().map(|m| m.shape()).collect();
    let got: Vec<_> = dots.iter().map(|m| m.shape()).collect();
    if expected != got {
        return Err(AdError::CustomShape {
            name: name.to_string(),
            rule: "jvp",
            expected,
            got,
        });
    }
    check_rule_output(name, "jvp", &dots)?;
    Ok(dots)
}

/// The one `m x 1` output block of a function applied to scalars, as a vector.
pub(crate) fn column_output(name: &str, outs: Vec<DMatrix<f64>>) -> Result<Vec<f64>, AdError> {
    match outs.as_slice() {
        [m] if m.ncols() == 1 => Ok(m.as_slice().to_vec()),
        _ => Err(AdError::CustomShape {
            name: name.to_string(),
            rule: "eval",
            expected: vec![(outs.first().map_or(0, |m| m.len()), 1)],
            got: outs.iter().map(|m| m.shape()).collect(),
        }),
    }
}
