//! The sinusoid benchmark of Finn et al. (2017): MAML, FOMAML, iMAML, Reptile, Meta-SGD and
//! a pretrained baseline trained on the same task stream, evaluated by the paper's protocol
//! (600 fixed test tasks, query MSE after 0..10 fine-tuning steps with alpha = 0.01, mean
//! and 95% confidence interval, diverged tasks counted apart).
//!
//! ```sh
//! cargo run --release --example maml_sinusoid                    # 1000 meta-iterations, ~1 min
//! cargo run --release --example maml_sinusoid -- --full          # the paper's 70,000
//! cargo run --release --example maml_sinusoid -- --iterations 5000 --k 5
//! cargo run --release --example maml_sinusoid -- --full --k 5 --methods maml,fomaml,reptile,pretrained
//! ```
//!
//! Protocol: 1-40-40-1 ReLU network, meta-batch 25, Adam 1e-3, K support + K query points
//! per task, one inner SGD step of 0.01 for MAML and FOMAML, 5 for Reptile, iMAML with
//! lambda = 10 and stated budgets (15 backtracking inner steps of at most 0.01, 5 CG
//! iterations; the residuals reached are printed), Meta-SGD with one step whose rates start at
//! 0.01 and are learned (it fine-tunes with its learned rates, which are tuned for that one
//! step: repeated for 5 or 10 steps they overshoot on some tasks, and the table counts those
//! as diverged). iMAML adapts by a proximal solve, not by
//! SGD with 0.01, so the protocol's SGD evaluation is not its own adaptation: with lambda =
//! 100 (the proximal twin of one 0.01 step) it learned a network too sharp for SGD with
//! 0.01 (diverged tasks); lambda = 10 is the better of the two tried. The table also gives
//! iMAML's query MSE after its own adaptation (the proximal solve) on the same test tasks.
//!
//! Writes `out/maml_sinusoid_mse.svg` (MSE against fine-tuning steps) and
//! `out/maml_sinusoid_task.svg` (one test task before and after adaptation). The last line
//! is `summary: maml_k10_step1_mse=...` with the peak heap of one meta-gradient at 20 inner
//! steps over 1 step for MAML and iMAML (a counting allocator).

use std::time::Instant;

use diffprog::ad::Tape;
use diffprog::ad::nn::{Activation, Init, Mlp};
use diffprog::metalearn::rand::SeedableRng;
use diffprog::metalearn::rand::rngs::StdRng;
use diffprog::metalearn::{
    Algorithm, EvalOptions, EvalReport, ImamlOptions, InnerSgd, MetaSgdOptions, MetaTrainer,
    Parallelism, Sinusoid, Stop, TrainOptions, adapt, evaluate_meta_params, meta_gradient,
    sample_batch,
};
use nalgebra::DMatrix;
use plotters::prelude::*;

#[path = "common/heap.rs"]
mod heap;

#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

struct Args {
    iterations: u64,
    k: usize,
    eval_tasks: usize,
    /// The methods to train (`--methods a,b,...`; default all).
    methods: Option<Vec<String>>,
}

fn args() -> Args {
    let a: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        a.iter()
            .position(|x| x == name)
            .and_then(|i| a.get(i + 1))
            .map(|v| {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{name} takes a number"))
            })
    };
    let full = a.iter().any(|x| x == "--full");
    Args {
        iterations: value("--iterations").unwrap_or(if full { 70_000 } else { 1000 }),
        k: value("--k").unwrap_or(10) as usize,
        eval_tasks: value("--eval-tasks").unwrap_or(600) as usize,
        methods: a
            .iter()
            .position(|x| x == "--methods")
            .and_then(|i| a.get(i + 1))
            .map(|v| v.split(',').map(str::to_owned).collect()),
    }
}

/// The iMAML configuration of this example: lambda 10, 15 backtracking inner steps of at
/// most 0.01, 5 CG iterations (budgets, as in the reference iMAML code).
fn imaml() -> ImamlOptions {
    ImamlOptions::default()
        .lambda(10.0)
        .inner_lr(0.01)
        .inner(Stop::Fixed { iters: 15 })
        .cg(Stop::Fixed { iters: 5 })
}

