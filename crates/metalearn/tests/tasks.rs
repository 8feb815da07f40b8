//! Task distributions: the sinusoid family's ranges, seeded and order-independent
//! meta-batches, linear-regression targets.

use metalearn::{LinearRegression, Sinusoid, TaskDistribution, sample_batch, task_seed};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

proptest! {
    /// Every sinusoid task lies in Finn et al.'s ranges and its targets are
    /// `A sin(x - phi)` for one (A, phi) shared by support and query.
    #[test]
    fn sinusoid_tasks_follow_the_protocol(seed in any::<u64>(), k in 1usize..20) {
        let s = Sinusoid::default();
        let (task, p) = s.sample_with_params(&mut StdRng::seed_from_u64(seed), k, k + 1).unwrap();
        prop_assert!((0.1..=5.0).contains(&p.amplitude) && (0.0..=std::f64::consts::PI).contains(&p.phase));
        prop_assert_eq!((task.support_x.nrows(), task.query_x.nrows()), (k, k + 1));
        for (x, y) in task.support_x.iter().zip(task.support_y.iter()).chain(task.query_x.iter().zip(task.query_y.iter())) {
            prop_assert!((-5.0..=5.0).contains(x));
            prop_assert_eq!(*y, p.eval(*x));
        }
    }

    /// Task i of a meta-batch depends only on (seed, iteration, i).
    #[test]
    fn meta_batches_are_seeded_per_task(seed in any::<u64>(), it in 0u64..100) {
        let s = Sinusoid::default();
        let batch = sample_batch(&s, seed, it, 5, 4, 4).unwrap();
        let third = s.sample(&mut StdRng::seed_from_u64(task_seed(seed, it, 3)), 4, 4).unwrap();
        prop_assert_eq!(&batch[3], &third);
        let other = sample_batch(&s, seed, it + 1, 5, 4, 4).unwrap();
        prop_assert_ne!(&batch[0], &other[0]);
    }
}

#[test]
fn linear_regression_targets_are_linear_without_noise() {
    let t = LinearRegression::new(2)
        .sample(&mut StdRng::seed_from_u64(3), 6, 3)
        .unwrap();
    // y is affine in x: the least-squares fit of [x 1] (w, b) = y (normal equations,
    // Cholesky; not nalgebra's SVD) leaves no residual
    let a = nalgebra::DMatrix::from_fn(6, 3, |i, j| if j < 2 { t.support_x[(i, j)] } else { 1.0 });
    let sol = (a.transpose() * &a)
        .cholesky()
        .unwrap()
        .solve(&(a.transpose() * &t.support_y));
    let resid = (&a * &sol - &t.support_y).norm();
    assert!(resid < 1e-12, "{resid}");
}
