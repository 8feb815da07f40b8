//! The layer's gradients: implicit gradients agree with central finite differences of
//! re-solved losses, with the unrolled gradient in the limit, and with each other across
//! linear solvers; the custom op passes the dot-product test; Jacobian-free and phantom
//! gradients are descent directions; an encoder and a head train end to end through it.

use ad_core::{MatOps, MatVar, Seeds, Tape};
use deq::solvers::{Method, SolverOptions};
use deq::{DeqLayer, DeqOptions, EquilibriumMap, MonotoneLayer, TanhLayer};
use implicit::linear::{Method as LinMethod, SolveOptions};
use implicit::{Backward, IftOptions};
use nalgebra::DMatrix;
use proptest::prelude::*;

const D: usize = 3;
const P: usize = 2;
const B: usize = 2;

/// θ = [W, U, b], x, a loss weight C, and a direction for each of W, U, b, x.
#[derive(Clone, Debug)]
struct Case {
    gain: f64,
    blocks: Vec<DMatrix<f64>>, // W, U, b, x
    c: DMatrix<f64>,
    dirs: Vec<DMatrix<f64>>,
}

fn mat(r: usize, c: usize, range: f64) -> impl Strategy<Value = DMatrix<f64>> {
    proptest::collection::vec(-range..range, r * c).prop_map(move |v| DMatrix::from_vec(r, c, v))
}

fn case() -> impl Strategy<Value = Case> {
    let shapes = [(D, D), (D, P), (D, 1), (P, B)];
    (
        0.1..0.8f64,
        shapes.map(|(r, c)| mat(r, c, 1.0)),
        mat(D, B, 1.0),
        shapes.map(|(r, c)| mat(r, c, 1.0)),
    )
        .prop_map(|(gain, blocks, c, dirs)| Case {
            gain,
            blocks: blocks.to_vec(),
            c,
            dirs: dirs.to_vec(),
        })
}

/// Exact backward solves to 1e-12 relative; forward to 1e-14 absolute.
fn options(backward: Backward, method: LinMethod) -> DeqOptions {
    DeqOptions::default()
        .solver(SolverOptions::default().tol(1e-14).max_iters(1000))
        .ift(
            IftOptions::default()
                .backward(backward)
                .method(method)
                .linear(SolveOptions::default().rtol(1e-12).atol(0.0)),
        )
}

/// L = <C, z*> + ½‖z*‖²: value and gradient (W, U, b, x) through the tape.
fn grad(layer: &DeqLayer<TanhLayer>, case: &Case) -> (f64, Vec<DMatrix<f64>>) {
    let tape = Tape::new();
    let vars: Vec<MatVar> = case
        .blocks
        .iter()
        .map(|b| tape.mat_var(b.clone()))
        .collect();
    let out = layer.forward(&vars[3], &vars[..3]).unwrap();
    let loss = out.z.mul_elem(&tape.constant_mat(case.c.clone())).sum() + out.z.sq_norm() * 0.5;
    let g = tape.gradient(loss).unwrap();
    (
        loss.value_f64(),
        vars.iter().map(|v| g.wrt_mat(v)).collect(),
    )
}

/// The same loss in plain f64 (a fresh forward solve).
fn loss_f64(layer: &DeqLayer<TanhLayer>, blocks: &[DMatrix<f64>], c: &DMatrix<f64>) -> f64 {
    let z = layer.solve(&blocks[3], &blocks[..3]).unwrap().z;
    z.dot(c) + 0.5 * z.norm_squared()
}

