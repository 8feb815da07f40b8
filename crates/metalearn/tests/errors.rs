//! Bad input gives typed errors carrying the numbers.

use ad_core::nn::{Activation, Init, Mlp};
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
    assert_eq!((r.at(0).finite, r.at(0).diverged), (10, 0));
    assert!(r.at(0).mean.is_finite());
    let last = r.at(40);
    assert_eq!((last.finite, last.diverged), (0, 10));
    assert!(last.mean.is_nan());
}
