//! Random straight-line scalar programs that use every primitive of [`Real`].
//!
//! Generic over the scalar, so one program runs on `f64`, `Dual`, `Var`, `Dual<Var>` and
//! `Dual<Dual<f64>>`. Every register stays in [-3, 3] and every function is applied inside
//! its domain (see [`apply`]), so derivatives of every order stay moderate and finite
//! differences are accurate; kinks are reported so tests can avoid straddling them.

use ad_core::{Real, ScalarFn, VectorFn};
use proptest::prelude::*;

use super::step;

/// One instruction kind. Each uses one named primitive and keeps its result in [-3, 3]
/// when its operands are in [-3, 3] (the guard is noted), so that a program never leaves
/// the domain of any function and its derivatives stay moderate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// (a + b) / 2
    Add,
    /// (a - b) / 2
    Sub,
    /// a * b / 3
    Mul,
    /// a / (b^2 + 1)
    Div,
    /// (a + c) * 0.75
    AddC,
    /// (c + a) * 0.75, constant on the left
    CAdd,
    /// (a - c) * 0.75
    SubC,
    /// (c - a) * 0.75, constant on the left
    CSub,
    /// a * c
    MulC,
    /// c * a
    CMul,
    /// a / d with |d| in [1, 2]
    DivC,
    /// 3c / (a^2 + 1)
    CDiv,
    /// -a
    Neg,
    /// +=, -=, *=, /= with variables and constants
    Assign,
    /// `Sum` of [a, b, one * c, zero] / 3
    Sum,
    /// exp(0.35 a)
    Exp,
    /// ln(softplus(a) + 0.1)
    Ln,
    /// ln_1p(0.3 a)
    Ln1p,
    /// sqrt(0.9 a^2 + 0.25)
    Sqrt,
    /// 3 (a/3)^n for n > 0, (0.1 a^2 + 1)^n for n < 0, a^0
    Powi(i32),
    /// (sigmoid(a) + 0.5)^(b / 2), variable base and exponent
    Powf,
    /// (sigmoid(a) + 0.5)^(1.5 c), constant exponent
    PowfConstExp,
    /// (1 + |c|)^(b / 2), constant base
    PowfConstBase,
    /// sin(a)
    Sin,
    /// cos(a)
    Cos,
    /// tanh(a)
    Tanh,
    /// sigmoid(a)
    Sigmoid,
    /// softplus(a) - 0.05
    Softplus,
    /// |a| (kink at a = 0)
    Abs,
    /// max(a, b) (kink at a = b)
    Max,
    /// min(a, b) (kink at a = b)
    Min,
    /// relu(a) (kink at a = 0)
    Relu,
    /// a^2 / 3
    Square,
    /// 1 / (a^2 + 0.5)
    Recip,
    /// if a > b { a / 2 } else { sin(b) }: a branch on `PartialOrd` (jump at a = b)
    Branch,
}

/// Every instruction kind (powi with every exponent in -3..=3).
pub const ALL_OPS: [Op; 41] = [
    Op::Add,
    Op::Sub,
    Op::Mul,
    Op::Div,
    Op::AddC,
    Op::CAdd,
    Op::SubC,
    Op::CSub,
    Op::MulC,
    Op::CMul,
    Op::DivC,
    Op::CDiv,
    Op::Neg,
    Op::Assign,
    Op::Sum,
    Op::Exp,
    Op::Ln,
    Op::Ln1p,
    Op::Sqrt,
    Op::Powi(-3),
    Op::Powi(-2),
    Op::Powi(-1),
    Op::Powi(0),
    Op::Powi(1),
    Op::Powi(2),
    Op::Powi(3),
    Op::Powf,
    Op::PowfConstExp,
    Op::PowfConstBase,
    Op::Sin,
    Op::Cos,
    Op::Tanh,
    Op::Sigmoid,
    Op::Softplus,
    Op::Abs,
    Op::Max,
    Op::Min,
    Op::Relu,
    Op::Square,
    Op::Recip,
    Op::Branch,
];

