//! [`MatVar`]: a matrix recorded on the tape as one node per operation.

use std::marker::PhantomData;
use std::sync::Arc;

use nalgebra::DMatrix;

use super::linalg::{self, Alloc};
use super::{MatOps, Unary, assert_same_shape};
use crate::custom::record;
use crate::error::AdError;
use crate::rule::{self, CustomFn};
use crate::tape::op::Op;
use crate::tape::{NONE, OpEntry, ScalarNode, Tape, TapeData, TapeMat, active_id, with_tape};
use crate::var::Var;

/// A matrix-valued variable on a [`Tape`]: its value and adjoint are stored contiguously,
/// and each operation on it is one tape node (a matmul is one gemm forward, two backward).
///
/// `MatVar` is `Copy` (it is an id and a shape); its value lives on the tape. Like the tape,
/// it is tied to its thread (`!Send`, `!Sync`).
#[derive(Clone, Copy, Debug)]
pub struct MatVar {
    tape: u32,
    index: u32,
    rows: usize,
    cols: usize,
    /// Made by [`MatOps::zeros_like`]: a constant known to be all zeros.
    zero: bool,
    /// Tape ids are per thread: a `MatVar` must not leave its thread (`!Send`, `!Sync`).
    _thread: PhantomData<*const ()>,
}

impl Tape {
    /// A new independent matrix variable on this tape.
    pub fn mat_var(&self, value: DMatrix<f64>) -> MatVar {
        MatVar::leaf(self.id(), value, false, true)
    }
    /// [`Tape::mat_var`] of a copy of `value`, made in the tape's arena.
    pub(crate) fn mat_var_copy(&self, value: &DMatrix<f64>) -> MatVar {
        MatVar::leaf(self.id(), crate::tape::arena::copy_of(value), false, false)
    }
    /// [`Tape::mat_var`] of a `rows x cols` copy of the column-major `xs`, made in the
    /// tape's arena.
    pub(crate) fn mat_var_from_slice(&self, rows: usize, cols: usize, xs: &[f64]) -> MatVar {
        let value = crate::tape::arena::copy_of_slice(rows, cols, xs);
        MatVar::leaf(self.id(), value, false, false)
    }
    /// [`Tape::constant_mat`] of a `rows x cols` copy of the column-major `xs`, made in the
    /// tape's arena.
    pub(crate) fn constant_mat_from_slice(&self, rows: usize, cols: usize, xs: &[f64]) -> MatVar {
        let value = crate::tape::arena::copy_of_slice(rows, cols, xs);
        MatVar::leaf(self.id(), value, true, false)
    }
    /// [`Tape::constant_mat`] of a copy of `value`, made in the tape's arena.
    pub(crate) fn constant_mat_copy(&self, value: &DMatrix<f64>) -> MatVar {
        MatVar::leaf(self.id(), crate::tape::arena::copy_of(value), true, false)
    }
    /// A constant matrix (data) on this tape. Like a constant [`Var`], it has no gradient:
    /// reverse sweeps propagate no adjoint into it (nor into results computed from constants
    /// only), which skips, e.g., the product `g W^T` for a data batch `X` in `X W`; its
    /// gradient reads as zeros. Use [`Tape::mat_var`] for data you want a gradient for.
    ///
    /// ```
    /// use ad_core::{MatOps, Tape};
    /// use nalgebra::DMatrix;
    /// let tape = Tape::new();
    /// let x = tape.constant_mat(DMatrix::from_element(2, 3, 1.0));
    /// let w = tape.mat_var(DMatrix::from_element(3, 1, 0.5));
    /// let g = tape.gradient(x.matmul(&w).sum()).unwrap();
    /// assert_eq!(g.wrt_mat(&w), DMatrix::from_element(3, 1, 2.0));
    /// assert_eq!(g.wrt_mat(&x), DMatrix::zeros(2, 3));
    /// ```
    pub fn constant_mat(&self, value: DMatrix<f64>) -> MatVar {
        MatVar::leaf(self.id(), value, true, true)
    }
    /// A constant matrix shared with the caller: the tape records the `Arc`, never a copy
    /// of the data (nor does any sweep copy it), so data entering every evaluation of a
    /// function cost nothing per evaluation. Otherwise like [`Tape::constant_mat`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use ad_core::{MatOps, Tape};
    /// use nalgebra::DMatrix;
    /// let data = Arc::new(DMatrix::from_element(2, 3, 1.0));
    /// let tape = Tape::new();
    /// let x = tape.constant_shared(data.clone());
    /// assert!(x.with_value(|v| std::ptr::eq(v, &*data))); // the caller's matrix itself
    /// let w = tape.mat_var(DMatrix::from_element(3, 1, 0.5));
    /// let g = tape.gradient(x.matmul(&w).sum()).unwrap();
    /// assert_eq!(g.wrt_mat(&w), DMatrix::from_element(3, 1, 2.0));
    /// ```
    pub fn constant_shared(&self, value: Arc<DMatrix<f64>>) -> MatVar {
        MatVar::shared_leaf(self.id(), value)
    }
    /// A column vector variable.
    pub fn vector_var(&self, values: &[f64]) -> MatVar {
        self.mat_var(DMatrix::from_column_slice(values.len(), 1, values))
    }
}

