//! W3 and W3b of ../shared/peers (DEQ layer z = tanh(W z + U x + b), hidden 64, input 16,
//! batch 32, loss mean(z*²)) through the public layer API, against the peers' reference
//! answers (numpy: forward to 1e-14, dense per-sample adjoint solves).

#[path = "../../../examples/common/deq_w3.rs"]
#[allow(dead_code)]
mod w3;

use ad_core::{MatOps, Tape};
use deq::solvers::{Method, SolverOptions};
use deq::{DeqLayer, DeqOptions, TanhLayer};
use implicit::{Backward, IftOptions};

/// |a − b| <= tol · max(|b|, 1e-3): the reference values are O(1e-3 .. 1e-1).
fn close(what: &str, a: f64, b: f64, tol: f64) {
    assert!(
        (a - b).abs() <= tol * b.abs().max(1e-3),
        "{what}: {a} vs reference {b} (diff {:e})",
        (a - b).abs()
    );
}

fn check(fullrank: bool, method: Method) {
    let data = w3::data(fullrank);
    let r = w3::reference(fullrank);
    close("spectral norm", data.spectral_norm, r.spectral_norm, 1e-12);
    // Forward to 1e-13 per sample: z* is then within 1e-13 / (1 − 0.9) = 1e-12 of the
    // fixed point (the map is a 0.9-contraction), and the exact backward solve to 1e-12
    // relative; the gradients agree with the reference to ~1e-11 relative, so 1e-9 leaves
    // two digits of margin.
    let options = DeqOptions::default()
        .solver(
            SolverOptions::default()
                .method(method)
                .tol(1e-13)
                .max_iters(400),
        )
        .ift(IftOptions::default().backward(Backward::Exact));
    let mut ift = options.ift.clone();
    ift.linear = ift.linear.rtol(1e-12);
    let layer = DeqLayer::new(TanhLayer::default()).with_options(options.ift(ift));
    let tape = Tape::new();
    let w = tape.mat_var(data.w.clone());
    let u = tape.mat_var(data.u.clone());
    let b = tape.mat_var(data.b.clone());
    let out = layer.forward_data(&data.x, &[w, u, b]).unwrap();
    let loss = out.z.square().mean();
    close("loss", loss.value_f64(), r.loss, 1e-12);
    let z = out.z.value();
    for i in 0..3 {
        close("z*[0, i]", z[(i, 0)], r.z0[i], 1e-11);
    }
    let g = tape.gradient(loss).unwrap();
    close("dW fro", g.wrt_mat(&w).norm(), r.dw_fro, 1e-9);
    close("dU fro", g.wrt_mat(&u).norm(), r.du_fro, 1e-9);
    let db = g.wrt_mat(&b);
    for i in 0..4 {
        close("db[i]", db[i], r.db[i], 1e-9);
    }
    let report = out.node.last_report().unwrap();
    assert!(report.succeeded() && report.relative_residual <= 1e-12);
}

#[test]
fn w3_matches_the_reference_with_every_forward_solver() {
    for method in [Method::picard(), Method::anderson(), Method::broyden()] {
        check(false, method);
    }
}

#[test]
fn w3b_full_rank_matches_the_reference_with_every_forward_solver() {
    for method in [Method::picard(), Method::anderson(), Method::broyden()] {
        check(true, method);
    }
}
