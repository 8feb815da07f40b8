//! Second-order sweeps over a recorded scalar function: Hessian-vector products for `k`
//! directions at once, by forward-over-reverse differentiation of the tape's own rules.
//!
//! 1. A batched forward sweep gives every tape entry `k` tangents. A matrix entry of shape
//!    `r x c` holds them as one `r x (c k)` matrix: block `j` (columns `j c .. (j+1) c`) is
//!    the tangent along direction `j`, contiguous in memory, so per-direction work is a
//!    slice and a left product `M [T_1 .. T_k]` is one gemm.
//! 2. The ordinary reverse sweep gives every entry its adjoint.
//! 3. A reverse sweep of adjoint tangents: for each op, the tangent of its VJP rule (the
//!    rule applied to the output's adjoint tangent, plus the rule's own derivative along
//!    the inputs' tangents applied to the output's adjoint). At the inputs this is `H V`.
//!
//! Scalar nodes store only their partials; on a second-order tape
//! ([`Tape::new_second_order`](crate::tape::Tape)) each node whose partials are not
//! constant also records its second partials (`TapeData::curvature`). Elementwise
//! functions take `f''` from [`Unary::second_derivative`], the derivative table run on
//! dual numbers. Custom ops have no second-order rule: a sweep over one is an error.

mod blocks;
mod forward;
mod needs;
mod reverse;

use nalgebra::DMatrix;

use crate::error::AdError;
use crate::sweep::{Seeds, needs_adjoint, reverse};
use crate::tape::arena;
use crate::tape::{MatSlots, TapeData};
use crate::var::Var;
use blocks::ix;
use forward::{forward_op, forward_scalars};
use reverse::Reverse;

/// Forward tangents (`k` per entry) of a whole tape.
pub(crate) struct Tangents {
    pub k: usize,
    pub mats: Vec<Option<DMatrix<f64>>>,
    /// Node-major: the tangents of scalar node `i` are `scalars[i k .. (i+1) k]`.
    pub scalars: Vec<f64>,
    /// `(f', f'')` of each elementwise op's input, by op position.
    pub unary: Vec<Option<(Vec<f64>, Vec<f64>)>>,
    /// Entries whose tangents are the identity seed (a column `x` with `V = I`).
    pub identity: Vec<u32>,
    /// Whether each matrix's / scalar node's tangents are read ([`needs`]): the others
    /// are not computed.
    pub need_mats: Vec<bool>,
    /// See `need_mats`.
    pub need_scalars: Vec<bool>,
}

/// The result of a second-order sweep: adjoints (the gradient) and adjoint tangents
/// (`H V`, `k` blocks per entry) of every matrix and scalar entry. What the caller does not
/// take goes back to the arena when this drops.
pub(crate) struct SecondOrder {
    pub madj: MatSlots,
    pub mat_hv: Vec<Option<DMatrix<f64>>>,
}

impl Drop for SecondOrder {
    fn drop(&mut self) {
        self.madj
            .drain(..)
            .chain(self.mat_hv.drain(..))
            .flatten()
            .for_each(arena::give);
    }
}

/// Hessian-vector products of the scalar `y` recorded on the second-order tape `data`:
/// `seeds` gives `k` tangents of some matrix entries (`r x (c k)` each, block `j` the
/// direction `j`). Returns the gradient and `H V` of every entry.
pub(crate) fn hessian_products(
    data: &TapeData,
    y: Var,
    seeds: Vec<(u32, DMatrix<f64>)>,
    k: usize,
) -> Result<SecondOrder, AdError> {
    let ns = data.scalars.len();
    let (need_mats, need_scalars) = needs::tangent_needs(data);
    let mut fwd = Tangents {
        k,
        mats: vec![None; data.mats.len()],
        scalars: vec![0.0; ns * k],
        unary: (0..data.ops.len()).map(|_| None).collect(),
        identity: Vec::new(),
        need_mats,
        need_scalars,
    };
    for (i, d) in seeds {
        if d.ncols() == d.nrows() && d.ncols() == k && is_identity(&d) {
            fwd.identity.push(i);
        }
        fwd.mats[ix(i)] = Some(d);
    }
    for &c in &data.const_mats {
        fwd.mats[ix(c)] = None;
    }
    let mut lo = 0;
    for (pos, entry) in data.ops.iter().enumerate() {
        let mark = entry.scalar_mark as usize;
        forward_scalars(data, &mut fwd, lo, mark);
        lo = mark;
        forward_op(&entry.op, pos, &data.mats, &mut fwd)?;
    }
    forward_scalars(data, &mut fwd, lo, ns);

    let (sadj, madj) = reverse(data, &Seeds::new().var(y, 1.0))?;
    let needs = needs_adjoint(data);
    let mut rev = Reverse {
        k,
        mats: &data.mats,
        fwd: &fwd,
        madj: &madj,
        sadj: &sadj,
        needs: &needs,
        at: vec![None; data.mats.len()],
        ats: vec![0.0; ns * k],
    };
    let mut curv = data.curvature.len();
    let mut hi = ns;
    for (pos, entry) in data.ops.iter().enumerate().rev() {
        let mark = entry.scalar_mark as usize;
        rev.scalars(data, mark, hi, &mut curv);
        hi = mark;
        rev.op(&entry.op, pos)?;
    }
    rev.scalars(data, 0, hi, &mut curv);
    let mat_hv = rev.at;
    fwd.mats.into_iter().flatten().for_each(arena::give);
    Ok(SecondOrder { madj, mat_hv })
}

/// Whether a square matrix is exactly the identity (column by column: no index division
/// per entry, which cost 6 us on a 50 x 50 seed, a tenth of a W1 hypergradient).
fn is_identity(d: &DMatrix<f64>) -> bool {
    let n = d.nrows();
    d.as_slice()
        .chunks_exact(n.max(1))
        .enumerate()
        .all(|(j, col)| {
            col.iter()
                .enumerate()
                .all(|(i, &v)| v == if i == j { 1.0 } else { 0.0 })
        })
}
