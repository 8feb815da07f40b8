//! Reverse (adjoint) and forward (tangent) sweeps over a recorded tape.

use nalgebra::DMatrix;

use crate::error::AdError;
use crate::matrix::MatVar;
use crate::tape::{
    MatSlots, NONE, ScalarNode, Tape, TapeData, arena, restore_after_sweep, take_for_sweep,
};
use crate::var::Var;

/// Seeds for a sweep: cotangents on outputs (reverse) or tangents on inputs (forward).
///
/// ```
/// use ad_core::{Seeds, Tape};
/// let tape = Tape::new();
/// let (x, y) = (tape.var(1.0), tape.var(2.0));
/// let (u, v) = (x * y, x + y);
/// // VJP with cotangent (1, 3) on the outputs (u, v)
/// let g = tape.backward(&Seeds::new().var(u, 1.0).var(v, 3.0)).unwrap();
/// assert_eq!((g.wrt(x), g.wrt(y)), (2.0 + 3.0, 1.0 + 3.0));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Seeds {
    scalars: Vec<(Var, f64)>,
    mats: Vec<(MatVar, DMatrix<f64>)>,
}

impl Seeds {
    /// No seeds yet.
    pub fn new() -> Seeds {
        Seeds::default()
    }
    /// Seed a scalar variable (constants are ignored).
    pub fn var(mut self, x: Var, d: f64) -> Seeds {
        self.scalars.push((x, d));
        self
    }
    /// Seed several scalar variables.
    pub fn vars(mut self, xs: &[Var], ds: &[f64]) -> Seeds {
        assert_eq!(
            xs.len(),
            ds.len(),
            "ad-core: Seeds::vars: {} variables but {} seeds",
            xs.len(),
            ds.len()
        );
        self.scalars
            .extend(xs.iter().copied().zip(ds.iter().copied()));
        self
    }
    /// Seed a matrix variable (constant matrices are ignored); panics if the shapes differ.
    pub fn mat(mut self, m: &MatVar, d: DMatrix<f64>) -> Seeds {
        crate::matrix::assert_same_shape("Seeds::mat", crate::MatOps::shape(m), d.shape());
        self.mats.push((*m, d));
        self
    }

    fn check_tape(&self, tape: u32) {
        let ids = self
            .scalars
            .iter()
            .filter(|(x, _)| !x.is_constant())
            .map(|(x, _)| x.tape_id())
            .chain(self.mats.iter().map(|(m, _)| m.tape_id()));
        for id in ids {
            assert!(
                id == tape,
                "ad-core: a seed belongs to tape #{id}, but the sweep runs on tape #{tape}"
            );
        }
    }

    fn apply(&self, s: &mut [f64], m: &mut MatSlots) {
        for (x, d) in &self.scalars {
            if !x.is_constant() {
                s[x.index() as usize] += d;
            }
        }
        for (mv, d) in &self.mats {
            crate::matrix::linalg::accumulate(&mut m[mv.index() as usize], d);
        }
    }
}

/// Adjoints of every variable on a tape after a reverse sweep.
///
/// The matrix adjoints of a reverse sweep live in buffers of the tape's per-thread arena
/// and return to it when the `Gradients` drop (see [`Tape::idle_buffer_bytes`]).
#[derive(Debug)]
pub struct Gradients {
    tape: u32,
    scalars: Vec<f64>,
    mats: MatSlots,
    shapes: Vec<(usize, usize)>,
    /// Whether the matrix slots came from the arena (reverse sweeps) and go back to it.
    pooled: bool,
}

impl Clone for Gradients {
    fn clone(&self) -> Self {
        Gradients {
            tape: self.tape,
            scalars: self.scalars.clone(),
            mats: self.mats.clone(),
            shapes: self.shapes.clone(),
            pooled: false,
        }
    }
}

impl Drop for Gradients {
    fn drop(&mut self) {
        if self.pooled {
            for m in self.mats.drain(..).flatten() {
                arena::give(m);
            }
        }
    }
}

/// Tangents of every variable on a tape after a forward sweep.
#[derive(Clone, Debug)]
pub struct Tangents {
    inner: Gradients,
}

