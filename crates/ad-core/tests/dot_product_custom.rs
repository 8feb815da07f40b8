//! The dot-product test for custom ops: `<vjp(u), v> == <u, jvp(v)>`.
//!
//! Guarantees: for custom ops (`custom_op`, `custom_scalar_op` with `FnRule`) — a random
//! linear map `y = A x`, a nonlinear op with two inputs and two outputs, a scalar op with a
//! constant input, and custom ops inside a larger graph — the tape's reverse and forward
//! sweeps are adjoint, and the tape gives the same gradient as the equivalent built-in
//! composition; the check has teeth: a rule whose JVP is not the adjoint of its VJP fails.
//!
//! Tolerance: `DOT_REL`, justified in `tests/dot_product.rs`.

mod common;

use ad_core::{
    AdError, Dual, DualMat, FnRule, MatOps, MatVar, Real, RuleError, Seeds, Tape, Var, custom_op,
    custom_scalar_op,
};
use common::dot::{DOT_REL, Io, check_dot, sweep};
use common::{check_close, dim, mat};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------
// Custom ops
// ---------------------------------------------------------------------------------------

/// `y = A x` as a custom op: VJP `A^T u`, JVP `A v` (or, if `jvp_factor != 1`, a JVP that
/// is deliberately not the adjoint of the VJP).
fn linear_rule(a: &DMatrix<f64>, jvp_factor: f64) -> FnRule {
    let (a1, a2) = (a.clone(), a.clone());
    FnRule::new(
        "linear",
        move |u: &[DMatrix<f64>]| Ok(vec![a1.transpose() * &u[0]]),
        move |v: &[DMatrix<f64>]| Ok(vec![&a2 * &v[0] * jvp_factor]),
    )
}

fn linear_case() -> impl Strategy<Value = [DMatrix<f64>; 4]> {
    (dim(), dim(), dim()).prop_flat_map(|(r, n, c)| {
        (
            mat(r, n, -2.0, 2.0),
            mat(n, c, -2.0, 2.0),
            mat(r, c, -1.0, 1.0),
            mat(n, c, -1.0, 1.0),
        )
            .prop_map(|(a, x, u, v)| [a, x, u, v])
    })
}

fn linear_custom_op(
    [a, x, u, v]: &[DMatrix<f64>; 4],
    jvp_factor: f64,
    what: &str,
) -> Result<(), TestCaseError> {
    let tape = Tape::new();
    let xv = tape.mat_var(x.clone());
    let y = custom_op(linear_rule(a, jvp_factor), &[xv], vec![a * x])[0];
    let io = Io {
        in_mats: vec![(xv, v.clone())],
        out_mats: vec![(y, u.clone())],
        ..Io::default()
    };
    let s = sweep(&tape, &io).unwrap();
    check_dot(what, &io, &s)?;
    let scale = 1.0f64.max(common::norm_inf(s.in_adj_mats[0].as_slice()));
    check_close(
        &format!("{what}: vjp = A^T u"),
        s.in_adj_mats[0].as_slice(),
        (a.transpose() * u).as_slice(),
        DOT_REL,
        scale,
    )
}

/// Inputs `X` (m x n) and `s` (1 x 1); outputs `Y1 = s sin(X)` and `Y2 = [|X|^2]` (1 x 1).
fn nonlinear_rule(x: &DMatrix<f64>, s: f64) -> FnRule {
    let (x1, x2) = (x.clone(), x.clone());
    FnRule::new(
        "sin-and-norm",
        move |u: &[DMatrix<f64>]| {
            let xbar = u[0].component_mul(&x1.map(f64::cos)) * s + &x1 * (2.0 * u[1][(0, 0)]);
            let sbar = u[0].dot(&x1.map(f64::sin));
            Ok(vec![xbar, DMatrix::from_element(1, 1, sbar)])
        },
        move |v: &[DMatrix<f64>]| {
            let y1 = v[0].component_mul(&x2.map(f64::cos)) * s + x2.map(f64::sin) * v[1][(0, 0)];
            let y2 = 2.0 * x2.dot(&v[0]);
            Ok(vec![y1, DMatrix::from_element(1, 1, y2)])
        },
    )
}

