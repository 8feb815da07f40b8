//! Specification of `ad_core::optim::minimize` and of saving and resuming optimizers:
//! typed errors with the step, the observer's view, bit-for-bit resumption.

use std::error::Error;

use ad_core::AdError;
use ad_core::optim::{
    Adam, AdamOptions, OptimError, Optimizer, Schedule, Sgd, SgdOptions, StepInfo, minimize,
};

/// `f(p) = |p|^2 / 2` with gradient `p`.
fn half_sq(p: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
    Ok((0.5 * p.iter().map(|x| x * x).sum::<f64>(), p.to_vec()))
}

fn sgd(lr: f64) -> Sgd {
    Sgd::new(SgdOptions::default().learning_rate(lr)).unwrap()
}

#[test]
fn the_observer_sees_every_evaluation() {
    let mut seen: Vec<StepInfo> = Vec::new();
    let mut opt = Sgd::new(
        SgdOptions::default()
            .learning_rate(0.5)
            .schedule(Schedule::Step {
                every: 2,
                factor: 0.5,
            }),
    )
    .unwrap();
    let mut p = [4.0, -3.0];
    let report = minimize(&mut p, half_sq, &mut opt, 3, |s: &StepInfo| seen.push(*s)).unwrap();
    // p_{k+1} = (1 - lr_k) p_k with lr = 0.5, 0.5, 0.25: |p| = 5, 2.5, 1.25, 0.9375.
    let norms = [5.0, 2.5, 1.25, 0.9375];
    let lrs = [0.5, 0.5, 0.25, 0.25];
    assert_eq!(seen.len(), 4);
    for (k, s) in seen.iter().enumerate() {
        assert_eq!(s.step, k);
        assert_eq!(s.grad_norm, norms[k]);
        assert_eq!(s.loss, 0.5 * norms[k] * norms[k]);
        assert_eq!(s.learning_rate, lrs[k]);
    }
    assert_eq!(report.initial_loss, 12.5);
    assert_eq!(report.final_loss, seen[3].loss);
    assert_eq!(report.final_grad_norm, 0.9375);
    // Zero steps: one evaluation, no update.
    let mut q = [1.0];
    let r = minimize(&mut q, half_sq, &mut sgd(0.1), 0, ()).unwrap();
    assert_eq!((r.steps, r.evaluations, q), (0, 1, [1.0]));
    assert_eq!(r.initial_loss, r.final_loss);
}

#[test]
fn a_non_finite_loss_stops_with_its_step() {
    // The loss is finite while p > 1; p halves each step from 8: 8, 4, 2, 1 -> NaN at step 3.
    let f = |p: &[f64]| -> Result<(f64, Vec<f64>), AdError> {
        let loss = if p[0] > 1.0 {
            0.5 * p[0] * p[0]
        } else {
            f64::NAN
        };
        Ok((loss, vec![p[0]]))
    };
    let mut p = [8.0];
    match minimize(&mut p, f, &mut sgd(0.5), 10, ()) {
        Err(OptimError::NonFiniteLoss { step: 3, value }) => assert!(value.is_nan()),
        other => panic!("expected NonFiniteLoss at step 3, got {other:?}"),
    }
    assert_eq!(p, [1.0], "params hold the point that failed");
}

#[test]
fn a_non_finite_gradient_stops_with_step_index_and_value() {
    let f = |p: &[f64]| -> Result<(f64, Vec<f64>), AdError> {
        let mut g = p.to_vec();
        if p[0] < 2.0 {
            g[2] = f64::INFINITY;
        }
        Ok((1.0, g))
    };
    let mut p = [4.0, 0.0, 0.0];
    assert!(matches!(
        minimize(&mut p, f, &mut sgd(0.5), 10, ()),
        Err(OptimError::NonFiniteGradient { step: 2, index: 2, value }) if value == f64::INFINITY
    ));
}

#[test]
fn objective_errors_and_wrong_lengths_are_typed() {
    let failing = |p: &[f64]| -> Result<(f64, Vec<f64>), AdError> {
        if p[0] < 3.0 {
            Err(AdError::EmptyBatch { what: "inputs x" })
        } else {
            half_sq(p)
        }
    };
    let mut p = [4.0];
    match minimize(&mut p, failing, &mut sgd(0.5), 5, ()) {
        Err(OptimError::Objective { step: 1, source }) => {
            let inner = source
                .downcast_ref::<AdError>()
                .expect("the objective's AdError");
            assert!(matches!(inner, AdError::EmptyBatch { what: "inputs x" }));
        }
        other => panic!("expected Objective at step 1, got {other:?}"),
    }
    let short = |_: &[f64]| -> Result<(f64, Vec<f64>), AdError> { Ok((1.0, vec![0.0])) };
    let err = minimize(&mut [1.0, 2.0], short, &mut sgd(0.1), 3, ()).unwrap_err();
    assert!(matches!(
        err,
        OptimError::GradientLength {
            step: 0,
            expected: 2,
            got: 1
        }
    ));
    assert!(err.source().is_none());
    assert_eq!(
        err.to_string(),
        "gradient of length 1 at step 0, expected 2"
    );
}

