//! Misuse panics with a message saying what happened.
//!
//! Guarantees:
//! - misuse of a `Var`/`MatVar` panics with a message saying what happened: use after its
//!   tape was dropped, an outer-scope variable inside an inner scope, variables of two
//!   different tapes mixed, seeds or derivatives asked across tapes, recording on a tape
//!   or sweeping it from inside its own sweep;
//! - shape mismatches panic with both shapes, in every matrix mode.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use ad_core::{
    DualMat, FnRule, MatOps, MatVar, Real, RuleError, Seeds, Tape, Var, custom_op, custom_scalar_op,
};
use nalgebra::DMatrix;

// ---------------------------------------------------------------------------------------
// Misuse: clear panics
// ---------------------------------------------------------------------------------------

#[test]
#[should_panic(expected = "was used, but no tape is active: its `Tape` scope has ended")]
fn var_used_after_its_tape_was_dropped() {
    let x = {
        let tape = Tape::new();
        tape.var(1.0)
    };
    let _ = x * x;
}

#[test]
#[should_panic(expected = "was used, but that tape's scope has ended (the active tape is #")]
fn var_used_after_its_tape_was_dropped_while_another_is_active() {
    let x = {
        let tape = Tape::new();
        tape.var(1.0)
    };
    // the new tape may reuse the dropped tape's buffers: the stale index must not read them
    let tape = Tape::new();
    let y = tape.var(2.0);
    let _ = y + x.sin();
}

#[test]
#[should_panic(expected = "(an outer scope) was used while the inner tape")]
fn outer_var_inside_an_inner_scope() {
    let outer = Tape::new();
    let x = outer.var(1.0);
    let _inner = Tape::new();
    let _ = x.exp();
}

#[test]
#[should_panic(expected = "(an outer scope) was used while the inner tape")]
fn vars_of_two_live_tapes_mixed() {
    let outer = Tape::new();
    let x = outer.var(1.0);
    let inner = Tape::new();
    let y = inner.var(2.0);
    let _ = y * x; // the inner variable first: the message still names the outer one
}

#[test]
#[should_panic(expected = "(an outer scope) was used while the inner tape")]
fn vars_of_two_live_tapes_mixed_outer_first() {
    let outer = Tape::new();
    let x = outer.var(1.0);
    let inner = Tape::new();
    let y = inner.var(2.0);
    let _ = x - y;
}

#[test]
#[should_panic(expected = "that tape's scope has ended")]
fn var_of_a_dropped_tape_mixed_with_a_live_one() {
    let outer = Tape::new();
    let a = outer.var(1.0);
    let stale = {
        let t = Tape::new();
        t.var(3.0)
    };
    let _ = a + stale;
}

#[test]
#[should_panic(expected = "(an outer scope) was used while the inner tape")]
fn outer_mat_var_inside_an_inner_scope() {
    let outer = Tape::new();
    let m = outer.mat_var(DMatrix::from_element(2, 2, 1.0));
    let inner = Tape::new();
    let k = inner.mat_var(DMatrix::from_element(2, 2, 1.0));
    let _ = k.matmul(&m);
}

#[test]
#[should_panic(expected = "its `Tape` scope has ended")]
fn mat_var_used_after_its_tape_was_dropped() {
    let m = {
        let tape = Tape::new();
        tape.mat_var(DMatrix::from_element(2, 2, 1.0))
    };
    let _ = m.tanh();
}

#[test]
#[should_panic(expected = "(an outer scope) was used while the inner tape")]
fn matrix_scaled_by_an_outer_var() {
    let outer = Tape::new();
    let s = outer.var(2.0);
    let inner = Tape::new();
    let m = inner.mat_var(DMatrix::from_element(2, 2, 1.0));
    let _ = m.scale(s);
}

#[test]
#[should_panic(expected = "(an outer scope) was used while the inner tape")]
fn matrix_from_outer_scalars() {
    let outer = Tape::new();
    let s = outer.var(2.0);
    let inner = Tape::new();
    let m = inner.mat_var(DMatrix::from_element(1, 1, 1.0));
    let _ = m.from_scalars_like(1, 2, &[Var::constant(1.0), s]);
}

