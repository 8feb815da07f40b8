//! Elementwise kernels of `ad_core::kernels` on every dispatch path this CPU can execute
//! (`kernels::paths`), including the per-element loop over Rust std (the platform libm),
//! on 2048 elements, single thread. Prints the paths the public functions select. Also the
//! matrix product kernel (`kernels::product`) against nalgebra's product at the W3 and W5
//! shapes (`examples/product_kernel.rs` prints the full table in one run).
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

fn bench_product(c: &mut Criterion) {
    use ad_core::kernels::product;
    use nalgebra::DMatrix;
    let path = paths::best_vector_path();
    for (m, k, n) in [(64, 64, 32), (10, 40, 40)] {
        let a = DMatrix::from_fn(m, k, |i, j| ((i * 7 + j * 3) % 11) as f64 - 5.0);
        let b = DMatrix::from_fn(k, n, |i, j| ((i * 5 + j * 2) % 13) as f64 - 6.0);
        let mut out = DMatrix::zeros(m, n);
        let mut group = c.benchmark_group(format!("product {m}x{k}x{n}"));
        group.throughput(Throughput::Elements((m * n * k) as u64));
        group.bench_function("nalgebra", |bch| {
            bch.iter(|| out.gemm(1.0, black_box(&a), black_box(&b), 0.0))
        });
        if product::gemm(
            path,
            (m, n, k),
            1.0,
            a.as_slice(),
            b.as_slice(),
            0.0,
            out.as_mut_slice(),
        ) {
            group.bench_function(format!("kernel-{}", path.name()), |bch| {
                bch.iter(|| {
                    product::gemm(
                        path,
                        (m, n, k),
                        1.0,
                        black_box(a.as_slice()),
                        black_box(b.as_slice()),
                        0.0,
                        out.as_mut_slice(),
                    )
                })
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
    targets = bench_kernels, bench_product
}
criterion_main!(benches);
