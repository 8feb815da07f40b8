//! Linear solvers: CG against dense Cholesky on the two shapes implicit differentiation
//! meets most — a small SPD system, and the matrix-free regularized normal equations of a
//! least-squares problem `(X^T X / n + lam I) v = g` (ridge regression, W1-sized: n = 500,
//! d = 50). Prints the iteration counts first.
//!
//! A second group races the hand-written dense kernels of `implicit::linear::kernels`
//! against nalgebra at the W1/W2 sizes (500x50, 200x50, 50x50): `y = A x`, `y = A^T x`, the
//! (weighted) Gram matrix `X^T diag(w) X`, and Cholesky factor and solve. The results are
//! recorded in docs/benchmarks.md, and decide which kernels stay.
//!
//! ```sh
//! cargo bench -p implicit --bench linear
//! cargo bench -p implicit --bench linear -- kernels   # the kernel race only
//! ```

use std::cell::RefCell;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use implicit::linear::{
    DenseCholesky, FnOperator, Jacobi, LinearOperator, Method, SolveOptions, Structure, cg,
    cholesky, solve_preconditioned,
};
use nalgebra::{DMatrix, DVector};

/// Deterministic uniform numbers in [-1, 1) (splitmix64), so runs are comparable.
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn matrix(&mut self, r: usize, c: usize) -> DMatrix<f64> {
        DMatrix::from_fn(r, c, |_, _| self.uniform())
    }
    fn vector(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

/// A 50x50 SPD matrix `Q diag Q^T` with eigenvalues log-spaced in [1, 100].
fn spd_50(rng: &mut Rng) -> DMatrix<f64> {
    let n = 50;
    let q = rng.matrix(n, n).qr().q();
    let d = DVector::from_fn(n, |i, _| 100f64.powf(i as f64 / (n - 1) as f64));
    let a = &q * DMatrix::from_diagonal(&d) * q.transpose();
    (&a + a.transpose()) * 0.5
}

/// `v -> X^T X v / n + lam v`, matrix-free, with one scratch vector of length n.
struct NormalEq {
    x: DMatrix<f64>,
    lam: f64,
    scratch: RefCell<DVector<f64>>,
}

impl NormalEq {
    fn apply(&self, v: &[f64], y: &mut [f64]) {
        let (n, d) = self.x.shape();
        let v = nalgebra::DVectorView::from_slice(v, d);
        let mut t = self.scratch.borrow_mut();
        t.gemv(1.0, &self.x, &v, 0.0);
        let mut yv = nalgebra::DVectorViewMut::from_slice(y, d);
        yv.copy_from(&v);
        yv.gemv_tr(1.0 / n as f64, &self.x, &t, self.lam);
    }
}

/// Which SIMD path the kernels' runtime dispatch picks on this machine.
fn kernel_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return "AVX2 + FMA";
        }
    }
    "baseline"
}

fn kernels(c: &mut Criterion) {
    use implicit::linear::kernels::dense;
    println!("kernel path: {}", kernel_path());
    let mut rng = Rng(11);
    for (m, n) in [(500, 50), (200, 50), (50, 50)] {
        let a = rng.matrix(m, n);
        let x = rng.vector(n);
        let u = rng.vector(m);
        let w: Vec<f64> = (0..m).map(|i| 0.5 + 0.25 * (i as f64).sin()).collect();
        let mut g = c.benchmark_group(format!("kernels_{m}x{n}"));
        let mut y = vec![0.0; m];
        g.bench_function("gemv/ours", |bch| {
            bch.iter(|| dense::gemv(a.as_slice(), black_box(&x), &mut y))
        });
        let xv = DVector::from_column_slice(&x);
        let mut yv = DVector::zeros(m);
        g.bench_function("gemv/nalgebra", |bch| {
            bch.iter(|| yv.gemv(1.0, &a, black_box(&xv), 0.0))
        });
        let mut z = vec![0.0; n];
        g.bench_function("gemv_t/ours", |bch| {
            bch.iter(|| dense::gemv_t(a.as_slice(), black_box(&u), &mut z))
        });
        let uv = DVector::from_column_slice(&u);
        let mut zv = DVector::zeros(n);
        g.bench_function("gemv_t/nalgebra", |bch| {
            bch.iter(|| zv.gemv_tr(1.0, &a, black_box(&uv), 0.0))
        });
        let mut h = vec![0.0; n * n];
        g.bench_function("gram/ours", |bch| {
            bch.iter(|| dense::gram(black_box(a.as_slice()), m, None, &mut h))
        });
        let mut hn = DMatrix::zeros(n, n);
        g.bench_function("gram/nalgebra", |bch| {
            bch.iter(|| a.tr_mul_to(black_box(&a), &mut hn))
        });
        // The same product through nalgebra's gemm (matrixmultiply), with X^T formed
        // outside the timing (generous to nalgebra).
        let at = a.transpose();
        g.bench_function("gram/nalgebra_gemm", |bch| {
            bch.iter(|| hn.gemm(1.0, black_box(&at), &a, 0.0))
        });
        g.bench_function("gram_weighted/ours", |bch| {
            bch.iter(|| dense::gram(black_box(a.as_slice()), m, Some(&w), &mut h))
        });
        // nalgebra has no weighted Gram product: scale the rows into a scratch, then X^T (W X).
        let mut wa = a.clone();
        g.bench_function("gram_weighted/nalgebra", |bch| {
            bch.iter(|| {
                for (j, mut col) in wa.column_iter_mut().enumerate() {
                    for (i, v) in col.iter_mut().enumerate() {
                        *v = a[(i, j)] * w[i];
                    }
                }
                a.tr_mul_to(black_box(&wa), &mut hn)
            })
        });
        if m == n {
            let spd = spd_50(&mut rng);
            let b = rng.vector(n);
            let mut l = vec![0.0; n * n];
            g.bench_function("cholesky_factor/ours", |bch| {
                bch.iter(|| {
                    l.copy_from_slice(spd.as_slice());
                    dense::cholesky_in_place(black_box(&mut l), n, 1e-14).unwrap()
                })
            });
            g.bench_function("cholesky_factor/nalgebra", |bch| {
                bch.iter(|| nalgebra::Cholesky::new(black_box(spd.clone())).unwrap())
            });
            l.copy_from_slice(spd.as_slice());
            dense::cholesky_in_place(&mut l, n, 1e-14).unwrap();
            let mut r = b.clone();
            g.bench_function("cholesky_solve/ours", |bch| {
                bch.iter(|| {
                    r.copy_from_slice(&b);
                    dense::cholesky_solve_in_place(&l, black_box(&mut r))
                })
            });
            let nchol = nalgebra::Cholesky::new(spd.clone()).unwrap();
            let mut rv = DVector::from_column_slice(&b);
            g.bench_function("cholesky_solve/nalgebra", |bch| {
                bch.iter(|| {
                    rv.copy_from_slice(&b);
                    nchol.solve_mut(black_box(&mut rv))
                })
            });
        }
        g.finish();
    }
}

