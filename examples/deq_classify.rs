//! A DEQ classifier (encoder, equilibrium layer, linear head) on two interleaved spirals,
//! against the same weight-tied network unrolled for a fixed number of iterations.
//!
//! ```sh
//! cargo run --release --example deq_classify            # ~1 min; SVGs in out/
//! ```
//!
//! Prints accuracy and time per epoch of both models, the peak heap bytes of one training
//! step (forward + backward) as the forward iteration count grows (10, 30, 100), and the
//! forward iterations of Picard, Anderson and Broyden on the trained layer; writes
//! `out/deq_classify_boundary.svg` (decision boundary and test points) and
//! `out/deq_classify_residuals.svg` (forward residual per iteration). The last line is
//! `summary: test_acc=.. unrolled_test_acc=.. deq_peak_iters100_over_iters10=..
//! unrolled_peak_iters100_over_iters10=.. anderson_iters=.. picard_iters=.. broyden_iters=..`.

use std::time::Instant;

use diffprog::ad::optim::{Adam, AdamOptions, Optimizer};
use diffprog::ad::{MatOps, MatVar, Tape};
use diffprog::deq::solvers::{Method, SolverOptions};
use diffprog::deq::{DeqLayer, DeqOptions, EquilibriumMap, TanhLayer};
use diffprog::implicit::IftOptions;
use nalgebra::DMatrix;
use plotters::prelude::*;

#[path = "common/heap.rs"]
mod heap;

#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

/// Encoder width, state width, minibatch, epochs, unrolled iterations.
const P: usize = 16;
const D: usize = 24;
const BATCH: usize = 100;
const EPOCHS: usize = 120;
const UNROLL: usize = 30;
/// Gain of the normalized W: ‖W‖₂ <= 0.9, a contraction.
const GAIN: f64 = 0.9;

/// A small xorshift generator (deterministic, seeded).
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// `n` points of two interleaved spirals (1.75 turns each): inputs 2 x n, labels ±1.
fn spirals(n: usize, rng: &mut Rng) -> (DMatrix<f64>, Vec<f64>) {
    let mut x = DMatrix::zeros(2, n);
    let mut y = vec![0.0; n];
    for k in 0..n {
        let class = k % 2;
        let t = 0.15 + 0.85 * rng.uniform();
        let angle = t * 3.5 * std::f64::consts::PI + class as f64 * std::f64::consts::PI;
        x[(0, k)] = t * angle.cos() + 0.03 * rng.normal();
        x[(1, k)] = t * angle.sin() + 0.03 * rng.normal();
        y[k] = if class == 0 { 1.0 } else { -1.0 };
    }
    (x, y)
}

/// Parameter blocks: E (P x 2), e (P x 1), W (D x D), U (D x P), b (D x 1), V (1 x D), c.
fn init(rng: &mut Rng) -> Vec<DMatrix<f64>> {
    let mut m = |r: usize, c: usize, s: f64| DMatrix::from_fn(r, c, |_, _| s * rng.normal());
    vec![
        m(P, 2, 2.0),
        m(P, 1, 0.5),
        m(D, D, 1.0),
        m(D, P, 1.0 / (P as f64).sqrt()),
        m(D, 1, 0.1),
        m(1, D, 1.0 / (D as f64).sqrt()),
        m(1, 1, 0.0),
    ]
}

fn flatten(blocks: &[DMatrix<f64>]) -> Vec<f64> {
    blocks.iter().flat_map(|b| b.iter().copied()).collect()
}

fn unflatten(flat: &[f64], like: &[DMatrix<f64>]) -> Vec<DMatrix<f64>> {
    let mut at = 0;
    like.iter()
        .map(|b| {
            let m = DMatrix::from_column_slice(b.nrows(), b.ncols(), &flat[at..at + b.len()]);
            at += b.len();
            m
        })
        .collect()
}

/// Which equilibrium: the DEQ layer, or `T` unrolled weight-tied iterations from 0.
#[derive(Clone, Copy)]
enum Model<'a> {
    Deq(&'a DeqLayer<TanhLayer>),
    Unrolled(usize),
}

