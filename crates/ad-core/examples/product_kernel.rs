//! The matrix product kernel (`ad_core::kernels::product`) against the nalgebra product it
//! replaces, on the shapes the workloads use, with the core's measured FMA peak. One thread;
//! pin it for stable numbers:
//!
//! ```sh
//! taskset -c 1 cargo run --release -p ad-core --example product_kernel
//! ```
//!
//! Every product is checked against nalgebra's before it is timed (relative 1e-13).
//! Columns: the shape `m x k x n` (`C = A B`, or `A^T B` / `A B^T`, which ad-core runs as a
//! copy of the transposed operand plus the kernel when the work is at least 32 times the
//! copy: the copy is included here), nalgebra's product (`gemm`, matrixmultiply above its
//! small-size threshold, strided operands for the transposes), ours (the kernel on the best
//! path of this CPU; where it declines, nalgebra's product), and our rate against the peak.

use std::time::Instant;

use ad_core::kernels::{paths, product};
use multiversion::multiversion;
use nalgebra::{DMatrix, DMatrixView, Dyn};

/// Median seconds per call: 101 rounds of `inner` calls each, after warm-up.
fn median(inner: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..inner.min(50) {
        f();
    }
    let mut t: Vec<f64> = (0..101)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..inner {
                f();
            }
            t0.elapsed().as_secs_f64() / inner as f64
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[50]
}

/// `iters` rounds of 12 independent 8-lane FMA chains: the core's peak multiply-add rate.
#[multiversion(targets("x86_64+avx512f+avx512vl+fma+avx2", "x86_64+avx2+fma"))]
fn fma_chains(iters: usize, x: f64) -> f64 {
    let mut acc = [[x; 8]; 12];
    let (m, a) = ([1.000_000_1f64; 8], [1e-9f64; 8]);
    for _ in 0..iters {
        for c in acc.iter_mut() {
            for r in 0..8 {
                c[r] = c[r].mul_add(m[r], a[r]);
            }
        }
    }
    acc.iter().flatten().sum()
}

fn peak_gmacs() -> f64 {
    let iters = 20_000_000;
    (0..3)
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(fma_chains(iters, std::hint::black_box(1.0)));
            (iters * 96) as f64 / t0.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// The transpose of `x` as a strided view (no copy).
fn strided(x: &DMatrix<f64>) -> DMatrixView<'_, f64, Dyn, Dyn> {
    let (r, c) = x.shape();
    DMatrixView::from_slice_with_strides(x.as_slice(), c, r, r, 1)
}

fn entries(r: usize, c: usize, seed: usize) -> DMatrix<f64> {
    DMatrix::from_fn(r, c, |i, j| {
        (((i * 31 + j * 17 + seed) % 23) as f64 - 11.0) / 7.0
    })
}

