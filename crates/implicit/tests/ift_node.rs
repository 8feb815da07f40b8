//! `implicit_node` / `implicit_scalar_node` inside a larger tape computation: reverse mode
//! (`Tape::gradient`) and forward mode (`Tape::forward`) of the whole pipeline against finite
//! differences.

mod ift_common;

use std::fmt::Debug;

use ad_core::{MatOps, Real, Seeds, Tape, Unary, Var};
use ift_common::*;
use implicit::{
    Argmin, FixedPoint, IftOptions, Implicit, Root, Scalars, implicit_node, implicit_scalar_node,
};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// =======================================================================================
// 6. A solver as one node of a larger tape computation
// =======================================================================================

/// θ = c + ½ tanh(M φ) from inputs φ (q x 1), then x*(θ) by a solver node, then
/// loss = ½‖x*‖² + (K x*)·θ + Σ sin(x*): θ reaches the loss both through x* and directly.
#[derive(Clone, Debug)]
struct Pipeline {
    m: DMatrix<f64>,
    c: DMatrix<f64>,
    k: DMatrix<f64>,
}

impl Pipeline {
    fn random(n: usize, p: usize, q: usize, seed: u64) -> Pipeline {
        let mut rng = SplitMix::new(seed ^ 0xBEEF);
        Pipeline {
            m: rng.mat(p, q, -1.0, 1.0),
            c: rng.mat(p, 1, -0.5, 0.5),
            k: rng.mat(p, n, -1.0, 1.0),
        }
    }
    fn encode<M: MatOps>(&self, phi: &M) -> M {
        phi.constant_like(self.m.clone())
            .matmul(phi)
            .tanh()
            .scale_f64(0.5)
            .add(&phi.constant_like(self.c.clone()))
    }
    fn head<M: MatOps>(&self, x: &M, theta: &M) -> M::Scalar {
        x.sq_norm() * 0.5
            + x.constant_like(self.k.clone()).matmul(x).dot(theta)
            + x.unary(Unary::Sin).sum()
    }
}

/// A pipeline in plain f64: inputs ↦ (x*, loss), re-solving its inner problem.
type Rerun<'a> = &'a dyn Fn(&[f64]) -> (Vec<f64>, f64);

/// Central differences of a pipeline that re-solves its inner problem: the gradient of the
/// loss and the Jacobian of x* (2·dim runs).
fn fd_pipeline(run: Rerun<'_>, at: &[f64], h: f64) -> (Vec<f64>, DMatrix<f64>) {
    let n = run(at).0.len();
    let mut grad = vec![0.0; at.len()];
    let mut jac = DMatrix::zeros(n, at.len());
    for i in 0..at.len() {
        let (mut a, mut b) = (at.to_vec(), at.to_vec());
        a[i] += h;
        b[i] -= h;
        let ((xa, la), (xb, lb)) = (run(&a), run(&b));
        grad[i] = (la - lb) / (2.0 * h);
        for r in 0..n {
            jac[(r, i)] = (xa[r] - xb[r]) / (2.0 * h);
        }
    }
    (grad, jac)
}

/// What a tape gave for a pipeline with one solver node, and what to compare it with.
struct PipelineRun {
    /// ∇loss with respect to the inputs (reverse mode).
    grad: Vec<f64>,
    /// The adjoint x̄ = ∂loss/∂x* (reverse mode).
    x_bar: Vec<f64>,
    /// The loss tangent along `dir` (forward mode).
    loss_dot: f64,
    /// The tangents of x* and of θ along `dir` (forward mode).
    x_dot: Vec<f64>,
    theta_dot: Vec<f64>,
}

