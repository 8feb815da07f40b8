//! The thread-local reverse-mode tape and its RAII scope [`Tape`].
//!
//! One tape records scalar nodes (two parents and two partial derivatives each) and
//! whole-matrix operations side by side. Scalar nodes are numbered in creation order; each
//! matrix operation remembers how many scalar nodes existed when it was recorded, so the
//! reverse sweep can interleave the two streams in exact reverse creation order.

pub(crate) mod arena;
pub(crate) mod op;
pub(crate) mod value;

use std::cell::RefCell;
use std::marker::PhantomData;

use nalgebra::DMatrix;

use op::Op;
pub(crate) use value::{MatSlots, TapeMat};

/// Index value meaning "no parent" (a leaf or a constant operand).
pub(crate) const NONE: u32 = u32::MAX;

/// One scalar node: up to two parents and the partial derivative with respect to each.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScalarNode {
    pub parents: [u32; 2],
    pub partials: [f64; 2],
}

/// A recorded matrix (or custom) operation and its position relative to scalar nodes.
pub(crate) struct OpEntry {
    /// Number of scalar nodes that existed right after this op recorded its own outputs.
    pub scalar_mark: u32,
    pub op: Op,
}

/// Everything one tape records.
#[derive(Default)]
pub(crate) struct TapeData {
    pub id: u32,
    /// True while a sweep has taken the records out (recording is then an error).
    pub busy: bool,
    pub scalars: Vec<ScalarNode>,
    pub mats: Vec<TapeMat>,
    /// Indices (into `mats`) of constant matrices: no adjoint is propagated into them.
    pub const_mats: Vec<u32>,
    /// Indices (into `mats`) of matrices supplied by the user (leaves taken by value,
    /// custom op outputs): freed, not given to the [`arena`], when the tape drops.
    pub foreign_mats: Vec<u32>,
    pub ops: Vec<OpEntry>,
    /// Set on tapes that second-order sweeps will run over ([`Tape::new_second_order`]):
    /// every scalar push then takes the checked path and records its curvature.
    pub second_order: bool,
    /// Second partial derivatives `[h00, h01, h11]` of the scalar nodes whose partials are
    /// not constant, by node index in increasing order (second-order tapes only).
    pub curvature: Vec<(u32, [f64; 3])>,
    /// Reverse sweeps run over these records so far.
    pub reverse_sweeps: std::cell::Cell<u32>,
    /// Transposed copies of recorded values that products of replayed reverse sweeps read
    /// (see [`TransposeCache`]): `(value index, its transpose)`.
    pub transposes: TransposeCache,
}

/// Transposed copies of a tape's values, kept for sweeps that replay the same records.
///
/// A reverse sweep forms `Aᵀ G` for every product `A B` it passes (and `G Bᵀ`), and the
/// product kernel wants `Aᵀ` stored contiguously: a copy of `A` per sweep. Recorded values
/// never change, so from a tape's second reverse sweep on (a recording replayed by a
/// Krylov solve, a fixed-point adjoint, a DEQ backward) the copy is made once and kept
/// with the tape. One-shot tapes (a training step's gradient) never fill it, so their
/// memory is unchanged; a replayed tape holds at most one extra copy of each product
/// operand the kernel transposes. The copies come from the arena and go back to it when
/// the tape is reset.
#[derive(Default)]
pub(crate) struct TransposeCache(std::cell::RefCell<Vec<(u32, std::rc::Rc<DMatrix<f64>>)>>);

impl TransposeCache {
    /// The transpose of value `index`, made from `value` on first use.
    pub fn get_or_make(&self, index: u32, value: &DMatrix<f64>) -> std::rc::Rc<DMatrix<f64>> {
        let mut held = self.0.borrow_mut();
        if let Some((_, t)) = held.iter().find(|(i, _)| *i == index) {
            return t.clone();
        }
        let t = std::rc::Rc::new(crate::matrix::linalg::transpose(
            value,
            crate::matrix::linalg::Alloc::Arena,
        ));
        held.push((index, t.clone()));
        t
    }

    /// Bytes of the copies held.
    fn held_bytes(&self) -> usize {
        self.0.borrow().iter().map(|(_, t)| t.len() * 8).sum()
    }

