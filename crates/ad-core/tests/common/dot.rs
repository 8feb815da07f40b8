//! The dot-product test's machinery: inputs with tangents and outputs with cotangents on
//! one tape, one reverse and one forward sweep, and the comparison of both sides.

use ad_core::{AdError, MatVar, Seeds, Tape, Var};
use nalgebra::DMatrix;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::norm2;

/// Tolerance of the dot-product test: see the header of `tests/dot_product.rs`.
pub const DOT_REL: f64 = 1e-12;

/// Inputs with their tangents and outputs with their cotangents, on one tape.
#[derive(Default)]
pub struct Io {
    pub in_mats: Vec<(MatVar, DMatrix<f64>)>,
    pub in_vars: Vec<(Var, f64)>,
    pub out_mats: Vec<(MatVar, DMatrix<f64>)>,
    pub out_vars: Vec<(Var, f64)>,
}

/// The results of one reverse and one forward sweep.
pub struct Swept {
    /// Adjoints of the inputs (the VJP).
    pub in_adj_mats: Vec<DMatrix<f64>>,
    pub in_adj_vars: Vec<f64>,
    /// Tangents of the outputs (the JVP).
    pub out_tan_mats: Vec<DMatrix<f64>>,
    pub out_tan_vars: Vec<f64>,
}

pub fn sweep(tape: &Tape, io: &Io) -> Result<Swept, AdError> {
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

pub fn concat_all(mats: &[DMatrix<f64>], vars: &[f64]) -> Vec<f64> {
    let mut v = super::flatten(mats);
    v.extend_from_slice(vars);
    v
}

/// `<vjp(u), v> == <u, jvp(v)>` within `DOT_REL` of the products of norms.
pub fn check_dot(what: &str, io: &Io, s: &Swept) -> Result<(), TestCaseError> {
    let vs: Vec<DMatrix<f64>> = io.in_mats.iter().map(|(_, v)| v.clone()).collect();
    let vv: Vec<f64> = io.in_vars.iter().map(|&(_, v)| v).collect();
    let us: Vec<DMatrix<f64>> = io.out_mats.iter().map(|(_, u)| u.clone()).collect();
    let uv: Vec<f64> = io.out_vars.iter().map(|&(_, u)| u).collect();
    let (v, u) = (concat_all(&vs, &vv), concat_all(&us, &uv));
    let vjp = concat_all(&s.in_adj_mats, &s.in_adj_vars);
    let jvp = concat_all(&s.out_tan_mats, &s.out_tan_vars);
    let lhs = super::dotv(&vjp, &v);
    let rhs = super::dotv(&u, &jvp);
    let scale = norm2(&vjp) * norm2(&v) + norm2(&u) * norm2(&jvp);
    super::report_ratio(
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
