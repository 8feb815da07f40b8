//! Meta-SGD (learned per-parameter inner rates): its meta-gradient of `[theta, alpha]`
//! against central finite differences and against differentiating through the unrolled
//! inner loop on the tape; the first-order variant; MAML as the special case of equal rates;
//! training, checkpoints and evaluation with the learned rates; bad input.

mod common;

use ad_core::nn::{Mlp, MseLoss, column, mse};
use ad_core::{MatFn, MatOps, value_and_grad_mat};
use common::{hand_grad, rel_dist, sinusoid_task, small_mlp};
use metalearn::{
    Algorithm, Checkpoint, EvalOptions, InnerSgd, MetaError, MetaSgdOptions, MetaTrainer,
    Parallelism, Sinusoid, Task, TrainOptions, adapt, adapt_with_rates, evaluate_meta_params,
    meta_gradient, sample_batch,
};
use proptest::prelude::*;

/// The `what` of a Meta-SGD meta-parameter vector of the wrong length.
const META_SGD_LEN: &str =
    "Meta-SGD meta-parameter vector length ([theta, alpha]: init_meta_params)";

/// Assert `result` is the error of Meta-SGD meta-parameters without their rates (the
/// network's `n` parameters where `2 n` were expected).
fn rates_missing<T: std::fmt::Debug>(result: Result<T, MetaError>, n: usize) {
    match result {
        Err(MetaError::Dimension {
            what,
            expected,
            got,
        }) => assert_eq!((what, expected, got), (META_SGD_LEN, 2 * n, n)),
        other => panic!("{other:?}"),
    }
}

fn meta_sgd(steps: usize) -> MetaSgdOptions {
    MetaSgdOptions::default().steps(steps)
}

/// Rates around `base`, different per parameter (so a swapped or shared rate shows).
fn rates(n: usize, base: f64, seed: u64) -> Vec<f64> {
    (0..n)
        .map(|i| base * (1.0 + 0.5 * ((i as f64 + 1.0) * 0.91 + seed as f64).sin()))
        .collect()
}

/// `L_query(phi_k)` with `phi_{j+1} = phi_j - alpha ⊙ g(phi_j)`, the support gradient
/// written by hand in `MatOps`, so the tape records the whole inner loop; blocks
/// `[theta, alpha]`.
struct UnrolledMetaSgd<'a> {
    mlp: &'a Mlp,
    task: &'a Task,
    steps: usize,
}

