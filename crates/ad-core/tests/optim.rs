//! Specification of `ad_core::optim`: Adam and SGD match their formulas step by step and
//! converge on quadratics, schedules give their documented factors, options are validated,
//! runs resume bit for bit from serialized state, and `minimize` stops with typed errors.

mod common;

use ad_core::AdError;
use ad_core::optim::{
    Adam, AdamOptions, OptimError, Optimizer, Schedule, Sgd, SgdOptions, minimize,
};
use proptest::prelude::*;

/// `f(p) = sum_i c_i (p_i - a_i)^2 / 2`, curvatures `c` in `[1, 4]`, minimum at `a`.
struct Quadratic {
    c: Vec<f64>,
    a: Vec<f64>,
}

impl Quadratic {
    fn new(n: usize) -> Quadratic {
        Quadratic {
            c: (0..n)
                .map(|i| 1.0 + 3.0 * i as f64 / (n - 1) as f64)
                .collect(),
            a: (0..n).map(|i| (i as f64 * 0.7).sin() * 2.0).collect(),
        }
    }
    fn eval(&self, p: &[f64]) -> Result<(f64, Vec<f64>), AdError> {
        let d: Vec<f64> = p.iter().zip(&self.a).map(|(p, a)| p - a).collect();
        let f = d.iter().zip(&self.c).map(|(d, c)| 0.5 * c * d * d).sum();
        Ok((f, d.iter().zip(&self.c).map(|(d, c)| c * d).collect()))
    }
    fn max_error(&self, p: &[f64]) -> f64 {
        p.iter()
            .zip(&self.a)
            .map(|(p, a)| (p - a).abs())
            .fold(0.0, f64::max)
    }
}

#[test]
fn adam_converges_on_a_quadratic() {
    let q = Quadratic::new(6);
    let opts = AdamOptions::default()
        .learning_rate(0.05)
        .schedule(Schedule::Cosine {
            steps: 3000,
            min_factor: 0.0,
        });
    let mut adam = Adam::new(opts).unwrap();
    let mut p = vec![0.0; 6];
    let report = minimize(&mut p, |p| q.eval(p), &mut adam, 3000, ()).unwrap();
    // With the rate annealed to 0, Adam settles; its steps near the end are below
    // lr_t ~ 0.05 (pi / 3000)^2 / 2 per unit of m/sqrt(v), so 1e-6 is a loose bound.
    assert!(q.max_error(&p) < 1e-6, "error {}", q.max_error(&p));
    assert_eq!((report.steps, report.evaluations), (3000, 3001));
    assert!(report.final_loss < 1e-12 && report.final_grad_norm < 1e-5);
    assert_eq!(adam.steps_taken(), 3000);
}

#[test]
fn sgd_with_momentum_converges_on_a_quadratic() {
    let q = Quadratic::new(6);
    for nesterov in [false, true] {
        let opts = SgdOptions::default()
            .learning_rate(0.1)
            .momentum(0.8)
            .nesterov(nesterov);
        let mut sgd = Sgd::new(opts).unwrap();
        let mut p = vec![0.0; 6];
        minimize(&mut p, |p| q.eval(p), &mut sgd, 600, ()).unwrap();
        // Heavy ball with lr c in [0.1, 0.4] and mu = 0.8 contracts by sqrt(0.8) ~ 0.9 per
        // step or better: 0.9^600 ~ 1e-27, so only rounding (1e-16 relative) is left.
        assert!(
            q.max_error(&p) < 1e-12,
            "nesterov {nesterov}: {}",
            q.max_error(&p)
        );
    }
}

/// Adam by hand, step by step, written independently of the library.
fn adam_by_hand(lr: f64, b1: f64, b2: f64, eps: f64, p: &mut [f64], grads: &[Vec<f64>]) {
    let n = p.len();
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    for (k, g) in grads.iter().enumerate() {
        // b^t by `powf` (libm's pow, within 1 ulp): with b1 near 1, 1 - b1^t cancels and
        // magnifies the last-bit difference between `powi` (repeated products) and `powf`
        // by 1 / (1 - b1), so the test uses the same power function as the library.
        let t = (k + 1) as f64;
        for i in 0..n {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
            let mhat = m[i] / (1.0 - b1.powf(t));
            let vhat = v[i] / (1.0 - b2.powf(t));
            p[i] -= lr * mhat / (vhat.sqrt() + eps);
        }
    }
}

