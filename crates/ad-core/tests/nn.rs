//! Specification of `ad_core::nn`: the flat layout against the W5 reference network, the
//! reference meta-loss and MAML meta-gradient, derivatives against finite differences,
//! and seeded initialization. Saving, loading and data errors: `tests/nn_model.rs`.

use ad_core::nn::{Activation, Dense, Init, Mlp, MseLoss, column, mse};
use ad_core::{AdError, DualMat, MatFn, MatOps, Tape, hvp_mat, jvp_mat, value_and_grad_mat};
use nalgebra::DMatrix;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ------------------------------------------------------------------ W5 reference network

const HD: usize = 40;
const ALPHA: f64 = 0.01;

fn w1(i: usize) -> f64 {
    0.7 * (0.9 * (i + 1) as f64 + 0.4).sin()
}
fn b1(i: usize) -> f64 {
    0.5 * (1.3 * (i + 1) as f64).cos()
}
fn w2(i: usize, j: usize) -> f64 {
    0.1 * (0.7 * ((i + 1) * (j + 1)) as f64 + 0.3).cos()
}
fn b2(i: usize) -> f64 {
    0.1 * (0.6 * (i + 1) as f64).sin()
}
fn w3(j: usize) -> f64 {
    0.1 * (1.1 * (j + 1) as f64 + 0.2).sin()
}
const B3: f64 = 0.05;

fn w5_mlp() -> Mlp {
    Mlp::new(&[1, HD, HD, 1], Activation::Relu, Activation::Identity)
}

/// theta exactly as the reference lays it out: W1 (40x1), b1, W2 (40x40 row-major), b2,
/// W3 (1x40), b3.
fn w5_theta_reference() -> Vec<f64> {
    let mut t = Vec::new();
    t.extend((0..HD).map(w1));
    t.extend((0..HD).map(b1));
    for i in 0..HD {
        t.extend((0..HD).map(|j| w2(i, j)));
    }
    t.extend((0..HD).map(b2));
    t.extend((0..HD).map(w3));
    t.push(B3);
    t
}

/// theta written through the views, in PyTorch's orientation (W[i, j] = out i, in j).
fn w5_theta_views(mlp: &Mlp) -> Vec<f64> {
    let mut t = vec![f64::NAN; mlp.num_params()];
    for i in 0..HD {
        mlp.weights_mut(&mut t, 0)[(i, 0)] = w1(i);
        mlp.bias_mut(&mut t, 0)[i] = b1(i);
        for j in 0..HD {
            mlp.weights_mut(&mut t, 1)[(i, j)] = w2(i, j);
        }
        mlp.bias_mut(&mut t, 1)[i] = b2(i);
        mlp.weights_mut(&mut t, 2)[(0, i)] = w3(i);
    }
    mlp.bias_mut(&mut t, 2)[0] = B3;
    t
}

/// net(x) = W3 relu(W2 relu(W1 x + b1) + b2) + b3, by hand.
fn w5_net_loop(x: f64) -> f64 {
    let h1: Vec<f64> = (0..HD).map(|i| (w1(i) * x + b1(i)).max(0.0)).collect();
    let h2: Vec<f64> = (0..HD)
        .map(|i| ((0..HD).map(|j| w2(i, j) * h1[j]).sum::<f64>() + b2(i)).max(0.0))
        .collect();
    (0..HD).map(|j| w3(j) * h2[j]).sum::<f64>() + B3
}

struct Task {
    xs: DMatrix<f64>,
    ys: DMatrix<f64>,
    xq: DMatrix<f64>,
    yq: DMatrix<f64>,
}

