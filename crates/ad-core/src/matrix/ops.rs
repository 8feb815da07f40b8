//! The meaning of the recorded matrix operations ([`Op`]): their reverse (VJP) and forward (JVP) sweep rules.
//!
//! VJP rules are written here in plain `f64`. JVP rules are not repeated: the forward sweep
//! evaluates the same operation on [`DualMat<DMatrix<f64>>`](super::DualMat), whose
//! implementation holds the one JVP rule of each primitive.

use nalgebra::DMatrix;

use super::borrowed::Val;
use super::linalg::{self, Alloc, acc_mut, accumulate};
use super::{DualMat, MatOps};
use crate::error::AdError;
use crate::tape::op::Op;
use crate::tape::{MatSlots, NONE, TapeMat, TransposeCache, arena};

fn ix(i: u32) -> usize {
    i as usize
}

impl Op {
    /// Accumulate this op's contribution to its inputs' adjoints, skipping inputs that
    /// cannot depend on a variable (`needs[i]` false: constants, see [`Op::propagate_needs`]).
    ///
    /// With `transposes` (replayed sweeps, see [`TransposeCache`]), products read their
    /// transposed operands from it instead of copying them again.
    pub(crate) fn backward(
        &self,
        mats: &[TapeMat],
        sadj: &mut [f64],
        madj: &mut MatSlots,
        needs: &[bool],
        transposes: Option<&TransposeCache>,
    ) -> Result<(), AdError> {
        let want = |i: u32| needs[ix(i)];
        // Scalar-output ops read a scalar adjoint; matrix-output ops take the matrix adjoint.
        match *self {
            Op::Sum { a, out_s } => {
                let g = sadj[ix(out_s)];
                if g != 0.0 && want(a) {
                    acc_mut(&mut madj[ix(a)], mats[ix(a)].shape()).add_scalar_mut(g);
                }
                return Ok(());
            }
            Op::Dot { a, b, out_s } => {
                let g = sadj[ix(out_s)];
                if g != 0.0 {
                    let (ma, mb) = (&mats[ix(a)], &mats[ix(b)]);
                    if want(a) {
                        linalg::axpy(acc_mut(&mut madj[ix(a)], ma.shape()), g, mb);
                    }
                    if want(b) {
                        linalg::axpy(acc_mut(&mut madj[ix(b)], mb.shape()), g, ma);
                    }
                }
                return Ok(());
            }
            Op::Get { a, i, j, out_s } => {
                let g = sadj[ix(out_s)];
                if g != 0.0 && want(a) {
                    acc_mut(&mut madj[ix(a)], mats[ix(a)].shape())[(i, j)] += g;
                }
                return Ok(());
            }
            Op::Custom(ref rec) => return rec.backward(mats, sadj, madj),
            _ => {}
        }
        let out = self.matrix_output().expect("a matrix-output op");
        if !want(out) {
            return Ok(());
        }
        let Some(g) = madj[ix(out)].take() else {
            return Ok(());
        };
        match *self {
            Op::MatMul { a, b, .. } => {
                let (ma, mb) = (&mats[ix(a)], &mats[ix(b)]);
                // Ā += G Bᵀ (m x n by n x k) and B̄ += Aᵀ G (k x m by m x n).
                let (m, k, n) = (ma.nrows(), ma.ncols(), mb.ncols());
                if want(a) {
                    match transposes.filter(|_| linalg::kernel_transposes((m, k, n), n * k)) {
                        Some(cache) => {
                            let bt = cache.get_or_make(b, mb);
                            linalg::kernel_acc(&mut madj[ix(a)], &g, &bt);
                        }
                        None => linalg::gemm_acc(&mut madj[ix(a)], ma.shape(), &g, false, mb, true),
                    }
                }
                if want(b) {
                    match transposes.filter(|_| linalg::kernel_transposes((k, n, m), m * k)) {
                        Some(cache) => {
                            let at = cache.get_or_make(a, ma);
                            linalg::kernel_acc(&mut madj[ix(b)], &at, &g);
                        }
                        None => linalg::gemm_acc(&mut madj[ix(b)], mb.shape(), ma, true, &g, false),
                    }
                }
            }
            Op::Transpose { a, .. } => {
                let gt = linalg::transpose(&g, Alloc::Arena);
                match &mut madj[ix(a)] {
                    Some(acc) => {
                        *acc += &gt;
                        arena::give(gt);
                    }
                    slot @ None => *slot = Some(gt),
                }
            }
            Op::Add { a, b, .. } => {
                if want(a) {
                    accumulate(&mut madj[ix(a)], &g);
                }
                if want(b) {
                    accumulate(&mut madj[ix(b)], &g);
                }
            }
            Op::Sub { a, b, .. } => {
                if want(a) {
                    accumulate(&mut madj[ix(a)], &g);
                }
                if want(b) {
                    linalg::subtract(&mut madj[ix(b)], &g);
                }
            }
            Op::MulElem { a, b, .. } => {
                let (ma, mb) = (&mats[ix(a)], &mats[ix(b)]);
                if want(a) {
                    linalg::mul_acc(acc_mut(&mut madj[ix(a)], g.shape()), 1.0, &g, mb);
                }
                if want(b) {
                    linalg::mul_acc(acc_mut(&mut madj[ix(b)], g.shape()), 1.0, &g, ma);
                }
            }
            Op::DivElem { a, b, out } => {
                let (mb, q) = (&mats[ix(b)], &mats[ix(out)]);
                let ga = linalg::zip_map(&g, mb, Alloc::Arena, |x, y| x / y);
                if want(b) {
                    linalg::mul_acc(acc_mut(&mut madj[ix(b)], g.shape()), -1.0, &ga, q);
                }
                if want(a) {
                    accumulate(&mut madj[ix(a)], &ga);
                }
                arena::give(ga);
            }
            Op::AddRow { a, row, .. } => {
                if want(row) {
                    accumulate(&mut madj[ix(row)], &linalg::column_sums(&g));
                }
                if want(a) {
                    accumulate(&mut madj[ix(a)], &g);
                }
            }
            Op::AddCol { a, col, .. } => {
                if want(col) {
                    let sums = DMatrix::from_fn(g.nrows(), 1, |i, _| g.row(i).sum());
                    accumulate(&mut madj[ix(col)], &sums);
                }
                if want(a) {
                    accumulate(&mut madj[ix(a)], &g);
                }
            }
            Op::Scale { a, s, s_value, .. } => {
                sadj[ix(s)] += g.dot(&mats[ix(a)]);
                if want(a) {
                    linalg::axpy(acc_mut(&mut madj[ix(a)], g.shape()), s_value, &g);
                }
            }
            Op::ScaleConst { a, c, .. } => {
                linalg::axpy(acc_mut(&mut madj[ix(a)], g.shape()), c, &g);
            }
            Op::AddConst { a, .. } => accumulate(&mut madj[ix(a)], &g),
            Op::Unary { a, f, out } => {
                linalg::unary_backward_acc(f, &mats[ix(a)], &mats[ix(out)], &g, &mut madj[ix(a)]);
            }
            Op::FromScalars { ref inputs, .. } => {
                for (k, &s) in inputs.iter().enumerate() {
                    if s != NONE {
                        sadj[ix(s)] += g[k];
                    }
                }
            }
            Op::Slice { a, r0, c0, .. } => {
                let acc = acc_mut(&mut madj[ix(a)], mats[ix(a)].shape());
                let mut block = acc.view_mut((r0, c0), g.shape());
                block += &g;
            }
            Op::Concat {
                ref parts,
                horizontal,
                ..
            } => {
                let mut offset = 0;
                for &p in parts {
                    let shape = mats[ix(p)].shape();
                    if want(p) {
                        let block = if horizontal {
                            g.columns(offset, shape.1)
                        } else {
                            g.rows(offset, shape.0)
                        };
                        *acc_mut(&mut madj[ix(p)], shape) += block;
                    }
                    offset += if horizontal { shape.1 } else { shape.0 };
                }
            }
            Op::Reshape { a, .. } => {
                let shape = mats[ix(a)].shape();
                let g2 = linalg::reshape(&g, shape.0, shape.1, Alloc::Arena);
                accumulate(&mut madj[ix(a)], &g2);
                arena::give(g2);
            }
            Op::ColumnBlock { a, offset, .. } => {
                let acc = acc_mut(&mut madj[ix(a)], mats[ix(a)].shape());
                let dst = &mut acc.as_mut_slice()[offset..offset + g.len()];
                for (d, s) in dst.iter_mut().zip(g.as_slice()) {
                    *d += s;
                }
            }
            Op::Sum { .. } | Op::Dot { .. } | Op::Get { .. } | Op::Custom(_) => unreachable!(),
        }
        madj[ix(out)] = Some(g);
        Ok(())
    }