/// Scores (1 x n) of the model on the tape.
fn scores(
    model: Model,
    p: &[MatVar],
    x: &DMatrix<f64>,
) -> Result<MatVar, Box<dyn std::error::Error>> {
    let tape_x = p[0].constant_like(x.clone());
    let h = p[0].matmul(&tape_x).add_col(&p[1]).tanh();
    let z = match model {
        Model::Deq(layer) => layer.forward(&h, &p[2..5])?.z,
        Model::Unrolled(t) => {
            let map = TanhLayer::normalized(GAIN);
            let inj = map.inject(&h, &p[2..5]);
            let mut z = p[0].zeros_like(D, x.ncols());
            for _ in 0..t {
                z = map.map(&z, &inj, &p[2..5]);
            }
            z
        }
    };
    let ones = p[6].constant_like(DMatrix::from_element(1, x.ncols(), 1.0));
    Ok(p[5].matmul(&z).add(&p[6].matmul(&ones)))
}

/// Logistic loss mean(softplus(−y s)) and its gradient (flat).
fn loss_and_grad(
    model: Model,
    params: &[DMatrix<f64>],
    x: &DMatrix<f64>,
    y: &[f64],
) -> Result<(f64, Vec<f64>), Box<dyn std::error::Error>> {
    let tape = Tape::new();
    let p: Vec<MatVar> = params.iter().map(|m| tape.mat_var(m.clone())).collect();
    let s = scores(model, &p, x)?;
    let minus_y = tape.constant_mat(DMatrix::from_row_slice(1, y.len(), y).scale(-1.0));
    let loss = s.mul_elem(&minus_y).softplus().mean();
    let g = tape.gradient(loss)?;
    let grad = p
        .iter()
        .flat_map(|v| g.wrt_mat(v).as_slice().to_vec())
        .collect();
    Ok((loss.value_f64(), grad))
}

/// Plain-f64 scores (no tape).
fn predict(model: Model, params: &[DMatrix<f64>], x: &DMatrix<f64>) -> Vec<f64> {
    let h = (&params[0] * x + DMatrix::from_fn(P, x.ncols(), |i, _| params[1][i])).map(f64::tanh);
    let z = match model {
        Model::Deq(layer) => layer.solve(&h, &params[2..5]).expect("forward solve").z,
        Model::Unrolled(t) => {
            let map = TanhLayer::normalized(GAIN);
            let inj = map.inject(&h, &params[2..5]);
            let mut z = DMatrix::zeros(D, x.ncols());
            for _ in 0..t {
                z = map.map(&z, &inj, &params[2..5]);
            }
            z
        }
    };
    let s = &params[5] * z;
    s.iter().map(|v| v + params[6][0]).collect()
}

fn accuracy(model: Model, params: &[DMatrix<f64>], x: &DMatrix<f64>, y: &[f64]) -> f64 {
    let s = predict(model, params, x);
    s.iter().zip(y).filter(|(s, y)| **s * **y > 0.0).count() as f64 / y.len() as f64
}

/// Trained parameters and seconds per epoch.
type Trained = (Vec<DMatrix<f64>>, f64);