fn w5_tasks() -> Vec<Task> {
    (0..25)
        .map(|t| {
            let tf = t as f64;
            let amp = 0.1 + 4.9 * (tf + 0.5) / 25.0;
            let phase = std::f64::consts::PI * ((7 * t) % 25) as f64 / 25.0;
            let base = |k: usize| -5.0 + 10.0 * (k as f64 + 0.5) / 10.0;
            let xs = DMatrix::from_fn(10, 1, |k, _| base(k) + 0.13 * tf);
            let xq = DMatrix::from_fn(10, 1, |k, _| base(k) + 0.29 * tf);
            let ys = xs.map(|x| amp * (x - phase).sin());
            let yq = xq.map(|x| amp * (x - phase).sin());
            Task { xs, ys, xq, yq }
        })
        .collect()
}

fn rel_close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1e-300)
}

#[test]
fn w5_flat_layout_matches_the_reference_layout() {
    let mlp = w5_mlp();
    assert_eq!(mlp.num_params(), 1761);
    assert_eq!(mlp.widths(), vec![1, 40, 40, 1]);
    assert_eq!((mlp.weight_range(0), mlp.bias_range(0)), (0..40, 40..80));
    assert_eq!(
        (mlp.weight_range(1), mlp.bias_range(1)),
        (80..1680, 1680..1720)
    );
    assert_eq!(
        (mlp.weight_range(2), mlp.bias_range(2)),
        (1720..1760, 1760..1761)
    );
    assert_eq!(mlp.layer_range(1), 80..1720);
    let reference = w5_theta_reference();
    assert_eq!(w5_theta_views(&mlp), reference);
    // the read views agree with the formulas (W2 is not symmetric: (i+1)(j+1) is, so
    // check a non-square layer's orientation too)
    assert_eq!(mlp.weights(&reference, 1)[(3, 7)], w2(3, 7));
    assert_eq!(mlp.weights(&reference, 2).shape(), (1, 40));
    assert_eq!(mlp.weights(&reference, 2)[(0, 9)], w3(9));
    assert_eq!(mlp.weights(&reference, 0).shape(), (40, 1));
    assert_eq!(mlp.bias(&reference, 1)[5], b2(5));
}

#[test]
fn w5_forward_matches_the_formula_in_every_mode() {
    let mlp = w5_mlp();
    let theta = w5_theta_reference();
    let xs = [-5.0, -1.3, 0.0, 0.7, 2.25, 4.9, 8.0];
    let x = DMatrix::from_column_slice(xs.len(), 1, &xs);
    let plain = mlp.forward_f64(&theta, &x);
    let generic = mlp.forward(&column(&theta), &x);
    let tape = Tape::new();
    let taped = mlp
        .forward(&tape.vector_var(&theta), &tape.constant_mat(x.clone()))
        .value();
    assert_eq!(plain.shape(), (xs.len(), 1));
    for (k, &xk) in xs.iter().enumerate() {
        let want = w5_net_loop(xk);
        for got in [plain[k], generic[k], taped[k]] {
            assert!(
                (got - want).abs() <= 1e-13 * (1.0 + want.abs()),
                "net({xk}) = {got}, loop gives {want}"
            );
        }
    }
}

#[test]
fn w5_pre_adaptation_meta_loss_matches_the_reference() {
    let mlp = w5_mlp();
    let theta = w5_theta_reference();
    let tasks = w5_tasks();
    let meta = tasks
        .iter()
        .map(|t| mse(&mlp.forward_f64(&theta, &t.xq), &t.yq))
        .sum::<f64>()
        / tasks.len() as f64;
    assert!(rel_close(meta, 4.23745910233, 1e-9), "meta-loss {meta}");
}

