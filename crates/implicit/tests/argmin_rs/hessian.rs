//! The matrix-free Hessian operator and the cost/gradient adapter.

use super::*;
use argmin::core::{CostFunction, Gradient, Hessian};
use argmin_math::ArgminDot;
use implicit::linear::LinearOperator;
use implicit::solvers::argmin_rs::{ArgminProblem, ObjectiveAt, ScalarFnAdapter};
use implicit::{Objective, Scalars};
use nalgebra::{DMatrix, DVector};

#[test]
fn hessian_operator_matches_dense_ad_core_hessian() {
    let scalar = LogisticScalar(Logistic::new(25, D, 5));
    let theta = theta0();
    let mut rng = Rng(99);
    let x: Vec<f64> = (0..D).map(|_| rng.uniform()).collect();
    let dense = ad_core::hessian(
        &AtThetaFn {
            objective: &scalar,
            theta: theta.clone(),
        },
        &x,
    )
    .unwrap();
    let scale = dense.norm();
    let xv = DVector::from_vec(x.clone());

    // Three adapters, three code paths, one Hessian.
    let wrapped = Scalars(scalar.clone());
    let via_scalar_objective = ArgminProblem::new(ObjectiveAt::new(&wrapped, &theta).unwrap());
    let via_mat_objective = ArgminProblem::new(ObjectiveAt::new(&scalar.0, &theta).unwrap());
    let via_scalar_fn = ArgminProblem::new(ScalarFnAdapter(AtThetaFn {
        objective: &scalar,
        theta: theta.clone(),
    }));
    // A zero direction costs no product.
    let zero = via_scalar_objective
        .hessian(&xv)
        .unwrap()
        .dot(&DVector::zeros(D));
    assert_eq!(zero, DVector::zeros(D));
    assert_eq!(via_scalar_objective.monitor().counts().hvp, 0);

    for trial in 0..4 {
        let p = DVector::from_fn(D, |_, _| rng.uniform());
        let want = &dense * &p;
        let h1 = via_scalar_objective.hessian(&xv).unwrap();
        let h2 = via_mat_objective.hessian(&xv).unwrap();
        let h3 = via_scalar_fn.hessian(&xv).unwrap();
        for (k, hp) in [h1.dot(&p), h2.dot(&p), h3.dot(&p)].iter().enumerate() {
            let err = (hp - &want).norm();
            assert!(
                err <= 1e-13 * scale * p.norm(),
                "trial {trial}, adapter {k}: |Hp - H_dense p| = {err:e}"
            );
        }
        // The operator is symmetric, like the dense Hessian.
        let q = DVector::from_fn(D, |_, _| rng.uniform());
        assert!((q.dot(&h2.dot(&p)) - p.dot(&h2.dot(&q))).abs() <= 1e-13 * scale);
        // The same operator through the crate's LinearOperator trait.
        let mut y = vec![0.0; D];
        LinearOperator::apply(&h2, p.as_slice(), &mut y).unwrap();
        assert!(dist(&y, want.as_slice()) <= 1e-13 * scale * p.norm());
    }

    // The last product is cached: argmin's Newton-CG applies H to each direction twice.
    let h = via_mat_objective.hessian(&xv).unwrap();
    let p = DVector::from_element(D, 0.5);
    let before = via_mat_objective.monitor().counts().hvp;
    let (a, b) = (h.dot(&p), h.dot(&p));
    assert_eq!(a, b);
    assert_eq!(h.products(), 1);
    assert_eq!(via_mat_objective.monitor().counts().hvp, before + 1);
}

#[test]
fn cost_and_gradient_match_ad_core_and_share_one_pass() {
    let obj = Logistic::new(25, D, 5);
    let theta = theta0();
    let problem = ArgminProblem::new(ObjectiveAt::new(&obj, &theta).unwrap());
    let x = DVector::from_vec(vec![0.3, -0.2, 0.1, 0.0, 0.5]);
    let c = problem.cost(&x).unwrap();
    let g = problem.gradient(&x).unwrap();
    let plain = obj.value(
        &DMatrix::from_column_slice(D, 1, x.as_slice()),
        &[DMatrix::from_column_slice(D, 1, &theta)],
    );
    assert!((c - plain).abs() <= 1e-15 * plain.abs());
    let (_, ad) = ad_core::value_and_grad(
        &AtThetaFn {
            objective: &LogisticScalar(obj.clone()),
            theta: theta.clone(),
        },
        x.as_slice(),
    )
    .unwrap();
    assert!(dist(g.as_slice(), &ad) <= 1e-14);
    let counts = problem.monitor().counts();
    assert_eq!((counts.cost, counts.gradient, counts.passes), (1, 1, 1));
    // Without the eager gradient: two passes.
    let lazy = ArgminProblem::new(ObjectiveAt::new(&obj, &theta).unwrap()).eager_gradient(false);
    lazy.cost(&x).unwrap();
    lazy.gradient(&x).unwrap();
    assert_eq!(lazy.monitor().counts().passes, 2);
}