proptest! {
    #![proptest_config(common::config(128))]

    /// Each Adam step is the bias-corrected formula, to 1e-15 relative (a few roundings of
    /// 1.1e-16 each, should the operations be grouped differently).
    #[test]
    fn adam_steps_match_the_formula(
        grads in prop::collection::vec(prop::collection::vec(-10.0..10.0f64, 3), 1..6),
        lr in 1e-4..1.0f64,
        b1 in 0.0..0.99f64,
        b2 in 0.5..0.9999f64,
    ) {
        let mut adam = Adam::new(
            AdamOptions::default().learning_rate(lr).beta1(b1).beta2(b2).epsilon(1e-8),
        ).unwrap();
        let mut ours = vec![0.3, -1.2, 2.0];
        for g in &grads {
            adam.step(&mut ours, g);
        }
        let mut want = vec![0.3, -1.2, 2.0];
        adam_by_hand(lr, b1, b2, 1e-8, &mut want, &grads);
        for (a, b) in ours.iter().zip(&want) {
            prop_assert!((a - b).abs() <= 1e-15 * (1.0 + b.abs()), "{a} vs {b}");
        }
        prop_assert_eq!(adam.state().t, grads.len() as u64);
    }
}

#[test]
fn one_adam_step_is_lr_times_the_sign() {
    // At t = 1 the bias-corrected moments are g and g^2: the step is lr g / (|g| + eps).
    let mut adam = Adam::new(AdamOptions::default().learning_rate(0.1)).unwrap();
    let mut p = [1.0, 1.0, 1.0];
    adam.step(&mut p, &[3.0, -0.5, 0.0]);
    let want = [
        1.0 - 0.1 * 3.0 / (3.0 + 1e-8),
        1.0 + 0.1 * 0.5 / (0.5 + 1e-8),
        1.0,
    ];
    for (a, b) in p.iter().zip(want) {
        assert!((a - b).abs() <= 1e-15, "{a} vs {b}");
    }
}

#[test]
fn sgd_steps_match_the_formula() {
    let grads = [[1.0, -2.0], [0.5, 0.25], [-1.0, 3.0]];
    for nesterov in [false, true] {
        let (lr, mu) = (0.1, 0.9);
        let mut sgd = Sgd::new(
            SgdOptions::default()
                .learning_rate(lr)
                .momentum(mu)
                .nesterov(nesterov),
        )
        .unwrap();
        let mut p = [0.0, 0.0];
        let (mut want, mut buf) = ([0.0f64, 0.0], [0.0f64, 0.0]);
        for (k, g) in grads.iter().enumerate() {
            sgd.step(&mut p, g);
            for i in 0..2 {
                buf[i] = if k == 0 { g[i] } else { mu * buf[i] + g[i] };
                let d = if nesterov { g[i] + mu * buf[i] } else { buf[i] };
                want[i] -= lr * d;
            }
            assert_eq!(p, want, "nesterov {nesterov}, step {k}");
        }
    }
    // No momentum: plain gradient descent.
    let mut sgd = Sgd::new(SgdOptions::default().learning_rate(0.5)).unwrap();
    let mut p = [1.0];
    sgd.step(&mut p, &[4.0]);
    sgd.step(&mut p, &[2.0]);
    assert_eq!(p, [1.0 - 2.0 - 1.0]);
}

