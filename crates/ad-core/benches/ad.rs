//! ad-core overhead: gradient / function, HVP / gradient, and our `Dual64` against
//! num-dual's, on the workloads of `examples/common/ad_workloads.rs` (shared with the
//! `ad_overhead` example, which prints the same comparison as a table).
//!
//! ```sh
//! cargo bench -p ad-core --bench ad
//! ```

#[path = "../../../examples/common/ad_workloads.rs"]
mod workloads;

use std::hint::black_box;
use std::time::Duration;

use ad_core::{Dual64, ScalarFn, grad, hvp, hvp_mat, value_and_grad, value_and_grad_mat};
use criterion::{Criterion, criterion_group, criterion_main};
use workloads::*;

fn scalar_group(
    c: &mut Criterion,
    name: &str,
    f: &impl ScalarFn,
    plain: fn(&[f64]) -> f64,
    n: usize,
) {
    let x = point(n);
    let v = direction(n);
    let mut g = c.benchmark_group(name);
    g.bench_function("f64", |b| b.iter(|| plain(black_box(&x))));
    g.bench_function("grad", |b| b.iter(|| grad(f, black_box(&x)).unwrap()));
    g.bench_function("value_and_grad", |b| {
        b.iter(|| value_and_grad(f, black_box(&x)).unwrap())
    });
    g.bench_function("hvp", |b| {
        b.iter(|| hvp(f, black_box(&x), black_box(&v)).unwrap())
    });
    g.finish();
}

fn mlp_group(c: &mut Criterion, name: &str, m: &MlpLoss) {
    let p = m.params();
    let v = m.direction();
    let mut g = c.benchmark_group(name);
    g.bench_function("f64", |b| b.iter(|| mlp_loss(&m.x, &m.y, black_box(&p))));
    g.bench_function("value_and_grad_mat", |b| {
        b.iter(|| value_and_grad_mat(m, black_box(&p)).unwrap())
    });
    g.bench_function("hvp_mat", |b| {
        b.iter(|| hvp_mat(m, black_box(&p), black_box(&v)).unwrap())
    });
    g.finish();
}

fn dual_group(c: &mut Criterion) {
    let x = point(SCALAR_N);
    let v = direction(SCALAR_N);
    let xd: Vec<Dual64> = x.iter().zip(&v).map(|(&a, &d)| Dual64::new(a, d)).collect();
    let xn: Vec<Nd> = x.iter().zip(&v).map(|(&a, &d)| Nd::new(a, d)).collect();
    let mut g = c.benchmark_group("dual");
    g.bench_function("ad_core_Dual64", |b| {
        b.iter(|| scalar_fn(black_box(&xd)).eps)
    });
    g.bench_function("num_dual_Dual64", |b| {
        b.iter(|| scalar_fn(black_box(&xn)).0.eps)
    });
    g.bench_function("ad_core_Dual64_common_ops", |b| {
        b.iter(|| scalar_fn_common(black_box(&xd)).eps)
    });
    g.bench_function("num_dual_Dual64_common_ops", |b| {
        b.iter(|| scalar_fn_common(black_box(&xn)).0.eps)
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    // The MLP rows run the vectorized kernels: name the code path measured.
    println!(
        "kernels: selected paths: {}",
        ad_core::kernels::paths::describe()
    );
    scalar_group(c, "scalar", &Transcendental, scalar_fn::<f64>, SCALAR_N);
    scalar_group(
        c,
        "rosenbrock",
        &Rosenbrock,
        rosenbrock::<f64>,
        ROSENBROCK_N,
    );
    mlp_group(c, "mlp_small", &mlp_small());
    mlp_group(c, "mlp_large", &mlp_large());
    dual_group(c);
}

criterion_group! {
    name = ad;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = benches
}
criterion_main!(ad);
