//! MAML's meta-gradient against central finite differences of the adapted query loss and
//! against differentiating through the unrolled inner loop on the tape; FOMAML as MAML
//! without the second-order terms; Reptile's direction.

mod common;

use ad_core::nn::{MseLoss, column};
use ad_core::value_and_grad_mat;
use common::{UnrolledMaml, hand_grad, rel_dist, sinusoid_task, small_mlp};
use metalearn::{Algorithm, InnerSgd};
use proptest::prelude::*;

fn maml(steps: usize, lr: f64) -> Algorithm {
    Algorithm::Maml(InnerSgd::default().steps(steps).lr(lr))
}

/// The hand-written gradient of the helper agrees with ad-core's (so the unrolled
/// reference below differentiates the right inner loop).
#[test]
fn hand_gradient_matches_the_tape() {
    let (mlp, theta) = small_mlp(6, 3);
    let task = sinusoid_task(4, 7);
    let loss = MseLoss::new(&mlp, &task.support_x, &task.support_y).unwrap();
    let (_, g) = loss.value_and_grad(&theta).unwrap();
    let h = hand_grad(&mlp, &column(&theta), &task.support_x, &task.support_y);
    assert!(rel_dist(h.as_slice(), &g, 1e-12) < 1e-13);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// MAML (1 to 3 inner steps, random 1-h-1 tanh networks and sinusoid tasks) equals
    /// central finite differences of `L_query(phi_k(theta))` along a random direction.
    /// Step 1e-5: the truncation error is O(h^2 |f'''|) ~ 1e-10 and the rounding error
    /// O(eps |f| / h) ~ 1e-11 relative to losses of order 1-10, so 1e-6 relative to the
    /// directional derivative's scale leaves a wide margin while any missing
    /// second-order term (size alpha |H| |g| ~ 1e-2 relative) fails.
    #[test]
    fn maml_matches_finite_differences(
        seed in 0u64..1000, hidden in 2usize..6, steps in 1usize..4, lr in 0.01f64..0.1,
    ) {
        let (mlp, theta) = small_mlp(hidden, seed);
        let task = sinusoid_task(seed + 1, 5);
        let alg = maml(steps, lr);
        let tg = alg.task_gradient(&mlp, &theta, &task, 0).unwrap();
        let dir: Vec<f64> = (0..theta.len()).map(|i| ((i as f64 + 1.0) * 1.37 + seed as f64).sin()).collect();
        let h = 1e-5;
        let at = |s: f64| {
            let t: Vec<f64> = theta.iter().zip(&dir).map(|(a, d)| a + s * d).collect();
            alg.task_gradient(&mlp, &t, &task, 0).unwrap().loss
        };
        let fd = (at(h) - at(-h)) / (2.0 * h);
        let ad: f64 = tg.grad.iter().zip(&dir).map(|(g, d)| g * d).sum();
        let scale = tg.grad.iter().map(|g| g * g).sum::<f64>().sqrt() * dir.iter().map(|d| d * d).sum::<f64>().sqrt();
        prop_assert!((fd - ad).abs() <= 1e-6 * scale.max(1e-3), "fd {fd} vs ad {ad} (scale {scale})");
    }

    /// MAML equals the gradient of the unrolled inner loop recorded on the tape (the
    /// inner gradient written by hand against MatOps). Both are exact; they differ only
    /// in summation order, so 1e-11 relative.
    #[test]
    fn maml_matches_the_unrolled_tape(
        seed in 0u64..1000, hidden in 2usize..6, steps in 1usize..4, lr in 0.01f64..0.1,
    ) {
        let (mlp, theta) = small_mlp(hidden, seed);
        let task = sinusoid_task(seed + 7, 6);
        let tg = maml(steps, lr).task_gradient(&mlp, &theta, &task, 0).unwrap();
        let unrolled = UnrolledMaml { mlp: &mlp, task: &task, steps, lr };
        let (l, g) = value_and_grad_mat(&unrolled, &[column(&theta)]).unwrap();
        prop_assert!((l - tg.loss).abs() <= 1e-12 * l.abs().max(1.0));
        prop_assert!(rel_dist(&tg.grad, g[0].as_slice(), 1e-8) < 1e-11);
    }

    /// FOMAML is MAML with the second-order terms dropped: exactly the query gradient at
    /// the adapted parameters; and MAML - FOMAML = alpha D + O(alpha^2): dividing alpha by
    /// 10 divides the difference by 10 up to a relative O(alpha |H|) (|H| reaches a few
    /// hundred on these networks, so alpha = 1e-4 -> 1e-5 and 25%).
    #[test]
    fn fomaml_is_maml_without_second_order_terms(seed in 0u64..1000, steps in 1usize..4) {
        let (mlp, theta) = small_mlp(4, seed);
        let task = sinusoid_task(seed + 11, 5);
        let sgd = InnerSgd::default().steps(steps).lr(0.02);
        let fo = Algorithm::Fomaml(sgd).task_gradient(&mlp, &theta, &task, 0).unwrap();
        let mut phi = theta.clone();
        let sup = MseLoss::new(&mlp, &task.support_x, &task.support_y).unwrap();
        for _ in 0..steps {
            let (_, g) = sup.value_and_grad(&phi).unwrap();
            phi.iter_mut().zip(&g).for_each(|(p, g)| *p -= 0.02 * g);
        }
        let qry = MseLoss::new(&mlp, &task.query_x, &task.query_y).unwrap();
        let (_, gq) = qry.value_and_grad(&phi).unwrap();
        prop_assert_eq!(&fo.grad, &gq);

        let diff = |lr: f64| {
            let s = InnerSgd::default().steps(steps).lr(lr);
            let m = Algorithm::Maml(s).task_gradient(&mlp, &theta, &task, 0).unwrap().grad;
            let f = Algorithm::Fomaml(s).task_gradient(&mlp, &theta, &task, 0).unwrap().grad;
            m.iter().zip(&f).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt()
        };
        let (d1, d2) = (diff(1e-4), diff(1e-5));
        prop_assert!(d1 > 0.0 && (d2 / d1 - 0.1).abs() < 0.025, "d(1e-4) = {d1}, d(1e-5) = {d2}");
    }
}

/// Reptile's direction `(theta - phi) / (k lr)` is the support gradient at theta for one
/// step, and its query loss is the loss at the adapted parameters.
#[test]
fn reptile_one_step_is_the_support_gradient() {
    let (mlp, theta) = small_mlp(5, 9);
    let task = sinusoid_task(10, 8);
    let r = Algorithm::Reptile(InnerSgd::default().lr(0.05))
        .task_gradient(&mlp, &theta, &task, 0)
        .unwrap();
    let sup = MseLoss::new(&mlp, &task.support_x, &task.support_y).unwrap();
    let (_, g) = sup.value_and_grad(&theta).unwrap();
    // (theta - (theta - lr g)) / lr loses the low bits of theta: 1e-12 relative
    assert!(rel_dist(&r.grad, &g, 1e-12) < 1e-12);
    let fo = Algorithm::Fomaml(InnerSgd::default().lr(0.05))
        .task_gradient(&mlp, &theta, &task, 0)
        .unwrap();
    assert_eq!(r.loss, fo.loss);
}
