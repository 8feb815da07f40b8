//! Errors: data and user rules that go wrong give typed errors carrying the numbers.
//!
//! Guarantees:
//! - non-finite inputs to every driver return `AdError::NonFinite` with the index and value;
//! - a custom rule that fails makes the sweep return `AdError::CustomRule` (never silent
//!   zeros), one returning wrong shapes `AdError::CustomShape`, one returning NaN or an
//!   infinity `AdError::CustomNonFinite`; the tape stays usable.

mod common;

use ad_core::{
    AdError, FnRule, MatFn, MatOps, Real, RuleError, ScalarFn, Seeds, Tape, VectorFn, custom_op,
    custom_scalar_op, grad, hessian, hvp, hvp_mat, jacobian, jacobian_forward, jacobian_reverse,
    jvp, jvp_mat, value_and_grad, value_and_grad_mat, vjp,
};
use nalgebra::DMatrix;

// ---------------------------------------------------------------------------------------
// Non-finite inputs to drivers
// ---------------------------------------------------------------------------------------

struct SumSq;
impl ScalarFn for SumSq {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        x.iter().map(|&a| a * a).sum()
    }
}
impl VectorFn for SumSq {
    fn eval<S: Real>(&self, x: &[S]) -> Vec<S> {
        x.iter().map(|&a| a.sin()).collect()
    }
}
impl MatFn for SumSq {
    fn eval<M: MatOps>(&self, p: &[M]) -> M::Scalar {
        p[0].sq_norm()
    }
}