/// Apply one instruction. `c` is in [-1, 1]. Arguments at which the result is not smooth
/// (|x| at 0, max at a = b, ...) are pushed to `kinks`, so tests can tell whether a finite
/// difference straddles one.
pub fn apply<S: Real>(op: Op, a: S, b: S, c: f64, kinks: &mut Vec<f64>) -> S {
    let k = |v: f64| S::from_f64(v);
    match op {
        Op::Add => (a + b) * 0.5,
        Op::Sub => (a - b) * 0.5,
        Op::Mul => a * b * (1.0 / 3.0),
        Op::Div => a / (b * b + 1.0),
        Op::AddC => (a + c) * 0.75,
        Op::CAdd => (k(c) + a) * 0.75,
        Op::SubC => (a - c) * 0.75,
        Op::CSub => (k(c) - a) * 0.75,
        Op::MulC => a * c,
        Op::CMul => k(c) * a,
        Op::DivC => a / (1.0 + c.abs()).copysign(c),
        Op::CDiv => k(3.0 * c) / (a * a + 1.0),
        Op::Neg => -a,
        Op::Assign => {
            let mut t = a;
            t += b; // |t| <= 6
            t *= 0.25; // 1.5
            t -= c; // 2.5
            t -= b * 0.1; // 2.8
            t += c * 0.2; // 3.0
            t /= b * b * 0.1 + 1.0; // 3.0
            t *= b.tanh(); // 3.0
            t /= 1.25; // 2.4
            t
        }
        Op::Sum => [a, b, S::one() * c, S::zero()].into_iter().sum::<S>() * (1.0 / 3.0),
        Op::Exp => (a * 0.35).exp(),
        Op::Ln => (a.softplus() + 0.1).ln(),
        Op::Ln1p => (a * 0.3).ln_1p(),
        Op::Sqrt => (a * a * 0.9 + 0.25).sqrt(),
        Op::Powi(n) if n > 0 => (a * (1.0 / 3.0)).powi(n) * 3.0,
        Op::Powi(n) if n < 0 => (a * a * 0.1 + 1.0).powi(n),
        Op::Powi(n) => a.powi(n),
        Op::Powf => (a.sigmoid() + 0.5).powf(b * 0.5),
        Op::PowfConstExp => (a.sigmoid() + 0.5).powf(k(1.5 * c)),
        Op::PowfConstBase => k(1.0 + c.abs()).powf(b * 0.5),
        Op::Sin => a.sin(),
        Op::Cos => a.cos(),
        Op::Tanh => a.tanh(),
        Op::Sigmoid => a.sigmoid(),
        Op::Softplus => a.softplus() - 0.05,
        Op::Abs => {
            kinks.push(a.value());
            a.abs()
        }
        Op::Max => {
            kinks.push(b.value() - a.value());
            a.max(b)
        }
        Op::Min => {
            kinks.push(a.value() - b.value());
            a.min(b)
        }
        Op::Relu => {
            kinks.push(a.value());
            a.relu()
        }
        Op::Square => a.square() * (1.0 / 3.0),
        Op::Recip => (a * a + 0.5).recip(),
        Op::Branch => {
            kinks.push(a.value() - b.value());
            if a > b { a * 0.5 } else { b.sin() }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Instr {
    pub op: Op,
    /// Operand `a` is register `len - 1 - a % len` (small values chain the last results).
    pub a: usize,
    /// Operand `b` is register `b % len`.
    pub b: usize,
    /// A constant in [-1, 1].
    pub c: f64,
}

/// A straight-line program on registers: inputs first, then one register per instruction.
/// Its value is the last register plus a weighted sum of all instruction registers.
#[derive(Clone, Debug)]
pub struct Program {
    pub n: usize,
    pub instrs: Vec<Instr>,
    pub weights: Vec<f64>,
}

impl Program {
    pub fn registers<S: Real>(&self, x: &[S], kinks: &mut Vec<f64>) -> Vec<S> {
        assert_eq!(x.len(), self.n);
        let mut r: Vec<S> = x.to_vec();
        for ins in &self.instrs {
            let len = r.len();
            let a = r[len - 1 - ins.a % len];
            let b = r[ins.b % len];
            let v = apply(ins.op, a, b, ins.c, kinks);
            r.push(v);
        }
        r
    }

    pub fn output<S: Real>(&self, r: &[S]) -> S {
        let last = *r.last().unwrap();
        r[self.n..]
            .iter()
            .zip(&self.weights)
            .fold(last, |acc, (&v, &w)| acc + v * w)
    }

    /// Signs of every kink argument at `x` (which side of each kink the point is on).
    pub fn branches(&self, x: &[f64]) -> Vec<i8> {
        let mut kinks = Vec::new();
        self.registers(x, &mut kinks);
        kinks
            .iter()
            .map(|&k| (k > 0.0) as i8 - (k < 0.0) as i8)
            .collect()
    }

    /// True when `x` and every point of the central differences around it (`x ± h e_i`)
    /// take the same branches: then all of them evaluate one smooth piece of the program.
    pub fn smooth_around(&self, x: &[f64]) -> bool {
        let b0 = self.branches(x);
        let mut xp = x.to_vec();
        for i in 0..x.len() {
            for s in [1.0, -1.0] {
                xp[i] = x[i] + s * step(x[i]);
                if self.branches(&xp) != b0 {
                    return false;
                }
            }
            xp[i] = x[i];
        }
        true
    }
}

impl ScalarFn for Program {
    fn eval<S: Real>(&self, x: &[S]) -> S {
        let r = self.registers(x, &mut Vec::new());
        self.output(&r)
    }
}

/// The same program seen as a vector function: its output, its last and first registers
/// and one in the middle.
pub struct Outputs<'a>(pub &'a Program);

impl VectorFn for Outputs<'_> {
    fn eval<S: Real>(&self, x: &[S]) -> Vec<S> {
        let r = self.0.registers(x, &mut Vec::new());
        vec![self.0.output(&r), r[r.len() - 1], r[0], r[r.len() / 2]]
    }
}

pub fn op_strategy() -> impl Strategy<Value = Op> {
    (0..ALL_OPS.len()).prop_map(|i| ALL_OPS[i])
}

pub fn instr_strategy() -> impl Strategy<Value = Instr> {
    (
        op_strategy(),
        prop_oneof![Just(0usize), 0usize..16],
        0usize..16,
        -1.0f64..1.0,
    )
        .prop_map(|(op, a, b, c)| Instr { op, a, b, c })
}

/// A program with 1..=4 inputs and 1..=12 instructions, and a point in [-3, 3]^n.
pub fn program_and_point(max_inputs: usize) -> impl Strategy<Value = (Program, Vec<f64>)> {
    (
        1..=max_inputs,
        proptest::collection::vec(instr_strategy(), 1..=12),
    )
        .prop_flat_map(|(n, instrs)| {
            let m = instrs.len();
            (
                Just(n),
                Just(instrs),
                proptest::collection::vec(-1.0f64..1.0, m),
                proptest::collection::vec(-3.0f64..3.0, n),
            )
        })
        .prop_map(|(n, instrs, weights, x)| (Program { n, instrs, weights }, x))
}

/// A fixed program that uses every instruction kind once, in a chain mixed with the inputs.
pub fn every_primitive_program(n: usize) -> Program {
    let instrs = ALL_OPS
        .iter()
        .enumerate()
        .map(|(i, &op)| Instr {
            op,
            a: 0,
            b: i * 7 + 3,
            c: ((i as f64) * 0.61).sin(),
        })
        .collect::<Vec<_>>();
    let weights = (0..instrs.len())
        .map(|i| ((i as f64) * 1.3).cos() * 0.5)
        .collect();
    Program { n, instrs, weights }
}
