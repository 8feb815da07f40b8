//! The dot-product test: `<vjp(u), v> == <u, jvp(v)>`.
//!
//! Guarantees, on one recording each, with random inputs, cotangents `u` and tangents `v`:
//! - for every matrix primitive (every case of `common::prims`, with all operands variables
//!   or the first one a `constant_mat`, whose seed must be ignored), for a matrix scaled by a
//!   leaf scalar `Var`, for every scalar primitive, for `f64`-on-the-left arithmetic and for
//!   random multi-output scalar programs, the tape's reverse sweep (`Tape::backward` with
//!   `Seeds` on outputs) and its forward sweep (`Tape::forward` with `Seeds` on inputs) are
//!   adjoint, and the forward sweep equals `DualMat`/`Dual` forward mode;
//! - the same for custom ops (`custom_op`, `custom_scalar_op` with `FnRule`): a random
//!   linear map `y = A x`, a nonlinear op with two inputs and two outputs, a scalar op with
//!   a constant input, and custom ops inside a larger graph; the tape then gives the same
//!   gradient as the equivalent built-in composition;
//! - the check has teeth: a rule whose JVP is not the adjoint of its VJP fails it.
//!
//! Tolerance: both sides are the same bilinear form `u^T J v`, summed in different orders.
//! Each side's rounding error is at most (length of the sums, <= ~10^3 here) x 2.2e-16 x
//! the size of the summed terms, which for random data is of the order of the products of
//! norms `|vjp(u)| |v|` and `|u| |jvp(v)|` (Cauchy-Schwarz bounds each side by them): about
//! 2e-13 of that scale. `DOT_REL = 1e-12` keeps a 5x margin; a wrong rule is off by O(1).
//! (Measured with `PROPTEST_CASES=10000 AD_TOL_REPORT=1`: at most 5e-15 of the scale.)

mod common;

use ad_core::{
    AdError, Dual, DualMat, FnRule, MatOps, MatVar, Real, RuleError, Seeds, Tape, Var, VectorFn,
    custom_op, custom_scalar_op,
};
use common::prims::{Out, PrimCase, all_prims, any_prim_case, prim_case};
use common::scalar_program::{Outputs, program_and_point};
use common::{check_close, dim, mat, norm2};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

/// See the file header.
const DOT_REL: f64 = 1e-12;

/// Inputs with their tangents and outputs with their cotangents, on one tape.
#[derive(Default)]
struct Io {
    in_mats: Vec<(MatVar, DMatrix<f64>)>,
    in_vars: Vec<(Var, f64)>,
    out_mats: Vec<(MatVar, DMatrix<f64>)>,
    out_vars: Vec<(Var, f64)>,
}

/// The results of one reverse and one forward sweep.
struct Swept {
    /// Adjoints of the inputs (the VJP).
    in_adj_mats: Vec<DMatrix<f64>>,
    in_adj_vars: Vec<f64>,
    /// Tangents of the outputs (the JVP).
    out_tan_mats: Vec<DMatrix<f64>>,
    out_tan_vars: Vec<f64>,
}

fn sweep(tape: &Tape, io: &Io) -> Result<Swept, AdError> {
    let mut back = Seeds::new();
    for (y, u) in &io.out_mats {
        back = back.mat(y, u.clone());
    }
    for &(y, u) in &io.out_vars {
        back = back.var(y, u);
    }
    let mut fwd = Seeds::new();
    for (x, v) in &io.in_mats {
        fwd = fwd.mat(x, v.clone());
    }
    for &(x, v) in &io.in_vars {
        fwd = fwd.var(x, v);
    }
    let g = tape.backward(&back)?;
    let t = tape.forward(&fwd)?;
    Ok(Swept {
        in_adj_mats: io.in_mats.iter().map(|(x, _)| g.wrt_mat(x)).collect(),
        in_adj_vars: io.in_vars.iter().map(|&(x, _)| g.wrt(x)).collect(),
        out_tan_mats: io.out_mats.iter().map(|(y, _)| t.of_mat(y)).collect(),
        out_tan_vars: io.out_vars.iter().map(|&(y, _)| t.of(y)).collect(),
    })
}