/// `r` is `AdError::NonFinite` for `what` at `index` with `value` (NaN matches NaN), and
/// its message names them.
fn assert_non_finite<T: std::fmt::Debug>(
    r: Result<T, AdError>,
    what: &str,
    index: usize,
    value: f64,
) {
    match r {
        Err(e @ AdError::NonFinite { .. }) => {
            let AdError::NonFinite {
                what: w,
                index: i,
                value: v,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((*w, *i), (what, index), "{e}");
            assert!(
                v.to_bits() == value.to_bits() || (v.is_nan() && value.is_nan()),
                "{e}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains(&format!("entry {index} is {value}")) && msg.contains(what),
                "{msg}"
            );
        }
        other => panic!("expected NonFinite for {what}[{index}] = {value}, got {other:?}"),
    }
}

#[test]
fn non_finite_inputs_are_errors_with_index_and_value() {
    let nan = f64::NAN;
    let inf = f64::INFINITY;
    let ok = [1.0, 2.0, 3.0];
    let bad_x = [1.0, 2.0, nan];
    let bad_v = [0.0, -inf, 1.0];
    assert_non_finite(grad(&SumSq, &bad_x), "point x", 2, nan);
    assert_non_finite(value_and_grad(&SumSq, &[inf]), "point x", 0, inf);
    assert_non_finite(hessian(&SumSq, &bad_x), "point x", 2, nan);
    assert_non_finite(hvp(&SumSq, &bad_x, &ok), "point x", 2, nan);
    assert_non_finite(hvp(&SumSq, &ok, &bad_v), "direction v", 1, -inf);
    assert_non_finite(jvp(&SumSq, &bad_x, &ok), "point x", 2, nan);
    assert_non_finite(jvp(&SumSq, &ok, &bad_v), "direction v", 1, -inf);
    assert_non_finite(vjp(&SumSq, &bad_x, &ok), "point x", 2, nan);
    assert_non_finite(vjp(&SumSq, &ok, &bad_v), "cotangent u", 1, -inf);
    assert_non_finite(jacobian_forward(&SumSq, &bad_x), "point x", 2, nan);
    assert_non_finite(jacobian_reverse(&SumSq, &bad_x), "point x", 2, nan);
    assert_non_finite(jacobian(&SumSq, &bad_x), "point x", 2, nan);

    // matrix drivers: the index counts the blocks' entries one block after the other
    // (column-major), and parameters and directions are named apart
    let good = vec![
        DMatrix::from_element(2, 2, 1.0),
        DMatrix::from_element(3, 1, 1.0),
    ];
    let mut bad = good.clone();
    bad[1][(2, 0)] = inf; // 4 entries in block 0, then entry 2 of block 1
    assert_non_finite(
        value_and_grad_mat(&SumSq, &bad),
        "parameter matrices",
        6,
        inf,
    );
    assert_non_finite(jvp_mat(&SumSq, &bad, &good), "parameter matrices", 6, inf);
    assert_non_finite(jvp_mat(&SumSq, &good, &bad), "direction matrices", 6, inf);
    assert_non_finite(hvp_mat(&SumSq, &bad, &good), "parameter matrices", 6, inf);
    assert_non_finite(hvp_mat(&SumSq, &good, &bad), "direction matrices", 6, inf);
    bad[0][(1, 1)] = nan; // column-major index 3 comes first
    assert_non_finite(hvp_mat(&SumSq, &good, &bad), "direction matrices", 3, nan);

    // and finite inputs work
    assert_eq!(grad(&SumSq, &ok).unwrap(), vec![2.0, 4.0, 6.0]);
}

/// A direction, cotangent or list of direction blocks of the wrong length is
/// `AdError::Length` naming it, with both counts (not a panic, not a truncated product).
#[test]
fn wrong_lengths_are_errors_with_both_counts() {
    fn assert_length<T: std::fmt::Debug>(
        r: Result<T, AdError>,
        what: &str,
        expected: usize,
        got: usize,
    ) {
        match r {
            Err(AdError::Length {
                what: w,
                expected: e,
                got: g,
            }) => {
                assert_eq!((w, e, g), (what, expected, got));
            }
            other => panic!("expected Length for {what}, got {other:?}"),
        }
    }
    let x = [1.0, 2.0, 3.0];
    assert_length(hvp(&SumSq, &x, &[1.0, 2.0]), "direction v", 3, 2);
    assert_length(jvp(&SumSq, &x, &[1.0; 4]), "direction v", 3, 4);
    // SumSq as a vector function has 3 outputs.
    assert_length(vjp(&SumSq, &x, &[1.0]), "cotangent u", 3, 1);
    let params = vec![
        DMatrix::from_element(2, 2, 1.0),
        DMatrix::from_element(3, 1, 1.0),
    ];
    let one = vec![DMatrix::from_element(2, 2, 1.0)];
    assert_length(jvp_mat(&SumSq, &params, &one), "direction blocks", 2, 1);
    assert_length(hvp_mat(&SumSq, &params, &one), "direction blocks", 2, 1);
}

// ---------------------------------------------------------------------------------------
// Custom-rule errors
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct NotConverged {
    residual: f64,
}
impl std::fmt::Display for NotConverged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "linear solve did not converge (residual {:e})",
            self.residual
        )
    }
}
impl std::error::Error for NotConverged {}

