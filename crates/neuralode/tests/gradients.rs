//! The executable specification of the gradients: every method agrees with the others,
//! with the whole solver recorded on the ad-core tape, with central finite differences,
//! and (linear ODEs) with the closed form through the matrix exponential.

use ad_core::nn::{Activation, Mlp};
use ad_core::{MatOps, Tape};
use nalgebra::DMatrix;
use neuralode::{
    Dynamics, GradOptions, Gradients, Method, MlpDynamics, SolverOptions, TapeDynamics,
    VectorField, solve, solve_unrolled, value_and_grad,
};
use proptest::prelude::*;

/// A random small problem: field parameters, h0, observation times, loss weights.
#[derive(Clone, Debug)]
struct Case {
    theta: Vec<f64>,
    h0: Vec<f64>,
    t0: f64,
    ts: Vec<f64>,
    /// loss = Σ_k c_k · h(t_k) + 0.5 Σ_k |h(t_k)|²
    c: Vec<f64>,
}

fn loss(case: &Case) -> impl Fn(&DMatrix<f64>) -> (f64, DMatrix<f64>) + '_ {
    move |s: &DMatrix<f64>| {
        let cm = DMatrix::from_row_slice(s.nrows(), s.ncols(), &case.c);
        (cm.dot(s) + 0.5 * s.norm_squared(), cm + s)
    }
}

fn case_strategy(d: usize, p: usize, scale: f64) -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(-scale..scale, p),
        prop::collection::vec(-1.0..1.0f64, d),
        -0.5..0.5f64,
        prop::collection::vec(0.05..0.7f64, 1..5),
        prop::collection::vec(-1.0..1.0f64, 5 * d),
        any::<bool>(),
    )
        .prop_map(move |(theta, h0, t0, gaps, c, at_start)| {
            let mut t = t0;
            let mut ts = Vec::new();
            if at_start {
                ts.push(t0); // an observation at t0 itself
            }
            for g in &gaps {
                t += g;
                ts.push(t);
            }
            let c = c[..ts.len() * d].to_vec();
            Case {
                theta,
                h0,
                t0,
                ts,
                c,
            }
        })
}

fn grad<D: Dynamics>(f: &D, case: &Case, method: Method, tol: f64) -> (f64, Gradients) {
    let opts = GradOptions::default()
        .solver(SolverOptions::default().rtol(tol).atol(tol))
        .method(method);
    value_and_grad(
        f,
        &case.theta,
        &case.h0,
        case.t0,
        &case.ts,
        &opts,
        loss(case),
    )
    .unwrap()
}

fn loss_at<D: Dynamics>(f: &D, case: &Case, tol: f64) -> f64 {
    let opts = SolverOptions::default().rtol(tol).atol(tol);
    let s = solve(f, &case.theta, &case.h0, case.t0, &case.ts, &opts).unwrap();
    loss(case)(&s.states).0
}

fn flat(g: &Gradients) -> Vec<f64> {
    let mut v = g.theta.clone();
    v.extend(&g.h0);
    v.push(g.t0);
    v.extend(&g.ts);
    v
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(1e-8)
}

const METHODS: [Method; 10] = [
    Method::Direct,
    Method::RecursiveCheckpointed,
    Method::Checkpointed { every: 1 },
    Method::Checkpointed { every: 3 },
    Method::Interpolating,
    Method::InterpolatingCheckpointed { every: 1 },
    Method::InterpolatingCheckpointed { every: 2 },
    Method::InterpolatingRecursive,
    Method::Backsolve { reset_state: true },
    Method::Backsolve { reset_state: false },
];