/// MAML with one inner step: meta_grad = mean_t (I - alpha H_sup_t(theta)) g_query_t(phi_t),
/// phi_t = theta - alpha g_sup_t(theta). The Hessian-vector products over the flat vector
/// come from `hvp_mat` (reverse over forward); the reference is JAX's second-order MAML.
#[test]
fn w5_maml_one_step_meta_gradient_from_flat_hvps_matches_the_reference() {
    let mlp = w5_mlp();
    let theta = w5_theta_reference();
    let tasks = w5_tasks();
    let n = mlp.num_params();
    let (mut meta_loss, mut maml, mut fomaml) = (0.0, vec![0.0; n], vec![0.0; n]);
    for t in &tasks {
        let sup = MseLoss::new(&mlp, &t.xs, &t.ys).unwrap();
        let query = MseLoss::new(&mlp, &t.xq, &t.yq).unwrap();
        let (_, gs) = sup.value_and_grad(&theta).unwrap();
        let phi: Vec<f64> = theta.iter().zip(&gs).map(|(p, g)| p - ALPHA * g).collect();
        let (lq, gq) = query.value_and_grad(&phi).unwrap();
        let hg = sup.hvp(&theta, &gq).unwrap();
        meta_loss += lq / 25.0;
        for k in 0..n {
            maml[k] += (gq[k] - ALPHA * hg[k]) / 25.0;
            fomaml[k] += gq[k] / 25.0;
        }
    }
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!(
        rel_close(meta_loss, 4.48933682285, 1e-9),
        "meta-loss {meta_loss}"
    );
    assert!(
        rel_close(norm(&maml), 2.77003527532, 1e-9),
        "MAML norm {}",
        norm(&maml)
    );
    assert!(
        rel_close(norm(&fomaml), 3.9905005002, 1e-9),
        "FOMAML norm {}",
        norm(&fomaml)
    );
    let want = [
        0.0857420616925,
        0.0993403662545,
        0.0148568761546,
        -0.0797271399025,
    ];
    for (&k, &w) in [0, 1, 40, 1760].iter().zip(&want) {
        assert!(
            rel_close(maml[k], w, 1e-8),
            "meta_grad[{k}] = {}, want {w}",
            maml[k]
        );
    }
}

// ------------------------------------------------------------------ generic structure

/// `unflatten` records one `column_block` node per block (`W^T` and the bias row of each
/// layer) and reads the flat layout without a transpose.
#[test]
fn unflatten_records_one_node_per_block() {
    let mlp = Mlp::new(&[3, 5, 4, 2], Activation::Tanh, Activation::Identity);
    let theta = mlp.init(Init::TorchDefault, 9);
    let tape = Tape::new();
    let flat = tape.vector_var(&theta);
    let before = tape.op_len();
    let layers = mlp.unflatten(&flat);
    assert_eq!(tape.op_len() - before, 2 * mlp.num_layers());
    for (l, p) in layers.iter().enumerate() {
        let d = mlp.layers()[l];
        assert_eq!(p.wt.shape(), (d.inputs, d.outputs));
        assert_eq!(p.bias.shape(), (1, d.outputs));
        // wt is W^T: wt[j, i] = W[i, j]
        let wt = p.wt.value();
        let w = mlp.weights(&theta, l);
        for i in 0..d.outputs {
            for j in 0..d.inputs {
                assert_eq!(wt[(j, i)], w[(i, j)]);
            }
            assert_eq!(p.bias.value()[(0, i)], mlp.bias(&theta, l)[i]);
        }
    }
}

#[test]
fn per_layer_activations_and_dense_forward() {
    let layers = vec![
        Dense::new(2, 3, Activation::Softplus),
        Dense::new(3, 3, Activation::Sigmoid),
        Dense::new(3, 1, Activation::Tanh),
    ];
    let mlp = Mlp::from_layers(layers.clone());
    assert_eq!(mlp.layers(), &layers[..]);
    let theta = mlp.init(Init::TorchDefault, 1);
    let x = DMatrix::from_row_slice(2, 2, &[0.3, -0.8, 1.1, 0.2]);
    let mut h = x.clone();
    for l in 0..3 {
        h = layers[l].forward_f64(&theta[mlp.layer_range(l)], &h);
    }
    assert_eq!(mlp.forward_f64(&theta, &x), h);
    // by hand for sample 0 through layer 0
    let z: f64 = (0..2)
        .map(|j| mlp.weights(&theta, 0)[(1, j)] * x[(0, j)])
        .sum::<f64>()
        + mlp.bias(&theta, 0)[1];
    let h0 = layers[0].forward_f64(&theta[mlp.layer_range(0)], &x);
    assert!((h0[(0, 1)] - (1.0 + z.exp()).ln()).abs() < 1e-15);
}

