use std::time::Instant;
fn med(mut f: impl FnMut(), inner: usize) -> f64 {
    for _ in 0..5 {
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
fn main() {
    println!(
        "avx512f: {}, avx2: {}",
        std::is_x86_feature_detected!("avx512f"),
        std::is_x86_feature_detected!("avx2")
    );
    for &(m, k, n) in &[
        (64usize, 64usize, 32usize),
        (10, 40, 40),
        (200, 200, 200),
        (32, 64, 64),
        (16, 16, 16),
    ] {
        let a: Vec<f64> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f64) * 0.1 - 0.5)
            .collect();
        let b: Vec<f64> = (0..k * n)
            .map(|i| ((i * 5 % 11) as f64) * 0.1 - 0.4)
            .collect();
        let mut c = vec![0.0; m * n];
        let inner = (2_000_000 / (m * n * k)).max(1);
        let t_mm = med(
            || unsafe {
                matrixmultiply::dgemm(
                    m,
                    k,
                    n,
                    1.0,
                    a.as_ptr(),
                    1,
                    m as isize,
                    b.as_ptr(),
                    1,
                    k as isize,
                    0.0,
                    c.as_mut_ptr(),
                    1,
                    m as isize,
                )
            },
            inner,
        );
        let t84 = med(|| product_tiles::avx2_84(m, n, k, &a, &b, &mut c), inner);
        let t86 = med(|| product_tiles::avx2_86(m, n, k, &a, &b, &mut c), inner);
        println!(
            "{m}x{k}x{n}: matrixmultiply (its best kernel for this CPU) {:.3} us, avx2 8x4 {:.3}, avx2 8x6 {:.3}",
            t_mm * 1e6,
            t84 * 1e6,
            t86 * 1e6
        );
    }
}
