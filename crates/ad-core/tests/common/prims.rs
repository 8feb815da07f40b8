//! Every [`MatOps`] primitive as a test case: random shapes (on both sides of nalgebra's
//! matrixmultiply threshold), values inside each primitive's domain, a direction, and a
//! quadratic reduction to a scalar.

use ad_core::{MatFn, MatOps, Real, Unary};
use nalgebra::DMatrix;
use proptest::prelude::*;

/// One `MatOps` primitive (the names follow the trait's methods).
#[derive(Clone, Copy, Debug)]
pub enum Prim {
    MatMul,
    Transpose,
    Add,
    Sub,
    MulElem,
    DivElem,
    AddRow,
    AddCol,
    Scale,
    ScaleF64,
    AddF64,
    Neg,
    Unary(Unary),
    Sum,
    Mean,
    Dot,
    SqNorm,
    Get,
    FromScalars,
    Slice,
    Rows,
    Columns,
    Concat(bool),
    HCat,
    VCat,
    Reshape,
    ColumnBlock,
}

/// Every primitive, each `Unary` function and both concatenation directions included.
pub fn all_prims() -> Vec<Prim> {
    use Prim::*;
    let mut v = vec![
        MatMul,
        Transpose,
        Add,
        Sub,
        MulElem,
        DivElem,
        AddRow,
        AddCol,
        Scale,
        ScaleF64,
        AddF64,
        Neg,
        Sum,
        Mean,
        Dot,
        SqNorm,
        Get,
        FromScalars,
        Slice,
        Rows,
        Columns,
        Concat(true),
        Concat(false),
        HCat,
        VCat,
        Reshape,
        ColumnBlock,
    ];
    v.extend(ad_core::Unary::ALL.iter().map(|&f| Prim::Unary(f)));
    v
}

/// One primitive applied to the parameters, followed by a reduction to a scalar that is
/// quadratic (so linear primitives have a nonzero Hessian too):
/// `<Y, W> + |Y|^2 / 4` for matrix results, `s + s^2 / 4` for scalar results.
#[derive(Clone, Debug)]
pub struct PrimFn {
    pub prim: Prim,
    /// Weights of the reduction, shaped like the primitive's result.
    pub w: DMatrix<f64>,
    /// A constant (scale_f64, add_f64).
    pub c: f64,
    /// Block coordinates (slice, rows, columns, get), a target shape (reshape), or offset
    /// and shape (column_block).
    pub idx: [usize; 4],
}

/// A primitive's result: a matrix, or a scalar for sum, mean, dot, sq_norm and get.
pub enum Out<M: MatOps> {
    Mat(M),
    Scalar(M::Scalar),
}

impl PrimFn {
    pub fn apply<M: MatOps>(&self, p: &[M]) -> Out<M> {
        let [i0, i1, i2, i3] = self.idx;
        use Out::{Mat, Scalar};
        match self.prim {
            Prim::MatMul => Mat(p[0].matmul(&p[1])),
            Prim::Transpose => Mat(p[0].transpose()),
            Prim::Add => Mat(p[0].add(&p[1])),
            Prim::Sub => Mat(p[0].sub(&p[1])),
            Prim::MulElem => Mat(p[0].mul_elem(&p[1])),
            Prim::DivElem => Mat(p[0].div_elem(&p[1])),
            Prim::AddRow => Mat(p[0].add_row(&p[1])),
            Prim::AddCol => Mat(p[0].add_col(&p[1])),
            Prim::Scale => Mat(p[0].scale(p[1].get(0, 0))),
            Prim::ScaleF64 => Mat(p[0].scale_f64(self.c)),
            Prim::AddF64 => Mat(p[0].add_f64(self.c)),
            Prim::Neg => Mat(p[0].neg()),
            Prim::Unary(f) => Mat(p[0].unary(f)),
            Prim::Sum => Scalar(p[0].sum()),
            Prim::Mean => Scalar(p[0].mean()),
            Prim::Dot => Scalar(p[0].dot(&p[1])),
            Prim::SqNorm => Scalar(p[0].sq_norm()),
            Prim::Get => Scalar(p[0].get(i0, i1)),
            Prim::FromScalars => {
                // the transpose of p0 .* p1, built entry by entry, with every third entry a
                // constant (which the tape must treat as having no parent)
                let (r, c) = p[0].shape();
                let data: Vec<M::Scalar> = (0..r * c)
                    .map(|k| {
                        let (i, j) = (k / c, k % c); // column-major in the c x r result
                        if k % 3 == 2 {
                            M::Scalar::from_f64(0.5 + k as f64)
                        } else {
                            p[0].get(i, j) * p[1].get(i, j)
                        }
                    })
                    .collect();
                Mat(p[0].from_scalars_like(c, r, &data))
            }
            Prim::Slice => Mat(p[0].slice(i0, i1, i2, i3)),
            Prim::Rows => Mat(p[0].rows(i0, i2)),
            Prim::Columns => Mat(p[0].columns(i1, i3)),
            Prim::Concat(h) => Mat(M::concat(&[p[0].clone(), p[1].clone()], h)),
            Prim::HCat => Mat(M::hcat(&[p[0].clone(), p[1].clone(), p[0].clone()])),
            Prim::VCat => Mat(M::vcat(&[p[0].clone(), p[1].clone(), p[0].clone()])),
            Prim::Reshape => Mat(p[0].reshape(i0, i1)),
            Prim::ColumnBlock => Mat(p[0].column_block(i0, i1, i2)),
        }
    }
}