fn inner(a: &[DMatrix<f64>], b: &[DMatrix<f64>]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.dot(y)).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Implicit gradients (W, U, b and the input x) against central differences of
    /// re-solved losses along a random direction. h = 1e-4: truncation ~h²·|L'''| <= 1e-7,
    /// forward error 1e-14 / h = 1e-10; hence 1e-6 relative.
    #[test]
    fn implicit_gradients_agree_with_central_differences(case in case()) {
        let layer = DeqLayer::new(TanhLayer::normalized(case.gain))
            .with_options(options(Backward::Exact, LinMethod::Auto));
        let (_, g) = grad(&layer, &case);
        let h = 1e-4;
        let shift = |s: f64| -> Vec<DMatrix<f64>> {
            case.blocks.iter().zip(&case.dirs).map(|(b, d)| b + d * s).collect()
        };
        let fd = (loss_f64(&layer, &shift(h), &case.c) - loss_f64(&layer, &shift(-h), &case.c)) / (2.0 * h);
        let an = inner(&g, &case.dirs);
        prop_assert!((fd - an).abs() <= 1e-6 * (1.0 + an.abs()), "fd {fd} vs implicit {an}");
    }

    /// <ū, ż> = <θ̄, θ̇> for the layer's node (reverse sweep vs forward sweep of the same
    /// tape, both through implicit's exact pass at 1e-12 relative).
    #[test]
    fn the_layer_node_passes_the_dot_product_test(case in case(), u in mat(D, B, 1.0)) {
        let layer = DeqLayer::new(TanhLayer::normalized(case.gain))
            .with_options(options(Backward::Exact, LinMethod::Auto));
        let tape = Tape::new();
        let vars: Vec<MatVar> = case.blocks.iter().map(|b| tape.mat_var(b.clone())).collect();
        let out = layer.forward(&vars[3], &vars[..3]).unwrap();
        let g = tape.backward(&Seeds::new().mat(&out.z, u.clone())).unwrap();
        let bars: Vec<DMatrix<f64>> = vars.iter().map(|v| g.wrt_mat(v)).collect();
        let seeds = vars.iter().zip(&case.dirs).fold(Seeds::new(), |s, (v, d)| s.mat(v, d.clone()));
        let z_dot = tape.forward(&seeds).unwrap().of_mat(&out.z);
        let (lhs, rhs) = (u.dot(&z_dot), inner(&bars, &case.dirs));
        prop_assert!((lhs - rhs).abs() <= 1e-9 * (1.0 + lhs.abs()), "{lhs} vs {rhs}");
        let reports = out.node.reports();
        prop_assert!(reports.len() == 2 && reports.iter().all(|r| r.succeeded()));
    }

    /// The exact gradient does not depend on the linear solver (GMRES, the adjoint
    /// fixed-point iteration, BiCGSTAB, dense LU), and the phantom gradient with enough
    /// steps converges to it (error <= gain^k · C: 80 steps at gain <= 0.8 leave 2e-8).
    #[test]
    fn backward_choices_agree(case in case()) {
        let run = |b, m| grad(&DeqLayer::new(TanhLayer::normalized(case.gain)).with_options(options(b, m)), &case).1;
        let exact = run(Backward::Exact, LinMethod::Gmres);
        let scale = 1.0 + exact.iter().map(|g| g.norm()).sum::<f64>();
        for m in [LinMethod::Richardson, LinMethod::Bicgstab, LinMethod::Lu] {
            let other = run(Backward::Exact, m);
            let err: f64 = exact.iter().zip(&other).map(|(a, b)| (a - b).norm()).sum();
            prop_assert!(err <= 1e-9 * scale, "{m}: {err}");
        }
        let phantom = run(Backward::Phantom { steps: 80, damping: 1.0 }, LinMethod::Auto);
        let err: f64 = exact.iter().zip(&phantom).map(|(a, b)| (a - b).norm()).sum();
        prop_assert!(err <= 1e-6 * scale, "phantom: {err}");
    }

    /// Jacobian-free and phantom gradients are descent directions for the loss: their
    /// inner product with the exact gradient is positive (on this family, where
    /// ‖J_f‖ <= gain <= 0.5: the JFB error ‖(I − J)⁻ᵀ − I‖ <= gain / (1 − gain) <= 1
    /// relative to ‖∂f/∂θ‖ ‖z̄‖, so the angle stays below 90°).
    #[test]
    fn jacobian_free_and_phantom_gradients_are_descent_directions(case in case()) {
        let case = Case { gain: case.gain.min(0.5), ..case };
        let run = |b| grad(&DeqLayer::new(TanhLayer::normalized(case.gain)).with_options(options(b, LinMethod::Auto)), &case).1;
        let exact = run(Backward::Exact);
        let norm = |g: &[DMatrix<f64>]| inner(g, g).sqrt();
        for b in [Backward::JacobianFree, Backward::Phantom { steps: 1, damping: 1.0 },
                  Backward::Phantom { steps: 5, damping: 0.5 }] {
            let g = run(b);
            let cos = inner(&g, &exact) / (norm(&g) * norm(&exact)).max(1e-300);
            prop_assert!(cos > 0.0, "{b:?}: cos {cos}");
        }
    }

    /// Differentiating through T unrolled iterations on the tape converges to the implicit
    /// gradient: the difference is O(gainᵀ) (T = 120, gain <= 0.8: <= 3e-12 · C).
    #[test]
    fn the_unrolled_gradient_converges_to_the_implicit_one(case in case()) {
        let layer = DeqLayer::new(TanhLayer::normalized(case.gain))
            .with_options(options(Backward::Exact, LinMethod::Auto));
        let (_, implicit) = grad(&layer, &case);
        let tape = Tape::new();
        let vars: Vec<MatVar> = case.blocks.iter().map(|b| tape.mat_var(b.clone())).collect();
        let map = TanhLayer::normalized(case.gain);
        let inj = map.inject(&vars[3], &vars[..3]);
        let mut z = tape.constant_mat(DMatrix::zeros(D, B));
        for _ in 0..120 {
            z = map.map(&z, &inj, &vars[..3]);
        }
        let loss = z.mul_elem(&tape.constant_mat(case.c.clone())).sum() + z.sq_norm() * 0.5;
        let g = tape.gradient(loss).unwrap();
        let err: f64 = vars.iter().zip(&implicit).map(|(v, i)| (g.wrt_mat(v) - i).norm()).sum();
        prop_assert!(err <= 1e-8, "unrolled vs implicit: {err}");
    }
}

