//! Accuracy and special-value tests of `ad_core::kernels` against Rust std (the platform libm)
//! and, for sigmoid and softplus, careful scalar references built from std functions.
//!
//! Every test runs on every dispatch path this CPU can execute (`paths::supported()`:
//! AVX-512, AVX2 + FMA, AVX without FMA, the SSE2 baseline, std), not only on the one the
//! public functions select.

mod common;

use ad_core::kernels::{self, paths};
use paths::{Kernel, Path};
use proptest::collection::vec;
use proptest::prelude::*;
use std::f64::consts::{FRAC_1_SQRT_2, SQRT_2};

/// A public kernel function of `ad_core::kernels`.
type PublicFn = fn(&[f64], &mut [f64]);

/// Distance in representable doubles between `a` and `b` (0 when both are NaN, `u64::MAX`
/// when only one is). Adjacent values across zero (`-0`, `+0`, smallest subnormals) count
/// as usual: `+0` and `-0` are 0 apart.
fn ulps(a: f64, b: f64) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0
        } else {
            u64::MAX
        };
    }
    let ord = |v: f64| {
        let b = v.to_bits();
        if b >> 63 == 1 {
            -((b & !(1 << 63)) as i128)
        } else {
            b as i128
        }
    };
    (ord(a) - ord(b))
        .unsigned_abs()
        .try_into()
        .unwrap_or(u64::MAX)
}

/// `1 / (1 + e^-x)`: `1/(1+e)` for `x >= 0`, `e/(1+e)` for `x < 0` with `e = exp(-|x|)`, and
/// the rounding error of `1 + e` taken into account.
fn sigmoid_ref(x: f64) -> f64 {
    let e = (-x.abs()).exp();
    let d = 1.0 + e;
    let d_err = e - (d - 1.0);
    let t = if x >= 0.0 { 1.0 } else { e } / d;
    t - t * (d_err / d)
}

