//! The register-tiled product `ad_core::kernels::product::gemm` against a textbook loop.
//!
//! The kernel accumulates each entry in order of the inner index with fused multiply-adds,
//! then applies `alpha` and `beta`: a scalar loop doing the same gives the same bits, so
//! the tests compare bit for bit (any changed index, order or operation shows). Outputs
//! start as NaN when `beta = 0` (the kernel must write every entry and read none), and
//! shapes reach 40 x 40 (1,600 entries), past every tile edge (16, 8, 4, 2, 1 rows; 8 and
//! 1 columns). Paths without the kernel must decline (return `false`) and touch nothing.

use ad_core::kernels::paths::{self, Path};
use ad_core::kernels::product::{self, MAX_INNER, MAX_WORK};
use ad_core::{HessianRecording, MatOps, Tape};
use nalgebra::DMatrix;
use proptest::prelude::*;

/// `alpha * sum_p fma(a[i, p], b[p, j], .) + beta * c[i, j]`, in the kernel's order.
fn reference(
    (m, n, k): (usize, usize, usize),
    alpha: f64,
    a: &[f64],
    b: &[f64],
    beta: f64,
    c: &[f64],
) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for j in 0..n {
        for i in 0..m {
            let mut acc = 0.0f64;
            for p in 0..k {
                acc = a[p * m + i].mul_add(b[j * k + p], acc);
            }
            out[j * m + i] = if beta == 0.0 {
                alpha * acc
            } else {
                alpha * acc + beta * c[j * m + i]
            };
        }
    }
    out
}

/// Deterministic entries in [-1, 1) from a seed.
fn entries(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn same_bits(x: &[f64], y: &[f64]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| a.to_bits() == b.to_bits())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every shape up to 40 x 40 x 40, with `alpha` and `beta` (0 among them), bit for bit.
    #[test]
    fn matches_the_textbook_loop_bit_for_bit(
        m in 1usize..=40,
        n in 1usize..=40,
        k in 1usize..=40,
        alpha in prop_oneof![Just(1.0), Just(-0.5), -3.0f64..3.0],
        beta in prop_oneof![Just(0.0), Just(1.0), -2.0f64..2.0],
        seed in any::<u64>(),
    ) {
        let a = entries(m * k, seed);
        let b = entries(k * n, seed ^ 0x9e37);
        let c0: Vec<f64> = if beta == 0.0 {
            vec![f64::NAN; m * n]
        } else {
            entries(m * n, seed ^ 0x51ed)
        };
        let expected = reference((m, n, k), alpha, &a, &b, beta, &c0);
        for path in Path::ALL {
            let mut c = c0.clone();
            let ran = product::gemm(path, (m, n, k), alpha, &a, &b, beta, &mut c);
            prop_assert_eq!(ran, path == Path::Avx512 && path.is_supported(), "path {:?}", path);
            if ran {
                prop_assert!(same_bits(&c, &expected), "{}x{}x{} on {:?}", m, n, k, path);
            } else {
                prop_assert!(same_bits(&c, &c0), "{:?} declined but wrote", path);
            }
        }
    }
}

/// Empty products: `m = 0` or `n = 0` has nothing to write; `k = 0` is declined (the
/// caller's fallback computes `beta c`).
#[test]
fn empty_shapes() {
    let a = [1.0; 6];
    let b = [1.0; 6];
    let mut c = [7.0; 6];
    let avx512 = Path::Avx512.is_supported();
    assert_eq!(
        product::gemm(Path::Avx512, (0, 3, 2), 1.0, &[], &b, 0.0, &mut []),
        avx512
    );
    assert_eq!(
        product::gemm(Path::Avx512, (3, 0, 2), 1.0, &a, &[], 0.0, &mut []),
        avx512
    );
    assert!(!product::gemm(
        Path::Avx512,
        (2, 3, 0),
        1.0,
        &[],
        &[],
        0.0,
        &mut c
    ));
    assert_eq!(c, [7.0; 6]);
}

