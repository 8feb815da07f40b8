//! The iteration loops allocate nothing: a solve's heap allocations do not depend on how
//! many iterations it runs, and solves in a reused workspace allocate nothing at all after
//! the first. Measured with a counting global allocator, in a binary without a test harness
//! (`harness = false` in Cargo.toml): libtest's main thread does its bookkeeping while a
//! test starts, and under load those allocations can fall inside a measured region.
//! `main` runs the one check; the process fails if it panics.

use std::alloc::System;

use implicit::linear::{
    Jacobi, Method, Preconditioner, SolveOptions, Workspace, solve, solve_preconditioned,
    solve_with,
};
use nalgebra::DMatrix;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn matrices(n: usize) -> (DMatrix<f64>, DMatrix<f64>) {
    // SPD: tridiagonal with a varying diagonal; nonsymmetric: plus a skew part.
    let spd = DMatrix::from_fn(n, n, |i, j| {
        if i == j {
            2.1 + 0.5 * (1.0 + (i as f64 * 0.37).sin()) // Gershgorin: eigenvalues >= 0.1
        } else if i.abs_diff(j) == 1 {
            -1.0
        } else {
            0.0
        }
    });
    let skew = DMatrix::from_fn(n, n, |i, j| {
        if j == i + 1 {
            0.4
        } else if i == j + 1 {
            -0.4
        } else {
            0.0
        }
    });
    let nonsym = &spd + skew;
    (spd, nonsym)
}

fn main() {
    allocations_do_not_depend_on_the_iteration_count_and_vanish_with_a_workspace();
    println!("alloc: ok");
}

fn allocations_do_not_depend_on_the_iteration_count_and_vanish_with_a_workspace() {
    let n = 200;
    let (spd, nonsym) = matrices(n);
    let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.1).cos()).collect();
    let jacobi = Jacobi::from_operator(&spd).unwrap();
    let loose = SolveOptions::default().rtol(1e-2).restart(20);
    let tight = SolveOptions::default().rtol(1e-10).restart(20);

    // I − K with ρ(K) < 1 for the fixed-point methods: spd's eigenvalues lie in [0.1, 5.1].
    let contractive = &spd / 5.2;
    let cases: [(Method, &DMatrix<f64>, bool); 9] = [
        (Method::Richardson, &contractive, false),
        (Method::Anderson, &contractive, false),
        (Method::Cg, &spd, false),
        (Method::Cg, &spd, true),
        (Method::Minres, &spd, false),
        (Method::Minres, &spd, true),
        (Method::Gmres, &nonsym, false),
        (Method::Bicgstab, &nonsym, false),
        (Method::NormalCg, &nonsym, false),
    ];
    for (method, a, pre) in cases {
        let run = |opts: &SolveOptions| {
            let region = Region::new(GLOBAL);
            let sol = if pre {
                solve_preconditioned(a, &b, None, &jacobi, method, opts)
            } else {
                solve(a, &b, None, method, opts)
            }
            .unwrap();
            let stats = region.change();
            (
                sol.report.iterations,
                stats.allocations + stats.reallocations,
            )
        };
        // The counters are process-wide, so anything else that allocates meanwhile (the
        // test harness's own threads) can only add to a count: take the least of three.
        let least = |opts: &SolveOptions| {
            (0..3)
                .map(|_| run(opts))
                .min_by_key(|&(_, allocs)| allocs)
                .unwrap()
        };
        let (it_loose, alloc_loose) = least(&loose);
        let (it_tight, alloc_tight) = least(&tight);
        println!(
            "{method:>28} precond={pre:<5}: {it_loose:>4} iterations -> {alloc_loose} allocations, \
             {it_tight:>4} iterations -> {alloc_tight} allocations"
        );
        assert!(
            it_tight > it_loose + 5,
            "{method}: {it_loose} vs {it_tight}"
        );
        assert_eq!(
            alloc_loose, alloc_tight,
            "{method}: allocations grew with the iteration count"
        );
        assert!(
            alloc_tight <= 12,
            "{method}: {alloc_tight} allocations per solve"
        );
    }

    // With a reused workspace: the first solve sizes it, every later one (other right-hand
    // sides, other tolerances, warm starts) allocates nothing.
    for (method, a, pre) in cases {
        let precond: Option<&dyn Preconditioner> = if pre { Some(&jacobi) } else { None };
        let mut ws = Workspace::default();
        solve_with(&mut ws, a, &b, None, precond, method, &tight).unwrap();
        let rhs: Vec<Vec<f64>> = (1..4)
            .map(|k| (0..n).map(|i| (i as f64 * 0.1 * k as f64).sin()).collect())
            .collect();
        let x0 = vec![0.5; n];
        let run = |ws: &mut Workspace| {
            let region = Region::new(GLOBAL);
            let mut iterations = 0;
            for (k, r) in rhs.iter().enumerate() {
                let opts = if k % 2 == 0 { &tight } else { &loose };
                let start = (k == 1).then_some(&x0[..]);
                iterations += solve_with(ws, a, r, start, precond, method, opts)
                    .unwrap()
                    .iterations;
            }
            let stats = region.change();
            (iterations, stats.allocations + stats.reallocations)
        };
        // Process-wide counters again: the least of three runs.
        let (iterations, allocs) = (0..3).map(|_| run(&mut ws)).min_by_key(|r| r.1).unwrap();
        println!(
            "{method:>28} precond={pre:<5}: 3 solves in a reused workspace, {iterations} \
             iterations -> {allocs} allocations"
        );
        assert!(iterations > 10, "{method}: {iterations}");
        assert_eq!(allocs, 0, "{method}: a reused workspace allocated");
    }

    // Sized up front by `Workspace::new` for its method and options, a workspace allocates
    // nothing even on its first solve, and `capacity` counts what it holds.
    for (method, a, pre) in cases {
        let precond: Option<&dyn Preconditioner> = if pre { Some(&jacobi) } else { None };
        let allocs = (0..3)
            .map(|_| {
                let mut ws = Workspace::new(method, n, n, &tight);
                let held = ws.capacity();
                let region = Region::new(GLOBAL);
                solve_with(&mut ws, a, &b, None, precond, method, &tight).unwrap();
                let stats = region.change();
                assert_eq!(ws.capacity(), held, "{method}: the workspace grew");
                stats.allocations + stats.reallocations
            })
            .min()
            .unwrap();
        assert_eq!(allocs, 0, "{method}: a workspace sized by new() allocated");
    }
    // What `capacity` counts: the iterate and CG's four work vectors, nothing else.
    assert_eq!(Workspace::new(Method::Cg, n, n, &tight).capacity(), 5 * n);
    // Anderson with memory m = 5: the iterate, 4 work vectors and 2m differences, and the
    // m x m Gram matrix, its factor and γ.
    let m = tight.memory;
    assert_eq!(
        Workspace::new(Method::Anderson, n, n, &tight).capacity(),
        n + (4 + 2 * m) * n + (2 * m * m + m)
    );
    // GMRES(20): the iterate, 21 basis vectors and 3 work vectors, and its small dense
    // scratch (the 21 x 20 Hessenberg matrix, rotations, residual and coefficients).
    assert_eq!(
        Workspace::new(Method::Gmres, n, n, &tight).capacity(),
        n + 24 * n + (21 * 20 + 4 * 20 + 1)
    );
}
