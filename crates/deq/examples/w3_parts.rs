//! Where the time of the W3b forward solve goes (a development aid).
#[path = "../../../examples/common/deq_w3.rs"]
#[allow(dead_code)]
mod w3;
use ad_core::MatOps;
use deq::solvers::{Method, SolverOptions};
use deq::{DeqLayer, DeqOptions, EquilibriumMap, TanhLayer};
use std::time::Instant;
fn med(mut f: impl FnMut()) -> f64 {
    for _ in 0..20 {
        f();
    }
    let mut t: Vec<f64> = (0..300)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[150] * 1e6
}
fn main() {
    let full = std::env::args().any(|a| a == "--fullrank");
    let d = w3::data(full);
    let theta = vec![d.w.clone(), d.u.clone(), d.b.clone()];
    let layer = DeqLayer::new(TanhLayer::default()).with_options(
        DeqOptions::default().solver(SolverOptions::default().method(Method::picard())),
    );
    println!(
        "solve picard: {:.1}us",
        med(|| {
            std::hint::black_box(layer.solve(&d.x, &theta).unwrap());
        })
    );
    let z = layer.solve(&d.x, &theta).unwrap().z;
    println!(
        "one map f64: {:.2}us",
        med(|| {
            std::hint::black_box(TanhLayer::default().apply(&z, &d.x, &theta));
        })
    );
    println!(
        "gemm Wz: {:.2}us",
        med(|| {
            std::hint::black_box(d.w.matmul(&z));
        })
    );
    println!(
        "tanh: {:.2}us",
        med(|| {
            std::hint::black_box(z.tanh());
        })
    );
    println!(
        "clone: {:.2}us",
        med(|| {
            std::hint::black_box(z.clone());
        })
    );
}