/// `ln(1 + e^x)` as `max(x, 0) + ln_1p(exp(-|x|))`.
fn softplus_ref(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

const EXP_ULPS: u64 = 1;
const LN_ULPS: u64 = 1;
const TANH_ULPS: u64 = 2;
const SIGMOID_ULPS: u64 = 2;
const SOFTPLUS_ULPS: u64 = 2;

/// `kernel` on every supported path is within `bound` ulp of `reference` at every `xs`.
fn check(
    kernel: Kernel,
    reference: fn(f64) -> f64,
    bound: u64,
    xs: &[f64],
) -> Result<(), TestCaseError> {
    let name = kernel.name();
    for path in paths::supported() {
        let mut out = vec![f64::NAN; xs.len()];
        paths::run(path, kernel, xs, &mut out);
        for (&x, &got) in xs.iter().zip(&out) {
            let want = reference(x);
            let u = ulps(got, want);
            prop_assert!(
                u <= bound,
                "{name}({x:e}) = {got:e} on path {} but the reference gives {want:e}: {u} ulp apart",
                path.name()
            );
        }
    }
    Ok(())
}

/// Every f64 bit pattern: all finite values of all magnitudes, subnormals, ±0, ±inf, NaNs.
fn any_bits() -> impl Strategy<Value = f64> {
    any::<u64>().prop_map(f64::from_bits)
}

/// Subnormal and zero inputs of either sign.
fn subnormal() -> impl Strategy<Value = f64> {
    (0u64..1 << 52, any::<bool>()).prop_map(|(m, neg)| f64::from_bits(m | (u64::from(neg) << 63)))
}

/// Up to 70 inputs per case: covers whole chunks and every remainder length.
const LEN: std::ops::Range<usize> = 0..70;

proptest! {
    #![proptest_config(common::config(384))]

    #[test]
    fn exp_whole_range(xs in vec(any_bits(), LEN)) {
        check(Kernel::Exp, f64::exp, EXP_ULPS, &xs)?;
    }

    #[test]
    fn exp_typical(xs in vec(prop_oneof![-750.0..750.0f64, -1.0..1.0f64, -746.0..-707.0f64,
                                          707.0..710.0f64], LEN)) {
        check(Kernel::Exp, f64::exp, EXP_ULPS, &xs)?;
    }

    #[test]
    fn ln_whole_range(xs in vec(prop_oneof![any_bits(), subnormal()], LEN)) {
        check(Kernel::Ln, f64::ln, LN_ULPS, &xs)?;
    }

    #[test]
    fn ln_typical(xs in vec(prop_oneof![0.0..1e3f64, 0.5..2.0f64, 0.999..1.001f64], LEN)) {
        check(Kernel::Ln, f64::ln, LN_ULPS, &xs)?;
    }

    #[test]
    fn tanh_whole_range(xs in vec(prop_oneof![any_bits(), subnormal()], LEN)) {
        check(Kernel::Tanh, f64::tanh, TANH_ULPS, &xs)?;
    }

    #[test]
    fn tanh_typical(xs in vec(prop_oneof![-20.0..20.0f64, -1.0..1.0f64], LEN)) {
        check(Kernel::Tanh, f64::tanh, TANH_ULPS, &xs)?;
    }

    #[test]
    fn sigmoid_whole_range(xs in vec(prop_oneof![any_bits(), subnormal()], LEN)) {
        check(Kernel::Sigmoid, sigmoid_ref, SIGMOID_ULPS, &xs)?;
    }

    #[test]
    fn sigmoid_typical(xs in vec(prop_oneof![-20.0..20.0f64, -750.0..750.0f64], LEN)) {
        check(Kernel::Sigmoid, sigmoid_ref, SIGMOID_ULPS, &xs)?;
    }

    #[test]
    fn softplus_whole_range(xs in vec(prop_oneof![any_bits(), subnormal()], LEN)) {
        check(Kernel::Softplus, softplus_ref, SOFTPLUS_ULPS, &xs)?;
    }

    #[test]
    fn softplus_typical(xs in vec(prop_oneof![-20.0..20.0f64, -750.0..750.0f64], LEN)) {
        check(Kernel::Softplus, softplus_ref, SOFTPLUS_ULPS, &xs)?;
    }

    /// A value does not depend on its position in the slice (whole chunk or remainder).
    #[test]
    fn chunking_does_not_change_results(xs in vec(-30.0..30.0f64, LEN)) {
        for path in paths::supported() {
            for kernel in Kernel::ALL {
                let mut out = vec![0.0; xs.len()];
                paths::run(path, kernel, &xs, &mut out);
                for (i, &x) in xs.iter().enumerate() {
                    let mut one = [0.0];
                    paths::run(path, kernel, &[x], &mut one);
                    prop_assert_eq!(one[0].to_bits(), out[i].to_bits());
                }
            }
        }
    }

    /// The public functions give exactly what their selected path gives.
    #[test]
    fn public_functions_run_the_selected_path(xs in vec(any_bits(), LEN)) {
        let public: [(Kernel, PublicFn); 5] = [
            (Kernel::Tanh, kernels::tanh),
            (Kernel::Exp, kernels::exp),
            (Kernel::Ln, kernels::ln),
            (Kernel::Sigmoid, kernels::sigmoid),
            (Kernel::Softplus, kernels::softplus),
        ];
        for (kernel, f) in public {
            let mut want = vec![0.0; xs.len()];
            paths::run(paths::selected(kernel), kernel, &xs, &mut want);
            let mut got = vec![0.0; xs.len()];
            f(&xs, &mut got);
            for (g, w) in got.iter().zip(&want) {
                prop_assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()));
            }
        }
    }
}

