//! Custom ops: a value computed outside the tape, with user-supplied VJP and JVP rules.
//!
//! This is how solvers enter the tape: the forward solve runs in plain `f64` (any algorithm,
//! black box allowed) and only the solution is recorded, as one node whose rules apply, say,
//! the implicit function theorem. A rule may fail (a backward linear solve that does not
//! converge): the failure surfaces as [`AdError::CustomRule`] from the sweep, never as a
//! silent zero gradient.
//!
//! Blocks: inputs and outputs are lists of matrices. A group of scalar [`Var`]s is one
//! `n x 1` block.
//!
//! # Example: a root found by Newton, differentiated by the implicit function theorem
//!
//! x*(a) solves x³ + a·x − 1 = 0. With F(x, a) = x³ + a x − 1, the theorem gives
//! dx*/da = −(∂F/∂a)/(∂F/∂x) = −x / (3x² + a).
//!
//! ```
//! use ad_core::{custom_scalar_op, FnRule, Real, Tape};
//! use nalgebra::DMatrix;
//!
//! fn newton_root(a: f64) -> f64 {
//!     let mut x = 1.0;
//!     for _ in 0..50 { x -= (x * x * x + a * x - 1.0) / (3.0 * x * x + a); }
//!     x
//! }
//!
//! let tape = Tape::new();
//! let a = tape.var(2.0);
//! let x = newton_root(a.value());
//! let dxda = -x / (3.0 * x * x + a.value()); // implicit function theorem
//! let rule = FnRule::new(
//!     "cubic_root",
//!     move |out_bar: &[DMatrix<f64>]| Ok(vec![&out_bar[0] * dxda]), // VJP
//!     move |in_dot: &[DMatrix<f64>]| Ok(vec![&in_dot[0] * dxda]),   // JVP
//! );
//! let root = custom_scalar_op(rule, &[a], &[x])[0];
//! let loss = root * root;                    // anything downstream
//! let g = tape.gradient(loss).unwrap().wrt(a);
//! // check against re-solving at a ± h
//! let h = 1e-6;
//! let fd = (newton_root(2.0 + h).powi(2) - newton_root(2.0 - h).powi(2)) / (2.0 * h);
//! assert!((g - fd).abs() < 1e-8);
//! ```

use nalgebra::DMatrix;

use crate::error::{AdError, RuleError, check_finite};
use crate::matrix::MatVar;
use crate::tape::op::{Op, OpaqueOp};
use crate::tape::{MatSlots, NONE, OpEntry, ScalarNode, TapeMat, active_id, with_tape};
use crate::var::Var;

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

/// Where a block of a custom op lives on the tape.
pub(crate) enum Block {
    /// Scalar nodes (NONE for constants), seen by the rule as an `n x 1` matrix.
    Scalars(Vec<u32>),
    /// One tape matrix.
    Mat(u32, (usize, usize)),
}

impl Block {
    fn shape(&self) -> (usize, usize) {
        match self {
            Block::Scalars(ids) => (ids.len(), 1),
            Block::Mat(_, s) => *s,
        }
    }
    /// Read this block's adjoint or tangent out of the slots (zeros where absent).
    fn gather(&self, s: &[f64], m: &MatSlots) -> DMatrix<f64> {
        match self {
            Block::Scalars(ids) => DMatrix::from_iterator(
                ids.len(),
                1,
                ids.iter()
                    .map(|&i| if i == NONE { 0.0 } else { s[i as usize] }),
            ),
            Block::Mat(i, (r, c)) => m[*i as usize]
                .clone()
                .unwrap_or_else(|| DMatrix::zeros(*r, *c)),
        }
    }
}

/// A recorded custom op.
pub(crate) struct CustomRecord {
    rule: Box<dyn CustomRule>,
    inputs: Vec<Block>,
    outputs: Vec<Block>,
}

fn check_shapes(
    name: &str,
    rule: &'static str,
    expected: &[Block],
    got: &[DMatrix<f64>],
) -> Result<(), AdError> {
    let exp: Vec<_> = expected.iter().map(Block::shape).collect();
    let got: Vec<_> = got.iter().map(|m| m.shape()).collect();
    if exp == got {
        Ok(())
    } else {
        Err(AdError::CustomShape {
            name: name.to_string(),
            rule,
            expected: exp,
            got,
        })
    }
}

