//! Dense LU (nalgebra) and Cholesky (left-looking, runtime-dispatched SIMD kernels of
//! `linear::kernels`) for small systems, as reusable factorizations.
//!
//! A factorization is computed once ([`DenseLu::factor`], [`DenseCholesky::factor`]) and
//! then solves any number of right-hand sides — with `A` ([`DenseLu::solve`]) or with `A^T`
//! ([`DenseLu::solve_transpose`], the adjoint solve of the implicit function theorem) — and
//! serves as an exact [`Preconditioner`] for Krylov solves of nearby systems. Each solve
//! checks its true residual and refines iteratively (up to
//! [`SolveOptions::max_iters`] steps, while the residual keeps halving) when the first
//! solve misses the tolerance.

use nalgebra::{DMatrix, DVectorViewMut, Dyn, PermutationSequence};

use crate::linear::checks::{allowed_asymmetry, check_len, max_abs, worst_asymmetry};
use crate::linear::error::{SolveError, check_finite};
use crate::linear::kernels::dense as blas;
use crate::linear::kernels::{axpy, norm, not_above, sub_from};
use crate::linear::method::Method;
use crate::linear::operator::{LinearOperator, OperatorError};
use crate::linear::options::SolveOptions;
use crate::linear::precond::Preconditioner;
use crate::linear::report::{ResidualKind, Solution, SolveReport};

/// The operator as a dense matrix, plus `ridge` on the diagonal; counts the products used.
fn materialize<A: LinearOperator + ?Sized>(
    op: &A,
    ridge: f64,
    matvecs: &mut usize,
) -> Result<DMatrix<f64>, SolveError> {
    let (m, n) = (op.nrows(), op.ncols());
    if m != n {
        return Err(SolveError::Dimension {
            what: "columns of the operator (this method needs a square system)",
            expected: m,
            got: n,
        });
    }
    if !ridge.is_finite() {
        return Err(SolveError::InvalidOption {
            name: "ridge",
            value: ridge,
            reason: "must be finite",
        });
    }
    let mut a = match op.as_matrix() {
        Some(a) => {
            check_finite("matrix entry", a.as_slice())?;
            a.clone()
        }
        None => {
            let mut a = DMatrix::zeros(n, n);
            let mut e = vec![0.0; n];
            for j in 0..n {
                e[j] = 1.0;
                op.apply(&e, a.column_mut(j).as_mut_slice())?;
                *matvecs += 1;
                e[j] = 0.0;
                check_finite("operator output", a.column(j).as_slice())?;
            }
            a
        }
    };
    if ridge != 0.0 {
        for i in 0..n {
            a[(i, i)] += ridge;
        }
    }
    Ok(a)
}

/// What the two factorizations share: the matrix (for residuals) and the solve loop.
#[derive(Clone, Debug)]
struct Dense {
    a: DMatrix<f64>,
    ridge: f64,
    matvecs: usize,
    method: Method,
}

impl Dense {
    /// Solve with `inv` (an exact solve with the factorization, in place) and refine.
    fn solve(
        &self,
        b: &[f64],
        x0: Option<&[f64]>,
        opts: &SolveOptions,
        transpose: bool,
        inv: impl Fn(&mut [f64]),
    ) -> Result<Solution, SolveError> {
        opts.validate()?;
        if opts.ridge != self.ridge {
            return Err(SolveError::InvalidOption {
                name: "ridge",
                value: opts.ridge,
                reason: "differs from the ridge the factorization was computed with",
            });
        }
        let n = self.a.nrows();
        check_len("right-hand side b", n, b.len())?;
        check_finite("right-hand side b", b)?;
        if let Some(x0) = x0 {
            check_len("initial guess x0", n, x0.len())?;
            check_finite("initial guess x0", x0)?;
        }
        let residual = |x: &[f64], r: &mut [f64]| {
            if transpose {
                blas::gemv_t(self.a.as_slice(), x, r);
            } else {
                blas::gemv(self.a.as_slice(), x, r);
            }
            sub_from(b, r);
            norm(r)
        };
        let rhs_norm = norm(b);
        let tol = opts.tolerance(rhs_norm);
        let max_iters = opts.max_iters_for(n);
        let mut x = x0.map_or_else(|| vec![0.0; n], <[f64]>::to_vec);
        let mut r = vec![0.0; n];
        let initial = match x0 {
            Some(_) => residual(&x, &mut r),
            None => {
                r.copy_from_slice(b);
                rhs_norm
            }
        };
        let mut rnorm = initial;
        let mut iterations = 0;
        if rnorm > tol {
            // x += A^{-1} r, then refine while it helps.
            inv(&mut r);
            axpy(1.0, &r, &mut x);
            rnorm = residual(&x, &mut r);
            while rnorm > tol && iterations < max_iters {
                inv(&mut r);
                axpy(1.0, &r, &mut x);
                iterations += 1;
                let new = residual(&x, &mut r);
                let stalled = new.is_nan() || new > 0.5 * rnorm;
                rnorm = new;
                if stalled {
                    break;
                }
            }
        }
        let report = SolveReport {
            method: self.method,
            iterations,
            matvecs: 0,
            precond_applications: 0,
            initial_residual_norm: initial,
            residual_norm: rnorm,
            rhs_norm,
            tolerance: tol,
            residual_kind: ResidualKind::System,
            converged: rnorm <= tol,
        };
        check_finite("solution", &x)?;
        if report.converged {
            Ok(Solution { x, report })
        } else {
            Err(SolveError::NotConverged {
                report: Box::new(report),
                x,
            })
        }
    }
}

