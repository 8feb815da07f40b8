//! W3 and W3b (DEQ layer z = tanh(W z + U x + b), hidden 64, input 16, batch 32, loss
//! mean(z*²)) through deq's public layer API — the map written once against `MatOps`, no
//! derivative code — timed the way the Python peers time theirs (3 warm-up calls, then
//! the median of N timed calls, each the whole gradient: forward solve plus implicit
//! backward, from the same inputs). One thread.
//!
//! ```sh
//! scripts/bench_w3.sh                                   # the fair race against JAX / PyTorch
//! cargo run --release --example peers_w3                # our rows only
//! cargo run --release --example peers_w3 -- --repeat 500 --json out/w3_rust.json
//! ```
//!
//! Every row's answer is checked against the peers' reference (numpy, forward to 1e-14)
//! before it is timed: loss, ‖dL/dW‖_F, ‖dL/dU‖_F and dL/db[0..4] within 1e-8 relative; a
//! failing row is reported as FAILED and the exit status is 1. Forward: per-sample
//! ‖f(z) − z‖ < 1e-10 (the peers: the whole batch's Frobenius norm < 1e-10; the
//! "whole batch" row does exactly that). Backward: the first row uses the peers' criterion
//! (‖u_{t+1} − u_t‖ < 1e-10, the Richardson residual); the others a residual below 1e-10
//! relative to ‖z̄‖ (about 1e-12 absolute here), stricter.

#[path = "common/deq_w3.rs"]
#[allow(dead_code)]
mod w3;

use std::hint::black_box;
use std::time::Instant;

use diffprog::ad::{MatOps, Tape};
use diffprog::deq::solvers::{Method, SolverOptions};
use diffprog::deq::{DeqLayer, DeqOptions, TanhLayer};
use diffprog::implicit::linear::{Method as LinMethod, SolveOptions};
use diffprog::implicit::{Backward, IftOptions};

/// Median and min seconds of `f` after 3 warm-up calls (at most `repeat` calls or ~5 s).
fn bench(repeat: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..3 {
        f();
    }
    let start = Instant::now();
    let mut t = Vec::with_capacity(repeat);
    for k in 0..repeat.max(5) {
        let t0 = Instant::now();
        f();
        t.push(t0.elapsed().as_secs_f64());
        if k + 1 >= 5 && start.elapsed().as_secs_f64() > 5.0 {
            break;
        }
    }
    t.sort_by(f64::total_cmp);
    let n = t.len();
    let median = if n % 2 == 1 {
        t[n / 2]
    } else {
        0.5 * (t[n / 2 - 1] + t[n / 2])
    };
    (median, t[0])
}

/// One gradient: loss, dW, dU, db, forward iterations, backward steps.
struct Answer {
    loss: f64,
    dw: f64,
    du: f64,
    db: [f64; 4],
    fwd: usize,
    bwd: usize,
}