#[test]
fn schedules_give_their_factors() {
    assert_eq!(Schedule::Constant.factor(1_000_000), 1.0);
    let s = Schedule::Step {
        every: 10,
        factor: 0.5,
    };
    let got: Vec<f64> = [0, 9, 10, 19, 20, 35]
        .iter()
        .map(|&t| s.factor(t))
        .collect();
    assert_eq!(got, [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]);
    let c = Schedule::Cosine {
        steps: 100,
        min_factor: 0.2,
    };
    // 0.2 + 0.8 (1 + cos(pi t / 100)) / 2 at t = 0, 25, 50, 75, 100, and flat after.
    let want = [
        1.0,
        0.2 + 0.4 * (1.0 + 0.5f64.sqrt()),
        0.6,
        0.2 + 0.4 * (1.0 - 0.5f64.sqrt()),
        0.2,
    ];
    for (t, w) in [0u64, 25, 50, 75, 100].into_iter().zip(want) {
        assert!(
            (c.factor(t) - w).abs() < 1e-15,
            "t = {t}: {} vs {w}",
            c.factor(t)
        );
    }
    assert_eq!(c.factor(101), c.factor(100));
    // The optimizer applies the schedule: lr_t = lr * factor(t).
    let mut sgd = Sgd::new(SgdOptions::default().learning_rate(0.4).schedule(s)).unwrap();
    let mut p = [0.0];
    for _ in 0..10 {
        assert_eq!(sgd.learning_rate(), 0.4);
        sgd.step(&mut p, &[1.0]);
    }
    assert_eq!(sgd.learning_rate(), 0.2);
    assert!((p[0] + 4.0).abs() < 1e-15);
}

