//! The adapters that make a function minimizable by argmin (`ObjectiveAt`,
//! `ScalarFnAdapter`, `MatFnAdapter`) and the Hessian operator (`HvpOperator`): each gives
//! ad-core's value, gradient and Hessian-vector products of the same function, reports
//! what it was built with, and rejects a direction of the wrong length.

use std::sync::Arc;

use ad_core::{AdError, MatFn, MatOps, Real, ScalarFn};
use argmin_math::ArgminDot;
use implicit::Objective;
use implicit::linear::{LinearOperator, Structure};
use implicit::solvers::argmin_rs::{
    Differentiable, HvpOperator, MatFnAdapter, ObjectiveAt, ScalarFnAdapter,
};
use nalgebra::DVector;

/// f(x; θ) = θ Σ tanh(xᵢ) + 0.05 ‖x‖⁴ + x₀ x₂ on R³, written four ways.
const THETA: f64 = 1.3;

struct AsObjective;
impl Objective for AsObjective {
    fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
        x.tanh().sum() * t[0].get(0, 0) + x.sq_norm().square() * 0.05 + x.get(0, 0) * x.get(2, 0)
    }
}

#[derive(Clone, Debug)]
struct AsScalarFn;
impl ScalarFn for AsScalarFn {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let sq = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
        (x[0].tanh() + x[1].tanh() + x[2].tanh()) * THETA + sq.square() * 0.05 + x[0] * x[2]
    }
}

/// The same f of two blocks: a = (x₀, x₁) as a 2 x 1 column and b = x₂ as a 1 x 1 block.
#[derive(Clone, Debug)]
struct AsMatFn;
impl MatFn for AsMatFn {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let (a, b) = (&p[0], &p[1]);
        (a.tanh().sum() + b.tanh().sum()) * THETA
            + (a.sq_norm() + b.sq_norm()).square() * 0.05
            + a.get(0, 0) * b.get(0, 0)
    }
}

const X: [f64; 3] = [0.4, -0.7, 1.1];
const V: [f64; 3] = [1.0, 0.5, -2.0];

/// Sums in another order than the scalar reference: a few ulps of the largest term.
fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, w| m.max(w.abs()));
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= 1e-13 * scale,
            "{what}: {got:?} vs {want:?}"
        );
    }
}

fn check<D: Differentiable>(name: &str, d: &D) {
    let (v_ref, g_ref) = ad_core::value_and_grad(&AsScalarFn, &X).unwrap();
    let hv_ref = ad_core::hvp(&AsScalarFn, &X, &V).unwrap();
    let value = d.value(&X).unwrap();
    let (v, g) = d.value_and_grad(&X).unwrap();
    assert_close(&format!("{name}: value"), &[value, v], &[v_ref, v_ref]);
    assert_close(&format!("{name}: gradient"), &g, &g_ref);
    assert_close(&format!("{name}: H v"), &d.hvp(&X, &V).unwrap(), &hv_ref);
}

fn assert_length<T: std::fmt::Debug>(
    r: Result<T, AdError>,
    what: &str,
    expected: usize,
    got: usize,
) {
    match r {
        Err(AdError::Length {
            what: w,
            expected: e,
            got: g,
        }) => {
            assert_eq!((w, e, g), (what, expected, got))
        }
        other => panic!("expected Length for {what}, got {other:?}"),
    }
}

#[test]
fn the_adapters_give_ad_cores_values_gradients_and_products() {
    let at = ObjectiveAt::new(&AsObjective, &[THETA]).unwrap();
    assert_eq!(at.theta(), &[THETA]);
    assert!(std::ptr::eq(at.objective(), &AsObjective));
    check("ObjectiveAt", &at);
    check("ScalarFnAdapter", &ScalarFnAdapter(AsScalarFn));
    let m = MatFnAdapter::new(AsMatFn, vec![(2, 1), (1, 1)]);
    assert_eq!((m.len(), m.is_empty()), (3, false));
    assert_eq!(m.shapes(), &[(2, 1), (1, 1)]);
    check("MatFnAdapter", &m);
    // no entries at all: empty, whatever the number of blocks
    assert!(MatFnAdapter::new(AsMatFn, vec![(0, 3), (2, 0)]).is_empty());
    assert!(!MatFnAdapter::new(AsMatFn, vec![(0, 3), (1, 2)]).is_empty());
}

#[test]
fn a_direction_or_point_of_the_wrong_length_is_a_length_error() {
    let at = ObjectiveAt::new(&AsObjective, &[THETA]).unwrap();
    assert_length(at.hvp(&X, &V[..2]), "direction v", 3, 2);
    let m = MatFnAdapter::new(AsMatFn, vec![(2, 1), (1, 1)]);
    assert_length(m.value(&X[..2]), "flat parameter vector", 3, 2);
    assert_length(m.hvp(&X, &[1.0; 4]), "flat parameter vector", 3, 4);
    let h = HvpOperator::new(Arc::new(ScalarFnAdapter(AsScalarFn)), &X);
    assert_length(h.apply(&V[..1]), "direction v", 3, 1);
}

