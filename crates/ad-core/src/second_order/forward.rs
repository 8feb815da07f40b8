//! The batched forward (tangent) sweep: `k` tangents of every tape entry.

use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut};

use super::Tangents;
use super::blocks::*;
use crate::error::AdError;
use crate::matrix::linalg;
use crate::tape::arena;
use crate::tape::op::Op;
use crate::tape::{NONE, TapeData, TapeMat};
use crate::unary::Unary;

/// `f'` at every entry of `x` (with `y = f(x)`), through the vectorized kernels, and `f''`
/// when asked for (only ops whose input has tangents need it).
fn unary_derivatives(
    f: Unary,
    x: &DMatrix<f64>,
    y: &DMatrix<f64>,
    second: bool,
) -> (Vec<f64>, Vec<f64>) {
    let ones = DMatrix::from_element(x.nrows(), x.ncols(), 1.0);
    let mut d1 = DMatrix::zeros(x.nrows(), x.ncols());
    linalg::unary_backward(f, x, y, &ones, &mut d1);
    let d1 = d1.as_slice().to_vec();
    if !second {
        return (d1, Vec::new());
    }
    let aux = f
        .derivative_uses()
        .map(|h| linalg::unary_value(h, x, linalg::Alloc::System));
    let aux = aux.as_ref().map_or(x.as_slice(), |a| a.as_slice());
    let d2 = (0..d1.len())
        .map(|e| f.second_derivative_with(x.as_slice()[e], y.as_slice()[e], d1[e], aux[e]))
        .collect();
    (d1, d2)
}

/// Propagate scalar tangents through nodes `lo..hi`, oldest first.
pub(crate) fn forward_scalars(data: &TapeData, t: &mut Tangents, lo: usize, hi: usize) {
    let k = t.k;
    for i in lo..hi {
        let n = data.scalars[i];
        if n.parents[0] == NONE || !t.need_scalars[i] {
            continue;
        }
        for j in 0..k {
            let mut v = n.partials[0] * t.scalars[ix(n.parents[0]) * k + j];
            if n.parents[1] != NONE {
                v += n.partials[1] * t.scalars[ix(n.parents[1]) * k + j];
            }
            t.scalars[i * k + j] = v;
        }
    }
}

