//! Where W5's time goes: one MAML meta-gradient (1 inner step, 25 tasks) split into its
//! parts (support gradient, query gradient, Hessian-vector product, plain forward), each
//! timed over all 25 tasks. Run under callgrind for instruction counts:
//!
//! ```sh
//! cargo run --release -p metalearn --example w5_parts -- [part] [repeat]
//! ```
//!
//! `part` is one of `all` (default: every part, timed), `maml`, `vag`, `hvp`, `forward`
//! (that part only, `repeat` times, untimed: for a profiler).

use std::time::Instant;

use ad_core::nn::MseLoss;
use metalearn::w5;
use metalearn::{Algorithm, InnerSgd, Parallelism, meta_gradient};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let part = args.get(1).map(String::as_str).unwrap_or("all");
    let repeat: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200);
    let mlp = w5::mlp();
    let theta = w5::theta();
    let tasks = w5::tasks();
    let losses: Vec<MseLoss<'_>> = tasks
        .iter()
        .map(|t| MseLoss::new(&mlp, &t.support_x, &t.support_y).unwrap())
        .collect();
    let v: Vec<f64> = (0..theta.len()).map(|i| (i as f64 * 0.37).sin()).collect();
    let maml = Algorithm::Maml(InnerSgd::default());
    let run = |name: &str| match name {
        "maml" => {
            meta_gradient(&maml, &mlp, &theta, &tasks, Parallelism::Serial).unwrap();
        }
        "vag" => losses.iter().for_each(|l| {
            l.value_and_grad(&theta).unwrap();
        }),
        "hvp" => losses.iter().for_each(|l| {
            l.hvp(&theta, &v).unwrap();
        }),
        "forward" => losses.iter().for_each(|l| {
            std::hint::black_box(l.value(&theta));
        }),
        other => panic!("unknown part {other}"),
    };
    if part != "all" {
        for _ in 0..repeat {
            run(part);
        }
        return;
    }
    println!(
        "{:<8} {:>12} {:>14}",
        "part", "us (25 tasks)", "us per task"
    );
    for name in ["maml", "vag", "hvp", "forward"] {
        run(name);
        let mut t: Vec<f64> = (0..repeat)
            .map(|_| {
                let t0 = Instant::now();
                run(name);
                t0.elapsed().as_secs_f64()
            })
            .collect();
        t.sort_by(f64::total_cmp);
        let med = t[repeat / 2] * 1e6;
        println!("{name:<8} {med:>12.1} {:>14.2}", med / 25.0);
    }
}