#[test]
fn activation_matrix_and_scalar_forms_agree() {
    let z = DMatrix::from_row_slice(1, 5, &[-30.0, -1.0, 0.0, 0.5, 40.0]);
    for a in Activation::ALL {
        let m = a.apply(&z);
        for k in 0..5 {
            // The matrix form runs the vectorized kernels (within 2 ulp of std, see
            // `ad_core::kernels`); the scalar form runs std.
            let (got, want) = (m[k], a.apply_scalar(z[k]));
            let ulp = (want.abs() * f64::EPSILON).max(f64::MIN_POSITIVE);
            assert!((got - want).abs() <= 2.0 * ulp, "{a:?}: {got} vs {want}");
        }
    }
    assert_eq!(
        serde_json::to_string(&Activation::Softplus).unwrap(),
        "\"Softplus\""
    );
}

#[test]
#[should_panic(expected = "layer 0 has 4 outputs but layer 1 takes 3 inputs")]
fn from_layers_rejects_widths_that_do_not_chain() {
    Mlp::from_layers(vec![
        Dense::new(2, 4, Activation::Tanh),
        Dense::new(3, 1, Activation::Identity),
    ]);
}

#[test]
#[should_panic(expected = "need 13 parameters, got 12")]
fn forward_f64_rejects_a_wrong_parameter_length() {
    let mlp = Mlp::new(&[2, 3, 1], Activation::Tanh, Activation::Identity);
    mlp.forward_f64(&[0.0; 12], &DMatrix::zeros(1, 2));
}

#[test]
#[should_panic(expected = "parameters must be a 13x1 column")]
fn forward_rejects_a_parameter_row() {
    let mlp = Mlp::new(&[2, 3, 1], Activation::Tanh, Activation::Identity);
    mlp.forward(&DMatrix::zeros(1, 13), &DMatrix::zeros(1, 2));
}

#[test]
#[should_panic(expected = "the batch is 4x3, expected 2 columns")]
fn forward_rejects_a_batch_of_the_wrong_width() {
    let mlp = Mlp::new(&[2, 3, 1], Activation::Tanh, Activation::Identity);
    mlp.forward_f64(&[0.0; 13], &DMatrix::zeros(4, 3));
}

#[test]
fn length_errors_are_errors() {
    let mlp = Mlp::new(&[2, 3, 1], Activation::Tanh, Activation::Identity);
    let (x, y) = (DMatrix::zeros(4, 2), DMatrix::zeros(4, 1));
    let loss = MseLoss::new(&mlp, &x, &y).unwrap();
    assert!(matches!(
        loss.value_and_grad(&[0.0; 14]),
        Err(AdError::Length {
            expected: 13,
            got: 14,
            ..
        })
    ));
    assert!(matches!(
        loss.hvp(&[0.0; 13], &[0.0; 12]),
        Err(AdError::Length {
            expected: 13,
            got: 12,
            ..
        })
    ));
    // non-finite parameters or directions: the first bad entry, named (the checks the
    // flat drivers made, kept by the layer-block path)
    let mut bad = [0.0; 13];
    bad[4] = f64::NAN;
    for r in [
        loss.value_and_grad(&bad).map(|_| ()),
        loss.hvp(&bad, &[0.0; 13]).map(|_| ()),
    ] {
        assert!(
            matches!(
                &r,
                Err(AdError::NonFinite {
                    what: "parameter matrices",
                    index: 4,
                    ..
                })
            ),
            "{r:?}"
        );
    }
    bad[4] = 0.0;
    bad[7] = f64::INFINITY;
    let r = loss.hvp(&[0.0; 13], &bad);
    assert!(
        matches!(&r, Err(AdError::NonFinite { what: "direction matrices", index: 7, value }) if *value == f64::INFINITY),
        "{r:?}"
    );
}