/// The batched forward (tangent) rule of one op.
pub(crate) fn forward_op(
    op: &Op,
    pos: usize,
    mats: &[TapeMat],
    t: &mut Tangents,
) -> Result<(), AdError> {
    let k = t.k;
    let shape = |i: u32| mats[ix(i)].shape();
    // Tangents nothing reads are not computed (an elementwise op still records its
    // derivatives: the reverse sweep reads those).
    let needed = match *op {
        Op::Custom(ref rec) => return Err(custom_error(&rec.name())),
        Op::Sum { out_s, .. } | Op::Dot { out_s, .. } | Op::Get { out_s, .. } => {
            t.need_scalars[ix(out_s)]
        }
        _ => op.matrix_output().is_some_and(|o| t.need_mats[ix(o)]),
    };
    if !needed && !matches!(op, Op::Unary { .. }) {
        return Ok(());
    }
    let out_tangent: Option<DMatrix<f64>> = match *op {
        Op::Custom(ref rec) => return Err(custom_error(&rec.name())),
        Op::Sum { a, out_s } => {
            if let Some(ta) = &t.mats[ix(a)] {
                let rc = ta.len() / k.max(1);
                for j in 0..k {
                    t.scalars[ix(out_s) * k + j] = blk(ta, j, rc).iter().sum();
                }
            }
            return Ok(());
        }
        Op::Dot { a, b, out_s } => {
            let (ma, mb) = (&mats[ix(a)], &mats[ix(b)]);
            let rc = ma.len();
            for j in 0..k {
                let mut v = 0.0;
                if let Some(ta) = &t.mats[ix(a)] {
                    v += dot(blk(ta, j, rc), mb.as_slice());
                }
                if let Some(tb) = &t.mats[ix(b)] {
                    v += dot(ma.as_slice(), blk(tb, j, rc));
                }
                t.scalars[ix(out_s) * k + j] = v;
            }
            return Ok(());
        }
        Op::Get {
            a,
            i,
            j: col,
            out_s,
        } => {
            if let Some(ta) = &t.mats[ix(a)] {
                let (r, c) = shape(a);
                for j in 0..k {
                    t.scalars[ix(out_s) * k + j] = blk(ta, j, r * c)[col * r + i];
                }
            }
            return Ok(());
        }
        Op::MatMul { a, b, .. } => {
            let (ma, mb) = (&mats[ix(a)], &mats[ix(b)]);
            let ((r, c), m) = (ma.shape(), mb.ncols());
            let mut o: Option<DMatrix<f64>> = None;
            if t.identity.contains(&b) && m == 1 && c == k {
                // Ḃ = I (the seed of a column's Hessian): A Ḃ = A, copied (the same
                // numbers the product gives, without its n c² work).
                o = Some(arena::copy_of(ma));
            } else if let Some(tb) = &t.mats[ix(b)] {
                let mut out = arena::take(r, m * k);
                gemm_slices(
                    out.as_mut_slice(),
                    (r, m * k),
                    1.0,
                    ma.as_slice(),
                    (r, c),
                    false,
                    tb.as_slice(),
                    (c, m * k),
                    false,
                    0.0,
                );
                o = Some(out);
            }
            if let Some(ta) = &t.mats[ix(a)] {
                let out = o.get_or_insert_with(|| arena::take_zeroed(r, m * k));
                for j in 0..k {
                    gemm_slices(
                        blk_mut(out, j, r * m),
                        (r, m),
                        1.0,
                        blk(ta, j, r * c),
                        (r, c),
                        false,
                        mb.as_slice(),
                        (c, m),
                        false,
                        1.0,
                    );
                }
            }
            o
        }
        Op::Transpose { a, .. } => t.mats[ix(a)].as_ref().map(|ta| {
            let (r, c) = shape(a);
            let mut out = arena::take(c, r * k);
            for j in 0..k {
                let src = DMatrixView::from_slice(blk(ta, j, r * c), r, c);
                let dst = blk_mut(&mut out, j, r * c);
                for (e, v) in src.transpose().iter().enumerate() {
                    dst[e] = *v;
                }
            }
            out
        }),
        Op::Add { a, b, .. } | Op::Sub { a, b, .. } => {
            let sign = if matches!(op, Op::Sub { .. }) {
                -1.0
            } else {
                1.0
            };
            match (&t.mats[ix(a)], &t.mats[ix(b)]) {
                (None, None) => None,
                (Some(ta), None) => Some(arena::copy_of(ta)),
                (None, Some(tb)) => Some(scaled_copy(tb, sign)),
                (Some(ta), Some(tb)) => {
                    let mut o = arena::copy_of(ta);
                    add_scaled(&mut o, sign, tb);
                    Some(o)
                }
            }
        }
        Op::MulElem { a, b, .. } => {
            // Ċ_j = Ȧ_j ⊙ B + A ⊙ Ḃ_j
            let (ma, mb) = (&mats[ix(a)], &mats[ix(b)]);
            let (ta, tb) = (&t.mats[ix(a)], &t.mats[ix(b)]);
            let mut o = None;
            if let Some(ta) = ta {
                fma_into(&mut o, ta, mb.as_slice());
            }
            if let Some(tb) = tb {
                fma_into(&mut o, tb, ma.as_slice());
            }
            o
        }
        Op::DivElem { a, b, out } => {
            // C = A / B: Ċ_j = Ȧ_j / B − (C / B) ⊙ Ḃ_j
            let (mb, q) = (mats[ix(b)].as_slice(), mats[ix(out)].as_slice());
            let (ta, tb) = (&t.mats[ix(a)], &t.mats[ix(b)]);
            (ta.is_some() || tb.is_some()).then(|| {
                let mut o = zeros_k(mats[ix(b)].shape(), k);
                if let Some(ta) = ta {
                    let w: Vec<f64> = mb.iter().map(|b| 1.0 / b).collect();
                    fma_blocks(&mut o, ta, &w);
                }
                if let Some(tb) = tb {
                    let w: Vec<f64> = mb.iter().zip(q).map(|(b, q)| -q / b).collect();
                    fma_blocks(&mut o, tb, &w);
                }
                o
            })
        }
        Op::AddRow { a, row, .. } => {
            broadcast_add(&t.mats[ix(a)], &t.mats[ix(row)], shape(a), k, |_, c| c)
        }
        Op::AddCol { a, col, .. } => {
            broadcast_add(&t.mats[ix(a)], &t.mats[ix(col)], shape(a), k, |r, _| r)
        }
        Op::Scale { a, s, s_value, .. } => {
            let ma = &mats[ix(a)];
            let rc = ma.len();
            let ts: Vec<f64> = t.scalars[ix(s) * k..ix(s) * k + k].to_vec();
            let any_s = ts.iter().any(|&v| v != 0.0);
            match (&t.mats[ix(a)], any_s) {
                (None, false) => None,
                (ta, _) => {
                    let mut out = match ta {
                        Some(ta) => scaled_copy(ta, s_value),
                        None => zeros_k(ma.shape(), k),
                    };
                    each_block(&mut out, k, rc, |j, o| {
                        for (x, &v) in o.iter_mut().zip(ma.as_slice()) {
                            *x += ts[j] * v;
                        }
                    });
                    Some(out)
                }
            }
        }
        Op::ScaleConst { a, c, .. } => t.mats[ix(a)].as_ref().map(|ta| scaled_copy(ta, c)),
        Op::AddConst { a, .. } | Op::Reshape { a, .. } => t.mats[ix(a)].as_ref().map(|ta| {
            let (r, c) = match *op {
                Op::Reshape { out, .. } => shape(out),
                _ => shape(a),
            };
            arena::copy_of(ta).reshape_generic(nalgebra::Dyn(r), nalgebra::Dyn(c * k))
        }),
        Op::Unary { a, f, out } => {
            let has_tangent = t.mats[ix(a)].is_some();
            let (d1, d2) = unary_derivatives(f, &mats[ix(a)], &mats[ix(out)], has_tangent);
            let o = t.mats[ix(a)]
                .as_ref()
                .filter(|_| needed)
                .map(|ta| mul_blocks(ta, &d1));
            t.unary[pos] = Some((d1, d2));
            o
        }
        Op::FromScalars { ref inputs, out } => {
            let any = inputs
                .iter()
                .any(|&s| s != NONE && (0..k).any(|j| t.scalars[ix(s) * k + j] != 0.0));
            any.then(|| {
                let sh = shape(out);
                let mut o = zeros_k(sh, k);
                let rc = sh.0 * sh.1;
                each_block(&mut o, k, rc, |j, blk| {
                    for (e, &s) in inputs.iter().enumerate() {
                        if s != NONE {
                            blk[e] = t.scalars[ix(s) * k + j];
                        }
                    }
                });
                o
            })
        }
        Op::ColumnBlock { a, offset, out } => t.mats[ix(a)].as_ref().map(|ta| {
            let ((r, c), (sr, sc)) = (shape(a), shape(out));
            let mut o = zeros_k((sr, sc), k);
            each_block(&mut o, k, sr * sc, |j, dst| {
                dst.copy_from_slice(&blk(ta, j, r * c)[offset..offset + sr * sc]);
            });
            o
        }),
        Op::Slice { a, r0, c0, out } => t.mats[ix(a)].as_ref().map(|ta| {
            let ((r, c), (sr, sc)) = (shape(a), shape(out));
            let mut o = zeros_k((sr, sc), k);
            each_block(&mut o, k, sr * sc, |j, dst| {
                let src = DMatrixView::from_slice(blk(ta, j, r * c), r, c);
                let part = src.view((r0, c0), (sr, sc));
                for (d, s) in dst.iter_mut().zip(part.iter()) {
                    *d = *s;
                }
            });
            o
        }),
        Op::Concat {
            ref parts,
            horizontal,
            out,
        } => {
            if parts.iter().all(|&p| t.mats[ix(p)].is_none()) {
                None
            } else {
                let (r, c) = shape(out);
                let mut o = zeros_k((r, c), k);
                for j in 0..k {
                    let mut dst = DMatrixViewMut::from_slice(blk_mut(&mut o, j, r * c), r, c);
                    let mut offset = 0;
                    for &p in parts {
                        let (pr, pc) = shape(p);
                        if let Some(tp) = &t.mats[ix(p)] {
                            let src = DMatrixView::from_slice(blk(tp, j, pr * pc), pr, pc);
                            let (i0, j0) = if horizontal { (0, offset) } else { (offset, 0) };
                            dst.view_mut((i0, j0), (pr, pc)).copy_from(&src);
                        }
                        offset += if horizontal { pc } else { pr };
                    }
                }
                Some(o)
            }
        }
    };
    if let Some(out) = op.matrix_output() {
        t.mats[ix(out)] = out_tangent;
    }
    Ok(())
}

/// Tangent of `a + broadcast(v)`: `pick(row, col)` is the index into `v` of entry (row, col).
fn broadcast_add(
    ta: &Option<DMatrix<f64>>,
    tv: &Option<DMatrix<f64>>,
    (r, c): (usize, usize),
    k: usize,
    pick: impl Fn(usize, usize) -> usize,
) -> Option<DMatrix<f64>> {
    if ta.is_none() && tv.is_none() {
        return None;
    }
    let mut o = ta
        .as_ref()
        .map_or_else(|| zeros_k((r, c), k), arena::copy_of);
    if let Some(tv) = tv {
        let vl = tv.len() / k.max(1);
        each_block(&mut o, k, r * c, |j, dst| {
            let v = blk(tv, j, vl);
            for col in 0..c {
                for row in 0..r {
                    dst[col * r + row] += v[pick(row, col)];
                }
            }
        });
    }
    Some(o)
}
