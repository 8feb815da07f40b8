//! Peak heap of one gradient against the number of solver steps, per method, measured with
//! a counting global allocator (`examples/common/heap.rs`).
//!
//! ```sh
//! cargo run --release --example neuralode_memory
//! ```
//!
//! The W4 field (2-50-2 tanh MLP) over t in [0, 10] with 10 observations; the number of
//! steps is forced by `max_step = 10 / N` at a loose tolerance (1e-3), so N is 100, 1000 or
//! 10 000 whatever the method. Peak = the largest heap in use during `value_and_grad`
//! (forward solve + backward pass) above what was in use before it.

use std::time::Instant;

use diffprog::neuralode::problems::W4;
use diffprog::neuralode::{GradOptions, Method, SolverOptions, value_and_grad};

#[path = "common/heap.rs"]
mod heap;

#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

fn measure(w: &W4, ts: &[f64], method: Method, n: usize) -> (usize, f64, usize) {
    let opts = GradOptions::default()
        .solver(
            SolverOptions::default()
                .rtol(1e-3)
                .atol(1e-3)
                .max_step(10.0 / n as f64),
        )
        .method(method);
    let targets = w.targets.rows(0, ts.len()).into_owned();
    let t = Instant::now();
    let (peak, (_, g)) = HEAP.peak_of(|| {
        value_and_grad(&w.f, &w.theta, &w.h0, 0.0, ts, &opts, |s| {
            let r = s - &targets;
            (r.norm_squared(), r * 2.0)
        })
        .expect("gradient")
    });
    let secs = t.elapsed().as_secs_f64();
    (peak, secs, g.stats.accepted_forward)
}

fn main() {
    let w = W4::new();
    let ts: Vec<f64> = (1..=10).map(|k| k as f64).collect();
    let methods = [
        ("direct", Method::Direct),
        (
            "checkpointed every 100",
            Method::Checkpointed { every: 100 },
        ),
        ("recursive-checkpointed", Method::RecursiveCheckpointed),
        ("interpolating", Method::Interpolating),
        (
            "interpolating-checkpointed every 100",
            Method::InterpolatingCheckpointed { every: 100 },
        ),
        ("interpolating-recursive", Method::InterpolatingRecursive),
        ("backsolve", Method::Backsolve { reset_state: true }),
    ];
    let ns = [100, 1000, 10_000];
    println!("peak heap of one W4-field gradient (bytes) against forward steps N");
    println!();
    println!("| method | N = 100 | N = 1000 | N = 10 000 | 10 000 / 100 | time at 10 000 |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut summary = Vec::new();
    for (name, m) in methods {
        let mut peaks = Vec::new();
        let mut last_t = 0.0;
        for &n in &ns {
            let (p, t, steps) = measure(&w, &ts, m, n);
            assert!(
                steps >= n && steps <= n + 20,
                "{name}: {steps} steps for N = {n}"
            );
            peaks.push(p);
            last_t = t;
        }
        let ratio = peaks[2] as f64 / peaks[0] as f64;
        println!(
            "| {name} | {} | {} | {} | {ratio:.2} | {:.1} ms |",
            peaks[0],
            peaks[1],
            peaks[2],
            last_t * 1e3
        );
        summary.push(format!(
            "{}_peak_ratio={ratio:.3}",
            name.split(' ').next().unwrap()
        ));
    }
    println!();
    println!("summary: {}", summary.join(" "));
}
