//! How much do derivatives cost? ad-core's gradient / function, HVP / gradient and
//! forward-mode `Dual64` / num-dual ratios, measured in one run on one thread.
//!
//! ```sh
//! cargo run --release --example ad_overhead
//! ```
//!
//! Every workload is checked first (gradients against central finite differences or closed
//! forms, HVPs against finite differences of gradients, our dual numbers against
//! num-dual's); a mismatch exits with status 1 before anything is timed. Timing: a warm-up
//! that also sizes the batches, then interleaved rounds (f, grad, hvp, f, grad, hvp, ...)
//! of ~25 ms batches, reporting the median per call; ratios come from the same run.
//! The last line is a machine-readable `summary:` line.

#[path = "common/ad_workloads.rs"]
mod workloads;

use std::hint::black_box;
use std::time::{Duration, Instant};

use diffprog::ad::{self, Dual64, Tape};
use nalgebra::DMatrix;
use workloads::*;

// ---------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------

const WARM_UP: Duration = Duration::from_millis(120);
const BATCH: Duration = Duration::from_millis(25);
const ROUNDS: usize = 19;

/// Median seconds per call of each closure, measured in interleaved rounds.
fn time_interleaved(fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    // Warm-up and calibration: run each closure for WARM_UP, then size its batch.
    let iters: Vec<u64> = fs
        .iter_mut()
        .map(|f| {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < WARM_UP {
                f();
                n += 1;
            }
            let per_call = start.elapsed().as_secs_f64() / n as f64;
            ((BATCH.as_secs_f64() / per_call).ceil() as u64).max(1)
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(ROUNDS); fs.len()];
    for _ in 0..ROUNDS {
        for (k, f) in fs.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..iters[k] {
                f();
            }
            samples[k].push(start.elapsed().as_secs_f64() / iters[k] as f64);
        }
    }
    samples.into_iter().map(median).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Three significant digits.
fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let decimals = (2 - x.abs().log10().floor() as i32).max(0) as usize;
    format!("{x:.decimals$}")
}

/// A duration in the unit that keeps three significant digits readable.
fn fmt_time(s: f64) -> String {
    if s >= 1e-3 {
        format!("{} ms", sig3(s * 1e3))
    } else {
        format!("{} us", sig3(s * 1e6))
    }
}

// ---------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Checks {
    failures: Vec<String>,
    count: usize,
}