/// encoder x ↦ tanh(E r + e), the DEQ layer, a linear head y = V z: gradients reach the
/// encoder and the head (checked by central differences), and gradient steps through
/// `backward` lower the loss.
#[test]
fn an_encoder_and_a_head_train_end_to_end() {
    let raw = DMatrix::from_fn(3, 8, |i, j| ((i * 8 + j) as f64 * 0.37).sin());
    let target = DMatrix::from_fn(1, 8, |_, j| 0.5 * (raw[(0, j)] - raw[(1, j)]).tanh());
    let layer = DeqLayer::new(TanhLayer::normalized(0.7))
        .with_options(options(Backward::Exact, LinMethod::Auto));
    // params: E (P x 3), e (P x 1), W, U, b, V (1 x D)
    let mut params = vec![
        DMatrix::from_fn(P, 3, |i, j| 0.3 * ((i + 2 * j) as f64).cos()),
        DMatrix::from_element(P, 1, 0.1),
        DMatrix::from_fn(D, D, |i, j| ((i * 3 + j) as f64).sin()),
        DMatrix::from_fn(D, P, |i, j| 0.5 * ((i + j) as f64).cos()),
        DMatrix::from_element(D, 1, -0.1),
        DMatrix::from_fn(1, D, |_, j| 0.2 * j as f64 - 0.2),
    ];
    let value_and_grad = |p: &[DMatrix<f64>]| -> (f64, Vec<DMatrix<f64>>) {
        let tape = Tape::new();
        let v: Vec<MatVar> = p.iter().map(|m| tape.mat_var(m.clone())).collect();
        let h = v[0]
            .matmul(&tape.constant_mat(raw.clone()))
            .add_col(&v[1])
            .tanh();
        let out = layer.forward(&h, &v[2..5]).unwrap();
        let y = v[5].matmul(&out.z);
        let loss = y.sub(&tape.constant_mat(target.clone())).sq_norm() * (1.0 / 8.0);
        let g = tape.gradient(loss).unwrap();
        (loss.value_f64(), v.iter().map(|x| g.wrt_mat(x)).collect())
    };
    let (l0, g) = value_and_grad(&params);
    // Central differences on one entry of the encoder's E and of the head's V.
    for (block, i, j) in [(0, 1, 2), (5, 0, 1), (2, 0, 1)] {
        let h = 1e-5;
        let mut p = params.clone();
        p[block][(i, j)] += h;
        let lp = value_and_grad(&p).0;
        p[block][(i, j)] -= 2.0 * h;
        let lm = value_and_grad(&p).0;
        let fd = (lp - lm) / (2.0 * h);
        assert!(
            (fd - g[block][(i, j)]).abs() <= 1e-7 * (1.0 + fd.abs()),
            "block {block}: {fd} vs {}",
            g[block][(i, j)]
        );
    }
    for _ in 0..60 {
        let (_, g) = value_and_grad(&params);
        for (p, gi) in params.iter_mut().zip(&g) {
            *p -= gi * 1.0;
        }
    }
    let l1 = value_and_grad(&params).0;
    assert!(l1 < 0.2 * l0, "loss {l0} -> {l1}");
}