    /// Set this op's output tangents from its inputs' tangents.
    pub(crate) fn forward(
        &self,
        mats: &[TapeMat],
        stan: &mut [f64],
        mtan: &mut MatSlots,
    ) -> Result<(), AdError> {
        // Values and tangents are borrowed, not copied; a missing tangent is a known zero.
        let dual = |i: u32| -> DualMat<Val<'_>> {
            let re: &DMatrix<f64> = &mats[ix(i)];
            let eps = match &mtan[ix(i)] {
                Some(t) => Val::borrowed(t),
                None => Val::zero(re.nrows(), re.ncols()),
            };
            DualMat {
                re: Val::borrowed(re),
                eps,
            }
        };
        let out_tangent: DMatrix<f64> = match *self {
            Op::Sum { a, out_s } => {
                stan[ix(out_s)] = dual(a).sum().eps;
                return Ok(());
            }
            Op::Dot { a, b, out_s } => {
                stan[ix(out_s)] = dual(a).dot(&dual(b)).eps;
                return Ok(());
            }
            Op::Get { a, i, j, out_s } => {
                stan[ix(out_s)] = dual(a).get(i, j).eps;
                return Ok(());
            }
            Op::Custom(ref rec) => return rec.forward(mats, stan, mtan),
            Op::MatMul { a, b, .. } => dual(a).matmul(&dual(b)).eps.into_owned(),
            Op::Transpose { a, .. } => dual(a).transpose().eps.into_owned(),
            Op::Add { a, b, .. } => dual(a).add(&dual(b)).eps.into_owned(),
            Op::Sub { a, b, .. } => dual(a).sub(&dual(b)).eps.into_owned(),
            Op::MulElem { a, b, .. } => dual(a).mul_elem(&dual(b)).eps.into_owned(),
            Op::DivElem { a, b, .. } => dual(a).div_elem(&dual(b)).eps.into_owned(),
            Op::AddRow { a, row, .. } => dual(a).add_row(&dual(row)).eps.into_owned(),
            Op::AddCol { a, col, .. } => dual(a).add_col(&dual(col)).eps.into_owned(),
            Op::Scale { a, s, s_value, .. } => {
                let sd = crate::Dual::new(s_value, stan[ix(s)]);
                dual(a).scale(sd).eps.into_owned()
            }
            Op::ScaleConst { a, c, .. } => dual(a).scale_f64(c).eps.into_owned(),
            Op::AddConst { a, c, .. } => dual(a).add_f64(c).eps.into_owned(),
            Op::Unary { a, f, .. } => dual(a).unary(f).eps.into_owned(),
            Op::FromScalars { ref inputs, out } => {
                let (r, c) = mats[ix(out)].shape();
                DMatrix::from_iterator(
                    r,
                    c,
                    inputs
                        .iter()
                        .map(|&s| if s == NONE { 0.0 } else { stan[ix(s)] }),
                )
            }
            Op::Slice { a, r0, c0, out } => {
                let (r, c) = mats[ix(out)].shape();
                dual(a).slice(r0, c0, r, c).eps.into_owned()
            }
            Op::Concat {
                ref parts,
                horizontal,
                ..
            } => {
                let ds: Vec<_> = parts.iter().map(|&p| dual(p)).collect();
                DualMat::concat(&ds, horizontal).eps.into_owned()
            }
            Op::Reshape { a, out } => {
                let (r, c) = mats[ix(out)].shape();
                dual(a).reshape(r, c).eps.into_owned()
            }
            Op::ColumnBlock { a, offset, out } => {
                let (r, c) = mats[ix(out)].shape();
                dual(a).column_block(offset, r, c).eps.into_owned()
            }
        };
        mtan[ix(self.matrix_output().expect("a matrix-output op"))] = Some(out_tangent);
        Ok(())
    }

    /// Set `needs[out]` for this op's matrix output: whether it may depend on a variable,
    /// i.e. whether any matrix input does (`needs` is false for constant leaves). A scalar
    /// operand (`Scale`, `FromScalars`) and custom ops are assumed to depend on one.
    pub(crate) fn propagate_needs(&self, needs: &mut [bool]) {
        let n = |i: u32| needs[ix(i)];
        let (out, need) = match *self {
            Op::MatMul { a, b, out }
            | Op::Add { a, b, out }
            | Op::Sub { a, b, out }
            | Op::MulElem { a, b, out }
            | Op::DivElem { a, b, out }
            | Op::AddRow { a, row: b, out }
            | Op::AddCol { a, col: b, out } => (out, n(a) || n(b)),
            Op::Transpose { a, out }
            | Op::ScaleConst { a, out, .. }
            | Op::AddConst { a, out, .. }
            | Op::Unary { a, out, .. }
            | Op::Slice { a, out, .. }
            | Op::Reshape { a, out }
            | Op::ColumnBlock { a, out, .. } => (out, n(a)),
            Op::Concat { ref parts, out, .. } => (out, parts.iter().any(|&p| n(p))),
            Op::Scale { out, .. } | Op::FromScalars { out, .. } => (out, true),
            Op::Sum { .. } | Op::Dot { .. } | Op::Get { .. } | Op::Custom(_) => return,
        };
        needs[ix(out)] = need;
    }
}