/// The checks shared by both pipelines, given the derivatives the tape gave, the blocks
/// A, B of the inner problem at (x*, θ), and central differences of re-running the
/// pipeline:
/// - reverse mode vs FD: ‖∇loss − fd‖ ≤ FD_TOL·(‖∇loss‖ + ‖x̄‖ S), the scale of the
///   FD error: it enters through x*, whose FD Jacobian J_fd (q input directions) is
///   accurate to FD_TOL·S, S = `fd_scale(‖J_fd‖, q)`;
/// - forward vs reverse: `loss_dot − ∇loss·d` is exactly the dot-product gap of the solver
///   node, `<x̄, jvp(θ̇)> − <vjp(x̄), θ̇>` (the rest of the tape is exact), so it must be
///   within `dot_product_bound(A, B, x̄, θ̇)`;
/// - the tangent of x* vs FD: ‖ẋ − J_fd d‖ ≤ FD_TOL S ‖d‖.
fn check_pipeline(
    run: &PipelineRun,
    dir: &[f64],
    (a, b): (DMatrix<f64>, DMatrix<f64>),
    (fd, fd_x): (Vec<f64>, DMatrix<f64>),
) -> Result<Vec<(&'static str, f64)>, TestCaseError> {
    let s = fd_scale(fd_x.norm(), dir.len());
    let scale = norm(&run.grad) + norm(&run.x_bar) * s;
    let e_grad = diff_norm(&run.grad, &fd) / scale;
    prop_assert!(
        e_grad <= FD_TOL,
        "gradient {:?} vs FD {fd:?}: {e_grad:.3e}",
        run.grad
    );

    let gap = (run.loss_dot - dot(&run.grad, dir)).abs();
    let rounding = 1e-14 * (run.loss_dot.abs() + norm(&run.grad) * norm(dir));
    let bound =
        dot_product_bound(&a, &b, &run.x_bar, &run.theta_dot, &IftOptions::default()) + rounding;
    prop_assert!(
        gap <= bound,
        "forward {:e} vs reverse {:e}: gap {gap:.3e} > bound {bound:.3e}",
        run.loss_dot,
        dot(&run.grad, dir)
    );

    let fd_xdot = &fd_x * col(dir);
    let e_xdot = diff_norm(&run.x_dot, fd_xdot.as_slice()) / (s * norm(dir));
    prop_assert!(
        e_xdot <= FD_TOL,
        "x tangent {:?} vs FD {fd_xdot}: {e_xdot:.3e}",
        run.x_dot
    );
    Ok(vec![
        ("gradient vs FD", e_grad),
        ("forward vs reverse / bound", gap / bound),
        ("x tangent vs FD", e_xdot),
    ])
}

/// `implicit_node` (θ an `p x 1` matrix variable computed from inputs φ) inside a tape,
/// with the nonsymmetric root (kind 0) or the fixed point (kind 1) as inner problem:
/// reverse mode (`Tape::gradient`) gives the gradient of the whole pipeline (finite
/// differences of re-running it, re-solving each time), forward mode (`Tape::forward`,
/// the node's JVP rule) gives its tangent, consistent with reverse mode, and the tangent of
/// x* (see `check_pipeline`). Each mode costs the node one linear solve.
#[test]
fn implicit_node_in_a_pipeline_backpropagates_and_supports_forward_mode() {
    let strategy = (0usize..2, sizes(), 1usize..=3);
    check(
        "implicit_node pipeline",
        64,
        strategy,
        |(kind, (n, p, seed), q)| {
            let pipe = Pipeline::random(n, p, q, seed);
            let phi0 = SplitMix::new(seed ^ 0x1234).vec(q, -1.0, 1.0);
            let dir = SplitMix::new(seed ^ 0x4321).vec(q, -1.0, 1.0);
            let troot = TanhRoot::random(n, p, seed);
            let deq = Deq::random(n, p, seed);
            let solve = |t: &[f64]| {
                if kind == 0 {
                    troot.solve(t)
                } else {
                    deq.solve(t)
                }
            };

            let tape = Tape::new();
            let phi = tape.vector_var(&phi0);
            let theta = pipe.encode(&phi);
            // An infallible solver returns x* directly (see `SolverOutput`).
            let forward_solver = |t: &[DMatrix<f64>]| solve(t[0].as_slice());
            let opts = IftOptions::default();
            let (x, node) = if kind == 0 {
                implicit_node(Root(troot.clone()), &[theta], forward_solver, opts)
            } else {
                implicit_node(FixedPoint(deq.clone()), &[theta], forward_solver, opts)
            }
            .or_fail()?;
            let loss = pipe.head(&x, &theta);
            let adjoints = tape.gradient(loss).or_fail()?;
            let tangents = tape.forward(&Seeds::new().mat(&phi, col(&dir))).or_fail()?;
            let run = PipelineRun {
                grad: adjoints.wrt_mat(&phi).as_slice().to_vec(),
                x_bar: adjoints.wrt_mat(&x).as_slice().to_vec(),
                loss_dot: tangents.of(loss),
                x_dot: tangents.of_mat(&x).as_slice().to_vec(),
                theta_dot: tangents.of_mat(&theta).as_slice().to_vec(),
            };
            let (x_star, theta_star) = (x.value(), theta.value());
            drop(tape);
            prop_assert_eq!(node.reports().len(), 2, "one VJP and one JVP solve");

            let (xs, ts) = (x_star.as_slice(), theta_star.as_slice());
            let blocks = if kind == 0 {
                Implicit::root_vec(&troot, xs, ts, IftOptions::default())
                    .or_fail()?
                    .blocks()
            } else {
                Implicit::fixed_point_vec(&deq, xs, ts, IftOptions::default())
                    .or_fail()?
                    .blocks()
            };
            let rerun = |ph: &[f64]| {
                let theta = pipe.encode(&col(ph));
                let x = solve(theta.as_slice());
                let loss = pipe.head(&col(&x), &theta);
                (x, loss)
            };
            check_pipeline(&run, &dir, blocks, fd_pipeline(&rerun, &phi0, FD_STEP))
        },
    );
}