    /// Give every copy back to the arena.
    fn clear(&self) {
        for (_, t) in self.0.borrow_mut().drain(..) {
            if let Ok(m) = std::rc::Rc::try_unwrap(t) {
                arena::give(m);
            }
        }
    }
}

impl TapeData {
    fn reset(&mut self, id: u32) {
        self.id = id;
        self.busy = false;
        self.scalars.clear();
        for &i in &self.foreign_mats {
            drop(std::mem::replace(
                &mut self.mats[i as usize],
                TapeMat::Owned(DMatrix::zeros(0, 0)),
            ));
        }
        for m in self.mats.drain(..) {
            if let TapeMat::Owned(m) = m {
                arena::give(m);
            }
        }
        self.const_mats.clear();
        self.foreign_mats.clear();
        self.ops.clear();
        self.second_order = false;
        self.curvature.clear();
        self.reverse_sweeps.set(0);
        self.transposes.clear();
    }
}

/// The per-thread stack of live tapes (innermost last) and a pool of recycled buffers.
#[derive(Default)]
struct Stack {
    live: Vec<TapeData>,
    next_id: u32,
    pool: Vec<TapeData>,
}

thread_local! {
    // `const` initialization: no lazy-init check on the access path of every recorded
    // scalar operation (see `push_node`).
    static STACK: RefCell<Stack> = const {
        RefCell::new(Stack { live: Vec::new(), next_id: 1, pool: Vec::new() })
    };
}

/// The scalar nodes of the innermost tape, held apart from the stack while that tape may
/// record, so that [`push_node`] (once per recorded scalar operation) touches one short
/// thread-local and nothing else. `id` 0 means "none held here": the innermost tape is in
/// a sweep, or no tape is active, and every tape's nodes are in its [`TapeData`].
struct Top {
    id: u32,
    nodes: Vec<ScalarNode>,
}

thread_local! {
    static TOP: RefCell<Top> = const { RefCell::new(Top { id: 0, nodes: Vec::new() }) };
}

/// Give the held nodes back to their tape's records (before the stack changes).
fn park(s: &mut Stack) {
    let _ = TOP.try_with(|c| {
        let mut c = c.borrow_mut();
        if c.id != 0 {
            let id = std::mem::replace(&mut c.id, 0);
            let nodes = std::mem::take(&mut c.nodes);
            if let Some(t) = s.live.iter_mut().rev().find(|t| t.id == id) {
                t.scalars = nodes;
            }
        }
    });
}

/// Hold the innermost tape's nodes apart again, unless it is in a sweep.
fn unpark(s: &mut Stack) {
    let _ = TOP.try_with(|c| {
        let mut c = c.borrow_mut();
        if let Some(t) = s
            .live
            .last_mut()
            .filter(|t| !t.busy && !t.second_order && c.id == 0)
        {
            c.nodes = std::mem::take(&mut t.scalars);
            c.id = t.id;
        }
    });
}

/// Explain why `id` is not the tape that may record now, as a panic message.
fn misuse_message(stack: &Stack, id: u32) -> String {
    let top = stack.live.last().map(|t| t.id);
    match top {
        None => format!(
            "ad-core: a variable of tape #{id} was used, but no tape is active: its `Tape` scope \
             has ended. Variables cannot outlive the `Tape` that created them."
        ),
        Some(top) if stack.live.iter().any(|t| t.id == id) => format!(
            "ad-core: a variable of tape #{id} (an outer scope) was used while the inner tape \
             #{top} is active. Pass outer values into an inner scope as constants (`.value()`) \
             or through a custom op."
        ),
        Some(top) => format!(
            "ad-core: a variable of tape #{id} was used, but that tape's scope has ended \
             (the active tape is #{top}). Variables cannot outlive the `Tape` that created them."
        ),
    }
}