/// A dense LU factorization with partial pivoting, `P (A + ridge I) = L U`, reusable for
/// solves with `A` and `A^T`.
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{DenseLu, SolveOptions};
/// let a = DMatrix::from_row_slice(2, 2, &[2.0, 1.0, -1.0, 3.0]);
/// let lu = DenseLu::factor(&a, 0.0).unwrap();
/// let opts = SolveOptions::default();
/// let x = lu.solve(&[3.0, 2.0], None, &opts).unwrap().x;      // A x = b
/// let y = lu.solve_transpose(&[1.0, 4.0], None, &opts).unwrap().x; // A^T y = c
/// assert!((x[0] - 1.0).abs() < 1e-14 && (x[1] - 1.0).abs() < 1e-14);
/// assert!((2.0 * y[0] - y[1] - 1.0).abs() < 1e-14 && (y[0] + 3.0 * y[1] - 4.0).abs() < 1e-14);
/// ```
#[derive(Clone, Debug)]
pub struct DenseLu {
    dense: Dense,
    p: PermutationSequence<Dyn>,
    l: DMatrix<f64>,
    u: DMatrix<f64>,
}

impl DenseLu {
    /// Factor `A + ridge I`, materializing the operator (`n` products, none for a matrix).
    ///
    /// # Errors
    /// [`Singular`](SolveError::Singular) if a pivot is at or below
    /// `n * eps * max |a_ij|`; [`NonFinite`](SolveError::NonFinite) for non-finite
    /// entries; [`Dimension`](SolveError::Dimension) for a rectangular operator.
    pub fn factor<A: LinearOperator + ?Sized>(op: &A, ridge: f64) -> Result<Self, SolveError> {
        let mut matvecs = 0;
        let a = materialize(op, ridge, &mut matvecs)?;
        let n = a.nrows();
        let threshold = n as f64 * f64::EPSILON * max_abs(&a);
        let (p, l, u) = nalgebra::LU::new(a.clone()).unpack();
        for i in 0..n {
            let value = u[(i, i)];
            if not_above(value.abs(), threshold) {
                return Err(SolveError::Singular {
                    what: "dense LU",
                    pivot: i,
                    value,
                    threshold,
                    size: n,
                });
            }
        }
        Ok(DenseLu {
            dense: Dense {
                a,
                ridge,
                matvecs,
                method: Method::Lu,
            },
            p,
            l,
            u,
        })
    }

    /// Solve `(A + ridge I) x = b` (from `x0` if given), refining if needed.
    /// `opts.ridge` must equal the factored ridge.
    pub fn solve(
        &self,
        b: &[f64],
        x0: Option<&[f64]>,
        opts: &SolveOptions,
    ) -> Result<Solution, SolveError> {
        self.dense
            .solve(b, x0, opts, false, |r| self.inverse_in_place(r))
    }