fn mlp(d: usize, hidden: usize) -> MlpDynamics {
    MlpDynamics::new(Mlp::new(
        &[d, hidden, d],
        Activation::Tanh,
        Activation::Identity,
    ))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random 3-6-3 tanh dynamics: all methods agree; the direct sweep equals the tape.
    #[test]
    fn mlp_gradients_agree(case in case_strategy(3, 3 * 6 + 6 + 6 * 3 + 3, 1.2)) {
        let f = mlp(3, 6);
        let tol = 1e-10;
        let (_, direct) = grad(&f, &case, Method::Direct, tol);
        let reference = flat(&direct);
        for m in METHODS {
            let (_, g) = grad(&f, &case, m, tol);
            let e = rel(&flat(&g), &reference);
            // (Recursive)Checkpointed recomputes exactly the direct sweep: rounding only. The
            // continuous adjoints differ from the discrete one by the solver error,
            // O(tol) = 1e-10 per unit of the (order-one) sensitivities; 1e-6 is far
            // above that and far below any bug.
            let bound = match m {
                Method::Checkpointed { .. } | Method::RecursiveCheckpointed => 1e-13,
                _ => 1e-6,
            };
            prop_assert!(e < bound, "{:?}: rel err {:e}", m, e);
        }
        // the whole solver on the ad-core tape gives the same discrete derivative
        let tape = Tape::new();
        let th = tape.mat_var(DMatrix::from_column_slice(case.theta.len(), 1, &case.theta));
        let h0 = tape.mat_var(DMatrix::from_column_slice(3, 1, &case.h0));
        let opts = SolverOptions::default().rtol(tol).atol(tol);
        let states = solve_unrolled(&f, &h0, &[th], case.t0, &case.ts, &opts).unwrap();
        let cm = h0.constant_like(DMatrix::from_row_slice(case.ts.len(), 3, &case.c));
        let l = cm.dot(&states) + states.sq_norm() * 0.5;
        let g = tape.gradient(l).unwrap();
        let mut on_tape = g.wrt_mat(&th).as_slice().to_vec();
        on_tape.extend(g.wrt_mat(&h0).as_slice());
        let mut ours = direct.theta.clone();
        ours.extend(&direct.h0);
        let e = rel(&ours, &on_tape);
        // the same arithmetic up to summation order (gemm and the tape's kernels against
        // the fused loops), amplified by the sweep: seen up to 1e-11 over 400 cases
        prop_assert!(e < 1e-9, "tape vs direct sweep: {:e}", e);
    }

    /// Central finite differences (at rtol = atol = 1e-12) along a random direction in
    /// (θ, h0, t0, ts) agree with every method's gradient.
    #[test]
    fn mlp_gradients_match_finite_differences(
        case in case_strategy(2, 2 * 5 + 5 + 5 * 2 + 2, 1.0),
        dir in prop::collection::vec(-1.0..1.0f64, 2 * 5 + 5 + 5 * 2 + 2 + 2 + 1 + 6),
    ) {
        let f = mlp(2, 5);
        let p = case.theta.len();
        let k = case.ts.len();
        let shift = |eps: f64| {
            let mut c = case.clone();
            for i in 0..p { c.theta[i] += eps * dir[i]; }
            for i in 0..2 { c.h0[i] += eps * dir[p + i]; }
            c.t0 += eps * dir[p + 2] * 0.1;
            for i in 0..k { c.ts[i] += eps * dir[p + 3 + i] * 0.1; }
            // an observation at t0 stays at t0 (and moves with it)
            if case.ts[0] == case.t0 { c.ts[0] = c.t0; }
            c
        };
        let eps = 1e-5;
        let fd = (loss_at(&f, &shift(eps), 1e-12) - loss_at(&f, &shift(-eps), 1e-12)) / (2.0 * eps);
        for m in METHODS {
            let (_, g) = grad(&f, &case, m, 1e-10);
            let mut dd: f64 = (0..p).map(|i| g.theta[i] * dir[i]).sum();
            dd += (0..2).map(|i| g.h0[i] * dir[p + i]).sum::<f64>();
            // an observation at t0 moves with t0 in `shift`: its two time derivatives add
            dd += g.t0 * dir[p + 2] * 0.1;
            for i in 0..k {
                let d_ti = if case.ts[i] == case.t0 && i == 0 { dir[p + 2] } else { dir[p + 3 + i] };
                dd += g.ts[i] * d_ti * 0.1;
            }
            // FD error: O(eps²) ~ 1e-10 from truncation, plus solver noise ~1e-12 / eps
            // = 1e-7 from step sequences changing with the perturbation.
            prop_assert!((dd - fd).abs() <= 1e-5 * (1.0 + fd.abs()), "{:?}: {} vs fd {}", m, dd, fd);
        }
    }
}