/// Run `f` on the tape `id`, which must be the innermost active tape and not in a sweep.
#[inline]
pub(crate) fn with_tape<R>(id: u32, f: impl FnOnce(&mut TapeData) -> R) -> R {
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        park(&mut s);
        match s.live.last_mut() {
            Some(t) if t.id == id && !t.busy => {
                let r = f(t);
                unpark(&mut s);
                r
            }
            Some(t) if t.id == id => panic!(
                "ad-core: tape #{id} is in the middle of a gradient or tangent sweep; a custom \
                 op's rule must not record on the tape it belongs to (open a new `Tape` inside it)"
            ),
            _ => {
                let msg = misuse_message(&s, id);
                drop(s);
                panic!("{msg}")
            }
        }
    })
}

/// The id of the innermost active tape, if any.
pub(crate) fn active_id() -> Option<u32> {
    STACK.with(|s| s.borrow().live.last().map(|t| t.id))
}

/// Record one scalar node on tape `id`; returns its index. `curvature` gives the node's
/// second partials `[h00, h01, h11]`; it runs only on second-order tapes.
#[inline(always)]
pub(crate) fn push_scalar(
    id: u32,
    parents: [u32; 2],
    partials: [f64; 2],
    curvature: impl FnOnce() -> [f64; 3],
) -> u32 {
    push_node(
        id,
        parents[0],
        parents[1],
        partials[0],
        partials[1],
        curvature,
    )
}

/// The curvature of a scalar node with constant partials: none. A function item (zero
/// sized), not a function pointer, so the push path passes nothing for it.
#[inline(always)]
pub(crate) fn linear() -> [f64; 3] {
    [0.0; 3]
}

/// The body of [`push_scalar`], which runs once per recorded scalar operation.
///
/// The common case (`id` is the innermost tape, not in a sweep, not full, not second
/// order) touches only the nodes held in [`Top`]; everything else goes to the cold
/// [`push_scalar_slow`], which records curvature or panics with the explanation.
/// `try_with` (inlined, unlike `with`) and operands passed as separate scalars keep the
/// fast path short (see docs/benchmarks.md, "Scalar tape push").
#[inline(never)]
fn push_node(
    id: u32,
    p0: u32,
    p1: u32,
    d0: f64,
    d1: f64,
    curvature: impl FnOnce() -> [f64; 3],
) -> u32 {
    let pushed = TOP.try_with(|c| {
        let mut c = c.borrow_mut();
        let idx = c.nodes.len();
        if c.id != id || idx >= NONE as usize {
            return None;
        }
        c.nodes.push(ScalarNode {
            parents: [p0, p1],
            partials: [d0, d1],
        });
        Some(idx as u32)
    });
    match pushed {
        Ok(Some(idx)) => idx,
        _ => push_scalar_slow(id, [p0, p1], [d0, d1], curvature),
    }
}

/// The checked path of [`push_scalar`]: records curvature on second-order tapes, panics
/// with the misuse explanation otherwise.
#[cold]
#[inline(never)]
fn push_scalar_slow(
    id: u32,
    parents: [u32; 2],
    partials: [f64; 2],
    curvature: impl FnOnce() -> [f64; 3],
) -> u32 {
    with_tape(id, |t| {
        let idx = t.scalars.len() as u32;
        assert!(
            idx < NONE,
            "ad-core: tape #{id} is full (2^32 - 1 scalar nodes)"
        );
        t.scalars.push(ScalarNode { parents, partials });
        if t.second_order && parents[0] != NONE {
            let h = curvature();
            if h != [0.0; 3] {
                t.curvature.push((idx, h));
            }
        }
        idx
    })
}

/// Take the records of tape `id` out for a sweep (so custom rules may open nested tapes).
pub(crate) fn take_for_sweep(id: u32) -> TapeData {
    STACK.with(|s| {
        let mut s = s.borrow_mut();
        park(&mut s);
        match s.live.last_mut() {
            Some(t) if t.id == id && !t.busy => {
                let data = std::mem::take(t);
                t.id = id;
                t.busy = true;
                data
            }
            Some(t) if t.id == id => panic!("ad-core: tape #{id} is already in a sweep"),
            _ => {
                let msg = misuse_message(&s, id);
                drop(s);
                panic!("{msg} (a sweep must run on the innermost active tape)")
            }
        }
    })
}

