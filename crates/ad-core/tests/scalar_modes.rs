//! Scalar modes agree with each other and with finite differences.
//!
//! Guarantees, for randomly composed expressions that use every primitive of [`Real`]
//! (arithmetic between variables and with `f64` constants, assignment operators, `Sum`,
//! exp, ln, ln_1p, sqrt, powi, powf, sin, cos, tanh, sigmoid, softplus, abs, max, min,
//! relu, square, recip and value comparisons) at random points:
//! - every mode (`f64`, `Dual<f64>`, `Var`, `Dual<Var>`, `Dual<Dual<f64>>`) computes the
//!   primal value with the same `f64` operations: the values are bit-identical;
//! - forward mode (`Dual<f64>`), reverse mode (`Var`, the `grad` driver) and the `jvp`
//!   driver give the same gradient to ~1e-12 (same arithmetic, different order);
//! - that gradient matches central finite differences of the plain `f64` evaluation
//!   (tolerance derived below);
//! - `hessian` (reverse over forward, `Dual<Var>`) equals the forward-over-forward Hessian
//!   (`Dual<Dual<f64>>`), is symmetric, and matches central differences of `grad`;
//! - `hvp(v)` equals `hessian * v`;
//! - `jacobian_forward`, `jacobian_reverse` and `jacobian` agree, and `jvp`/`vjp` are
//!   `J v` and `u^T J`;
//! - `Dual<Dual<f64>>` gives the second derivative of single-variable functions;
//! - arithmetic with an `f64` on the left (`c - x`, `c / x`, ...) differentiates exactly
//!   like the same expression with the constant on the right, in every mode.
//!
//! The programs come from `common::scalar_program`: straight-line code over registers
//! that stay in [-3, 3], each instruction one primitive applied inside its domain. Points
//! where a central difference would straddle a kink (|x| at 0, max at a tie, a branch)
//! are rejected rather than compared. `Var` holds `f64`, so "the Jacobian of `grad` by
//! forward mode" is taken as the forward-over-forward Hessian, next to central
//! differences of `grad` itself.

mod common;

use ad_core::{
    Dual, Real, ScalarFn, Tape, Var, VectorFn, grad, hessian, hvp, jacobian, jacobian_forward,
    jacobian_reverse, jvp, value_and_grad, vjp,
};
use common::scalar_program::{Outputs, Program, every_primitive_program, program_and_point};
use common::{check_close, dotv, fd_grad, norm_inf, step};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------
// Tolerances
// ---------------------------------------------------------------------------------------

/// Forward vs reverse mode. Both compute the same sum over paths of products of the same
/// local partial derivatives, only associated differently, so they differ by rounding:
/// at most (number of operations on a path, <= ~60) x 2.2e-16 x (sum of |path products|).
/// Every register of a program stays in [-3, 3] and every local partial is O(1) (see
/// `apply`), so that sum is O(max(1, |g|)) for our programs: 60 * 2.2e-16 ~ 1.3e-14, and
/// 1e-12 leaves two orders of magnitude of slack without hiding any wrong rule (a wrong
/// rule is off by O(1)).
const MODES_REL: f64 = 1e-12;

/// Central differences vs AD. With `h = 1e-5 max(1, |x|)` (`common::H_REL`) and |x| <= 3:
/// - truncation `h^2/6 |f'''|` <= (3e-5)^2/6 |f'''| = 1.5e-10 |f'''|. Registers stay in
///   [-3, 3] and each primitive's arguments are guarded (ln of `softplus + 0.1`, powf of a
///   base in (0.5, 1.5), 1/(x^2 + 0.5), ...), so third derivatives of one step are O(10)
///   and of a <= 12-step program O(1e2..1e3): at most ~1.5e-7;
/// - rounding `delta/h`, where one evaluation's absolute error `delta` is about
///   (<= 100 flops) x 2.2e-16 x (intermediates <= ~20) ~ 4e-13: at most 4e-13/1e-5 = 4e-8.
///
/// The sum is < 2e-7 relative to max(1, |f|, |f'|), so 1e-6 holds with a 5x margin, yet is
/// 1e5 times smaller than the O(0.1) error of any wrong derivative rule. (Measured with
/// `PROPTEST_CASES=100000 AD_TOL_REPORT=1`: the largest error seen was 8e-8 of the scale.)
const FD_REL: f64 = 1e-6;