#[test]
#[should_panic(expected = "(an outer scope) was used while the inner tape")]
fn custom_op_on_outer_inputs() {
    let outer = Tape::new();
    let m = outer.mat_var(DMatrix::from_element(2, 1, 1.0));
    let _inner = Tape::new();
    let id = |u: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> { Ok(u.to_vec()) };
    let _ = custom_op(FnRule::new("id", id, id), &[m], vec![DMatrix::zeros(2, 1)]);
}

#[test]
#[should_panic(expected = "(an outer scope) was used while the inner tape")]
fn custom_scalar_op_mixing_tapes() {
    let outer = Tape::new();
    let a = outer.var(1.0);
    let inner = Tape::new();
    let b = inner.var(1.0);
    let id = |u: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> { Ok(u.to_vec()) };
    let _ = custom_scalar_op(FnRule::new("id", id, id), &[b, a], &[0.0, 0.0]);
}

#[test]
#[should_panic(expected = "a seed belongs to tape #")]
fn gradient_of_another_tapes_output() {
    let outer = Tape::new();
    let x = outer.var(1.0);
    let y = x * x;
    let inner = Tape::new();
    let _ = inner.gradient(y);
}

#[test]
#[should_panic(expected = "asked for the derivative of a variable of tape #")]
fn derivative_of_another_tapes_variable() {
    let outer = Tape::new();
    let x = outer.var(1.0);
    let g = {
        let inner = Tape::new();
        let y = inner.var(1.0);
        inner.gradient(y * y).unwrap()
    };
    let _ = g.wrt(x);
}

#[test]
#[should_panic(expected = "a sweep must run on the innermost active tape")]
fn sweeping_an_outer_tape_from_an_inner_scope() {
    let outer = Tape::new();
    let x = outer.var(1.0);
    let y = x * x;
    let _inner = Tape::new();
    let _ = outer.gradient(y);
}

#[test]
#[should_panic(expected = "must not record on the tape it belongs to")]
fn custom_rule_recording_on_its_own_tape() {
    let tape = Tape::new();
    let x = tape.var(1.0);
    let vjp = move |u: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> {
        let _ = x * 2.0; // records on the tape being swept
        Ok(u.to_vec())
    };
    let y = custom_scalar_op(
        FnRule::new("bad", vjp, |v: &[DMatrix<f64>]| Ok(v.to_vec())),
        &[x],
        &[1.0],
    )[0];
    let _ = tape.gradient(y);
}

#[test]
#[should_panic(expected = "is already in a sweep")]
fn custom_rule_sweeping_its_own_tape() {
    let tape = std::rc::Rc::new(Tape::new());
    let x = tape.var(1.0);
    let inside = tape.clone();
    let vjp = move |u: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> {
        let _ = inside.gradient(x); // sweeps the tape being swept
        Ok(u.to_vec())
    };
    let y = custom_scalar_op(
        FnRule::new("bad", vjp, |v: &[DMatrix<f64>]| Ok(v.to_vec())),
        &[x],
        &[1.0],
    )[0];
    let _ = tape.gradient(y);
}

// ---------------------------------------------------------------------------------------
// Shape mismatches: panics with both shapes, in every matrix mode
// ---------------------------------------------------------------------------------------

/// The panic message of `f`, or None if it did not panic.
fn panic_message(f: impl FnOnce()) -> Option<String> {
    let err = catch_unwind(AssertUnwindSafe(f)).err()?;
    Some(
        err.downcast_ref::<String>()
            .cloned()
            .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    )
}

/// Expected panic message and the code that must panic with it.
type Misuse<'a> = (&'static str, Box<dyn FnOnce() + 'a>);