/// `implicit_scalar_node` (θ as scalar `Var`s computed from other variables) with an argmin
/// inner problem (logistic regression, λ_k = 1.25 + ½ sin(a_k b + k)), in a pipeline whose
/// loss also uses θ and b directly: the same guarantees as `implicit_node`, with forward
/// mode seeded by `Seeds::vars`.
#[test]
fn implicit_scalar_node_in_a_pipeline_backpropagates_and_supports_forward_mode() {
    check(
        "implicit_scalar_node pipeline",
        64,
        sizes(),
        |(n, p, seed)| {
            let logistic = Logistic::random(n, p, seed);
            let mut rng = SplitMix::new(seed ^ 0x777);
            let inputs0 = rng.vec(p + 1, -1.0, 1.0);
            let dir = rng.vec(p + 1, -1.0, 1.0);
            let c = rng.vec(n, -1.0, 1.0);
            fn encode<S: Real>(inputs: &[S]) -> Vec<S> {
                let (a, b) = inputs.split_at(inputs.len() - 1);
                a.iter()
                    .enumerate()
                    .map(|(k, &ak)| (ak * b[0] + k as f64).sin() * 0.5 + 1.25)
                    .collect()
            }
            fn head<S: Real>(x: &[S], theta: &[S], b: S, c: &[f64]) -> S {
                let lin: S = x.iter().zip(c).map(|(&xi, &ci)| xi * ci).sum();
                let sq: S = x.iter().map(|&xi| xi.square()).sum();
                lin + sq * theta[0] + b * x[0]
            }

            let tape = Tape::new();
            let inputs = tape.vars(&inputs0);
            let theta = encode(&inputs);
            let solver = |t: &[f64]| logistic.solve(t);
            let problem = Argmin(Scalars(logistic.clone()));
            let (x, node) =
                implicit_scalar_node(problem, &theta, solver, IftOptions::default()).or_fail()?;
            let loss: Var = head(&x, &theta, inputs[p], &c);
            let adjoints = tape.gradient(loss).or_fail()?;
            let tangents = tape.forward(&Seeds::new().vars(&inputs, &dir)).or_fail()?;
            let run = PipelineRun {
                grad: adjoints.wrt_all(&inputs),
                x_bar: adjoints.wrt_all(&x),
                loss_dot: tangents.of(loss),
                x_dot: tangents.of_all(&x),
                theta_dot: tangents.of_all(&theta),
            };
            let x_star: Vec<f64> = x.iter().map(|v| v.value_f64()).collect();
            let theta_star: Vec<f64> = theta.iter().map(|v| v.value_f64()).collect();
            drop(tape);
            prop_assert_eq!(node.reports().len(), 2);

            let l = Scalars(logistic.clone());
            let blocks = Implicit::argmin_vec(&l, &x_star, &theta_star, IftOptions::default())
                .or_fail()?
                .blocks();
            let rerun = |ins: &[f64]| {
                let theta = encode(ins);
                let x = logistic.solve(&theta);
                let loss = head(&x, &theta, ins[p], &c);
                (x, loss)
            };
            check_pipeline(&run, &dir, blocks, fd_pipeline(&rerun, &inputs0, FD_STEP))
        },
    );
}