    /// Solve `(A + ridge I)^T y = c` with the same factorization (no new factorization).
    pub fn solve_transpose(
        &self,
        c: &[f64],
        x0: Option<&[f64]>,
        opts: &SolveOptions,
    ) -> Result<Solution, SolveError> {
        self.dense
            .solve(c, x0, opts, true, |r| self.inverse_transpose_in_place(r))
    }

    /// `r <- A^{-1} r` (no refinement, no checks).
    pub fn inverse_in_place(&self, r: &mut [f64]) {
        let n = r.len();
        let mut v = DVectorViewMut::from_slice(r, n);
        self.p.permute_rows(&mut v);
        self.l.solve_lower_triangular_with_diag_mut(&mut v, 1.0);
        self.u.solve_upper_triangular_mut(&mut v);
    }

    /// `r <- A^{-T} r` (no refinement, no checks).
    pub fn inverse_transpose_in_place(&self, r: &mut [f64]) {
        let n = r.len();
        let mut v = DVectorViewMut::from_slice(r, n);
        self.u.tr_solve_upper_triangular_mut(&mut v);
        self.l.tr_solve_lower_triangular_mut(&mut v);
        self.p.inv_permute_rows(&mut v);
    }

    /// The factored matrix `A + ridge I`.
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.dense.a
    }

    /// Operator products spent materializing the operator.
    pub fn matvecs(&self) -> usize {
        self.dense.matvecs
    }
}

impl Preconditioner for DenseLu {
    fn dim(&self) -> usize {
        self.dense.a.nrows()
    }
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<(), OperatorError> {
        z.copy_from_slice(r);
        self.inverse_in_place(z);
        Ok(())
    }
}

/// A dense Cholesky factorization `A + ridge I = L L^T` for symmetric positive definite
/// matrices; `A^T = A`, so it serves both solve directions.
///
/// ```
/// use nalgebra::DMatrix;
/// use implicit::linear::{DenseCholesky, SolveOptions};
/// let a = DMatrix::from_row_slice(2, 2, &[4.0, 1.0, 1.0, 3.0]);
/// let chol = DenseCholesky::factor(&a, 0.0).unwrap();
/// let x = chol.solve(&[1.0, 2.0], None, &SolveOptions::default()).unwrap().x;
/// assert!((x[0] - 1.0 / 11.0).abs() < 1e-15 && (x[1] - 7.0 / 11.0).abs() < 1e-15);
/// ```
#[derive(Clone, Debug)]
pub struct DenseCholesky {
    dense: Dense,
    /// `L` in the lower triangle (column-major `n x n`; the strict upper triangle is unused).
    l: Vec<f64>,
}

impl DenseCholesky {
    /// Factor `A + ridge I`, materializing the operator (`n` products, none for a matrix).
    ///
    /// The matrix must be symmetric up to `sqrt(eps) * max |a_ij|` (Hessians assembled
    /// from Hessian-vector products are symmetric only up to rounding); it is symmetrized
    /// before factoring.
    ///
    /// # Errors
    /// [`NotSymmetric`](SolveError::NotSymmetric) beyond that tolerance;
    /// [`NotPositiveDefinite`](SolveError::NotPositiveDefinite) with the first pivot
    /// that is not positive, or at or below `n * eps * a_jj` (its own diagonal entry:
    /// positive definite only in exact arithmetic); [`NonFinite`](SolveError::NonFinite),
    /// [`Dimension`](SolveError::Dimension).
    pub fn factor<A: LinearOperator + ?Sized>(op: &A, ridge: f64) -> Result<Self, SolveError> {
        let mut matvecs = 0;
        let a = materialize(op, ridge, &mut matvecs)?;
        let n = a.nrows();
        let allowed = allowed_asymmetry(&a);
        // The symmetrized lower triangle (a_ij + a_ji)/2 goes straight into the factor's
        // storage; the largest asymmetry is tracked on the way (branch-free), and the worst
        // pair located only when there is one to report.
        let s = a.as_slice();
        let mut l = vec![0.0; n * n];
        // Four running maxima (the entries are finite: `materialize` checked them), so the
        // loop is not one chain of dependent comparisons.
        let mut asym = [0.0f64; 4];
        for j in 0..n {
            for i in j..n {
                let (p, q) = (s[j * n + i], s[i * n + j]);
                let d = (p - q).abs();
                let m = &mut asym[i & 3];
                if d > *m {
                    *m = d;
                }
                l[j * n + i] = (p + q) * 0.5;
            }
        }
        let asym = asym.iter().fold(0.0f64, |m, &d| m.max(d));
        if asym > allowed {
            let worst = worst_asymmetry(&a);
            return Err(SolveError::NotSymmetric {
                method: Method::Cholesky,
                row: worst.0,
                col: worst.1,
                difference: worst.2,
                allowed,
            });
        }
        // A pivot must stay above rounding relative to its own diagonal entry (the
        // factorization is invariant under symmetric diagonal scaling, so the largest
        // entry of the matrix says nothing about the accuracy of a small pivot).
        let rel_tol = n as f64 * f64::EPSILON;
        if let Err((pivot, value, threshold)) = blas::cholesky_in_place(&mut l, n, rel_tol) {
            return Err(SolveError::NotPositiveDefinite {
                pivot,
                value,
                threshold,
                size: n,
            });
        }
        Ok(DenseCholesky {
            dense: Dense {
                a,
                ridge,
                matvecs,
                method: Method::Cholesky,
            },
            l,
        })
    }