/// Each misuse of shapes, written once against `MatOps`, with the message it must give.
fn shape_misuses<M: MatOps + 'static>(mk: &dyn Fn(usize, usize) -> M) -> Vec<Misuse<'static>> {
    let (a23, a32, a45, r13, c21) = (mk(2, 3), mk(3, 2), mk(4, 5), mk(1, 3), mk(2, 1));
    let v: Vec<Misuse<'static>> = vec![
        (
            "matmul: inner dimensions differ: 2x3 * 4x5",
            Box::new({
                let (a, b) = (a23.clone(), a45.clone());
                move || {
                    a.matmul(&b);
                }
            }),
        ),
        (
            "add: shapes differ: 2x3 vs 3x2",
            Box::new({
                let (a, b) = (a23.clone(), a32.clone());
                move || {
                    a.add(&b);
                }
            }),
        ),
        (
            "sub: shapes differ: 2x3 vs 3x2",
            Box::new({
                let (a, b) = (a23.clone(), a32.clone());
                move || {
                    a.sub(&b);
                }
            }),
        ),
        (
            "mul_elem: shapes differ: 2x3 vs 3x2",
            Box::new({
                let (a, b) = (a23.clone(), a32.clone());
                move || {
                    a.mul_elem(&b);
                }
            }),
        ),
        (
            "div_elem: shapes differ: 2x3 vs 3x2",
            Box::new({
                let (a, b) = (a23.clone(), a32.clone());
                move || {
                    a.div_elem(&b);
                }
            }),
        ),
        (
            "dot: shapes differ: 2x3 vs 3x2",
            Box::new({
                let (a, b) = (a23.clone(), a32.clone());
                move || {
                    a.dot(&b);
                }
            }),
        ),
        (
            "add_row: expected a 1x2 row, got 1x3",
            Box::new({
                let (a, b) = (a32.clone(), r13.clone());
                move || {
                    a.add_row(&b);
                }
            }),
        ),
        (
            "add_col: expected a 3x1 column, got 2x1",
            Box::new({
                let (a, b) = (a32.clone(), c21.clone());
                move || {
                    a.add_col(&b);
                }
            }),
        ),
        (
            "hcat: row counts differ: 2x3 vs 3x2",
            Box::new({
                let (a, b) = (a23.clone(), a32.clone());
                move || {
                    M::hcat(&[a, b]);
                }
            }),
        ),
        (
            "vcat: column counts differ: 2x3 vs 3x2",
            Box::new({
                let (a, b) = (a23.clone(), a32.clone());
                move || {
                    M::vcat(&[a, b]);
                }
            }),
        ),
        (
            "slice: block 2x2 at (1,2) does not fit in a 2x3 matrix",
            Box::new({
                let a = a23.clone();
                move || {
                    a.slice(1, 2, 2, 2);
                }
            }),
        ),
        (
            "reshape: cannot view a 2x3 matrix as 4x2",
            Box::new({
                let a = a23.clone();
                move || {
                    a.reshape(4, 2);
                }
            }),
        ),
    ];
    v
}