/// h' = A h, parameters: A (column-major).
struct Linear(usize);
impl VectorField for Linear {
    fn dim(&self) -> usize {
        self.0
    }
    fn param_shapes(&self) -> Vec<(usize, usize)> {
        vec![(self.0, self.0)]
    }
    fn eval<M: MatOps>(&self, _t: f64, h: &M, theta: &[M]) -> M {
        theta[0].matmul(h)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Linear ODE with a random stable A: gradients w.r.t. h0, t0 and the times agree
    /// with the closed form through the matrix exponential, w.r.t. A with central
    /// differences at tight tolerance, for every method.
    #[test]
    fn linear_ode_closed_form(
        b in prop::collection::vec(-1.0..1.0f64, 9),
        s in prop::collection::vec(-1.5..1.5f64, 3),
        case in case_strategy(3, 9, 1.0),
    ) {
        let n = 3;
        let bm = DMatrix::from_column_slice(n, n, &b);
        // A = -(B Bᵀ/3 + 0.3 I) + skew(s): eigenvalues with real part <= -0.3
        let mut a = -(&bm * bm.transpose() / 3.0) - DMatrix::identity(n, n) * 0.3;
        a[(0, 1)] += s[0]; a[(1, 0)] -= s[0];
        a[(0, 2)] += s[1]; a[(2, 0)] -= s[1];
        a[(1, 2)] += s[2]; a[(2, 1)] -= s[2];
        let case = Case { theta: a.as_slice().to_vec(), ..case };
        let f = TapeDynamics::new(Linear(n));
        let h0 = DMatrix::from_column_slice(n, 1, &case.h0);
        let k = case.ts.len();
        // closed form: h(t) = e^{A(t - t0)} h0, ∂L/∂h(t_k) = c_k + h(t_k)
        let mut h0_bar = DMatrix::zeros(n, 1);
        let mut ts_bar = vec![0.0; k];
        for i in 0..k {
            let e = (&a * (case.ts[i] - case.t0)).exp();
            let hk = &e * &h0;
            let ck = DMatrix::from_column_slice(n, 1, &case.c[i * n..(i + 1) * n]);
            let gk = &ck + &hk;
            h0_bar += e.transpose() * &gk;
            ts_bar[i] = gk.dot(&(&a * &hk));
        }
        let t0_bar = -h0_bar.dot(&(&a * &h0));
        // A by central differences at tight tolerance
        let eps = 1e-6;
        let fd_a: Vec<f64> = (0..n * n).map(|i| {
            let mut cp = case.clone(); cp.theta[i] += eps;
            let mut cm = case.clone(); cm.theta[i] -= eps;
            (loss_at(&f, &cp, 1e-13) - loss_at(&f, &cm, 1e-13)) / (2.0 * eps)
        }).collect();
        for m in METHODS {
            let (_, g) = grad(&f, &case, m, 1e-11);
            // closed form vs a 1e-11 solve: relative errors ~1e-10; FD on A: truncation
            // O(eps²) = 1e-12, noise 1e-13 / eps = 1e-7 absolute.
            prop_assert!(rel(&g.h0, h0_bar.as_slice()) < 1e-7, "{:?} h0", m);
            prop_assert!(rel(&g.ts, &ts_bar) < 1e-7, "{:?} ts {:?} vs {:?}", m, g.ts, ts_bar);
            prop_assert!((g.t0 - t0_bar).abs() < 1e-7 * (1.0 + t0_bar.abs()), "{:?} t0", m);
            prop_assert!(rel(&g.theta, &fd_a) < 1e-6, "{:?} A {:?} vs {:?}", m, g.theta, fd_a);
        }
    }
}