fn methods() -> Vec<(&'static str, Algorithm)> {
    let one = InnerSgd::default();
    vec![
        ("maml", Algorithm::Maml(one)),
        ("fomaml", Algorithm::Fomaml(one)),
        ("imaml", Algorithm::Imaml(imaml())),
        ("reptile", Algorithm::Reptile(one.steps(5))),
        // Learned per-parameter inner rates, starting from MAML's 0.01; evaluated by
        // fine-tuning with the learned rates.
        ("metasgd", Algorithm::MetaSgd(MetaSgdOptions::default())),
        ("pretrained", Algorithm::Joint),
    ]
}

/// iMAML's query MSE after its own adaptation (the proximal solve) on the test tasks.
fn imaml_own_adaptation(
    mlp: &Mlp,
    imaml_theta: &[f64],
    dist: &Sinusoid,
    eval: &EvalOptions,
) -> Result<(), Box<dyn std::error::Error>> {
    let own: Vec<Option<f64>> = eval
        .test_tasks(dist)?
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Algorithm::Imaml(imaml())
                .task_gradient(mlp, imaml_theta, t, i)
                .ok()
                .map(|g| g.loss)
                .filter(|l| l.is_finite())
        })
        .collect();
    let ok: Vec<f64> = own.iter().flatten().copied().collect();
    let mean = ok.iter().sum::<f64>() / ok.len() as f64;
    let sd =
        (ok.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (ok.len().max(2) - 1) as f64).sqrt();
    println!(
        "{:<12} {:>16}  (iMAML's own adaptation: query MSE at the proximal solution; {} diverged)",
        "imaml-prox",
        format!("{mean:.3} ± {:.3}", 1.96 * sd / (ok.len() as f64).sqrt()),
        own.len() - ok.len()
    );

    Ok(())
}