/// Second-order modes (`Dual<Var>` vs `Dual<Dual<f64>>`, `hvp` vs `hessian * v`): as for
/// `MODES_REL`, but second derivatives sum over pairs of paths, so allow 1e-11.
const SECOND_REL: f64 = 1e-11;

// ---------------------------------------------------------------------------------------
// Mode helpers
// ---------------------------------------------------------------------------------------

/// The gradient by forward mode: one `Dual<f64>` evaluation per coordinate.
fn forward_gradient(f: &impl ScalarFn, x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|j| {
            let xs: Vec<Dual<f64>> = x
                .iter()
                .enumerate()
                .map(|(i, &v)| Dual::new(v, if i == j { 1.0 } else { 0.0 }))
                .collect();
            f.eval(&xs).eps
        })
        .collect()
}

/// The Hessian by forward over forward: entry (i, j) from one `Dual<Dual<f64>>`
/// evaluation seeded with e_i on the inner and e_j on the outer tangent.
fn forward_forward_hessian(f: &impl ScalarFn, x: &[f64]) -> DMatrix<f64> {
    let n = x.len();
    DMatrix::from_fn(n, n, |i, j| {
        let xs: Vec<Dual<Dual<f64>>> = x
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let ei = if k == i { 1.0 } else { 0.0 };
                let ej = if k == j { 1.0 } else { 0.0 };
                Dual::new(Dual::new(v, ei), Dual::new(ej, 0.0))
            })
            .collect();
        f.eval(&xs).eps.eps
    })
}

fn max_abs(m: &DMatrix<f64>) -> f64 {
    norm_inf(m.as_slice())
}

fn check_first_order(prog: &Program, x: &[f64]) -> Result<(), TestCaseError> {
    let y = prog.eval(x);
    prop_assert!(y.is_finite(), "program value {y} is not finite");

    // every mode computes the primal value with the same f64 operations: bit-identical
    let (yv, g_rev) = value_and_grad(prog, x).unwrap();
    prop_assert_eq!(yv.to_bits(), y.to_bits(), "value: Var {} vs f64 {}", yv, y);
    let xd: Vec<Dual<f64>> = x.iter().map(|&a| Dual::variable(a)).collect();
    let yd = prog.eval(&xd).re;
    prop_assert_eq!(yd.to_bits(), y.to_bits(), "value: Dual {} vs f64 {}", yd, y);
    prop_assert_eq!(&grad(prog, x).unwrap(), &g_rev);

    // forward mode
    let g_fwd = forward_gradient(prog, x);
    check_close(
        "gradient: forward vs reverse",
        &g_fwd,
        &g_rev,
        MODES_REL,
        1.0,
    )?;

    // the jvp driver along a direction built from x: <g, v>
    let v: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, a)| (a * 1.7 + i as f64).sin())
        .collect();
    let (_, jv) = jvp(&Outputs(prog), x, &v).unwrap();
    let scale = norm_inf(&g_rev) * v.len() as f64;
    check_close(
        "jvp vs <grad, v>",
        &jv[..1],
        &[dotv(&g_rev, &v)],
        MODES_REL,
        1.0f64.max(scale),
    )?;

    // central differences, when every difference point lies on the same smooth piece
    prop_assume!(prog.smooth_around(x));
    let g_fd = fd_grad(|z| prog.eval(z), x);
    check_close(
        "gradient: reverse vs central differences",
        &g_rev,
        &g_fd,
        FD_REL,
        1.0f64.max(y.abs()),
    )
}

