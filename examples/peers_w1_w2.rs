//! W1 (ridge) and W2 (logistic regression, 50 hyperparameters) hypergradients, timed the
//! way the Python peers time theirs (`../shared/peers/common.py`'s `bench`: 3 warm-up
//! calls, then the median of N timed calls, each the *whole* hypergradient — inner solve
//! plus implicit backward — from the same fixed inputs). One thread.
//!
//! ```sh
//! scripts/bench_peers.sh          # the fair race: this and the peers, alternating, pinned
//! cargo run --release --example peers_w1_w2 -- --reference out/reference.json
//! cargo run --release --example peers_w1_w2 -- --profile      # where the general rows' time goes
//! cargo run --release --example peers_w1_w2 -- --large-ridge  # d = 2000, n = 4000 ridge
//! cargo run --release --example peers_w1_w2 -- --dense-threshold  # dense vs matrix-free backward by size
//! perf record -g target/release/examples/peers_w1_w2 --loop w2   # one general row, 10 s
//! valgrind --tool=callgrind target/release/examples/peers_w1_w2 --loop w2 --calls 20   # instructions
//! ```
//!
//! Two kinds of rows, in this order:
//! - **general**: the objective written once against `MatOps` with no derivative code
//!   (`workloads::Ridge`, `workloads::LogReg`; the validation losses through
//!   `general::TapeOnly`), the inner solve by a library solver on tape derivatives (argmin's
//!   Newton-CG or L-BFGS through `implicit::solvers::argmin_rs`, or CG on tape Hessian-vector
//!   products through `implicit::linear`), the backward pass by `hyper::hypergradient`
//!   (`Implicit::argmin`, CG on tape products) at the peers' tolerance, rtol 1e-12;
//! - **hand-written**: hand-written forward solvers (Cholesky, Newton) and, where named,
//!   hand-written products.
//!
//! Every row's answer is checked before it is timed — W1's scalar, all 50 entries of W2 —
//! against `--reference` (the numpy peer's full answer, dumped by
//! `scripts/peer_reference.py`; without it, our own plain-f64 answers); a row beyond 1e-8
//! is reported as FAILED and not timed, and the exit status is 1.

use std::cell::Cell;
use std::hint::black_box;
use std::time::Instant;

use diffprog::implicit::hyper::{
    Hypergradient, InnerSolution, ValidationLoss, hypergradient, hypergradient_linearized,
};
use diffprog::implicit::linear::SolveOptions;
use diffprog::implicit::solvers::argmin_rs::{
    LbfgsOptions, NewtonCgOptions, minimize_lbfgs, minimize_newton_cg,
};
use diffprog::implicit::solvers::newton::{NewtonOptions as LibNewtonOptions, minimize_newton};
use diffprog::implicit::{
    ArgminHessian, Factor, IftOptions, Implicit, ImplicitError, Linearization, Objective,
};
use diffprog::nalgebra::DMatrix;
use workloads::general::{Counted, TapeOnly, minimize_quadratic_cg};
use workloads::reference::{Entry, Reference};
use workloads::{
    LogLoss, LogReg, NewtonOptions, Penalty, Ridge, RidgeGram, SquaredError, closed_form, data,
    reference_hypergradient,
};

#[path = "common/race.rs"]
mod race;
use race::{Table, fmt_time};

/// The peers' backward tolerance (jaxopt `solve_cg(tol=1e-12)`, relative, no absolute
/// floor), the library's default path otherwise (its a-posteriori error estimate off: the
/// peers compute none).
fn general_ift() -> IftOptions {
    IftOptions::default()
        .estimate_error(false)
        .linear(SolveOptions::default().rtol(1e-12).atol(0.0))
}

/// The peers' inner tolerances: CG rtol 1e-12 (jaxopt's W1 CG solver), ‖∇L‖ ≤ 1e-10.
fn cg12() -> SolveOptions {
    SolveOptions::default().rtol(1e-12).atol(0.0)
}
const GTOL: f64 = 1e-10;

/// The general inner solvers.
#[derive(Clone, Copy)]
enum Inner {
    /// The library's Newton: a dense Hessian per step from one batched sweep.
    Newton,
    /// CG on tape HVPs (quadratic objectives only).
    QuadraticCg,
    NewtonCg,
    Lbfgs,
}