// ------------------------------------------------------------------ derivatives

/// A smooth random network, parameters and batch.
#[derive(Debug, Clone)]
struct Case {
    mlp: Mlp,
    theta: Vec<f64>,
    x: DMatrix<f64>,
    y: DMatrix<f64>,
    v: Vec<f64>,
}

/// Tanh, sigmoid and softplus, and ReLU too when `relu` (kinks: no finite differences).
fn case(relu: bool) -> impl Strategy<Value = Case> {
    let mut acts = vec![Activation::Tanh, Activation::Sigmoid, Activation::Softplus];
    if relu {
        acts.push(Activation::Relu);
    }
    let outs = [&acts[..], &[Activation::Identity]].concat();
    (
        prop::collection::vec(1usize..6, 2..5),
        prop::collection::vec(prop::sample::select(acts), 4),
        prop::sample::select(outs),
        1usize..5,
        any::<u64>(),
    )
        .prop_map(|(widths, hidden, out, batch, seed)| {
            let n = widths.len() - 1;
            let layers = (0..n)
                .map(|l| {
                    let a = if l + 1 == n { out } else { hidden[l] };
                    Dense::new(widths[l], widths[l + 1], a)
                })
                .collect();
            let mlp = Mlp::from_layers(layers);
            let mut rng = StdRng::seed_from_u64(seed);
            // a larger scale than the default so the nonlinearities are exercised
            let theta: Vec<f64> = mlp
                .init_with_rng(Init::TorchDefault, &mut rng)
                .iter()
                .map(|t| 2.0 * t)
                .collect();
            let mut draw = |r, c| DMatrix::from_fn(r, c, |_, _| rng.random_range(-2.0..2.0));
            let x = draw(batch, mlp.inputs());
            let y = draw(batch, mlp.outputs());
            let v = draw(mlp.num_params(), 1).as_slice().to_vec();
            Case {
                mlp,
                theta,
                x,
                y,
                v,
            }
        })
}

