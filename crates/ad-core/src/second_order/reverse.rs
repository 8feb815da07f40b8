//! The reverse sweep of adjoint tangents: the tangent of each op's VJP rule.

use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut};

use super::Tangents;
use super::blocks::*;
use crate::error::AdError;
use crate::tape::arena;
use crate::tape::op::Op;
use crate::tape::{MatSlots, NONE, TapeData, TapeMat};

/// Adjoint tangents being accumulated, next to the forward tangents and adjoints.
pub(crate) struct Reverse<'a> {
    pub k: usize,
    pub mats: &'a [TapeMat],
    pub fwd: &'a Tangents,
    pub madj: &'a MatSlots,
    pub sadj: &'a [f64],
    pub needs: &'a [bool],
    pub at: Vec<Option<DMatrix<f64>>>,
    pub ats: Vec<f64>,
}

impl Reverse<'_> {
    fn shape(&self, i: u32) -> (usize, usize) {
        self.mats[ix(i)].shape()
    }

    /// Scalar nodes `lo..hi`, newest first; `curv` holds the curvature entries of nodes
    /// below `hi`, consumed from the back.
    pub(crate) fn scalars(&mut self, data: &TapeData, lo: usize, hi: usize, curv: &mut usize) {
        let k = self.k;
        for i in (lo..hi).rev() {
            let n = data.scalars[i];
            if n.parents[0] == NONE {
                continue;
            }
            let h = if *curv > 0 && data.curvature[*curv - 1].0 as usize == i {
                *curv -= 1;
                Some(data.curvature[*curv].1)
            } else {
                None
            };
            let a = self.sadj[i];
            let (p0, p1) = (ix(n.parents[0]), n.parents[1]);
            for j in 0..k {
                let aj = self.ats[i * k + j];
                let (mut dd0, mut dd1) = (0.0, 0.0);
                if let Some([h00, h01, h11]) = h {
                    let t0 = self.fwd.scalars[p0 * k + j];
                    let t1 = if p1 != NONE {
                        self.fwd.scalars[ix(p1) * k + j]
                    } else {
                        0.0
                    };
                    dd0 = h00 * t0 + h01 * t1;
                    dd1 = h01 * t0 + h11 * t1;
                }
                self.ats[p0 * k + j] += aj * n.partials[0] + a * dd0;
                if p1 != NONE {
                    self.ats[ix(p1) * k + j] += aj * n.partials[1] + a * dd1;
                }
            }
        }
    }

    fn scalar_hv(&self, s: u32) -> Vec<f64> {
        self.ats[ix(s) * self.k..ix(s) * self.k + self.k].to_vec()
    }

    /// The adjoint-tangent rule of one op.
    pub(crate) fn op(&mut self, op: &Op, pos: usize) -> Result<(), AdError> {
        let k = self.k;
        let want = |i: u32| self.needs[ix(i)];
        match *op {
            Op::Custom(ref rec) => return Err(custom_error(&rec.name())),
            Op::Sum { a, out_s } => {
                let hs = self.scalar_hv(out_s);
                if want(a) && hs.iter().any(|&v| v != 0.0) {
                    let sh = self.shape(a);
                    let acc = acc_k(&mut self.at[ix(a)], sh, k);
                    each_block(acc, k, sh.0 * sh.1, |j, b| {
                        b.iter_mut().for_each(|x| *x += hs[j])
                    });
                }
                return Ok(());
            }
            Op::Dot { a, b, out_s } => {
                // Ǎ_j += š_j B + s̄ Ḃ_j (and the same with a and b exchanged)
                let hs = self.scalar_hv(out_s);
                let s_bar = self.sadj[ix(out_s)];
                for (x, y) in [(a, b), (b, a)] {
                    if !want(x) {
                        continue;
                    }
                    let my = self.mats[ix(y)].as_slice();
                    let ty = &self.fwd.mats[ix(y)];
                    let sh = self.shape(x);
                    let acc = acc_k(&mut self.at[ix(x)], sh, k);
                    if !my.is_empty() {
                        for (dst, &h) in acc.as_mut_slice().chunks_exact_mut(my.len()).zip(&hs) {
                            if h != 0.0 {
                                dst.iter_mut().zip(my).for_each(|(d, &m)| *d += h * m);
                            }
                        }
                    }
                    if let Some(ty) = ty {
                        add_scaled(acc, s_bar, ty);
                    }
                }
                return Ok(());
            }
            Op::Get {
                a,
                i,
                j: col,
                out_s,
            } => {
                let hs = self.scalar_hv(out_s);
                if want(a) {
                    let sh = self.shape(a);
                    let acc = acc_k(&mut self.at[ix(a)], sh, k);
                    each_block(acc, k, sh.0 * sh.1, |j, b| b[col * sh.0 + i] += hs[j]);
                }
                return Ok(());
            }
            Op::FromScalars { ref inputs, out } => {
                if let Some(ho) = self.at[ix(out)].take() {
                    let rc = ho.len() / k;
                    for (e, &s) in inputs.iter().enumerate() {
                        if s != NONE {
                            for j in 0..k {
                                self.ats[ix(s) * k + j] += ho.as_slice()[j * rc + e];
                            }
                        }
                    }
                }
                return Ok(());
            }
            _ => {}
        }
        let out = op.matrix_output().expect("matrix-output op");
        if !want(out) {
            return Ok(());
        }
        let ho = self.at[ix(out)].take();
        let o_bar = self.madj[ix(out)].as_ref();
        if ho.is_none() && o_bar.is_none() {
            return Ok(());
        }
        match *op {
            Op::MatMul { a, b, .. } => self.matmul(a, b, ho.as_ref(), o_bar),
            Op::Transpose { a, .. } => {
                if let (Some(ho), true) = (&ho, want(a)) {
                    let (r, c) = self.shape(a);
                    let acc = acc_k(&mut self.at[ix(a)], (r, c), k);
                    each_block(acc, k, r * c, |j, dst| {
                        let src = DMatrixView::from_slice(blk(ho, j, r * c), c, r);
                        for (d, s) in dst.iter_mut().zip(src.transpose().iter()) {
                            *d += s;
                        }
                    });
                }
            }
            Op::Add { a, b, .. } | Op::Sub { a, b, .. } => {
                if let Some(ho) = &ho {
                    let sign = if matches!(op, Op::Sub { .. }) {
                        -1.0
                    } else {
                        1.0
                    };
                    for (x, s) in [(a, 1.0), (b, sign)] {
                        if want(x) {
                            add_scaled_into(&mut self.at[ix(x)], s, ho);
                        }
                    }
                }
            }
            Op::MulElem { a, b, .. } => {
                // Ǎ_j += Ȟ_j ⊙ B + Ō ⊙ Ḃ_j (and the same with a and b exchanged)
                for (x, y) in [(a, b), (b, a)] {
                    if !want(x) {
                        continue;
                    }
                    let (my, ty) = (&self.mats[ix(y)], &self.fwd.mats[ix(y)]);
                    let slot = &mut self.at[ix(x)];
                    if let Some(ho) = &ho {
                        fma_into(slot, ho, my.as_slice());
                    }
                    if let (Some(ob), Some(ty)) = (o_bar, ty) {
                        fma_into(slot, ty, ob.as_slice());
                    }
                }
            }
            Op::DivElem { a, b, out } => {
                // C = A / B: Ǎ_j += Ȟ_j / B − (Ō / B²) ⊙ Ḃ_j;
                // B̌_j += −(C / B) ⊙ Ȟ_j − (Ō / B) ⊙ Ċ_j + (Ō C / B²) ⊙ Ḃ_j.
                let (mb, q) = (self.mats[ix(b)].as_slice(), self.mats[ix(out)].as_slice());
                let (tb, tq) = (&self.fwd.mats[ix(b)], &self.fwd.mats[ix(out)]);
                let sh = self.shape(a);
                let zero = vec![0.0; mb.len()];
                let ob = o_bar.map_or(&zero[..], |m| m.as_slice());
                let weights = |f: &dyn Fn(f64, f64, f64) -> f64| -> Vec<f64> {
                    (0..mb.len()).map(|e| f(mb[e], q[e], ob[e])).collect()
                };
                if want(a) {
                    let acc = acc_k(&mut self.at[ix(a)], sh, k);
                    if let Some(ho) = &ho {
                        fma_blocks(acc, ho, &weights(&|bv, _, _| 1.0 / bv));
                    }
                    if let Some(tb) = tb {
                        fma_blocks(acc, tb, &weights(&|bv, _, o| -o / (bv * bv)));
                    }
                }
                if want(b) {
                    let acc = acc_k(&mut self.at[ix(b)], sh, k);
                    if let Some(ho) = &ho {
                        fma_blocks(acc, ho, &weights(&|bv, qv, _| -qv / bv));
                    }
                    if let Some(tq) = tq {
                        fma_blocks(acc, tq, &weights(&|bv, _, o| -o / bv));
                    }
                    if let Some(tb) = tb {
                        fma_blocks(acc, tb, &weights(&|bv, qv, o| o * qv / (bv * bv)));
                    }
                }
            }
            Op::AddRow { a, row: v, .. } | Op::AddCol { a, col: v, .. } => {
                if let Some(ho) = &ho {
                    let (r, c) = self.shape(a);
                    if want(a) {
                        add_scaled(acc_k(&mut self.at[ix(a)], (r, c), k), 1.0, ho);
                    }
                    if want(v) {
                        let by_row = matches!(op, Op::AddCol { .. });
                        let sh = self.shape(v);
                        let vl = sh.0 * sh.1;
                        let acc = acc_k(&mut self.at[ix(v)], sh, k);
                        each_block(acc, k, vl, |j, dst| {
                            let src = blk(ho, j, r * c);
                            for col in 0..c {
                                for row in 0..r {
                                    dst[if by_row { row } else { col }] += src[col * r + row];
                                }
                            }
                        });
                    }
                }
            }
            Op::Scale { a, s, s_value, .. } => {
                let ma = &self.mats[ix(a)];
                let ta = &self.fwd.mats[ix(a)];
                let rc = ma.len();
                let ts: Vec<f64> = self.fwd.scalars[ix(s) * k..ix(s) * k + k].to_vec();
                for j in 0..k {
                    let mut v = 0.0;
                    if let Some(ho) = &ho {
                        v += dot(blk(ho, j, rc), ma.as_slice());
                    }
                    if let (Some(ob), Some(ta)) = (o_bar, ta) {
                        v += dot(ob.as_slice(), blk(ta, j, rc));
                    }
                    self.ats[ix(s) * k + j] += v;
                }
                if want(a) {
                    let acc = acc_k(&mut self.at[ix(a)], ma.shape(), k);
                    if let Some(ho) = &ho {
                        add_scaled(acc, s_value, ho);
                    }
                    if let Some(ob) = o_bar {
                        each_block(acc, k, rc, |j, dst| {
                            for (d, &o) in dst.iter_mut().zip(ob.as_slice()) {
                                *d += ts[j] * o;
                            }
                        });
                    }
                }
            }
            Op::ScaleConst { a, c, .. } => {
                if let Some(ho) = &ho {
                    add_scaled_into(&mut self.at[ix(a)], c, ho);
                }
            }
            Op::AddConst { a, .. } | Op::Reshape { a, .. } => {
                if let Some(ho) = &ho {
                    let sh = self.shape(a);
                    let acc = acc_k(&mut self.at[ix(a)], sh, k);
                    for (d, s) in acc.as_mut_slice().iter_mut().zip(ho.as_slice()) {
                        *d += s;
                    }
                }
            }
            Op::Unary { a, .. } => {
                // Ǎ_j += f'(A) ⊙ Ȟ_j + (f''(A) ⊙ Ō) ⊙ Ȧ_j
                let (d1, d2) = self.fwd.unary[pos].as_ref().expect("forward sweep ran");
                let ta = &self.fwd.mats[ix(a)];
                let slot = &mut self.at[ix(a)];
                if let Some(ho) = &ho {
                    fma_into(slot, ho, d1);
                }
                if let (Some(ob), Some(ta)) = (o_bar, ta) {
                    let w: Vec<f64> = d2.iter().zip(ob.as_slice()).map(|(d, o)| d * o).collect();
                    fma_into(slot, ta, &w);
                }
            }
            Op::ColumnBlock { a, offset, out } => {
                if let Some(ho) = &ho {
                    let ((r, c), (sr, sc)) = (self.shape(a), self.shape(out));
                    let acc = acc_k(&mut self.at[ix(a)], (r, c), k);
                    for j in 0..k {
                        let dst = &mut blk_mut(acc, j, r * c)[offset..offset + sr * sc];
                        for (d, s) in dst.iter_mut().zip(blk(ho, j, sr * sc)) {
                            *d += s;
                        }
                    }
                }
            }
            Op::Slice { a, r0, c0, out } => {
                if let Some(ho) = &ho {
                    let ((r, c), (sr, sc)) = (self.shape(a), self.shape(out));
                    let acc = acc_k(&mut self.at[ix(a)], (r, c), k);
                    for j in 0..k {
                        let mut dst = DMatrixViewMut::from_slice(blk_mut(acc, j, r * c), r, c);
                        let src = DMatrixView::from_slice(blk(ho, j, sr * sc), sr, sc);
                        let mut part = dst.view_mut((r0, c0), (sr, sc));
                        part += src;
                    }
                }
            }
            Op::Concat {
                ref parts,
                horizontal,
                out,
            } => {
                if let Some(ho) = &ho {
                    let (r, c) = self.shape(out);
                    let mut offset = 0;
                    for &p in parts {
                        let (pr, pc) = self.shape(p);
                        if want(p) {
                            let acc = acc_k(&mut self.at[ix(p)], (pr, pc), k);
                            for j in 0..k {
                                let src = DMatrixView::from_slice(blk(ho, j, r * c), r, c);
                                let (i0, j0) = if horizontal { (0, offset) } else { (offset, 0) };
                                let mut dst =
                                    DMatrixViewMut::from_slice(blk_mut(acc, j, pr * pc), pr, pc);
                                dst += src.view((i0, j0), (pr, pc));
                            }
                        }
                        offset += if horizontal { pc } else { pr };
                    }
                }
            }
            Op::Sum { .. }
            | Op::Dot { .. }
            | Op::Get { .. }
            | Op::FromScalars { .. }
            | Op::Custom(_) => unreachable!("handled above"),
        }
        // The output's adjoint tangent is spent: its buffer serves the next op.
        if let Some(ho) = ho {
            arena::give(ho);
        }
        Ok(())
    }

    /// C = A B: Ǎ_j += Ȟ_j Bᵀ + Ō Ḃ_jᵀ and B̌_j += Aᵀ Ȟ_j + Ȧ_jᵀ Ō.
    fn matmul(&mut self, a: u32, b: u32, ho: Option<&DMatrix<f64>>, o_bar: Option<&DMatrix<f64>>) {
        let k = self.k;
        let (ma, mb) = (&self.mats[ix(a)], &self.mats[ix(b)]);
        let ((r, c), m) = (ma.shape(), mb.ncols());
        let (ta, tb) = (&self.fwd.mats[ix(a)], &self.fwd.mats[ix(b)]);
        if self.needs[ix(a)] {
            let acc = acc_k(&mut self.at[ix(a)], (r, c), k);
            for j in 0..k {
                let dst = blk_mut(acc, j, r * c);
                if let Some(ho) = ho {
                    let hj = blk(ho, j, r * m);
                    gemm_slices(
                        dst,
                        (r, c),
                        1.0,
                        hj,
                        (r, m),
                        false,
                        mb.as_slice(),
                        (c, m),
                        true,
                        1.0,
                    );
                }
                if let (Some(ob), Some(tb)) = (o_bar, tb) {
                    let bj = blk(tb, j, c * m);
                    gemm_slices(
                        dst,
                        (r, c),
                        1.0,
                        ob.as_slice(),
                        (r, m),
                        false,
                        bj,
                        (c, m),
                        true,
                        1.0,
                    );
                }
            }
        }
        if self.needs[ix(b)] {
            let acc = acc_k(&mut self.at[ix(b)], (c, m), k);
            if let Some(ho) = ho {
                gemm_slices(
                    acc.as_mut_slice(),
                    (c, m * k),
                    1.0,
                    ma.as_slice(),
                    (r, c),
                    true,
                    ho.as_slice(),
                    (r, m * k),
                    false,
                    1.0,
                );
            }
            if let (Some(ob), Some(ta)) = (o_bar, ta) {
                for j in 0..k {
                    let aj = blk(ta, j, r * c);
                    let dst = blk_mut(acc, j, c * m);
                    gemm_slices(
                        dst,
                        (c, m),
                        1.0,
                        aj,
                        (r, c),
                        true,
                        ob.as_slice(),
                        (r, m),
                        false,
                        1.0,
                    );
                }
            }
        }
    }
}
