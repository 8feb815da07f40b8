//! A thread-local, size-keyed arena of `f64` buffers for the tape's matrices.
//!
//! Every matrix a recording allocates (op output values, leaf copies made by the drivers,
//! adjoint slots and temporaries of the reverse sweep) is taken from here, and every one
//! comes back when its owner drops: a [`Tape`](super::Tape) returns its values, a reverse
//! sweep's [`Gradients`](super::Gradients) its adjoints. A repeated computation of the same
//! shapes (a training loop, a solver iteration, a benchmark) therefore reuses the same
//! buffers instead of going through `malloc`/`free`, which for large matrices means `mmap`,
//! page faults and returning memory to the OS on every call (see `docs/benchmarks.md`).
//!
//! Buffers are keyed by their exact length (a `128 x 256` and a `256 x 128` matrix share a
//! key); a buffer handed out keeps its old contents unless zeros were asked for.
//!
//! Bounds: every non-empty buffer is pooled, small ones too (`MIN_LEN` is 1: pooling
//! buffers under 256 entries as well made W5's MAML meta-gradient, ~150 small matrices a
//! task, 7.5% faster and left W1, W2 and W3 unchanged; see `docs/benchmarks.md`), and at most [`MAX_IDLE_BYTES`] bytes are kept idle per thread: a buffer given
//! back while the arena holds that much is freed. A one-off huge tape thus pins at most
//! that much after it drops, and [`release_idle`] frees everything idle on this thread.
//! Matrices supplied by the user (`Tape::mat_var`, `Tape::constant_mat`, custom op outputs)
//! are never taken into the arena: only buffers that the arena handed out come back to it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use nalgebra::DMatrix;

/// Buffers shorter than this (in entries) are left to the system allocator: only empty ones.
pub(crate) const MIN_LEN: usize = 1;
/// Most bytes of idle buffers kept per thread (64 MiB).
pub(crate) const MAX_IDLE_BYTES: usize = 64 << 20;

/// Whether buffers handed out for overwriting are filled with NaN first (see
/// [`crate::testing::poison_buffers`]); on by default in builds with debug assertions.
static POISON: AtomicBool = AtomicBool::new(cfg!(debug_assertions));

/// Turn poisoning of buffers to be overwritten on or off (all threads).
pub(crate) fn set_poison(on: bool) {
    POISON.store(on, Ordering::Relaxed);
}

/// Whether buffers to be overwritten are poisoned.
#[inline]
pub(crate) fn poisoned() -> bool {
    POISON.load(Ordering::Relaxed)
}

/// A fresh `rows x cols` matrix to be overwritten: NaN when poisoning, else zeros.
#[inline]
pub(crate) fn fresh(rows: usize, cols: usize) -> DMatrix<f64> {
    if poisoned() {
        DMatrix::from_element(rows, cols, f64::NAN)
    } else {
        DMatrix::zeros(rows, cols)
    }
}

#[derive(Default)]
struct Arena {
    /// Idle buffers by length; every buffer's `len()` equals its key.
    free: BTreeMap<usize, Vec<Vec<f64>>>,
    /// Bytes held by `free`.
    idle_bytes: usize,
}

thread_local! {
    static ARENA: RefCell<Arena> = const {
        RefCell::new(Arena { free: BTreeMap::new(), idle_bytes: 0 })
    };
}

/// An idle buffer of exactly `n` entries, if the arena holds one.
fn pop(n: usize) -> Option<Vec<f64>> {
    if n < MIN_LEN {
        return None;
    }
    ARENA
        .try_with(|a| {
            let mut a = a.borrow_mut();
            let v = a.free.get_mut(&n)?.pop()?;
            a.idle_bytes -= n * 8;
            Some(v)
        })
        .ok()
        .flatten()
}

/// A `rows x cols` matrix with arbitrary (finite or not) contents, to be overwritten;
/// all NaN when poisoning is on, so an entry a kernel leaves unwritten shows.
pub(crate) fn take(rows: usize, cols: usize) -> DMatrix<f64> {
    match pop(rows * cols) {
        Some(mut v) => {
            if poisoned() {
                v.fill(f64::NAN);
            }
            DMatrix::from_vec(rows, cols, v)
        }
        None => fresh(rows, cols),
    }
}

