//! W5 (../shared/peers/w5_maml.py): MAML (1 and 5 inner steps), FOMAML and iMAML
//! meta-gradients of a 1-40-40-1 ReLU network over 25 sinusoid tasks, checked against the
//! JAX reference to 1e-9 relative, then timed single-threaded (medians), with the rayon
//! speed-up on 2 threads and the peak heap of one meta-gradient against the number of
//! inner steps (a counting global allocator).
//!
//! ```sh
//! cargo run --release --example peers_w5               # ~10 s
//! cargo run --release --example peers_w5 -- --repeat 200 --no-memory
//! perf record -g target/release/examples/peers_w5 --loop maml1   # one row, 5 s
//! ```
//!
//! Every row's answer is checked before it is timed; a wrong row prints FAILED and the
//! exit status is 1. The JAX column is the median recorded in
//! `../shared/peers/results/W5_maml.json` (another run, other load); `scripts/bench_w5.sh`
//! races both sides in the same run, pinned to one core.

use std::time::Instant;

use diffprog::ad::Tape;
use diffprog::ad::kernels::paths;
use diffprog::metalearn::w5::{self, Reference};
use diffprog::metalearn::{
    Algorithm, ImamlOptions, InnerSgd, MetaGradient, Parallelism, Stop, meta_gradient,
};

#[path = "common/heap.rs"]
mod heap;

#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

/// Peak heap bytes above the level at the start (ad-core's idle tape buffers released
/// first, so the peak counts every buffer the call needs), and the result.
fn peak_heap<R>(f: impl FnOnce() -> R) -> (usize, R) {
    Tape::release_idle_buffers();
    HEAP.peak_of(f)
}