fn concat_all(mats: &[DMatrix<f64>], vars: &[f64]) -> Vec<f64> {
    let mut v = common::flatten(mats);
    v.extend_from_slice(vars);
    v
}

/// `<vjp(u), v> == <u, jvp(v)>` within `DOT_REL` of the products of norms.
fn check_dot(what: &str, io: &Io, s: &Swept) -> Result<(), TestCaseError> {
    let vs: Vec<DMatrix<f64>> = io.in_mats.iter().map(|(_, v)| v.clone()).collect();
    let vv: Vec<f64> = io.in_vars.iter().map(|&(_, v)| v).collect();
    let us: Vec<DMatrix<f64>> = io.out_mats.iter().map(|(_, u)| u.clone()).collect();
    let uv: Vec<f64> = io.out_vars.iter().map(|&(_, u)| u).collect();
    let (v, u) = (concat_all(&vs, &vv), concat_all(&us, &uv));
    let vjp = concat_all(&s.in_adj_mats, &s.in_adj_vars);
    let jvp = concat_all(&s.out_tan_mats, &s.out_tan_vars);
    let lhs = common::dotv(&vjp, &v);
    let rhs = common::dotv(&u, &jvp);
    let scale = norm2(&vjp) * norm2(&v) + norm2(&u) * norm2(&jvp);
    common::report_ratio(
        what,
        (lhs - rhs).abs() / (DOT_REL * scale).max(f64::MIN_POSITIVE),
    );
    prop_assert!(
        (lhs - rhs).abs() <= DOT_REL * scale,
        "{what}: <vjp(u), v> = {lhs:e} but <u, jvp(v)> = {rhs:e} (diff {:e}, scale {scale:e})",
        (lhs - rhs).abs()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Matrix primitives
// ---------------------------------------------------------------------------------------

/// The dot-product test for one primitive case. With `first_constant`, the first operand
/// enters as `Tape::constant_mat` when the primitive has more than one: it must take no
/// tangent (its seed is ignored) and receive no adjoint.
fn matrix_primitive(case: &PrimCase, first_constant: bool) -> Result<(), TestCaseError> {
    let what = format!(
        "{:?} (first operand constant: {first_constant})",
        case.f.prim
    );
    let constant = |i: usize| first_constant && i == 0 && case.p.len() > 1;
    let tape = Tape::new();
    let xs: Vec<MatVar> = case
        .p
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if constant(i) {
                tape.constant_mat(p.clone())
            } else {
                tape.mat_var(p.clone())
            }
        })
        .collect();
    // every operand is seeded, the constant too: the forward sweep must ignore that seed
    // (a constant has no tangent, as it has no adjoint), or the sweeps would not be adjoint
    let mut io = Io {
        in_mats: xs.iter().copied().zip(case.v.iter().cloned()).collect(),
        ..Io::default()
    };
    // forward mode on DualMat<DMatrix<f64>>, for comparison (a constant has tangent 0)
    let duals: Vec<DualMat<DMatrix<f64>>> = case
        .p
        .iter()
        .zip(&case.v)
        .enumerate()
        .map(|(i, (p, v))| DualMat::new(p.clone(), if constant(i) { v * 0.0 } else { v.clone() }))
        .collect();
    if case.p.len() > 1 && first_constant {
        // the constant's adjoint reads as zeros, whatever flows through it
        let y = match case.f.apply(&xs) {
            Out::Mat(y) => tape.backward(&Seeds::new().mat(&y, case.f.w.clone())),
            Out::Scalar(y) => tape.backward(&Seeds::new().var(y, 1.0)),
        };
        let g0 = y.unwrap().wrt_mat(&xs[0]);
        prop_assert!(
            g0.iter().all(|&g| g == 0.0),
            "{}: constant operand got adjoint {}",
            what,
            g0
        );
    }
    let u_scalar = 1.0 + case.f.c; // a cotangent for scalar outputs, in [-1, 3]
    match (case.f.apply(&xs), case.f.apply(&duals)) {
        (Out::Mat(y), Out::Mat(yd)) => {
            prop_assert_eq!(y.value(), yd.re.clone(), "{}: values", what);
            io.out_mats.push((y, case.f.w.clone()));
            let s = sweep(&tape, &io).unwrap();
            check_dot(&what, &io, &s)?;
            let t = &s.out_tan_mats[0];
            let scale = 1.0f64.max(common::norm_inf(t.as_slice()));
            check_close(
                &format!("{what}: tape forward vs DualMat"),
                t.as_slice(),
                yd.eps.as_slice(),
                DOT_REL,
                scale,
            )?;
        }
        (Out::Scalar(y), Out::Scalar(yd)) => {
            prop_assert_eq!(y.value(), yd.re, "{}: values", what);
            io.out_vars.push((y, u_scalar));
            let s = sweep(&tape, &io).unwrap();
            check_dot(&what, &io, &s)?;
            let t = s.out_tan_vars[0];
            check_close(
                &format!("{what}: tape forward vs DualMat"),
                &[t],
                &[yd.eps],
                DOT_REL,
                1.0f64.max(t.abs()),
            )?;
        }
        _ => prop_assert!(false, "{}: modes disagree on the kind of result", what),
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::config(128))]

    #[test]
    fn random_matrix_primitive(case in any_prim_case(), first_constant in any::<bool>()) {
        matrix_primitive(&case, first_constant)?;
    }

    /// `scale` by a leaf scalar variable (its tangent and adjoint enter the test too).
    #[test]
    fn scale_by_scalar_variable(
        (a, v, u) in (dim(), dim()).prop_flat_map(|(m, n)| {
            (mat(m, n, -3.0, 3.0), mat(m, n, -1.0, 1.0), mat(m, n, -1.0, 1.0))
        }),
        s in -3.0f64..3.0,
        ds in -1.0f64..1.0,
    ) {
        let tape = Tape::new();
        let (x, sv) = (tape.mat_var(a.clone()), tape.var(s));
        let y = x.scale(sv * sv.sin()); // a scalar op between the leaf and the scale
        let io = Io {
            in_mats: vec![(x, v.clone())],
            in_vars: vec![(sv, ds)],
            out_mats: vec![(y, u)],
            ..Io::default()
        };
        let sw = sweep(&tape, &io).unwrap();
        check_dot("scale by Var", &io, &sw)?;
        let sd = Dual::new(s, ds);
        let yd = DualMat::new(a, v).scale(sd * sd.sin());
        check_close(
            "scale by Var: tape forward vs DualMat",
            sw.out_tan_mats[0].as_slice(),
            yd.eps.as_slice(),
            DOT_REL,
            1.0,
        )?;
    }
}

