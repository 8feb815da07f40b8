//! Methods that need a symmetric (positive definite) matrix check what they can: a matrix
//! known to be nonsymmetric is refused up front, and Cholesky judges each pivot against
//! its own diagonal entry.

use implicit::linear::{
    DenseCholesky, LinearOperator, Method, SolveError, SolveOptions, Structure, cholesky, solve,
};
use nalgebra::{DMatrix, DVector};

/// A tridiagonal SPD matrix plus a skew part `s` above and `-s` below the diagonal.
fn spd_plus_skew(n: usize, s: f64) -> DMatrix<f64> {
    DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            4.0
        } else if j == i + 1 {
            -1.0 + s
        } else if i == j + 1 {
            -1.0 - s
        } else {
            0.0
        }
    })
}

#[test]
fn cg_minres_and_cholesky_refuse_a_nonsymmetric_matrix_up_front() {
    let n = 8;
    let a = spd_plus_skew(n, 0.25);
    let b = vec![1.0; n];
    // The largest asymmetry a_ij - a_ji (i > j) is -0.5 on every subdiagonal entry; the
    // first one found is (1, 0). Allowed: sqrt(eps) * max |a_ij| = sqrt(eps) * 4.
    let allowed = f64::EPSILON.sqrt() * 4.0;
    for method in [Method::Cg, Method::Minres, Method::Cholesky] {
        match solve(&a, &b, None, method, &SolveOptions::default()).unwrap_err() {
            SolveError::NotSymmetric {
                method: m,
                row,
                col,
                difference,
                allowed: got,
            } => {
                assert_eq!(m, method);
                assert_eq!((row, col), (1, 0));
                assert_eq!(difference, -0.5);
                assert_eq!(got, allowed);
            }
            other => panic!("{method}: expected NotSymmetric, got {other:?}"),
        }
    }
    // GMRES, which needs no symmetry, solves it.
    let sol = solve(&a, &b, None, Method::Gmres, &SolveOptions::default()).unwrap();
    assert!(sol.report.converged);
}

#[test]
fn symmetric_up_to_rounding_or_declared_symmetric_is_accepted() {
    let n = 8;
    // Asymmetry 1e-12, far below sqrt(eps) * 4 = 6e-8: a Hessian assembled from products.
    let a = spd_plus_skew(n, 5e-13);
    assert_eq!(a.structure(), Structure::GENERAL);
    let b = vec![1.0; n];
    for method in [Method::Cg, Method::Minres, Method::Cholesky] {
        let sol = solve(&a, &b, None, method, &SolveOptions::default()).unwrap();
        assert!(sol.report.converged, "{method}");
    }
    // A declaration is a promise the solver takes: no check (CG then runs on what it is
    // given; here the skew part is small enough for it to converge anyway).
    let declared = spd_plus_skew(n, 1e-3).with_structure(Structure::SPD);
    let sol = solve(
        &declared,
        &b,
        None,
        Method::Cg,
        &SolveOptions::default().rtol(1e-6),
    );
    assert!(sol.is_ok(), "{sol:?}");
}

/// `D S D` for the symmetric `s` and `D = diag(d)`.
fn scaled(s: &DMatrix<f64>, d: &[f64]) -> DMatrix<f64> {
    DMatrix::from_fn(s.nrows(), s.ncols(), |i, j| d[i] * s[(i, j)] * d[j])
}

#[test]
fn cholesky_accepts_a_well_conditioned_matrix_whose_diagonal_spans_forty_orders() {
    // S is well conditioned (eigenvalues in [0.83, 1.17]); A = D S D has the diagonal
    // (1e-20, 1, 1e20). A threshold scaled by max |a_ij| = 1e20 would call the first
    // pivot (1e-20) zero; scaled by each pivot's own diagonal entry it is fine.
    let s = DMatrix::from_row_slice(3, 3, &[1.0, 0.1, 0.05, 0.1, 1.0, 0.1, 0.05, 0.1, 1.0]);
    let d = [1e-10, 1.0, 1e10];
    let a = scaled(&s, &d);
    let chol = DenseCholesky::factor(&a, 0.0).unwrap();
    // x = D^-1 y for a moderate y, so that b = D S y.
    let y = [1.0, -2.0, 0.5];
    let x_true: Vec<f64> = y.iter().zip(&d).map(|(yi, di)| yi / di).collect();
    let b = &a * DVector::from_column_slice(&x_true);
    let sol = chol
        .solve(b.as_slice(), None, &SolveOptions::default())
        .unwrap();
    // Cholesky is invariant under the diagonal scaling, so each component is accurate
    // relative to itself, to about n eps cond(S) = 1e-15; 1e-13 leaves a margin of 100.
    for i in 0..3 {
        let rel = (sol.x[i] - x_true[i]).abs() / x_true[i].abs();
        assert!(rel <= 1e-13, "x[{i}] = {:e} vs {:e}", sol.x[i], x_true[i]);
    }
    let via_solve = cholesky(&a, b.as_slice(), None, &SolveOptions::default()).unwrap();
    assert_eq!(via_solve.x, sol.x);
}