fn check_second_order(prog: &Program, x: &[f64]) -> Result<(), TestCaseError> {
    let n = x.len();
    let y = prog.eval(x);
    {
        let tape = Tape::new();
        let xs: Vec<Dual<Var>> = x
            .iter()
            .map(|&a| Dual::new(tape.var(a), Var::constant(1.0)))
            .collect();
        let ydv = prog.eval(&xs).re.value();
        prop_assert_eq!(
            ydv.to_bits(),
            y.to_bits(),
            "value: Dual<Var> {} vs f64 {}",
            ydv,
            y
        );
    }
    let h = hessian(prog, x).unwrap();
    let h_ff = forward_forward_hessian(prog, x);
    let scale = 1.0f64.max(max_abs(&h_ff));
    check_close(
        "hessian: Dual<Var> vs Dual<Dual<f64>>",
        h.as_slice(),
        h_ff.as_slice(),
        SECOND_REL,
        scale,
    )?;
    check_close(
        "hessian symmetric",
        h.as_slice(),
        h.transpose().as_slice(),
        SECOND_REL,
        scale,
    )?;

    // hvp = hessian * v
    let v: Vec<f64> = (0..n).map(|i| (x[i] * 2.3 - i as f64).cos()).collect();
    let hv = hvp(prog, x, &v).unwrap();
    let hv_ref = &h * nalgebra::DVector::from_column_slice(&v);
    check_close(
        "hvp vs hessian * v",
        &hv,
        hv_ref.as_slice(),
        SECOND_REL,
        scale * n as f64,
    )?;

    // the Hessian is the Jacobian of the gradient: central differences of `grad`
    prop_assume!(prog.smooth_around(x));
    let g = grad(prog, x).unwrap();
    let fscale = 1.0f64.max(prog.eval(x).abs()).max(norm_inf(&g)).max(scale);
    for j in 0..n {
        let col = fd_grad_component(prog, x, j);
        check_close(
            &format!("hessian column {j} vs central differences of grad"),
            &h.column(j).iter().copied().collect::<Vec<_>>(),
            &col,
            FD_REL,
            fscale,
        )?;
    }
    Ok(())
}