/// Products past the kernel's sizes are declined (matrixmultiply's cache blocking wins
/// there), and the limits are what the docs say.
#[test]
fn large_products_are_declined() {
    assert_eq!((MAX_WORK, MAX_INNER), (1 << 26, 2048));
    let k = MAX_INNER + 1;
    let a = vec![1.0; k];
    let b = vec![1.0; k];
    let mut c = [0.0];
    assert!(!product::gemm(
        Path::Avx512,
        (1, 1, k),
        1.0,
        &a,
        &b,
        0.0,
        &mut c
    ));
    // m n k = 2^26 + 2^13 > MAX_WORK with every dimension within bounds.
    let (m, n, kk) = (8192, 8193, 1);
    let a = vec![1.0; m * kk];
    let b = vec![1.0; kk * n];
    let mut c = vec![0.0; 1];
    assert!(!product::gemm(
        Path::Avx512,
        (m, n, kk),
        1.0,
        &a,
        &b,
        0.0,
        &mut c
    ));
    // m n k = MAX_WORK exactly runs; one more step of k does not.
    let (m, n, kk) = (512, 512, 256);
    assert_eq!(m * n * kk, MAX_WORK);
    let a = vec![0.5; m * (kk + 1)];
    let b = vec![0.25; (kk + 1) * n];
    let mut c = vec![0.0; m * n];
    let ran = product::gemm(Path::Avx512, (m, n, kk), 1.0, &a, &b, 0.0, &mut c);
    assert_eq!(ran, Path::Avx512.is_supported());
    if ran {
        assert!(c.iter().all(|&v| v == 0.125 * kk as f64));
    }
    assert!(!product::gemm(
        Path::Avx512,
        (m, n, kk + 1),
        1.0,
        &a,
        &b,
        0.0,
        &mut c
    ));
    // At the inner limit exactly, the kernel runs (where the CPU has it).
    let (m, n) = (16, 16);
    let a = entries(m * MAX_INNER, 3);
    let b = entries(MAX_INNER * n, 4);
    let mut c = vec![f64::NAN; m * n];
    let ran = product::gemm(Path::Avx512, (m, n, MAX_INNER), 1.0, &a, &b, 0.0, &mut c);
    assert_eq!(ran, Path::Avx512.is_supported());
    if ran {
        let expected = reference((m, n, MAX_INNER), 1.0, &a, &b, 0.0, &c);
        assert!(same_bits(&c, &expected));
    }
}

#[test]
#[should_panic(expected = "slices of 5, 6, 4 entries for 2x3 * 3x2")]
fn short_slices_panic_with_the_shapes() {
    if !Path::Avx512.is_supported() {
        panic!("slices of 5, 6, 4 entries for 2x3 * 3x2 (no AVX-512 here)");
    }
    let mut c = [0.0; 4];
    product::gemm(
        Path::Avx512,
        (2, 2, 3),
        1.0,
        &[0.0; 5],
        &[0.0; 6],
        0.0,
        &mut c,
    );
}

/// The kernel behind `MatOps::matmul`: plain, tape and second-order products of the same
/// matrices agree with nalgebra's product to rounding, on shapes where the kernel runs.
#[test]
fn matmul_in_every_mode_agrees_with_nalgebra() {
    for &(m, k, n) in &[
        (10, 40, 40),
        (64, 64, 32),
        (33, 17, 9),
        (3, 3, 3),
        (1, 7, 5),
    ] {
        let a = DMatrix::from_vec(m, k, entries(m * k, 11));
        let b = DMatrix::from_vec(k, n, entries(k * n, 12));
        let expected = &a * &b;
        let tol = 1e-15 * k as f64 * 4.0;
        let plain = a.matmul(&b);
        assert!((&plain - &expected).amax() <= tol, "{m}x{k}x{n} plain");
        let tape = Tape::new();
        let (av, bv) = (tape.mat_var(a.clone()), tape.mat_var(b.clone()));
        let prod = av.matmul(&bv);
        assert!((prod.value() - &expected).amax() <= tol, "{m}x{k}x{n} tape");
        // d/dA sum(A B) = 1 B^T: the backward products (A^T- and B^T-forms) stay nalgebra's.
        let g = tape.gradient(prod.sum()).unwrap();
        let ones = DMatrix::from_element(m, n, 1.0);
        assert!((g.wrt_mat(&av) - &ones * b.transpose()).amax() <= tol);
        assert!((g.wrt_mat(&bv) - a.transpose() * &ones).amax() <= tol);
    }
    assert!(paths::describe().contains("tanh"));
}

