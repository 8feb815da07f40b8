//! Hyperparameter optimization: the article's comparison of Approach 1 (differentiate
//! *through* T steps of gradient descent) and Approach 2 (differentiate *at* the solution,
//! by the implicit function theorem), then per-feature L2 tuning of a logistic regression.
//!
//! ```sh
//! cargo run --release --example hyperparam     # < 1 minute; writes out/hyperparam_val_loss.svg
//! ```
//!
//! Part 1, W1 ridge regression (n = 500, d = 50, λ = 0.1, data of `../shared/peers`):
//! hypergradient error against the closed form, peak heap bytes (a counting global
//! allocator; ad-core's idle tape buffers are released before each measurement, and the
//! absolute peaks are printed next to their ratios) and time per hypergradient, for
//! - unrolled gradient descent (η = 0.075 from 0) on ad-core's tape, T = 10, 100, 1000 —
//!   the step map's constants (G = XᵀX/n, b = Xᵀy/n) are recorded on the tape once, before
//!   the loop, and shared by every step, so the tape grows by the step's vectors only;
//! - implicit differentiation at the GD iterate θ_T (the same loop, run in plain `f64`);
//!   the library refuses these by default, since θ_T is not a solution (the check is
//!   relaxed here to compare the two approaches at equal inner budget);
//! - implicit differentiation at the converged solution (Cholesky, factor reused).
//!
//! Part 2, W2 logistic regression: 50 per-feature hyperparameters `u_j = log λ_j` tuned by
//! hypergradient descent (Adam, warm-started Newton inner solves), and argmin's L-BFGS as
//! the outer optimizer for comparison. Next to the validation loss that the tuning
//! minimizes, a held-out test loss: 200 more rows from the same data formulas at row offset
//! 2000 (`workloads::data::w2_test`; the peers have no test split, this one is ours).
//!
//! Reference values of the peers' README are checked; a mismatch beyond 1e-9 relative exits
//! with status 1. The last line is a machine-readable `summary:`.

use std::hint::black_box;
use std::time::Instant;

use diffprog::ad::{MatOps, MatVar, Tape};
use diffprog::implicit::hyper::{
    HyperOptions, InnerSolution, Trace, TraceStep, ValidationLoss, hypergradient, hypergradient_at,
    optimize_lbfgs, optimize_observed,
};
use diffprog::implicit::solvers::argmin_rs::LbfgsOptions;
use diffprog::implicit::{Factor, IftOptions, ImplicitError, Objective};
use nalgebra::DMatrix;
use plotters::prelude::*;
use workloads::{
    LogLoss, LogReg, NewtonOptions, Penalty, Ridge, RidgeGram, SquaredError, closed_form, data,
};

#[path = "common/heap.rs"]
mod heap;

#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

// Reference values (../shared/peers/README.md; numpy closed form and JAX unrolled GD).
const W1_HYPERGRAD: f64 = 0.0694672879308;
const W1_VAL: f64 = 0.0693616497225;
/// (T, printed summary value, full-table value) of the JAX unrolled hypergradients.
const W1_UNROLLED: [(usize, f64, f64); 3] = [
    (10, 6.84e-4, 0.0006837594754),
    (100, 1.371e-2, 0.01371432269),
    (1000, 6.9246e-2, 0.06924565818),
];
const W2_NORM: f64 = 0.00481000608726;
const W2_FIRST5: [f64; 5] = [
    0.00194819222505,
    0.000849266024013,
    0.000671863141446,
    0.00199852307218,
    -2.73471382252e-05,
];
const STEPS: usize = 150;

/// Checks collected along the way; any failure makes the exit status 1.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn rel(&mut self, what: &str, got: f64, want: f64, tol: f64) {
        let err = (got - want).abs() / want.abs();
        if err.is_nan() || err > tol {
            self.0.push(format!(
                "{what}: got {got:.12e}, want {want:.12e} (relative error {err:.1e} > {tol:.0e})"
            ));
        }
    }
    /// `got` rounds to `printed` at the printed number of significant digits.
    fn printed(&mut self, what: &str, got: f64, printed: f64, digits: i32) {
        let scale = 10f64.powi(printed.abs().log10().floor() as i32 - digits + 1);
        if ((got / scale).round() - (printed / scale).round()).abs() > 0.5 {
            self.0.push(format!(
                "{what}: got {got:.6e}, printed reference {printed:e}"
            ));
        }
    }
}