/// `(grad(x + h e_j) - grad(x - h e_j)) / 2h`.
fn fd_grad_component(prog: &Program, x: &[f64], j: usize) -> Vec<f64> {
    let mut xp = x.to_vec();
    let h = step(x[j]);
    xp[j] = x[j] + h;
    let (gp, hp) = (grad(prog, &xp).unwrap(), xp[j]);
    xp[j] = x[j] - h;
    let (gm, hm) = (grad(prog, &xp).unwrap(), xp[j]);
    gp.iter()
        .zip(&gm)
        .map(|(p, m)| (p - m) / (hp - hm))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(common::config(256))]

    /// Forward, reverse and central differences agree on random programs.
    #[test]
    fn forward_reverse_and_finite_differences_agree((prog, x) in program_and_point(4)) {
        check_first_order(&prog, &x)?;
    }

    /// The same on a program that uses every primitive, at random points.
    #[test]
    fn every_primitive_in_one_program(x in proptest::collection::vec(-3.0f64..3.0, 3)) {
        let prog = every_primitive_program(3);
        check_first_order(&prog, &x)?;
        check_second_order(&prog, &x)?;
    }

    /// `hessian` = forward-over-forward Hessian = Jacobian of `grad`; `hvp` = `hessian * v`.
    #[test]
    fn hessian_and_hvp((prog, x) in program_and_point(4)) {
        check_second_order(&prog, &x)?;
    }

    /// Forward and reverse Jacobians agree; `jvp` and `vjp` are `J v` and `u^T J`;
    /// and the dot-product identity `<vjp(u), v> = <u, jvp(v)>` holds.
    #[test]
    fn jacobians_forward_reverse(
        (prog, x) in program_and_point(4),
        seed in proptest::collection::vec(-1.0f64..1.0, 8),
    ) {
        let f = Outputs(&prog);
        let jf = jacobian_forward(&f, &x).unwrap();
        let jr = jacobian_reverse(&f, &x).unwrap();
        let ja = jacobian(&f, &x).unwrap();
        prop_assert_eq!(jf.shape(), (4, x.len()));
        let scale = 1.0f64.max(max_abs(&jf));
        check_close("jacobian forward vs reverse", jf.as_slice(), jr.as_slice(), MODES_REL, scale)?;
        check_close("jacobian (auto) vs forward", ja.as_slice(), jf.as_slice(), MODES_REL, scale)?;

        let v = &seed[..x.len()];
        let u = &seed[4..8];
        let (y1, jv) = jvp(&f, &x, v).unwrap();
        let (y2, ujt) = vjp(&f, &x, u).unwrap();
        check_close("jvp/vjp values", &y1, &y2, MODES_REL, 1.0)?;
        let jv_ref = &jf * nalgebra::DVector::from_column_slice(v);
        let ujt_ref = jf.transpose() * nalgebra::DVector::from_column_slice(u);
        let s = scale * x.len().max(4) as f64;
        check_close("jvp = J v", &jv, jv_ref.as_slice(), MODES_REL, s)?;
        check_close("vjp = u^T J", &ujt, ujt_ref.as_slice(), MODES_REL, s)?;
        check_close(
            "<vjp(u), v> = <u, jvp(v)>",
            &[dotv(&ujt, v)],
            &[dotv(u, &jv)],
            MODES_REL,
            s * 4.0,
        )?;
    }

    /// `Dual<Dual<f64>>` of a one-variable function: value, first and second derivative.
    #[test]
    fn dual_dual_second_derivative((prog, x) in program_and_point(1)) {
        let x0 = x[0];
        let y = prog.eval(&[Dual::new(Dual::new(x0, 1.0), Dual::new(1.0, 0.0))]);
        let d1 = prog.eval(&[Dual::new(x0, 1.0)]);
        // both infinitesimal parts carry f'; the mixed part carries f''
        prop_assert_eq!(y.re.re.to_bits(), prog.eval(&[x0]).to_bits(), "Dual<Dual>: value");
        check_close("Dual<Dual>: f' (inner)", &[y.re.eps], &[d1.eps], MODES_REL, 1.0)?;
        check_close("Dual<Dual>: f' (outer)", &[y.eps.re], &[d1.eps], MODES_REL, 1.0)?;
        let h = hessian(&prog, &x).unwrap()[(0, 0)];
        check_close("Dual<Dual>: f'' vs hessian", &[y.eps.eps], &[h], SECOND_REL, 1.0)?;

        prop_assume!(prog.smooth_around(&x));
        let hh = step(x0);
        let (xp, xm) = (x0 + hh, x0 - hh);
        let dp = prog.eval(&[Dual::new(xp, 1.0)]).eps;
        let dm = prog.eval(&[Dual::new(xm, 1.0)]).eps;
        let fd = (dp - dm) / (xp - xm);
        let scale = 1.0f64.max(y.re.re.abs()).max(d1.eps.abs()).max(h.abs());
        check_close(
            "Dual<Dual>: f'' vs central differences of f'",
            &[y.eps.eps],
            &[fd],
            FD_REL,
            scale,
        )?;
    }

    /// `c op x` (constant on the left) differentiates exactly like `from_f64(c) op x` in
    /// every mode: `Dual<f64>`, `Dual<Dual<f64>>`, `Var` and `Dual<Var>`.
    #[test]
    fn constants_on_the_left(c in -3.0f64..3.0, x in 0.5f64..3.0, neg in any::<bool>()) {
        let x = if neg { -x } else { x };
        // Dual<f64>: value and first derivative
        let l = left_ops(c, Dual::variable(x));
        let r = right_ops(c, Dual::variable(x));
        for k in 0..4 {
            check_close(&format!("Dual op {k} value"), &[l[k].re], &[r[k].re], 1e-15, 1.0)?;
            check_close(&format!("Dual op {k} derivative"), &[l[k].eps], &[r[k].eps], 1e-14, 1.0)?;
        }
        // Dual<Dual<f64>>: second derivative
        let xx = Dual::new(Dual::new(x, 1.0), Dual::new(1.0, 0.0));
        let (l, r) = (left_ops(c, xx), right_ops(c, xx));
        for k in 0..4 {
            check_close(
                &format!("Dual<Dual> op {k} f''"),
                &[l[k].eps.eps],
                &[r[k].eps.eps],
                1e-14,
                1.0,
            )?;
        }
        // Var: gradients on a tape
        let tape = Tape::new();
        let xv = tape.var(x);
        let (l, r) = (left_ops(c, xv), right_ops(c, xv));
        for k in 0..4 {
            let gl = tape.gradient(l[k]).unwrap().wrt(xv);
            let gr = tape.gradient(r[k]).unwrap().wrt(xv);
            check_close(
                &format!("Var op {k} value"),
                &[l[k].value()],
                &[r[k].value()],
                1e-15,
                1.0,
            )?;
            check_close(&format!("Var op {k} derivative"), &[gl], &[gr], 1e-14, 1.0)?;
        }
        // Dual<Var>: reverse over forward gives the second derivative
        let xd = Dual::new(xv, Var::constant(1.0));
        let (l, r) = (left_ops(c, xd), right_ops(c, xd));
        for k in 0..4 {
            let gl = tape.gradient(l[k].eps).unwrap().wrt(xv);
            let gr = tape.gradient(r[k].eps).unwrap().wrt(xv);
            check_close(&format!("Dual<Var> op {k} f''"), &[gl], &[gr], 1e-14, 1.0)?;
        }
    }
}

