//! Elementwise kernels of `ad_core::kernels` on every dispatch path this CPU can execute
//! (`kernels::paths`), including the per-element loop over Rust std (the platform libm),
//! on 2048 elements, single thread. Prints the paths the public functions select.
//!
//! Run with `cargo bench -p ad-core --bench kernels`.

use ad_core::kernels::paths::{self, Kernel};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

const N: usize = 2048;

/// Deterministic inputs spread over `[lo, hi]` (a fixed permutation, so that no branch
/// predictor sees a monotone sequence).
fn inputs(lo: f64, hi: f64) -> Vec<f64> {
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..N)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 11) as f64 / (1u64 << 53) as f64)
        })
        .collect()
}

fn bench_kernels(c: &mut Criterion) {
    // Name the paths that run, so that every report says which code it measured.
    println!("kernels: selected paths: {}", paths::describe());
    let cases = [
        (Kernel::Tanh, -5.0, 5.0),
        (Kernel::Exp, -20.0, 20.0),
        (Kernel::Ln, 1e-3, 1e3),
        (Kernel::Sigmoid, -10.0, 10.0),
        (Kernel::Softplus, -10.0, 10.0),
    ];
    for (kernel, lo, hi) in cases {
        let x = inputs(lo, hi);
        let mut out = vec![0.0; N];
        let mut group = c.benchmark_group(kernel.name());
        group.throughput(Throughput::Elements(N as u64));
        group.bench_function(
            format!("selected-{}", paths::selected(kernel).name()),
            |b| {
                b.iter(|| {
                    paths::run(
                        paths::selected(kernel),
                        kernel,
                        black_box(&x),
                        black_box(&mut out),
                    )
                })
            },
        );
        // Every path this CPU can execute (Path::Std is the per-element std loop).
        for path in paths::supported() {
            group.bench_function(path.name(), |b| {
                b.iter(|| paths::run(path, kernel, black_box(&x), black_box(&mut out)))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    // Short runs: the machine is shared, and 2048-element kernels settle quickly.
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    targets = bench_kernels
}
criterion_main!(benches);
