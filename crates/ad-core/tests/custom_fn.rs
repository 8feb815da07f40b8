//! Custom functions work in every mode.
//!
//! Guarantees, for a nonlinear custom function of two blocks with two outputs
//! (`y = tanh(W x)`, `s = |x|^2`, rules written by hand) used inside ordinary generic code:
//! - `DMatrix<f64>` evaluates it, `DualMat<DMatrix<f64>>` (`jvp_mat`) applies its JVP rule,
//!   `MatVar` (`value_and_grad_mat`) records a node whose sweep applies its VJP rule; the
//!   gradient agrees with the same function written with built-in ops, with `jvp_mat` and
//!   with central differences;
//! - the tape's two sweeps through the recorded node pass the dot-product test;
//! - the scalar counterpart (`Real::custom`): `f64`, `Dual<f64>` (`jvp`) and `Var` (`grad`)
//!   agree with the built-in composition;
//! - second order through it (`hvp_mat`, `hvp`) is `AdError::CustomSecondOrder` naming the
//!   op and the input block, never a silent wrong product; data-only inputs (known-zero
//!   tangents) still work in second-order modes;
//! - the function's own failure is `AdError::CustomRule { rule: "eval" }`.
//!
//! Tolerances: mode agreement `1e-12` relative (same products summed in another order, a
//! few dozen terms of O(1)); central differences `1e-6` (see `tests/matrix_modes.rs`).

mod common;

use ad_core::{
    AdError, CustomFn, FnRule, MatFn, MatOps, Real, RuleError, ScalarFn, Seeds, Tape, VectorFn,
    grad, hvp, jvp, jvp_mat, value_and_grad_mat,
};
use common::{check_close, dotv, flatten, mat, norm2, shapes, unflatten};
use nalgebra::DMatrix;
use proptest::prelude::*;

const MODES_REL: f64 = 1e-12;
const FD_REL: f64 = 1e-6;

/// `(y, s) = (tanh(W x), |x|^2)` for blocks `W` (m x n) and `x` (n x 1).
struct TanhLayer {
    fail: bool,
}

#[derive(Debug)]
struct Refused;
impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused to evaluate")
    }
}
impl std::error::Error for Refused {}

impl CustomFn for TanhLayer {
    type Rule = FnRule;
    fn name(&self) -> &str {
        "tanh layer"
    }
    fn linearize(&self, inputs: &[DMatrix<f64>]) -> Result<(Vec<DMatrix<f64>>, FnRule), RuleError> {
        if self.fail {
            return Err(Box::new(Refused));
        }
        let (w, x) = (inputs[0].clone(), inputs[1].clone());
        let y = (&w * &x).map(f64::tanh);
        let s = DMatrix::from_element(1, 1, x.norm_squared());
        let d = y.map(|t| 1.0 - t * t); // tanh' at W x
        let (w2, x2, d2) = (w.clone(), x.clone(), d.clone());
        let rule = FnRule::new(
            "tanh layer",
            move |u: &[DMatrix<f64>]| {
                let g = u[0].component_mul(&d);
                Ok(vec![
                    &g * x.transpose(),
                    w.transpose() * &g + &x * (2.0 * u[1][0]),
                ])
            },
            move |v: &[DMatrix<f64>]| {
                let dy = (&v[0] * &x2 + &w2 * &v[1]).component_mul(&d2);
                Ok(vec![dy, DMatrix::from_element(1, 1, 2.0 * x2.dot(&v[1]))])
            },
        );
        Ok((vec![y, s], rule))
    }
}

/// A loss downstream of the layer, written once; `builtin` uses built-in ops instead.
struct Loss {
    builtin: bool,
    fail: bool,
}

impl MatFn for Loss {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        let (w, x) = (&p[0], &p[1]);
        let (y, s) = if self.builtin {
            (w.matmul(x).tanh(), x.sq_norm())
        } else {
            let out = M::custom(&TanhLayer { fail: self.fail }, &[w.clone(), x.clone()])
                .expect("the custom function works here");
            let s = out[1].get(0, 0);
            (out[0].clone(), s)
        };
        y.unary(ad_core::Unary::Sin).sum() + s * y.sq_norm()
    }
}

fn case() -> impl Strategy<Value = (Vec<DMatrix<f64>>, Vec<DMatrix<f64>>)> {
    (1usize..=7, 1usize..=7).prop_flat_map(|(m, n)| {
        (
            (mat(m, n, -1.0, 1.0), mat(n, 1, -1.0, 1.0)),
            (mat(m, n, -1.0, 1.0), mat(n, 1, -1.0, 1.0)),
        )
            .prop_map(|((w, x), (dw, dx))| (vec![w, x], vec![dw, dx]))
    })
}