impl MatFn for UnrolledMetaSgd<'_> {
    fn eval<M: MatOps>(&self, params: &[M]) -> M::Scalar {
        let (mut phi, alpha) = (params[0].clone(), &params[1]);
        for _ in 0..self.steps {
            let g = hand_grad(self.mlp, &phi, &self.task.support_x, &self.task.support_y);
            phi = phi.sub(&alpha.mul_elem(&g));
        }
        let xq = phi.constant_like(self.task.query_x.clone());
        let yq = phi.constant_like(self.task.query_y.clone());
        mse(&self.mlp.forward(&phi, &xq), &yq)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The meta-gradient of `[theta, alpha]` (1 to 3 steps, random 1-h-1 tanh networks,
    /// sinusoid tasks, rates varying per parameter) equals central finite differences of
    /// the adapted query loss along a random direction in both. Step and tolerance as for
    /// MAML (tests/maml.rs): truncation ~1e-10 and rounding ~1e-11 against a bound of 1e-6
    /// relative, while a missing second-order or rate term is ~1e-2 relative.
    #[test]
    fn meta_sgd_matches_finite_differences(
        seed in 0u64..1000, hidden in 2usize..6, steps in 1usize..4, base in 0.01f64..0.1,
    ) {
        let (mlp, theta) = small_mlp(hidden, seed);
        let task = sinusoid_task(seed + 1, 5);
        let alg = Algorithm::MetaSgd(meta_sgd(steps));
        let mut params = theta.clone();
        params.extend(rates(theta.len(), base, seed));
        let tg = alg.task_gradient(&mlp, &params, &task, 0).unwrap();
        prop_assert_eq!(tg.grad.len(), params.len());
        let dir: Vec<f64> = (0..params.len())
            .map(|i| ((i as f64 + 1.0) * 1.37 + seed as f64).sin())
            .collect();
        // Rates are ~0.05 while parameters are ~1: scale the rates' direction alike.
        let dir: Vec<f64> = dir.iter().enumerate()
            .map(|(i, d)| if i < theta.len() { *d } else { d * base })
            .collect();
        let h = 1e-5;
        let at = |s: f64| {
            let p: Vec<f64> = params.iter().zip(&dir).map(|(a, d)| a + s * d).collect();
            alg.task_gradient(&mlp, &p, &task, 0).unwrap().loss
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        let ad: f64 = tg.grad.iter().zip(&dir).map(|(g, d)| g * d).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let scale = norm(&tg.grad) * norm(&dir);
        prop_assert!((fd - ad).abs() <= 1e-6 * scale.max(1e-3), "fd {fd} vs ad {ad} (scale {scale})");
    }

    /// It equals the gradient of the unrolled inner loop recorded on the tape, for both
    /// blocks (exact both ways; summation order only: 1e-11 relative).
    #[test]
    fn meta_sgd_matches_the_unrolled_tape(
        seed in 0u64..1000, hidden in 2usize..6, steps in 1usize..4, base in 0.01f64..0.1,
    ) {
        let (mlp, theta) = small_mlp(hidden, seed);
        let task = sinusoid_task(seed + 7, 6);
        let alpha = rates(theta.len(), base, seed + 3);
        let mut params = theta.clone();
        params.extend(&alpha);
        let tg = Algorithm::MetaSgd(meta_sgd(steps)).task_gradient(&mlp, &params, &task, 0).unwrap();
        let unrolled = UnrolledMetaSgd { mlp: &mlp, task: &task, steps };
        let (l, g) = value_and_grad_mat(&unrolled, &[column(&theta), column(&alpha)]).unwrap();
        let n = theta.len();
        prop_assert!((l - tg.loss).abs() <= 1e-12 * l.abs().max(1.0));
        prop_assert!(rel_dist(&tg.grad[..n], g[0].as_slice(), 1e-8) < 1e-11);
        prop_assert!(rel_dist(&tg.grad[n..], g[1].as_slice(), 1e-8) < 1e-11);
    }

    /// With every rate equal to MAML's `lr`, the `theta` block is MAML's meta-gradient
    /// (the same exact quantity; `H (lr v)` against `lr (H v)` differs in rounding only)
    /// and the query loss is MAML's bit for bit; the first-order variant's `theta` block is
    /// FOMAML's bit for bit, and its `alpha` block is `-sum_j g_j ⊙ v` with `v` the query
    /// gradient at the adapted parameters.
    #[test]
    fn equal_rates_give_maml_and_first_order_gives_fomaml(
        seed in 0u64..1000, steps in 1usize..4, lr in 0.01f64..0.1,
    ) {
        let (mlp, theta) = small_mlp(4, seed);
        let task = sinusoid_task(seed + 11, 5);
        let n = theta.len();
        let mut params = theta.clone();
        params.resize(2 * n, lr);
        let sgd = InnerSgd::default().steps(steps).lr(lr);
        let maml = Algorithm::Maml(sgd).task_gradient(&mlp, &theta, &task, 0).unwrap();
        let ms = Algorithm::MetaSgd(meta_sgd(steps)).task_gradient(&mlp, &params, &task, 0).unwrap();
        prop_assert_eq!(ms.loss, maml.loss);
        prop_assert!(rel_dist(&ms.grad[..n], &maml.grad, 1e-8) < 1e-12);
        prop_assert_eq!((ms.stats.gradients, ms.stats.hvps), (steps + 1, steps));

        let fo = Algorithm::MetaSgd(meta_sgd(steps).first_order(true))
            .task_gradient(&mlp, &params, &task, 0).unwrap();
        let fomaml = Algorithm::Fomaml(sgd).task_gradient(&mlp, &theta, &task, 0).unwrap();
        prop_assert_eq!(&fo.grad[..n], &fomaml.grad[..]);
        prop_assert_eq!(fo.stats.hvps, 0);
        let sup = MseLoss::new(&mlp, &task.support_x, &task.support_y).unwrap();
        let mut phi = theta.clone();
        let mut gs = Vec::new();
        for _ in 0..steps {
            let (_, g) = sup.value_and_grad(&phi).unwrap();
            phi.iter_mut().zip(&g).for_each(|(p, gi)| *p -= lr * gi);
            gs.push(g);
        }
        let v = &fomaml.grad;
        let mut d_alpha = vec![0.0; n];
        for g in gs.iter().rev() {
            d_alpha.iter_mut().zip(g).zip(v).for_each(|((d, gi), vi)| *d -= gi * vi);
        }
        prop_assert_eq!(&fo.grad[n..], &d_alpha[..]);
    }
}

/// Meta-training runs with `[theta, alpha]`: the rates move, serial and parallel batches
/// agree bit for bit, a checkpoint keeps the rates (and JSON without them still loads for
/// the other algorithms), and a resumed run continues bit for bit. Evaluation fine-tunes with
/// the learned rates.
#[test]
fn training_checkpoints_and_evaluation_carry_the_rates() {
    let (mlp, theta) = small_mlp(6, 3);
    let alg = Algorithm::MetaSgd(meta_sgd(2).init_lr(0.02));
    let params = alg.init_meta_params(theta.clone());
    assert_eq!(params.len(), 2 * theta.len());
    let dist = Sinusoid::default();
    let tasks = sample_batch(&dist, 5, 0, 6, 5, 5).unwrap();
    let serial = meta_gradient(&alg, &mlp, &params, &tasks, Parallelism::Serial).unwrap();
    let rayon = meta_gradient(&alg, &mlp, &params, &tasks, Parallelism::Rayon).unwrap();
    assert_eq!(serial, rayon);

    let opts = TrainOptions::default()
        .meta_batch(4)
        .shots(5)
        .parallelism(Parallelism::Serial);
    let mut a = MetaTrainer::new(alg, mlp.clone(), params.clone(), opts.clone()).unwrap();
    a.run(&dist, 3, |_| {}).unwrap();
    let n = theta.len();
    let (_, learned) = alg.split_meta_params(&mlp, a.theta()).unwrap();
    let learned = learned.unwrap().to_vec();
    assert!(
        learned.iter().any(|&r| r != 0.02),
        "the rates were not trained"
    );

    let ckpt = a.checkpoint();
    assert_eq!(ckpt.inner_rates, learned);
    assert_eq!(ckpt.model.params(), &a.theta()[..n]);
    let json = ckpt.to_json().unwrap();
    assert!(json.contains("inner_rates"));
    let mut b = MetaTrainer::resume(Checkpoint::from_json(&json).unwrap()).unwrap();
    a.run(&dist, 2, |_| {}).unwrap();
    b.run(&dist, 2, |_| {}).unwrap();
    assert_eq!(a.theta(), b.theta());
    // A Meta-SGD checkpoint without its rates does not fit its algorithm.
    let mut stripped = a.checkpoint();
    stripped.inner_rates.clear();
    rates_missing(
        Checkpoint::from_json(&serde_json::to_string(&stripped).unwrap()),
        n,
    );
    // MAML's checkpoints carry no rates field at all.
    let maml = MetaTrainer::new(
        Algorithm::Maml(InnerSgd::default()),
        mlp.clone(),
        theta,
        opts,
    )
    .unwrap();
    assert!(!maml.checkpoint().to_json().unwrap().contains("inner_rates"));

    // Evaluation: the learned rates, not the protocol's lr. The report's mean after two
    // steps is the mean of the query losses after two steps of `adapt_with_rates`, in task
    // order (the same sum, so the same bits), and differs from plain SGD's.
    let mut eopts = EvalOptions::default().tasks(6).steps(2);
    eopts.parallelism = Parallelism::Serial;
    let report = evaluate_meta_params(&alg, &mlp, a.theta(), &dist, &eopts).unwrap();
    let (theta_now, rates_now) = alg.split_meta_params(&mlp, a.theta()).unwrap();
    let rates_now = rates_now.unwrap();
    let mut sum = 0.0;
    for t in eopts.test_tasks(&dist).unwrap() {
        let q = MseLoss::new(&mlp, &t.query_x, &t.query_y).unwrap();
        let by_rates = adapt_with_rates(&mlp, theta_now, rates_now, &t, 2).unwrap();
        let by_lr = adapt(&mlp, theta_now, &t, &InnerSgd::default().steps(2)).unwrap();
        assert_ne!(by_rates[2], by_lr[2]);
        sum += q.value(&by_rates[2]);
    }
    let at2 = report.at(2).unwrap();
    assert_eq!((at2.finite, at2.diverged), (6, 0));
    assert_eq!(at2.mean, Some(sum / 6.0));
}

/// Bad input: meta-parameters of the network's length (the rates missing), a non-finite
/// rate, invalid options, rates of the wrong length for `adapt_with_rates`.
#[test]
fn meta_sgd_bad_input_is_typed() {
    let (mlp, theta) = small_mlp(3, 1);
    let n = theta.len();
    let task = sinusoid_task(2, 5);
    let alg = Algorithm::MetaSgd(meta_sgd(1));
    rates_missing(alg.task_gradient(&mlp, &theta, &task, 0), n);
    let mut params = alg.init_meta_params(theta.clone());
    params[n + 2] = f64::NAN;
    match alg.task_gradient(&mlp, &params, &task, 0) {
        Err(MetaError::NonFinite { what, index, value }) => {
            assert_eq!((what, index), ("meta-parameters", n + 2));
            assert!(value.is_nan());
        }
        other => panic!("{other:?}"),
    }
    for (bad, name, value) in [
        (meta_sgd(0), "inner steps", 0.0),
        (meta_sgd(1).init_lr(f64::NAN), "init_lr", f64::NAN),
        (meta_sgd(1).init_lr(-0.1), "init_lr", -0.1),
    ] {
        let params = alg.init_meta_params(theta.clone());
        match Algorithm::MetaSgd(bad).task_gradient(&mlp, &params, &task, 0) {
            Err(MetaError::InvalidOption {
                name: got,
                value: v,
                ..
            }) => {
                assert_eq!(got, name);
                assert!(v == value || (v.is_nan() && value.is_nan()));
            }
            other => panic!("{other:?}"),
        }
    }
    match adapt_with_rates(&mlp, &theta, &theta[1..], &task, 1) {
        Err(MetaError::Dimension {
            what,
            expected,
            got,
        }) => assert_eq!((what, expected, got), ("inner rates length", n, n - 1)),
        other => panic!("{other:?}"),
    }
    let mut inf = vec![0.01; n];
    inf[0] = f64::INFINITY;
    assert!(matches!(
        adapt_with_rates(&mlp, &theta, &inf, &task, 1),
        Err(MetaError::NonFinite {
            what: "inner rates",
            index: 0,
            ..
        })
    ));
    // Rates so large the inner steps leave the finite numbers: `Diverged` naming the task
    // and the step, not a NaN meta-gradient.
    let mut huge = alg.init_meta_params(theta.clone());
    huge[n..].iter_mut().for_each(|r| *r = 1e300);
    match alg.task_gradient(&mlp, &huge, &task, 3) {
        Err(MetaError::Diverged { task, step, .. }) => assert_eq!((task, step), (3, 1)),
        other => panic!("{other:?}"),
    }
    // An empty meta-batch, and a checkpoint whose saved rates are not finite.
    let params = alg.init_meta_params(theta.clone());
    assert!(matches!(
        meta_gradient(&alg, &mlp, &params, &[], Parallelism::Serial),
        Err(MetaError::EmptyBatch)
    ));
    let opts = TrainOptions::default()
        .meta_batch(2)
        .parallelism(Parallelism::Serial);
    let mut ckpt = MetaTrainer::new(alg, mlp.clone(), params, opts)
        .unwrap()
        .checkpoint();
    ckpt.inner_rates[1] = f64::NAN;
    // serde_json writes NaN as null, which does not read back as a rate.
    let json = serde_json::to_string(&ckpt).unwrap();
    assert!(matches!(
        Checkpoint::from_json(&json),
        Err(MetaError::Load { .. })
    ));
    ckpt.inner_rates[1] = f64::INFINITY;
    assert!(matches!(
        ckpt.to_json(),
        Err(MetaError::NonFinite { what: "meta-parameters", index, .. }) if index == n + 1
    ));
}
