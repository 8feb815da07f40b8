//! Hypergradients on the peers' W1 (ridge, one λ) and W2 (logistic regression, 50 per-feature
//! λ) workloads (from the dev-only `workloads` crate), each timed as a whole (inner solve +
//! implicit backward), from the raw data:
//!
//! - the general path: the objective written once, no derivative code; CG on tape
//!   Hessian-vector products (W1) or argmin's Newton-CG (W2) forward, `hypergradient`
//!   backward at rtol 1e-12;
//! - W1 dense: Gram matrix + Cholesky forward, the factor reused backward — through the
//!   generic tape products, and with hand-written products through the Gram matrix;
//! - W1 matrix-free: CG forward, CG backward, products `Xᵀ(X v)/n + λ v` (XᵀX never formed);
//! - W2: Newton forward (dense Hessian, Cholesky), its factor reused backward (the factor at
//!   x*, or the last step's factor refined against the exact Hessian).
//!
//! Prints the iteration counts first. `scripts/bench_peers.sh` compares with the Python peers.
//!
//! ```sh
//! cargo bench -p implicit --bench hypergrad
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use implicit::hyper::{InnerSolution, ValidationLoss, hypergradient, hypergradient_linearized};
use implicit::linear::SolveOptions;
use implicit::solvers::argmin_rs::{NewtonCgOptions, minimize_newton_cg};
use implicit::{Factor, IftOptions, Implicit, ImplicitError};
use workloads::general::{TapeOnly, minimize_quadratic_cg};
use workloads::{LogLoss, LogReg, NewtonOptions, Penalty, Ridge, RidgeGram, SquaredError, data};

/// The backward options of the general rows: the peers' tolerance, no error estimate.
fn general_ift() -> IftOptions {
    IftOptions::default()
        .estimate_error(false)
        .linear(SolveOptions::default().rtol(1e-12).atol(0.0))
}

fn chol_solver(
    gram: &RidgeGram,
) -> impl FnMut(&[f64], Option<&[f64]>) -> Result<InnerSolution, ImplicitError> + '_ {
    move |t, _| {
        let (w, f) = gram.solve(t)?;
        Ok(InnerSolution {
            x: w,
            iterations: 1,
            factor: Some(Factor::Cholesky(f)),
        })
    }
}

fn w1(c: &mut Criterion) {
    let s = data::w1();
    let ridge = Ridge::new(&s.train, Penalty::Shared).unwrap();
    let val = SquaredError::new(&s.val).unwrap();
    let theta = [data::W1_LAMBDA];
    let opts = IftOptions::default().estimate_error(false);
    let cg_tol = SolveOptions::default().rtol(1e-12);

    let dense = || {
        let gram = ridge.gram();
        hypergradient(&gram, &val, &theta, &mut chol_solver(&gram), &opts).unwrap()
    };
    let hand = || {
        let gram = ridge.gram();
        let (w, chol) = gram.solve(&theta).unwrap();
        let lin = gram.linearization(&w, &theta).unwrap();
        let sol = InnerSolution {
            x: w,
            iterations: 1,
            factor: Some(Factor::Cholesky(chol)),
        };
        hypergradient_linearized(lin, &val, &theta, sol, &opts).unwrap()
    };
    let matrix_free = || {
        let fwd = ridge.solve_cg(&theta, None, &cg_tol).unwrap();
        let lin = ridge.linearization(&fwd.x, &theta).unwrap();
        let imp = Implicit::from_linearization(lin, opts.clone()).unwrap();
        let (_, gv, _) = val.value_and_grad(&fwd.x, &theta).unwrap();
        let (g, rep) = imp.vjp_flat(&gv).unwrap();
        (g, fwd.report.iterations, rep.steps)
    };
    let (g, fi, bi) = matrix_free();
    println!(
        "W1: dense {:.13}, matrix-free {:.13} (CG iterations: {fi} forward, {bi} backward)",
        dense().grad[0],
        g[0]
    );
    let gram = ridge.gram();
    let precomputed = || {
        let (w, chol) = gram.solve(&theta).unwrap();
        let lin = gram.linearization(&w, &theta).unwrap();
        let sol = InnerSolution {
            x: w,
            iterations: 1,
            factor: Some(Factor::Cholesky(chol)),
        };
        hypergradient_linearized(lin, &val, &theta, sol, &opts).unwrap()
    };
    let tape_val = TapeOnly(val.clone());
    let general = || {
        let mut cg = |t: &[f64], _: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
            let s = minimize_quadratic_cg(&ridge, data::D, t, &cg_tol)?;
            Ok(InnerSolution::new(s.x, s.report.iterations))
        };
        hypergradient(&ridge, &tape_val, &theta, &mut cg, &general_ift()).unwrap()
    };
    let mut group = c.benchmark_group("W1_ridge");
    group.bench_function("general_data_form_cg_on_tape_hvps", |b| {
        b.iter(|| black_box(general()))
    });
    group.bench_function("dense_factor_reuse_tape_products", |b| {
        b.iter(|| black_box(dense()))
    });
    group.bench_function("dense_factor_reuse_hand_products", |b| {
        b.iter(|| black_box(hand()))
    });
    group.bench_function("matrix_free_cg", |b| b.iter(|| black_box(matrix_free())));
    group.bench_function("gram_precomputed_hand_products", |b| {
        b.iter(|| black_box(precomputed()))
    });
    group.finish();
}

