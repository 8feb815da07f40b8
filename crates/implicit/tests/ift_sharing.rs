//! Data by reference, records made once, and what forward solvers may return.
//!
//! 1. A problem holding a dataset, shared through an `Arc` by two solver nodes: the
//!    problem type is not even `Clone`, both nodes hold the same allocation, and both give
//!    the gradients `Implicit` gives at the borrowed problem (`&T` works the same).
//! 2. Products per solve, measured by counting evaluations of the user's function: a root
//!    condition is evaluated once per `Implicit` however many products the solves make
//!    (every product replays that recording); an argmin objective once for ∇ₓL plus once
//!    per product (a second-order product records again: ad-core's tape replays
//!    first-order sweeps only), with Aᵀu and Bᵀu from one pass.
//! 3. Forward solvers return x* directly (`DMatrix<f64>`, `Vec<f64>`) or a `Result` with
//!    any error convertible into `ad_core::RuleError`.

mod ift_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ad_core::{MatOps, Tape};
use implicit::linear::Method;
use implicit::{
    Argmin, IftOptions, Implicit, ImplicitError, Objective, Root, RootCondition, implicit_node,
};
use nalgebra::DMatrix;

use ift_common::SplitMix;

/// Ridge regression on a (large) dataset, deliberately not `Clone`, counting evaluations.
struct Dataset {
    x: DMatrix<f64>,
    y: DMatrix<f64>,
    evaluations: AtomicUsize,
}

impl Dataset {
    fn new(m: usize, d: usize) -> Dataset {
        let mut rng = SplitMix::new(42);
        Dataset {
            x: rng.mat(m, d, -1.0, 1.0),
            y: rng.mat(m, 1, -1.0, 1.0),
            evaluations: AtomicUsize::new(0),
        }
    }
    /// w*(λ) = (XᵀX/m + λI)⁻¹ Xᵀy/m.
    fn solve(&self, lam: f64) -> Vec<f64> {
        let m = self.x.nrows() as f64;
        let d = self.x.ncols();
        let a = self.x.transpose() * &self.x / m + DMatrix::identity(d, d) * lam;
        let b = self.x.transpose() * &self.y / m;
        a.cholesky().unwrap().solve(&b).as_slice().to_vec()
    }
    fn count(&self) -> usize {
        self.evaluations.load(Ordering::Relaxed)
    }
}

impl Objective for Dataset {
    fn value<M: MatOps>(&self, w: &M, theta: &[M]) -> M::Scalar {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let r = w
            .constant_like(self.x.clone())
            .matmul(w)
            .sub(&w.constant_like(self.y.clone()));
        r.sq_norm() * (0.5 / self.x.nrows() as f64) + theta[0].get(0, 0) * w.sq_norm() * 0.5
    }
}

impl RootCondition for Dataset {
    fn residual<M: MatOps>(&self, w: &M, theta: &[M]) -> M {
        self.evaluations.fetch_add(1, Ordering::Relaxed);
        let x = w.constant_like(self.x.clone());
        let r = x.matmul(w).sub(&w.constant_like(self.y.clone()));
        x.transpose()
            .matmul(&r)
            .scale_f64(1.0 / self.x.nrows() as f64)
            .add(&w.scale(theta[0].get(0, 0)))
    }
}

fn column(v: &[f64]) -> DMatrix<f64> {
    DMatrix::from_column_slice(v.len(), 1, v)
}