/// The monotone parametrization has a unique equilibrium, found by every solver, and its
/// implicit gradient agrees with central differences.
#[test]
fn the_monotone_layer_has_a_unique_equilibrium_and_exact_gradients() {
    let map = MonotoneLayer { m: 0.5, alpha: 0.3 };
    let theta = vec![
        DMatrix::from_fn(4, 4, |i, j| 0.4 * ((i * 4 + j) as f64 * 0.7).sin()),
        DMatrix::from_fn(4, 4, |i, j| 0.5 * ((i + 3 * j) as f64).cos()),
        DMatrix::from_fn(4, 2, |i, j| ((i + j) as f64 * 0.9).sin()),
        DMatrix::from_fn(4, 1, |i, _| 0.3 - 0.1 * i as f64),
    ];
    let x = DMatrix::from_fn(2, 3, |i, j| (i as f64 - 0.5) * (j as f64 + 1.0));
    let solve = |m: Method| {
        DeqLayer::new(map)
            .with_options(
                DeqOptions::default().solver(SolverOptions::default().method(m).tol(1e-13)),
            )
            .solve(&x, &theta)
            .unwrap()
            .z
    };
    let z = solve(Method::picard());
    for m in [Method::anderson(), Method::broyden()] {
        assert!((solve(m) - &z).norm() < 1e-10);
    }
    // The equilibrium of relu(W z + U x + b), W = (1 − m)I − AᵀA + B − Bᵀ.
    let w = map.weight(&theta[0], &theta[1]);
    let pre = &w * &z + &theta[2] * &x;
    let direct = DMatrix::from_fn(4, 3, |i, j| (pre[(i, j)] + theta[3][i]).max(0.0));
    assert!((direct - &z).norm() < 1e-10);
    // Gradient of sum(z) with respect to b[1], by central differences.
    let layer = DeqLayer::new(map).with_options(options(Backward::Exact, LinMethod::Auto));
    let tape = Tape::new();
    let v: Vec<MatVar> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
    let xv = tape.constant_mat(x.clone());
    let out = layer.forward(&xv, &v).unwrap();
    let g = tape.gradient(out.z.sum()).unwrap().wrt_mat(&v[3]);
    let h = 1e-6;
    let at = |s: f64| {
        let mut t = theta.clone();
        t[3][1] += s;
        layer.solve(&x, &t).unwrap().z.sum()
    };
    let fd = (at(h) - at(-h)) / (2.0 * h);
    assert!((fd - g[1]).abs() < 1e-7, "{fd} vs {}", g[1]);
}