impl Checks {
    /// Require `|got - want| <= tol * max(1, |want|)`.
    fn close(&mut self, what: &str, got: f64, want: f64, tol: f64) {
        self.count += 1;
        let err = (got - want).abs();
        if err.is_nan() || err > tol * want.abs().max(1.0) {
            self.failures.push(format!(
                "{what}: got {got:e}, expected {want:e} (tol {tol:e})"
            ));
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn check_scalar(c: &mut Checks, name: &str, f: &impl ad::ScalarFn, plain: fn(&[f64]) -> f64) {
    let n = if name == "scalar" {
        SCALAR_N
    } else {
        ROSENBROCK_N
    };
    let x = point(n);
    let v = direction(n);
    let (y, g) = ad::value_and_grad(f, &x).expect("value_and_grad");
    c.close(&format!("{name}: value"), y, plain(&x), 1e-13);
    let g2 = ad::grad(f, &x).expect("grad");
    c.close(&format!("{name}: grad == value_and_grad"), g2[3], g[3], 0.0);
    let h = 1e-6;
    let hv = ad::hvp(f, &x, &v).expect("hvp");
    let gp = ad::grad(f, &add_scaled(&x, h, &v)).unwrap();
    let gm = ad::grad(f, &add_scaled(&x, -h, &v)).unwrap();
    for i in [0, n / 3, n - 1] {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += h;
        xm[i] -= h;
        let fd = (plain(&xp) - plain(&xm)) / (2.0 * h);
        c.close(&format!("{name}: grad[{i}] vs central FD"), g[i], fd, 1e-6);
        let fd_hv = (gp[i] - gm[i]) / (2.0 * h);
        c.close(
            &format!("{name}: hvp[{i}] vs FD of grad"),
            hv[i],
            fd_hv,
            1e-5,
        );
    }
    // Forward mode, ours and num-dual's, against the reverse-mode directional derivative.
    let xd: Vec<Dual64> = x.iter().zip(&v).map(|(&a, &d)| Dual64::new(a, d)).collect();
    let xn: Vec<Nd> = x.iter().zip(&v).map(|(&a, &d)| Nd::new(a, d)).collect();
    let yd = f.eval(&xd);
    let yn = f.eval(&xn);
    let gv = dot(&g, &v);
    c.close(&format!("{name}: Dual64 eps vs grad.v"), yd.eps, gv, 1e-11);
    c.close(
        &format!("{name}: Dual64 vs num-dual (value)"),
        yd.re,
        yn.0.re,
        1e-13,
    );
    c.close(
        &format!("{name}: Dual64 vs num-dual (eps)"),
        yd.eps,
        yn.0.eps,
        1e-12,
    );
}

fn add_scaled(x: &[f64], h: f64, v: &[f64]) -> Vec<f64> {
    x.iter().zip(v).map(|(a, d)| a + h * d).collect()
}

fn check_rosenbrock_closed_form(c: &mut Checks) {
    let x = point(ROSENBROCK_N);
    let v = direction(ROSENBROCK_N);
    let g = ad::grad(&Rosenbrock, &x).unwrap();
    let hv = ad::hvp(&Rosenbrock, &x, &v).unwrap();
    for i in [0, 1, 500, 501, ROSENBROCK_N - 1] {
        let (k, odd) = (i - i % 2, i % 2 == 1);
        let (a, b) = (x[k], x[k + 1]);
        let (gi, hvi) = if odd {
            (200.0 * (b - a * a), -400.0 * a * v[k] + 200.0 * v[k + 1])
        } else {
            (
                -400.0 * a * (b - a * a) + 2.0 * (a - 1.0),
                (1200.0 * a * a - 400.0 * b + 2.0) * v[k] - 400.0 * a * v[k + 1],
            )
        };
        c.close(
            &format!("rosenbrock: grad[{i}] closed form"),
            g[i],
            gi,
            1e-12,
        );
        c.close(
            &format!("rosenbrock: hvp[{i}] closed form"),
            hv[i],
            hvi,
            1e-12,
        );
    }
}

fn check_mlp(c: &mut Checks, name: &str, m: &MlpLoss) {
    let p = m.params();
    let v = m.direction();
    let f0 = mlp_loss(&m.x, &m.y, &p);
    let (y, g) = ad::value_and_grad_mat(m, &p).expect("value_and_grad_mat");
    c.close(&format!("{name}: value"), y, f0, 1e-12);
    let hv = ad::hvp_mat(m, &p, &v).expect("hvp_mat");
    let h = 1e-5;
    let shift =
        |s: f64| -> Vec<DMatrix<f64>> { p.iter().zip(&v).map(|(a, d)| a + d * s).collect() };
    let (_, gp) = ad::value_and_grad_mat(m, &shift(h)).unwrap();
    let (_, gm) = ad::value_and_grad_mat(m, &shift(-h)).unwrap();
    for (k, pk) in p.iter().enumerate() {
        let (r, cc) = pk.shape();
        for (i, j) in [(0, 0), (r - 1, cc - 1), (r / 2, cc / 3)] {
            let (mut pp, mut pm) = (p.clone(), p.clone());
            pp[k][(i, j)] += h;
            pm[k][(i, j)] -= h;
            let fd = (mlp_loss(&m.x, &m.y, &pp) - mlp_loss(&m.x, &m.y, &pm)) / (2.0 * h);
            c.close(
                &format!("{name}: grad p{k}[{i},{j}] vs central FD"),
                g[k][(i, j)],
                fd,
                1e-6,
            );
            let fd_hv = (gp[k][(i, j)] - gm[k][(i, j)]) / (2.0 * h);
            c.close(
                &format!("{name}: hvp p{k}[{i},{j}] vs FD of grad"),
                hv[k][(i, j)],
                fd_hv,
                1e-5,
            );
        }
    }
    // Forward mode on matrices: <grad, v> == jvp.
    let (_, jv) = ad::jvp_mat(m, &p, &v).expect("jvp_mat");
    let gv: f64 = g.iter().zip(&v).map(|(a, b)| a.dot(b)).sum();
    c.close(&format!("{name}: jvp_mat vs <grad, v>"), jv, gv, 1e-11);
}

// ---------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------

struct Row {
    name: String,
    size: String,
    f: f64,
    grad: f64,
    hvp: f64,
}

fn measure_scalar(
    name: &str,
    size: String,
    f: &impl ad::ScalarFn,
    plain: fn(&[f64]) -> f64,
    n: usize,
) -> Row {
    let x = point(n);
    let v = direction(n);
    let t = time_interleaved(&mut [
        &mut || {
            black_box(plain(black_box(&x)));
        },
        &mut || {
            black_box(ad::grad(f, black_box(&x)).unwrap());
        },
        &mut || {
            black_box(ad::hvp(f, black_box(&x), black_box(&v)).unwrap());
        },
    ]);
    Row {
        name: name.into(),
        size,
        f: t[0],
        grad: t[1],
        hvp: t[2],
    }
}

fn measure_mlp(name: &str, m: &MlpLoss) -> Row {
    let p = m.params();
    let v = m.direction();
    let t = time_interleaved(&mut [
        &mut || {
            black_box(mlp_loss(&m.x, &m.y, black_box(&p)));
        },
        &mut || {
            black_box(ad::value_and_grad_mat(m, black_box(&p)).unwrap());
        },
        &mut || {
            black_box(ad::hvp_mat(m, black_box(&p), black_box(&v)).unwrap());
        },
    ]);
    let w: Vec<String> = m.widths.iter().map(|w| w.to_string()).collect();
    Row {
        name: name.into(),
        size: format!(
            "{} tanh, batch {} ({} params)",
            w.join("-"),
            m.x.nrows(),
            m.n_params()
        ),
        f: t[0],
        grad: t[1],
        hvp: t[2],
    }
}

/// Median time per directional derivative: ours, num-dual's.
fn measure_dual(f: fn(&[Dual64]) -> Dual64, g: fn(&[Nd]) -> Nd) -> (f64, f64) {
    let x = point(SCALAR_N);
    let v = direction(SCALAR_N);
    let xd: Vec<Dual64> = x.iter().zip(&v).map(|(&a, &d)| Dual64::new(a, d)).collect();
    let xn: Vec<Nd> = x.iter().zip(&v).map(|(&a, &d)| Nd::new(a, d)).collect();
    let t = time_interleaved(&mut [
        &mut || {
            black_box(f(black_box(&xd)).eps);
        },
        &mut || {
            black_box(g(black_box(&xn)).0.eps);
        },
    ]);
    (t[0], t[1])
}

fn main() {
    // 1. Correctness first.
    let mut c = Checks::default();
    check_scalar(&mut c, "scalar", &Transcendental, scalar_fn::<f64>);
    check_scalar(&mut c, "rosenbrock", &Rosenbrock, rosenbrock::<f64>);
    check_rosenbrock_closed_form(&mut c);
    let (small, large) = (mlp_small(), mlp_large());
    check_mlp(&mut c, "mlp_small", &small);
    check_mlp(&mut c, "mlp_large", &large);
    {
        let x = point(SCALAR_N);
        let v = direction(SCALAR_N);
        let xd: Vec<Dual64> = x.iter().zip(&v).map(|(&a, &d)| Dual64::new(a, d)).collect();
        let xn: Vec<Nd> = x.iter().zip(&v).map(|(&a, &d)| Nd::new(a, d)).collect();
        let (yd, yn) = (scalar_fn_common(&xd), scalar_fn_common(&xn));
        c.close(
            "scalar (common ops): Dual64 vs num-dual (eps)",
            yd.eps,
            yn.0.eps,
            1e-12,
        );
    }
    if !c.failures.is_empty() {
        for f in &c.failures {
            eprintln!("CHECK FAILED: {f}");
        }
        eprintln!(
            "{} of {} checks failed; not timing.",
            c.failures.len(),
            c.count
        );
        std::process::exit(1);
    }
    let nodes = {
        let tape = Tape::new();
        let xs = tape.vars(&point(SCALAR_N));
        black_box(scalar_fn(&xs));
        tape.scalar_len() - SCALAR_N
    };
    println!(
        "ad-core overhead (release, one thread); all {} correctness checks passed",
        c.count
    );
    println!(
        "median of {ROUNDS} interleaved rounds of ~{} ms batches per cell\n",
        BATCH.as_millis()
    );

    // 2. Timings.
    let rows = vec![
        measure_scalar(
            "scalar",
            format!("n={SCALAR_N}, {nodes} ops (tanh/sin/sqrt/exp/ln/softplus)"),
            &Transcendental,
            scalar_fn::<f64>,
            SCALAR_N,
        ),
        measure_scalar(
            "rosenbrock",
            format!("extended, n={ROSENBROCK_N}"),
            &Rosenbrock,
            rosenbrock::<f64>,
            ROSENBROCK_N,
        ),
        measure_mlp("mlp_small", &small),
        measure_mlp("mlp_large", &large),
    ];
    println!(
        "| workload | size | f64 | grad | grad/f | hvp | hvp/grad |\n|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.size,
            fmt_time(r.f),
            fmt_time(r.grad),
            sig3(r.grad / r.f),
            fmt_time(r.hvp),
            sig3(r.hvp / r.grad)
        );
    }

    let (ours, theirs) = measure_dual(scalar_fn::<Dual64>, scalar_fn::<Nd>);
    let (ours_c, theirs_c) = measure_dual(scalar_fn_common::<Dual64>, scalar_fn_common::<Nd>);
    println!("\nforward mode, one directional derivative of the scalar workload (n={SCALAR_N})\n");
    println!("| function | ad-core Dual64 | num-dual Dual64 | ours/num-dual |\n|---|---|---|---|");
    println!(
        "| scalar (tanh, softplus: each library's own rule) | {} | {} | {} |",
        fmt_time(ours),
        fmt_time(theirs),
        sig3(ours / theirs)
    );
    println!(
        "| scalar, common ops only (sin/sqrt/exp/ln: identical rules) | {} | {} | {} |",
        fmt_time(ours_c),
        fmt_time(theirs_c),
        sig3(ours_c / theirs_c)
    );
    println!();

    let ratio = |name: &str| {
        let r = rows.iter().find(|r| r.name == name).unwrap();
        r.grad / r.f
    };
    let large_row = rows.iter().find(|r| r.name == "mlp_large").unwrap();
    println!(
        "summary: scalar_grad_over_f={} rosenbrock_grad_over_f={} mlp_small_grad_over_f={} \
         mlp_large_grad_over_f={} hvp_over_grad={} dual_over_numdual={}",
        sig3(ratio("scalar")),
        sig3(ratio("rosenbrock")),
        sig3(ratio("mlp_small")),
        sig3(ratio("mlp_large")),
        sig3(large_row.hvp / large_row.grad),
        sig3(ours / theirs)
    );
}
