//! How a custom op is recorded on the tape and swept: the tape sees it as an [`OpaqueOp`]
//! that propagates adjoints and tangents through its user rule.

use nalgebra::DMatrix;

use crate::error::AdError;
use crate::rule::{CustomRule, check_rule_output};
use crate::tape::op::{Op, OpaqueOp};
use crate::tape::{MatSlots, NONE, OpEntry, ScalarNode, TapeMat, active_id, with_tape};

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

impl OpaqueOp for CustomRecord {
    fn name(&self) -> String {
        self.rule.name().to_string()
    }
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
pub(crate) fn common_tape(ids: impl Iterator<Item = u32>) -> Option<u32> {
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

/// Record a custom op whose inputs are tape matrices `(index, shape)` on tape `tape` and
/// whose outputs are `outputs`; returns the outputs' matrix indices.
pub(crate) fn record_mats(
    tape: u32,
    rule: Box<dyn CustomRule>,
    inputs: &[(u32, (usize, usize))],
    outputs: Vec<DMatrix<f64>>,
) -> Vec<u32> {
    let in_blocks = inputs.iter().map(|&(i, s)| Block::Mat(i, s)).collect();
    with_tape(tape, |t| {
        let mut out_ids = Vec::with_capacity(outputs.len());
        let mut out_blocks = Vec::with_capacity(outputs.len());
        for value in outputs {
            let shape = value.shape();
            let idx = t.mats.len() as u32;
            t.mats.push(value.into());
            t.foreign_mats.push(idx);
            out_blocks.push(Block::Mat(idx, shape));
            out_ids.push(idx);
        }
        let scalar_mark = t.scalars.len() as u32;
        t.ops.push(OpEntry {
            scalar_mark,
            op: Op::Custom(Box::new(CustomRecord {
                rule,
                inputs: in_blocks,
                outputs: out_blocks,
            })),
        });
        out_ids
    })
}

/// Record a custom op on scalar nodes (`NONE` for constants) of tape `tape`, seen by the
/// rule as one `n x 1` block; returns the `n_out` output nodes.
pub(crate) fn record_scalars(
    tape: u32,
    rule: Box<dyn CustomRule>,
    inputs: Vec<u32>,
    n_out: usize,
) -> Vec<u32> {
    with_tape(tape, |t| {
        let first = t.scalars.len() as u32;
        for _ in 0..n_out {
            t.scalars.push(ScalarNode {
                parents: [NONE, NONE],
                partials: [0.0, 0.0],
            });
        }
        let out_ids: Vec<u32> = (first..first + n_out as u32).collect();
        let scalar_mark = t.scalars.len() as u32;
        t.ops.push(OpEntry {
            scalar_mark,
            op: Op::Custom(Box::new(CustomRecord {
                rule,
                inputs: vec![Block::Scalars(inputs)],
                outputs: vec![Block::Scalars(out_ids.clone())],
            })),
        });
        out_ids
    })
}