/// Generic code can only write `S::from_f64(c) - x`: a bound like `f64: Sub<S>` on `Real`
/// would not be implied at use sites. So the four `f64`-on-the-left operators, which every
/// concrete scalar type implements, are reached through this small trait.
trait LeftOps: Real {
    fn left(c: f64, x: Self) -> [Self; 4];
}
macro_rules! left_ops_for {
    ($($t:ty),*) => {$(
        impl LeftOps for $t {
            fn left(c: f64, x: Self) -> [Self; 4] {
                [c + x, c - x, c * x, c / x]
            }
        }
    )*};
}
left_ops_for!(Dual<f64>, Dual<Dual<f64>>, Var, Dual<Var>);

fn left_ops<S: LeftOps>(c: f64, x: S) -> [S; 4] {
    S::left(c, x)
}

fn right_ops<S: Real>(c: f64, x: S) -> [S; 4] {
    let k = S::from_f64(c);
    [k + x, k - x, k * x, k / x]
}

/// Counts its evaluations by mode: plain f64, duals (forward mode), tape variables.
struct Counted {
    outputs: usize,
    plain: std::cell::Cell<usize>,
    forward: std::cell::Cell<usize>,
    reverse: std::cell::Cell<usize>,
}

impl VectorFn for Counted {
    fn eval<S: Real>(&self, x: &[S]) -> Vec<S> {
        let name = std::any::type_name::<S>();
        let counter = if name.contains("Dual") {
            &self.forward
        } else if name.contains("Var") {
            &self.reverse
        } else {
            &self.plain
        };
        counter.set(counter.get() + 1);
        (0..self.outputs)
            .map(|i| x.iter().fold(S::from_f64(i as f64), |acc, &v| acc * v + v))
            .collect()
    }
}

/// `jacobian` picks the cheaper mode, as documented: reverse mode (one recording) when
/// there are fewer outputs than inputs, forward mode (one dual pass per input) otherwise.
#[test]
fn jacobian_picks_the_mode_by_shape() {
    let x = [0.5, -1.0, 2.0];
    for (outputs, forward, reverse) in [(1, 0, 1), (2, 0, 1), (3, 3, 0), (5, 3, 0)] {
        let f = Counted {
            outputs,
            plain: 0.into(),
            forward: 0.into(),
            reverse: 0.into(),
        };
        let j = jacobian(&f, &x).unwrap();
        assert_eq!(j.shape(), (outputs, 3));
        assert_eq!(
            (f.forward.get(), f.reverse.get()),
            (forward, reverse),
            "{outputs} outputs"
        );
    }
}

/// Comparisons of duals act on the values only, so a generic function branches the same
/// way in every mode (`x == y` or `x < y` in user code never looks at derivatives); a dual
/// prints as `re + epsε`.
#[test]
fn duals_compare_by_value_and_print_both_parts() {
    let a = Dual::new(1.0, 2.0);
    assert!(a == Dual::new(1.0, -3.0));
    assert!(a != Dual::new(1.5, 2.0));
    assert!(a < Dual::new(1.5, -9.0) && a > Dual::new(0.5, 9.0));
    assert!(Dual::new(f64::NAN, 0.0) != Dual::new(f64::NAN, 0.0));
    assert_eq!(a.to_string(), "1 + 2ε");
    assert_eq!(Dual::new(-0.5, 0.25).to_string(), "-0.5 + 0.25ε");
    // A tape variable prints its value (with the formatter's options), like an f64.
    let tape = Tape::new();
    let v = tape.var(1.25);
    assert_eq!(
        (v.to_string(), format!("{v:.1}")),
        ("1.25".to_string(), "1.2".to_string())
    );
    drop(tape);
    // num_traits: zero means both parts zero.
    use num_traits::Zero;
    assert!(Dual::<f64>::zero().is_zero());
    assert!(!Dual::new(0.0, 1.0).is_zero() && !Dual::new(1.0, 0.0).is_zero());
}