fn gradient(layer: &DeqLayer<TanhLayer>, data: &w3::W3) -> Answer {
    let tape = Tape::new();
    let w = tape.mat_var(data.w.clone());
    let u = tape.mat_var(data.u.clone());
    let b = tape.mat_var(data.b.clone());
    let out = layer
        .forward_data(&data.x, &[w, u, b])
        .expect("forward solve");
    let loss = out.z.square().mean();
    let g = tape.gradient(loss).expect("implicit backward");
    let db = g.wrt_mat(&b);
    Answer {
        loss: loss.value_f64(),
        dw: g.wrt_mat(&w).norm(),
        du: g.wrt_mat(&u).norm(),
        db: [db[0], db[1], db[2], db[3]],
        fwd: out.stats.iterations,
        bwd: out.node.last_report().map_or(0, |r| r.steps),
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-3)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let repeat: usize = arg("--repeat").and_then(|v| v.parse().ok()).unwrap_or(300);
    let json = arg("--json");
    println!("kernel path: {}", diffprog::ad::kernels::paths::describe());
    let fast = IftOptions::default().estimate_error(false);
    // The peers' criterion for the adjoint: ‖u_{t+1} − u_t‖ < 1e-10, which for Richardson
    // on (I − Jᵀ) u = g is exactly the residual ‖g − (I − Jᵀ) u_t‖ < 1e-10.
    let peer_adjoint = fast
        .clone()
        .method(LinMethod::Richardson)
        .linear(SolveOptions::default().rtol(0.0).atol(1e-10));
    let rows: Vec<(&str, DeqOptions)> = vec![
        (
            "Picard fwd + Richardson bwd, the peers' criteria",
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::picard()))
                .ift(peer_adjoint.clone()),
        ),
        (
            "Picard fwd + Anderson bwd (same criteria)",
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::picard()))
                .ift(peer_adjoint.clone().method(LinMethod::Anderson)),
        ),
        (
            "Picard fwd (per sample) + exact GMRES bwd",
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::picard()))
                .ift(fast.clone()),
        ),
        (
            "Picard fwd + exact Richardson bwd (u = g + J^T u)",
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::picard()))
                .ift(fast.clone().method(LinMethod::Richardson)),
        ),
        (
            "Broyden fwd + exact Richardson bwd",
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::broyden()))
                .ift(fast.clone().method(LinMethod::Richardson)),
        ),
        (
            "Picard fwd (whole batch) + exact GMRES bwd",
            DeqOptions::default()
                .solver(
                    SolverOptions::default()
                        .method(Method::picard())
                        .per_sample(false),
                )
                .ift(fast.clone()),
        ),
        (
            "Anderson(m=5) fwd + exact GMRES bwd",
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::anderson()))
                .ift(fast.clone()),
        ),
        (
            "Broyden fwd + exact GMRES bwd",
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::broyden()))
                .ift(fast.clone()),
        ),
        (
            "Picard fwd + Neumann bwd (phantom, 40 steps)",
            DeqOptions::default()
                .solver(SolverOptions::default().method(Method::picard()))
                .ift(fast.clone().backward(Backward::Phantom {
                    steps: 40,
                    damping: 1.0,
                })),
        ),
    ];
    // --loop W3b:0 runs one row for ~5 s (LOOP_SECS sets another duration), for perf and
    // A/B timing.
    if let Some(spec) = arg("--loop") {
        let (wl, row) = spec.split_once(':').expect("--loop W3:<row index>");
        let data = w3::data(wl == "W3b");
        let layer = DeqLayer::new(TanhLayer::default())
            .with_options(rows[row.parse::<usize>().unwrap()].1.clone());
        let secs: f64 = std::env::var("LOOP_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5.0);
        let start = Instant::now();
        let mut calls = 0usize;
        while start.elapsed().as_secs_f64() < secs {
            black_box(gradient(&layer, black_box(&data)));
            calls += 1;
        }
        println!(
            "{spec}: {calls} calls, {:.1} us per call",
            start.elapsed().as_secs_f64() * 1e6 / calls as f64
        );
        return;
    }
    let mut failed = false;
    let mut results = Vec::new();
    for (wl, fullrank) in [("W3", false), ("W3b", true)] {
        let data = w3::data(fullrank);
        let r = w3::reference(fullrank);
        println!(
            "\n{wl} (hidden {}, input {}, batch {}){}",
            w3::H,
            w3::DIN,
            w3::B,
            if fullrank {
                ", full-rank W"
            } else {
                ", rank-2 W"
            }
        );
        println!(
            "{:<48} {:>10} {:>10} {:>5} {:>5} {:>9}",
            "row", "median", "min", "fwd", "bwd", "max rel err"
        );
        for (name, opts) in &rows {
            let layer = DeqLayer::new(TanhLayer::default()).with_options(opts.clone());
            let a = gradient(&layer, &data);
            let mut err = [
                rel(a.loss, r.loss),
                rel(a.dw, r.dw_fro),
                rel(a.du, r.du_fro),
            ]
            .into_iter()
            .fold(0.0, f64::max);
            for i in 0..4 {
                err = err.max(rel(a.db[i], r.db[i]));
            }
            // The phantom row is an approximation: checked only against a loose bound.
            let bound = if name.contains("phantom") { 1e-2 } else { 1e-8 };
            if err > bound {
                println!("{name:<48} FAILED: max relative error {err:e} > {bound:e}");
                failed = true;
                continue;
            }
            let (med, min) = bench(repeat, || {
                black_box(gradient(&layer, black_box(&data)));
            });
            println!(
                "{name:<48} {:>8.1}us {:>8.1}us {:>5} {:>5} {:>9.1e}",
                med * 1e6,
                min * 1e6,
                a.fwd,
                a.bwd,
                err
            );
            results.push(format!(
                "{{\"workload\": \"{wl}\", \"row\": \"{name}\", \"median_s\": {med:e}, \"min_s\": {min:e}, \"fwd_iters\": {}, \"bwd_steps\": {}, \"max_rel_err\": {err:e}}}",
                a.fwd, a.bwd
            ));
        }
    }
    if let Some(path) = json {
        if let Some(dir) = std::path::Path::new(&path).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(&path, format!("[\n{}\n]\n", results.join(",\n"))).expect("write json");
    }
    if failed {
        std::process::exit(1);
    }
}