/// An input given as data (`forward_data`) gives the same z* and θ gradients as the same
/// input recorded as a tape constant, and the node then has θ as its only inputs.
#[test]
fn data_inputs_give_the_same_gradients() {
    let layer = DeqLayer::new(TanhLayer::normalized(0.6))
        .with_options(options(Backward::Exact, LinMethod::Auto));
    let theta = [
        DMatrix::from_fn(D, D, |i, j| ((i * D + j) as f64).sin()),
        DMatrix::from_fn(D, P, |i, j| ((i + j) as f64).cos()),
        DMatrix::from_element(D, 1, 0.2),
    ];
    let x = DMatrix::from_fn(P, B, |i, j| i as f64 - j as f64 * 0.5);
    let run = |as_data: bool| {
        let tape = Tape::new();
        let v: Vec<MatVar> = theta.iter().map(|t| tape.mat_var(t.clone())).collect();
        let out = if as_data {
            layer.forward_data(&x, &v).unwrap()
        } else {
            layer.forward(&tape.constant_mat(x.clone()), &v).unwrap()
        };
        let g = tape.gradient(out.z.square().sum()).unwrap();
        (
            out.z.value(),
            v.iter().map(|t| g.wrt_mat(t)).collect::<Vec<_>>(),
        )
    };
    let (z1, g1) = run(true);
    let (z2, g2) = run(false);
    assert_eq!(z1, z2);
    for (a, b) in g1.iter().zip(&g2) {
        assert!((a - b).norm() <= 1e-12 * (1.0 + a.norm()));
    }
}

/// The layer as a `CustomFn` (`solution_fn`) gives the gradients of the tape node, and a
/// failed solve inside it is an error, not a number.
#[test]
fn the_solution_fn_matches_the_node_and_fails_loudly() {
    use ad_core::{CustomFn, MatFn, value_and_grad_mat};
    struct Loss<F>(F);
    impl<F: CustomFn> MatFn for Loss<F> {
        fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
            match M::custom(&self.0, p) {
                Ok(z) => z[0].square().sum(),
                Err(_) => p[0].sum() * f64::NAN,
            }
        }
    }
    let layer = DeqLayer::new(TanhLayer::normalized(0.7))
        .with_options(options(Backward::Exact, LinMethod::Auto));
    let blocks = vec![
        DMatrix::from_fn(D, D, |i, j| ((i * D + j) as f64).cos()),
        DMatrix::from_fn(D, P, |i, j| ((i + 2 * j) as f64).sin()),
        DMatrix::from_element(D, 1, -0.2),
        DMatrix::from_fn(P, B, |i, j| 0.4 * i as f64 - j as f64),
    ];
    let (v, g) = value_and_grad_mat(&Loss(layer.solution_fn()), &blocks).unwrap();
    let tape = Tape::new();
    let vars: Vec<MatVar> = blocks.iter().map(|b| tape.mat_var(b.clone())).collect();
    let out = layer.forward(&vars[3], &vars[..3]).unwrap();
    let loss = out.z.square().sum();
    let gt = tape.gradient(loss).unwrap();
    assert!((loss.value_f64() - v).abs() <= 1e-14 * v.abs());
    for (a, var) in g.iter().zip(&vars) {
        assert!((a - gt.wrt_mat(var)).norm() <= 1e-12 * (1.0 + a.norm()));
    }
    // Two iterations allowed: the forward solve fails inside the custom function.
    let short = DeqLayer::new(TanhLayer::normalized(0.7)).with_options(
        DeqOptions::default().solver(
            SolverOptions::default()
                .method(Method::picard())
                .max_iters(2),
        ),
    );
    let f = short.solution_fn();
    match <DMatrix<f64> as MatOps>::custom(&f, &blocks) {
        Err(ad_core::AdError::CustomRule { source, .. }) => {
            let e = source
                .downcast_ref::<implicit::ImplicitError>()
                .map(|e| e.to_string());
            assert!(
                format!("{source} {e:?}").contains("did not converge"),
                "{source}"
            );
        }
        other => panic!("{other:?}"),
    }
}