/// `Real::max` / `Real::min` pick the larger / smaller operand by value in every mode,
/// with its derivative; a tie picks `self` (so the derivative is `self`'s, as documented).
#[test]
fn max_and_min_pick_an_operand_with_its_derivative() {
    let (a, b) = (Dual::new(1.0, 10.0), Dual::new(2.0, 20.0));
    assert_eq!((Real::max(a, b).eps, Real::max(b, a).eps), (20.0, 20.0));
    assert_eq!((Real::min(a, b).eps, Real::min(b, a).eps), (10.0, 10.0));
    let tie = Dual::new(1.0, -5.0);
    assert_eq!((Real::max(a, tie).eps, Real::min(a, tie).eps), (10.0, 10.0));
    assert_eq!((Real::max(tie, a).eps, Real::min(tie, a).eps), (-5.0, -5.0));
    assert_eq!((Real::max(1.0, 2.0), Real::min(1.0, 2.0)), (2.0, 1.0));
    // On the tape: the gradient reaches the chosen operand only.
    let tape = Tape::new();
    let (x, y) = (tape.var(3.0), tape.var(-1.0));
    let g = tape
        .gradient(Real::max(x, y) * 2.0 + Real::min(x, y) * 5.0)
        .unwrap();
    assert_eq!((g.wrt(x), g.wrt(y)), (2.0, 5.0));
}

/// |x|'s derivative is 0 at ±0 in every mode (the documented subgradient choice), ±1
/// elsewhere.
#[test]
fn abs_has_derivative_zero_at_zero() {
    for (x, d) in [(0.0, 0.0), (-0.0, 0.0), (2.0, 1.0), (-2.0, -1.0)] {
        assert_eq!(Real::abs(Dual::new(x, 1.0)).eps, d, "dual at {x}");
        let tape = Tape::new();
        let v = tape.var(x);
        assert_eq!(
            tape.gradient(Real::abs(v)).unwrap().wrt(v),
            d,
            "tape at {x}"
        );
    }
}

/// `Real::is_finite` looks at the primal value in every mode: a NaN or infinite value is
/// not finite whatever its derivative parts, and a finite value is finite even when a
/// derivative part is not.
#[test]
fn is_finite_reads_the_primal_value() {
    for (x, finite) in [(1.5, true), (f64::INFINITY, false), (f64::NAN, false)] {
        assert_eq!(Real::is_finite(&x), finite, "f64 {x}");
        assert_eq!(Real::is_finite(&Dual::new(x, 1.0)), finite, "dual {x}");
        let tape = Tape::new();
        assert_eq!(Real::is_finite(&tape.var(x)), finite, "tape {x}");
    }
    assert!(Real::is_finite(&Dual::new(1.0, f64::NAN)));
}

/// A `Var` compares and prints by its value (`{}` as the plain number; `{:?}` also names
/// its tape and node, or says it is a constant).
#[test]
fn vars_compare_and_print_by_value() {
    let tape = Tape::new();
    let (a, b) = (tape.var(1.5), tape.var(2.5));
    assert!(a == Var::constant(1.5) && a != b && b == tape.var(2.5));
    assert_eq!(format!("{a} {:.2}", b), "1.5 2.50");
    assert_eq!(format!("{:?}", Var::constant(2.0)), "Var(const 2)");
    let debug = format!("{a:?}");
    assert!(
        debug.starts_with("Var(1.5 @tape") && debug.ends_with("#0)"),
        "{debug}"
    );
}

/// `x^y`'s derivative in `y`, `x^y ln x`, is taken only where it is defined (`x > 0`): at
/// `x = 0` a tangent in `y` contributes nothing (instead of `0 · ln 0 = NaN`), while the
/// tangent in `x` keeps its `y x^(y-1)`.
#[test]
fn powf_at_zero_ignores_the_exponent_tangent() {
    let z = Real::powf(Dual::new(0.0, 0.0), Dual::new(2.0, 1.0));
    assert_eq!((z.re, z.eps), (0.0, 0.0));
    let z = Real::powf(Dual::new(0.0, 1.0), Dual::new(1.0, 1.0));
    assert_eq!((z.re, z.eps), (0.0, 1.0));
    // and for x > 0 both parts: d/dy 2^y at y = 3 is 8 ln 2
    let z = Real::powf(Dual::new(2.0, 0.0), Dual::new(3.0, 1.0));
    assert!((z.eps - 8.0 * 2f64.ln()).abs() <= 1e-15 * 8.0);
}