fn shifted(theta: &[f64], v: &[f64], h: f64) -> Vec<f64> {
    theta.iter().zip(v).map(|(t, d)| t + h * d).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Reverse mode over the flat vector equals central finite differences, entry by entry.
    #[test]
    fn gradient_matches_central_differences(c in case(false)) {
        let loss = MseLoss::new(&c.mlp, &c.x, &c.y).unwrap();
        let (value, g) = loss.value_and_grad(&c.theta).unwrap();
        prop_assert!((value - loss.value(&c.theta)).abs() <= 1e-14 * (1.0 + value));
        let h = 1e-5;
        for k in 0..c.theta.len() {
            let mut e = vec![0.0; c.theta.len()];
            e[k] = 1.0;
            let fd = (loss.value(&shifted(&c.theta, &e, h)) - loss.value(&shifted(&c.theta, &e, -h)))
                / (2.0 * h);
            // truncation h^2 |f'''| / 6 plus rounding eps |f| / h: both below 1e-9 here
            prop_assert!((g[k] - fd).abs() <= 1e-7 * (1.0 + g[k].abs()),
                "entry {k}: reverse {} vs fd {fd}", g[k]);
        }
    }

    /// `hvp` over the flat vector equals central differences of gradients.
    #[test]
    fn hvp_matches_differences_of_gradients(c in case(false)) {
        let loss = MseLoss::new(&c.mlp, &c.x, &c.y).unwrap();
        let hv = loss.hvp(&c.theta, &c.v).unwrap();
        let h = 1e-5;
        let (_, gp) = loss.value_and_grad(&shifted(&c.theta, &c.v, h)).unwrap();
        let (_, gm) = loss.value_and_grad(&shifted(&c.theta, &c.v, -h)).unwrap();
        let scale = 1.0 + hv.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for k in 0..hv.len() {
            let fd = (gp[k] - gm[k]) / (2.0 * h);
            prop_assert!((hv[k] - fd).abs() <= 1e-6 * scale,
                "entry {k}: hvp {} vs fd {fd}", hv[k]);
        }
    }

    /// `MseLoss::value_and_grad` and `hvp` enter the layers' blocks as tape leaves; the
    /// generic drivers on the same loss as a `MatFn` of the flat column cut them with slice
    /// and reshape nodes. The same products in the same order: the same bits.
    #[test]
    fn layer_blocks_give_the_flat_drivers_bits(c in case(true)) {
        let loss = MseLoss::new(&c.mlp, &c.x, &c.y).unwrap();
        let (value, g) = loss.value_and_grad(&c.theta).unwrap();
        let (flat_value, flat_g) = value_and_grad_mat(&loss, &[column(&c.theta)]).unwrap();
        prop_assert_eq!(value.to_bits(), flat_value.to_bits());
        prop_assert_eq!(&g[..], flat_g[0].as_slice());
        let hv = loss.hvp(&c.theta, &c.v).unwrap();
        let flat_hv = hvp_mat(&loss, &[column(&c.theta)], &[column(&c.v)]).unwrap();
        prop_assert_eq!(&hv[..], flat_hv[0].as_slice());
    }

    /// Forward mode and reverse mode agree: jvp_mat along v equals <grad, v>; the Hessian
    /// is symmetric: <u, H v> == <v, H u>. ReLU networks included (no differences taken).
    #[test]
    fn forward_reverse_and_symmetry(c in case(true)) {
        let loss = MseLoss::new(&c.mlp, &c.x, &c.y).unwrap();
        let (value, g) = loss.value_and_grad(&c.theta).unwrap();
        let (v2, dir) = jvp_mat(&loss, &[column(&c.theta)], &[column(&c.v)]).unwrap();
        let gv: f64 = g.iter().zip(&c.v).map(|(a, b)| a * b).sum();
        prop_assert!((v2 - value).abs() <= 1e-14 * (1.0 + value));
        prop_assert!((dir - gv).abs() <= 1e-11 * (1.0 + gv.abs()));
        let u: Vec<f64> = c.v.iter().enumerate().map(|(k, x)| x * (k as f64 * 0.7).cos()).collect();
        let hv = loss.hvp(&c.theta, &c.v).unwrap();
        let hu = loss.hvp(&c.theta, &u).unwrap();
        let (uhv, vhu): (f64, f64) = (
            u.iter().zip(&hv).map(|(a, b)| a * b).sum(),
            c.v.iter().zip(&hu).map(|(a, b)| a * b).sum(),
        );
        prop_assert!((uhv - vhu).abs() <= 1e-10 * (1.0 + uhv.abs()), "{uhv} vs {vhu}");
    }

    /// Every matrix mode computes the same forward values as the plain path.
    #[test]
    fn every_mode_gives_the_same_forward_values(
        c in case(true)
    ) {
        let plain = c.mlp.forward_f64(&c.theta, &c.x);
        let generic = c.mlp.forward(&column(&c.theta), &c.x);
        let tape = Tape::new();
        let taped = c.mlp.forward(&tape.vector_var(&c.theta), &tape.constant_mat(c.x.clone()));
        let dual = c.mlp.forward(
            &DualMat::new(column(&c.theta), column(&c.v)),
            &DualMat::new(c.x.clone(), DMatrix::zeros(c.x.nrows(), c.x.ncols())),
        );
        for other in [generic, taped.value(), dual.re] {
            prop_assert!((&other - &plain).amax() <= 1e-14 * (1.0 + plain.amax()));
        }
    }
}

