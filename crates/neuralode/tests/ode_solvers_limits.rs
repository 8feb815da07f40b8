//! The limits of `ode_solvers` 0.6.2 that shaped this crate, pinned as tests (if a new
//! version lifts one, its test fails and docs/neuralode.md needs updating), and the crate's
//! own Dopri5 checked against `ode_solvers::Dopri5`.

use std::sync::mpsc;
use std::time::Duration;

use ad_core::nn::{Activation, Init, Mlp};
use nalgebra::DVector;
use neuralode::reference::{OdeSystem, RefMethod, solve_reference};
use neuralode::{MlpDynamics, SolverOptions, solve};
use ode_solvers::continuous_output_model::ContinuousOutputModel;
use ode_solvers::{Dopri5, OutputType, System};

/// y' = -y.
struct Decay;
impl System<f64, DVector<f64>> for Decay {
    fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        dy[0] = -y[0];
    }
}

/// Run `f` on a thread: `Some(Ok)` if it returned, `Some(Err)` if it panicked, `None` if
/// it was still running after 10 s (a hang).
fn guarded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<Result<T, ()>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| ());
        let _ = tx.send(r);
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

fn decay(t0: f64, t1: f64, dx: f64) -> Dopri5<f64, DVector<f64>, Decay> {
    Dopri5::new(Decay, t0, t1, dx, DVector::from_element(1, 1.0), 1e-8, 1e-8)
}

#[test]
fn backward_in_time_needs_sparse_output() {
    // dense output (the default) panics going backward, whatever the sign of dx
    for dx in [0.1, -0.1] {
        let r = guarded(move || decay(1.0, 0.0, dx).integrate().is_ok());
        assert_eq!(r, Some(Err(())), "dx = {dx}");
    }
    // sparse output works: y(0) = e from y(1) = 1
    let r = guarded(|| {
        let mut s = decay(1.0, 0.0, 0.1);
        s.set_output(OutputType::Sparse);
        s.integrate().unwrap();
        (*s.x_out().last().unwrap(), s.y_out().last().unwrap()[0])
    });
    let (x, y) = r.unwrap().unwrap();
    assert_eq!(x, 0.0);
    assert!((y - 1f64.exp()).abs() < 1e-7);
}

#[test]
fn continuous_output_only_forward_and_only_for_positive_times() {
    // backward: the model is built but evaluates to nothing
    let (bounds, v) = guarded(|| {
        let mut m = ContinuousOutputModel::default();
        decay(1.0, 0.0, 0.1)
            .integrate_with_continuous_output_model(&mut m)
            .unwrap();
        (m.bounds(), m.evaluate(0.5))
    })
    .unwrap()
    .unwrap();
    assert_eq!(bounds, (1.0, 0.0));
    assert!(v.is_none());
    // forward over positive times: accurate
    let mut m = ContinuousOutputModel::default();
    decay(2.0, 3.0, 0.1)
        .integrate_with_continuous_output_model(&mut m)
        .unwrap();
    assert!((m.evaluate(2.5).unwrap()[0] - (-0.5f64).exp()).abs() < 1e-8);
    // forward over negative times: the breakpoints are stored as |t|, and the value is
    // wrong by far more than the tolerance (found while pinning these limits)
    let mut m = ContinuousOutputModel::default();
    decay(-1.0, 0.0, 0.1)
        .integrate_with_continuous_output_model(&mut m)
        .unwrap();
    let err = (m.evaluate(-0.5).unwrap()[0] - (-0.5f64).exp()).abs();
    assert!(err > 1e-5, "error {err}");
}

/// Stops the integration at the first step end at or after t = 0.5.
struct StopAtHalf;
impl System<f64, DVector<f64>> for StopAtHalf {
    fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        dy[0] = -y[0];
    }
    fn solout(&mut self, t: f64, _y: &DVector<f64>, _dy: &DVector<f64>) -> bool {
        t >= 0.5
    }
}

#[test]
fn integrate_runs_to_the_end_or_to_a_step_end_never_to_a_chosen_time() {
    let mut s = Dopri5::new(
        StopAtHalf,
        0.0,
        1.0,
        0.1,
        DVector::from_element(1, 1.0),
        1e-8,
        1e-8,
    );
    s.set_output(OutputType::Sparse);
    s.integrate().unwrap();
    let t = *s.x_out().last().unwrap();
    // it stopped at a step boundary past 0.5, not at 0.5: observation times need dense
    // output (forward only) or one solve per interval
    assert!(t > 0.5 && t < 1.0, "stopped at {t}");
}

