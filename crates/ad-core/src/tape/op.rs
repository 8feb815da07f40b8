//! What the tape records for a matrix operation: which op, and which tape entries it reads
//! and writes. The meaning of each op (its sweep rules) lives above the tape, in
//! `matrix::ops` and (for custom ops) behind [`OpaqueOp`].

use super::value::{MatSlots, TapeMat};
use crate::error::AdError;
use crate::unary::Unary;

/// An op whose sweep rules the tape does not know (custom ops): it propagates adjoints and
/// tangents itself, given the tape's values and slots.
pub(crate) trait OpaqueOp {
    /// A short name for error messages.
    fn name(&self) -> String;
    /// Accumulate input adjoints from output adjoints.
    fn backward(
        &self,
        mats: &[TapeMat],
        sadj: &mut [f64],
        madj: &mut MatSlots,
    ) -> Result<(), AdError>;
    /// Set output tangents from input tangents.
    fn forward(
        &self,
        mats: &[TapeMat],
        stan: &mut [f64],
        mtan: &mut MatSlots,
    ) -> Result<(), AdError>;
}

/// One recorded matrix operation. Indices refer to the tape's matrices (`a`, `b`, `out`...)
/// or to its scalar nodes (`s`, `out_s`, `inputs`).
pub(crate) enum Op {
    MatMul {
        a: u32,
        b: u32,
        out: u32,
    },
    Transpose {
        a: u32,
        out: u32,
    },
    Add {
        a: u32,
        b: u32,
        out: u32,
    },
    Sub {
        a: u32,
        b: u32,
        out: u32,
    },
    MulElem {
        a: u32,
        b: u32,
        out: u32,
    },
    DivElem {
        a: u32,
        b: u32,
        out: u32,
    },
    AddRow {
        a: u32,
        row: u32,
        out: u32,
    },
    AddCol {
        a: u32,
        col: u32,
        out: u32,
    },
    Scale {
        a: u32,
        s: u32,
        s_value: f64,
        out: u32,
    },
    ScaleConst {
        a: u32,
        c: f64,
        out: u32,
    },
    AddConst {
        a: u32,
        c: f64,
        out: u32,
    },
    Unary {
        a: u32,
        f: Unary,
        out: u32,
    },
    Sum {
        a: u32,
        out_s: u32,
    },
    Dot {
        a: u32,
        b: u32,
        out_s: u32,
    },
    Get {
        a: u32,
        i: usize,
        j: usize,
        out_s: u32,
    },
    FromScalars {
        inputs: Vec<u32>,
        out: u32,
    },
    Slice {
        a: u32,
        r0: usize,
        c0: usize,
        out: u32,
    },
    Concat {
        parts: Vec<u32>,
        horizontal: bool,
        out: u32,
    },
    Reshape {
        a: u32,
        out: u32,
    },
    /// Entries `offset..offset + r c` of the column `a`, as the `r x c` matrix `out`
    /// (column-major): a slice and a reshape in one node.
    ColumnBlock {
        a: u32,
        offset: usize,
        out: u32,
    },
    /// An op recorded by code above the tape (a custom op), which knows its own rules.
    Custom(Box<dyn OpaqueOp>),
}

impl Op {
    /// The matrix this op writes, if it writes one (scalar-output and custom ops don't).
    pub(crate) fn matrix_output(&self) -> Option<u32> {
        match *self {
            Op::MatMul { out, .. }
            | Op::Transpose { out, .. }
            | Op::Add { out, .. }
            | Op::Sub { out, .. }
            | Op::MulElem { out, .. }
            | Op::DivElem { out, .. }
            | Op::AddRow { out, .. }
            | Op::AddCol { out, .. }
            | Op::Scale { out, .. }
            | Op::ScaleConst { out, .. }
            | Op::AddConst { out, .. }
            | Op::Unary { out, .. }
            | Op::FromScalars { out, .. }
            | Op::Slice { out, .. }
            | Op::Concat { out, .. }
            | Op::Reshape { out, .. }
            | Op::ColumnBlock { out, .. } => Some(out),
            Op::Sum { .. } | Op::Dot { .. } | Op::Get { .. } | Op::Custom(_) => None,
        }
    }
}