/// Put the records back after a sweep.
pub(crate) fn restore_after_sweep(data: TapeData) {
    let _ = STACK.try_with(|s| {
        let mut s = s.borrow_mut();
        park(&mut s);
        let id = data.id;
        if let Some(t) = s.live.iter_mut().find(|t| t.id == id) {
            *t = data;
        }
        unpark(&mut s);
    });
}

/// An RAII recording scope: while it lives, operations on its variables are recorded.
///
/// Scopes nest: a `Tape` created while another is active becomes the innermost one, and the
/// outer tape's variables must not be used until the inner scope ends (using them panics
/// with a message naming both tapes). A `Tape` is tied to its thread (`!Send`).
///
/// ```
/// use ad_core::{Real, Tape};
/// let tape = Tape::new();
/// let x = tape.var(2.0);
/// let y = x * x.sin();
/// let g = tape.gradient(y).unwrap();
/// assert!((g.wrt(x) - (2.0f64.sin() + 2.0 * 2.0f64.cos())).abs() < 1e-15);
/// ```
#[derive(Debug)]
pub struct Tape {
    id: u32,
    _not_send: PhantomData<*const ()>,
}

impl Tape {
    /// Open a new innermost recording scope.
    pub fn new() -> Tape {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            let id = s.next_id;
            s.next_id = s
                .next_id
                .checked_add(1)
                .expect("ad-core: ran out of tape ids");
            let mut data = s.pool.pop().unwrap_or_default();
            data.reset(id);
            park(&mut s);
            s.live.push(data);
            unpark(&mut s);
            Tape {
                id,
                _not_send: PhantomData,
            }
        })
    }

    /// Open a new innermost scope that records what second-order sweeps need: the
    /// curvature of every scalar node (the matrix ops' rules know theirs). Recording on it
    /// takes the checked path, a little slower than [`Tape::new`].
    pub(crate) fn new_second_order() -> Tape {
        let tape = Tape::new();
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            park(&mut s);
            if let Some(t) = s.live.last_mut() {
                t.second_order = true;
            }
        });
        tape
    }

    /// This tape's id (shown in misuse messages).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Number of scalar nodes recorded so far.
    pub fn scalar_len(&self) -> usize {
        with_tape(self.id, |t| t.scalars.len())
    }

    /// Number of matrix (and custom) operations recorded so far.
    pub fn op_len(&self) -> usize {
        with_tape(self.id, |t| t.ops.len())
    }

    /// Bytes of idle matrix buffers this thread keeps for reuse by later recordings.
    ///
    /// Matrices allocated while recording (op values, the drivers' parameter copies) and
    /// the adjoints of a reverse sweep come from a per-thread arena and go back to it when
    /// their `Tape` or `Gradients` drop, so repeated computations of the same shapes do
    /// not allocate. The arena keeps at most 64 MiB idle per thread;
    /// [`Tape::release_idle_buffers`] frees it.
    pub fn idle_buffer_bytes() -> usize {
        arena::idle_bytes()
    }

    /// Free this thread's idle matrix buffers (see [`Tape::idle_buffer_bytes`]).
    pub fn release_idle_buffers() {
        arena::release_idle()
    }

    /// Bytes held by the tape's records (values and nodes), for memory reports; with the
    /// transposed copies a replayed tape keeps for its products (see [`Tape::backward`]).
    pub fn recorded_bytes(&self) -> usize {
        with_tape(self.id, |t| {
            t.scalars.len() * std::mem::size_of::<ScalarNode>()
                + t.mats.iter().map(TapeMat::held_bytes).sum::<usize>()
                + t.ops.len() * std::mem::size_of::<OpEntry>()
                + t.transposes.held_bytes()
        })
    }
}

impl Default for Tape {
    fn default() -> Self {
        Tape::new()
    }
}

impl Drop for Tape {
    fn drop(&mut self) {
        let _ = STACK.try_with(|s| {
            let mut s = s.borrow_mut();
            park(&mut s);
            if let Some(pos) = s.live.iter().rposition(|t| t.id == self.id) {
                let mut data = s.live.remove(pos);
                data.reset(0);
                if s.pool.len() < 8 {
                    s.pool.push(data);
                }
            }
            unpark(&mut s);
        });
    }
}
