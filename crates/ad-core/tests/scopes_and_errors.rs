//! Nested scopes, higher-order duals, misuse and errors.
//!
//! Guarantees:
//! - scopes nest: a function differentiated on an outer tape may open inner tapes (call
//!   `grad`, `hessian`, ... on plain values) while it records, and a custom op's rules may
//!   open new tapes during the outer tape's sweeps — e.g. a Newton solve whose derivatives
//!   come from `grad`/`hessian`, differentiated by the implicit function theorem, agrees
//!   with re-solving at perturbed parameters;
//! - `Dual<Dual<f64>>` and deeper nestings give exact higher derivatives;
//! - misuse of a `Var`/`MatVar` panics with a message saying what happened: use after its
//!   tape was dropped, an outer-scope variable inside an inner scope, variables of two
//!   different tapes mixed, seeds or derivatives asked across tapes, recording on a tape
//!   from inside its own sweep;
//! - shape mismatches panic with both shapes, in every matrix mode;
//! - non-finite inputs to every driver return `AdError::NonFinite` with the index and value;
//! - a custom rule that fails makes the sweep return `AdError::CustomRule` (never silent
//!   zeros), one returning wrong shapes `AdError::CustomShape`; the tape stays usable;
//! - a tape can be swept any number of times, with identical results.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use ad_core::{
    AdError, Dual, DualMat, FnRule, MatFn, MatOps, MatVar, Real, RuleError, ScalarFn, Seeds, Tape,
    Var, VectorFn, custom_op, custom_scalar_op, grad, hessian, hvp, hvp_mat, jacobian,
    jacobian_forward, jacobian_reverse, jvp, jvp_mat, value_and_grad, value_and_grad_mat, vjp,
};
use common::check_close;
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Nested scopes: a Newton solve inside a custom op
// ---------------------------------------------------------------------------------------

/// A strongly convex energy of `x` (n) with parameters `theta` (n):
/// `E = sum x_i^4/4 + (1 + theta_i^2) x_i^2/2 - (theta_i + 0.5) x_i + 0.3 sum x_i x_{i+1}`.
/// Its Hessian in `x` is `diag(3 x^2 + 1 + theta^2)` plus a tridiagonal 0.3: diagonally
/// dominant, so Newton converges from 0.
fn energy<S: Real>(x: &[S], theta: &[S]) -> S {
    let n = x.len();
    let mut e = S::zero();
    for i in 0..n {
        let t = theta[i];
        e += x[i].powi(4) * 0.25 + (t * t + 1.0) * x[i].square() * 0.5 - (t + 0.5) * x[i];
        if i + 1 < n {
            e += x[i] * x[i + 1] * 0.3;
        }
    }
    e
}

/// `E` as a function of `x` for fixed `theta` (for the Newton solve).
struct EnergyInX<'a>(&'a [f64]);
impl ScalarFn for EnergyInX<'_> {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let theta: Vec<S> = self.0.iter().map(|&t| S::from_f64(t)).collect();
        energy(x, &theta)
    }
}

/// `E` as a function of `z = [x, theta]` (for the implicit function theorem).
struct EnergyInXTheta(usize);
impl ScalarFn for EnergyInXTheta {
    fn eval<S: Real>(&self, z: &[S]) -> S {
        energy(&z[..self.0], &z[self.0..])
    }
}

/// argmin_x E(x, theta) by Newton's method; every step opens two tapes (`grad`, `hessian`).
fn newton(theta: &[f64]) -> Vec<f64> {
    let f = EnergyInX(theta);
    let mut x = vec![0.0; theta.len()];
    for _ in 0..50 {
        let g = DVector::from_vec(grad(&f, &x).unwrap());
        if g.amax() < 1e-15 {
            break;
        }
        let h = hessian(&f, &x).unwrap();
        let dx = h.lu().solve(&g).expect("Hessian is positive definite");
        for (xi, d) in x.iter_mut().zip(dx.iter()) {
            *xi -= d;
        }
    }
    x
}