fn w2(c: &mut Criterion) {
    let s = data::w2();
    let inner = LogReg::new(&s.train).unwrap();
    let val = LogLoss::new(&s.val).unwrap();
    let u = data::w2_log_lambda(50);
    let opts = IftOptions::default().estimate_error(false);
    let run = |final_hessian: bool| {
        let nopts = NewtonOptions {
            final_hessian,
            ..NewtonOptions::default()
        };
        hypergradient(&inner, &val, &u, &mut inner.newton_solver(nopts), &opts).unwrap()
    };
    let h = run(true);
    println!(
        "W2: {} Newton steps, hypergradient norm {:.13}",
        h.inner_iterations,
        h.grad.iter().map(|g| g * g).sum::<f64>().sqrt()
    );
    let hand = |nopts: &NewtonOptions| {
        let sol = inner.newton(&u, None, nopts).unwrap();
        let lin = inner.linearization(&sol.x, &u).unwrap();
        hypergradient_linearized(lin, &val, &u, sol.into(), &opts).unwrap()
    };
    let chord = NewtonOptions {
        reuse_ratio: 0.03,
        final_hessian: false,
        ..NewtonOptions::default()
    };
    // Chord steps while each step at least halves ‖∇L‖, then the Hessian at x*.
    let chord_half = NewtonOptions {
        reuse_ratio: 0.5,
        final_hessian: true,
        ..NewtonOptions::default()
    };
    let tape_val = TapeOnly(val.clone());
    let general = || {
        let mut newton_cg =
            |t: &[f64], _: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
                let opts = NewtonCgOptions::default().grad_tol(1e-10);
                let s = minimize_newton_cg(&inner, t, &[0.0; 50], &opts)?;
                Ok(InnerSolution::new(s.x, s.iterations as usize))
            };
        hypergradient(&inner, &tape_val, &u, &mut newton_cg, &general_ift()).unwrap()
    };
    let mut group = c.benchmark_group("W2_logreg");
    group.bench_function("general_argmin_newton_cg", |b| {
        b.iter(|| black_box(general()))
    });
    group.bench_function("newton_factor_at_solution_hand_products", |b| {
        b.iter(|| black_box(hand(&NewtonOptions::default())))
    });
    group.bench_function("newton_chord_last_factor_refined_hand_products", |b| {
        b.iter(|| black_box(hand(&chord)))
    });
    group.bench_function(
        "newton_chord_while_halving_factor_at_solution_hand_products",
        |b| b.iter(|| black_box(hand(&chord_half))),
    );
    group.bench_function("newton_factor_at_solution", |b| {
        b.iter(|| black_box(run(true)))
    });
    group.bench_function("newton_last_factor_refined", |b| {
        b.iter(|| black_box(run(false)))
    });
    group.finish();
}

criterion_group! {
    name = hypergrad;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = w1, w2
}
criterion_main!(hypergrad);
