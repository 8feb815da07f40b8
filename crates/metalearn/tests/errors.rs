//! Bad input gives typed errors carrying the numbers.

use ad_core::nn::{Activation, Init, Mlp};
use ad_core::optim::{Adam, AdamOptions, AdamState, OptimError, Optimizer};
use implicit::linear::SolveError;
use metalearn::{
    Algorithm, Checkpoint, EvalOptions, ImamlOptions, InnerSgd, MetaError, MetaTrainer,
    Parallelism, Sinusoid, Stop, Task, TaskData, TrainOptions, evaluate, meta_gradient,
};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn col(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

fn net() -> (Mlp, Vec<f64>) {
    let mlp = Mlp::new(&[1, 8, 1], Activation::Tanh, Activation::Identity);
    let theta = mlp.init(Init::XavierUniform, 0);
    (mlp, theta)
}

fn good_task() -> Task {
    Task::new(col(&[0.0, 1.0]), col(&[0.5, 0.2]), col(&[2.0]), col(&[0.1])).unwrap()
}

#[test]
fn non_finite_task_data() {
    let err = Task::new(
        col(&[0.0, f64::NAN]),
        col(&[1.0, 2.0]),
        col(&[1.0]),
        col(&[1.0]),
    );
    match err {
        Err(MetaError::NonFinite { what, index, value }) => {
            assert_eq!((what, index), ("support inputs", 1));
            assert!(value.is_nan());
        }
        other => panic!("{other:?}"),
    }
    let err = Task::new(col(&[0.0]), col(&[1.0]), col(&[1.0]), col(&[f64::INFINITY]));
    assert!(matches!(
        err,
        Err(MetaError::NonFinite { what: "query targets", index: 0, value }) if value == f64::INFINITY
    ));
}

#[test]
fn k_larger_than_the_data() {
    let data = TaskData::new(col(&[0.0, 1.0, 2.0, 3.0]), col(&[0.0, 1.0, 4.0, 9.0])).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    match data.split(3, 2, &mut rng) {
        Err(MetaError::NotEnoughData {
            requested,
            support,
            query,
            available,
        }) => {
            assert_eq!((requested, support, query, available), (5, 3, 2, 4));
        }
        other => panic!("{other:?}"),
    }
    let t = data.split(2, 2, &mut rng).unwrap();
    assert_eq!((t.support_x.nrows(), t.query_x.nrows()), (2, 2));
}

#[test]
fn model_and_data_dimensions() {
    let (mlp, theta) = net();
    let wide = Task::new(
        DMatrix::zeros(2, 3),
        col(&[0.0, 1.0]),
        DMatrix::zeros(1, 3),
        col(&[1.0]),
    )
    .unwrap();
    let alg = Algorithm::Maml(InnerSgd::default());
    match alg.task_gradient(&mlp, &theta, &wide, 0) {
        Err(MetaError::Dimension { expected, got, .. }) => assert_eq!((expected, got), (1, 3)),
        other => panic!("{other:?}"),
    }
    match alg.task_gradient(&mlp, &theta[1..], &good_task(), 0) {
        Err(MetaError::Dimension { expected, got, .. }) => {
            assert_eq!((expected, got), (theta.len(), theta.len() - 1))
        }
        other => panic!("{other:?}"),
    }
    // a distribution of 3-input tasks evaluated with a 1-input network
    let lin = metalearn::LinearRegression::new(3);
    assert!(matches!(
        evaluate(&mlp, &theta, &lin, &EvalOptions::default().tasks(2)),
        Err(MetaError::Dimension {
            expected: 1,
            got: 3,
            ..
        })
    ));
    let mismatched = Task::new(col(&[0.0, 1.0]), col(&[1.0]), col(&[1.0]), col(&[1.0]));
    assert!(matches!(
        mismatched,
        Err(MetaError::Dimension {
            expected: 2,
            got: 1,
            ..
        })
    ));
    let mut bad = theta.clone();
    bad[3] = f64::NAN;
    assert!(matches!(
        alg.task_gradient(&mlp, &bad, &good_task(), 0),
        Err(MetaError::NonFinite {
            what: "meta-parameters",
            index: 3,
            ..
        })
    ));
}

#[test]
fn imaml_inner_solve_not_converged() {
    let (mlp, theta) = net();
    let opts = ImamlOptions::default().inner(Stop::Tolerance {
        tol: 1e-14,
        max_iters: 3,
    });
    let tasks = vec![good_task(), good_task()];
    match meta_gradient(
        &Algorithm::Imaml(opts),
        &mlp,
        &theta,
        &tasks,
        Parallelism::Serial,
    ) {
        Err(MetaError::InnerNotConverged {
            task,
            iterations,
            residual,
            tolerance,
        }) => {
            assert_eq!((task, iterations, tolerance), (0, 3, 1e-14));
            assert!(residual > 1e-14 && residual.is_finite());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn imaml_linear_solve_failure_names_the_task() {
    // The W5 network: I + H/lambda is indefinite for task 5, and CG to a tolerance stops.
    let mlp = metalearn::w5::mlp();
    let theta = metalearn::w5::theta();
    let tasks = metalearn::w5::tasks();
    let opts = ImamlOptions::w5().cg(Stop::Tolerance {
        tol: 1e-10,
        max_iters: 50,
    });
    match Algorithm::Imaml(opts).task_gradient(&mlp, &theta, &tasks[5], 5) {
        Err(MetaError::Linear { task: 5, source }) => assert!(matches!(
            source,
            SolveError::NegativeCurvature { .. } | SolveError::NotConverged { .. }
        )),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_options() {
    let (mlp, theta) = net();
    let tasks = vec![good_task()];
    let cases: Vec<(Algorithm, &str)> = vec![
        (Algorithm::Maml(InnerSgd::default().steps(0)), "inner steps"),
        (
            Algorithm::Fomaml(InnerSgd::default().lr(f64::NAN)),
            "inner lr",
        ),
        (Algorithm::Reptile(InnerSgd::default().lr(-1.0)), "inner lr"),
        (
            Algorithm::Imaml(ImamlOptions::default().lambda(0.0)),
            "lambda",
        ),
        (
            Algorithm::Imaml(ImamlOptions::default().cg(Stop::Fixed { iters: 0 })),
            "cg iterations",
        ),
        (
            Algorithm::Imaml(ImamlOptions::default().inner(Stop::Tolerance {
                tol: f64::NAN,
                max_iters: 3,
            })),
            "inner tol",
        ),
    ];
    for (alg, want) in cases {
        match meta_gradient(&alg, &mlp, &theta, &tasks, Parallelism::Serial) {
            Err(MetaError::InvalidOption { name, .. }) => assert_eq!(name, want),
            other => panic!("{want}: {other:?}"),
        }
    }
    assert!(matches!(
        meta_gradient(&Algorithm::Joint, &mlp, &theta, &[], Parallelism::Serial),
        Err(MetaError::EmptyBatch)
    ));
    assert!(matches!(
        MetaTrainer::new(
            Algorithm::Joint,
            mlp.clone(),
            theta.clone(),
            TrainOptions::default().meta_batch(0)
        ),
        Err(MetaError::InvalidOption {
            name: "meta_batch",
            ..
        })
    ));
    let mut bad_adam = TrainOptions::default();
    bad_adam.adam = bad_adam.adam.learning_rate(-1.0);
    assert!(matches!(
        MetaTrainer::new(Algorithm::Joint, mlp.clone(), theta.clone(), bad_adam),
        Err(MetaError::Optim(_))
    ));
    assert!(matches!(
        evaluate(
            &mlp,
            &theta,
            &Sinusoid::default(),
            &EvalOptions::default().tasks(0)
        ),
        Err(MetaError::InvalidOption { name: "tasks", .. })
    ));
}

#[test]
fn divergence_is_reported_with_the_step() {
    // a linear model with a huge inner rate: the iterates overflow
    let mlp = Mlp::new(&[1, 1], Activation::Identity, Activation::Identity);
    let task = Task::new(
        col(&[1e100, 1.0]),
        col(&[1.0, 2.0]),
        col(&[1.0]),
        col(&[1.0]),
    )
    .unwrap();
    let alg = Algorithm::Maml(InnerSgd::default().steps(5).lr(1e10));
    match alg.task_gradient(&mlp, &[0.5, 0.1], &task, 4) {
        Err(MetaError::Diverged {
            task, step, value, ..
        }) => {
            assert_eq!(task, 4);
            assert!(step >= 1 && !value.is_finite());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn checkpoints_round_trip_and_corrupt_files_are_errors() {
    let (mlp, theta) = net();
    let dist = Sinusoid::default();
    let opts = TrainOptions::default()
        .meta_batch(3)
        .parallelism(Parallelism::Serial);
    let alg = Algorithm::Imaml(
        ImamlOptions::default()
            .inner(Stop::Fixed { iters: 5 })
            .cg(Stop::Fixed { iters: 2 }),
    );
    let mut a = MetaTrainer::new(alg, mlp, theta, opts).unwrap();
    a.run(&dist, 2, |_| {}).unwrap();
    let dir = std::env::temp_dir().join(format!("metalearn-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("run.json");
    a.checkpoint().save_json(&path).unwrap();
    let mut b = MetaTrainer::resume(Checkpoint::load_json(&path).unwrap()).unwrap();
    a.run(&dist, 2, |_| {}).unwrap();
    b.run(&dist, 2, |_| {}).unwrap();
    assert_eq!(a.theta(), b.theta()); // resumed bit for bit
    assert_eq!(b.iteration(), 4);

    let json = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, &json[..json.len() / 2]).unwrap();
    match Checkpoint::load_json(&path) {
        Err(MetaError::Load {
            what,
            path: Some(p),
            ..
        }) => {
            assert_eq!((what, p), ("checkpoint", path.clone()))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Checkpoint::load_json(dir.join("missing.json")),
        Err(MetaError::Io { action: "read", .. })
    ));
    // parameters that do not fit the network
    let short = json.replacen("\"params\":[", "\"params\":[1.0,", 1);
    assert!(matches!(
        Checkpoint::from_json(&short),
        Err(MetaError::Load { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Fine-tuning that leaves the finite numbers is counted per step, not averaged: with a
/// huge evaluation rate every task diverges after the first step, and step 0 is intact.
#[test]
fn evaluation_counts_diverged_tasks() {
    let mlp = Mlp::new(&[1, 1], Activation::Identity, Activation::Identity);
    let mut opts = EvalOptions::default().tasks(10).steps(40);
    opts.lr = 1e3;
    let r = evaluate(&mlp, &[0.3, 0.1], &Sinusoid::default(), &opts).unwrap();
    let first = r.at(0).unwrap();
    assert_eq!((first.finite, first.diverged), (10, 0));
    assert!(first.mean.is_some_and(f64::is_finite) && first.ci95.is_some_and(f64::is_finite));
    let last = r.at(40).unwrap();
    assert_eq!((last.finite, last.diverged), (0, 10));
    assert_eq!((last.mean, last.ci95), (None, None));
}

/// The probe's network.
fn ml() -> Mlp {
    Mlp::new(&[1, 16, 1], Activation::Tanh, Activation::Identity)
}

#[test]
fn split_counts_that_overflow_are_not_enough_data() {
    let data = TaskData::new(col(&[0.0, 1.0, 2.0, 3.0]), col(&[0.0, 1.0, 4.0, 9.0])).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    for (s, q) in [(usize::MAX, 1), (1, usize::MAX), (usize::MAX, usize::MAX)] {
        match data.split(s, q, &mut rng) {
            Err(MetaError::NotEnoughData {
                requested,
                support,
                query,
                available,
            }) => assert_eq!(
                (requested, support, query, available),
                (usize::MAX, s, q, 4)
            ),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn reptile_rate_whose_inverse_overflows_is_refused() {
    let mlp = ml();
    let theta = mlp.init(Init::XavierUniform, 0);
    let tasks = vec![good_task()];
    for (steps, lr) in [(1, 1e-310), (3, 1e-309), (10, 1e308)] {
        let alg = Algorithm::Reptile(InnerSgd::default().steps(steps).lr(lr));
        match meta_gradient(&alg, &mlp, &theta, &tasks, Parallelism::Serial) {
            Err(MetaError::InvalidOption {
                name: "inner lr",
                value,
                ..
            }) => assert_eq!(value, lr),
            other => panic!("{steps} x {lr}: {other:?}"),
        }
    }
    // the smallest rates that pass still give a finite direction
    let alg = Algorithm::Reptile(InnerSgd::default().lr(1e-300));
    let mg = meta_gradient(&alg, &mlp, &theta, &tasks, Parallelism::Serial).unwrap();
    assert!(mg.grad.iter().all(|g| g.is_finite()));
}

/// The checkpoint of a trainer on `ml()` after one meta-iteration, its Adam state edited
/// by `state`.
fn checkpoint_with(state: impl FnOnce(&mut AdamState)) -> Checkpoint {
    let mlp = ml();
    let theta = mlp.init(Init::XavierUniform, 0);
    let opts = TrainOptions::default()
        .meta_batch(2)
        .parallelism(Parallelism::Serial);
    let alg = Algorithm::Fomaml(InnerSgd::default());
    let mut t = MetaTrainer::new(alg, mlp, theta, opts).unwrap();
    t.run(&Sinusoid::default(), 1, |_| {}).unwrap();
    let mut c = t.checkpoint();
    let mut s = c.adam.state().clone();
    state(&mut s);
    c.adam = Adam::resume(*c.adam.options(), s).unwrap();
    c
}

/// The checkpoint fails both `from_json` and `MetaTrainer::resume` with `check`.
fn refused(c: Checkpoint, check: impl Fn(MetaError)) {
    let json = serde_json::to_string(&c).unwrap();
    check(Checkpoint::from_json(&json).unwrap_err());
    check(MetaTrainer::resume(c).unwrap_err());
}

/// A checkpoint's JSON with its Adam state edited by `edit`.
fn checkpoint_json_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let c = checkpoint_with(|_| {});
    let mut v = serde_json::to_value(&c).unwrap();
    edit(&mut v["adam"]["state"]);
    serde_json::to_string(&v).unwrap()
}

#[test]
fn checkpoints_with_impossible_adam_state_are_refused() {
    // ad-core's Adam refuses states no run produces (negative v, t at its limit), so such
    // a checkpoint cannot be built, and its JSON does not load; the message names the field.
    for (edit, field) in [
        (
            Box::new(|s: &mut serde_json::Value| s["v"][3] = (-1.0).into())
                as Box<dyn FnOnce(&mut serde_json::Value)>,
            "state.v",
        ),
        (Box::new(|s| s["t"] = u64::MAX.into()), "state.t"),
    ] {
        match Checkpoint::from_json(&checkpoint_json_with(edit)) {
            Err(e @ MetaError::Load { what, .. }) => {
                assert_eq!(what, "checkpoint");
                assert!(e.to_string().contains(field), "{e}");
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    let mut s = checkpoint_with(|_| {}).adam.state().clone();
    s.v[3] = -1.0;
    match Adam::resume(AdamOptions::default(), s) {
        Err(OptimError::InvalidOption { name, value, .. }) => {
            assert_eq!((name, value), ("state.v", -1.0))
        }
        other => panic!("{other:?}"),
    }
    // a state Adam accepts but that does not fit the network: both ways in are refused
    let short = checkpoint_with(|s| {
        s.m.pop();
        s.v.pop();
    });
    refused(short, |e| match e {
        MetaError::Dimension {
            what,
            expected,
            got,
        } => assert_eq!((what, expected, got), ("Adam state length", 49, 48)),
        other => panic!("{other:?}"),
    });
    let mut late = checkpoint_with(|_| {});
    late.iteration = u64::MAX;
    match MetaTrainer::resume(late) {
        Err(MetaError::StepLimit { what, count }) => {
            assert_eq!((what, count), ("meta-iteration count", u64::MAX))
        }
        other => panic!("{other:?}"),
    }
    // An Adam that stepped on a huge gradient holds an infinite second moment (Adam
    // itself allows that; the trainer never commits it): such a checkpoint is refused.
    let mut c = checkpoint_with(|_| {});
    let n = c.model.params().len();
    let mut adam = Adam::new(AdamOptions::default()).unwrap();
    let mut p = vec![0.0; n];
    adam.step(&mut p, &vec![1e200; n]);
    assert!(adam.state().v[0].is_infinite());
    c.adam = adam;
    match MetaTrainer::resume(c) {
        Err(MetaError::NonFinite { what, index, value }) => {
            assert_eq!(
                (what, index, value),
                ("Adam second moment", 0, f64::INFINITY)
            )
        }
        other => panic!("{other:?}"),
    }
    // serde_json writes infinities as null: a non-finite moment does not even parse
    let json = checkpoint_json_with(|s| s["m"][2] = serde_json::Value::Null);
    assert!(matches!(
        Checkpoint::from_json(&json),
        Err(MetaError::Load { .. })
    ));
}

/// A step that would leave theta non-finite is an error naming the iteration, and the
/// trainer keeps its state.
fn step_refused(t: &mut MetaTrainer, iteration: u64) {
    let (theta, ckpt) = (t.theta().to_vec(), t.checkpoint());
    match t.step(&Sinusoid::default()) {
        Err(MetaError::MetaDiverged {
            what,
            iteration: it,
            index,
            value,
        }) => {
            assert_eq!((what, it), ("meta-parameters", iteration));
            assert!(index < theta.len() && !value.is_finite());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((t.theta(), t.iteration()), (&theta[..], iteration));
    assert_eq!(t.checkpoint(), ckpt);
}

#[test]
fn meta_steps_never_leave_theta_non_finite() {
    // a moment that overflows once bias-corrected (valid as a state)
    let c = checkpoint_with(|s| {
        s.m.iter_mut().for_each(|m| *m = 1e308);
        s.v.iter_mut().for_each(|v| *v = 0.0);
    });
    let mut t = MetaTrainer::resume(c).unwrap();
    step_refused(&mut t, 1);
    // a valid but huge meta learning rate
    let mlp = ml();
    let theta = mlp.init(Init::XavierUniform, 0);
    let opts = TrainOptions::default()
        .meta_batch(2)
        .parallelism(Parallelism::Serial)
        .adam(AdamOptions::default().learning_rate(1e308));
    let mut t = MetaTrainer::new(Algorithm::Fomaml(InnerSgd::default()), mlp, theta, opts).unwrap();
    step_refused(&mut t, 0);
    step_refused(&mut t, 0); // and again: nothing was committed
}

#[test]
fn eval_report_past_its_steps_is_none() {
    let mlp = ml();
    let theta = mlp.init(Init::XavierUniform, 0);
    let opts = EvalOptions::default().tasks(5).steps(2);
    let r = evaluate(&mlp, &theta, &Sinusoid::default(), &opts).unwrap();
    assert_eq!(r.at(2).map(|s| (s.step, s.finite)), Some((2, 5)));
    assert!(r.at(3).is_none() && r.at(10).is_none() && r.at(usize::MAX).is_none());
}

#[test]
fn evaluation_with_every_task_diverged_has_no_mean() {
    let mlp = ml();
    let theta: Vec<f64> = (0..mlp.num_params())
        .map(|i| if i % 2 == 0 { 1e200 } else { -1e200 })
        .collect();
    let opts = EvalOptions::default().tasks(5).steps(2);
    let r = evaluate(&mlp, &theta, &Sinusoid::default(), &opts).unwrap();
    assert_eq!(r.steps.len(), 3);
    for (i, s) in r.steps.iter().enumerate() {
        assert_eq!(
            (s.step, s.finite, s.diverged, s.mean, s.ci95),
            (i, 0, 5, None, None)
        );
    }
    // one finite task: a mean but no confidence interval
    let r = evaluate(
        &mlp,
        &mlp.init(Init::XavierUniform, 0),
        &Sinusoid::default(),
        &opts.clone().tasks(1),
    )
    .unwrap();
    let s = r.at(0).unwrap();
    assert!(s.mean.is_some_and(f64::is_finite) && s.ci95.is_none());
}