#[test]
fn the_hessian_operator_applies_h_counts_its_products_and_says_what_it_is() {
    let h = HvpOperator::new(Arc::new(ScalarFnAdapter(AsScalarFn)), &X);
    assert_eq!(h.point(), &X);
    assert_eq!(
        (LinearOperator::nrows(&h), LinearOperator::ncols(&h)),
        (3, 3)
    );
    assert_eq!(h.structure(), Structure::SYMMETRIC);
    let hv_ref = ad_core::hvp(&AsScalarFn, &X, &V).unwrap();
    assert_close("apply", &h.apply(&V).unwrap(), &hv_ref);
    let mut y = [0.0; 3];
    LinearOperator::apply(&h, &V, &mut y).unwrap();
    assert_close("LinearOperator::apply", &y, &hv_ref);
    // `dot` (argmin's product) counts what it computes; a repeated direction is cached and
    // the zero direction costs nothing
    assert_eq!(h.products(), 0);
    let v = DVector::from_column_slice(&V);
    assert_close("dot", h.dot(&v).as_slice(), &hv_ref);
    assert_close("dot again", h.dot(&v).as_slice(), &hv_ref);
    assert_eq!(h.dot(&DVector::zeros(3)).as_slice(), &[0.0; 3]);
    assert_eq!(h.products(), 1);
    let w = DVector::from_column_slice(&[0.0, 1.0, 0.0]);
    let hw = ad_core::hvp(&AsScalarFn, &X, w.as_slice()).unwrap();
    assert_close("dot e1", h.dot(&w).as_slice(), &hw);
    assert_eq!(h.products(), 2);
    let debug = format!("{h:?}");
    assert!(
        debug.starts_with("HvpOperator {") && debug.contains("products: 2"),
        "{debug}"
    );
    // and the products are the dense Hessian's
    let dense = ad_core::hessian(&AsScalarFn, &X).unwrap();
    assert_close("dense H e1", (dense * &w).as_slice(), &hw);
}

/// A problem driven by hand, as a solver of the user's own on argmin would: its
/// `Monitor` reports the first failure once (a non-finite point argmin asked for is a
/// breakdown of the iteration, not of the function), the Hessian operator stops computing
/// after a failure and past its product budget, and the counts say what was asked.
#[test]
fn a_problem_driven_by_hand_reports_through_its_monitor() {
    use argmin::core::{CostFunction, Hessian};
    use implicit::solvers::argmin_rs::{ArgminError, ArgminProblem, EvalCounts, Evaluation};

    let problem = ArgminProblem::new(ScalarFnAdapter(AsScalarFn)).hvp_budget(Some(2));
    let monitor = problem.monitor();
    assert!(monitor.take_failure().is_none());
    assert!(
        format!("{monitor:?}").contains("failed: false"),
        "{monitor:?}"
    );
    let debug = format!("{problem:?}");
    assert!(
        debug.starts_with("ArgminProblem {") && debug.contains("hvp_budget: Some(2)"),
        "{debug}"
    );

    let x = DVector::from_column_slice(&X);
    let h = problem.hessian(&x).unwrap();
    let dirs = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.3, 0.0, 1.0]];
    for d in &dirs[..2] {
        let hv = ad_core::hvp(&AsScalarFn, &X, d).unwrap();
        assert_close(
            "within the budget",
            h.dot(&DVector::from_column_slice(d)).as_slice(),
            &hv,
        );
    }
    // the third product is past the budget of two: zero, which ends Newton-CG's inner loop
    assert_eq!(
        h.dot(&DVector::from_column_slice(&dirs[2])).as_slice(),
        &[0.0; 3]
    );
    assert_eq!(h.products(), 2);

    // argmin asks for the cost at a non-finite point
    let bad = DVector::from_column_slice(&[0.1, f64::NAN, 0.0]);
    assert!(problem.cost(&bad).is_err());
    assert!(
        format!("{monitor:?}").contains("failed: true"),
        "{monitor:?}"
    );
    // after a failure, a fresh operator computes nothing either
    let h2 = problem.hessian(&x).unwrap();
    assert_eq!(
        h2.dot(&DVector::from_column_slice(&dirs[0])).as_slice(),
        &[0.0; 3]
    );
    assert_eq!(h2.products(), 0);
    assert_eq!(
        monitor.counts(),
        EvalCounts {
            cost: 1,
            gradient: 0,
            hessian: 2,
            hvp: 2,
            passes: 0
        }
    );
    match monitor.take_failure() {
        Some(ArgminError::NonFiniteIterate {
            during,
            iteration,
            index,
            value,
        }) => {
            assert_eq!((during, iteration, index), (Evaluation::Cost, 0, 1));
            assert!(value.is_nan());
        }
        other => panic!("expected NonFiniteIterate, got {other:?}"),
    }
    // taking the failure clears it
    assert!(monitor.take_failure().is_none());
    assert!(
        format!("{monitor:?}").contains("failed: false"),
        "{monitor:?}"
    );
}