/// Peak heap bytes of one meta-gradient above the level at the start (ad-core's idle tape
/// buffers released first).
fn peak_heap(f: impl FnOnce()) -> usize {
    Tape::release_idle_buffers();
    HEAP.peak_of(f).0
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args();
    let mlp = Mlp::new(&[1, 40, 40, 1], Activation::Relu, Activation::Identity);
    let theta0 = mlp.init(Init::TorchDefault, 0);
    let dist = Sinusoid::default();
    let train = TrainOptions::default().shots(args.k).seed(2017);
    let eval = EvalOptions::default().shots(args.k).tasks(args.eval_tasks);
    println!(
        "sinusoid, K = {}: {} meta-iterations of batch 25 (Adam 1e-3), evaluation on {} test tasks, {} rayon threads",
        args.k,
        args.iterations,
        args.eval_tasks,
        rayon::current_num_threads()
    );

    let chosen = |name: &str| {
        args.methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|x| x == name))
    };
    if let Some(m) = &args.methods
        && let Some(bad) = m.iter().find(|x| !methods().iter().any(|(n, _)| n == x))
    {
        return Err(format!("--methods: unknown method {bad:?}").into());
    }
    let mut results: Vec<(&str, Vec<f64>, EvalReport, f64)> = Vec::new();
    for (name, alg) in methods().into_iter().filter(|(n, _)| chosen(n)) {
        let start = alg.init_meta_params(theta0.clone());
        let mut trainer = MetaTrainer::new(alg, mlp.clone(), start, train.clone())?;
        let bar = indicatif::ProgressBar::new(args.iterations);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{prefix:>10} [{bar:40}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
            )?
            .progress_chars("=> "),
        );
        bar.set_prefix(alg.name());
        let t0 = Instant::now();
        let mut worst = (0.0f64, 0.0f64);
        trainer.run(&dist, args.iterations, |info| {
            worst = (
                worst.0.max(info.stats.max_inner_residual),
                worst.1.max(info.stats.max_cg_relative_residual),
            );
            if info.iteration % 20 == 0 {
                bar.set_message(format!("meta-loss {:.3}", info.loss));
            }
            bar.inc(1);
        })?;
        let secs = t0.elapsed().as_secs_f64();
        bar.finish();
        if let Algorithm::Imaml(_) = alg {
            println!(
                "    iMAML budgets reached: inner gradient norm <= {:.2e}, CG relative residual <= {:.2e}",
                worst.0, worst.1
            );
        }
        let report = evaluate_meta_params(&alg, &mlp, trainer.theta(), &dist, &eval)?;
        let (theta, rates) = alg.split_meta_params(&mlp, trainer.theta())?;
        if let Some(r) = rates {
            let mean = r.iter().sum::<f64>() / r.len() as f64;
            let (lo, hi) = r
                .iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            println!("    learned inner rates: mean {mean:.4}, min {lo:.4}, max {hi:.4}");
        }
        results.push((name, theta.to_vec(), report, secs));
    }

    println!(
        "\nquery MSE on {} test tasks (mean ± 95% CI; diverged tasks counted, not averaged)",
        args.eval_tasks
    );
    println!(
        "{:<12} {:>16} {:>16} {:>16} {:>16} {:>10}",
        "method", "0 steps", "1 step", "5 steps", "10 steps", "s/1000 it"
    );
    for (name, _, r, secs) in &results {
        let cell = |s: usize| {
            let Some(x) = r.at(s) else {
                return "not evaluated".to_string();
            };
            let d = if x.diverged > 0 {
                format!(" ({} div)", x.diverged)
            } else {
                String::new()
            };
            let Some(mean) = x.mean else {
                return "all diverged".to_string();
            };
            // A mean past 1e4 (fine-tuning blew up without overflowing) in exponent form;
            // no half-width with a single finite task.
            let (m, ci) = if mean.abs() < 1e4 {
                (format!("{mean:.3}"), x.ci95.map(|c| format!("{c:.3}")))
            } else {
                (format!("{mean:.2e}"), x.ci95.map(|c| format!("{c:.1e}")))
            };
            format!("{m} ± {}{d}", ci.as_deref().unwrap_or("n/a"))
        };
        println!(
            "{:<12} {:>16} {:>16} {:>16} {:>16} {:>10.3}",
            name,
            cell(0),
            cell(1),
            cell(5),
            cell(10),
            secs / args.iterations as f64 * 1000.0
        );
    }

    // iMAML adapts by its proximal solve, not by SGD with 0.01: its own adaptation on the
    // same test tasks (query MSE at phi*), diverged tasks counted apart.
    if let Some((_, imaml_theta, _, _)) = results.iter().find(|r| r.0 == "imaml") {
        imaml_own_adaptation(&mlp, imaml_theta, &dist, &eval)?;
    }

    std::fs::create_dir_all("out")?;
    plot_mse(&results, args.k, "out/maml_sinusoid_mse.svg")?;
    plot_task(&mlp, &results, args.k, "out/maml_sinusoid_task.svg")?;
    println!("wrote out/maml_sinusoid_mse.svg and out/maml_sinusoid_task.svg");

    // Peak heap of one meta-gradient (25 tasks, serial) at 1 and 20 inner steps.
    let tasks = sample_batch(&dist, 1, 0, 25, args.k, args.k)?;
    let theta = &results[0].1;
    let peak = |alg: Algorithm| {
        meta_gradient(&alg, &mlp, theta, &tasks, Parallelism::Serial).unwrap();
        peak_heap(|| {
            meta_gradient(&alg, &mlp, theta, &tasks, Parallelism::Serial).unwrap();
        })
    };
    let maml = |k| Algorithm::Maml(InnerSgd::default().steps(k));
    let im = |k| Algorithm::Imaml(imaml().inner(Stop::Fixed { iters: k }));
    let (m1, m20, i1, i20) = (peak(maml(1)), peak(maml(20)), peak(im(1)), peak(im(20)));
    println!(
        "peak heap of one meta-gradient: MAML {:.0} KiB (k=1) -> {:.0} KiB (k=20); iMAML {:.0} KiB -> {:.0} KiB",
        m1 as f64 / 1024.0,
        m20 as f64 / 1024.0,
        i1 as f64 / 1024.0,
        i20 as f64 / 1024.0
    );
    let k = args.k;
    let step1 = |n: &str| {
        results
            .iter()
            .find(|r| r.0 == n)
            .and_then(|r| r.2.at(1)?.mean)
            .unwrap_or(f64::NAN)
    };
    println!(
        "summary: maml_k{k}_step1_mse={:.4} fomaml_k{k}_step1_mse={:.4} imaml_k{k}_step1_mse={:.4} reptile_k{k}_step1_mse={:.4} pretrained_k{k}_step1_mse={:.4} imaml_peak_k20_over_k1={:.2} maml_peak_k20_over_k1={:.2}",
        step1("maml"),
        step1("fomaml"),
        step1("imaml"),
        step1("reptile"),
        step1("pretrained"),
        i20 as f64 / i1 as f64,
        m20 as f64 / m1 as f64
    );
    Ok(())
}