fn failing(residual: f64) -> impl Fn(&[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
    move |_| Err(Box::new(NotConverged { residual }))
}

fn identity(u: &[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
    Ok(u.to_vec())
}

#[test]
fn failing_vjp_is_an_error_not_a_zero_gradient() {
    let tape = Tape::new();
    let x = tape.var(0.5);
    let w = tape.mat_var(DMatrix::from_element(2, 1, 0.5));
    let y = custom_scalar_op(
        FnRule::new("solver", failing(1e-3), identity),
        &[x],
        &[0.25],
    )[0];
    let m = custom_op(
        FnRule::new("matrix solver", failing(2e-3), identity),
        &[w],
        vec![DMatrix::zeros(2, 1)],
    )[0];
    let z = x * 2.0; // does not depend on the failing ops

    // scalar custom op
    match tape.gradient(y * y + z) {
        Err(e @ AdError::CustomRule { .. }) => {
            let AdError::CustomRule { name, rule, source } = &e else {
                unreachable!()
            };
            assert_eq!((name.as_str(), *rule), ("solver", "vjp"));
            assert!(
                source
                    .downcast_ref::<NotConverged>()
                    .is_some_and(|s| s.residual == 1e-3)
            );
            let msg = e.to_string();
            assert!(
                msg.contains(
                    "custom op `solver` failed in its vjp rule: \
                     linear solve did not converge (residual 1e-3)"
                ),
                "{msg}",
            );
        }
        other => panic!("expected CustomRule, got {other:?}"),
    }
    // matrix custom op, reached through other matrix ops
    let loss = m.tanh().sum() + z;
    assert!(matches!(
        tape.gradient(loss),
        Err(AdError::CustomRule { rule: "vjp", ref name, .. }) if name == "matrix solver",
    ));
    // the forward sweep calls the JVP, which works here
    let t = tape.forward(&Seeds::new().var(x, 1.0)).unwrap();
    assert_eq!(t.of(y), 1.0);

    // the tape survives the failed sweeps: gradients that do not need the rule work
    assert_eq!(tape.gradient(z).unwrap().wrt(x), 2.0);
    let z2 = z * x;
    assert_eq!(tape.gradient(z2).unwrap().wrt(x), 2.0);
}

#[test]
fn failing_jvp_is_an_error() {
    let tape = Tape::new();
    let x = tape.var(0.5);
    let y = custom_scalar_op(FnRule::new("solver", identity, failing(0.1)), &[x], &[0.25])[0];
    let r = tape.forward(&Seeds::new().var(x, 1.0));
    assert!(
        matches!(r, Err(AdError::CustomRule { rule: "jvp", ref name, .. }) if name == "solver"),
        "{r:?}"
    );
    assert_eq!(tape.gradient(y).unwrap().wrt(x), 1.0);
}

#[test]
fn rules_returning_wrong_shapes_are_errors() {
    let tape = Tape::new();
    let a = tape.mat_var(DMatrix::from_element(2, 3, 1.0));
    let b = tape.mat_var(DMatrix::from_element(1, 1, 1.0));
    let wrong_shape = |_: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> {
        Ok(vec![DMatrix::zeros(3, 2), DMatrix::zeros(1, 1)])
    };
    let too_few = |_: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> {
        Ok(vec![DMatrix::zeros(2, 3)])
    };
    let y = custom_op(
        FnRule::new("shapes", wrong_shape, too_few),
        &[a, b],
        vec![DMatrix::zeros(4, 1)],
    )[0];
    match tape.gradient(y.sum()) {
        Err(e @ AdError::CustomShape { .. }) => {
            let AdError::CustomShape {
                name,
                rule,
                expected,
                got,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!((name.as_str(), *rule), ("shapes", "vjp"));
            assert_eq!(expected, &vec![(2, 3), (1, 1)]);
            assert_eq!(got, &vec![(3, 2), (1, 1)]);
            assert!(
                e.to_string()
                    .contains("[(3, 2), (1, 1)], expected [(2, 3), (1, 1)]"),
                "{e}"
            );
        }
        other => panic!("expected CustomShape, got {other:?}"),
    }
    match tape.forward(&Seeds::new().mat(&a, DMatrix::zeros(2, 3))) {
        Err(AdError::CustomShape {
            rule: "jvp",
            expected,
            got,
            ..
        }) => {
            assert_eq!(expected, vec![(4, 1)]);
            assert_eq!(got, vec![(2, 3)]);
        }
        other => panic!("expected CustomShape, got {other:?}"),
    }
    // scalar ops: the rule sees n x 1 blocks
    let x = tape.vars(&[1.0, 2.0]);
    let short = |_: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> {
        Ok(vec![DMatrix::zeros(1, 1)])
    };
    let s = custom_scalar_op(FnRule::new("short", short, short), &x, &[0.0, 0.0, 0.0]);
    assert!(matches!(
        tape.gradient(s[2]),
        Err(AdError::CustomShape { rule: "vjp", ref expected, .. })
            if expected == &vec![(2, 1)],
    ));
    assert!(matches!(
        tape.forward(&Seeds::new().var(x[0], 1.0)),
        Err(AdError::CustomShape { .. })
    ));
}

/// A rule returning `bad` at entry 3 of its second block.
fn poisoned(bad: f64) -> impl Fn(&[DMatrix<f64>]) -> Result<Vec<DMatrix<f64>>, RuleError> {
    move |_| {
        let mut second = DMatrix::from_element(2, 3, 1.0);
        second[3] = bad;
        Ok(vec![DMatrix::from_element(2, 1, 1.0), second])
    }
}

#[test]
fn non_finite_rule_outputs_are_errors_naming_op_rule_entry_and_value() {
    let tape = Tape::new();
    let a = tape.mat_var(DMatrix::from_element(2, 1, 1.0));
    let b = tape.mat_var(DMatrix::from_element(2, 3, 1.0));
    let ok = |_: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> {
        Ok(vec![DMatrix::zeros(2, 1), DMatrix::zeros(2, 3)])
    };
    let y = custom_op(
        FnRule::new("nan in vjp", poisoned(f64::NAN), ok),
        &[a, b],
        vec![DMatrix::zeros(2, 1), DMatrix::zeros(2, 3)],
    );
    // reverse: a NaN input adjoint is an error, never a NaN gradient
    let loss = y[0].sum() + y[1].sum();
    match tape.gradient(loss) {
        Err(e @ AdError::CustomNonFinite { .. }) => {
            let AdError::CustomNonFinite {
                name,
                rule,
                block,
                index,
                value,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(
                (name.as_str(), *rule, *block, *index),
                ("nan in vjp", "vjp", 1, 3)
            );
            assert!(value.is_nan());
            assert!(
                e.to_string().contains(
                    "custom op `nan in vjp`: its vjp rule returned a non-finite value: \
                     block 1, entry 3 is NaN"
                ),
                "{e}"
            );
        }
        other => panic!("expected CustomNonFinite, got {other:?}"),
    }
    // the JVP of this op is fine
    let t = tape
        .forward(&Seeds::new().mat(&a, DMatrix::from_element(2, 1, 1.0)))
        .unwrap();
    assert_eq!(t.of_mat(&y[1]), DMatrix::zeros(2, 3));

    // forward: an infinite output tangent
    let z = custom_op(
        FnRule::new("inf in jvp", ok, poisoned(f64::NEG_INFINITY)),
        &[a, b],
        vec![DMatrix::zeros(2, 1), DMatrix::zeros(2, 3)],
    );
    match tape.forward(&Seeds::new().mat(&b, DMatrix::from_element(2, 3, 1.0))) {
        Err(AdError::CustomNonFinite {
            name,
            rule,
            block,
            index,
            value,
        }) => {
            assert_eq!(
                (name.as_str(), rule, block, index),
                ("inf in jvp", "jvp", 1, 3)
            );
            assert_eq!(value, f64::NEG_INFINITY);
        }
        other => panic!("expected CustomNonFinite, got {other:?}"),
    }
    // scalar custom ops are checked the same way
    let x = tape.var(1.0);
    let nan_vjp = |_: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> {
        Ok(vec![DMatrix::from_element(1, 1, f64::INFINITY)])
    };
    let s = custom_scalar_op(FnRule::new("scalar", nan_vjp, identity), &[x], &[2.0])[0];
    assert!(matches!(
        tape.gradient(s * s),
        Err(AdError::CustomNonFinite { rule: "vjp", block: 0, index: 0, value, .. })
            if value == f64::INFINITY
    ));
    // the tape stays usable, and gradients that avoid the ops work
    assert_eq!(tape.gradient(x * 3.0).unwrap().wrt(x), 3.0);
    drop(z);
}

/// `all_finite` over more than one eight-lane chunk: true for finite data of any size and
/// sign (zeros and large values included), false for a NaN or an infinity in a chunk or in
/// the tail; `check_finite` names the first bad entry.
#[test]
fn all_finite_checks_every_chunk_and_the_tail() {
    for n in [8, 9, 16, 23, 64] {
        let xs: Vec<f64> = (0..n).map(|i| (i as f64 - 5.0) * 1e300).collect();
        assert!(ad_core::all_finite(&xs), "n = {n}");
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, 7, n - 1] {
                let mut ys = xs.clone();
                ys[at] = bad;
                assert!(!ad_core::all_finite(&ys), "n = {n}, {bad} at {at}");
                assert!(matches!(
                    ad_core::check_finite("xs", &ys),
                    Err(AdError::NonFinite { index, .. }) if index == at
                ));
            }
        }
    }
}
