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

use ad_core::{Dual, DualMat, MatOps, MatVar, Real, Seeds, Tape, VectorFn};
use common::dot::{DOT_REL, Io, check_dot, sweep};
use common::prims::{Out, PrimCase, all_prims, any_prim_case, prim_case};
use common::scalar_program::{Outputs, program_and_point};
use common::{check_close, dim, mat};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

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