/// `dx*/dtheta = -H_xx^-1 H_x,theta`, from a Hessian computed when called (on new tapes).
fn implicit_jacobian(x: &[f64], theta: &[f64]) -> DMatrix<f64> {
    let n = x.len();
    let z: Vec<f64> = x.iter().chain(theta).copied().collect();
    let h = hessian(&EnergyInXTheta(n), &z).unwrap();
    let hxx = h.view((0, 0), (n, n)).into_owned();
    let hxt = h.view((0, n), (n, n)).into_owned();
    -hxx.lu().solve(&hxt).unwrap()
}

/// x*(theta) as a custom scalar op whose rules compute the implicit Jacobian during the
/// sweep, opening new tapes while the outer tape's sweep is in progress.
fn solve_on_tape(theta: &[Var]) -> Vec<Var> {
    let tv: Vec<f64> = theta.iter().map(|t| t.value()).collect();
    let x = newton(&tv);
    let (x1, t1, x2, t2) = (x.clone(), tv.clone(), x.clone(), tv.clone());
    let rule = FnRule::new(
        "newton argmin",
        move |u: &[DMatrix<f64>]| Ok(vec![implicit_jacobian(&x1, &t1).transpose() * &u[0]]),
        move |v: &[DMatrix<f64>]| Ok(vec![implicit_jacobian(&x2, &t2) * &v[0]]),
    );
    custom_scalar_op(rule, theta, &x)
}

/// The loss downstream of the solve: `sum sin(theta_i) x_i + x_i^2`.
fn loss<S: Real>(theta: &[S], x: &[S]) -> S {
    theta
        .iter()
        .zip(x)
        .map(|(&t, &xi)| t.sin() * xi + xi * xi)
        .sum()
}

proptest! {
    #![proptest_config(common::config(16))]

    /// Gradient and tangent through a Newton solve (inner tapes in the primal and in the
    /// rules) match re-solving at `theta ± h e_j`.
    #[test]
    fn implicit_gradient_of_a_newton_solve(
        theta in proptest::collection::vec(-1.0f64..1.0, 1..=4),
        v in proptest::collection::vec(-1.0f64..1.0, 4),
    ) {
        let n = theta.len();
        let tape = Tape::new();
        let tv = tape.vars(&theta);
        let x = solve_on_tape(&tv);
        let l = loss(&tv, &x);
        let g = tape.gradient(l).unwrap().wrt_all(&tv);
        // the forward sweep runs the JVP rule (new tapes again) and agrees
        let t = tape.forward(&Seeds::new().vars(&tv, &v[..n])).unwrap().of(l);
        let gv: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
        check_close("forward sweep vs <gradient, v>", &[t], &[gv], 1e-12, 1.0)?;
        // the outer tape still records after all the inner tapes came and went
        let l2 = l * tv[0];
        let g2 = tape.gradient(l2).unwrap().wrt(tv[0]);
        check_close(
            "recording after nested scopes",
            &[g2],
            &[g[0] * theta[0] + l.value()],
            1e-12,
            1.0,
        )?;

        // re-solve at perturbed parameters (Newton converges to ~1e-16, so the central
        // difference has the usual h^2 + eps/h error, ~1e-10 here)
        let fd = common::fd_grad(|th| loss(th, &newton(th)), &theta);
        check_close("implicit gradient vs re-solving", &g, &fd, 1e-6, 1.0)?;
    }
}

/// A function differentiated on an outer tape calls `grad` (an inner tape) on plain values
/// while the outer tape is recording; three levels deep.
#[test]
fn drivers_inside_a_differentiated_function() {
    struct Inner;
    impl ScalarFn for Inner {
        fn eval<S: Real>(&self, x: &[S]) -> S {
            // level 3: a gradient of x^3 (on its own tape), used as a constant
            let d = grad(&Cube, &[x[0].value()]).unwrap()[0]; // 3 x^2
            x[0] * d
        }
    }
    struct Cube;
    impl ScalarFn for Cube {
        fn eval<S: Real>(&self, x: &[S]) -> S {
            x[0].powi(3)
        }
    }
    struct Outer;
    impl ScalarFn for Outer {
        fn eval<S: Real>(&self, x: &[S]) -> S {
            // level 2: the gradient of Inner at the plain value, i.e. 3 x^2 (d treated as a
            // constant there), used as a constant here
            let c = grad(&Inner, &[x[0].value()]).unwrap()[0];
            x[0].sin() * c + x[1] * x[0]
        }
    }
    let x = [0.7, -1.3];
    let (y, g) = value_and_grad(&Outer, &x).unwrap();
    let c = 3.0 * x[0] * x[0];
    assert!((y - (x[0].sin() * c + x[1] * x[0])).abs() < 1e-15);
    assert!((g[0] - (x[0].cos() * c + x[1])).abs() < 1e-14, "{g:?}");
    assert!((g[1] - x[0]).abs() < 1e-15);
}