/// A curve to draw: label, points, colour, thin or not.
type Series = (String, Vec<(f64, f64)>, RGBColor, bool);

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

fn plot_mse(
    results: &[(&str, Vec<f64>, EvalReport, f64)],
    k: usize,
    path: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let steps = results[0].2.steps.len();
    // The axis ends a little above the largest MSE before fine-tuning: a method whose
    // fine-tuning blows up (iMAML under SGD) is drawn clipped at the top, not allowed to
    // flatten every other curve.
    let cap = 1.5
        * results
            .iter()
            .filter_map(|r| r.2.at(0)?.mean)
            .fold(0.0f64, f64::max);
    let hi = results
        .iter()
        .flat_map(|r| r.2.steps.iter())
        .filter_map(|s| Some(s.mean? + s.ci95.unwrap_or(0.0)))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .min(cap);
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("sinusoid, K = {k}: query MSE after fine-tuning"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..(steps - 1) as f64, 0f64..hi * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("fine-tuning steps (SGD, 0.01)")
        .y_desc("query MSE")
        .draw()?;
    for (i, (name, _, r, _)) in results.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = r
            .steps
            .iter()
            .filter_map(|s| Some((s.step as f64, s.mean?.min(hi))))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn plot_task(
    mlp: &Mlp,
    results: &[(&str, Vec<f64>, EvalReport, f64)],
    k: usize,
    path: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let dist = Sinusoid::default();
    let (task, sine) = dist.sample_with_params(&mut StdRng::seed_from_u64(99), k, k)?;
    let grid = DMatrix::from_fn(200, 1, |i, _| -5.0 + 10.0 * i as f64 / 199.0);
    let curve = |theta: &[f64]| -> Vec<(f64, f64)> {
        let y = mlp.forward_f64(theta, &grid);
        grid.iter().zip(y.iter()).map(|(&x, &y)| (x, y)).collect()
    };
    // The first and last methods trained (MAML and the baseline when all run).
    let (first, maml) = (results[0].0, &results[0].1);
    let (last, pretrained) = (results[results.len() - 1].0, &results[results.len() - 1].1);
    let inner = InnerSgd::default().steps(10);
    let maml_path = adapt(mlp, maml, &task, &inner)?;
    let pre_path = adapt(mlp, pretrained, &task, &inner)?;
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let lim = sine.amplitude * 1.6 + 0.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "one test task (A = {:.2}, phi = {:.2}), K = {k}",
                sine.amplitude, sine.phase
            ),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-5f64..5f64, -lim..lim)?;
    chart.configure_mesh().x_desc("x").y_desc("y").draw()?;
    let truth: Vec<(f64, f64)> = grid.iter().map(|&x| (x, sine.eval(x))).collect();
    let series: Vec<Series> = vec![
        ("true function".into(), truth, BLACK, false),
        (
            format!("{first}, before adaptation"),
            curve(&maml_path[0]),
            COLORS[0],
            true,
        ),
        (
            format!("{first}, 1 step"),
            curve(&maml_path[1.min(maml_path.len() - 1)]),
            COLORS[0],
            false,
        ),
        (
            format!("{first}, 10 steps"),
            curve(maml_path.last().unwrap()),
            COLORS[2],
            false,
        ),
        (
            format!("{last}, 10 steps"),
            curve(pre_path.last().unwrap()),
            COLORS[5],
            false,
        ),
    ];
    for (label, pts, c, dashed) in series {
        let style = if dashed {
            c.stroke_width(1)
        } else {
            c.stroke_width(2)
        };
        chart
            .draw_series(LineSeries::new(pts, style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c));
    }
    chart
        .draw_series(
            task.support_x
                .iter()
                .zip(task.support_y.iter())
                .map(|(&x, &y)| TriangleMarker::new((x, y), 6, RED.filled())),
        )?
        .label("support points")
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 6, RED.filled()));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