/// Reject the first non-finite entry of the blocks a rule returned.
fn check_rule_output(
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

impl OpaqueOp for CustomRecord {
    fn backward(
        &self,
        _mats: &[TapeMat],
        sadj: &mut [f64],
        madj: &mut MatSlots,
    ) -> Result<(), AdError> {
        let u: Vec<DMatrix<f64>> = self.outputs.iter().map(|b| b.gather(sadj, madj)).collect();
        if u.iter().all(|m| m.iter().all(|&x| x == 0.0)) {
            return Ok(());
        }
        let name = self.rule.name();
        let bars = self.rule.vjp(&u).map_err(|source| AdError::CustomRule {
            name: name.to_string(),
            rule: "vjp",
            source,
        })?;
        check_shapes(name, "vjp", &self.inputs, &bars)?;
        check_rule_output(name, "vjp", &bars)?;
        for (block, bar) in self.inputs.iter().zip(&bars) {
            match block {
                Block::Scalars(ids) => {
                    for (k, &i) in ids.iter().enumerate() {
                        if i != NONE {
                            sadj[i as usize] += bar[k];
                        }
                    }
                }
                Block::Mat(i, _) => crate::matrix::linalg::accumulate(&mut madj[*i as usize], bar),
            }
        }
        Ok(())
    }

    fn forward(
        &self,
        _mats: &[TapeMat],
        stan: &mut [f64],
        mtan: &mut MatSlots,
    ) -> Result<(), AdError> {
        let v: Vec<DMatrix<f64>> = self.inputs.iter().map(|b| b.gather(stan, mtan)).collect();
        let name = self.rule.name();
        let dots = self.rule.jvp(&v).map_err(|source| AdError::CustomRule {
            name: name.to_string(),
            rule: "jvp",
            source,
        })?;
        check_shapes(name, "jvp", &self.outputs, &dots)?;
        check_rule_output(name, "jvp", &dots)?;
        for (block, dot) in self.outputs.iter().zip(dots) {
            match block {
                Block::Scalars(ids) => {
                    for (k, &i) in ids.iter().enumerate() {
                        stan[i as usize] = dot[k];
                    }
                }
                Block::Mat(i, _) => mtan[*i as usize] = Some(dot),
            }
        }
        Ok(())
    }
}

/// Which tape the inputs live on (all must agree); `None` if every input is a constant.
fn common_tape(ids: impl Iterator<Item = u32>) -> Option<u32> {
    let mut tape = None;
    for id in ids {
        match tape {
            None => tape = Some(id),
            Some(t) if t == id => {}
            Some(t) => {
                let stale = if active_id() == Some(t) { id } else { t };
                with_tape(stale, |_| ());
            }
        }
    }
    tape
}

/// Record a custom op with matrix inputs and outputs; returns one [`MatVar`] per output.
///
/// `outputs` are the values the op computed (outside the tape). The rule's `vjp` receives
/// one adjoint per output and must return one adjoint per input (same shapes); `jvp` the
/// other way round. Inputs must live on the active tape.
pub fn custom_op(
    rule: impl CustomRule,
    inputs: &[MatVar],
    outputs: Vec<DMatrix<f64>>,
) -> Vec<MatVar> {
    let tape = common_tape(inputs.iter().map(|m| m.tape_id()))
        .or_else(active_id)
        .expect("ad-core: custom_op needs an active tape");
    let in_blocks = inputs
        .iter()
        .map(|m| Block::Mat(m.index(), crate::MatOps::shape(m)))
        .collect();
    with_tape(tape, |t| {
        let mut out_vars = Vec::with_capacity(outputs.len());
        let mut out_blocks = Vec::with_capacity(outputs.len());
        for value in outputs {
            let (r, c) = value.shape();
            let idx = t.mats.len() as u32;
            t.mats.push(value.into());
            t.foreign_mats.push(idx);
            out_blocks.push(Block::Mat(idx, (r, c)));
            out_vars.push(MatVar::from_parts(tape, idx, r, c));
        }
        let scalar_mark = t.scalars.len() as u32;
        t.ops.push(OpEntry {
            scalar_mark,
            op: Op::Custom(Box::new(CustomRecord {
                rule: Box::new(rule),
                inputs: in_blocks,
                outputs: out_blocks,
            })),
        });
        out_vars
    })
}

/// Record a custom op on scalar inputs with scalar outputs; returns one [`Var`] per output.
///
/// The rule sees the inputs as one `n x 1` block and the outputs as one `m x 1` block.
/// If every input is a constant, the outputs are constants and nothing is recorded.
pub fn custom_scalar_op(rule: impl CustomRule, inputs: &[Var], outputs: &[f64]) -> Vec<Var> {
    let Some(tape) = common_tape(
        inputs
            .iter()
            .filter(|v| !v.is_constant())
            .map(|v| v.tape_id()),
    ) else {
        return outputs.iter().map(|&v| Var::constant(v)).collect();
    };
    let in_ids: Vec<u32> = inputs.iter().map(|v| v.index()).collect();
    with_tape(tape, |t| {
        let first = t.scalars.len() as u32;
        for _ in outputs {
            t.scalars.push(ScalarNode {
                parents: [NONE, NONE],
                partials: [0.0, 0.0],
            });
        }
        let out_ids: Vec<u32> = (first..first + outputs.len() as u32).collect();
        let scalar_mark = t.scalars.len() as u32;
        t.ops.push(OpEntry {
            scalar_mark,
            op: Op::Custom(Box::new(CustomRecord {
                rule: Box::new(rule),
                inputs: vec![Block::Scalars(in_ids)],
                outputs: vec![Block::Scalars(out_ids.clone())],
            })),
        });
        out_ids
            .iter()
            .zip(outputs)
            .map(|(&i, &v)| Var::from_parts(v, tape, i))
            .collect()
    })
}