/// Scopes opened and closed in sequence and nested, with every variable used only while
/// its tape is innermost.
#[test]
fn interleaved_scopes() {
    let outer = Tape::new();
    let a = outer.var(2.0);
    let b = a * a; // recorded on outer
    let inner_grad = {
        let inner = Tape::new();
        let x = inner.var(b.value()); // outer value enters as a plain number
        let y = x.exp();
        inner.gradient(y).unwrap().wrt(x)
    };
    let c = b * inner_grad; // outer records again
    assert_eq!(outer.gradient(c).unwrap().wrt(a), 2.0 * 2.0 * 4.0f64.exp());
    // a second inner scope after the first one ended
    let inner = Tape::new();
    let x = inner.var(1.0);
    assert_eq!(inner.gradient(x * 3.0).unwrap().wrt(x), 3.0);
}

// ---------------------------------------------------------------------------------------
// Higher-order duals
// ---------------------------------------------------------------------------------------

/// Worked examples: second and third derivatives from nested duals, against calculus.
#[test]
fn nested_duals_give_exact_higher_derivatives() {
    for &x in &[-1.3, 0.2, 0.9, 2.5] {
        // f = tanh: f'' = -2 t (1 - t^2), f''' = (1 - t^2)(6 t^2 - 2)
        let t: f64 = x.tanh();
        let d2 = Dual::new(Dual::new(x, 1.0), Dual::new(1.0, 0.0)).tanh();
        assert!(
            (d2.eps.eps - (-2.0 * t * (1.0 - t * t))).abs() < 1e-15,
            "tanh'' at {x}"
        );
        let xd3 = Dual::new(
            Dual::new(Dual::new(x, 1.0), Dual::new(1.0, 0.0)),
            Dual::new(Dual::new(1.0, 0.0), Dual::new(0.0, 0.0)),
        );
        let d3 = xd3.tanh();
        let f3 = (1.0 - t * t) * (6.0 * t * t - 2.0);
        assert!((d3.eps.eps.eps - f3).abs() < 1e-14, "tanh''' at {x}");
        // f = x^5 exp(x/2) sin(x) through products: Dual<Dual<Var>> (reverse over two
        // forward levels) equals Dual<Dual<Dual<f64>>>
        fn f<S: Real>(x: S) -> S {
            x.powi(5) * (x * 0.5).exp() * x.sin()
        }
        let tape = Tape::new();
        let xv = tape.var(x);
        let one = Var::constant(1.0);
        let zero = Var::constant(0.0);
        let y = f(Dual::new(Dual::new(xv, one), Dual::new(one, zero)));
        let third_rev = tape.gradient(y.eps.eps).unwrap().wrt(xv);
        let third_fwd = f(xd3).eps.eps.eps;
        assert!(
            (third_rev - third_fwd).abs() <= 1e-12 * third_fwd.abs().max(1.0),
            "{third_rev} vs {third_fwd}"
        );
        // and the second derivative of f equals the 1x1 Hessian
        struct F;
        impl ScalarFn for F {
            fn eval<S: Real>(&self, x: &[S]) -> S {
                f(x[0])
            }
        }
        let second = f(Dual::new(Dual::new(x, 1.0), Dual::new(1.0, 0.0))).eps.eps;
        let h = hessian(&F, &[x]).unwrap()[(0, 0)];
        assert!((second - h).abs() <= 1e-12 * h.abs().max(1.0));
    }
}

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

// ---------------------------------------------------------------------------------------
// Tape reuse
// ---------------------------------------------------------------------------------------