/// Every matrix primitive, each with its own random cases.
#[test]
fn every_matrix_primitive() {
    for prim in all_prims() {
        let mut runner = TestRunner::new(common::config(16));
        runner
            .run(&(prim_case(prim), any::<bool>()), |(case, c)| {
                matrix_primitive(&case, c)
            })
            .unwrap_or_else(|e| panic!("{prim:?}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------
// Scalar primitives and programs
// ---------------------------------------------------------------------------------------

/// Each scalar primitive applied directly (no guards): `x` is positive where the domain
/// asks for it, `y` anything in [-3, 3], `c` a constant in [-1, 1].
#[derive(Clone, Copy, Debug)]
enum SPrim {
    Add,
    Sub,
    Mul,
    Div,
    AddC,
    SubC,
    MulC,
    DivC,
    ConstSub,
    ConstDiv,
    Neg,
    AddAssign,
    SubAssign,
    MulAssign,
    DivAssign,
    AssignConst,
    Sum,
    Exp,
    Ln,
    Ln1p,
    Sqrt,
    Powi(i32),
    Powf,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Softplus,
    Abs,
    Max,
    Min,
    Relu,
    Square,
    Recip,
}

const SPRIMS: [SPrim; 38] = [
    SPrim::Add,
    SPrim::Sub,
    SPrim::Mul,
    SPrim::Div,
    SPrim::AddC,
    SPrim::SubC,
    SPrim::MulC,
    SPrim::DivC,
    SPrim::ConstSub,
    SPrim::ConstDiv,
    SPrim::Neg,
    SPrim::AddAssign,
    SPrim::SubAssign,
    SPrim::MulAssign,
    SPrim::DivAssign,
    SPrim::AssignConst,
    SPrim::Sum,
    SPrim::Exp,
    SPrim::Ln,
    SPrim::Ln1p,
    SPrim::Sqrt,
    SPrim::Powi(-2),
    SPrim::Powi(0),
    SPrim::Powi(1),
    SPrim::Powi(3),
    SPrim::Powf,
    SPrim::Sin,
    SPrim::Cos,
    SPrim::Tanh,
    SPrim::Sigmoid,
    SPrim::Softplus,
    SPrim::Abs,
    SPrim::Max,
    SPrim::Min,
    SPrim::Relu,
    SPrim::Square,
    SPrim::Recip,
    SPrim::Powi(-1),
];

impl SPrim {
    fn positive_x(self) -> bool {
        matches!(self, SPrim::Ln | SPrim::Sqrt | SPrim::Powf | SPrim::Ln1p)
    }

    fn apply<S: Real>(self, x: S, y: S, c: f64) -> S {
        match self {
            SPrim::Add => x + y,
            SPrim::Sub => x - y,
            SPrim::Mul => x * y,
            SPrim::Div => y / x,
            SPrim::AddC => x + c,
            SPrim::SubC => x - c,
            SPrim::MulC => x * c,
            SPrim::DivC => x / (c + 2.0),
            SPrim::ConstSub => S::from_f64(c) - x,
            SPrim::ConstDiv => S::from_f64(c) / x,
            SPrim::Neg => -x,
            SPrim::AddAssign => {
                let mut t = x;
                t += y;
                t
            }
            SPrim::SubAssign => {
                let mut t = x;
                t -= y;
                t
            }
            SPrim::MulAssign => {
                let mut t = x;
                t *= y;
                t
            }
            SPrim::DivAssign => {
                let mut t = y;
                t /= x;
                t
            }
            SPrim::AssignConst => {
                let mut t = x;
                t += c;
                t -= 2.0 * c;
                t *= c;
                t /= 1.5;
                t
            }
            SPrim::Sum => [x, y, S::from_f64(c), x].into_iter().sum(),
            SPrim::Exp => x.exp(),
            SPrim::Ln => x.ln(),
            SPrim::Ln1p => x.ln_1p(),
            SPrim::Sqrt => x.sqrt(),
            SPrim::Powi(n) => x.powi(n),
            SPrim::Powf => x.powf(y),
            SPrim::Sin => x.sin(),
            SPrim::Cos => x.cos(),
            SPrim::Tanh => x.tanh(),
            SPrim::Sigmoid => x.sigmoid(),
            SPrim::Softplus => x.softplus(),
            SPrim::Abs => x.abs(),
            SPrim::Max => x.max(y),
            SPrim::Min => x.min(y),
            SPrim::Relu => x.relu(),
            SPrim::Square => x.square(),
            SPrim::Recip => x.recip(),
        }
    }
}

fn scalar_primitive(
    p: SPrim,
    mag: f64,
    neg: bool,
    y: f64,
    c: f64,
    v: [f64; 2],
    u: f64,
) -> Result<(), TestCaseError> {
    let x = if neg && !p.positive_x() { -mag } else { mag };
    let tape = Tape::new();
    let (xv, yv) = (tape.var(x), tape.var(y));
    let out = p.apply(xv, yv, c);
    let io = Io {
        in_vars: vec![(xv, v[0]), (yv, v[1])],
        out_vars: vec![(out, u)],
        ..Io::default()
    };
    let s = sweep(&tape, &io).unwrap();
    check_dot(&format!("{p:?}"), &io, &s)?;
    let d = p.apply(Dual::new(x, v[0]), Dual::new(y, v[1]), c);
    prop_assert_eq!(out.value(), d.re, "{:?}: values", p);
    check_close(
        &format!("{p:?}: tape forward vs Dual"),
        &[s.out_tan_vars[0]],
        &[d.eps],
        DOT_REL,
        1.0,
    )
}

/// `c op x` with the constant on the left (concrete `f64` operators on `Var`).
fn left_constant(x: f64, c: f64, v: f64, u: f64) -> Result<(), TestCaseError> {
    let tape = Tape::new();
    let xv = tape.var(x);
    let outs = [c + xv, c - xv, c * xv, c / xv];
    let d = Dual::new(x, v);
    let duals = [c + d, c - d, c * d, c / d];
    for (k, (&o, dk)) in outs.iter().zip(duals).enumerate() {
        let io = Io {
            in_vars: vec![(xv, v)],
            out_vars: vec![(o, u)],
            ..Io::default()
        };
        let s = sweep(&tape, &io).unwrap();
        check_dot(&format!("left constant op {k}"), &io, &s)?;
        check_close(
            &format!("left constant op {k}: tape forward vs Dual"),
            &[s.out_tan_vars[0]],
            &[dk.eps],
            DOT_REL,
            1.0,
        )?;
    }
    Ok(())
}

fn scalar_args() -> impl Strategy<Value = (f64, bool, f64, f64, [f64; 2], f64)> {
    (
        0.3f64..3.0,
        any::<bool>(),
        -3.0f64..3.0,
        -1.0f64..1.0,
        [-1.0f64..1.0, -1.0f64..1.0],
        -2.0f64..2.0,
    )
}

proptest! {
    #![proptest_config(common::config(128))]

    #[test]
    fn random_scalar_primitive(i in 0..SPRIMS.len(), (mag, neg, y, c, v, u) in scalar_args()) {
        scalar_primitive(SPRIMS[i], mag, neg, y, c, v, u)?;
    }

    #[test]
    fn constant_on_the_left(
        mag in 0.3f64..3.0,
        neg in any::<bool>(),
        c in -3.0f64..3.0,
        v in -1.0f64..1.0,
        u in -2.0f64..2.0,
    ) {
        left_constant(if neg { -mag } else { mag }, c, v, u)?;
    }

    /// Random programs over every scalar primitive, with four outputs.
    #[test]
    fn random_scalar_programs(
        (prog, x) in program_and_point(4),
        seeds in proptest::collection::vec(-1.0f64..1.0, 8),
    ) {
        let tape = Tape::new();
        let xs = tape.vars(&x);
        let ys = Outputs(&prog).eval(&xs);
        let v = &seeds[..x.len()];
        let u = &seeds[4..];
        let io = Io {
            in_vars: xs.iter().copied().zip(v.iter().copied()).collect(),
            out_vars: ys.iter().copied().zip(u.iter().copied()).collect(),
            ..Io::default()
        };
        let s = sweep(&tape, &io).unwrap();
        check_dot("scalar program", &io, &s)?;
        let xd: Vec<Dual<f64>> = x.iter().zip(v).map(|(&a, &d)| Dual::new(a, d)).collect();
        let yd: Vec<f64> = Outputs(&prog).eval(&xd).iter().map(|d| d.eps).collect();
        check_close(
            "scalar program: tape forward vs Dual",
            &s.out_tan_vars,
            &yd,
            DOT_REL,
            1.0f64.max(common::norm_inf(&yd)),
        )?;
    }
}

/// Every scalar primitive, each with its own random cases.
#[test]
fn every_scalar_primitive() {
    for p in SPRIMS {
        let mut runner = TestRunner::new(common::config(32));
        runner
            .run(&scalar_args(), |(mag, neg, y, c, v, u)| {
                scalar_primitive(p, mag, neg, y, c, v, u)
            })
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
    }
}

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