/// A `rows x cols` matrix of zeros.
pub(crate) fn take_zeroed(rows: usize, cols: usize) -> DMatrix<f64> {
    match pop(rows * cols) {
        Some(mut v) => {
            v.fill(0.0);
            DMatrix::from_vec(rows, cols, v)
        }
        None => DMatrix::zeros(rows, cols),
    }
}

/// A copy of `m` in an arena buffer.
pub(crate) fn copy_of(m: &DMatrix<f64>) -> DMatrix<f64> {
    let (r, c) = m.shape();
    copy_of_slice(r, c, m.as_slice())
}

/// A `rows x cols` matrix holding a copy of the column-major `xs`, in an arena buffer.
pub(crate) fn copy_of_slice(rows: usize, cols: usize, xs: &[f64]) -> DMatrix<f64> {
    match pop(rows * cols) {
        Some(mut v) => {
            v.copy_from_slice(xs);
            DMatrix::from_vec(rows, cols, v)
        }
        None => DMatrix::from_column_slice(rows, cols, xs),
    }
}

/// Give a matrix's buffer back (freed instead if it is small or the arena is full).
pub(crate) fn give(m: DMatrix<f64>) {
    let v: Vec<f64> = m.data.into();
    let n = v.len();
    if n < MIN_LEN || v.capacity() != n {
        return;
    }
    let _ = ARENA.try_with(|a| {
        let mut a = a.borrow_mut();
        if a.idle_bytes + n * 8 <= MAX_IDLE_BYTES {
            a.idle_bytes += n * 8;
            a.free.entry(n).or_default().push(v);
        }
    });
}

/// Free every idle buffer of this thread's arena.
pub(crate) fn release_idle() {
    let _ = ARENA.try_with(|a| {
        let mut a = a.borrow_mut();
        a.free.clear();
        a.idle_bytes = 0;
    });
}

/// Bytes of idle buffers held by this thread's arena.
pub(crate) fn idle_bytes() -> usize {
    ARENA.try_with(|a| a.borrow().idle_bytes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_by_length_zeroed_on_request_and_poisoned() {
        // Unit tests only ever turn poisoning on (the switch is global).
        set_poison(true);
        release_idle();
        let mut m = take_zeroed(16, 32);
        assert!(m.iter().all(|&x| x == 0.0));
        m.fill(3.0);
        let ptr = m.as_ptr();
        give(m);
        assert_eq!(idle_bytes(), 16 * 32 * 8);
        // Same length, other shape: the same buffer, its old contents replaced by NaN.
        let t = take(32, 16);
        assert_eq!((t.shape(), t.as_ptr()), ((32, 16), ptr));
        assert!(t.iter().all(|x| x.is_nan()));
        // small (unpooled) buffers are poisoned too
        assert!(take(2, 3).iter().all(|x| x.is_nan()));
        assert_eq!(idle_bytes(), 0);
        give(t);
        let z = take_zeroed(512, 1);
        assert!(z.iter().all(|&x| x == 0.0));
        let c = copy_of(&DMatrix::from_element(8, 64, 1.5));
        assert!(c.iter().all(|&x| x == 1.5));
        give(z);
        give(c);
        release_idle();
        assert_eq!(idle_bytes(), 0);
    }

    #[test]
    fn small_buffers_are_not_pooled_and_idle_bytes_are_bounded() {
        release_idle();
        give(DMatrix::zeros(MIN_LEN - 1, 1));
        assert_eq!(idle_bytes(), 0);
        // 1 MiB buffers: the arena keeps at most MAX_IDLE_BYTES of them.
        let n = (1 << 20) / 8;
        for _ in 0..(MAX_IDLE_BYTES / (1 << 20)) + 8 {
            give(DMatrix::zeros(n, 1));
        }
        assert_eq!(idle_bytes(), MAX_IDLE_BYTES);
        release_idle();
        assert_eq!(idle_bytes(), 0);
    }
}