#[test]
#[should_panic(expected = "Adam: 3 parameters but a gradient of length 2")]
fn a_step_with_mismatched_lengths_panics() {
    Adam::new(AdamOptions::default())
        .unwrap()
        .step(&mut [0.0; 3], &[1.0; 2]);
}

#[test]
#[should_panic(expected = "Sgd: 2 parameters but the state (after 1 steps) has length 3")]
fn a_state_of_another_length_panics() {
    let mut s = sgd(0.1);
    s.step(&mut [0.0; 3], &[1.0; 3]);
    s.step(&mut [0.0; 2], &[1.0; 2]);
}

#[test]
fn reset_forgets_the_state() {
    let mut a = Adam::new(AdamOptions::default()).unwrap();
    a.step(&mut [0.0; 3], &[1.0; 3]);
    a.reset();
    assert_eq!(a.steps_taken(), 0);
    a.step(&mut [0.0; 2], &[1.0; 2]); // another length is fine after a reset
    assert_eq!(a.state().m.len(), 2);
}

/// 20 steps straight equal 10 steps, a JSON round trip of the optimizer, and 10 more.
#[test]
fn runs_resume_bit_for_bit_from_json() {
    let f = |p: &[f64]| -> Result<(f64, Vec<f64>), AdError> {
        let g: Vec<f64> = p
            .iter()
            .enumerate()
            .map(|(i, x)| (i + 1) as f64 * x.sin())
            .collect();
        Ok((p.iter().map(|x| -x.cos()).sum(), g))
    };
    let adam = Adam::new(
        AdamOptions::default()
            .learning_rate(0.05)
            .schedule(Schedule::Cosine {
                steps: 20,
                min_factor: 0.1,
            }),
    )
    .unwrap();
    let sgd = Sgd::new(
        SgdOptions::default()
            .learning_rate(0.05)
            .momentum(0.9)
            .nesterov(true),
    )
    .unwrap();
    fn check<O>(start: O, f: impl Fn(&[f64]) -> Result<(f64, Vec<f64>), AdError> + Copy)
    where
        O: Optimizer + Clone + PartialEq + std::fmt::Debug + serde::Serialize,
        O: serde::de::DeserializeOwned,
    {
        let p0 = [1.0, -2.0, 0.5];
        let (mut straight, mut opt) = (p0, start.clone());
        minimize(&mut straight, f, &mut opt, 20, ()).unwrap();
        let (mut resumed, mut first) = (p0, start);
        minimize(&mut resumed, f, &mut first, 10, ()).unwrap();
        let mut second: O = serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
        assert_eq!(second, first);
        minimize(&mut resumed, f, &mut second, 10, ()).unwrap();
        assert_eq!(resumed.map(f64::to_bits), straight.map(f64::to_bits));
        assert_eq!(second, opt);
    }
    check(adam, f);
    check(sgd, f);
}

#[test]
fn corrupt_saved_optimizers_are_errors() {
    let good = serde_json::to_string(&Adam::new(AdamOptions::default()).unwrap()).unwrap();
    let bad_lr = good.replace("\"learning_rate\":0.001", "\"learning_rate\":-1.0");
    assert_ne!(bad_lr, good);
    let err = serde_json::from_str::<Adam>(&bad_lr).unwrap_err();
    assert!(err.to_string().contains("learning_rate = -1"), "{err}");
    let bad_state = r#"{"options":{"learning_rate":0.1,"beta1":0.9,"beta2":0.999,"epsilon":1e-8,"schedule":"Constant"},"state":{"t":1,"m":[0.0],"v":[]}}"#;
    assert!(serde_json::from_str::<Adam>(bad_state).is_err());
    let ok = bad_state.replace("\"v\":[]", "\"v\":[0.0]");
    assert_eq!(serde_json::from_str::<Adam>(&ok).unwrap().state().t, 1);
    assert!(serde_json::from_str::<Sgd>(r#"{"options":{"learning_rate":0.1,"momentum":1.0,"nesterov":false,"schedule":"Constant"},"state":{"t":0,"buf":[]}}"#).is_err());
    // Options alone round-trip.
    let o = SgdOptions::default()
        .momentum(0.5)
        .schedule(Schedule::Step {
            every: 4,
            factor: 0.1,
        });
    assert_eq!(
        serde_json::from_str::<SgdOptions>(&serde_json::to_string(&o).unwrap()).unwrap(),
        o
    );
}
