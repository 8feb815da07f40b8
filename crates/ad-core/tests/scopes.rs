//! Nested scopes, higher-order duals and repeated sweeps.
//!
//! Guarantees:
//! - scopes nest: a function differentiated on an outer tape may open inner tapes (call
//!   `grad`, `hessian`, ... on plain values) while it records, and a custom op's rules may
//!   open new tapes during the outer tape's sweeps — e.g. a Newton solve whose derivatives
//!   come from `grad`/`hessian`, differentiated by the implicit function theorem, agrees
//!   with re-solving at perturbed parameters;
//! - `Dual<Dual<f64>>` and deeper nestings give exact higher derivatives;
//! - a tape can be swept any number of times, with identical results.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use ad_core::{
    Dual, FnRule, MatOps, MatVar, Real, RuleError, ScalarFn, Seeds, Tape, Var, custom_op,
    custom_scalar_op, grad, hessian, value_and_grad,
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

/// The tape's size reports: one scalar node per scalar operation; recorded bytes that are 0
/// for an empty tape, cover every matrix value held (8 bytes an entry), and grow by more
/// than a new op's value (its entry on the tape counts too).
#[test]
fn the_tape_reports_its_size() {
    let tape = Tape::new();
    assert_eq!(
        (tape.scalar_len(), tape.op_len(), tape.recorded_bytes()),
        (0, 0, 0)
    );
    let a = tape.mat_var(DMatrix::from_element(10, 10, 0.5));
    let with_a = tape.recorded_bytes();
    // the value's 800 bytes and little else (no op yet: a leaf is not an operation)
    assert!((800..800 + 256).contains(&with_a), "{with_a}");
    assert_eq!(tape.op_len(), 0);
    let b = a.scale_f64(2.0);
    let with_b = tape.recorded_bytes();
    assert!(
        with_b > with_a + 800 && with_b < with_a + 800 + 512,
        "{with_a} -> {with_b}"
    );
    assert_eq!(tape.op_len(), 1);
    let s = b.sum();
    assert_eq!(tape.op_len(), 2);
    let n = tape.scalar_len();
    // scalar operations: one node each, every node the same size
    let before = tape.recorded_bytes();
    let t = s * s;
    let one = tape.recorded_bytes() - before;
    let t = t + s;
    let two = tape.recorded_bytes() - before;
    assert_eq!(tape.scalar_len(), n + 2);
    assert!(one > 0 && two == 2 * one && one <= 64, "{one}, {two}");
    assert_eq!(tape.op_len(), 2, "scalar operations are not matrix ops");
    assert!(t.value() > 0.0);
    // a known zero holds no bytes until its value is read
    let z = a.zeros_like(10, 10);
    let unread = tape.recorded_bytes();
    assert_eq!(z.value(), DMatrix::zeros(10, 10));
    assert_eq!(tape.recorded_bytes(), unread + 800);
}

/// A recording swept again and again (the VJPs of a Krylov solve or a DEQ backward) gives
/// the same bits every time; from its second reverse sweep on it keeps the transposed copy
/// of W that its product `Wᵀ Ḡ` reads (where the product kernel runs: AVX-512), counted in
/// its size, instead of copying W again per sweep. A tape swept once keeps nothing.
#[test]
fn replayed_sweeps_keep_their_transposes_and_give_the_same_bits() {
    use ad_core::kernels::paths::{Path, best_vector_path};
    use ad_core::{MatOps, Seeds};
    let w = DMatrix::from_fn(64, 64, |i, j| ((i * 31 + j * 17) % 13) as f64 * 0.01 - 0.06);
    let z0 = DMatrix::from_fn(64, 32, |i, j| ((i + 3 * j) % 7) as f64 * 0.1 - 0.3);
    let tape = Tape::new();
    let z = tape.mat_var(z0.clone());
    let f = tape.constant_mat(w.clone()).matmul(&z).tanh();
    let seed = DMatrix::from_fn(64, 32, |i, j| ((2 * i + j) % 5) as f64 - 2.0);
    let sweep = || {
        tape.backward(&Seeds::new().mat(&f, seed.clone()))
            .unwrap()
            .wrt_mat(&z)
    };
    let size = tape.recorded_bytes();
    let first = sweep();
    assert_eq!(
        tape.recorded_bytes(),
        size,
        "a tape swept once keeps no copies"
    );
    let second = sweep();
    let kept = if best_vector_path() == Path::Avx512 {
        64 * 64 * 8
    } else {
        0
    };
    assert_eq!(tape.recorded_bytes(), size + kept);
    let third = sweep();
    assert_eq!(tape.recorded_bytes(), size + kept, "one copy, made once");
    assert_eq!(first, second);
    assert_eq!(first, third);
    // Wᵀ (Ḡ ⊙ (1 − tanh²)), computed independently.
    let t = (&w * &z0).map(f64::tanh);
    let expected = w.transpose() * seed.zip_map(&t, |g, t| g * (1.0 - t * t));
    assert!((&first - &expected).amax() <= 1e-12 * expected.amax());
}

/// The same holds for a product whose adjoint is a column (an outer product a bᵀ): the
/// replayed sweep computes `Ā = G b` the way the first one did, not through another path.
#[test]
fn replayed_outer_products_give_the_same_bits() {
    use ad_core::{MatOps, Seeds};
    let tape = Tape::new();
    let a = tape.mat_var(DMatrix::from_fn(40, 1, |i, _| (i as f64 * 0.37).sin()));
    let b = tape.mat_var(DMatrix::from_fn(1, 30, |_, j| (j as f64 * 0.71).cos()));
    let f = a.matmul(&b).tanh();
    let seed = DMatrix::from_fn(40, 30, |i, j| ((i * 7 + j * 3) % 11) as f64 * 0.1 - 0.5);
    let sweep = || {
        let g = tape.backward(&Seeds::new().mat(&f, seed.clone())).unwrap();
        (g.wrt_mat(&a), g.wrt_mat(&b))
    };
    let first = sweep();
    for _ in 0..2 {
        let again = sweep();
        let bits = |m: &DMatrix<f64>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&again.0), bits(&first.0));
        assert_eq!(bits(&again.1), bits(&first.1));
    }
}

/// Tapes are recycled (their buffers pooled): a new tape never reads the transposed copies
/// an earlier tape kept for its replayed sweeps. Two tapes in turn, with different W, each
/// swept twice: each one's second sweep gives its first sweep's bits.
#[test]
fn a_recycled_tape_keeps_no_earlier_transposes() {
    use ad_core::{MatOps, Seeds};
    let z0 = DMatrix::from_fn(64, 32, |i, j| ((i + 3 * j) % 7) as f64 * 0.1 - 0.3);
    let seed = DMatrix::from_fn(64, 32, |i, j| ((2 * i + j) % 5) as f64 - 2.0);
    for scale in [1.0, -3.0] {
        let w = DMatrix::from_fn(64, 64, |i, j| {
            scale * (((i * 31 + j * 17) % 13) as f64 * 0.01 - 0.06)
        });
        let tape = Tape::new();
        let z = tape.mat_var(z0.clone());
        let f = tape.constant_mat(w).matmul(&z).tanh();
        let sweep = || {
            tape.backward(&Seeds::new().mat(&f, seed.clone()))
                .unwrap()
                .wrt_mat(&z)
        };
        let first = sweep();
        assert_eq!(sweep(), first, "W scaled by {scale}");
    }
}