/// `kernel(x)` on `path`, in the middle of a full chunk and alone in a remainder (which
/// must agree bit for bit).
fn eval(path: Path, kernel: Kernel, x: f64) -> f64 {
    let mut xs = [0.5; 11];
    xs[3] = x;
    let mut out = [0.0; 11];
    paths::run(path, kernel, &xs, &mut out);
    let mut one = [0.0];
    paths::run(path, kernel, &[x], &mut one);
    assert_eq!(
        one[0].to_bits(),
        out[3].to_bits(),
        "chunk and remainder disagree at {x:e} on path {}",
        path.name()
    );
    one[0]
}

/// `kernel(x)` is exactly `want` on every supported path (same bits; any NaN matches any NaN).
fn exact(kernel: Kernel, x: f64, want: f64) {
    for path in paths::supported() {
        let got = eval(path, kernel, x);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{}({x:e}) = {got:e} on path {}, expected exactly {want:e}",
            kernel.name(),
            path.name()
        );
    }
}

/// `kernel(x)` is within `bound` ulp of `reference(x)` on every supported path.
fn near(kernel: Kernel, reference: fn(f64) -> f64, bound: u64, x: f64) {
    for path in paths::supported() {
        let got = eval(path, kernel, x);
        let want = reference(x);
        let u = ulps(got, want);
        assert!(
            u <= bound,
            "{}({x:e}) = {got:e} on path {}, reference {want:e}: {u} ulp",
            kernel.name(),
            path.name()
        );
    }
}

/// The smallest subnormal, 4.9e-324.
const MIN_SUB: f64 = f64::from_bits(1);
/// The largest subnormal.
const MAX_SUB: f64 = f64::from_bits((1 << 52) - 1);

#[test]
fn exp_special_values() {
    let k = Kernel::Exp;
    exact(k, f64::NAN, f64::NAN);
    exact(k, f64::INFINITY, f64::INFINITY);
    exact(k, f64::NEG_INFINITY, 0.0);
    exact(k, 0.0, 1.0);
    exact(k, -0.0, 1.0);
    exact(k, MIN_SUB, 1.0);
    exact(k, -1e-300, 1.0);
    exact(k, f64::MAX, f64::INFINITY);
    exact(k, f64::MIN, 0.0);
    exact(k, 709.8, f64::INFINITY);
    exact(k, -746.0, 0.0);
    // Around the overflow threshold ln(f64::MAX) = 709.78271289338397.
    let t = 709.782712893384f64;
    for x in [
        t,
        f64::from_bits(t.to_bits() - 1),
        f64::from_bits(t.to_bits() + 1),
        709.0,
    ] {
        near(k, f64::exp, EXP_ULPS, x);
    }
    exact(k, f64::from_bits(t.to_bits() + 8), f64::INFINITY);
    // Underflow: the smallest normal result, subnormal results, the last nonzero one.
    for x in [
        -708.3964185322641,
        -708.4,
        -709.0,
        -720.0,
        -740.0,
        -745.0,
        -745.1332191019411,
    ] {
        near(k, f64::exp, EXP_ULPS, x);
    }
    exact(k, -745.1332191019411, MIN_SUB);
    exact(k, -745.1332191019412, 0.0);
    for x in [
        1.0,
        -1.0,
        std::f64::consts::LN_2,
        0.5,
        1e-8,
        -1e-17,
        100.0,
        -100.0,
    ] {
        near(k, f64::exp, EXP_ULPS, x);
    }
}

#[test]
fn ln_special_values() {
    let k = Kernel::Ln;
    exact(k, f64::NAN, f64::NAN);
    exact(k, f64::INFINITY, f64::INFINITY);
    exact(k, f64::NEG_INFINITY, f64::NAN);
    exact(k, 0.0, f64::NEG_INFINITY);
    exact(k, -0.0, f64::NEG_INFINITY);
    exact(k, -1.0, f64::NAN);
    exact(k, -MIN_SUB, f64::NAN);
    exact(k, f64::MIN, f64::NAN);
    exact(k, 1.0, 0.0);
    exact(k, 2.0, std::f64::consts::LN_2);
    exact(k, std::f64::consts::E, 1.0);
    for x in [
        MIN_SUB,
        2.0 * MIN_SUB,
        1e-310,
        MAX_SUB,
        f64::MIN_POSITIVE,
        f64::MAX,
    ] {
        near(k, f64::ln, LN_ULPS, x);
    }
    for x in [
        1.0 - f64::EPSILON / 2.0,
        1.0 + f64::EPSILON,
        FRAC_1_SQRT_2,
        SQRT_2,
    ] {
        near(k, f64::ln, LN_ULPS, x);
    }
}

