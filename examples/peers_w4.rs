//! W4 (neural ODE gradient, `../shared/peers/w4_node.py`): our gradient methods checked
//! against the peers' tight reference, then timed the way the peers time theirs (3 warm-up
//! calls, the median of N timed calls of the whole gradient: forward solve + backward).
//! One thread.
//!
//! ```sh
//! scripts/bench_w4.sh                                  # the race, pinned, alternating
//! cargo run --release --example peers_w4               # table + `summary:` line
//! cargo run --release --example peers_w4 -- --repeat 200 --json out/w4.json
//! ```
//!
//! Also measures the cost of one VJP of f at a W4 point three ways: the fused tape-free
//! MLP (`MlpDynamics`), a fresh ad-core tape per call, and ad-core's `Recording`.
//!
//! Every row's gradient is checked before it is timed: against the peers' reference
//! entries (`--reference`, default `../shared/peers/results/W4_node.json`: the gradient's
//! norm, dL/db2 and dL/dW1[0,:] at rtol = atol = 1e-12) to 1e-6 relative to the gradient
//! norm, and against our own tight (1e-12) direct gradient over all 252 entries. A row
//! that fails is reported as FAILED and not timed; the exit status is then 1.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use diffprog::neuralode::problems::W4;
use diffprog::neuralode::{
    Dynamics, GradOptions, Method, SolverOptions, TapeDynamics, VjpMode, solve, value_and_grad,
};

struct Reference {
    loss: f64,
    grad_norm: f64,
    db2: [f64; 2],
    dw1_0: [f64; 2],
}