proptest! {
    #![proptest_config(common::config(48))]

    #[test]
    fn every_mode_agrees_with_builtin_ops_and_finite_differences((p, v) in case()) {
        let (custom, builtin) = (Loss { builtin: false, fail: false }, Loss { builtin: true, fail: false });
        let fx = custom.eval(&p);
        check_close("value", &[fx], &[builtin.eval(&p)], MODES_REL, 1.0)?;
        let (y, g) = value_and_grad_mat(&custom, &p).unwrap();
        let (_, gb) = value_and_grad_mat(&builtin, &p).unwrap();
        let gf = flatten(&g);
        let gscale = 1.0f64.max(common::norm_inf(&gf));
        check_close("value MatVar", &[y], &[fx], MODES_REL, 1.0)?;
        check_close("gradient: custom vs builtin", &gf, &flatten(&gb), MODES_REL, gscale)?;
        let (yj, dy) = jvp_mat(&custom, &p, &v).unwrap();
        check_close("value DualMat", &[yj], &[fx], MODES_REL, 1.0)?;
        let vf = flatten(&v);
        check_close("jvp vs <g, v>", &[dy], &[dotv(&gf, &vf)], MODES_REL, gscale * norm2(&vf).max(1.0))?;
        // central differences of the plain evaluation
        let shp = shapes(&p);
        let x = flatten(&p);
        let mut xp = x.clone();
        let mut fd = Vec::new();
        for i in 0..x.len() {
            let h = common::step(x[i]);
            xp[i] = x[i] + h;
            let fp = custom.eval(&unflatten(&xp, &shp));
            xp[i] = x[i] - h;
            let fm = custom.eval(&unflatten(&xp, &shp));
            xp[i] = x[i];
            fd.push((fp - fm) / (2.0 * h));
        }
        check_close("gradient vs central differences", &gf, &fd, FD_REL, 1.0f64.max(fx.abs()).max(gscale))?;

        // the recorded node passes the dot-product test through the tape's own sweeps
        let tape = Tape::new();
        let (w, xv) = (tape.mat_var(p[0].clone()), tape.mat_var(p[1].clone()));
        let out = MatOps::custom(&TanhLayer { fail: false }, &[w, xv]).unwrap();
        let u = [out[0].value().map(|t| 0.3 - t), DMatrix::from_element(1, 1, 0.7)];
        let back = tape.backward(&Seeds::new().mat(&out[0], u[0].clone()).mat(&out[1], u[1].clone())).unwrap();
        let fwd = tape.forward(&Seeds::new().mat(&w, v[0].clone()).mat(&xv, v[1].clone())).unwrap();
        let lhs = dotv(&flatten(&[back.wrt_mat(&w), back.wrt_mat(&xv)]), &vf);
        let jv = flatten(&[fwd.of_mat(&out[0]), fwd.of_mat(&out[1])]);
        let rhs = dotv(&flatten(&u), &jv);
        let scale = norm2(&flatten(&[back.wrt_mat(&w), back.wrt_mat(&xv)])) * norm2(&vf) + norm2(&flatten(&u)) * norm2(&jv);
        prop_assert!((lhs - rhs).abs() <= MODES_REL * scale.max(1e-300), "{lhs} vs {rhs}");
    }
}

#[test]
fn second_order_through_a_custom_function_is_an_error() {
    let p = [
        DMatrix::from_element(2, 3, 0.3),
        DMatrix::from_element(3, 1, -0.2),
    ];
    let v = [
        DMatrix::from_element(2, 3, 1.0),
        DMatrix::from_element(3, 1, 1.0),
    ];
    // (`MatFn::eval` returns a scalar, not a `Result`, so inside `hvp_mat` the error
    // reaches user code, which decides: `Loss` unwraps it; here the op is called directly.)
    let tape = Tape::new();
    let w = ad_core::DualMat::new(tape.mat_var(p[0].clone()), tape.constant_mat(v[0].clone()));
    let x = ad_core::DualMat::new(tape.mat_var(p[1].clone()), tape.constant_mat(v[1].clone()));
    match MatOps::custom(&TanhLayer { fail: false }, &[w.clone(), x.clone()]) {
        Err(e @ AdError::CustomSecondOrder { .. }) => {
            let AdError::CustomSecondOrder { name, block } = &e else {
                unreachable!()
            };
            assert_eq!((name.as_str(), *block), ("tanh layer", 0));
            assert!(
                e.to_string().contains("cannot be differentiated twice"),
                "{e}"
            );
        }
        other => panic!(
            "expected CustomSecondOrder, got {:?}",
            other.map(|o| o.len())
        ),
    }
    // data-only inputs (known-zero tangents) work in the second-order mode: the outputs
    // are recorded and their tangents are zero
    let wd = w.shared(&std::sync::Arc::new(p[0].clone()));
    let xd = x.constant_like(p[1].clone());
    let out = MatOps::custom(&TanhLayer { fail: false }, &[wd, xd]).unwrap();
    assert!(out[0].eps.is_known_zero() && out[1].eps.is_known_zero());
    let expected = (&p[0] * &p[1]).map(f64::tanh);
    assert_eq!(out[0].re.value(), expected);
}