proptest! {
    #![proptest_config(common::config(64))]

    /// `y = A x` through `custom_op`: adjoint rules, and the expected VJP.
    #[test]
    fn custom_linear_op(case in linear_case()) {
        linear_custom_op(&case, 1.0, "custom linear op")?;
    }

    /// A rule whose JVP is not the adjoint of its VJP fails the dot-product check.
    #[test]
    fn dot_product_check_catches_an_inconsistent_rule(case in linear_case()) {
        // the bad JVP changes <u, jvp(v)> by 1e-3 of itself: visible unless it is ~0
        let [a, _, u, v] = &case;
        let av = a * v;
        prop_assume!(u.dot(&av).abs() > 1e-6 * u.norm() * av.norm());
        let s = linear_custom_op(&case, 1.001, "inconsistent rule (must fail)");
        prop_assert!(s.is_err(), "a JVP off by a factor 1.001 passed the dot-product check");
    }

    /// Two inputs, two outputs, nonlinear; and the same gradient as the built-in ops.
    #[test]
    fn custom_nonlinear_op(
        (x, v, u1, w) in (dim(), dim()).prop_flat_map(|(m, n)| {
            (mat(m, n, -2.0, 2.0), mat(m, n, -1.0, 1.0), mat(m, n, -1.0, 1.0), mat(m, n, -1.0, 1.0))
        }),
        s in -2.0f64..2.0,
        ds in -1.0f64..1.0,
        u2 in -1.0f64..1.0,
    ) {
        let tape = Tape::new();
        let (xv, sv) = (tape.mat_var(x.clone()), tape.mat_var(DMatrix::from_element(1, 1, s)));
        let outs = custom_op(
            nonlinear_rule(&x, s),
            &[xv, sv],
            vec![x.map(f64::sin) * s, DMatrix::from_element(1, 1, x.norm_squared())],
        );
        let io = Io {
            in_mats: vec![(xv, v.clone()), (sv, DMatrix::from_element(1, 1, ds))],
            out_mats: vec![(outs[0], u1.clone()), (outs[1], DMatrix::from_element(1, 1, u2))],
            ..Io::default()
        };
        let sw = sweep(&tape, &io).unwrap();
        check_dot("custom nonlinear op", &io, &sw)?;

        // a downstream loss through the custom op vs through the equivalent built-in ops
        let loss = |y1: &MatVar, y2: Var| {
            y1.tanh().dot(&y1.constant_like(w.clone())) + y2 * y2 * 0.1
        };
        let l_custom = loss(&outs[0], outs[1].get(0, 0));
        let l_builtin = loss(&xv.unary(ad_core::Unary::Sin).scale(sv.get(0, 0)), xv.sq_norm());
        check_close(
            "custom vs built-in: value",
            &[l_custom.value()],
            &[l_builtin.value()],
            DOT_REL,
            1.0,
        )?;
        let gc = tape.gradient(l_custom).unwrap();
        let gb = tape.gradient(l_builtin).unwrap();
        for (k, p) in [xv, sv].iter().enumerate() {
            let (a, b) = (gc.wrt_mat(p), gb.wrt_mat(p));
            let scale = 1.0f64.max(common::norm_inf(b.as_slice()));
            check_close(
                &format!("custom vs built-in: gradient of input {k}"),
                a.as_slice(),
                b.as_slice(),
                DOT_REL,
                scale,
            )?;
        }
    }

    /// `custom_scalar_op`: polar to Cartesian with a constant third input,
    /// `(r, t, c) -> (r cos t, r sin t + c)`.
    #[test]
    fn custom_scalar_op_polar(
        r in 0.1f64..3.0,
        t in -3.0f64..3.0,
        c in -1.0f64..1.0,
        v in [-1.0f64..1.0, -1.0f64..1.0],
        u in [-1.0f64..1.0, -1.0f64..1.0],
    ) {
        let tape = Tape::new();
        let (rv, tv) = (tape.var(r), tape.var(t));
        let (ct, st) = (t.cos(), t.sin());
        let rule = FnRule::new(
            "polar",
            move |ub: &[DMatrix<f64>]| {
                let (a, b) = (ub[0][0], ub[0][1]);
                let col = [a * ct + b * st, -a * r * st + b * r * ct, b];
                Ok(vec![DMatrix::from_column_slice(3, 1, &col)])
            },
            move |vd: &[DMatrix<f64>]| {
                let (dr, dt, dc) = (vd[0][0], vd[0][1], vd[0][2]);
                let col = [dr * ct - r * st * dt, dr * st + r * ct * dt + dc];
                Ok(vec![DMatrix::from_column_slice(2, 1, &col)])
            },
        );
        let out = custom_scalar_op(rule, &[rv, tv, Var::constant(c)], &[r * ct, r * st + c]);
        let io = Io {
            in_vars: vec![(rv, v[0]), (tv, v[1])],
            out_vars: vec![(out[0], u[0]), (out[1], u[1])],
            ..Io::default()
        };
        let sw = sweep(&tape, &io).unwrap();
        check_dot("custom scalar op", &io, &sw)?;
        // the JVP equals forward mode of the formula
        let (rd, td) = (Dual::new(r, v[0]), Dual::new(t, v[1]));
        let expected = [(rd * td.cos()).eps, (rd * td.sin() + c).eps];
        check_close(
            "custom scalar op: tape forward vs Dual",
            &sw.out_tan_vars,
            &expected,
            DOT_REL,
            1.0,
        )?;
    }

    /// Custom ops inside a larger graph of built-in matrix and scalar ops:
    /// `Z = W X`, `Y = A Z` (custom), `(p, q) = polar(Y[0,0], sum(Y) / 10)` (custom scalar),
    /// outputs `tanh(Y)` and `p * q`.
    #[test]
    fn custom_ops_in_a_graph(
        ([a, x, u, v], w) in linear_case().prop_flat_map(|c| {
            let (n, _) = c[1].shape();
            (Just(c), mat(n, n, -1.0, 1.0))
        }),
        uq in -1.0f64..1.0,
    ) {
        let tape = Tape::new();
        let (xv, wv) = (tape.mat_var(x.clone()), tape.mat_var(w.clone()));
        let z = wv.matmul(&xv);
        let zval = z.value();
        let y = custom_op(linear_rule(&a, 1.0), &[z], vec![&a * &zval])[0];
        let (r, t) = (y.get(0, 0), y.sum() * 0.1);
        let (ct, st, rr) = (t.value().cos(), t.value().sin(), r.value());
        let rule = FnRule::new(
            "polar",
            move |ub: &[DMatrix<f64>]| {
                let (p, q) = (ub[0][0], ub[0][1]);
                let col = [p * ct + q * st, -p * rr * st + q * rr * ct];
                Ok(vec![DMatrix::from_column_slice(2, 1, &col)])
            },
            move |vd: &[DMatrix<f64>]| {
                let (dr, dt) = (vd[0][0], vd[0][1]);
                let col = [dr * ct - rr * st * dt, dr * st + rr * ct * dt];
                Ok(vec![DMatrix::from_column_slice(2, 1, &col)])
            },
        );
        let pq = custom_scalar_op(rule, &[r, t], &[rr * ct, rr * st]);
        let out = pq[0] * pq[1];
        let th = y.tanh();
        let vw = DMatrix::from_fn(w.nrows(), w.ncols(), |i, j| ((i + 2 * j) as f64).sin());
        let io = Io {
            in_mats: vec![(xv, v.clone()), (wv, vw.clone())],
            out_mats: vec![(th, u.clone())],
            out_vars: vec![(out, uq)],
            ..Io::default()
        };
        let sw = sweep(&tape, &io).unwrap();
        check_dot("custom ops in a graph", &io, &sw)?;

        // forward mode of the same graph with built-in ops only
        let xd = DualMat::new(x.clone(), v.clone());
        let wd = DualMat::new(w.clone(), vw);
        let ad = xd.constant_like(a.clone());
        let yd = ad.matmul(&wd.matmul(&xd));
        let (rd, td) = (yd.get(0, 0), yd.sum() * 0.1);
        let outd = (rd * td.cos()) * (rd * td.sin());
        check_close(
            "graph: tanh(Y) tangent",
            sw.out_tan_mats[0].as_slice(),
            yd.tanh().eps.as_slice(),
            DOT_REL,
            1.0,
        )?;
        check_close(
            "graph: p q tangent",
            &sw.out_tan_vars,
            &[outd.eps],
            DOT_REL,
            1.0f64.max(outd.eps.abs()),
        )?;
    }
}

/// A rule error during the sweeps of the dot-product test is reported, not swallowed.
#[test]
fn failing_rule_fails_both_sweeps() {
    let tape = Tape::new();
    let x = tape.mat_var(DMatrix::from_element(2, 2, 1.0));
    let fail = |_: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> { Err("no".into()) };
    let y = custom_op(
        FnRule::new("fails", fail, fail),
        &[x],
        vec![DMatrix::zeros(2, 2)],
    )[0];
    let io = Io {
        in_mats: vec![(x, DMatrix::from_element(2, 2, 1.0))],
        out_mats: vec![(y, DMatrix::from_element(2, 2, 1.0))],
        ..Io::default()
    };
    assert!(matches!(
        sweep(&tape, &io),
        Err(AdError::CustomRule { rule: "vjp", .. })
    ));
    let t = tape.forward(&Seeds::new().mat(&x, DMatrix::from_element(2, 2, 1.0)));
    assert!(matches!(t, Err(AdError::CustomRule { rule: "jvp", .. })));
}
