//! The W5 workload: our meta-gradients against JAX's reference values.
//!
//! Tolerance 1e-9 relative (on the meta-loss, the gradient norm, and each recorded entry
//! relative to the gradient norm): both sides compute the same f64 expressions in a
//! different order (different gemm kernels and summation orders), so agreement is
//! limited by rounding amplified by at most 5 inner steps with |I - alpha H| <= 1.5
//! (alpha = 0.01, |H| <= 50), i.e. a few hundred ulps; the torch peers agree with JAX to
//! 7e-12 on iMAML (the worst case: 100 inner steps and an indefinite CG), so 1e-9 leaves
//! two decades of margin while catching any wrong term (which would show at 1e-3 or more).

use metalearn::w5::{self, Reference};
use metalearn::{Algorithm, ImamlOptions, InnerSgd, Parallelism, meta_gradient};

fn check(alg: Algorithm, r: &Reference) {
    let mlp = w5::mlp();
    let theta = w5::theta();
    let tasks = w5::tasks();
    let mg = meta_gradient(&alg, &mlp, &theta, &tasks, Parallelism::Serial).unwrap();
    let norm = mg.grad.iter().map(|g| g * g).sum::<f64>().sqrt();
    let rel = |a: f64, b: f64, scale: f64| (a - b).abs() / scale.abs();
    assert!(
        rel(mg.loss, r.meta_loss, r.meta_loss) < 1e-9,
        "{}: meta-loss {} vs {}",
        r.name,
        mg.loss,
        r.meta_loss
    );
    assert!(
        rel(norm, r.grad_norm, r.grad_norm) < 1e-9,
        "{}: norm {} vs {}",
        r.name,
        norm,
        r.grad_norm
    );
    for (k, &i) in w5::ENTRIES.iter().enumerate() {
        assert!(
            rel(mg.grad[i], r.grad_entries[k], r.grad_norm) < 1e-9,
            "{}: grad[{i}] {} vs {}",
            r.name,
            mg.grad[i],
            r.grad_entries[k]
        );
    }
}

#[test]
fn pre_adaptation_loss() {
    let mlp = w5::mlp();
    let theta = w5::theta();
    let l: f64 = w5::tasks()
        .iter()
        .map(|t| {
            let p = mlp.forward_f64(&theta, &t.query_x);
            (p - &t.query_y).norm_squared() / w5::K as f64
        })
        .sum::<f64>()
        / w5::TASKS as f64;
    assert!((l - w5::PRE_ADAPTATION_LOSS).abs() < 1e-12 * l);
}

#[test]
fn maml_1_step() {
    check(Algorithm::Maml(InnerSgd::default()), &w5::MAML_1);
}

#[test]
fn fomaml_1_step() {
    check(Algorithm::Fomaml(InnerSgd::default()), &w5::FOMAML_1);
}

#[test]
fn maml_5_steps() {
    check(Algorithm::Maml(InnerSgd::default().steps(5)), &w5::MAML_5);
}

#[test]
fn fomaml_5_steps() {
    check(
        Algorithm::Fomaml(InnerSgd::default().steps(5)),
        &w5::FOMAML_5,
    );
}

#[test]
fn imaml_fixed_budget() {
    check(Algorithm::Imaml(ImamlOptions::w5()), &w5::IMAML);
}
