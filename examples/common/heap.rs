//! The counting global allocator of the examples' peak-heap tables. It counts only while a
//! measurement runs ([`Heap::peak_of`]); otherwise an allocation costs one relaxed load more
//! than the system allocator's, so the timings an example prints beside its memory table
//! are not taxed. (`peak_alloc`, used before, counts every allocation with two atomic
//! read-modify-writes: W5's MAML meta-gradient, ~4,500 allocations, ran 5-7% slower under
//! it, measured alternating on one pinned core; see docs/benchmarks.md.)
//!
//! ```ignore
//! #[path = "common/heap.rs"]
//! mod heap;
//! #[global_allocator]
//! static HEAP: heap::Heap = heap::Heap::new();
//! let (peak_bytes, result) = HEAP.peak_of(|| work());
//! ```

// A global allocator cannot be written without `unsafe`: the one exception to the
// workspace's rule, in examples only (every library crate forbids unsafe code).
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// The system allocator, counting live bytes and their peak while armed.
pub struct Heap {
    armed: AtomicBool,
    /// Bytes allocated minus bytes freed since arming (negative when `f` frees memory that
    /// was live before it started).
    current: AtomicIsize,
    /// The largest `current` since arming.
    peak: AtomicIsize,
}

impl Heap {
    /// An unarmed counter.
    pub const fn new() -> Heap {
        Heap {
            armed: AtomicBool::new(false),
            current: AtomicIsize::new(0),
            peak: AtomicIsize::new(0),
        }
    }

    /// Run `f` and return the peak of the heap bytes it held above the level at its start
    /// (allocations of every thread count), with its result. Not reentrant.
    pub fn peak_of<R>(&self, f: impl FnOnce() -> R) -> (usize, R) {
        self.current.store(0, Ordering::SeqCst);
        self.peak.store(0, Ordering::SeqCst);
        self.armed.store(true, Ordering::SeqCst);
        let r = f();
        self.armed.store(false, Ordering::SeqCst);
        (self.peak.load(Ordering::SeqCst).max(0) as usize, r)
    }

    #[inline]
    fn count(&self, bytes: isize) {
        if self.armed.load(Ordering::Relaxed) {
            let now = self.current.fetch_add(bytes, Ordering::Relaxed) + bytes;
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe sizes.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is passed on to `System`.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator with this layout.
        unsafe { System.dealloc(ptr, layout) };
        self.count(-(layout.size() as isize));
    }

    /// Counted as a move (the new block first, then the old one freed): a reallocation
    /// that moves holds both blocks for a moment, and one in place is counted as if it had
    /// moved, so the peak is never under-reported (the figures `peak_alloc` gave, whose
    /// `realloc` always moves).
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is valid by the caller's contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.count(new_size as isize);
            self.count(-(layout.size() as isize));
        }
        p
    }
}