fn main() {
    println!("product kernel path: {}", paths::best_vector_path().name());
    let peak = peak_gmacs();
    println!(
        "FMA peak of this core: {peak:.1} GMAC/s ({:.1} GFlop/s)",
        2.0 * peak
    );
    println!(
        "{:<26} {:>12} {:>12} {:>8} {:>10} {:>8}",
        "product (m x k x n)", "nalgebra us", "ours us", "ratio", "GMAC/s", "of peak"
    );
    // (m, k, n, transposed operand: 0 none, 1 A, 2 B, workload)
    let shapes: [(usize, usize, usize, u8, &str); 14] = [
        (64, 64, 32, 0, "W3: W z"),
        (64, 64, 32, 1, "W3: W^T u (backward)"),
        (64, 32, 64, 2, "W3: u z^T (dL/dW)"),
        (10, 40, 40, 0, "W5: h W"),
        (40, 10, 40, 1, "W5: h^T g (dL/dW)"),
        (10, 40, 40, 2, "W5: g W^T"),
        (500, 50, 50, 0, "W1: X V (tangents)"),
        (50, 500, 50, 1, "W1: X^T X"),
        (16, 16, 16, 0, ""),
        (3, 3, 3, 0, ""),
        (100, 100, 100, 0, ""),
        (200, 200, 200, 0, ""),
        (64, 512, 512, 0, ""),
        (1000, 50, 1000, 0, ""),
    ];
    let mut failed = false;
    for (m, k, n, t, label) in shapes {
        let a = if t == 1 {
            entries(k, m, 1)
        } else {
            entries(m, k, 1)
        };
        let b = if t == 2 {
            entries(n, k, 2)
        } else {
            entries(k, n, 2)
        };
        let op = |x: &DMatrix<f64>, tr: bool| if tr { x.transpose() } else { x.clone() };
        let (ao, bo) = (op(&a, t == 1), op(&b, t == 2));
        let expected = &ao * &bo;
        // What `MatOps` products and the tape's sweeps do: the transposed operand copied
        // (when the kernel takes the product), then the kernel.
        let path = paths::best_vector_path();
        let mut tbuf = match t {
            1 => DMatrix::zeros(m, k),
            2 => DMatrix::zeros(k, n),
            _ => DMatrix::zeros(0, 0),
        };
        let mut c = DMatrix::from_element(m, n, f64::NAN);
        // ad-core's rule: a transposed operand is copied only when the product's work is at
        // least 32 times the copy; otherwise nalgebra's strided product runs.
        let moved = match t {
            1 => a.len(),
            2 => b.len(),
            _ => 0,
        };
        let copy_pays = m * n * k >= 32 * moved;
        let mut ours = |c: &mut DMatrix<f64>| {
            if !copy_pays {
                match t {
                    1 => c.gemm(1.0, &strided(&a), &b, 0.0),
                    _ => c.gemm(1.0, &a, &strided(&b), 0.0),
                }
                return;
            }
            let (l, r) = match t {
                1 => {
                    a.transpose_to(&mut tbuf);
                    (&tbuf, &b)
                }
                2 => {
                    b.transpose_to(&mut tbuf);
                    (&a, &tbuf)
                }
                _ => (&a, &b),
            };
            if !product::gemm(
                path,
                (m, n, k),
                1.0,
                l.as_slice(),
                r.as_slice(),
                0.0,
                c.as_mut_slice(),
            ) {
                c.gemm(1.0, l, r, 0.0);
            }
        };
        ours(&mut c);
        let err = (&c - &expected).amax() / expected.amax();
        if err > 1e-13 {
            println!("{m}x{k}x{n}: FAILED, relative error {err:.1e}");
            failed = true;
            continue;
        }
        let inner = (4_000_000 / (m * n * k)).clamp(1, 20_000);
        // nalgebra as ad-core called it before: transposes as strided views (matrixmultiply
        // reads any strides).
        let mut c2 = DMatrix::zeros(m, n);
        let t_nalgebra = median(inner, || match t {
            1 => c2.gemm(1.0, &strided(&a), &b, 0.0),
            2 => c2.gemm(1.0, &a, &strided(&b), 0.0),
            _ => c2.gemm(1.0, &a, &b, 0.0),
        });
        let err2 = (&c2 - &expected).amax() / expected.amax();
        assert!(
            err2 <= 1e-13,
            "nalgebra's strided product is off by {err2:.1e}"
        );
        let t_ours = median(inner, || ours(&mut c));
        let tag = match t {
            1 => "A^T B",
            2 => "A B^T",
            _ => "A B",
        };
        let gmacs = (m * n * k) as f64 / t_ours / 1e9;
        println!(
            "{:<26} {:>12.3} {:>12.3} {:>8.2} {:>10.1} {:>7.0}%  {label}",
            format!("{m}x{k}x{n} {tag}"),
            t_nalgebra * 1e6,
            t_ours * 1e6,
            t_ours / t_nalgebra,
            gmacs,
            100.0 * gmacs / peak
        );
    }
    if failed {
        std::process::exit(1);
    }
}