fn read_reference(path: &PathBuf) -> Result<Reference, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let r = &v["refs"];
    let num = |k: &str| r[k].as_f64().ok_or(format!("reference lacks {k}"));
    let pair = |k: &str| -> Result<[f64; 2], String> {
        let a = r[k].as_array().ok_or(format!("reference lacks {k}"))?;
        Ok([
            a[0].as_f64().unwrap_or(f64::NAN),
            a[1].as_f64().unwrap_or(f64::NAN),
        ])
    };
    Ok(Reference {
        loss: num("loss_tight_1e-12")?,
        grad_norm: num("grad_norm_tight_1e-12")?,
        db2: pair("dL/db2_tight_1e-12")?,
        dw1_0: pair("dL/dW1[0,:]_tight_1e-12")?,
    })
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// 3 warm-up calls, then the median of `repeat` timed calls (seconds).
fn bench(repeat: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    median(
        (0..repeat)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn fmt_time(s: f64) -> String {
    if s >= 1e-3 {
        format!("{:.3} ms", s * 1e3)
    } else {
        format!("{:.1} us", s * 1e6)
    }
}

fn grad<D: Dynamics>(w: &W4, f: &D, method: Method, tol: f64) -> (f64, Vec<f64>, usize, usize) {
    let opts = GradOptions::default()
        .solver(SolverOptions::default().rtol(tol).atol(tol))
        .method(method);
    let (l, g) = value_and_grad(f, &w.theta, &w.h0, 0.0, &w.ts, &opts, |s| w.loss(s))
        .expect("the W4 gradient");
    (
        l,
        g.theta,
        g.stats.nfe_forward,
        g.stats.vjp_backward + g.stats.nfe_backward,
    )
}

fn main() {
    let mut repeat = 50;
    let mut json: Option<PathBuf> = None;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // PEERS_DIR, else ../shared/peers beside the repository (or beside its worktree dir)
    let mut reference = std::env::var("PEERS_DIR")
        .map(PathBuf::from)
        .ok()
        .or_else(|| {
            ["../shared/peers", "../../shared/peers"]
                .iter()
                .map(|p| root.join(p))
                .find(|p| p.is_dir())
        })
        .unwrap_or(root.join("../shared/peers"))
        .join("results/W4_node.json");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .expect("--repeat N")
            }
            "--json" => json = args.next().map(PathBuf::from),
            "--reference" => reference = args.next().map(PathBuf::from).expect("--reference PATH"),
            other => panic!("unknown argument {other}"),
        }
    }
    let w = W4::new();
    let r = match read_reference(&reference) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("peers_w4: cannot read the reference ({e}); set --reference");
            std::process::exit(2);
        }
    };
    println!(
        "W4 neural ODE gradient (2-50-2 tanh MLP, Dopri5, rtol = atol = 1e-8, 50 observations)"
    );
    println!("kernel path: {}", diffprog::ad::kernels::paths::describe());
    let (_, g_tight, _, _) = grad(&w, &w.f, Method::Direct, 1e-12);
    let tape = TapeDynamics::new(w.f.clone());
    let rec = TapeDynamics::new(w.f.clone()).with_mode(VjpMode::Recording);

    // one VJP of f at a W4 point
    let (h, a) = ([1.3, -0.4], [0.7, 0.2]);
    let (mut fo, mut hb, mut tb) = ([0.0; 2], [0.0; 2], vec![0.0; w.theta.len()]);
    let mut per_call = |d: &dyn Dynamics| {
        bench(repeat.max(20), || {
            for _ in 0..100 {
                d.vjp(0.0, black_box(&h), &w.theta, &a, &mut fo, &mut hb, &mut tb);
            }
        }) / 100.0
    };
    let (t_fused, t_tape, t_rec) = (per_call(&w.f), per_call(&tape), per_call(&rec));
    let mut fe = [0.0; 2];
    let t_eval = bench(repeat.max(20), || {
        for _ in 0..100 {
            w.f.eval(0.0, black_box(&h), &w.theta, &mut fe);
        }
    }) / 100.0;
    println!();
    println!(
        "one evaluation of f: {}; one VJP of f (value + both adjoints):",
        fmt_time(t_eval)
    );
    println!("  fused tape-free MlpDynamics   {:>10}", fmt_time(t_fused));
    println!(
        "  fresh ad-core tape per call   {:>10}  ({:.1}x fused)",
        fmt_time(t_tape),
        t_tape / t_fused
    );
    println!(
        "  ad-core Recording per point   {:>10}  ({:.1}x fused)",
        fmt_time(t_rec),
        t_rec / t_fused
    );

    let fwd_opts = SolverOptions::default().rtol(1e-8).atol(1e-8);
    let sol = solve(&w.f, &w.theta, &w.h0, 0.0, &w.ts, &fwd_opts).expect("forward");
    let t_fwd = bench(repeat, || {
        black_box(solve(&w.f, &w.theta, &w.h0, 0.0, &w.ts, &fwd_opts).unwrap());
    });
    println!();
    println!(
        "| row | median | loss | rel. err vs peers' ref | rel. err vs our 1e-12 | NFE fwd / bwd |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    println!(
        "| forward only | {} | {:.10} | | | {} / 0 ({} + {} steps) |",
        fmt_time(t_fwd),
        w.loss(&sol.states).0,
        sol.stats.nfe_forward,
        sol.stats.accepted_forward,
        sol.stats.rejected_forward
    );
    let rows: Vec<(&str, Method, &dyn Dynamics)> = vec![
        ("direct (fused VJP)", Method::Direct, &w.f),
        (
            "checkpointed every 8 (fused VJP)",
            Method::Checkpointed { every: 8 },
            &w.f,
        ),
        (
            "recursive checkpointed (fused VJP)",
            Method::RecursiveCheckpointed,
            &w.f,
        ),
        (
            "interpolating adjoint (fused VJP)",
            Method::Interpolating,
            &w.f,
        ),
        (
            "interpolating adjoint, recursive (fused VJP)",
            Method::InterpolatingRecursive,
            &w.f,
        ),
        (
            "interpolating adjoint, checkpointed every 8 (fused VJP)",
            Method::InterpolatingCheckpointed { every: 8 },
            &w.f,
        ),
        (
            "backsolve adjoint (fused VJP)",
            Method::Backsolve { reset_state: true },
            &w.f,
        ),
        ("direct (fresh tape per VJP)", Method::Direct, &tape),
        (
            "interpolating adjoint (fresh tape per VJP)",
            Method::Interpolating,
            &tape,
        ),
    ];
    let mut failed = false;
    let mut results = Vec::new();
    for (name, method, f) in rows {
        let (l, g, nf, nb) = grad(&w, &f, method, 1e-8);
        let n = g.len();
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        let err_ref = [
            (norm - r.grad_norm).abs(),
            ((g[n - 2] - r.db2[0]).powi(2) + (g[n - 1] - r.db2[1]).powi(2)).sqrt(),
            ((g[0] - r.dw1_0[0]).powi(2) + (g[1] - r.dw1_0[1]).powi(2)).sqrt(),
        ]
        .into_iter()
        .fold(0.0, f64::max)
            / r.grad_norm;
        let err_own = g
            .iter()
            .zip(&g_tight)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt()
            / g_tight.iter().map(|v| v * v).sum::<f64>().sqrt();
        let ok = err_ref < 1e-6 && err_own < 1e-6 && (l - r.loss).abs() / r.loss < 1e-7;
        let t = if ok {
            bench(repeat, || {
                black_box(grad(&w, &f, method, 1e-8));
            })
        } else {
            failed = true;
            f64::NAN
        };
        println!(
            "| {name} | {} | {l:.10} | {err_ref:.2e} | {err_own:.2e} | {nf} / {nb} |",
            if ok { fmt_time(t) } else { "FAILED".into() }
        );
        results.push(serde_json::json!({
            "row": name, "method": method.name(), "median_s": t, "loss": l,
            "rel_err_vs_peers_ref": err_ref, "rel_err_vs_tight": err_own,
            "nfe_forward": nf, "evals_backward": nb, "ok": ok,
        }));
    }
    // the seminorm: the parameter integral left out of the adjoint solve's error norm
    println!();
    println!("| adjoint (fused VJP) | backward evaluations, seminorm | without | saved |");
    println!("|---|---:|---:|---:|");
    for (name, method) in [
        ("interpolating", Method::Interpolating),
        ("backsolve", Method::Backsolve { reset_state: true }),
    ] {
        let evals = |semi: bool| {
            let opts = GradOptions::default()
                .solver(SolverOptions::default().rtol(1e-8).atol(1e-8))
                .method(method)
                .seminorm(semi);
            let (_, g) = value_and_grad(&w.f, &w.theta, &w.h0, 0.0, &w.ts, &opts, |s| w.loss(s))
                .expect("the W4 gradient");
            g.stats.vjp_backward
        };
        let (on, off) = (evals(true), evals(false));
        println!(
            "| {name} | {on} | {off} | {:.0}% |",
            100.0 * (1.0 - on as f64 / off as f64)
        );
    }
    let best = results
        .iter()
        .filter(|r| r["ok"].as_bool() == Some(true))
        .filter_map(|r| r["median_s"].as_f64())
        .fold(f64::INFINITY, f64::min);
    println!();
    println!(
        "summary: w4_best_grad_s={best:.6e} vjp_fused_s={t_fused:.3e} vjp_tape_over_fused={:.2} vjp_recording_over_fused={:.2} forward_s={t_fwd:.3e}",
        t_tape / t_fused,
        t_rec / t_fused
    );
    if let Some(p) = json {
        let out = serde_json::json!({
            "workload": "W4_node", "repeat": repeat, "forward_s": t_fwd,
            "vjp_fused_s": t_fused, "vjp_tape_s": t_tape, "vjp_recording_s": t_rec,
            "best_grad_s": best, "rows": results,
        });
        std::fs::write(&p, serde_json::to_string_pretty(&out).unwrap()).expect("write --json");
    }
    if failed {
        std::process::exit(1);
    }
}