fn benches(c: &mut Criterion) {
    let mut rng = Rng(7);
    let opts = SolveOptions::default().rtol(1e-10);

    // --- 50x50 SPD ---------------------------------------------------------------------
    let a = spd_50(&mut rng);
    let b = rng.vector(50);
    let sol = cg(&a, &b, None, None, &opts).unwrap();
    println!("spd_50: CG {}", sol.report);
    let jac = Jacobi::from_operator(&a).unwrap();
    let pre = solve_preconditioned(&a, &b, None, &jac, Method::Cg, &opts).unwrap();
    println!("spd_50: Jacobi-PCG {}", pre.report);

    let mut g = c.benchmark_group("spd_50");
    g.bench_function("cg", |bch| {
        bch.iter(|| cg(&a, black_box(&b), None, None, &opts).unwrap())
    });
    g.bench_function("cholesky_factor_and_solve", |bch| {
        bch.iter(|| cholesky(&a, black_box(&b), None, &opts).unwrap())
    });
    let chol = DenseCholesky::factor(&a, 0.0).unwrap();
    g.bench_function("cholesky_solve_reusing_factor", |bch| {
        bch.iter(|| chol.solve(black_box(&b), None, &opts).unwrap())
    });
    g.finish();

    // --- 500x50 regularized normal equations (ridge regression) -------------------------
    let (n, d, lam) = (500, 50, 1e-2);
    let x = rng.matrix(n, d) + DMatrix::from_fn(n, d, |_, j| 0.3 * (j as f64 * 0.2).sin());
    let rhs = rng.vector(d);
    let ne = NormalEq {
        x: x.clone(),
        lam,
        scratch: RefCell::new(DVector::zeros(n)),
    };
    let op = FnOperator::new(d, |v: &[f64], y: &mut [f64]| ne.apply(v, y))
        .with_structure(Structure::SPD);
    let sol = cg(&op, &rhs, None, None, &opts).unwrap();
    println!("normal_eq_500x50: matrix-free CG {}", sol.report);
    let gram = x.transpose() * &x / n as f64 + DMatrix::identity(d, d) * lam;
    let dense = cholesky(&gram, &rhs, None, &opts).unwrap();
    let diff = sol
        .x
        .iter()
        .zip(&dense.x)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f64::max);
    println!("normal_eq_500x50: max |x_cg - x_cholesky| = {diff:.2e}");
    assert_eq!(op.nrows(), d);

    let mut g = c.benchmark_group("normal_eq_500x50");
    g.bench_function("cg_matrix_free", |bch| {
        bch.iter(|| cg(&op, black_box(&rhs), None, None, &opts).unwrap())
    });
    g.bench_function("cholesky_form_gram_factor_solve", |bch| {
        bch.iter(|| {
            let gram = x.transpose() * &x / n as f64 + DMatrix::identity(d, d) * lam;
            cholesky(&gram, black_box(&rhs), None, &opts).unwrap()
        })
    });
    let gram_chol = DenseCholesky::factor(&gram, 0.0).unwrap();
    g.bench_function("cholesky_solve_reusing_factor", |bch| {
        bch.iter(|| gram_chol.solve(black_box(&rhs), None, &opts).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = linear;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = benches, kernels
}
criterion_main!(linear);