/// The scalar counterpart: `x -> (tanh(a . x), |x|^2)` with `a` fixed, as one block.
struct ScalarLayer;

impl CustomFn for ScalarLayer {
    type Rule = FnRule;
    fn name(&self) -> &str {
        "scalar layer"
    }
    fn linearize(&self, inputs: &[DMatrix<f64>]) -> Result<(Vec<DMatrix<f64>>, FnRule), RuleError> {
        let x = inputs[0].clone();
        let a = DMatrix::from_fn(x.len(), 1, |i, _| 0.5 + i as f64 * 0.25);
        let t = a.dot(&x).tanh();
        let out = DMatrix::from_column_slice(2, 1, &[t, x.norm_squared()]);
        let d = 1.0 - t * t;
        let (a2, x2) = (a.clone(), x.clone());
        let rule = FnRule::new(
            "scalar layer",
            move |u: &[DMatrix<f64>]| Ok(vec![&a * (d * u[0][0]) + &x * (2.0 * u[0][1])]),
            move |v: &[DMatrix<f64>]| {
                Ok(vec![DMatrix::from_column_slice(
                    2,
                    1,
                    &[d * a2.dot(&v[0]), 2.0 * x2.dot(&v[0])],
                )])
            },
        );
        Ok((vec![out], rule))
    }
}

struct ScalarLoss {
    builtin: bool,
}
impl ScalarFn for ScalarLoss {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let (t, s) = if self.builtin {
            let dot: S = x
                .iter()
                .enumerate()
                .map(|(i, &v)| v * (0.5 + i as f64 * 0.25))
                .sum();
            (dot.tanh(), x.iter().map(|&v| v * v).sum())
        } else {
            let out = S::custom(&ScalarLayer, x).expect("works in first-order modes");
            (out[0], out[1])
        };
        t.sin() * s + t
    }
}
impl VectorFn for ScalarLoss {
    fn eval<S: Real>(&self, x: &[S]) -> Vec<S> {
        vec![ScalarFn::eval(self, x)]
    }
}

proptest! {
    #![proptest_config(common::config(48))]

    #[test]
    fn scalar_modes_agree(x in proptest::collection::vec(-1.0f64..1.0, 1..6), v in proptest::collection::vec(-1.0f64..1.0, 6)) {
        let v = &v[..x.len()];
        let (c, b) = (ScalarLoss { builtin: false }, ScalarLoss { builtin: true });
        check_close("value", &[ScalarFn::eval(&c, &x)], &[ScalarFn::eval(&b, &x)], MODES_REL, 1.0)?;
        let (g, gb) = (grad(&c, &x).unwrap(), grad(&b, &x).unwrap());
        check_close("gradient", &g, &gb, MODES_REL, 1.0)?;
        let (_, dy) = jvp(&c, &x, v).unwrap();
        check_close("jvp", &dy, &[dotv(&gb, v)], MODES_REL, 1.0)?;
    }
}

#[test]
fn scalar_second_order_is_an_error_and_eval_failures_are_errors() {
    let tape = Tape::new();
    let x = tape.vars(&[0.2, -0.4]);
    let xs: Vec<ad_core::Dual<ad_core::Var>> = x
        .iter()
        .map(|&r| ad_core::Dual::new(r, ad_core::Var::constant(1.0)))
        .collect();
    assert!(matches!(
        Real::custom(&ScalarLayer, &xs),
        Err(AdError::CustomSecondOrder { ref name, block: 0 }) if name == "scalar layer"
    ));
    // the same through `hvp`'s own mode, with the builtin twin for contrast
    assert!(hvp(&ScalarLoss { builtin: true }, &[0.2, -0.4], &[1.0, 1.0]).is_ok());
    // zero tangents are fine in the second-order mode
    let zs: Vec<ad_core::Dual<ad_core::Var>> = x
        .iter()
        .map(|&r| ad_core::Dual::new(r, ad_core::Var::constant(0.0)))
        .collect();
    let out = Real::custom(&ScalarLayer, &zs).unwrap();
    assert!((out[1].re.value() - 0.2).abs() <= 1e-15); // |x|^2, rounded
    // the function's failure
    let p = [
        DMatrix::from_element(1, 1, 1.0),
        DMatrix::from_element(1, 1, 1.0),
    ];
    match <DMatrix<f64> as MatOps>::custom(&TanhLayer { fail: true }, &p) {
        Err(AdError::CustomRule { name, rule, source }) => {
            assert_eq!((name.as_str(), rule), ("tanh layer", "eval"));
            assert!(source.downcast_ref::<Refused>().is_some());
        }
        other => panic!("expected CustomRule, got {:?}", other.map(|o| o.len())),
    }
}