#[test]
fn tanh_special_values() {
    let k = Kernel::Tanh;
    exact(k, f64::NAN, f64::NAN);
    exact(k, 0.0, 0.0);
    exact(k, -0.0, -0.0);
    exact(k, f64::INFINITY, 1.0);
    exact(k, f64::NEG_INFINITY, -1.0);
    exact(k, f64::MAX, 1.0);
    exact(k, f64::MIN, -1.0);
    exact(k, 22.0, 1.0);
    exact(k, -30.0, -1.0);
    for x in [
        MIN_SUB,
        -MIN_SUB,
        1e-310,
        MAX_SUB,
        -f64::MIN_POSITIVE,
        1e-300,
        -1e-20,
        1e-9,
    ] {
        exact(k, x, x);
    }
    // Around the switch between the two formulas (|x| = ln2 / 4) and near saturation.
    for x in [
        0.17328679513998632,
        0.1732867951399863,
        0.5,
        0.55,
        -1.0,
        18.0,
        19.0,
        19.1,
        -21.9,
    ] {
        near(k, f64::tanh, TANH_ULPS, x);
    }
}

#[test]
fn sigmoid_special_values() {
    let k = Kernel::Sigmoid;
    exact(k, f64::NAN, f64::NAN);
    exact(k, 0.0, 0.5);
    exact(k, -0.0, 0.5);
    exact(k, f64::INFINITY, 1.0);
    exact(k, f64::NEG_INFINITY, 0.0);
    exact(k, f64::MAX, 1.0);
    exact(k, f64::MIN, 0.0);
    exact(k, 40.0, 1.0);
    exact(k, -800.0, 0.0);
    for x in [
        MIN_SUB, -1e-300, 36.0, 37.0, -36.0, -40.0, -700.0, -709.0, -740.0, -745.0,
    ] {
        near(k, sigmoid_ref, SIGMOID_ULPS, x);
    }
}

#[test]
fn softplus_special_values() {
    let k = Kernel::Softplus;
    exact(k, f64::NAN, f64::NAN);
    exact(k, 0.0, std::f64::consts::LN_2);
    exact(k, -0.0, std::f64::consts::LN_2);
    exact(k, f64::INFINITY, f64::INFINITY);
    exact(k, f64::NEG_INFINITY, 0.0);
    exact(k, f64::MAX, f64::MAX);
    exact(k, f64::MIN, 0.0);
    exact(k, 1e300, 1e300);
    exact(k, 40.0, 40.0);
    exact(k, -800.0, 0.0);
    for x in [
        MIN_SUB,
        -1e-300,
        0.8813735870195429,
        -0.8813735870195429,
        36.0,
        37.0,
        -40.0,
    ] {
        near(k, softplus_ref, SOFTPLUS_ULPS, x);
    }
    for x in [-700.0, -709.0, -740.0, -745.0] {
        near(k, softplus_ref, SOFTPLUS_ULPS, x);
    }
}

#[test]
fn empty_slices() {
    for kernel in [
        kernels::tanh,
        kernels::exp,
        kernels::ln,
        kernels::sigmoid,
        kernels::softplus,
    ] {
        kernel(&[], &mut []);
    }
}

#[test]
#[should_panic(expected = "input length 3 != output length 2")]
fn length_mismatch_panics() {
    kernels::tanh(&[1.0, 2.0, 3.0], &mut [0.0; 2]);
}