#[test]
fn cholesky_still_rejects_indefinite_and_singular_matrices_with_the_pivot() {
    let d = [1e-10, 1.0, 1e10];
    // Indefinite: S has the 2x2 block [[1, 2], [2, 1]] (eigenvalue -1); the second pivot is
    // (1 - 2^2) d_1^2 = -3.
    let indefinite = DMatrix::from_row_slice(3, 3, &[1.0, 2.0, 0.0, 2.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    match DenseCholesky::factor(&scaled(&indefinite, &d), 0.0).unwrap_err() {
        SolveError::NotPositiveDefinite {
            pivot,
            value,
            threshold,
            size,
        } => {
            assert_eq!((pivot, size), (1, 3));
            // Rounding of the scaled entries: a few eps relative to the -3.
            assert!((value + 3.0).abs() <= 1e-14, "{value}");
            assert_eq!(threshold, 3.0 * f64::EPSILON * 1.0);
        }
        other => panic!("expected NotPositiveDefinite, got {other:?}"),
    }
    // Singular: the first two rows of S are equal; the second pivot vanishes up to
    // rounding, which must not pass for positive.
    let singular = DMatrix::from_row_slice(3, 3, &[1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    match DenseCholesky::factor(&scaled(&singular, &d), 0.0).unwrap_err() {
        SolveError::NotPositiveDefinite {
            pivot,
            value,
            threshold,
            size,
        } => {
            assert_eq!((pivot, size), (1, 3));
            assert_eq!(threshold, 3.0 * f64::EPSILON * 1.0);
            assert!(value <= threshold, "{value:e}");
        }
        other => panic!("expected NotPositiveDefinite, got {other:?}"),
    }
}

/// Accessors the solvers' callers read: Jacobi's stored inverse diagonal, a report's
/// relative residual (plain when the right-hand side is zero), an operator's debug form.
#[test]
fn accessors_return_what_they_name() {
    let jacobi = implicit::linear::Jacobi::new(&[2.0, 4.0, -0.5]).unwrap();
    assert_eq!(jacobi.inverse_diagonal(), &[0.5, 0.25, -2.0]);

    let a = DMatrix::from_row_slice(2, 2, &[3.0, 1.0, 1.0, 2.0]);
    let opts = implicit::linear::SolveOptions::default()
        .rtol(1e-3)
        .atol(0.0);
    let sol = implicit::linear::cg(&a, &[1.0, 2.0], None, None, &opts).unwrap();
    let r = &sol.report;
    assert_eq!(r.relative_residual(), r.residual_norm / r.rhs_norm);
    let mut zero_rhs = r.clone();
    zero_rhs.rhs_norm = 0.0;
    zero_rhs.residual_norm = 0.25;
    assert_eq!(zero_rhs.relative_residual(), 0.25);

    let op = implicit::linear::FnOperator::new(3, |x: &[f64], y: &mut [f64]| y.copy_from_slice(x));
    assert!(format!("{op:?}").contains("FnOperator"), "{op:?}");
}

#[test]
fn a_reference_and_a_ridge_report_the_structure_they_have() {
    use implicit::linear::{FnOperator, ridge};
    let spd = FnOperator::new(2, |x: &[f64], y: &mut [f64]| y.copy_from_slice(x))
        .with_structure(Structure::SPD);
    // A reference forwards the operator's structure.
    assert_eq!(LinearOperator::structure(&&spd), Structure::SPD);
    // A + ρI stays SPD for ρ >= 0 only; a symmetric indefinite A stays indefinite.
    assert_eq!(ridge(&spd, 0.5).structure(), Structure::SPD);
    assert_eq!(ridge(&spd, -0.5).structure(), Structure::SYMMETRIC);
    let sym = FnOperator::new(2, |x: &[f64], y: &mut [f64]| y.copy_from_slice(x))
        .with_structure(Structure::SYMMETRIC);
    assert_eq!(ridge(&sym, 0.5).structure(), Structure::SYMMETRIC);
    // Its Debug output names the sizes and the structure.
    let shown = format!("{spd:?}");
    for part in [
        "FnOperator",
        "nrows: 2",
        "ncols: 2",
        "positive_definite: true",
    ] {
        assert!(shown.contains(part), "{shown}");
    }
}

#[test]
#[should_panic(expected = "input x has length 3, but the operator needs 2")]
fn a_product_with_a_vector_of_the_wrong_length_names_both_lengths() {
    use implicit::linear::FnOperator;
    // The closure itself would not notice: it copies what fits.
    let op = FnOperator::new(2, |x: &[f64], y: &mut [f64]| {
        y.iter_mut().zip(x).for_each(|(y, x)| *y = *x)
    });
    let mut y = [0.0; 2];
    op.apply(&[1.0, 2.0, 3.0], &mut y).unwrap();
}

/// An operator that implements only `apply` (and perhaps `structure`) gets the trait's
/// transpose: its own product when declared symmetric, `NoTranspose` otherwise; a
/// reference forwards both.
#[test]
fn the_default_transpose_follows_the_declared_structure() {
    use implicit::linear::OperatorError;
    struct Diag(Vec<f64>, bool);
    impl LinearOperator for Diag {
        fn nrows(&self) -> usize {
            self.0.len()
        }
        fn ncols(&self) -> usize {
            self.0.len()
        }
        fn apply(&self, x: &[f64], y: &mut [f64]) -> Result<(), OperatorError> {
            y.iter_mut()
                .zip(x.iter().zip(&self.0))
                .for_each(|(y, (x, d))| *y = x * d);
            Ok(())
        }
        fn structure(&self) -> Structure {
            if self.1 {
                Structure::SYMMETRIC
            } else {
                Structure::GENERAL
            }
        }
    }
    let sym = Diag(vec![2.0, 3.0], true);
    let mut y = [f64::NAN; 2];
    sym.apply_transpose(&[1.0, 1.0], &mut y).unwrap();
    assert_eq!(y, [2.0, 3.0]);
    let mut y = [f64::NAN; 2];
    <&Diag as LinearOperator>::apply_transpose(&&sym, &[1.0, -1.0], &mut y).unwrap();
    assert_eq!(y, [2.0, -3.0]);
    let general = Diag(vec![2.0, 3.0], false);
    assert!(matches!(
        general.apply_transpose(&[1.0, 1.0], &mut [0.0; 2]),
        Err(OperatorError::NoTranspose)
    ));
}

/// Scaling b scales the solution and leaves every method's path alone: the same number of
/// iterations for b and for 1e3 b (the stopping rule is relative, and MINRES's running
/// residual estimate is measured in the right norm).
#[test]
fn iterations_do_not_depend_on_the_scale_of_b() {
    use implicit::linear::{Jacobi, solve_preconditioned};
    let n = 30;
    let a = crate::tridiagonal(n, |i| 1.0 + i as f64, -0.5);
    let jacobi = Jacobi::from_operator(&a).unwrap();
    let b: Vec<f64> = (0..n).map(|i| ((i * 7) % 5) as f64 - 2.0).collect();
    let big: Vec<f64> = b.iter().map(|v| v * 1e3).collect();
    let opts = SolveOptions::default().rtol(1e-10);
    for method in [Method::Cg, Method::Minres, Method::Gmres, Method::Bicgstab] {
        let its = |rhs: &[f64]| {
            let plain = solve(&a, rhs, None, method, &opts)
                .unwrap()
                .report
                .iterations;
            let pre = solve_preconditioned(&a, rhs, None, &jacobi, method, &opts)
                .unwrap()
                .report
                .iterations;
            (plain, pre)
        };
        assert_eq!(its(&b), its(&big), "{method}");
    }
}

/// The wrappers' transposes and accessors: a declared-symmetric wrapper supplies the
/// transpose its operator lacks (and only then), keeps a matrix visible to the dense
/// methods, a closure operator declared symmetric uses its product as its transpose, a
/// ridge adds ρ x to the transpose product too, and a closure preconditioner prints its size.
#[test]
fn wrappers_transpose_as_declared_and_keep_their_accessors() {
    use implicit::linear::{FnOperator, FnPreconditioner, OperatorError, ridge};
    let f = |x: &[f64], y: &mut [f64]| {
        y[0] = 2.0 * x[0] + x[1];
        y[1] = x[0] + 3.0 * x[1];
    };
    let x = [1.0, -2.0];
    let ax = [0.0, -5.0];
    // Symmetric by declaration: the transpose is the product.
    let declared = FnOperator::new(2, f).with_structure(Structure::SYMMETRIC);
    let mut y = [f64::NAN; 2];
    declared.apply_transpose(&x, &mut y).unwrap();
    assert_eq!(y, ax);
    // Wrapped after the fact: the wrapper answers NoTranspose with the product only when it
    // declares symmetry.
    let wrapped = FnOperator::new(2, f).with_structure(Structure::SYMMETRIC);
    let mut y = [f64::NAN; 2];
    LinearOperator::apply_transpose(&wrapped, &x, &mut y).unwrap();
    assert_eq!(y, ax);
    let plain = FnOperator::new(2, f);
    let general = LinearOperator::with_structure(plain, Structure::GENERAL);
    assert!(matches!(
        general.apply_transpose(&x, &mut [0.0; 2]),
        Err(OperatorError::NoTranspose)
    ));
    let sym_wrap = LinearOperator::with_structure(FnOperator::new(2, f), Structure::SYMMETRIC);
    let mut y = [f64::NAN; 2];
    sym_wrap.apply_transpose(&x, &mut y).unwrap();
    assert_eq!(y, ax);
    // A wrapped matrix is still a matrix.
    let m = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, 1.0, 3.0]);
    let spd = (&m).with_structure(Structure::SPD);
    assert_eq!(spd.as_matrix(), Some(&m));
    // A ridge: (A + ρI)ᵀ x = Aᵀ x + ρ x, and it reports ρ.
    let nonsym = DMatrix::from_row_slice(2, 2, &[1.0, 4.0, 0.0, 1.0]);
    let r = ridge(&nonsym, 0.5);
    assert_eq!(r.ridge(), 0.5);
    let mut y = [f64::NAN; 2];
    r.apply_transpose(&x, &mut y).unwrap();
    assert_eq!(y, [1.0 + 0.5, 4.0 - 2.0 - 1.0]);
    // A closure preconditioner's Debug names its size.
    let p = FnPreconditioner::new(3, |r: &[f64], z: &mut [f64]| z.copy_from_slice(r));
    let shown = format!("{p:?}");
    assert!(
        shown.contains("FnPreconditioner") && shown.contains("n: 3"),
        "{shown}"
    );
}

/// Negative tolerances are invalid options, like NaN ones.
#[test]
fn negative_tolerances_are_invalid_options() {
    let a = DMatrix::<f64>::identity(2, 2);
    for (opts, name) in [
        (SolveOptions::default().rtol(-1e-8), "rtol"),
        (SolveOptions::default().atol(-1e-8), "atol"),
    ] {
        match solve(&a, &[1.0, 1.0], None, Method::Cg, &opts).unwrap_err() {
            SolveError::InvalidOption {
                name: got, value, ..
            } => {
                assert_eq!((got, value), (name, -1e-8));
            }
            other => panic!("{name}: expected InvalidOption, got {other:?}"),
        }
    }
}

/// A dense matrix's symmetry check compares every pair below the diagonal, the first
/// column's included.
#[test]
fn an_asymmetry_in_the_first_column_is_seen() {
    let mut a = DMatrix::from_fn(3, 3, |i, j| 1.0 + (i + j) as f64);
    assert_eq!(a.structure(), Structure::SYMMETRIC);
    a[(2, 0)] += 0.5;
    assert_eq!(a.structure(), Structure::GENERAL);
}