/// Item 1: one `Arc`, two nodes, no copy of the data.
#[test]
fn an_arc_held_problem_serves_two_nodes_without_copying_its_data() {
    let data = Arc::new(Dataset::new(200, 8));
    let data_ptr = data.x.as_ptr();
    let (l1, l2) = (0.3, 0.7);
    let tape = Tape::new();
    let t1 = tape.vector_var(&[l1]);
    let t2 = tape.vector_var(&[l2]);
    let (w1, node1) = implicit_node(
        Argmin(Arc::clone(&data)),
        &[t1],
        |t: &[DMatrix<f64>]| data.solve(t[0][0]),
        IftOptions::default(),
    )
    .unwrap();
    let (w2, node2) = implicit_node(
        Root(Arc::clone(&data)),
        &[t2],
        |t: &[DMatrix<f64>]| data.solve(t[0][0]),
        IftOptions::default(),
    )
    .unwrap();
    // Both nodes hold the same allocation: three owners, one dataset.
    assert_eq!(Arc::strong_count(&data), 3);
    let loss = w1.sq_norm() + w2.sum();
    let g = tape.gradient(loss).unwrap();
    let (g1, g2) = (g.wrt_mat(&t1)[0], g.wrt_mat(&t2)[0]);
    let (w1v, w2v) = (w1.value(), w2.value());
    drop(g);
    drop(tape);
    assert_eq!(
        Arc::strong_count(&data),
        1,
        "the nodes released their share with the tape"
    );
    assert_eq!(data.x.as_ptr(), data_ptr);
    assert_eq!((node1.reports().len(), node2.reports().len()), (1, 1));
    // The same gradients from the borrowed problem (`&Dataset` implements the traits too).
    let by_ref: &Dataset = &data;
    let e1 = Implicit::argmin(&by_ref, &w1v, &[column(&[l1])], IftOptions::default()).unwrap();
    let x_bar: DMatrix<f64> = &w1v * 2.0;
    let expect1 = e1.vjp(&x_bar).unwrap().0[0][0];
    let e2 = Implicit::root(&by_ref, &w2v, &[column(&[l2])], IftOptions::default()).unwrap();
    let expect2 = e2.vjp(&DMatrix::from_element(8, 1, 1.0)).unwrap().0[0][0];
    assert!(
        (g1 - expect1).abs() <= 1e-12 * expect1.abs(),
        "{g1} vs {expect1}"
    );
    assert!(
        (g2 - expect2).abs() <= 1e-12 * expect2.abs(),
        "{g2} vs {expect2}"
    );
}

/// Item 2: evaluations of the user's function per `Implicit`, with the numbers printed
/// (`--nocapture`): a root condition and an objective are each recorded once, every
/// product (and the dense assembly) replays that recording.
#[test]
fn a_root_and_an_argmin_are_recorded_once() {
    let data = Dataset::new(60, 12);
    let lam = 0.05;
    let w = column(&data.solve(lam));
    let theta = [column(&[lam])];
    let x_bar = DMatrix::from_fn(12, 1, |i, _| (i as f64).sin());
    for method in [Method::Gmres, Method::Lu] {
        let before = data.count();
        let opts = IftOptions::default().method(method);
        let imp = Implicit::root(&data, &w, &theta, opts).unwrap();
        let (_, rv) = imp.vjp(&x_bar).unwrap();
        let (_, rj) = imp.jvp(&theta).unwrap();
        let jac = imp.jacobian().unwrap();
        assert_eq!(jac.shape(), (12, 1));
        let evaluations = data.count() - before;
        eprintln!(
            "root, {method}: {} products (vjp {}, jvp {}), {evaluations} evaluation(s) of F",
            imp.products(),
            rv.products,
            rj.products
        );
        assert_eq!(evaluations, 1, "F recorded once, every product replays it");
        assert!(imp.products() > 12, "the solves made many products");
    }
    for (estimate, dense) in [(true, false), (false, false), (true, true), (false, true)] {
        let before = data.count();
        let opts = IftOptions::default()
            .estimate_error(estimate)
            .dense_up_to(if dense { 256 } else { 0 });
        let imp = Implicit::argmin(&data, &w, &theta, opts).unwrap();
        let after_linearize = data.count() - before;
        let (_, rv) = imp.vjp(&x_bar).unwrap();
        let (_, rj) = imp.jvp(&theta).unwrap();
        let evaluations = data.count() - before;
        eprintln!(
            "argmin, dense {dense}, error estimate {estimate}: {} products (vjp {}, jvp {}), {evaluations} evaluation(s) of L",
            imp.products(),
            rv.products,
            rj.products
        );
        assert_eq!(after_linearize, 1, "L recorded once");
        assert_eq!(evaluations, 1, "every product replays the recording");
        if dense {
            // One batched sweep assembles A and Bᵀ; every later product is a matrix-vector
            // product with them.
            assert_eq!(imp.products(), 1);
            assert_eq!(rv.linear.as_ref().unwrap().method, Method::Cholesky);
        } else if !estimate {
            // The solve's products, then one for Bᵀw (reverse) or Bθ̇ (forward): the
            // reported residual comes from the solve's own report.
            assert_eq!(rv.products, rv.linear.as_ref().unwrap().matvecs + 1);
            assert_eq!(rj.products, rj.linear.as_ref().unwrap().matvecs + 1);
        }
    }
}

