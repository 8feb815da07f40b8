//! Linear solvers: CG against dense Cholesky on the two shapes implicit differentiation
//! meets most — a small SPD system, and the matrix-free regularized normal equations of a
//! least-squares problem `(X^T X / n + lam I) v = g` (ridge regression, W1-sized: n = 500,
//! d = 50). Prints the iteration counts first.
//!
//! ```sh
//! cargo bench -p implicit --bench linear
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
    targets = benches
}
criterion_main!(linear);