/// y' = -y with a quadrature q' = scale * y^2 appended.
struct WithQuadrature(f64);
impl System<f64, DVector<f64>> for WithQuadrature {
    fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        dy[0] = -y[0];
        dy[1] = self.0 * y[0] * y[0] * (30.0 * y[0]).sin();
    }
}

#[test]
fn the_error_norm_covers_every_component() {
    // the same y, with an appended integral that does not feed back: ode_solvers still
    // controls its error, so the steps depend on it (no seminorm)
    let steps = |scale: f64| {
        let mut s = Dopri5::new(
            WithQuadrature(scale),
            0.0,
            5.0,
            0.1,
            DVector::from_column_slice(&[1.0, 0.0]),
            1e-8,
            1e-8,
        );
        s.set_output(OutputType::Sparse);
        s.integrate().unwrap().accepted_steps
    };
    assert!(
        steps(100.0) > steps(0.0) + 5,
        "{} vs {}",
        steps(100.0),
        steps(0.0)
    );
}

fn mlp_problem() -> (MlpDynamics, Vec<f64>) {
    let f = MlpDynamics::new(Mlp::new(
        &[3, 12, 3],
        Activation::Tanh,
        Activation::Identity,
    ));
    let mut theta = f.mlp().init(Init::XavierUniform, 11);
    theta.iter_mut().for_each(|v| *v *= 2.0);
    (f, theta)
}

#[test]
fn our_dopri5_takes_the_same_steps_as_ode_solvers() {
    let (f, theta) = mlp_problem();
    let h0 = [1.0, -0.5, 0.3];
    for tol in [1e-6, 1e-9, 1e-12] {
        let ours = solve(
            &f,
            &theta,
            &h0,
            0.0,
            &[4.0],
            &SolverOptions::default().rtol(tol).atol(tol),
        )
        .unwrap();
        let mut s = Dopri5::new(
            OdeSystem {
                f: &f,
                theta: &theta,
            },
            0.0,
            4.0,
            4.0,
            DVector::from_column_slice(&h0),
            tol,
            tol,
        );
        s.set_output(OutputType::Sparse);
        let st = s.integrate().unwrap();
        assert_eq!(
            ours.stats.accepted_forward, st.accepted_steps as usize,
            "tol {tol}"
        );
        // ode_solvers does not count rejections before the first accepted step
        assert!(ours.stats.rejected_forward >= st.rejected_steps as usize);
        let theirs = s.y_out().last().unwrap();
        for j in 0..3 {
            // identical steps and formulas: agreement to a few roundings
            assert!(
                (ours.states[(0, j)] - theirs[j]).abs() < 1e-13,
                "tol {tol}, {j}"
            );
        }
    }
}

#[test]
fn our_dense_output_matches_ode_solvers_continuous_model() {
    let (f, theta) = mlp_problem();
    let h0 = [1.0, -0.5, 0.3];
    let ts: Vec<f64> = (1..40)
        .map(|k| 0.1 * k as f64 + 0.013 * (k % 3) as f64)
        .collect();
    let ours = solve(
        &f,
        &theta,
        &h0,
        0.0,
        &ts,
        &SolverOptions::default().rtol(1e-7).atol(1e-7),
    )
    .unwrap();
    let mut s = Dopri5::new(
        OdeSystem {
            f: &f,
            theta: &theta,
        },
        0.0,
        *ts.last().unwrap(),
        0.1,
        DVector::from_column_slice(&h0),
        1e-7,
        1e-7,
    );
    let mut m = ContinuousOutputModel::default();
    s.integrate_with_continuous_output_model(&mut m).unwrap();
    for (k, &t) in ts.iter().enumerate() {
        let theirs = m.evaluate(t).unwrap();
        for j in 0..3 {
            assert!((ours.states[(k, j)] - theirs[j]).abs() < 1e-12, "t = {t}");
        }
    }
}

#[test]
fn reference_methods_agree_with_ours() {
    let (f, theta) = mlp_problem();
    let h0 = [1.0, -0.5, 0.3];
    let ts = [0.3, 1.1, 1.15, 2.9];
    let ours = solve(
        &f,
        &theta,
        &h0,
        0.0,
        &ts,
        &SolverOptions::default().rtol(1e-11).atol(1e-11),
    )
    .unwrap();
    for (m, tol) in [
        (RefMethod::Dopri5, 1e-8),
        (RefMethod::Dop853, 1e-8),
        (RefMethod::Rk4 { max_step: 1e-3 }, 1e-8),
    ] {
        let r = solve_reference(&f, &theta, &h0, 0.0, &ts, 1e-11, 1e-11, m).unwrap();
        assert!((&r.states - &ours.states).amax() < tol, "{m:?}");
        assert!(r.stats.nfe_forward > 0);
    }
}
