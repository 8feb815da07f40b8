//! Shared data are not copied: recording a constant entered with `MatOps::shared` and
//! sweeping over it allocate far less than one copy of it. Measured with a counting global
//! allocator. The binary has no test harness (`harness = false` in Cargo.toml): libtest's
//! main thread does its bookkeeping while a test starts, and under load those allocations
//! fell inside a measured region (a warm sweep's 332 bytes counted as 4,220 for ten).
//! `main` runs the one check; the process fails if it panics.

use std::alloc::System;
use std::sync::Arc;

use ad_core::{DualMat, MatOps, Real, Seeds, Tape};
use nalgebra::DMatrix;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated while running `f`.
fn allocated_by<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let region = Region::new(GLOBAL);
    let r = f();
    (r, region.change().bytes_allocated)
}

/// Recording a shared constant and sweeping over it (reverse and forward) allocates far
/// less than one copy of it: only the products with the small weights.
fn main() {
    neither_recording_nor_sweeps_copy_shared_data();
    println!("shared_data_alloc: ok");
}

fn neither_recording_nor_sweeps_copy_shared_data() {
    let data = Arc::new(DMatrix::from_fn(400, 300, |i, j| {
        ((i + 2 * j) % 7) as f64 - 3.0
    }));
    let copy_bytes = data.len() * 8;
    let w0 = DMatrix::from_element(300, 2, 0.01);
    let tape = Tape::new();
    let w = tape.mat_var(w0.clone());
    let (loss, rec) = allocated_by(|| {
        let x = w.shared(&data);
        x.matmul(&w).tanh().sq_norm()
    });
    let (g, rev) = allocated_by(|| tape.gradient(loss).unwrap());
    let (t, fwd) = allocated_by(|| {
        tape.forward(&Seeds::new().mat(&w, DMatrix::from_element(300, 2, 1.0)))
            .unwrap()
    });
    // the products X W and their adjoints are 400 x 2; a copy of X is 400 x 300
    for (what, bytes) in [
        ("recording", rec),
        ("reverse sweep", rev),
        ("forward sweep", fwd),
    ] {
        assert!(
            bytes < copy_bytes / 10,
            "{what} allocated {bytes} bytes; one copy of the data is {copy_bytes}"
        );
    }
    // and the sweeps are right: <gradient, dW> equals the forward tangent
    let dir = DMatrix::from_element(300, 2, 1.0);
    let lhs = g.wrt_mat(&w).dot(&dir);
    assert!((lhs - t.of(loss)).abs() <= 1e-10 * lhs.abs().max(1.0));
    assert_eq!(t.of_all(&[loss, loss]), vec![t.of(loss); 2]);
    drop((g, t));

    // Gradients hand their matrices back to the tape's arena when dropped, so a sweep on
    // a warm recording allocates only its small bookkeeping, less than one of its adjoint
    // matrices (the smallest, W's, is 300 x 2), and the same amount every time.
    let sweep = || drop(tape.gradient(loss).unwrap());
    sweep();
    let ((), one) = allocated_by(sweep);
    let ((), ten) = allocated_by(|| (0..10).for_each(|_| sweep()));
    assert!(one < 300 * 2 * 8, "a warm sweep allocated {one} bytes");
    assert_eq!(ten, 10 * one, "ten sweeps allocated {ten} bytes, one {one}");
    drop(tape);

    // Dropped tapes keep their storage in a per-thread pool for the next tape: a warm
    // cycle of recording 500 scalar operations allocates less than their nodes' storage.
    let cycle = || {
        let t = Tape::new();
        let mut x = t.var(0.5);
        for _ in 0..500 {
            x = x * 1.000_001 + 0.25;
        }
        x.value()
    };
    cycle();
    let (_, warm) = allocated_by(cycle);
    assert!(warm < 500 * 16, "a warm tape cycle allocated {warm} bytes");

    // Matrix buffers go back to the arena when their tape drops, counted at 8 bytes an
    // entry, and are reused (here 16 x 16 ones).
    let matrix_cycle = || {
        let t = Tape::new();
        let x = t.mat_var(DMatrix::from_element(16, 16, 0.1));
        let g = t.gradient(x.tanh().sum()).unwrap().wrt_mat(&x);
        g[(0, 0)]
    };
    matrix_cycle();
    assert!(
        Tape::idle_buffer_bytes() > 0,
        "a finished tape's buffers are kept idle"
    );
    Tape::release_idle_buffers();
    let before = Tape::idle_buffer_bytes();
    assert_eq!(before, 0, "release_idle_buffers frees every idle buffer");
    matrix_cycle();
    let pooled = Tape::idle_buffer_bytes() - before;
    assert!(
        pooled >= 256 * 8 && pooled.is_multiple_of(256 * 8),
        "{pooled} bytes pooled"
    );
    // Taking a buffer and giving it back balance: repeated cycles keep the idle bytes
    // where the first left them.
    let idle = Tape::idle_buffer_bytes();
    for _ in 0..5 {
        matrix_cycle();
    }
    assert_eq!(
        Tape::idle_buffer_bytes(),
        idle,
        "idle bytes drift over repeated cycles"
    );
    // The arena keeps at most 64 MiB idle per thread: a tape that made seven 8 MiB values
    // (1024 x 1024), then a 4 MiB one, then another 8 MiB one gives back the first eight
    // (60 MiB) and frees the last, which would not fit.
    Tape::release_idle_buffers();
    {
        let t = Tape::new();
        let x = t.mat_var(DMatrix::from_element(1024, 1024, 0.5));
        let mut y = x.scale_f64(0.5);
        for _ in 0..6 {
            y = y.scale_f64(0.5);
        }
        let _half = y.columns(0, 512);
        let _last = y.scale_f64(0.5);
    }
    assert_eq!(Tape::idle_buffer_bytes(), 60 << 20);
    Tape::release_idle_buffers();
    matrix_cycle();
    // and a buffer in use is not idle: a live tape's value of tanh(x) is one of them
    {
        let t = Tape::new();
        let x = t.mat_var(DMatrix::from_element(16, 16, 0.1));
        let before_tanh = Tape::idle_buffer_bytes();
        let _y = x.tanh();
        assert_eq!(Tape::idle_buffer_bytes(), before_tanh - 256 * 8);
    }
    // The caller's input matrix and the gradient handed out are two fresh 16 x 16 buffers;
    // the tape's own (its copy of x, tanh's value, the adjoints) all come from the arena.
    let (_, warm) = allocated_by(matrix_cycle);
    assert!(
        warm < 3 * 256 * 8,
        "a warm 16 x 16 cycle allocated {warm} bytes"
    );

    // second order (a Hessian-vector product): the data's tangent is a known zero that is
    // never materialized, so neither recording nor the reverse sweep copies or zero-fills
    // anything of the data's size
    let tape = Tape::new();
    let w = DualMat::new(tape.mat_var(w0.clone()), tape.constant_mat(dir.clone()));
    let (y, rec2) = allocated_by(|| {
        let x = w.shared(&data);
        x.matmul(&w).tanh().sq_norm()
    });
    let (hv, rev2) = allocated_by(|| tape.gradient(y.eps).unwrap().wrt_mat(&w.re));
    for (what, bytes) in [
        ("second-order recording", rec2),
        ("its reverse sweep", rev2),
    ] {
        assert!(
            bytes < copy_bytes / 10,
            "{what} allocated {bytes} bytes; one copy of the data is {copy_bytes}"
        );
    }
    assert!(hv.iter().all(|v| v.is_finite()) && hv.norm() > 0.0);
    drop(tape);

    // A dense Hessian by one batched second-order sweep (W2's shape: 500 x 50 data, 50
    // tangent columns) allocates, once warm, less than one of its 500 x 50 tangent blocks.
    // Its tangents and adjoint tangents come from the arena and go back to it: blocks of
    // 200 KB taken from the system allocator instead would sit above glibc's mmap threshold
    // and fault their pages in on every sweep (measured: 2.3x slower).
    let x = Arc::new(DMatrix::from_fn(500, 50, |i, j| {
        (((i * 7 + j * 13) % 11) as f64 - 5.0) * 0.1
    }));
    let rec = ad_core::HessianRecording::new(&[DMatrix::from_element(50, 1, 0.01)], |b| {
        b[0].shared(&x).matmul(&b[0]).softplus().sum()
    })
    .unwrap();
    let eye = DMatrix::identity(50, 50);
    let hessian = || rec.hvp_batch(&[Some(&eye)]).unwrap().swap_remove(0);
    let h = hessian();
    let (h2, warm) = allocated_by(hessian);
    assert_eq!(h, h2);
    assert!(
        warm < 500 * 50 * 8,
        "a warm batched Hessian sweep allocated {warm} bytes; a tangent block is {}",
        500 * 50 * 8
    );
}