    /// Solve `(A + ridge I) x = b` (from `x0` if given), refining if needed.
    /// `opts.ridge` must equal the factored ridge.
    pub fn solve(
        &self,
        b: &[f64],
        x0: Option<&[f64]>,
        opts: &SolveOptions,
    ) -> Result<Solution, SolveError> {
        self.dense
            .solve(b, x0, opts, false, |r| self.inverse_in_place(r))
    }

    /// `r <- A^{-1} r` (no refinement, no checks).
    pub fn inverse_in_place(&self, r: &mut [f64]) {
        blas::cholesky_solve_in_place(&self.l, r);
    }

    /// The factored matrix `A + ridge I` (as given, before symmetrization).
    pub fn matrix(&self) -> &DMatrix<f64> {
        &self.dense.a
    }

    /// Operator products spent materializing the operator.
    pub fn matvecs(&self) -> usize {
        self.dense.matvecs
    }
}

impl Preconditioner for DenseCholesky {
    fn dim(&self) -> usize {
        self.dense.a.nrows()
    }
    fn apply(&self, r: &[f64], z: &mut [f64]) -> Result<(), OperatorError> {
        z.copy_from_slice(r);
        self.inverse_in_place(z);
        Ok(())
    }
}

/// Solve a small square system by dense LU with partial pivoting (one factorization,
/// then refinement as needed). `x0`, if given, is the starting point of the refinement.
/// The report's `matvecs` counts the products used to materialize the operator.
pub fn lu<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    opts.validate()?;
    check_len("right-hand side b", op.nrows(), b.len())?;
    let f = DenseLu::factor(op, opts.ridge)?;
    add_matvecs(f.solve(b, x0, opts), f.matvecs())
}

/// Solve a small symmetric positive definite system by dense Cholesky (one factorization,
/// then refinement as needed). `x0`, if given, is the starting point of the refinement.
/// The report's `matvecs` counts the products used to materialize the operator.
pub fn cholesky<A: LinearOperator + ?Sized>(
    op: &A,
    b: &[f64],
    x0: Option<&[f64]>,
    opts: &SolveOptions,
) -> Result<Solution, SolveError> {
    opts.validate()?;
    check_len("right-hand side b", op.nrows(), b.len())?;
    let f = DenseCholesky::factor(op, opts.ridge)?;
    add_matvecs(f.solve(b, x0, opts), f.matvecs())
}

fn add_matvecs(res: Result<Solution, SolveError>, matvecs: usize) -> Result<Solution, SolveError> {
    match res {
        Ok(mut s) => {
            s.report.matvecs += matvecs;
            Ok(s)
        }
        Err(SolveError::NotConverged { mut report, x }) => {
            report.matvecs += matvecs;
            Err(SolveError::NotConverged { report, x })
        }
        Err(e) => Err(e),
    }
}

/// A dense factorization of a system matrix kept for reuse (by `Implicit`'s later solves,
/// or handed over by a forward solver).
#[derive(Clone, Debug)]
pub enum Factor {
    /// LU (any nonsingular A); serves A and Aᵀ.
    Lu(DenseLu),
    /// Cholesky (symmetric positive definite A).
    Cholesky(DenseCholesky),
}
