//! The W4 workload against the peers' tight reference (diffrax, rtol = atol = 1e-12).

use neuralode::problems::W4;
use neuralode::{GradOptions, Method, SolverOptions, value_and_grad};

/// From /work/shared/peers/results/W4_node.json ("refs", 12 digits).
const LOSS: f64 = 435.702368487053;
const GRAD_NORM: f64 = 6458.151817262161;
const DB2: [f64; 2] = [1189.2302698171184, 434.9295712039319];
const DW1_0: [f64; 2] = [227.1021810957697, 174.47143037463843];

fn run(method: Method, tol: f64) -> (f64, Vec<f64>) {
    let w = W4::new();
    let opts = GradOptions::default()
        .solver(SolverOptions::default().rtol(tol).atol(tol))
        .method(method);
    let (l, g) = value_and_grad(&w.f, &w.theta, &w.h0, 0.0, &w.ts, &opts, |s| w.loss(s)).unwrap();
    (l, g.theta)
}

#[test]
fn w4_gradient_matches_the_peers_reference() {
    // At rtol = atol = 1e-8 every peer is within 1.3e-8 (relative, 2-norm) of the tight
    // reference; the reference itself carries ~1e-11 of solver error and 12 printed digits,
    // so 1e-6 relative leaves two orders of margin for any correct 1e-8 solve.
    for method in [
        Method::Direct,
        Method::Checkpointed { every: 7 },
        Method::Interpolating,
        Method::InterpolatingCheckpointed { every: 5 },
        Method::InterpolatingRecursive,
        Method::Backsolve { reset_state: true },
    ] {
        let (l, g) = run(method, 1e-8);
        assert!((l - LOSS).abs() / LOSS < 1e-7, "{method:?}: loss {l}");
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(
            (norm - GRAD_NORM).abs() / GRAD_NORM < 1e-6,
            "{method:?}: norm {norm}"
        );
        let n = g.len();
        let err_b2 = ((g[n - 2] - DB2[0]).powi(2) + (g[n - 1] - DB2[1]).powi(2)).sqrt();
        let err_w1 = ((g[0] - DW1_0[0]).powi(2) + (g[1] - DW1_0[1]).powi(2)).sqrt();
        assert!(
            err_b2 / GRAD_NORM < 1e-6,
            "{method:?}: db2 {:?}",
            &g[n - 2..]
        );
        assert!(
            err_w1 / GRAD_NORM < 1e-6,
            "{method:?}: dW1[0] {:?}",
            &g[..2]
        );
    }
}
