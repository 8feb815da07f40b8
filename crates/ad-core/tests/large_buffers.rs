//! Kernels write every entry of their outputs, on matrices large enough for recycled
//! buffers.
//!
//! Guarantees: with `ad_core::testing::poison_buffers(true)` (every buffer a kernel is about
//! to overwrite is filled with NaN first), every `MatOps` primitive on matrices of at least
//! 256 entries (buffers the system allocator hands out that small usually come zeroed; the
//! arena now pools every size, but these sizes were the ones that hid an unwritten entry),
//! evaluated repeatedly so that later evaluations get the
//! recycled buffers of earlier ones, gives the same value, gradient, JVP and HVP every time,
//! equal to the scalar-mode reference (`common::RefMat` on `Var` and `Dual<Var>`, which
//! uses no matrix kernel). A kernel leaving part of its output unwritten fails this (NaN),
//! even where the stale contents would have been the right numbers; `src/testing.rs` shows
//! such a broken kernel being caught.
//!
//! Tolerance: `MODES_REL` of `tests/matrix_modes.rs` (the same derivative summed in another
//! order: at most ~10^4 terms of O(10) here, rounding <= 1e4 x 2.2e-16 x 10 ~ 2e-11 of
//! the scale in the worst case, typically 1e-14), so 1e-10 of max(1, |result|); a missing
//! entry is NaN and a wrong rule is off by O(1). Repeated evaluations must agree bit for
//! bit (the same code on the same inputs).

mod common;

use ad_core::{ScalarFn, grad, hvp, hvp_mat, jvp_mat, value_and_grad_mat};
use common::prims::{PrimCase, all_prims, build_case};
use common::{AsScalar, check_close, dotv, flatten, norm_inf, shapes};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

/// See the file header.
const REL: f64 = 1e-10;

/// Random cases of one primitive whose matrices have 16..=20 rows and columns.
fn large_case(prim: common::prims::Prim) -> impl Strategy<Value = PrimCase> {
    (
        (16usize..=20, 16usize..=20, 16usize..=20),
        any::<[usize; 4]>(),
        proptest::collection::vec(-1.0f64..1.0, 300..400),
    )
        .prop_map(move |(dims, ints, pool)| build_case(prim, dims, ints, &pool))
}

fn bits(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn check(case: &PrimCase) -> Result<(), TestCaseError> {
    ad_core::testing::poison_buffers(true);
    let (f, p, v) = (&case.f, &case.p, &case.v);
    prop_assert!(p.iter().map(|m| m.len()).max().unwrap() >= 256);
    let x = flatten(p);
    let vf = flatten(v);
    let scalar_f = AsScalar {
        f,
        shapes: shapes(p),
    };
    let y_ref = scalar_f.eval(&x);
    let g_ref = grad(&scalar_f, &x).unwrap();
    let hv_ref = hvp(&scalar_f, &x, &vf).unwrap();
    let gscale = 1.0f64.max(norm_inf(&g_ref));
    let hscale = 1.0f64.max(norm_inf(&hv_ref));

    let mut first: Option<(Vec<u64>, Vec<u64>, Vec<u64>)> = None;
    for _ in 0..3 {
        let (y, g) = value_and_grad_mat(f, p).unwrap();
        let g = flatten(&g);
        check_close("value", &[y], &[y_ref], REL, 1.0)?;
        check_close("gradient", &g, &g_ref, REL, gscale)?;
        let (yj, dy) = jvp_mat(f, p, v).unwrap();
        check_close("jvp value", &[yj], &[y_ref], REL, 1.0)?;
        let terms: f64 = g_ref.iter().zip(&vf).map(|(a, b)| (a * b).abs()).sum();
        check_close("jvp", &[dy], &[dotv(&g_ref, &vf)], REL, 1.0f64.max(terms))?;
        let hv = flatten(&hvp_mat(f, p, v).unwrap());
        check_close("hvp", &hv, &hv_ref, REL, hscale)?;
        let now = (bits(&g), bits(&[dy]), bits(&hv));
        match &first {
            None => first = Some(now),
            Some(f0) => prop_assert!(f0 == &now, "a repeated evaluation changed its results"),
        }
    }
    Ok(())
}

/// Every primitive, each with its own random large cases.
#[test]
fn every_primitive_on_large_matrices_repeatedly() {
    for prim in all_prims() {
        let mut runner = TestRunner::new(common::config(3));
        runner
            .run(&large_case(prim), |case| check(&case))
            .unwrap_or_else(|e| panic!("{prim:?}: {e}"));
    }
}