impl Inner {
    fn label(self) -> &'static str {
        match self {
            Inner::Newton => "library Newton fwd (dense Hessian per step, gtol 1e-10)",
            Inner::QuadraticCg => "CG on tape HVPs fwd (rtol 1e-12)",
            Inner::NewtonCg => "argmin Newton-CG fwd (gtol 1e-10)",
            // argmin's line search stalls at 2-4e-10 on W1/W2 (a curvature pair s^T y <= 0).
            Inner::Lbfgs => "argmin L-BFGS fwd (gtol 1e-9)",
        }
    }
}

/// The general hypergradient: `inner` solves, `hypergradient` differentiates. Counts the
/// HVPs / gradients of the forward solve into `fwd_products`.
fn general<O: Objective, V: ValidationLoss>(
    objective: &O,
    val: &V,
    theta: &[f64],
    d: usize,
    inner: Inner,
    fwd_products: &Cell<(u64, u64)>,
) -> Result<Hypergradient, ImplicitError> {
    let mut solver = |t: &[f64], _: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
        let zero = vec![0.0; d];
        match inner {
            Inner::Newton => {
                let t = [DMatrix::from_column_slice(t.len(), 1, t)];
                let opts = LibNewtonOptions::default().grad_tol(GTOL);
                let s = minimize_newton(objective, &t, &DMatrix::zeros(d, 1), &opts)?;
                fwd_products.set((0, s.report.recordings as u64));
                Ok(InnerSolution {
                    x: s.x.as_slice().to_vec(),
                    iterations: s.report.iterations,
                    factor: s.factor,
                })
            }
            Inner::QuadraticCg => {
                let s = minimize_quadratic_cg(objective, d, t, &cg12())?;
                fwd_products.set((s.report.matvecs as u64, 1));
                Ok(InnerSolution::new(s.x, s.report.iterations))
            }
            Inner::NewtonCg => {
                let opts = NewtonCgOptions::default().grad_tol(GTOL);
                let s = minimize_newton_cg(objective, t, &zero, &opts)?;
                fwd_products.set((s.counts.hvp, s.counts.passes));
                Ok(InnerSolution::new(s.x, s.iterations as usize))
            }
            Inner::Lbfgs => {
                let opts = LbfgsOptions::default()
                    .grad_tol(10.0 * GTOL)
                    .max_iters(5000);
                let s = minimize_lbfgs(objective, t, &zero, &opts)?;
                fwd_products.set((s.counts.hvp, s.counts.passes));
                Ok(InnerSolution::new(s.x, s.iterations as usize))
            }
        }
    };
    hypergradient(objective, val, theta, &mut solver, &general_ift())
}

fn notes(h: &Hypergradient) -> String {
    match &h.report.linear {
        Some(rep) => format!(
            "{} inner iterations; backward {} {} iterations, {} products",
            h.inner_iterations, rep.method, rep.iterations, rep.matvecs
        ),
        None => format!(
            "{} inner iterations; backward {} ({} products)",
            h.inner_iterations,
            h.report.backward.name(),
            h.report.products
        ),
    }
}

fn answer(h: &Hypergradient) -> (Vec<f64>, String) {
    (h.grad.clone(), notes(h))
}

/// Forward: Cholesky of XᵀX/n + λI; the factor goes to the backward solve.
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

/// Gram form, Cholesky forward, factor reused, hand-written products.
fn gram_hand(
    gram: &RidgeGram,
    val: &SquaredError,
    theta: &[f64],
) -> Result<Hypergradient, ImplicitError> {
    let (w, chol) = gram.solve(theta)?;
    let lin = gram.linearization(&w, theta)?;
    let sol = InnerSolution {
        x: w,
        iterations: 1,
        factor: Some(Factor::Cholesky(chol)),
    };
    hypergradient_linearized(lin, val, theta, sol, &general_ift())
}