/// Median seconds per call over `n` calls (after two warm-up calls).
fn time_median(n: usize, mut f: impl FnMut()) -> f64 {
    f();
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

/// The largest relative error against the reference (loss, norm, recorded entries
/// relative to the norm).
fn max_error(mg: &MetaGradient, r: &Reference) -> f64 {
    let norm = mg.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    let mut e = ((mg.loss - r.meta_loss) / r.meta_loss).abs();
    e = e.max(((norm - r.grad_norm) / r.grad_norm).abs());
    for (k, &i) in w5::ENTRIES.iter().enumerate() {
        e = e.max(((mg.grad[i] - r.grad_entries[k]) / r.grad_norm).abs());
    }
    if e.is_nan() { f64::INFINITY } else { e }
}

struct Row {
    key: &'static str,
    label: &'static str,
    algorithm: Algorithm,
    reference: Reference,
    jax_s: f64,
}

fn rows() -> Vec<Row> {
    let sgd = InnerSgd::default();
    vec![
        Row {
            key: "maml1",
            label: "MAML 1 step (second order)",
            algorithm: Algorithm::Maml(sgd),
            reference: w5::MAML_1,
            jax_s: w5::JAX_MEDIAN_S[0],
        },
        Row {
            key: "fomaml1",
            label: "FOMAML 1 step",
            algorithm: Algorithm::Fomaml(sgd),
            reference: w5::FOMAML_1,
            jax_s: w5::JAX_MEDIAN_S[1],
        },
        Row {
            key: "maml5",
            label: "MAML 5 steps (second order)",
            algorithm: Algorithm::Maml(sgd.steps(5)),
            reference: w5::MAML_5,
            jax_s: w5::JAX_MEDIAN_S[2],
        },
        Row {
            key: "fomaml5",
            label: "FOMAML 5 steps",
            algorithm: Algorithm::Fomaml(sgd.steps(5)),
            reference: w5::FOMAML_5,
            jax_s: w5::JAX_MEDIAN_S[3],
        },
        Row {
            key: "imaml",
            label: "iMAML (100 GD + 5 CG)",
            algorithm: Algorithm::Imaml(ImamlOptions::w5()),
            reference: w5::IMAML,
            jax_s: w5::JAX_MEDIAN_S[4],
        },
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let repeat = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse::<usize>().expect("--repeat takes a count"))
        .unwrap_or(50);
    let memory = !args.iter().any(|a| a == "--no-memory");
    let mlp = w5::mlp();
    let theta = w5::theta();
    let tasks = w5::tasks();
    let run = |alg: &Algorithm, par| meta_gradient(alg, &mlp, &theta, &tasks, par);

    // `--loop KEY` runs one row (maml1, fomaml1, maml5, fomaml5, imaml) for ~5 s (the
    // environment variable LOOP_SECS sets another duration), for perf and A/B timing.
    if let Some(key) = args
        .iter()
        .position(|a| a == "--loop")
        .and_then(|i| args.get(i + 1))
    {
        let row = rows()
            .into_iter()
            .find(|r| r.key == key.as_str())
            .expect("--loop takes maml1, fomaml1, maml5, fomaml5 or imaml");
        let secs: f64 = std::env::var("LOOP_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5.0);
        let start = Instant::now();
        let mut calls = 0usize;
        while start.elapsed().as_secs_f64() < secs {
            std::hint::black_box(run(&row.algorithm, Parallelism::Serial).unwrap());
            calls += 1;
        }
        println!(
            "{key}: {calls} calls, {:.1} us per call",
            start.elapsed().as_secs_f64() * 1e6 / calls as f64
        );
        return;
    }

    println!("W5: 25 sinusoid tasks, K = 10, 1-40-40-1 ReLU (1761 parameters), one thread");
    println!("elementwise kernels: {}", paths::describe());
    println!(
        "{:<30} {:>10} {:>12} {:>10} {:>10}",
        "meta-gradient", "ours ms", "JAX ms (ref)", "ours/JAX", "max rel err"
    );
    let mut failed = false;
    let mut times = Vec::new();
    for row in rows() {
        let err = match run(&row.algorithm, Parallelism::Serial) {
            Ok(mg) => max_error(&mg, &row.reference),
            Err(e) => {
                println!("{:<30} FAILED: {e}", row.label);
                failed = true;
                continue;
            }
        };
        if err > 1e-9 {
            println!("{:<30} FAILED: relative error {err:.1e} > 1e-9", row.label);
            failed = true;
            continue;
        }
        let n = if row.key == "imaml" {
            repeat.div_ceil(5).max(5)
        } else {
            repeat
        };
        let t = time_median(n, || {
            run(&row.algorithm, Parallelism::Serial).unwrap();
        });
        println!(
            "{:<30} {:>10.3} {:>12.3} {:>10.2} {:>10.1e}",
            row.label,
            t * 1e3,
            row.jax_s * 1e3,
            t / row.jax_s,
            err
        );
        times.push((row.key, t));
    }

    // The rayon figure: the same meta-gradients over tasks on a 2-thread pool.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a 2-thread pool");
    for row in rows().iter().filter(|r| r.key.starts_with("maml")) {
        let serial = run(&row.algorithm, Parallelism::Serial).unwrap();
        let parallel = pool.install(|| run(&row.algorithm, Parallelism::Rayon).unwrap());
        assert_eq!(serial, parallel, "thread count changed the result");
        let t1 = time_median(repeat, || {
            run(&row.algorithm, Parallelism::Serial).unwrap();
        });
        let t2 = pool.install(|| {
            time_median(repeat, || {
                run(&row.algorithm, Parallelism::Rayon).unwrap();
            })
        });
        println!(
            "rayon, 2 threads: {:<28} {:.3} ms (speed-up {:.2}x, bit-identical)",
            row.label,
            t2 * 1e3,
            t1 / t2
        );
    }

    let mut peaks = String::new();
    if memory {
        println!("peak heap of one meta-gradient (25 tasks, serial) against inner steps k:");
        println!("{:<8} {:>14} {:>14}", "k", "MAML", "iMAML");
        let mut table = Vec::new();
        for k in [1usize, 5, 20] {
            let maml = Algorithm::Maml(InnerSgd::default().steps(k));
            let imaml = Algorithm::Imaml(ImamlOptions::w5().inner(Stop::Fixed { iters: k }));
            run(&maml, Parallelism::Serial).unwrap();
            run(&imaml, Parallelism::Serial).unwrap();
            let (pm, _) = peak_heap(|| run(&maml, Parallelism::Serial).unwrap());
            let (pi, _) = peak_heap(|| run(&imaml, Parallelism::Serial).unwrap());
            println!(
                "{k:<8} {:>11.1} KiB {:>11.1} KiB",
                pm as f64 / 1024.0,
                pi as f64 / 1024.0
            );
            table.push((pm, pi));
        }
        let rm = table[2].0 as f64 / table[0].0 as f64;
        let ri = table[2].1 as f64 / table[0].1 as f64;
        peaks = format!(" maml_peak_k20_over_k1={rm:.2} imaml_peak_k20_over_k1={ri:.2}");
    }

    let fields: Vec<String> = times
        .iter()
        .map(|(k, t)| format!("{k}_s={t:.6e}"))
        .collect();
    println!("w5_times: {}", fields.join(" "));
    let ratio_of = |key: &str, jax: f64| {
        times
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, t)| format!("{:.2}", t / jax))
            .unwrap_or_else(|| "FAILED".into())
    };
    println!(
        "summary: w5_step1_over_jax_ref={} w5_step5_over_jax_ref={}{peaks}",
        ratio_of("maml1", w5::JAX_MEDIAN_S[0]),
        ratio_of("maml5", w5::JAX_MEDIAN_S[2])
    );
    if failed {
        std::process::exit(1);
    }
}
