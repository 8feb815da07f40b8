//! Which tangents a second-order sweep reads: the forward sweep computes only those.
//!
//! The reverse sweep of adjoint tangents reads forward tangents only where an op's VJP rule
//! depends on its inputs (the second-order terms: products, quotients, elementwise
//! functions, scalings, dot products, curved scalar nodes). Every other tangent — a sum's,
//! a difference's, a linear op's — is needed only if something that needs it is computed
//! from it. One backward pass over the records marks the needed entries.

use super::blocks::ix;
use crate::tape::op::Op;
use crate::tape::{NONE, TapeData};

/// `(matrices, scalars)`: whether the forward sweep must compute each entry's tangents.
pub(crate) fn tangent_needs(data: &TapeData) -> (Vec<bool>, Vec<bool>) {
    let mut m = vec![false; data.mats.len()];
    let mut s = vec![false; data.scalars.len()];
    for &(i, _) in &data.curvature {
        let n = data.scalars[i as usize];
        for p in n.parents {
            if p != NONE {
                s[ix(p)] = true;
            }
        }
    }
    let mut hi = data.scalars.len();
    for entry in data.ops.iter().rev() {
        let mark = entry.scalar_mark as usize;
        scalars(data, &mut s, mark, hi);
        hi = mark;
        op(&entry.op, &mut m, &mut s);
    }
    scalars(data, &mut s, 0, hi);
    (m, s)
}

/// A needed scalar node needs its parents' tangents (nodes `lo..hi`, newest first).
fn scalars(data: &TapeData, s: &mut [bool], lo: usize, hi: usize) {
    for i in (lo..hi).rev() {
        if s[i] {
            for p in data.scalars[i].parents {
                if p != NONE {
                    s[ix(p)] = true;
                }
            }
        }
    }
}

/// Mark what one op's reverse rule reads, then, if its output's tangent is needed, its
/// inputs' tangents (from which that one is computed).
fn op(op: &Op, m: &mut [bool], s: &mut [bool]) {
    match *op {
        Op::MatMul { a, b, .. } | Op::MulElem { a, b, .. } | Op::Dot { a, b, .. } => {
            m[ix(a)] = true;
            m[ix(b)] = true;
        }
        Op::DivElem { b, out, .. } => {
            m[ix(b)] = true;
            m[ix(out)] = true;
        }
        Op::Scale { a, s: sc, .. } => {
            m[ix(a)] = true;
            s[ix(sc)] = true;
        }
        Op::Unary { a, .. } => m[ix(a)] = true,
        _ => {}
    }
    let needed = match *op {
        Op::Sum { out_s, .. } | Op::Dot { out_s, .. } | Op::Get { out_s, .. } => s[ix(out_s)],
        Op::Custom(_) => false,
        _ => op.matrix_output().is_some_and(|o| m[ix(o)]),
    };
    if !needed {
        return;
    }
    match *op {
        Op::MatMul { a, b, .. }
        | Op::Add { a, b, .. }
        | Op::Sub { a, b, .. }
        | Op::MulElem { a, b, .. }
        | Op::DivElem { a, b, .. }
        | Op::Dot { a, b, .. }
        | Op::AddRow { a, row: b, .. }
        | Op::AddCol { a, col: b, .. } => {
            m[ix(a)] = true;
            m[ix(b)] = true;
        }
        Op::Scale { a, s: sc, .. } => {
            m[ix(a)] = true;
            s[ix(sc)] = true;
        }
        Op::Transpose { a, .. }
        | Op::ScaleConst { a, .. }
        | Op::AddConst { a, .. }
        | Op::Unary { a, .. }
        | Op::Sum { a, .. }
        | Op::Get { a, .. }
        | Op::Slice { a, .. }
        | Op::Reshape { a, .. }
        | Op::ColumnBlock { a, .. } => m[ix(a)] = true,
        Op::FromScalars { ref inputs, .. } => {
            for &i in inputs {
                if i != NONE {
                    s[ix(i)] = true;
                }
            }
        }
        Op::Concat { ref parts, .. } => {
            for &p in parts {
                m[ix(p)] = true;
            }
        }
        Op::Custom(_) => {}
    }
}