fn invalid(e: Result<impl std::fmt::Debug, OptimError>) -> (&'static str, f64) {
    match e {
        Err(OptimError::InvalidOption { name, value, .. }) => (name, value),
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

#[test]
fn invalid_options_are_typed_errors() {
    let a = AdamOptions::default();
    let (name, value) = invalid(Adam::new(a.learning_rate(f64::NAN)));
    assert!(name == "learning_rate" && value.is_nan());
    assert_eq!(
        invalid(Adam::new(a.learning_rate(-0.1))),
        ("learning_rate", -0.1)
    );
    assert_eq!(
        invalid(Adam::new(a.learning_rate(0.0))),
        ("learning_rate", 0.0)
    );
    let (name, value) = invalid(Adam::new(a.learning_rate(f64::INFINITY)));
    assert!(name == "learning_rate" && value.is_infinite());
    assert_eq!(invalid(Adam::new(a.beta1(1.0))), ("beta1", 1.0));
    assert_eq!(invalid(Adam::new(a.beta2(-0.5))), ("beta2", -0.5));
    assert_eq!(invalid(Adam::new(a.epsilon(0.0))), ("epsilon", 0.0));
    let s = SgdOptions::default();
    assert_eq!(
        invalid(Sgd::new(s.learning_rate(-1.0))),
        ("learning_rate", -1.0)
    );
    assert_eq!(invalid(Sgd::new(s.momentum(1.0))), ("momentum", 1.0));
    let bad_step = Schedule::Step {
        every: 0,
        factor: 0.5,
    };
    assert_eq!(
        invalid(Sgd::new(s.schedule(bad_step))),
        ("schedule.every", 0.0)
    );
    let bad_factor = Schedule::Step {
        every: 3,
        factor: 1.5,
    };
    assert_eq!(
        invalid(Adam::new(a.schedule(bad_factor))),
        ("schedule.factor", 1.5)
    );
    let bad_cos = Schedule::Cosine {
        steps: 10,
        min_factor: -0.1,
    };
    assert_eq!(
        invalid(Adam::new(a.schedule(bad_cos))),
        ("schedule.min_factor", -0.1)
    );
    let bad_len = Schedule::Cosine {
        steps: 0,
        min_factor: 0.0,
    };
    assert_eq!(
        invalid(Sgd::new(s.schedule(bad_len))),
        ("schedule.steps", 0.0)
    );
    // The edges of the ranges are accepted.
    assert!(Adam::new(a.beta1(0.0).beta2(0.0)).is_ok());
    let edge = Schedule::Step {
        every: 1,
        factor: 1.0,
    };
    assert!(Sgd::new(s.momentum(0.0).schedule(edge)).is_ok());
}

#[test]
fn optimizers_keep_their_options() {
    let a = AdamOptions::default()
        .learning_rate(0.3)
        .beta1(0.5)
        .beta2(0.75)
        .epsilon(1e-6);
    assert_eq!(Adam::new(a).unwrap().options(), &a);
    let s = SgdOptions::default()
        .learning_rate(0.2)
        .momentum(0.4)
        .nesterov(true);
    assert_eq!(Sgd::new(s).unwrap().options(), &s);
}

#[test]
fn adam_applies_its_schedule_and_sgd_reports_its_state() {
    let step = Schedule::Step {
        every: 2,
        factor: 0.5,
    };
    let mut adam = Adam::new(AdamOptions::default().learning_rate(0.4).schedule(step)).unwrap();
    let mut p = [0.0];
    let mut rates = Vec::new();
    for _ in 0..5 {
        rates.push(adam.learning_rate());
        adam.step(&mut p, &[1.0]);
    }
    assert_eq!(rates, [0.4, 0.4, 0.2, 0.2, 0.1]);
    // The edges of the schedules' ranges are valid.
    let flat = Schedule::Cosine {
        steps: 5,
        min_factor: 1.0,
    };
    assert!(Adam::new(AdamOptions::default().schedule(flat)).is_ok());
    assert_eq!(flat.factor(3), 1.0);

    let mut sgd = Sgd::new(SgdOptions::default().momentum(0.5)).unwrap();
    let mut q = [0.0, 0.0];
    sgd.step(&mut q, &[1.0, 2.0]);
    sgd.step(&mut q, &[1.0, 2.0]);
    assert_eq!(sgd.steps_taken(), 2);
    assert_eq!(sgd.state().t, 2);
    assert_eq!(sgd.state().buf, [1.5, 3.0]); // 0.5 g + g
    sgd.reset();
    assert_eq!((sgd.steps_taken(), sgd.state().buf.len()), (0, 0));
}

/// A saved Adam state that no run could have produced is refused, naming the field and the
/// offending value; a state at the step limit cannot be resumed.
#[test]
fn adam_resume_refuses_impossible_states() {
    use ad_core::optim::AdamState;
    let state = |t: u64, m: Vec<f64>, v: Vec<f64>| AdamState { t, m, v };
    let cases = [
        (state(3, vec![0.1, f64::NAN], vec![0.1, 0.1]), "state.m"),
        (state(3, vec![0.1, 0.2], vec![0.1, -1.0]), "state.v"),
        (
            state(3, vec![0.1, 0.2], vec![f64::INFINITY, 0.1]),
            "state.v",
        ),
        (state(u64::MAX, vec![0.1], vec![0.1]), "state.t"),
        (state(3, vec![0.1], vec![0.1, 0.2]), "state.v"),
    ];
    for (s, field) in cases {
        match Adam::resume(AdamOptions::default(), s.clone()) {
            Err(OptimError::InvalidOption { name, value, .. }) => {
                assert_eq!(name, field, "{s:?}");
                let expected = match field {
                    "state.m" => f64::NAN,
                    "state.t" => u64::MAX as f64,
                    _ if s.v.len() != s.m.len() => s.v.len() as f64,
                    _ => *s.v.iter().find(|v| !(v.is_finite() && **v >= 0.0)).unwrap(),
                };
                assert!(
                    value.to_bits() == expected.to_bits() || (value.is_nan() && expected.is_nan()),
                    "{field}: {value} vs {expected}"
                );
            }
            other => panic!("{s:?}: expected InvalidOption({field}), got {other:?}"),
        }
    }
    // A valid state one step from the limit resumes, and the count saturates there.
    let mut adam = Adam::resume(
        AdamOptions::default(),
        state(u64::MAX - 1, vec![0.1], vec![0.1]),
    )
    .unwrap();
    let mut p = [1.0];
    adam.step(&mut p, &[0.5]);
    adam.step(&mut p, &[0.5]);
    assert!(p[0].is_finite());
    assert_eq!(adam.state().t, u64::MAX);
}