/// Train with Adam on minibatches; returns the parameters and seconds per epoch.
fn train(
    model: Model,
    init: &[DMatrix<f64>],
    x: &DMatrix<f64>,
    y: &[f64],
    label: &str,
) -> Result<Trained, Box<dyn std::error::Error>> {
    let mut flat = flatten(init);
    let mut adam = Adam::new(AdamOptions::default().learning_rate(0.01))?;
    let bar = indicatif::ProgressBar::new(EPOCHS as u64);
    bar.set_message(label.to_string());
    let start = Instant::now();
    let n = x.ncols();
    for _ in 0..EPOCHS {
        let mut last = 0.0;
        for b in (0..n).step_by(BATCH) {
            let cols: Vec<usize> = (b..(b + BATCH).min(n)).collect();
            let xb = DMatrix::from_fn(2, cols.len(), |i, j| x[(i, cols[j])]);
            let yb: Vec<f64> = cols.iter().map(|&k| y[k]).collect();
            let params = unflatten(&flat, init);
            let (l, g) = loss_and_grad(model, &params, &xb, &yb)?;
            adam.step(&mut flat, &g);
            last = l;
        }
        bar.set_message(format!("{label}: loss {last:.4}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((
        unflatten(&flat, init),
        start.elapsed().as_secs_f64() / EPOCHS as f64,
    ))
}

/// Peak heap bytes of one training step (forward + backward) above the heap before it.
fn step_peak(model: Model, params: &[DMatrix<f64>], x: &DMatrix<f64>, y: &[f64]) -> usize {
    Tape::release_idle_buffers();
    HEAP.peak_of(|| drop(loss_and_grad(model, params, x, y).expect("training step")))
        .0
}

fn boundary_plot(
    path: &str,
    layer: &DeqLayer<TanhLayer>,
    params: &[DMatrix<f64>],
    x: &DMatrix<f64>,
    y: &[f64],
) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::new(path, (640, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "DEQ classifier: decision boundary, test points",
            ("sans-serif", 20),
        )
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(-1.2f64..1.2, -1.2f64..1.2)?;
    chart.configure_mesh().draw()?;
    let g = 80;
    let step = 2.4 / g as f64;
    let grid = DMatrix::from_fn(2, g * g, |i, k| {
        let (a, b) = (k % g, k / g);
        -1.2 + step * (if i == 0 { a } else { b } as f64 + 0.5)
    });
    let s = predict(Model::Deq(layer), params, &grid);
    chart.draw_series((0..g * g).map(|k| {
        let (x0, y0) = (grid[(0, k)] - step / 2.0, grid[(1, k)] - step / 2.0);
        let color = if s[k] > 0.0 {
            RGBColor(255, 215, 200)
        } else {
            RGBColor(200, 215, 255)
        };
        Rectangle::new([(x0, y0), (x0 + step, y0 + step)], color.filled())
    }))?;
    chart.draw_series((0..x.ncols()).map(|k| {
        let color = if y[k] > 0.0 { RED } else { BLUE };
        Circle::new((x[(0, k)], x[(1, k)]), 2, color.filled())
    }))?;
    root.present()?;
    Ok(())
}

fn residual_plot(
    path: &str,
    traces: &[(&str, Vec<f64>)],
) -> Result<(), Box<dyn std::error::Error>> {
    let max_it = traces.iter().map(|t| t.1.len()).max().unwrap_or(1) as f64;
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "forward residual per iteration (trained layer, test batch)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..max_it, -12f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc("iteration")
        .y_desc("log10 max_k ||f(z_k) - z_k||")
        .draw()?;
    for ((name, trace), color) in traces.iter().zip([BLUE, RED, GREEN]) {
        let pts: Vec<(f64, f64)> = trace
            .iter()
            .enumerate()
            .map(|(i, r)| ((i + 1) as f64, r.max(1e-13).log10()))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, &color))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (x_train, y_train) = spirals(600, &mut rng);
    let (x_test, y_test) = spirals(600, &mut rng);
    let init = init(&mut rng);
    let options = DeqOptions::default()
        .solver(
            SolverOptions::default()
                .method(Method::anderson())
                .tol(1e-8),
        )
        .ift(IftOptions::default().estimate_error(false));
    let layer = DeqLayer::new(TanhLayer::normalized(GAIN)).with_options(options);

    println!(
        "two interleaved spirals: {} training and {} test points",
        y_train.len(),
        y_test.len()
    );
    println!(
        "model: encoder 2 -> {P} (tanh), equilibrium layer z = tanh(W z + U h + b) (d = {D}, ‖W‖ = {GAIN}), linear head"
    );
    let (deq_params, deq_epoch) = train(Model::Deq(&layer), &init, &x_train, &y_train, "DEQ")?;
    let (unr_params, unr_epoch) = train(
        Model::Unrolled(UNROLL),
        &init,
        &x_train,
        &y_train,
        "unrolled",
    )?;
    let test_acc = accuracy(Model::Deq(&layer), &deq_params, &x_test, &y_test);
    let unr_acc = accuracy(Model::Unrolled(UNROLL), &unr_params, &x_test, &y_test);
    println!("\n| model | train acc | test acc | time per epoch |");
    println!("|---|---:|---:|---:|");
    println!(
        "| DEQ (Anderson forward to 1e-8, exact implicit backward) | {:.3} | {test_acc:.3} | {:.1} ms |",
        accuracy(Model::Deq(&layer), &deq_params, &x_train, &y_train),
        deq_epoch * 1e3
    );
    println!(
        "| weight-tied, unrolled {UNROLL} iterations (backprop through all) | {:.3} | {unr_acc:.3} | {:.1} ms |",
        accuracy(Model::Unrolled(UNROLL), &unr_params, &x_train, &y_train),
        unr_epoch * 1e3
    );

    // Peak heap of one training step as the forward iteration count grows. The DEQ's
    // forward runs Picard to the residual its trace reaches at iteration N (so it takes N
    // iterations); its backward pass is the same implicit solve whatever N.
    let xb = DMatrix::from_fn(2, BATCH, |i, j| x_train[(i, j)]);
    let yb = &y_train[..BATCH];
    let h =
        (&deq_params[0] * &xb + DMatrix::from_fn(P, BATCH, |i, _| deq_params[1][i])).map(f64::tanh);
    let long = DeqLayer::new(TanhLayer::normalized(GAIN))
        .with_options(
            DeqOptions::default().solver(
                SolverOptions::default()
                    .method(Method::picard())
                    .tol(1e-14)
                    .max_iters(2000)
                    .stall_window(0),
            ),
        )
        .solve(&h, &deq_params[2..5])?;
    println!("\n| forward iterations | DEQ step peak heap | unrolled step peak heap |");
    println!("|---:|---:|---:|");
    let mut peaks = Vec::new();
    for n in [10usize, 30, 100] {
        let tol = long.stats.residual_trace[(n - 1).min(long.stats.residual_trace.len() - 1)]
            * (1.0 + 1e-9);
        let opts = DeqOptions::default()
            .solver(
                SolverOptions::default()
                    .method(Method::picard())
                    .tol(tol)
                    .max_iters(n + 5),
            )
            .ift(
                IftOptions::default()
                    .residual_tol(1.0)
                    .estimate_error(false),
            );
        let layer_n = DeqLayer::new(TanhLayer::normalized(GAIN)).with_options(opts);
        let deq_peak = step_peak(Model::Deq(&layer_n), &deq_params, &xb, yb);
        let unr_peak = step_peak(Model::Unrolled(n), &deq_params, &xb, yb);
        println!(
            "| {n} | {:.1} KiB | {:.1} KiB |",
            deq_peak as f64 / 1024.0,
            unr_peak as f64 / 1024.0
        );
        peaks.push((deq_peak as f64, unr_peak as f64));
    }

    // Forward residual per iteration on the trained layer, test batch.
    let ht = (&deq_params[0] * &x_test
        + DMatrix::from_fn(P, x_test.ncols(), |i, _| deq_params[1][i]))
    .map(f64::tanh);
    let mut traces = Vec::new();
    let mut iters = Vec::new();
    for (name, method) in [
        ("Picard", Method::picard()),
        ("Anderson (m = 5)", Method::anderson()),
        ("Broyden", Method::broyden()),
    ] {
        let l = DeqLayer::new(TanhLayer::normalized(GAIN)).with_options(
            DeqOptions::default().solver(
                SolverOptions::default()
                    .method(method)
                    .tol(1e-10)
                    .max_iters(1000),
            ),
        );
        let sol = l.solve(&ht, &deq_params[2..5])?;
        iters.push(sol.stats.iterations);
        println!(
            "{name}: {} iterations, {} map evaluations (per sample)",
            sol.stats.iterations, sol.stats.function_evals
        );
        traces.push((name, sol.stats.residual_trace));
    }
    std::fs::create_dir_all("out")?;
    boundary_plot(
        "out/deq_classify_boundary.svg",
        &layer,
        &deq_params,
        &x_test,
        &y_test,
    )?;
    residual_plot("out/deq_classify_residuals.svg", &traces)?;
    println!("wrote out/deq_classify_boundary.svg and out/deq_classify_residuals.svg");
    println!(
        "summary: test_acc={test_acc:.3} unrolled_test_acc={unr_acc:.3} deq_peak_iters100_over_iters10={:.2} unrolled_peak_iters100_over_iters10={:.2} anderson_iters={} picard_iters={} broyden_iters={}",
        peaks[2].0 / peaks[0].0,
        peaks[2].1 / peaks[0].1,
        iters[1],
        iters[0],
        iters[2]
    );
    Ok(())
}