fn w1_rows(table: &mut Table) -> Result<(), ImplicitError> {
    let s = data::w1();
    let ridge = Ridge::new(&s.train, Penalty::Shared)?;
    let val = SquaredError::new(&s.val)?;
    let tape_val = TapeOnly(val.clone());
    let theta = [data::W1_LAMBDA];
    let d = data::D;
    let counts = Cell::new((0, 0));
    for inner in [
        Inner::Newton,
        Inner::QuadraticCg,
        Inner::NewtonCg,
        Inner::Lbfgs,
    ] {
        let name = format!("general: data form, {}, Implicit bwd", inner.label());
        let run = || general(&ridge, &tape_val, &theta, d, inner, &counts);
        table.add("W1", "general", &name, run, answer);
    }
    for inner in [Inner::Newton, Inner::QuadraticCg] {
        let run = || general(&ridge.gram(), &tape_val, &theta, d, inner, &counts);
        let name = format!(
            "general: Gram form (XᵀX/n formed per call), {}, Implicit bwd",
            inner.label()
        );
        table.add("W1", "general", &name, run, answer);
    }
    // What a user writes in a hyperparameter loop: the Gram matrix is data, formed once
    // when the problem is built (as XLA folds XᵀX for the JAX closed-form peer at compile
    // time). Reported on its own line, not in the headline ratios.
    let gram_once = ridge.gram();
    table.add(
        "W1",
        "general",
        "general: Gram form, XᵀX/n precomputed outside the timed call, library Newton, Implicit bwd",
        || general(&gram_once, &tape_val, &theta, d, Inner::Newton, &counts),
        answer,
    );

    let hw = "hand-written";
    table.add(
        "W1",
        hw,
        "hand-written: Gram + Cholesky fwd, factor reused, hand-written products",
        || gram_hand(&ridge.gram(), &val, &theta),
        answer,
    );
    table.add(
        "W1",
        hw,
        "hand-written fwd: Gram + Cholesky, factor reused; tape products bwd",
        || {
            let gram = ridge.gram();
            hypergradient(&gram, &val, &theta, &mut chol_solver(&gram), &general_ift())
        },
        answer,
    );
    table.add(
        "W1",
        hw,
        "hand-written: matrix-free CG fwd + CG bwd (products Xᵀ(Xv)/n + λv)",
        || {
            let fwd = ridge.solve_cg(&theta, None, &cg12())?;
            let lin = ridge.linearization(&fwd.x, &theta)?;
            let imp = Implicit::from_linearization(lin, general_ift())?;
            let (_, gv, _) = val.value_and_grad(&fwd.x, &theta)?;
            let (g, rep) = imp.vjp_flat(&gv)?;
            let bwd = rep.linear.map_or(rep.steps, |l| l.iterations);
            Ok((g, fwd.report.iterations, bwd))
        },
        |(g, f, b)| (g.clone(), format!("CG iterations: {f} fwd, {b} bwd")),
    );
    table.add(
        "W1",
        hw,
        "hand-written: closed form in plain f64 (Gram, Cholesky, 2 solves)",
        || closed_form(&ridge, &val, &theta),
        |cf| (cf.grad.clone(), String::new()),
    );
    let gram = ridge.gram();
    table.add(
        "W1",
        hw,
        "hand-written, XᵀX/n and Xᵀy/n precomputed outside the timed call: Cholesky, hand-written products",
        || gram_hand(&gram, &val, &theta),
        answer,
    );
    Ok(())
}

fn w2_rows(table: &mut Table) -> Result<(), ImplicitError> {
    let s = data::w2();
    let inner = LogReg::new(&s.train)?;
    let val = LogLoss::new(&s.val)?;
    let tape_val = TapeOnly(val.clone());
    let u = data::w2_log_lambda(data::D);
    let counts = Cell::new((0, 0));
    for solver in [Inner::Newton, Inner::NewtonCg, Inner::Lbfgs] {
        let name = format!("general: {}, Implicit bwd", solver.label());
        let run = || general(&inner, &tape_val, &u, data::D, solver, &counts);
        table.add("W2", "general", &name, run, answer);
    }
    let hw = "hand-written";
    // Chord steps while each step at least halves ‖∇L‖, then the exact Hessian at x*.
    let chord_half = NewtonOptions {
        reuse_ratio: 0.5,
        final_hessian: true,
        ..NewtonOptions::default()
    };
    table.add(
        "W2",
        hw,
        "hand-written: Newton + chord steps while ‖∇L‖ halves fwd, factor at x* reused, hand-written products",
        || {
            let sol = inner.newton(&u, None, &chord_half)?;
            let lin = inner.linearization(&sol.x, &u)?;
            hypergradient_linearized(lin, &val, &u, sol.into(), &general_ift())
        },
        answer,
    );
    table.add(
        "W2",
        hw,
        "hand-written fwd: Newton, factor at x* reused; tape products bwd",
        || {
            let mut newton = inner.newton_solver(NewtonOptions::default());
            hypergradient(&inner, &val, &u, &mut newton, &general_ift())
        },
        answer,
    );
    table.add(
        "W2",
        hw,
        "hand-written: Newton + dense IFT solve in plain f64 (numpy's row)",
        || reference_hypergradient(&inner, &val, &u),
        |(_, g, _)| (g.clone(), String::new()),
    );
    Ok(())
}