impl MatVar {
    /// A constant leaf holding the caller's `Arc` (no copy).
    fn shared_leaf(tape: u32, value: Arc<DMatrix<f64>>) -> MatVar {
        let (rows, cols) = value.shape();
        let index = with_tape(tape, |t| {
            t.mats.push(TapeMat::Shared(value));
            let index = (t.mats.len() - 1) as u32;
            t.const_mats.push(index);
            index
        });
        MatVar::from_parts(tape, index, rows, cols)
    }

    /// A leaf; `foreign`: the buffer was not taken from the tape's arena (so it is freed,
    /// not given to the arena, when the tape drops).
    fn leaf(tape: u32, value: DMatrix<f64>, constant: bool, foreign: bool) -> MatVar {
        let (rows, cols) = value.shape();
        let index = with_tape(tape, |t| {
            t.mats.push(value.into());
            let index = (t.mats.len() - 1) as u32;
            if constant {
                t.const_mats.push(index);
            }
            if foreign {
                t.foreign_mats.push(index);
            }
            index
        });
        MatVar {
            tape,
            index,
            rows,
            cols,
            zero: false,
            _thread: PhantomData,
        }
    }

    pub(crate) fn from_parts(tape: u32, index: u32, rows: usize, cols: usize) -> MatVar {
        MatVar {
            tape,
            index,
            rows,
            cols,
            zero: false,
            _thread: PhantomData,
        }
    }

    /// The id of this variable's tape.
    pub fn tape_id(&self) -> u32 {
        self.tape
    }

    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// Run `f` on this variable's current value (no copy).
    pub fn with_value<R>(&self, f: impl FnOnce(&DMatrix<f64>) -> R) -> R {
        with_tape(self.tape, |t| f(&t.mats[self.index as usize]))
    }

    /// All entries as scalar variables (column-major), e.g. to feed scalar code.
    pub fn to_vars(&self) -> Vec<Var> {
        let (r, c) = (self.rows, self.cols);
        (0..c)
            .flat_map(|j| (0..r).map(move |i| (i, j)))
            .map(|(i, j)| self.get(i, j))
            .collect()
    }

    /// Panic (with the tape's explanation) unless `other` lives on this variable's tape.
    #[track_caller]
    fn same_tape(&self, other: &MatVar) {
        if self.tape != other.tape {
            let stale = if active_id() == Some(self.tape) {
                other.tape
            } else {
                self.tape
            };
            with_tape(stale, |_| ());
            unreachable!()
        }
    }

    /// Record a matrix-output op: `compute` sees the tape's matrices and returns the value.
    pub(crate) fn record(
        &self,
        compute: impl FnOnce(&[TapeMat]) -> DMatrix<f64>,
        op: impl FnOnce(u32) -> Op,
    ) -> MatVar {
        let tape = self.tape;
        with_tape(tape, |t| {
            let value = compute(&t.mats);
            let (rows, cols) = value.shape();
            let out = t.mats.len() as u32;
            t.mats.push(value.into());
            let scalar_mark = t.scalars.len() as u32;
            t.ops.push(OpEntry {
                scalar_mark,
                op: op(out),
            });
            MatVar::from_parts(tape, out, rows, cols)
        })
    }

    /// Record a scalar-output op.
    fn record_scalar(
        &self,
        compute: impl FnOnce(&[TapeMat]) -> f64,
        op: impl FnOnce(u32) -> Op,
    ) -> Var {
        let tape = self.tape;
        with_tape(tape, |t: &mut TapeData| {
            let value = compute(&t.mats);
            let out_s = t.scalars.len() as u32;
            t.scalars.push(ScalarNode {
                parents: [NONE, NONE],
                partials: [0.0, 0.0],
            });
            let scalar_mark = t.scalars.len() as u32;
            t.ops.push(OpEntry {
                scalar_mark,
                op: op(out_s),
            });
            Var::from_parts(value, tape, out_s)
        })
    }

    fn binary(
        &self,
        b: &MatVar,
        compute: impl FnOnce(&DMatrix<f64>, &DMatrix<f64>) -> DMatrix<f64>,
        op: impl FnOnce(u32, u32, u32) -> Op,
    ) -> MatVar {
        self.same_tape(b);
        let (ia, ib) = (self.index, b.index);
        self.record(
            |m| compute(&m[ia as usize], &m[ib as usize]),
            |out| op(ia, ib, out),
        )
    }
}