impl MatFn for PrimFn {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        match self.apply(p) {
            Out::Mat(y) => {
                assert_eq!(y.shape(), self.w.shape(), "{:?}: result shape", self.prim);
                y.dot(&y.constant_like(self.w.clone())) + y.sq_norm() * 0.25
            }
            Out::Scalar(s) => s + s * s * 0.25,
        }
    }
}

/// A primitive test case: the function, its parameters and a direction.
#[derive(Clone, Debug)]
pub struct PrimCase {
    pub f: PrimFn,
    pub p: Vec<DMatrix<f64>>,
    pub v: Vec<DMatrix<f64>>,
}

/// Build a case from shapes `(m, k, n)`, integers for block coordinates and a pool of
/// uniform numbers in [-1, 1] mapped into each primitive's domain.
pub fn build_case(
    prim: Prim,
    (m, k, n): (usize, usize, usize),
    ints: [usize; 4],
    pool: &[f64],
) -> PrimCase {
    let mut it = pool.iter().copied().cycle();
    let mut take = |r: usize, c: usize, map: &dyn Fn(f64) -> f64| {
        DMatrix::from_fn(r, c, |_, _| map(it.next().unwrap()))
    };
    let general = |u: f64| 3.0 * u;
    let positive = |u: f64| 0.2 + 1.4 * (u + 1.0); // [0.2, 3]
    let away = |u: f64| (0.05 + 2.95 * u.abs()).copysign(u); // |x| >= 0.05 >> h
    let denom = |u: f64| (0.5 + 1.5 * u.abs()).copysign(u); // |x| in [0.5, 2]
    let shapes: Vec<(usize, usize)> = match prim {
        Prim::MatMul => vec![(m, k), (k, n)],
        Prim::Add | Prim::Sub | Prim::MulElem | Prim::DivElem | Prim::Dot | Prim::FromScalars => {
            vec![(m, n), (m, n)]
        }
        Prim::AddRow => vec![(m, n), (1, n)],
        Prim::AddCol => vec![(m, n), (m, 1)],
        Prim::Scale => vec![(m, n), (1, 1)],
        Prim::Concat(true) | Prim::HCat => vec![(m, k), (m, n)],
        Prim::Concat(false) | Prim::VCat => vec![(k, n), (m, n)],
        // an m x n block at an offset in a column of m n + k entries
        Prim::ColumnBlock => vec![(m * n + k, 1)],
        _ => vec![(m, n)],
    };
    let p: Vec<DMatrix<f64>> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| match (prim, i) {
            (Prim::Unary(Unary::Ln | Unary::Sqrt), _) => take(r, c, &positive),
            (Prim::Unary(Unary::Relu | Unary::Abs), _) => take(r, c, &away),
            (Prim::Unary(Unary::Exp), _) => take(r, c, &|u| 2.0 * u),
            (Prim::DivElem, 1) => take(r, c, &denom),
            _ => take(r, c, &general),
        })
        .collect();
    let v: Vec<DMatrix<f64>> = shapes.iter().map(|&(r, c)| take(r, c, &|u| u)).collect();
    // block coordinates inside m x n, and a factorization of m * n for reshape
    let r0 = ints[0] % m;
    let c0 = ints[1] % n;
    let nr = 1 + ints[2] % (m - r0);
    let nc = 1 + ints[3] % (n - c0);
    let idx = match prim {
        Prim::Reshape => {
            let len = m * n;
            let divisors: Vec<usize> = (1..=len).filter(|d| len % d == 0).collect();
            let r = divisors[ints[0] % divisors.len()];
            [r, len / r, 0, 0]
        }
        Prim::ColumnBlock => [ints[0] % (k + 1), m, n, 0],
        _ => [r0, c0, nr, nc],
    };
    let mut f = PrimFn {
        prim,
        w: DMatrix::zeros(0, 0),
        c: pool[0] * 2.0,
        idx,
    };
    // weights shaped like the result
    let out_shape = match f.apply(&p) {
        Out::Mat(y) => y.shape(),
        Out::Scalar(_) => (0, 0),
    };
    f.w = take(out_shape.0, out_shape.1, &general);
    PrimCase { f, p, v }
}

/// Random cases of one primitive.
pub fn prim_case(prim: Prim) -> impl Strategy<Value = PrimCase> {
    (
        super::gemm_dims(),
        any::<[usize; 4]>(),
        proptest::collection::vec(-1.0f64..1.0, 64..256),
    )
        .prop_map(move |(dims, ints, pool)| build_case(prim, dims, ints, &pool))
}

/// Random cases of a random primitive.
pub fn any_prim_case() -> impl Strategy<Value = PrimCase> {
    let prims = all_prims();
    (0..prims.len()).prop_flat_map(move |i| prim_case(prims[i]))
}
