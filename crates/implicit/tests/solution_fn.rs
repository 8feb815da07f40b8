//! A solver inside an ordinary `MatOps` function (`SolutionFn` through `MatOps::custom`):
//! the same function is evaluated in `f64`, differentiated in reverse (`value_and_grad_mat`)
//! and forward (`jvp_mat`) mode, and both agree with the closed form and with central
//! differences of re-solving; second order is a typed error, never a wrong number.

use std::cell::RefCell;

use ad_core::{AdError, CustomFn, MatFn, MatOps, hvp_mat, jvp_mat, value_and_grad_mat};
use implicit::{Argmin, IftOptions, Objective, SolutionFn};
use nalgebra::DMatrix;
use proptest::prelude::*;

/// L(x, θ) = ½ Σᵢ aᵢ (xᵢ − cᵢ)² + ½ θ₀ ‖x‖² + θ₁ Σᵢ xᵢ, so x*ᵢ = (aᵢ cᵢ − θ₁) / (aᵢ + θ₀).
#[derive(Clone, Debug)]
struct Weighted {
    a: DMatrix<f64>,
    c: DMatrix<f64>,
}

impl Weighted {
    fn solve(&self, t: &[DMatrix<f64>]) -> DMatrix<f64> {
        let (t0, t1) = (t[0][0], t[1][0]);
        DMatrix::from_fn(self.a.nrows(), 1, |i, _| {
            (self.a[i] * self.c[i] - t1) / (self.a[i] + t0)
        })
    }
}

impl Objective for Weighted {
    fn value<M: MatOps>(&self, x: &M, t: &[M]) -> M::Scalar {
        let a = x.constant_like(self.a.clone());
        let c = x.constant_like(self.c.clone());
        let d = x.sub(&c);
        d.mul_elem(&d).dot(&a) * 0.5 + t[0].get(0, 0) * x.sq_norm() * 0.5 + t[1].get(0, 0) * x.sum()
    }
}

/// loss(θ) = Σ sin(x*(θ)) + θ₀², errors from the custom function kept aside.
struct Loss<'a, F> {
    x_star: &'a F,
    error: RefCell<Option<AdError>>,
}

impl<F: CustomFn> MatFn for Loss<'_, F> {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let extra = p[0].sq_norm();
        match M::custom(self.x_star, p) {
            Ok(x) => x[0].unary(ad_core::Unary::Sin).sum() + extra,
            Err(e) => {
                *self.error.borrow_mut() = Some(e);
                extra
            }
        }
    }
}

fn closed_form_loss(w: &Weighted, t0: f64, t1: f64) -> f64 {
    let t = [
        DMatrix::from_element(1, 1, t0),
        DMatrix::from_element(1, 1, t1),
    ];
    w.solve(&t).iter().map(|v| v.sin()).sum::<f64>() + t0 * t0
}

fn weighted(n: usize, seed: u64) -> Weighted {
    // A small deterministic generator: entries in [0.5, 2] for a, [-1, 1] for c.
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64
    };
    Weighted {
        a: DMatrix::from_fn(n, 1, |_, _| 0.5 + 1.5 * next()),
        c: DMatrix::from_fn(n, 1, |_, _| 2.0 * next() - 1.0),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(20261207), ..ProptestConfig::default() })]

    /// Reverse and forward mode through the solver agree with each other and with central
    /// differences of the closed-form loss (h = 1e-5: truncation ~h²·|f'''| ≈ 1e-10, rounding
    /// ~ε·|f|/h ≈ 1e-11, so 1e-7 relative leaves two orders of margin).
    #[test]
    fn reverse_and_forward_through_the_solver_match_finite_differences(
        n in 1usize..=8, seed in any::<u64>(), t0 in 0.1f64..2.0, t1 in -1.0f64..1.0,
    ) {
        let w = weighted(n, seed);
        let w2 = w.clone();
        let x_star = SolutionFn::new(Argmin(w.clone()), move |t: &[DMatrix<f64>]| w2.solve(t), IftOptions::default());
        let loss = Loss { x_star: &x_star, error: RefCell::new(None) };
        let theta = [DMatrix::from_element(1, 1, t0), DMatrix::from_element(1, 1, t1)];
        let (value, g) = value_and_grad_mat(&loss, &theta).unwrap();
        prop_assert!(loss.error.borrow().is_none());
        prop_assert!((value - closed_form_loss(&w, t0, t1)).abs() <= 1e-12 * (1.0 + value.abs()));
        let h = 1e-5;
        let fd0 = (closed_form_loss(&w, t0 + h, t1) - closed_form_loss(&w, t0 - h, t1)) / (2.0 * h);
        let fd1 = (closed_form_loss(&w, t0, t1 + h) - closed_form_loss(&w, t0, t1 - h)) / (2.0 * h);
        prop_assert!((g[0][0] - fd0).abs() <= 1e-7 * (1.0 + fd0.abs()), "dθ0 {} vs fd {}", g[0][0], fd0);
        prop_assert!((g[1][0] - fd1).abs() <= 1e-7 * (1.0 + fd1.abs()), "dθ1 {} vs fd {}", g[1][0], fd1);
        // Forward mode along (1, 2): the same directional derivative.
        let v = [DMatrix::from_element(1, 1, 1.0), DMatrix::from_element(1, 1, 2.0)];
        let (fvalue, dir) = jvp_mat(&loss, &theta, &v).unwrap();
        prop_assert!((fvalue - value).abs() <= 1e-14 * (1.0 + value.abs()));
        let expect = g[0][0] + 2.0 * g[1][0];
        prop_assert!((dir - expect).abs() <= 1e-9 * (1.0 + expect.abs()), "jvp {} vs grad·v {}", dir, expect);
        // One reverse and one forward pass were reported, both exact and successful.
        let reports = x_star.reports();
        prop_assert_eq!(reports.len(), 2);
        prop_assert!(reports.iter().all(|r| r.succeeded()));
    }
}