impl MatOps for MatVar {
    type Scalar = Var;

    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }
    fn constant_like(&self, m: DMatrix<f64>) -> Self {
        MatVar::leaf(self.tape, m, true, true)
    }
    fn shared(&self, data: &Arc<DMatrix<f64>>) -> Self {
        MatVar::shared_leaf(self.tape, data.clone())
    }
    fn custom<F: CustomFn>(f: &F, inputs: &[Self]) -> Result<Vec<Self>, AdError> {
        let tape = record::common_tape(inputs.iter().map(|m| m.tape))
            .expect("ad-core: MatOps::custom needs at least one input block");
        let values: Vec<DMatrix<f64>> = inputs.iter().map(|m| m.value()).collect();
        let (outs, r) = rule::linearize_checked(f, &values)?;
        let ins: Vec<_> = inputs.iter().map(|m| (m.index, m.shape())).collect();
        let shapes: Vec<_> = outs.iter().map(|m| m.shape()).collect();
        let ids = record::record_mats(tape, Box::new(r), &ins, outs);
        Ok(ids
            .iter()
            .zip(shapes)
            .map(|(&i, (r, c))| MatVar::from_parts(tape, i, r, c))
            .collect())
    }
    fn zeros_like(&self, rows: usize, cols: usize) -> Self {
        // Recorded without a buffer: allocated only if a rule reads it.
        let index = with_tape(self.tape, |t| {
            t.mats.push(TapeMat::Zero(rows, cols, Default::default()));
            let index = (t.mats.len() - 1) as u32;
            t.const_mats.push(index);
            index
        });
        MatVar {
            zero: true,
            ..MatVar::from_parts(self.tape, index, rows, cols)
        }
    }
    fn is_known_zero(&self) -> bool {
        self.zero
    }
    fn value(&self) -> DMatrix<f64> {
        self.with_value(|m| m.clone())
    }
    fn matmul(&self, b: &Self) -> Self {
        self.binary(
            b,
            |x, y| linalg::matmul(x, y, Alloc::Arena),
            |a, b, out| Op::MatMul { a, b, out },
        )
    }
    fn transpose(&self) -> Self {
        let a = self.index;
        self.record(
            |m| linalg::transpose(&m[a as usize], Alloc::Arena),
            |out| Op::Transpose { a, out },
        )
    }
    fn add(&self, b: &Self) -> Self {
        assert_same_shape("add", self.shape(), b.shape());
        self.binary(
            b,
            |x, y| linalg::zip_map(x, y, Alloc::Arena, |u, v| u + v),
            |a, b, out| Op::Add { a, b, out },
        )
    }
    fn sub(&self, b: &Self) -> Self {
        assert_same_shape("sub", self.shape(), b.shape());
        self.binary(
            b,
            |x, y| linalg::zip_map(x, y, Alloc::Arena, |u, v| u - v),
            |a, b, out| Op::Sub { a, b, out },
        )
    }
    fn mul_elem(&self, b: &Self) -> Self {
        assert_same_shape("mul_elem", self.shape(), b.shape());
        self.binary(
            b,
            |x, y| linalg::zip_map(x, y, Alloc::Arena, |u, v| u * v),
            |a, b, out| Op::MulElem { a, b, out },
        )
    }
    fn div_elem(&self, b: &Self) -> Self {
        assert_same_shape("div_elem", self.shape(), b.shape());
        self.binary(
            b,
            |x, y| linalg::zip_map(x, y, Alloc::Arena, |u, v| u / v),
            |a, b, out| Op::DivElem { a, b, out },
        )
    }
    fn add_row(&self, row: &Self) -> Self {
        self.binary(
            row,
            |x, r| linalg::add_row(x, r, Alloc::Arena),
            |a, row, out| Op::AddRow { a, row, out },
        )
    }
    fn add_col(&self, col: &Self) -> Self {
        self.binary(
            col,
            |x, c| linalg::add_col(x, c, Alloc::Arena),
            |a, col, out| Op::AddCol { a, col, out },
        )
    }
    fn scale(&self, s: Var) -> Self {
        if s.is_constant() {
            return self.scale_f64(s.value_f64());
        }
        if s.tape_id() != self.tape {
            with_tape(s.tape_id(), |_| ());
            with_tape(self.tape, |_| ());
        }
        let (a, si, sv) = (self.index, s.index(), s.value_f64());
        self.record(
            |m| linalg::map(&m[a as usize], Alloc::Arena, |x| x * sv),
            |out| Op::Scale {
                a,
                s: si,
                s_value: sv,
                out,
            },
        )
    }
    fn scale_f64(&self, c: f64) -> Self {
        let a = self.index;
        self.record(
            |m| linalg::map(&m[a as usize], Alloc::Arena, |x| x * c),
            |out| Op::ScaleConst { a, c, out },
        )
    }
    fn add_f64(&self, c: f64) -> Self {
        let a = self.index;
        self.record(
            |m| linalg::map(&m[a as usize], Alloc::Arena, |x| x + c),
            |out| Op::AddConst { a, c, out },
        )
    }
    fn unary(&self, f: Unary) -> Self {
        let a = self.index;
        self.record(
            |m| linalg::unary_value(f, &m[a as usize], Alloc::Arena),
            |out| Op::Unary { a, f, out },
        )
    }
    fn sum(&self) -> Var {
        let a = self.index;
        self.record_scalar(|m| m[a as usize].sum(), |out_s| Op::Sum { a, out_s })
    }
    fn dot(&self, b: &Self) -> Var {
        assert_same_shape("dot", self.shape(), b.shape());
        self.same_tape(b);
        let (a, bi) = (self.index, b.index);
        self.record_scalar(
            |m| m[a as usize].dot(&m[bi as usize]),
            |out_s| Op::Dot { a, b: bi, out_s },
        )
    }
    fn get(&self, i: usize, j: usize) -> Var {
        assert!(
            i < self.rows && j < self.cols,
            "ad-core: get: index ({i},{j}) out of bounds for a {}x{} matrix",
            self.rows,
            self.cols
        );
        let a = self.index;
        self.record_scalar(
            |m| m[a as usize][(i, j)],
            |out_s| Op::Get { a, i, j, out_s },
        )
    }
    fn from_scalars_like(&self, rows: usize, cols: usize, data: &[Var]) -> Self {
        assert!(
            rows * cols == data.len(),
            "ad-core: from_scalars: {} values cannot fill a {rows}x{cols} matrix",
            data.len()
        );
        for v in data.iter().filter(|v| !v.is_constant()) {
            if v.tape_id() != self.tape {
                with_tape(v.tape_id(), |_| ());
                with_tape(self.tape, |_| ());
            }
        }
        let inputs: Vec<u32> = data.iter().map(|v| v.index()).collect();
        self.record(
            |_| {
                let mut m = Alloc::Arena.uninit(rows, cols);
                for (o, v) in m.as_mut_slice().iter_mut().zip(data) {
                    *o = v.value_f64();
                }
                m
            },
            |out| Op::FromScalars { inputs, out },
        )
    }
    fn slice(&self, row0: usize, col0: usize, nrows: usize, ncols: usize) -> Self {
        super::check_slice(self.shape(), row0, col0, nrows, ncols);
        let a = self.index;
        self.record(
            |m| linalg::slice(&m[a as usize], row0, col0, nrows, ncols, Alloc::Arena),
            |out| Op::Slice {
                a,
                r0: row0,
                c0: col0,
                out,
            },
        )
    }
    fn concat(parts: &[Self], horizontal: bool) -> Self {
        let shapes: Vec<_> = parts.iter().map(|p| p.shape()).collect();
        super::concat_shape(&shapes, horizontal);
        let first = parts[0];
        for p in &parts[1..] {
            first.same_tape(p);
        }
        let ids: Vec<u32> = parts.iter().map(|p| p.index).collect();
        let ids2 = ids.clone();
        first.record(
            |m| {
                let refs: Vec<&DMatrix<f64>> = ids.iter().map(|&i| &*m[i as usize]).collect();
                linalg::concat(&refs, horizontal, Alloc::Arena)
            },
            |out| Op::Concat {
                parts: ids2,
                horizontal,
                out,
            },
        )
    }
    fn reshape(&self, rows: usize, cols: usize) -> Self {
        let a = self.index;
        assert!(
            rows * cols == self.rows * self.cols,
            "ad-core: reshape: cannot view a {}x{} matrix as {rows}x{cols}",
            self.rows,
            self.cols
        );
        self.record(
            |m| linalg::reshape(&m[a as usize], rows, cols, Alloc::Arena),
            |out| Op::Reshape { a, out },
        )
    }
    fn column_block(&self, offset: usize, rows: usize, cols: usize) -> Self {
        super::check_column_block(self.shape(), offset, rows, cols);
        let a = self.index;
        self.record(
            |m| {
                let src = &m[a as usize].as_slice()[offset..offset + rows * cols];
                crate::tape::arena::copy_of_slice(rows, cols, src)
            },
            |out| Op::ColumnBlock { a, offset, out },
        )
    }
}

impl Var {
    /// The value as plain `f64` (same as [`Real::value`](crate::Real::value)).
    #[inline]
    pub fn value_f64(&self) -> f64 {
        crate::Real::value(self)
    }
}