/// A user-written loss (not `MseLoss`) on the flat column, through the driver directly.
#[test]
fn value_and_grad_mat_on_a_user_loss() {
    struct L2Reg<'a>(&'a Mlp, DMatrix<f64>);
    impl MatFn for L2Reg<'_> {
        fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
            let x = p[0].constant_like(self.1.clone());
            self.0.forward(&p[0], &x).sum() + p[0].sq_norm() * 0.5
        }
    }
    let mlp = Mlp::new(&[2, 3, 1], Activation::Sigmoid, Activation::Identity);
    let theta = mlp.init(Init::XavierUniform, 5);
    let f = L2Reg(&mlp, DMatrix::from_row_slice(1, 2, &[0.4, -0.6]));
    let (_, g) = value_and_grad_mat(&f, &[column(&theta)]).unwrap();
    assert_eq!(g[0].shape(), (13, 1));
    // d/d b2 of (output + |theta|^2 / 2) = 1 + b2
    let k = mlp.bias_range(1).start;
    assert!((g[0][k] - (1.0 + theta[k])).abs() < 1e-15);
}

// ------------------------------------------------------------------ initialization

#[test]
fn init_is_reproducible_and_pinned() {
    let mlp = Mlp::new(&[2, 3, 1], Activation::Tanh, Activation::Identity);
    for init in [Init::XavierUniform, Init::HeNormal, Init::TorchDefault] {
        let a = mlp.init(init, 2024);
        assert_eq!(a, mlp.init(init, 2024));
        assert_ne!(a, mlp.init(init, 2025));
        assert_eq!(a, mlp.init_with_rng(init, &mut StdRng::seed_from_u64(2024)));
        assert_eq!(a.len(), mlp.num_params());
    }
    // Pinned so that a change of rand's StdRng (or of our draw order) is noticed.
    let pin = |init: Init| mlp.init(init, 2024)[..3].to_vec();
    assert_eq!(pin(Init::XavierUniform), PINNED_XAVIER);
    assert_eq!(pin(Init::HeNormal), PINNED_HE);
    assert_eq!(pin(Init::TorchDefault), PINNED_TORCH);
}

const PINNED_XAVIER: [f64; 3] = [0.7045538346205664, 0.02240590546962105, 0.22902624465858076];
const PINNED_HE: [f64; 3] = [0.9398454735289758, 0.04281735842771459, 0.16362241918254566];
const PINNED_TORCH: [f64; 3] = [
    0.45478754466533805,
    0.014462949790090001,
    0.14783580523451811,
];

#[test]
fn init_has_the_documented_scale() {
    let (fan_in, fan_out) = (300, 200);
    let mlp = Mlp::new(
        &[fan_in, fan_out],
        Activation::Identity,
        Activation::Identity,
    );
    for init in [Init::XavierUniform, Init::HeNormal, Init::TorchDefault] {
        let p = mlp.init(init, 7);
        let w = &p[mlp.weight_range(0)];
        let n = w.len() as f64;
        let mean = w.iter().sum::<f64>() / n;
        let var = w.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
        let want = init.weight_variance(fan_in, fan_out);
        // standard error of the variance estimate is below 0.6% at n = 60000
        assert!(
            (var / want - 1.0).abs() < 0.03,
            "{init:?}: variance {var}, want {want}"
        );
        assert!(
            mean.abs() < 5.0 * (want / n).sqrt(),
            "{init:?}: mean {mean}"
        );
        let b = &p[mlp.bias_range(0)];
        match init {
            Init::XavierUniform => {
                let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
                assert!(w.iter().all(|x| x.abs() < a));
                assert!(b.iter().all(|&x| x == 0.0));
            }
            Init::HeNormal => assert!(b.iter().all(|&x| x == 0.0)),
            Init::TorchDefault => {
                let a = 1.0 / (fan_in as f64).sqrt();
                assert!(w.iter().chain(b).all(|x| x.abs() < a));
                assert!(b.iter().any(|&x| x != 0.0));
            }
        }
    }
}

#[test]
#[should_panic(expected = "layer 2 out of range for a 2-layer network")]
fn layer_positions_reject_a_layer_past_the_end() {
    // offsets has num_layers + 1 entries, so without the check offset(2) would quietly
    // return num_params.
    let mlp = Mlp::new(&[2, 3, 1], Activation::Tanh, Activation::Identity);
    mlp.offset(2);
}