fn bits(m: &DMatrix<f64>) -> Vec<u64> {
    m.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(common::config(32))]

    /// Sweeping one recording several times, in any order, gives identical results; and
    /// recording more afterwards leaves earlier results unchanged.
    #[test]
    fn sweeping_a_tape_again_gives_identical_results(
        (w, x) in (common::dim(), common::dim(), common::dim()).prop_flat_map(|(m, k, n)| {
            (common::mat(k, n, -1.0, 1.0), common::mat(m, k, -2.0, 2.0))
        }),
        s in -2.0f64..2.0,
    ) {
        let tape = Tape::new();
        let (wv, sv) = (tape.mat_var(w.clone()), tape.var(s));
        let xv = tape.constant_mat(x.clone());
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let c2 = calls.clone();
        let rule = FnRule::new(
            "double",
            move |u: &[DMatrix<f64>]| { c2.set(c2.get() + 1); Ok(vec![&u[0] * 2.0]) },
            |v: &[DMatrix<f64>]| Ok(vec![&v[0] * 2.0]),
        );
        let h = xv.matmul(&wv).tanh().scale(sv.sin());
        let hh = custom_op(rule, &[h], vec![h.value() * 2.0])[0];
        let loss = hh.sq_norm() * sv + hh.get(0, 0);

        let g1 = tape.gradient(loss).unwrap();
        let t1 = tape.forward(&Seeds::new().mat(&wv, w.clone()).var(sv, 1.0)).unwrap();
        let g2 = tape.gradient(loss).unwrap();
        let t2 = tape.forward(&Seeds::new().mat(&wv, w.clone()).var(sv, 1.0)).unwrap();
        prop_assert_eq!(bits(&g1.wrt_mat(&wv)), bits(&g2.wrt_mat(&wv)));
        prop_assert_eq!(g1.wrt(sv).to_bits(), g2.wrt(sv).to_bits());
        prop_assert_eq!(bits(&g1.wrt_mat(&h)), bits(&g2.wrt_mat(&h)));
        prop_assert_eq!(t1.of(loss).to_bits(), t2.of(loss).to_bits());
        prop_assert_eq!(bits(&t1.of_mat(&hh)), bits(&t2.of_mat(&hh)));
        prop_assert_eq!(calls.get(), 2);
        // seeds are not accumulated across sweeps: twice the seed, twice the gradient
        let g3 = tape.backward(&Seeds::new().var(loss, 2.0)).unwrap();
        let (a, b) = (g3.wrt_mat(&wv), g1.wrt_mat(&wv) * 2.0);
        prop_assert_eq!(bits(&a), bits(&b));

        // record more, sweep again: the old output's gradient is unchanged
        let more = loss.exp() + wv.sum();
        let g4 = tape.gradient(loss).unwrap();
        prop_assert_eq!(bits(&g4.wrt_mat(&wv)), bits(&g1.wrt_mat(&wv)));
        let g5 = tape.gradient(more).unwrap();
        let expected = g1.wrt_mat(
            &wv) * loss.value().exp() + DMatrix::from_element(w.nrows(),
            w.ncols(),
            1.0,
        );
        check_close(
            "gradient after recording more",
            g5.wrt_mat(&wv).as_slice(),
            expected.as_slice(),
            1e-12,
            1.0f64.max(common::norm_inf(expected.as_slice())),
        )?;
    }
}

/// `MatVar` is documented as `Copy`; `Var` is small. Pin both (the design relies on them).
#[test]
fn variables_are_small_and_copy() {
    fn is_copy<T: Copy>() {}
    is_copy::<Var>();
    is_copy::<MatVar>();
    assert_eq!(std::mem::size_of::<Var>(), 16);
}

/// A custom rule that panics mid-sweep does not leave its tape stuck in "busy": once the
/// panic is caught, the same tape records and sweeps again.
#[test]
fn tape_survives_a_panicking_rule() {
    let tape = Tape::new();
    let x = tape.var(2.0);
    let rule = FnRule::new(
        "panics",
        |_: &[DMatrix<f64>]| -> Result<Vec<DMatrix<f64>>, RuleError> { panic!("rule blew up") },
        |v: &[DMatrix<f64>]| Ok(vec![v[0].clone()]),
    );
    let y = custom_scalar_op(rule, &[x], &[2.0])[0];
    let caught = catch_unwind(AssertUnwindSafe(|| tape.gradient(y)));
    assert!(caught.is_err());
    let z = x * x;
    assert_eq!(tape.gradient(z).unwrap().wrt(x), 4.0);
}