/// Peak heap bytes allocated above the level at the start, and the result. ad-core's idle
/// tape buffers are released first, so the peak counts every buffer the call needs.
fn peak_heap<R>(f: impl FnOnce() -> R) -> (usize, R) {
    Tape::release_idle_buffers();
    HEAP.peak_of(f)
}

/// Median seconds per call over `n` calls (after one warm-up call).
fn time_median(n: usize, mut f: impl FnMut()) -> f64 {
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

fn fmt_bytes(b: usize) -> String {
    if b >= 1 << 20 {
        format!("{:.2} MiB", b as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} us", s * 1e6)
    } else {
        format!("{:.2} ms", s * 1e3)
    }
}

/// Gradient descent on the ridge objective, θ ← θ − η (G θ − b + λ θ), with G = XᵀX/n and
/// b = Xᵀy/n.
struct GdStep {
    g: DMatrix<f64>,
    b: DMatrix<f64>,
    eta: f64,
}

/// The step map on a tape: G and b are recorded once, before the loop, and every step uses
/// those two tape constants (nothing of size d x d is recorded per step).
struct GdStepOnTape {
    g: MatVar,
    b: MatVar,
    eta: f64,
}

impl GdStepOnTape {
    fn step(&self, x: &MatVar, lam: &MatVar) -> MatVar {
        let grad = self.g.matmul(x).sub(&self.b).add(&x.scale(lam.get(0, 0)));
        x.sub(&grad.scale_f64(self.eta))
    }
}

impl GdStep {
    /// The same T steps in plain `f64`, two vectors, nothing stored.
    fn run(&self, lam: f64, iterations: usize) -> Vec<f64> {
        let d = self.g.nrows();
        let mut x = nalgebra::DVector::zeros(d);
        let mut grad = nalgebra::DVector::zeros(d);
        for _ in 0..iterations {
            grad.copy_from(&self.b.column(0));
            grad.gemv(1.0, &self.g, &x, -1.0); // G x − b
            grad.axpy(lam, &x, 1.0); // + λ x
            x.axpy(-self.eta, &grad, 1.0);
        }
        x.as_slice().to_vec()
    }
}

/// Reverse mode through T steps on the tape: (hypergradient, tape bytes recorded).
fn unrolled(step: &GdStep, val: &SquaredError, lam: f64, t: usize) -> (f64, usize) {
    let tape = Tape::new();
    let theta = tape.vector_var(&[lam]);
    let on_tape = GdStepOnTape {
        g: tape.constant_mat(step.g.clone()),
        b: tape.constant_mat(step.b.clone()),
        eta: step.eta,
    };
    let mut x = tape.constant_mat(DMatrix::zeros(step.g.nrows(), 1));
    for _ in 0..t {
        x = on_tape.step(&x, &theta);
    }
    let loss = val.loss(&x, &theta);
    let bytes = tape.recorded_bytes();
    let g = tape.gradient(loss).expect("unrolled gradient");
    (g.wrt_mat(&theta)[0], bytes)
}

struct Row {
    method: String,
    hypergrad: f64,
    rel_err: f64,
    peak: usize,
    time: f64,
    note: String,
}

/// Part 1's rows and the numbers of its summary.
struct Part1 {
    rows: Vec<Row>,
    /// Relative error of the converged implicit hypergradient.
    implicit_err: f64,
    /// Peak heap of implicit-at-θ_T for T = 10 and T = 1000.
    implicit_peaks: [usize; 2],
    /// Relative errors of the unrolled hypergradient at T = 10 and T = 1000.
    unrolled_err: [f64; 2],
    /// Peak heap of the unrolled hypergradient at T = 10 and T = 1000.
    unrolled_peaks: [usize; 2],
}

impl Part1 {
    fn ratio(peaks: [usize; 2]) -> f64 {
        peaks[1] as f64 / peaks[0] as f64
    }
}

fn part1(checks: &mut Checks) -> Result<Part1, ImplicitError> {
    let w1 = data::w1();
    let ridge = Ridge::new(&w1.train, Penalty::Shared)?;
    let val = SquaredError::new(&w1.val)?;
    let lam = data::W1_LAMBDA;
    let exact = closed_form(&ridge, &val, &[lam])?;
    checks.rel(
        "W1 closed-form hypergradient",
        exact.grad[0],
        W1_HYPERGRAD,
        1e-9,
    );
    checks.rel("W1 validation loss", exact.val_loss, W1_VAL, 1e-9);
    let reference = exact.grad[0];
    let rel = |g: f64| (g - reference).abs() / reference.abs();
    let gram: RidgeGram = ridge.gram();
    let step = GdStep {
        g: gram.gram().clone(),
        b: DMatrix::from_column_slice(50, 1, gram.rhs()),
        eta: data::W1_STEP,
    };
    let mut rows = Vec::new();

    // Warm up every configuration once (lazy statics, code paths); `peak_heap` then
    // releases ad-core's idle tape buffers, so each peak counts all the buffers one
    // hypergradient needs.
    for t in [10, 100, 1000] {
        black_box(unrolled(&step, &val, lam, t));
    }

    // Approach 1: unrolled.
    let mut unrolled_peak = [0usize; 2];
    let mut unrolled_err = [0f64; 2];
    for (t, printed, full) in W1_UNROLLED {
        let (peak, (g, bytes)) = peak_heap(|| unrolled(&step, &val, lam, t));
        let digits = if t == 10 {
            3
        } else if t == 100 {
            4
        } else {
            5
        };
        checks.printed(
            &format!("W1 unrolled T={t} hypergradient"),
            g,
            printed,
            digits,
        );
        checks.rel(&format!("W1 unrolled T={t} (10 digits)"), g, full, 1e-9);
        let time = time_median(if t == 1000 { 9 } else { 31 }, || {
            black_box(unrolled(&step, &val, lam, t));
        });
        if t == 10 {
            (unrolled_peak[0], unrolled_err[0]) = (peak, rel(g));
        } else if t == 1000 {
            (unrolled_peak[1], unrolled_err[1]) = (peak, rel(g));
        }
        rows.push(Row {
            method: format!("unrolled GD on the tape, T = {t}"),
            hypergrad: g,
            rel_err: rel(g),
            peak,
            time,
            note: format!("tape records {}", fmt_bytes(bytes)),
        });
    }

    // Approach 2 at the same inner budget: the same T steps in f64, then the IFT at θ_T
    // (matrix-free CG on Hessian-vector products). Refused by default: θ_T is no solution.
    // Accepted here on purpose, with a huge (finite: options are validated) tolerance, to
    // show the bias of differentiating at an early-stopped iterate.
    let relaxed = IftOptions::default().residual_tol(1e300);
    let implicit_at = |t: usize, opts: &IftOptions| {
        let x = step.run(lam, t);
        hypergradient_at(&gram, &val, &[lam], InnerSolution::new(x, t), opts)
    };
    for t in [10, 100, 1000] {
        black_box(implicit_at(t, &relaxed)?);
    }
    let mut implicit_peak = [0usize; 2];
    for t in [10, 100, 1000] {
        let refused = match implicit_at(t, &IftOptions::default()) {
            Err(ImplicitError::NotAtSolution { residual, .. }) => {
                format!("refused by default: ||grad L|| = {residual:.1e} > 1e-6")
            }
            Ok(_) => "accepted".to_string(),
            Err(e) => return Err(e),
        };
        let (peak, h) = peak_heap(|| implicit_at(t, &relaxed));
        let h = h?;
        let time = time_median(31, || {
            black_box(implicit_at(t, &relaxed).unwrap());
        });
        if t == 10 {
            implicit_peak[0] = peak;
        } else if t == 1000 {
            implicit_peak[1] = peak;
        }
        rows.push(Row {
            method: format!("implicit at the GD iterate θ_T, T = {t}"),
            hypergrad: h.grad[0],
            rel_err: rel(h.grad[0]),
            peak,
            time,
            note: format!(
                "{refused}; backward {}: {} iterations",
                h.report
                    .linear
                    .as_ref()
                    .map_or("-".to_string(), |r| format!("{:?}", r.method)),
                h.report.steps
            ),
        });
    }

    // Approach 2 done right: converged inner solve (Cholesky), factor reused backward.
    let converged = || {
        let g = ridge.gram();
        let mut solver = |t: &[f64], _: Option<&[f64]>| -> Result<InnerSolution, ImplicitError> {
            let (w, chol) = g.solve(t)?;
            Ok(InnerSolution {
                x: w,
                iterations: 1,
                factor: Some(Factor::Cholesky(chol)),
            })
        };
        hypergradient(&g, &val, &[lam], &mut solver, &IftOptions::default())
    };
    black_box(converged()?);
    let (peak, h) = peak_heap(converged);
    let h = h?;
    checks.rel("W1 implicit hypergradient", h.grad[0], W1_HYPERGRAD, 1e-9);
    checks.rel("W1 implicit validation loss", h.val_loss, W1_VAL, 1e-9);
    let time = time_median(101, || {
        black_box(converged().unwrap());
    });
    let implicit_err = rel(h.grad[0]);
    rows.push(Row {
        method: "implicit, converged (Gram + Cholesky, factor reused)".to_string(),
        hypergrad: h.grad[0],
        rel_err: implicit_err,
        peak,
        time,
        note: format!(
            "residual {:.1e}; backward {} product",
            h.report.forward_residual,
            h.report.linear.as_ref().map_or(0, |l| l.matvecs)
        ),
    });
    Ok(Part1 {
        rows,
        implicit_err,
        implicit_peaks: implicit_peak,
        unrolled_err,
        unrolled_peaks: unrolled_peak,
    })
}

const U_LO: f64 = -12.0;
const U_HI: f64 = 6.0;

fn to_u(v: &[f64]) -> Vec<f64> {
    v.iter()
        .map(|v| U_LO + (U_HI - U_LO) / (1.0 + (-v).exp()))
        .collect()
}

fn to_v(u: &[f64]) -> Vec<f64> {
    u.iter()
        .map(|u| {
            let p = (u - U_LO) / (U_HI - U_LO);
            (p / (1.0 - p)).ln()
        })
        .collect()
}

/// The W2 inner objective over box-bounded log-λ: L(w, u(v)).
struct Bounded<'a>(&'a LogReg);