/// An HVP through a solver cannot come from its first-order rule: the custom function
/// reports `CustomSecondOrder` naming the op, instead of a silently wrong product.
#[test]
fn second_order_through_the_solver_is_a_typed_error() {
    let w = weighted(3, 7);
    let w2 = w.clone();
    let x_star = SolutionFn::new(
        Argmin(w),
        move |t: &[DMatrix<f64>]| w2.solve(t),
        IftOptions::default(),
    );
    let loss = Loss {
        x_star: &x_star,
        error: RefCell::new(None),
    };
    let theta = [
        DMatrix::from_element(1, 1, 0.5),
        DMatrix::from_element(1, 1, 0.1),
    ];
    let v = [
        DMatrix::from_element(1, 1, 1.0),
        DMatrix::from_element(1, 1, 0.0),
    ];
    let _ = hvp_mat(&loss, &theta, &v);
    match loss.error.borrow().as_ref() {
        Some(AdError::CustomSecondOrder { name, block }) => {
            assert_eq!(name, "implicit");
            assert_eq!(*block, 0);
        }
        other => panic!("expected CustomSecondOrder, got {other:?}"),
    }
}

/// A forward solver that misses the solution fails the evaluation with the residual: the
/// custom function's error is `CustomRule` (rule "eval") carrying `NotAtSolution`.
#[test]
fn an_inexact_solver_fails_the_evaluation_with_its_residual() {
    let w = weighted(4, 11);
    let w2 = w.clone();
    let x_star = SolutionFn::new(
        Argmin(w),
        move |t: &[DMatrix<f64>]| w2.solve(t).add_scalar(1e-3),
        IftOptions::default(),
    );
    let loss = Loss {
        x_star: &x_star,
        error: RefCell::new(None),
    };
    let theta = [
        DMatrix::from_element(1, 1, 0.5),
        DMatrix::from_element(1, 1, 0.1),
    ];
    let _ = value_and_grad_mat(&loss, &theta);
    let err = loss.error.borrow_mut().take().expect("an error");
    match err {
        AdError::CustomRule { name, source, .. } => {
            assert_eq!(name, "implicit");
            match source.downcast_ref::<implicit::ImplicitError>() {
                Some(implicit::ImplicitError::NotAtSolution {
                    residual,
                    tolerance,
                }) => {
                    assert!(*residual > *tolerance && *tolerance == 1e-6);
                }
                other => panic!("expected NotAtSolution, got {other:?}"),
            }
        }
        other => panic!("expected CustomRule, got {other:?}"),
    }
}

/// Non-finite parameters never reach the forward solver: the evaluation fails with
/// `NonFiniteEntry` naming the block and the entry.
#[test]
fn non_finite_parameters_are_rejected_before_the_solver_runs() {
    let w = weighted(3, 5);
    let calls = std::cell::Cell::new(0usize);
    let w2 = w.clone();
    let x_star = SolutionFn::new(
        Argmin(w),
        |t: &[DMatrix<f64>]| {
            calls.set(calls.get() + 1);
            w2.solve(t)
        },
        IftOptions::default(),
    );
    let loss = Loss {
        x_star: &x_star,
        error: RefCell::new(None),
    };
    let theta = [
        DMatrix::from_element(1, 1, 0.5),
        DMatrix::from_element(1, 1, f64::NAN),
    ];
    let _ = ad_core::MatFn::eval(&loss, &theta);
    match loss.error.borrow_mut().take() {
        Some(AdError::CustomRule { source, .. }) => {
            match source.downcast_ref::<implicit::ImplicitError>() {
                Some(implicit::ImplicitError::NonFiniteEntry {
                    block,
                    row,
                    col,
                    value,
                    ..
                }) => {
                    assert_eq!((*block, *row, *col), (1, 0, 0));
                    assert!(value.is_nan());
                }
                other => panic!("expected NonFiniteEntry, got {other:?}"),
            }
        }
        other => panic!("expected CustomRule, got {other:?}"),
    }
    assert_eq!(calls.get(), 0);
}