impl Gradients {
    #[track_caller]
    fn check(&self, tape: u32) {
        assert!(
            tape == self.tape,
            "ad-core: asked for the derivative of a variable of tape #{tape} from a sweep of tape #{}",
            self.tape
        );
    }
    /// The adjoint of a scalar variable (0 for constants).
    #[track_caller]
    pub fn wrt(&self, x: Var) -> f64 {
        if x.is_constant() {
            return 0.0;
        }
        self.check(x.tape_id());
        self.scalars[x.index() as usize]
    }
    /// The adjoints of several scalar variables.
    #[track_caller]
    pub fn wrt_all(&self, xs: &[Var]) -> Vec<f64> {
        xs.iter().map(|&x| self.wrt(x)).collect()
    }
    /// The adjoint of a matrix variable (zeros if it did not influence the output).
    #[track_caller]
    pub fn wrt_mat(&self, m: &MatVar) -> DMatrix<f64> {
        self.check(m.tape_id());
        let i = m.index() as usize;
        self.mats[i].clone().unwrap_or_else(|| {
            let (r, c) = self.shapes[i];
            DMatrix::zeros(r, c)
        })
    }
    /// The adjoint of a matrix variable by reference, `None` where it is zero (it did not
    /// influence the output).
    #[track_caller]
    pub(crate) fn wrt_mat_ref(&self, m: &MatVar) -> Option<&DMatrix<f64>> {
        self.check(m.tape_id());
        self.mats[m.index() as usize].as_ref()
    }
    /// Like [`Gradients::wrt_mat`], but moves the adjoint out (no copy); a second call for
    /// the same variable reads zeros. For products replayed many times (a Krylov solve's
    /// VJPs), where the copy is a measurable part of each product.
    #[track_caller]
    pub fn take_mat(&mut self, m: &MatVar) -> DMatrix<f64> {
        self.check(m.tape_id());
        let i = m.index() as usize;
        self.mats[i].take().unwrap_or_else(|| {
            let (r, c) = self.shapes[i];
            DMatrix::zeros(r, c)
        })
    }
}

impl Tangents {
    /// The tangent of a scalar variable.
    #[track_caller]
    pub fn of(&self, x: Var) -> f64 {
        self.inner.wrt(x)
    }
    /// The tangents of several scalar variables.
    #[track_caller]
    pub fn of_all(&self, xs: &[Var]) -> Vec<f64> {
        self.inner.wrt_all(xs)
    }
    /// The tangent of a matrix variable.
    #[track_caller]
    pub fn of_mat(&self, m: &MatVar) -> DMatrix<f64> {
        self.inner.wrt_mat(m)
    }
    /// Like [`Tangents::of_mat`], but moves the tangent out (no copy); a second call for
    /// the same variable reads zeros.
    #[track_caller]
    pub fn take_mat(&mut self, m: &MatVar) -> DMatrix<f64> {
        self.inner.take_mat(m)
    }
}

/// Propagate adjoints through the scalar nodes `lo..hi`, newest first.
#[inline]
fn reverse_scalars(nodes: &[ScalarNode], adj: &mut [f64], lo: usize, hi: usize) {
    for i in (lo..hi).rev() {
        let a = adj[i];
        if a == 0.0 {
            continue;
        }
        let n = nodes[i];
        if n.parents[0] != NONE {
            adj[n.parents[0] as usize] += a * n.partials[0];
            if n.parents[1] != NONE {
                adj[n.parents[1] as usize] += a * n.partials[1];
            }
        }
    }
}

/// Propagate tangents through the scalar nodes `lo..hi`, oldest first (leaves keep theirs).
#[inline]
fn forward_scalars(nodes: &[ScalarNode], tan: &mut [f64], lo: usize, hi: usize) {
    for i in lo..hi {
        let n = nodes[i];
        if n.parents[0] != NONE {
            let mut t = n.partials[0] * tan[n.parents[0] as usize];
            if n.parents[1] != NONE {
                t += n.partials[1] * tan[n.parents[1] as usize];
            }
            tan[i] = t;
        }
    }
}

/// Which tape matrices may depend on a variable: all but the constants and the results of
/// matrix ops on constants only. Reverse rules propagate no adjoint into the others.
pub(crate) fn needs_adjoint(data: &TapeData) -> Vec<bool> {
    let mut needs = vec![true; data.mats.len()];
    for &c in &data.const_mats {
        needs[c as usize] = false;
    }
    for entry in &data.ops {
        entry.op.propagate_needs(&mut needs);
    }
    needs
}

/// Returns a tape's records to the thread-local stack when dropped.
struct RestoreOnDrop(Option<TapeData>);

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        if let Some(data) = self.0.take() {
            restore_after_sweep(data);
        }
    }
}

/// Scalar and matrix adjoints (or tangents) of every tape variable.
type Slots = (Vec<f64>, MatSlots);
/// A sweep over a tape's records.
type SweepFn = fn(&TapeData, &Seeds) -> Result<Slots, AdError>;

