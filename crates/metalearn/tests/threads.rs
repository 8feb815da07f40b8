//! Results do not depend on the thread count: meta-gradients, training runs and the
//! evaluation are bit-identical serially, on 1 and on 2 rayon threads.

use ad_core::nn::{Activation, Init, Mlp};
use metalearn::{
    Algorithm, EvalOptions, ImamlOptions, InnerSgd, MetaTrainer, Parallelism, Sinusoid, Stop,
    TrainOptions, evaluate, meta_gradient, sample_batch,
};

fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build()
        .unwrap()
}

fn algorithms() -> Vec<Algorithm> {
    let sgd = InnerSgd::default().steps(2);
    vec![
        Algorithm::Maml(sgd),
        Algorithm::Fomaml(sgd),
        Algorithm::Imaml(
            ImamlOptions::default()
                .inner(Stop::Fixed { iters: 20 })
                .cg(Stop::Fixed { iters: 3 }),
        ),
        Algorithm::Reptile(sgd),
        Algorithm::Joint,
    ]
}

#[test]
fn meta_gradients_do_not_depend_on_threads() {
    let mlp = Mlp::new(&[1, 16, 16, 1], Activation::Relu, Activation::Identity);
    let theta = mlp.init(Init::HeNormal, 5);
    let tasks = sample_batch(&Sinusoid::default(), 3, 0, 9, 10, 10).unwrap();
    for alg in algorithms() {
        let serial = meta_gradient(&alg, &mlp, &theta, &tasks, Parallelism::Serial).unwrap();
        for n in [1, 2] {
            let par = pool(n)
                .install(|| meta_gradient(&alg, &mlp, &theta, &tasks, Parallelism::Rayon))
                .unwrap();
            assert_eq!(serial, par, "{} on {n} threads", alg.name());
        }
    }
}

#[test]
fn training_and_evaluation_do_not_depend_on_threads() {
    let mlp = Mlp::new(&[1, 16, 16, 1], Activation::Relu, Activation::Identity);
    let theta = mlp.init(Init::HeNormal, 1);
    let run = |par: Parallelism| {
        let opts = TrainOptions::default().meta_batch(6).parallelism(par);
        let alg = Algorithm::Maml(InnerSgd::default());
        let mut t = MetaTrainer::new(alg, mlp.clone(), theta.clone(), opts).unwrap();
        t.run(&Sinusoid::default(), 4, |_| {}).unwrap();
        let mut eo = EvalOptions::default().tasks(12).steps(3);
        eo.parallelism = par;
        let report = evaluate(&mlp, t.theta(), &Sinusoid::default(), &eo).unwrap();
        (t.theta().to_vec(), report)
    };
    let serial = run(Parallelism::Serial);
    for n in [1, 2] {
        assert_eq!(
            serial,
            pool(n).install(|| run(Parallelism::Rayon)),
            "{n} threads"
        );
    }
}