/// Median seconds of `n` calls of `f` (after one warm-up call).
fn median_time(n: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[n / 2]
}

/// Where a general row's time goes: products and passes per hypergradient, time per
/// product. (The data enter every tape by reference, `MatOps::shared`: nothing is copied.)
fn profile_row<O: Objective, V: ValidationLoss>(
    label: &str,
    objective: &Counted<O>,
    val: &V,
    theta: &[f64],
    d: usize,
    inner: Inner,
) -> Result<(), ImplicitError> {
    let counts = Cell::new((0, 0));
    objective.reset();
    let h = general(objective, val, theta, d, inner, &counts)?;
    let evals = objective.evaluations();
    let (fwd_hvp, fwd_passes) = counts.get();
    let total = median_time(9, || {
        black_box(general(objective, val, theta, d, inner, &counts).unwrap());
    });
    let x_star = nalgebra::DMatrix::from_column_slice(d, 1, &h.x);
    let theta_blocks = [nalgebra::DMatrix::from_column_slice(theta.len(), 1, theta)];
    let lin = ArgminHessian::new(objective, &x_star, &theta_blocks)?;
    let v = vec![1.0; d];
    let hvp = median_time(31, || {
        black_box(lin.a_mul(&v).unwrap());
    });
    let grad = median_time(31, || {
        black_box(ArgminHessian::new(objective, &x_star, &theta_blocks).unwrap());
    });
    println!(
        "| {label} | {} | {fwd_hvp} / {fwd_passes} | {} | {evals} | {} | {} | {} |",
        fmt_time(total),
        h.report.linear.as_ref().map_or(0, |l| l.matvecs),
        fmt_time(hvp),
        fmt_time(grad),
        fmt_time(evals as f64 * hvp.min(grad)),
    );
    Ok(())
}