/// The second-order sweep's batched tangents go through the kernel too: the Hessian of
/// `L(A) = mean((A B)^2)` applied to k directions at once is `2/(mn) V B B^T` per direction.
#[test]
fn batched_hessian_products_agree_with_the_formula() {
    let (m, k, n, dirs) = (10, 40, 40, 3);
    let a = DMatrix::from_vec(m, k, entries(m * k, 21));
    let b = DMatrix::from_vec(k, n, entries(k * n, 22));
    let v = DMatrix::from_vec(m * k, dirs, entries(m * k * dirs, 23));
    let rec = HessianRecording::new(std::slice::from_ref(&a), |p| {
        p[0].matmul(&p[0].constant_like(b.clone())).square().mean()
    })
    .unwrap();
    let hv = rec.hvp_batch(&[Some(&v)]).unwrap().remove(0);
    let bbt = &b * b.transpose();
    for j in 0..dirs {
        let vj = DMatrix::from_column_slice(m, k, v.column(j).as_slice());
        let expected = &vj * &bbt * (2.0 / (m * n) as f64);
        let got = DMatrix::from_column_slice(m, k, hv.column(j).as_slice());
        assert!(
            (&got - &expected).amax() <= 1e-14 * expected.amax(),
            "direction {j}"
        );
    }
}

/// The library's products go through the kernel where it applies: with an inner dimension
/// past matrixmultiply's blocking (it sums `p` in blocks of 256, so its bits differ), plain
/// `matmul` and the tape's transposed backward products (`Aᵀ G`, `G Bᵀ`) equal the textbook
/// loop bit for bit on AVX-512 CPUs. A regression that quietly sent them back to nalgebra
/// would change only speed; this test sees it.
#[test]
fn library_products_run_the_kernel_where_it_applies() {
    let (m, k, n) = (16, 300, 16);
    let a = entries(m * k, 31);
    let b = entries(k * n, 32);
    let am = DMatrix::from_column_slice(m, k, &a);
    let bm = DMatrix::from_column_slice(k, n, &b);
    let kernel = Path::Avx512.is_supported();
    let nalgebra = &am * &bm;
    let expected = reference((m, n, k), 1.0, &a, &b, 0.0, &[]);
    // The premise: nalgebra's bits differ here (else the test could not tell).
    assert!(!same_bits(nalgebra.as_slice(), &expected));
    let plain = am.matmul(&bm);
    assert_eq!(same_bits(plain.as_slice(), &expected), kernel, "A B");
    // Backward of sum(A B): dA = 1 Bᵀ (m x n by n x k), dB = Aᵀ 1 (k x m by m x n); with a
    // seed G of ones those are the products below, run by the tape's sweep.
    let (m2, k2, n2) = (300, 16, 300); // A: 300 x 16, B: 16 x 300, so dB = Aᵀ G sums 300 terms
    let a2 = DMatrix::from_column_slice(m2, k2, &entries(m2 * k2, 33));
    let b2 = DMatrix::from_column_slice(k2, n2, &entries(k2 * n2, 34));
    let tape = Tape::new();
    let (av, bv) = (tape.mat_var(a2.clone()), tape.mat_var(b2.clone()));
    let g = tape.gradient(av.matmul(&bv).sum()).unwrap();
    let ones = vec![1.0; m2 * n2];
    let at = a2.transpose();
    let expected_db = reference((k2, n2, m2), 1.0, at.as_slice(), &ones, 0.0, &[]);
    assert_eq!(
        same_bits(g.wrt_mat(&bv).as_slice(), &expected_db),
        kernel,
        "Aᵀ G through the sweep"
    );
    let bt = b2.transpose();
    let expected_da = reference((m2, k2, n2), 1.0, &ones, bt.as_slice(), 0.0, &[]);
    assert_eq!(
        same_bits(g.wrt_mat(&av).as_slice(), &expected_da),
        kernel,
        "G Bᵀ through the sweep"
    );
    // A dense Hessian of sq_norm(X w) by one batched second-order sweep: its tangent
    // product Xᵀ (2 X) (40 x 300 by 300 x 40) is a transposed product of the second-order
    // sweep, which must reach the kernel too (after copying Xᵀ).
    let (rows, d) = (300, 40);
    let x = DMatrix::from_column_slice(rows, d, &entries(rows * d, 35));
    let w = [DMatrix::from_column_slice(d, 1, &entries(d, 36))];
    let rec = HessianRecording::new(&w, |b| {
        let xv = b[0].constant_like(x.clone());
        xv.matmul(&b[0]).sq_norm()
    })
    .unwrap();
    let h = rec.hessian_columns(0).unwrap().remove(0);
    let xt = x.transpose();
    let expected_h: Vec<f64> = reference((d, d, rows), 1.0, xt.as_slice(), x.as_slice(), 0.0, &[])
        .iter()
        .map(|v| 2.0 * v)
        .collect();
    let nalgebra_h = (&xt * &x) * 2.0;
    assert!(!same_bits(nalgebra_h.as_slice(), &expected_h));
    assert_eq!(
        same_bits(h.as_slice(), &expected_h),
        kernel,
        "Xᵀ (2 X) through a Hessian sweep"
    );
}
