//! Executable specification of the linear solvers (proptest).
//!
//! Random systems and helpers live here; the tests are grouped by job in the modules below.

mod ad_ops;
mod dense_paths;
mod errors;
mod progress;
mod solve;
mod structure;
mod workspace;

use implicit::linear::SolveError;
use implicit::linear::{Method, ResidualKind, Solution, SolveOptions, solve};
use nalgebra::{DMatrix, DVector};
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Random systems
// ---------------------------------------------------------------------------------------

/// An orthogonal matrix from the QR factorization of a random matrix.
fn orthogonal(n: usize, entries: &[f64]) -> DMatrix<f64> {
    let m = DMatrix::from_column_slice(n, n, entries) + DMatrix::identity(n, n) * 1e-3;
    m.qr().q()
}

/// `Q diag(eigs) Q^T`, exactly symmetrized.
fn from_spectrum(q: &DMatrix<f64>, eigs: &[f64]) -> DMatrix<f64> {
    let d = DMatrix::from_diagonal(&DVector::from_column_slice(eigs));
    let a = q * d * q.transpose();
    (&a + a.transpose()) * 0.5
}

/// Eigenvalues log-spaced between 1 and `kappa`.
fn log_spaced(n: usize, kappa: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let t = if n == 1 {
                0.0
            } else {
                i as f64 / (n - 1) as f64
            };
            kappa.powf(t)
        })
        .collect()
}

/// The symmetric tridiagonal matrix with `diag(i)` on the diagonal and `off` beside it.
fn tridiagonal(n: usize, diag: impl Fn(usize) -> f64, off: f64) -> DMatrix<f64> {
    DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            diag(i)
        } else if i.abs_diff(j) == 1 {
            off
        } else {
            0.0
        }
    })
}

#[derive(Debug, Clone)]
struct System {
    a: DMatrix<f64>,
    b: Vec<f64>,
}

/// SPD with condition number `kappa` in [1, 1e3].
fn spd_system() -> impl Strategy<Value = System> {
    (1usize..60).prop_flat_map(|n| {
        (vec(-1.0f64..1.0, n * n), vec(-1.0f64..1.0, n), 0.0f64..3.0).prop_map(
            move |(q, b, log_kappa)| System {
                a: from_spectrum(&orthogonal(n, &q), &log_spaced(n, 10f64.powf(log_kappa))),
                b: nonzero(b),
            },
        )
    })
}

/// Symmetric indefinite: eigenvalue magnitudes in [1, 100], random signs.
fn indefinite_system() -> impl Strategy<Value = System> {
    (2usize..60).prop_flat_map(|n| {
        (
            vec(-1.0f64..1.0, n * n),
            vec(-1.0f64..1.0, n),
            vec(any::<bool>(), n),
        )
            .prop_map(move |(q, b, signs)| {
                let mut eigs = log_spaced(n, 100.0);
                for (e, &s) in eigs.iter_mut().zip(&signs) {
                    if s {
                        *e = -*e;
                    }
                }
                // At least one of each sign.
                eigs[0] = eigs[0].abs();
                eigs[n - 1] = -eigs[n - 1].abs();
                System {
                    a: from_spectrum(&orthogonal(n, &q), &eigs),
                    b: nonzero(b),
                }
            })
    })
}

/// Nonsymmetric, well conditioned: `c I + E` with `||E||` small against `c`.
fn nonsymmetric_system() -> impl Strategy<Value = System> {
    (1usize..60).prop_flat_map(|n| {
        (vec(-1.0f64..1.0, n * n), vec(-1.0f64..1.0, n), 2.0f64..5.0).prop_map(move |(e, b, c)| {
            let e = DMatrix::from_column_slice(n, n, &e) * (0.5 / (n as f64).sqrt());
            System {
                a: DMatrix::identity(n, n) * c + e,
                b: nonzero(b),
            }
        })
    })
}

fn nonzero(mut b: Vec<f64>) -> Vec<f64> {
    if b.iter().all(|&v| v == 0.0) {
        b[0] = 1.0;
    }
    b
}

fn true_residual(a: &DMatrix<f64>, x: &[f64], b: &[f64]) -> f64 {
    (DVector::from_column_slice(b) - a * DVector::from_column_slice(x)).norm()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

const RTOL: f64 = 1e-8;

/// The solution meets the tolerance on the true residual, and the report says so honestly.
fn check_solution(a: &DMatrix<f64>, b: &[f64], sol: &Solution, method: Method) {
    let r = &sol.report;
    let bnorm = norm(b);
    let tol = RTOL * bnorm;
    let resid = true_residual(a, &sol.x, b);
    assert_eq!(r.method, method);
    assert!(r.converged, "{method}: {r}");
    assert!(
        resid <= tol * (1.0 + 1e-6),
        "{method}: true residual {resid:e} > tol {tol:e}; {r}"
    );
    assert!((r.tolerance - tol).abs() <= 1e-13 * tol, "{r}");
    assert!((r.rhs_norm - bnorm).abs() <= 1e-12 * bnorm);
    assert!(
        (r.residual_norm - resid).abs() <= 1e-4 * tol + 1e-3 * resid,
        "{method}: reported residual {:e} vs recomputed {resid:e}",
        r.residual_norm
    );
    assert_eq!(r.residual_kind, ResidualKind::System);
}

fn run(
    method: Method,
    a: &DMatrix<f64>,
    b: &[f64],
    x0: Option<&[f64]>,
) -> Result<Solution, SolveError> {
    let opts = SolveOptions::default().rtol(RTOL);
    solve(a, b, x0, method, &opts)
}

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

/// A small SPD matrix for the error tests.
fn small_spd() -> DMatrix<f64> {
    DMatrix::from_row_slice(3, 3, &[4.0, 1.0, 0.0, 1.0, 3.0, 1.0, 0.0, 1.0, 2.0])
}

/// The least-squares solution of `a x = b` (full column rank, `m >= n`) by Householder QR:
/// `x = R^-1 Q^T b`. The test reference for least squares: nalgebra's SVD is not used
/// (`svd(true, true)` returns wrong singular values for some matrices, nalgebra #1172).
fn least_squares_qr(a: &DMatrix<f64>, b: &[f64]) -> DVector<f64> {
    assert!(
        a.nrows() >= a.ncols(),
        "least squares needs m >= n, got {}x{}",
        a.nrows(),
        a.ncols()
    );
    let qr = a.clone().qr();
    let qtb = qr.q().transpose() * DVector::from_column_slice(b);
    qr.r()
        .solve_upper_triangular(&qtb)
        .expect("the test matrix has full column rank")
}
