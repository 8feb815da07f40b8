//! A reused workspace gives exactly what a fresh solve gives, and grows to fit.

use implicit::linear::{
    Jacobi, Method, Preconditioner, Solution, SolveOptions, Workspace, solve, solve_preconditioned,
    solve_with,
};
use nalgebra::DMatrix;

/// An SPD tridiagonal matrix of size `n`, plus a skew part when `skew`.
fn system(n: usize, skew: bool) -> DMatrix<f64> {
    let s = if skew { 0.3 } else { 0.0 };
    DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            2.5 + 0.3 * (i as f64).sin()
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
fn solve_with_a_reused_workspace_matches_a_fresh_solve_bit_for_bit() {
    let opts = SolveOptions::default().restart(7);
    let methods = [
        (Method::Cg, false),
        (Method::Minres, false),
        (Method::Gmres, true),
        (Method::Bicgstab, true),
        (Method::NormalCg, true),
        (Method::Lu, true),
        (Method::Cholesky, false),
    ];
    for (method, skew) in methods {
        // One workspace across sizes (it grows, then is reused smaller) and warm starts.
        let mut ws = Workspace::default();
        for n in [5usize, 40, 12] {
            let a = system(n, skew);
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.7).cos()).collect();
            let x0: Vec<f64> = (0..n).map(|i| 0.1 * (i as f64).sin()).collect();
            for start in [None, Some(&x0[..])] {
                let fresh: Solution = solve(&a, &b, start, method, &opts).unwrap();
                let report = solve_with(&mut ws, &a, &b, start, None, method, &opts).unwrap();
                assert_eq!(report, fresh.report, "{method} n = {n}");
                assert_eq!(ws.solution(), &fresh.x[..], "{method} n = {n}");
            }
        }
    }
}

#[test]
fn preconditioned_solve_with_matches_solve_preconditioned() {
    let n = 30;
    let a = system(n, false);
    let b = vec![1.0; n];
    let jacobi = Jacobi::from_operator(&a).unwrap();
    let opts = SolveOptions::default();
    let mut ws = Workspace::new(Method::Cg, n, n, &opts);
    let fresh = solve_preconditioned(&a, &b, None, &jacobi, Method::Cg, &opts).unwrap();
    let pre: &dyn Preconditioner = &jacobi;
    let report = solve_with(&mut ws, &a, &b, None, Some(pre), Method::Cg, &opts).unwrap();
    assert_eq!(report, fresh.report);
    assert_eq!(ws.solution(), &fresh.x[..]);
    assert!(report.precond_applications > 0);
}

#[test]
fn a_workspace_sized_up_front_does_not_grow() {
    let n = 50;
    let opts = SolveOptions::default().restart(10);
    for (method, skew) in [
        (Method::Cg, false),
        (Method::Minres, false),
        (Method::Gmres, true),
        (Method::Bicgstab, true),
        (Method::NormalCg, true),
    ] {
        let a = system(n, skew);
        let b = vec![1.0; n];
        let mut ws = Workspace::new(method, n, n, &opts);
        let before = ws.capacity();
        solve_with(&mut ws, &a, &b, None, None, method, &opts).unwrap();
        assert_eq!(ws.capacity(), before, "{method}");
    }
}