pub(crate) fn reverse(data: &TapeData, seeds: &Seeds) -> Result<(Vec<f64>, MatSlots), AdError> {
    let mut sadj = vec![0.0; data.scalars.len()];
    let mut madj: MatSlots = vec![None; data.mats.len()];
    let needs = needs_adjoint(data);
    seeds.apply(&mut sadj, &mut madj);
    // From the second reverse sweep over the same records on, products keep the
    // transposed operands they read (see `TransposeCache`).
    let sweeps = data.reverse_sweeps.get();
    data.reverse_sweeps.set(sweeps.saturating_add(1));
    let transposes = (sweeps > 0).then_some(&data.transposes);
    let mut hi = data.scalars.len();
    for entry in data.ops.iter().rev() {
        let mark = entry.scalar_mark as usize;
        reverse_scalars(&data.scalars, &mut sadj, mark, hi);
        hi = mark;
        entry
            .op
            .backward(&data.mats, &mut sadj, &mut madj, &needs, transposes)?;
    }
    reverse_scalars(&data.scalars, &mut sadj, 0, hi);
    Ok((sadj, madj))
}

fn forward(data: &TapeData, seeds: &Seeds) -> Result<(Vec<f64>, MatSlots), AdError> {
    let mut stan = vec![0.0; data.scalars.len()];
    let mut mtan: MatSlots = vec![None; data.mats.len()];
    seeds.apply(&mut stan, &mut mtan);
    // A constant has no tangent, as it has no adjoint: seeds on constant matrices are
    // ignored (like seeds on constant `Var`s), so the two sweeps stay adjoint.
    for &c in &data.const_mats {
        mtan[c as usize] = None;
    }
    let mut lo = 0;
    for entry in &data.ops {
        let mark = entry.scalar_mark as usize;
        forward_scalars(&data.scalars, &mut stan, lo, mark);
        lo = mark;
        entry.op.forward(&data.mats, &mut stan, &mut mtan)?;
    }
    forward_scalars(&data.scalars, &mut stan, lo, data.scalars.len());
    Ok((stan, mtan))
}

impl Tape {
    /// Run `sweep` on this tape's records with the borrow released, so custom rules may
    /// open nested tapes.
    fn sweep(&self, seeds: &Seeds, sweep: SweepFn, pooled: bool) -> Result<Gradients, AdError> {
        seeds.check_tape(self.id());
        // The guard puts the records back even if a custom rule panics mid-sweep, so a
        // caught panic does not leave the tape unusable.
        let guard = RestoreOnDrop(Some(take_for_sweep(self.id())));
        let data = guard.0.as_ref().expect("records present until drop");
        let result = sweep(data, seeds);
        let shapes = data.mats.iter().map(|m| m.shape()).collect();
        drop(guard);
        let (scalars, mats) = result?;
        Ok(Gradients {
            tape: self.id(),
            scalars,
            mats,
            shapes,
            pooled,
        })
    }

    /// Run `f` on this tape's records, taken out for the duration (the tape must be the
    /// innermost scope; nested tapes may be opened inside `f`).
    pub(crate) fn with_records<R>(&self, f: impl FnOnce(&TapeData) -> R) -> R {
        let guard = RestoreOnDrop(Some(take_for_sweep(self.id())));
        let data = guard.0.as_ref().expect("records present until drop");
        f(data)
    }

    /// Reverse sweep from a scalar output: the gradient of `y` with respect to every
    /// variable of this tape. The tape is kept, so it can be swept again.
    pub fn gradient(&self, y: Var) -> Result<Gradients, AdError> {
        self.backward(&Seeds::new().var(y, 1.0))
    }

    /// Reverse sweep with cotangent seeds on any outputs (a vector-Jacobian product).
    ///
    /// The records stay, so the tape can be swept again with other seeds (the VJPs of a
    /// Krylov solve on one recording). From the second reverse sweep on, the tape keeps
    /// the transposed copies its products read (one per product operand the product kernel
    /// transposes, counted by [`Tape::recorded_bytes`]) instead of copying them again on
    /// every sweep; a tape swept once holds none.
    pub fn backward(&self, seeds: &Seeds) -> Result<Gradients, AdError> {
        self.sweep(seeds, reverse, true)
    }

    /// Forward sweep with tangent seeds on independent variables (a Jacobian-vector
    /// product through everything recorded, custom ops included).
    pub fn forward(&self, seeds: &Seeds) -> Result<Tangents, AdError> {
        Ok(Tangents {
            inner: self.sweep(seeds, forward, false)?,
        })
    }
}