/// Item 2 through a solver node: recording it evaluates the problem once (the residual
/// check, in plain f64 for a root; ∇ₓL for an argmin); each backward pass then records
/// the problem once, and every product replays that recording.
#[test]
fn a_node_evaluates_its_problem_once_when_recorded_and_as_few_times_as_its_pass_needs() {
    let data = Arc::new(Dataset::new(40, 6));
    let lam = 0.1;
    for argmin in [true, false] {
        let start = data.count();
        let tape = Tape::new();
        let t = tape.vector_var(&[lam]);
        let solver = |_: &[DMatrix<f64>]| data.solve(lam);
        let (w, node) = if argmin {
            implicit_node(
                Argmin(Arc::clone(&data)),
                &[t],
                solver,
                IftOptions::default(),
            )
        } else {
            implicit_node(Root(Arc::clone(&data)), &[t], solver, IftOptions::default())
        }
        .unwrap();
        assert_eq!(
            data.count() - start,
            1,
            "one evaluation to check the residual"
        );
        let before = data.count();
        tape.gradient(w.sum()).unwrap();
        let report = node.last_report().unwrap();
        let evaluations = data.count() - before;
        eprintln!(
            "node, {}: backward {evaluations} evaluations, {} products",
            if argmin { "argmin" } else { "root" },
            report.products
        );
        assert_eq!(evaluations, 1);
        assert!(
            report.forward_residual == node.forward_residual && report.forward_residual < 1e-12
        );
    }
}

/// Item 3: what a forward solver may return.
#[test]
fn forward_solvers_return_a_matrix_a_vector_or_any_result() {
    let data = Arc::new(Dataset::new(30, 3));
    let tape = Tape::new();
    let t = tape.vector_var(&[0.2]);
    let sol = data.solve(0.2);
    let opts = IftOptions::default;
    let p = || Argmin(Arc::clone(&data));
    let (a, _) = implicit_node(p(), &[t], |_: &[DMatrix<f64>]| column(&sol), opts()).unwrap();
    let (b, _) = implicit_node(p(), &[t], |_: &[DMatrix<f64>]| sol.clone(), opts()).unwrap();
    let (c, _) = implicit_node(
        p(),
        &[t],
        |_: &[DMatrix<f64>]| Ok::<_, std::io::Error>(sol.clone()),
        opts(),
    )
    .unwrap();
    let (d, _) = implicit_node(
        p(),
        &[t],
        |_: &[DMatrix<f64>]| Ok::<_, &str>(column(&sol)),
        opts(),
    )
    .unwrap();
    for v in [a, b, c, d] {
        assert_eq!(v.value(), column(&sol));
    }
    let err = implicit_node(
        p(),
        &[t],
        |_: &[DMatrix<f64>]| Err::<Vec<f64>, _>(format!("stalled at {}", 7)),
        opts(),
    )
    .unwrap_err();
    match err {
        ImplicitError::ForwardSolver(e) => assert_eq!(e.to_string(), "stalled at 7"),
        other => panic!("expected ForwardSolver, got {other:?}"),
    }
    // A `Vec` for a declared matrix shape is read column-major.
    let (m, _) = implicit_node(
        p(),
        &[t],
        |_: &[DMatrix<f64>]| sol.clone(),
        opts().solution_shape(3, 1),
    )
    .unwrap();
    assert_eq!(m.shape(), (3, 1));
}