#[test]
fn shape_mismatches_panic_with_both_shapes() {
    let plain = |r: usize, c: usize| DMatrix::from_element(r, c, 1.0);
    let tape = Tape::new();
    let var = |r: usize, c: usize| tape.mat_var(DMatrix::from_element(r, c, 1.0));
    let dual = |r: usize, c: usize| DualMat::new(plain(r, c), plain(r, c));
    let dual_var = |r: usize, c: usize| DualMat::new(var(r, c), var(r, c));
    let mut checked = 0;
    let modes: Vec<(&str, Vec<Misuse<'static>>)> = vec![
        ("DMatrix<f64>", shape_misuses(&plain)),
        ("MatVar", shape_misuses(&var)),
        ("DualMat<DMatrix<f64>>", shape_misuses(&dual)),
        ("DualMat<MatVar>", shape_misuses(&dual_var)),
    ];
    for (mode, cases) in modes {
        for (expected, f) in cases {
            let msg =
                panic_message(f).unwrap_or_else(|| panic!("{mode}: `{expected}` did not panic"));
            assert!(
                msg.contains(expected),
                "{mode}: expected a panic containing `{expected}`, got `{msg}`"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 48);
    // the tape is still usable after all those panics
    let x = tape.var(3.0);
    assert_eq!(tape.gradient(x * x).unwrap().wrt(x), 6.0);
}

#[test]
fn other_shape_errors_name_the_shapes() {
    let tape = Tape::new();
    let m = tape.mat_var(DMatrix::from_element(2, 3, 1.0));
    let cases: Vec<Misuse<'_>> = vec![
        (
            "get: index (2,0) out of bounds for a 2x3 matrix",
            Box::new(|| {
                m.get(2, 0);
            }),
        ),
        (
            "from_scalars: 3 values cannot fill a 2x2 matrix",
            Box::new(|| {
                m.from_scalars_like(2, 2, &[Var::constant(1.0); 3]);
            }),
        ),
        (
            "Seeds::mat: shapes differ: 2x3 vs 3x2",
            Box::new(|| {
                let _ = Seeds::new().mat(&m, DMatrix::zeros(3, 2));
            }),
        ),
        (
            "DualMat::new: shapes differ: 2x3 vs 3x2",
            Box::new(|| {
                DualMat::new(DMatrix::<f64>::zeros(2, 3), DMatrix::zeros(3, 2));
            }),
        ),
    ];
    for (expected, f) in cases {
        let msg = panic_message(f).unwrap_or_else(|| panic!("`{expected}` did not panic"));
        assert!(msg.contains(expected), "expected `{expected}`, got `{msg}`");
    }
}

// ---------------------------------------------------------------------------------------
// Empty means and threads
// ---------------------------------------------------------------------------------------

/// The mean of a matrix without entries is undefined: a panic naming the shape, in every
/// mode (it used to be NaN with a zero gradient).
#[test]
fn mean_of_an_empty_matrix_panics_with_the_shape_in_every_mode() {
    fn check<M: MatOps>(m: M) {
        let shape = m.shape();
        let msg = panic_message(AssertUnwindSafe(|| {
            let _ = m.mean();
        }))
        .unwrap_or_else(|| panic!("the mean of a {shape:?} matrix did not panic"));
        let expected = format!("mean: a {}x{} matrix has no entries", shape.0, shape.1);
        assert!(
            msg.contains(&expected),
            "expected `{expected}`, got `{msg}`"
        );
    }
    check(DMatrix::<f64>::zeros(0, 3));
    check(DMatrix::<f64>::zeros(2, 0));
    let tape = Tape::new();
    check(tape.mat_var(DMatrix::zeros(0, 4)));
    check(DualMat::new(DMatrix::zeros(3, 0), DMatrix::zeros(3, 0)));
    let re = tape.mat_var(DMatrix::zeros(0, 0));
    check(DualMat::new(re, tape.constant_mat(DMatrix::zeros(0, 0))));
    // a non-empty mean still works
    assert_eq!(DMatrix::from_element(2, 2, 3.0).mean(), 3.0);
}

/// `Var` and `MatVar` cannot be moved to another thread (whose tapes are others): this
/// test compiles only while they are `!Send` and `!Sync`. The trait below has an impl for
/// every type and a second one for `Send` (or `Sync`) types; naming its item with an
/// inferred parameter is ambiguous, a compile error, exactly when the type is `Send`.
#[test]
fn vars_are_tied_to_their_thread() {
    trait AmbiguousIfSend<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
    trait AmbiguousIfSync<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSync<()> for T {}
    impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}
    <Var as AmbiguousIfSend<_>>::check();
    <MatVar as AmbiguousIfSend<_>>::check();
    <Var as AmbiguousIfSync<_>>::check();
    <MatVar as AmbiguousIfSync<_>>::check();
    <Tape as AmbiguousIfSend<_>>::check();
    // and they stay small
    assert_eq!(std::mem::size_of::<Var>(), 16);
}

/// Asking a sweep's result for a variable of another tape is a programmer error that
/// names both tapes, whether the adjoint is copied out or moved out.
#[test]
fn a_sweep_refuses_variables_of_another_tape() {
    let first = Tape::new();
    let x = first.mat_var(DMatrix::from_element(2, 2, 1.0));
    let mut g = first.gradient(x.sum()).unwrap();
    let second = Tape::new();
    let y = second.mat_var(DMatrix::from_element(2, 2, 1.0));
    for take in [false, true] {
        let msg = catch_unwind(AssertUnwindSafe(|| {
            if take {
                g.take_mat(&y);
            } else {
                g.wrt_mat(&y);
            }
        }))
        .expect_err("a variable of another tape");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("from a sweep of tape"), "{msg}");
    }
    // Its own variables still answer, and a moved-out adjoint reads zeros afterwards.
    assert_eq!(g.take_mat(&x), DMatrix::from_element(2, 2, 1.0));
    assert_eq!(g.take_mat(&x), DMatrix::zeros(2, 2));
}
