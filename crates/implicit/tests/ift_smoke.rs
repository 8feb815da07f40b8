//! Smoke checks of the implicit function theorem on ridge regression, where everything has
//! a closed form: dθ*/dλ = −(XᵀX/n + λI)⁻¹ θ*.

use ad_core::{MatOps, Tape};
use implicit::linear::Method;
use implicit::{Argmin, IftOptions, Implicit, Objective, Root, RootCondition, implicit_node};
use nalgebra::{DMatrix, DVector};

struct Ridge {
    x: DMatrix<f64>,
    y: DMatrix<f64>,
}

impl Ridge {
    fn new(n: usize, d: usize) -> Ridge {
        let x = DMatrix::from_fn(n, d, |i, j| ((i * 7 + j * 3) as f64 * 0.37).sin());
        let y = DMatrix::from_fn(n, 1, |i, _| ((i as f64) * 0.9).cos());
        Ridge { x, y }
    }
    fn a(&self, lam: f64) -> DMatrix<f64> {
        let n = self.x.nrows() as f64;
        self.x.transpose() * &self.x / n + DMatrix::identity(self.x.ncols(), self.x.ncols()) * lam
    }
    fn solve(&self, lam: f64) -> Vec<f64> {
        let n = self.x.nrows() as f64;
        let b = self.x.transpose() * &self.y / n;
        self.a(lam)
            .cholesky()
            .unwrap()
            .solve(&b)
            .as_slice()
            .to_vec()
    }
}

impl Objective for Ridge {
    fn value<M: MatOps>(&self, w: &M, theta: &M) -> M::Scalar {
        let n = self.x.nrows() as f64;
        let r = w
            .constant_like(self.x.clone())
            .matmul(w)
            .sub(&w.constant_like(self.y.clone()));
        r.sq_norm() / (2.0 * n) + theta.get(0, 0) * w.sq_norm() * 0.5
    }
}

impl RootCondition for Ridge {
    fn residual<M: MatOps>(&self, w: &M, theta: &M) -> M {
        let n = self.x.nrows() as f64;
        let x = w.constant_like(self.x.clone());
        let r = x.matmul(w).sub(&w.constant_like(self.y.clone()));
        x.transpose()
            .matmul(&r)
            .scale_f64(1.0 / n)
            .add(&w.scale(theta.get(0, 0)))
    }
}

fn closed_form_dtheta(r: &Ridge, lam: f64) -> Vec<f64> {
    let w = DVector::from_vec(r.solve(lam));
    let d = r.a(lam).cholesky().unwrap().solve(&w);
    (-d).as_slice().to_vec()
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

#[test]
fn argmin_root_and_dense_agree_with_closed_form() {
    let r = Ridge::new(40, 6);
    let lam = 0.3;
    let w = r.solve(lam);
    let expect = closed_form_dtheta(&r, lam);
    for method in [
        Method::Auto,
        Method::Cg,
        Method::Minres,
        Method::Cholesky,
        Method::Lu,
    ] {
        let imp = Implicit::argmin(&r, &w, &[lam], IftOptions::default().method(method)).unwrap();
        let (dx, rep) = imp.jvp(&[1.0]).unwrap();
        assert!(
            max_rel(&dx, &expect) < 1e-8,
            "{method:?}: {dx:?} vs {expect:?}"
        );
        assert!(rep.linear.converged);
    }
    for method in [Method::Auto, Method::Gmres, Method::Lu, Method::Bicgstab] {
        let imp = Implicit::root(&r, &w, &[lam], IftOptions::default().method(method)).unwrap();
        let jac = imp.jacobian().unwrap();
        assert!(max_rel(jac.as_slice(), &expect) < 1e-8, "{method:?}");
    }
}

#[test]
fn unconverged_inner_solution_is_an_error() {
    let r = Ridge::new(40, 6);
    let mut w = r.solve(0.3);
    w[0] += 1e-3;
    let err = Implicit::argmin(&r, &w, &[0.3], IftOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(err, implicit::ImplicitError::NotAtSolution { .. }),
        "{err}"
    );
}

#[test]
fn node_backpropagates_and_supports_forward_mode() {
    let r = Ridge::new(30, 5);
    let lam = 0.2;
    let tape = Tape::new();
    let theta = tape.vector_var(&[lam]);
    let solver = |t: &[f64]| -> Result<Vec<f64>, std::convert::Infallible> { Ok(r.solve(t[0])) };
    let (w, node) = implicit_node(
        Argmin(Ridge::new(30, 5)),
        &theta,
        solver,
        IftOptions::default(),
    )
    .unwrap();
    let loss = w.sq_norm();
    let g = tape.gradient(loss).unwrap().wrt_mat(&theta)[0];
    let ws = r.solve(lam);
    let d = closed_form_dtheta(&r, lam);
    let expect: f64 = 2.0 * ws.iter().zip(&d).map(|(a, b)| a * b).sum::<f64>();
    assert!((g - expect).abs() < 1e-9 * expect.abs(), "{g} vs {expect}");
    assert_eq!(node.reports().len(), 1);
    // forward mode through the same node
    let t = tape
        .forward(&ad_core::Seeds::new().mat(&theta, DMatrix::from_element(1, 1, 1.0)))
        .unwrap();
    let dw = t.of_mat(&w);
    assert!(max_rel(dw.as_slice(), &d) < 1e-8);
    let _ = Root(Ridge::new(2, 2));
}