impl Objective for Bounded<'_> {
    fn value<M: MatOps>(&self, w: &M, v: &[M]) -> M::Scalar {
        let u = v[0].sigmoid().scale_f64(U_HI - U_LO).add_f64(U_LO);
        self.0.value(w, &[u])
    }
}

/// The held-out test loss at hyperparameters `u`: w*(u) by Newton, then the mean logistic
/// loss on the test rows (`data::w2_test`: the same formulas at row offset 2000, rows that
/// neither training nor validation uses).
fn test_loss(inner: &LogReg, test: &LogLoss, u: &[f64]) -> Result<f64, ImplicitError> {
    let w = inner.newton(u, None, &NewtonOptions::default())?.x;
    Ok(test.value_and_grad(&w, u)?.0)
}

/// Part 2's trace, the test loss at every traced step, and the L-BFGS validation losses.
type Part2 = (Trace, Vec<f64>, Vec<f64>);

fn part2(checks: &mut Checks) -> Result<Part2, ImplicitError> {
    let w2 = data::w2();
    let inner = LogReg::new(&w2.train)?;
    let val = LogLoss::new(&w2.val)?;
    let test = LogLoss::new(&data::w2_test())?;
    let u0 = data::w2_log_lambda(50);
    let mut newton = inner.newton_solver(NewtonOptions::default());
    // The hypergradient at the starting point against the reference.
    let h = hypergradient(&inner, &val, &u0, &mut newton, &IftOptions::default())?;
    let norm = h.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    checks.rel("W2 hypergradient norm", norm, W2_NORM, 1e-9);
    for (j, (g, r)) in h.grad.iter().zip(W2_FIRST5).enumerate() {
        checks.rel(&format!("W2 hypergradient[{j}]"), *g, r, 1e-9);
    }
    let opts = HyperOptions::default().steps(STEPS).learning_rate(0.1);
    // The library prints nothing; the progress bar is drawn here, from the observer.
    let bar = indicatif::ProgressBar::new(STEPS as u64);
    let trace = optimize_observed(&inner, &val, &u0, &mut newton, &opts, |s: &TraceStep| {
        bar.set_message(format!("val loss {:.6}", s.val_loss));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    // argmin's L-BFGS extrapolates along flat directions of V (a λ_j → ∞ drops feature j)
    // far enough to overflow λ, so it runs over box-bounded log λ ∈ [U_LO, U_HI]:
    // u = U_LO + (U_HI − U_LO) σ(v). The reparametrization is part of the objective,
    // written with `MatOps`, so the hypergradient with respect to v comes out directly.
    let bounded = Bounded(&inner);
    let mut bounded_newton = |v: &[f64], warm: Option<&[f64]>| {
        inner
            .newton(&to_u(v), warm, &NewtonOptions::default())
            .map(InnerSolution::from)
    };
    let lbfgs = optimize_lbfgs(
        &bounded,
        &val,
        &to_v(&u0),
        &mut bounded_newton,
        &LbfgsOptions::default().max_iters(40).grad_tol(1e-7),
        &IftOptions::default(),
    )?;
    let lbfgs_losses = lbfgs.trace.iter().map(|s| s.val_loss).collect();
    println!(
        "argmin L-BFGS outer optimizer (log λ in [{U_LO}, {U_HI}]): {} iterations, {} hypergradients, converged: {}, \
         val loss {:.6} -> {:.6}, held-out test loss {:.6} -> {:.6}",
        lbfgs.iterations,
        lbfgs.trace.len(),
        lbfgs.converged,
        lbfgs.trace[0].val_loss,
        lbfgs.trace.last().map_or(f64::NAN, |s| s.val_loss),
        test_loss(&inner, &test, &u0)?,
        test_loss(&inner, &test, &to_u(&lbfgs.theta))?,
    );
    let tests = trace
        .steps
        .iter()
        .map(|s| test_loss(&inner, &test, &s.theta))
        .collect::<Result<Vec<f64>, _>>()?;
    Ok((trace, tests, lbfgs_losses))
}

fn plot(trace: &Trace, lbfgs: &[f64], path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let adam: Vec<(f64, f64)> = trace
        .steps
        .iter()
        .map(|s| (s.step as f64, s.val_loss))
        .collect();
    let all = adam.iter().map(|p| p.1).chain(lbfgs.iter().copied());
    let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let pad = 0.05 * (hi - lo);
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "W2: validation loss, 50 per-feature L2 hyperparameters",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..(trace.steps.len() as f64), (lo - pad)..(hi + pad))?;
    chart
        .configure_mesh()
        .x_desc("hypergradient evaluations")
        .y_desc("validation loss")
        .draw()?;
    chart
        .draw_series(LineSeries::new(adam, &BLUE))?
        .label("Adam (lr 0.1), warm-started Newton inner solves")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(LineSeries::new(
            lbfgs.iter().enumerate().map(|(i, v)| (i as f64, *v)),
            &RED,
        ))?
        .label("argmin L-BFGS, bounded log λ (every evaluation)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn main() {
    let start = Instant::now();
    let mut checks = Checks::default();
    let p1 = match part1(&mut checks) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error in part 1: {e}");
            std::process::exit(1);
        }
    };
    println!("Part 1 — W1 ridge, d val / d λ at λ = 0.1 (closed form {W1_HYPERGRAD})\n");
    println!("| method | hypergradient | rel. error | peak heap | time | note |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    for r in &p1.rows {
        println!(
            "| {} | {:.10e} | {:.2e} | {} | {} | {} |",
            r.method,
            r.hypergrad,
            r.rel_err,
            fmt_bytes(r.peak),
            fmt_time(r.time),
            r.note
        );
    }
    let (u, i) = (p1.unrolled_peaks, p1.implicit_peaks);
    println!(
        "\npeak heap T=1000 / T=10 (idle tape buffers released before each measurement): \
         unrolled {:.1}x ({} -> {}; {} per unrolled step), implicit at θ_T {:.3}x ({} -> {})\n",
        Part1::ratio(u),
        fmt_bytes(u[0]),
        fmt_bytes(u[1]),
        fmt_bytes((u[1] - u[0]) / 990),
        Part1::ratio(i),
        fmt_bytes(i[0]),
        fmt_bytes(i[1]),
    );

    let (trace, tests, lbfgs) = match part2(&mut checks) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error in part 2: {e}");
            std::process::exit(1);
        }
    };
    println!("\nPart 2 — W2 logistic regression, Adam on 50 hyperparameters u = log λ\n");
    println!(
        "The tuning minimizes the validation loss (200 rows at offset 1000); the held-out test \
         loss is on 200 further rows from the same formulas at offset 2000, never seen by the \
         tuning.\n"
    );
    println!(
        "| step | val loss (minimized) | held-out test loss | ‖dV/du‖ | Newton steps | backward its | backward products |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for s in trace
        .steps
        .iter()
        .filter(|s| s.step % 15 == 0 || s.step + 1 == STEPS)
    {
        println!(
            "| {} | {:.8} | {:.8} | {:.3e} | {} | {} | {} |",
            s.step,
            s.val_loss,
            tests[s.step],
            s.hypergrad_norm,
            s.inner_iterations,
            s.backward_iterations,
            s.backward_matvecs
        );
    }
    let (v0, v1) = (trace.steps[0].val_loss, trace.steps[STEPS - 1].val_loss);
    let (t0, t1) = (tests[0], tests[STEPS - 1]);
    let lam = trace.theta.iter().map(|u| u.exp());
    let (lmin, lmax) = lam.fold((f64::INFINITY, 0f64), |(a, b), l| (a.min(l), b.max(l)));
    println!("λ after tuning: min {lmin:.3e}, max {lmax:.3e}");
    if v1.is_nan() || v1 >= v0 {
        checks
            .0
            .push(format!("W2 validation loss did not fall: {v0} -> {v1}"));
    }
    let _ = std::fs::create_dir_all("out");
    let path = "out/hyperparam_val_loss.svg";
    match plot(&trace, &lbfgs, path) {
        Ok(()) => println!("wrote {path}"),
        Err(e) => checks.0.push(format!("could not write {path}: {e}")),
    }
    println!("total time {:.1} s", start.elapsed().as_secs_f64());
    for c in &checks.0 {
        eprintln!("CHECK FAILED: {c}");
    }
    println!(
        "summary: implicit_rel_err={:.3e} unrolled_T10_rel_err={:.4} unrolled_T1000_rel_err={:.3e} \
         implicit_peak_T1000_over_T10={:.3} unrolled_peak_T1000_over_T10={:.1} \
         unrolled_peak_T10_bytes={} unrolled_peak_T1000_bytes={} \
         val_loss_start={v0:.8} val_loss_end={v1:.8} test_loss_start={t0:.8} test_loss_end={t1:.8}",
        p1.implicit_err,
        p1.unrolled_err[0],
        p1.unrolled_err[1],
        Part1::ratio(i),
        Part1::ratio(u),
        u[0],
        u[1],
    );
    if !checks.0.is_empty() {
        std::process::exit(1);
    }
}