fn profile() -> Result<(), ImplicitError> {
    println!(
        "\nWhere the general rows' time goes (one hypergradient; an evaluation = one pass of \
         the objective in some mode; the training data enter each tape by reference):\n"
    );
    println!(
        "| row | time | fwd HVPs / fwd gradient passes | bwd products | objective evaluations | \
         time per HVP | time per gradient | evaluations x min(HVP, gradient) |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let s = data::w1();
    let ridge = Counted::new(Ridge::new(&s.train, Penalty::Shared)?);
    let val = TapeOnly(SquaredError::new(&s.val)?);
    for inner in [Inner::QuadraticCg, Inner::NewtonCg, Inner::Lbfgs] {
        let label = format!("W1 data form, {}", inner.label());
        let theta = [data::W1_LAMBDA];
        profile_row(&label, &ridge, &val, &theta, data::D, inner)?;
    }
    let w2 = data::w2();
    let logreg = Counted::new(LogReg::new(&w2.train)?);
    let lval = TapeOnly(LogLoss::new(&w2.val)?);
    let u = data::w2_log_lambda(data::D);
    for inner in [Inner::NewtonCg, Inner::Lbfgs] {
        let label = format!("W2, {}", inner.label());
        profile_row(&label, &logreg, &lval, &u, data::D, inner)?;
    }
    Ok(())
}

/// d = 2000, n = 4000 ridge through the general path (data form, CG on tape HVPs forward,
/// Implicit backward), one call, checked against the closed form. Validation: 1000 rows at
/// offset 5000 (beyond the training rows; same formulas).
/// Where dense assembly stops paying: the backward pass of a ridge hypergradient (data form,
/// n = 10 d rows) with the Hessian assembled in one batched sweep and factored, against CG on
/// Hessian-vector products (both to rtol 1e-12), for growing d. `IftOptions::dense_up_to`'s
/// default comes from this table (docs/benchmarks.md, "Dense or matrix-free").
fn dense_threshold() -> Result<(), ImplicitError> {
    println!(
        "| d | n | dense (assembled + Cholesky) | matrix-free CG | dense / CG | CG iterations |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for d in [25, 50, 100, 200, 400, 800] {
        let n = 10 * d;
        let s = data::regression(n, 4 * d, d);
        let ridge = Ridge::new(&s.train, Penalty::Shared)?;
        let val = SquaredError::new(&s.val)?;
        let theta = [data::W1_LAMBDA];
        let x = closed_form(&ridge, &val, &theta)?.x;
        let (_, gx, _) = val.value_and_grad(&x, &theta)?;
        let xm = DMatrix::from_column_slice(d, 1, &x);
        let tm = [DMatrix::from_column_slice(1, 1, &theta)];
        let xbar = DMatrix::from_column_slice(d, 1, &gx);
        let run = |opts: &IftOptions| -> Result<(Vec<DMatrix<f64>>, usize), ImplicitError> {
            let imp = Implicit::argmin(&ridge, &xm, &tm, opts.clone())?;
            let (g, rep) = imp.vjp(&xbar)?;
            Ok((g, rep.linear.map_or(0, |l| l.iterations)))
        };
        let dense = general_ift().dense_up_to(usize::MAX);
        let cg = general_ift().dense_up_to(0);
        let (gd, _) = run(&dense)?;
        let (gc, its) = run(&cg)?;
        let diff = (gd[0][0] - gc[0][0]).abs() / gd[0][0].abs();
        assert!(diff < 1e-9, "dense and CG disagree at d = {d}: {diff:e}");
        let calls = if d <= 100 { 51 } else { 11 };
        let t_dense = median_time(calls, || {
            black_box(run(&dense).unwrap());
        });
        let t_cg = median_time(calls, || {
            black_box(run(&cg).unwrap());
        });
        println!(
            "| {d} | {n} | {} | {} | {:.2} | {its} |",
            fmt_time(t_dense),
            fmt_time(t_cg),
            t_dense / t_cg
        );
    }
    Ok(())
}

fn large_ridge() -> Result<bool, ImplicitError> {
    let (n, nv, d) = (4000, 1000, 2000);
    let s = data::regression_at(n, nv, d, 5000);
    let ridge = Ridge::new(&s.train, Penalty::Shared)?;
    let val = SquaredError::new(&s.val)?;
    let theta = [data::W1_LAMBDA];
    let t0 = Instant::now();
    let exact = closed_form(&ridge, &val, &theta)?;
    let t_closed = t0.elapsed().as_secs_f64();
    let counts = Cell::new((0, 0));
    let counted = Counted::new(ridge);
    let t0 = Instant::now();
    let h = general(
        &counted,
        &TapeOnly(val),
        &theta,
        d,
        Inner::QuadraticCg,
        &counts,
    )?;
    let t_general = t0.elapsed().as_secs_f64();
    let err = (h.grad[0] - exact.grad[0]).abs() / exact.grad[0].abs();
    println!(
        "large ridge (n = {n}, d = {d}, {nv} validation rows at offset 5000, λ = 0.1): general path {t_general:.3} s \
         ({} CG iterations fwd, {} bwd, {} objective evaluations); closed form (Gram + Cholesky, plain f64) \
         {t_closed:.3} s; hypergradient {:.12e} vs closed form {:.12e}, relative error {err:.1e}",
        h.inner_iterations,
        h.report.linear.as_ref().map_or(0, |l| l.iterations),
        counted.evaluations(),
        h.grad[0],
        exact.grad[0]
    );
    let ok = err <= race::TOL;
    println!(
        "large_ridge_s={} (check {})",
        if ok {
            format!("{t_general:.4}")
        } else {
            "failed".into()
        },
        if ok { "passed" } else { "FAILED" }
    );
    Ok(ok)
}

/// One general row in a loop for `seconds` or `--calls` (for callgrind): `w1` the data
/// form, `w1gram` the Gram form with XᵀX/n precomputed, `w2` logistic regression, each
/// with the library Newton.
fn perf_loop(which: &str, seconds: f64, max_calls: usize) -> Result<(), ImplicitError> {
    let counts = Cell::new((0, 0));
    let start = Instant::now();
    let mut calls = 0usize;
    let mut run = |f: &mut dyn FnMut() -> Result<Hypergradient, ImplicitError>| {
        while start.elapsed().as_secs_f64() < seconds && calls < max_calls {
            black_box(f()?);
            calls += 1;
        }
        Ok::<_, ImplicitError>(())
    };
    if which == "w1gram" {
        let s = data::w1();
        let ridge = Ridge::new(&s.train, Penalty::Shared)?;
        let gram = ridge.gram();
        let val = TapeOnly(SquaredError::new(&s.val)?);
        let theta = [data::W1_LAMBDA];
        run(&mut || general(&gram, &val, &theta, data::D, Inner::Newton, &counts))?;
    } else if which == "w1" {
        let s = data::w1();
        let ridge = Ridge::new(&s.train, Penalty::Shared)?;
        let val = TapeOnly(SquaredError::new(&s.val)?);
        let theta = [data::W1_LAMBDA];
        run(&mut || general(&ridge, &val, &theta, data::D, Inner::Newton, &counts))?;
    } else {
        let s = data::w2();
        let inner = LogReg::new(&s.train)?;
        let val = TapeOnly(LogLoss::new(&s.val)?);
        let u = data::w2_log_lambda(data::D);
        run(&mut || general(&inner, &val, &u, data::D, Inner::Newton, &counts))?;
    }
    println!(
        "{which}: {calls} calls in {seconds} s, {} per call",
        fmt_time(seconds / calls.max(1) as f64)
    );
    Ok(())
}

/// Our own plain-f64 answers, when no reference file is given.
fn own_reference() -> Result<Reference, ImplicitError> {
    let s = data::w1();
    let cf = closed_form(
        &Ridge::new(&s.train, Penalty::Shared)?,
        &SquaredError::new(&s.val)?,
        &[data::W1_LAMBDA],
    )?;
    let s2 = data::w2();
    let (v, g, _) = reference_hypergradient(
        &LogReg::new(&s2.train)?,
        &LogLoss::new(&s2.val)?,
        &data::w2_log_lambda(data::D),
    )?;
    Ok(Reference {
        w1: Entry {
            hypergrad: cf.grad[0],
            val_loss: cf.val_loss,
        },
        w2: Entry {
            hypergrad: g,
            val_loss: v,
        },
    })
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).and_then(|v| v.parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("error: {what}: {e}");
        std::process::exit(1)
    };
    if args.iter().any(|a| a == "--large-ridge") {
        match large_ridge() {
            Ok(true) => return,
            Ok(false) => std::process::exit(1),
            Err(e) => fail("large ridge", &e),
        }
    }
    if let Some(which) = arg::<String>(&args, "--loop") {
        let seconds = arg(&args, "--seconds").unwrap_or(10.0);
        let calls = arg(&args, "--calls").unwrap_or(usize::MAX);
        if let Err(e) = perf_loop(&which, seconds, calls) {
            fail("loop", &e);
        }
        return;
    }
    if args.iter().any(|a| a == "--dense-threshold") {
        if let Err(e) = dense_threshold() {
            fail("dense threshold", &e);
        }
        return;
    }
    if args.iter().any(|a| a == "--profile") {
        if let Err(e) = profile() {
            fail("profile", &e);
        }
        return;
    }
    let reference = match arg::<String>(&args, "--reference") {
        Some(path) => Reference::load(std::path::Path::new(&path))
            .unwrap_or_else(|e| fail(&format!("reference {path}"), &e)),
        None => {
            eprintln!("no --reference: checking against our own plain-f64 answers");
            own_reference().unwrap_or_else(|e| fail("own reference", &e))
        }
    };
    let mut table = Table {
        repeat: arg(&args, "--repeat").unwrap_or(200),
        max_seconds: arg(&args, "--max-seconds").unwrap_or(5.0),
        reference,
        rows: Vec::new(),
    };
    if let Err(e) = w1_rows(&mut table).and_then(|_| w2_rows(&mut table)) {
        fail("setting up the workloads", &e);
    }
    let path = arg::<String>(&args, "--json").unwrap_or_else(|| "out/peers_rust.json".into());
    race::report(&table.rows, &path);
    let failed: Vec<_> = table.rows.iter().filter(|r| r.timing.is_none()).collect();
    for r in &failed {
        eprintln!(
            "FAILED: {} {}: error {:.1e} (bound {:.0e}); {}",
            r.workload,
            r.name,
            r.err,
            race::TOL,
            r.notes
        );
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