#[test]
#[should_panic(expected = "input length 0 != output length 1")]
fn length_mismatch_panics_softplus() {
    kernels::softplus(&[], &mut [0.0; 1]);
}

#[test]
fn path_api_is_consistent() {
    let supported = paths::supported();
    // The portable paths run everywhere; the best vector path is the first supported one.
    assert!(supported.contains(&Path::Baseline) && supported.contains(&Path::Std));
    assert_eq!(supported[0], paths::best_vector_path());
    for p in Path::ALL {
        assert_eq!(supported.contains(&p), p.is_supported(), "{}", p.name());
    }
    let report = paths::describe();
    // The report groups kernels by path, paths in order of first use.
    let mut groups: Vec<(Path, Vec<&str>)> = Vec::new();
    for k in Kernel::ALL {
        let p = paths::selected(k);
        match groups.iter().position(|(q, _)| *q == p) {
            Some(i) => groups[i].1.push(k.name()),
            None => groups.push((p, vec![k.name()])),
        }
    }
    let want: Vec<String> = groups
        .iter()
        .map(|(p, ks)| format!("{} ({})", p.name(), ks.join(", ")))
        .collect();
    assert_eq!(report, want.join(", "));
    for k in Kernel::ALL {
        let p = paths::selected(k);
        // Only a fallback path may hand a kernel to std.
        assert!(
            p == paths::best_vector_path() || p == Path::Std,
            "{}",
            k.name()
        );
        assert!(
            report.contains(k.name()) && report.contains(p.name()),
            "{report}"
        );
    }
    if Path::Avx2Fma.is_supported() {
        for k in Kernel::ALL {
            assert_ne!(paths::selected(k), Path::Std, "{}", k.name());
        }
    }
}

#[test]
#[should_panic(expected = "kernels::exp: input length 2 != output length 3")]
fn path_run_checks_lengths() {
    paths::run(Path::Baseline, Kernel::Exp, &[1.0, 2.0], &mut [0.0; 3]);
}

/// The measured selection table (see `kernels::paths`): only the SSE2 baseline hands kernels
/// to std, every one but `exp`.
#[test]
fn selection_table() {
    for k in Kernel::ALL {
        for best in [Path::Avx512, Path::Avx2Fma, Path::Avx] {
            assert_eq!(paths::selection(best, k), best, "{}", k.name());
        }
        let want = if k == Kernel::Exp {
            Path::Baseline
        } else {
            Path::Std
        };
        assert_eq!(paths::selection(Path::Baseline, k), want, "{}", k.name());
    }
}

#[test]
fn path_and_kernel_names_are_the_documented_ones() {
    let names: Vec<&str> = Path::ALL.iter().map(|p| p.name()).collect();
    let baseline = if cfg!(target_arch = "x86_64") {
        "baseline-sse2"
    } else {
        "baseline"
    };
    assert_eq!(names, ["avx512", "avx2+fma", "avx", baseline, "std"]);
    let kernels: Vec<&str> = Kernel::ALL.iter().map(|k| k.name()).collect();
    assert_eq!(kernels, ["tanh", "exp", "ln", "sigmoid", "softplus"]);
}

/// Support is what the CPU reports (std's feature detection, asked independently here).
#[cfg(target_arch = "x86_64")]
#[test]
fn path_support_matches_the_cpu() {
    use std::is_x86_feature_detected as has;
    let avx2_fma = has!("avx2") && has!("fma");
    let avx512 =
        has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512vbmi2") && avx2_fma;
    assert_eq!(Path::Avx512.is_supported(), avx512);
    assert_eq!(Path::Avx2Fma.is_supported(), avx2_fma);
    assert_eq!(Path::Avx.is_supported(), has!("avx"));
    let best = if avx512 {
        Path::Avx512
    } else if avx2_fma {
        Path::Avx2Fma
    } else if has!("avx") {
        Path::Avx
    } else {
        Path::Baseline
    };
    assert_eq!(paths::best_vector_path(), best);
}
