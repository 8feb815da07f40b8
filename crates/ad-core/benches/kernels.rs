//! Elementwise kernels of `ad_core::kernels` against a per-element loop over Rust std
//! (the platform libm) on 2048 elements, single thread.
//!
//! Run with `cargo bench -p ad-core --bench kernels`.

use ad_core::kernels;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

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

fn sigmoid_std(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn softplus_std(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

type Kernel = fn(&[f64], &mut [f64]);

/// Name, kernel, scalar std version, input range.
type Case = (&'static str, Kernel, fn(f64) -> f64, f64, f64);

fn bench_kernels(c: &mut Criterion) {
    let cases: [Case; 5] = [
        ("tanh", kernels::tanh, f64::tanh, -5.0, 5.0),
        ("exp", kernels::exp, f64::exp, -20.0, 20.0),
        ("ln", kernels::ln, f64::ln, 1e-3, 1e3),
        ("sigmoid", kernels::sigmoid, sigmoid_std, -10.0, 10.0),
        ("softplus", kernels::softplus, softplus_std, -10.0, 10.0),
    ];
    for (name, kernel, scalar, lo, hi) in cases {
        let x = inputs(lo, hi);
        let mut out = vec![0.0; N];
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(N as u64));
        group.bench_function("kernel", |b| {
            b.iter(|| kernel(black_box(&x), black_box(&mut out)))
        });
        group.bench_function("std", |b| {
            b.iter(|| {
                for (o, &v) in out.iter_mut().zip(black_box(&x)) {
                    *o = scalar(v);
                }
                black_box(&mut out);
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_kernels);
criterion_main!(benches);
