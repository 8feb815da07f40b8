//! Training memory does not depend on the forward iteration count: the peak heap of one
//! step (forward solve + implicit backward through `tape.gradient`) stays within 1.1x
//! from 10 to 100 forward iterations, while the same map unrolled on the tape grows about
//! linearly. Measured with a peak-tracking global allocator (one test in this binary, so
//! little else allocates meanwhile).

use ad_core::{MatOps, MatVar, Tape};
use deq::solvers::{Method, SolverOptions};
use deq::{DeqLayer, DeqOptions, EquilibriumMap, TanhLayer};
use implicit::IftOptions;
use nalgebra::DMatrix;
use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

fn peak_of(f: impl FnOnce()) -> usize {
    Tape::release_idle_buffers();
    HEAP.reset_peak_usage();
    let base = HEAP.current_usage();
    f();
    HEAP.peak_usage().saturating_sub(base)
}

#[test]
fn backward_memory_is_independent_of_forward_iterations() {
    let (d, p, b) = (32, 8, 64);
    let theta = vec![
        // 0.95 I plus a small coupling: a slow contraction (Picard needs hundreds of steps).
        DMatrix::from_fn(d, d, |i, j| {
            0.95 * f64::from(u8::from(i == j)) + 0.002 * ((i * d + j) as f64 * 0.61).sin()
        }),
        DMatrix::from_fn(d, p, |i, j| ((i + 3 * j) as f64 * 0.3).cos()),
        DMatrix::from_fn(d, 1, |i, _| 0.05 * i as f64),
    ];
    let x = DMatrix::from_fn(p, b, |i, j| ((i * b + j) as f64 * 0.17).sin());
    let map = TanhLayer::default();
    // The residual Picard reaches at each iteration, to make it stop at exactly N.
    let trace = DeqLayer::new(map)
        .with_options(
            DeqOptions::default().solver(
                SolverOptions::default()
                    .method(Method::picard())
                    .tol(1e-13)
                    .max_iters(3000)
                    .stall_window(0),
            ),
        )
        .solve(&x, &theta)
        .unwrap()
        .stats
        .residual_trace;
    assert!(trace.len() > 100);
    let step = |n: usize| {
        let opts = DeqOptions::default()
            .solver(
                SolverOptions::default()
                    .method(Method::picard())
                    .tol(trace[n - 1] * (1.0 + 1e-9)),
            )
            .ift(
                IftOptions::default()
                    .residual_tol(1.0)
                    .estimate_error(false),
            );
        let layer = DeqLayer::new(map).with_options(opts);
        let mut iterations = 0;
        let peak = peak_of(|| {
            let tape = Tape::new();
            let v: Vec<MatVar> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
            let out = layer.forward_data(&x, &v).unwrap();
            iterations = out.stats.iterations;
            let g = tape.gradient(out.z.square().mean()).unwrap();
            assert!(g.wrt_mat(&v[0]).norm() > 0.0);
        });
        (peak, iterations)
    };
    let unrolled = |n: usize| {
        peak_of(|| {
            let tape = Tape::new();
            let v: Vec<MatVar> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
            let inj = map.inject(&tape.constant_mat(x.clone()), &v);
            let mut z = tape.constant_mat(DMatrix::zeros(d, b));
            for _ in 0..n {
                z = map.map(&z, &inj, &v);
            }
            let g = tape.gradient(z.square().mean()).unwrap();
            assert!(g.wrt_mat(&v[0]).norm() > 0.0);
        })
    };
    let (p10, i10) = step(10);
    let (p100, i100) = step(100);
    assert_eq!((i10, i100), (10, 100));
    let ratio = p100 as f64 / p10 as f64;
    assert!(
        ratio <= 1.1,
        "DEQ step peak {p10} -> {p100} bytes ({ratio:.2}x)"
    );
    let (u10, u100) = (unrolled(10), unrolled(100));
    assert!(
        u100 as f64 > 5.0 * u10 as f64,
        "unrolled peak {u10} -> {u100}"
    );
    println!(
        "DEQ step peak: {p10} B (10 iterations), {p100} B (100): {ratio:.3}x; unrolled {u10} B -> {u100} B"
    );
}
