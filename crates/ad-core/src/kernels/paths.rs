//! The dispatch paths of the vectorized kernels: which code runs for which CPU, and a way
//! to run any path explicitly (for tests and benchmarks).
//!
//! Every kernel of [`crate::kernels`] exists in five versions, the [`Path`]s: the lane code
//! compiled for AVX-512, for AVX2 + FMA, for AVX without FMA, and for the baseline of the
//! target (SSE2 on x86_64), plus a per-element loop over Rust std ([`Path::Std`]). The best
//! vector path the CPU supports is detected once, at the first call. On the fallback paths
//! (AVX without FMA, baseline) a kernel runs std instead where std was measured to be faster
//! (see [`selected`] and the table in [`crate::kernels`]).
//!
//! ```
//! use ad_core::kernels::paths::{self, Kernel, Path};
//! // What runs here, e.g. "avx512 (tanh, exp, ln, sigmoid, softplus)":
//! let report = paths::describe();
//! assert!(report.contains("tanh"));
//! // Run every path this CPU can execute.
//! let x = [0.5, -1.0, 3.0];
//! for path in paths::supported() {
//!     let mut out = [0.0; 3];
//!     paths::run(path, Kernel::Exp, &x, &mut out);
//!     assert!((out[0] - 0.5f64.exp()).abs() < 1e-15);
//! }
//! assert!(Path::Std.is_supported() && Path::Baseline.is_supported());
//! ```

use super::{F, LANES, exp_lanes, ln_lanes, sigmoid_lanes, softplus_lanes, tanh_lanes};
use multiversion::target::target_cfg_f;
use multiversion::{inherit_target, multiversion};
use std::sync::atomic::{AtomicU8, Ordering};

/// One of the elementwise kernels of [`crate::kernels`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// [`crate::kernels::tanh`].
    Tanh,
    /// [`crate::kernels::exp`].
    Exp,
    /// [`crate::kernels::ln`].
    Ln,
    /// [`crate::kernels::sigmoid`].
    Sigmoid,
    /// [`crate::kernels::softplus`].
    Softplus,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 5] = [
        Kernel::Tanh,
        Kernel::Exp,
        Kernel::Ln,
        Kernel::Sigmoid,
        Kernel::Softplus,
    ];

    /// The kernel's name, e.g. `"tanh"`.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Tanh => "tanh",
            Kernel::Exp => "exp",
            Kernel::Ln => "ln",
            Kernel::Sigmoid => "sigmoid",
            Kernel::Softplus => "softplus",
        }
    }
}

/// A compiled version of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// The lane code for AVX-512 (F, VL, DQ, VBMI2; Ice Lake, Zen 4 or later) with FMA.
    Avx512,
    /// The lane code for AVX2 + FMA (Haswell, Zen 1 or later).
    Avx2Fma,
    /// The lane code for AVX without FMA (Sandy Bridge, Ivy Bridge): exact products by
    /// Dekker's splitting.
    Avx,
    /// The lane code for the target's baseline (SSE2 on x86_64, without FMA).
    Baseline,
    /// A per-element loop over Rust std (the platform libm); sigmoid and softplus are
    /// written from std's `exp` and `ln_1p` in the overflow-safe way.
    Std,
}

impl Path {
    /// Every path, best first.
    pub const ALL: [Path; 5] = [
        Path::Avx512,
        Path::Avx2Fma,
        Path::Avx,
        Path::Baseline,
        Path::Std,
    ];

    /// The path's name: `"avx512"`, `"avx2+fma"`, `"avx"`, `"baseline-sse2"` (on x86_64,
    /// else `"baseline"`) or `"std"`.
    pub fn name(self) -> &'static str {
        match self {
            Path::Avx512 => "avx512",
            Path::Avx2Fma => "avx2+fma",
            Path::Avx => "avx",
            Path::Baseline if cfg!(target_arch = "x86_64") => "baseline-sse2",
            Path::Baseline => "baseline",
            Path::Std => "std",
        }
    }

    /// Whether the running CPU can execute this path.
    pub fn is_supported(self) -> bool {
        match self {
            Path::Avx512 => has_avx512(),
            Path::Avx2Fma => has_avx2_fma(),
            Path::Avx => has_avx(),
            Path::Baseline | Path::Std => true,
        }
    }

    fn from_index(i: u8) -> Path {
        Path::ALL[usize::from(i)]
    }

    fn index(self) -> u8 {
        match self {
            Path::Avx512 => 0,
            Path::Avx2Fma => 1,
            Path::Avx => 2,
            Path::Baseline => 3,
            Path::Std => 4,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512vl")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512vbmi2")
        && has_avx2_fma()
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
fn has_avx() -> bool {
    std::is_x86_feature_detected!("avx")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2_fma() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx() -> bool {
    false
}

/// Every path the running CPU can execute, best first (always ends with
/// [`Path::Baseline`] and [`Path::Std`]).
pub fn supported() -> Vec<Path> {
    Path::ALL.into_iter().filter(|p| p.is_supported()).collect()
}

/// The best vector path of the running CPU (detected once).
pub fn best_vector_path() -> Path {
    const UNKNOWN: u8 = u8::MAX;
    static BEST: AtomicU8 = AtomicU8::new(UNKNOWN);
    match BEST.load(Ordering::Relaxed) {
        UNKNOWN => {
            let best = Path::ALL
                .into_iter()
                .find(|p| p.is_supported())
                .unwrap_or(Path::Baseline);
            BEST.store(best.index(), Ordering::Relaxed);
            best
        }
        i => Path::from_index(i),
    }
}

/// Whether std beats `path`'s lane code for `kernel`, measured (2048 elements, see the
/// table in [`crate::kernels`]). Only the SSE2 baseline loses, for every kernel but `exp`;
/// AVX without FMA beats std everywhere (for sigmoid by a margin within the noise, and the
/// kernel is the more accurate of the two).
fn std_is_faster(path: Path, kernel: Kernel) -> bool {
    match path {
        Path::Baseline => kernel != Kernel::Exp,
        Path::Avx512 | Path::Avx2Fma | Path::Avx | Path::Std => false,
    }
}

/// The path that [`crate::kernels`]' function for `kernel` runs on this CPU:
/// [`selection`]`(`[`best_vector_path`]`(), kernel)`.
pub fn selected(kernel: Kernel) -> Path {
    selection(best_vector_path(), kernel)
}

/// The path that runs `kernel` on a CPU whose best vector path is `best`: `best` itself, or
/// [`Path::Std`] where `best` is a fallback that std beats (the SSE2 baseline, for every
/// kernel but `exp`).
///
/// ```
/// use ad_core::kernels::paths::{selection, Kernel, Path};
/// assert_eq!(selection(Path::Avx2Fma, Kernel::Tanh), Path::Avx2Fma);
/// assert_eq!(selection(Path::Baseline, Kernel::Tanh), Path::Std);
/// assert_eq!(selection(Path::Baseline, Kernel::Exp), Path::Baseline);
/// ```
pub fn selection(best: Path, kernel: Kernel) -> Path {
    if std_is_faster(best, kernel) {
        Path::Std
    } else {
        best
    }
}

/// A one-line report of the paths that run, for benchmark output, e.g.
/// `"avx512 (tanh, exp, ln, sigmoid, softplus)"` or
/// `"std (tanh, ln, sigmoid, softplus), baseline-sse2 (exp)"`.
pub fn describe() -> String {
    let mut groups: Vec<(Path, Vec<&str>)> = Vec::new();
    for k in Kernel::ALL {
        let p = selected(k);
        match groups.iter_mut().find(|(q, _)| *q == p) {
            Some((_, names)) => names.push(k.name()),
            None => groups.push((p, vec![k.name()])),
        }
    }
    groups
        .iter()
        .map(|(p, names)| format!("{} ({})", p.name(), names.join(", ")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `out[i] = kernel(x[i])` computed by `path`.
///
/// # Panics
/// If the CPU cannot execute `path` (see [`Path::is_supported`]) or if
/// `x.len() != out.len()`.
pub fn run(path: Path, kernel: Kernel, x: &[f64], out: &mut [f64]) {
    assert!(
        path.is_supported(),
        "kernels::paths::run: this CPU cannot execute the {} path",
        path.name()
    );
    super::check_len(kernel.name(), x, out);
    run_unchecked(path, kernel, x, out);
}

/// [`run`] without its checks: `path` must be supported, lengths equal.
pub(super) fn run_unchecked(path: Path, kernel: Kernel, x: &[f64], out: &mut [f64]) {
    match kernel {
        Kernel::Tanh => tanh::run(path, x, out),
        Kernel::Exp => exp::run(path, x, out),
        Kernel::Ln => ln::run(path, x, out),
        Kernel::Sigmoid => sigmoid::run(path, x, out),
        Kernel::Softplus => softplus::run(path, x, out),
    }
}

/// `1 / (1 + exp(-x))` from std's `exp`, without overflow.
fn sigmoid_std(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + exp(x))` as `max(x, 0) + ln_1p(exp(-|x|))`.
fn softplus_std(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// The chunk loop: whole chunks of [`LANES`], then the remainder padded with zeros.
macro_rules! drive {
    ($x:ident, $out:ident, $chunk:ident) => {{
        let mut xc = $x.chunks_exact(LANES);
        let mut oc = $out.chunks_exact_mut(LANES);
        for (xi, oi) in (&mut xc).zip(&mut oc) {
            $chunk(xi.try_into().unwrap(), oi.try_into().unwrap());
        }
        let rest = xc.remainder();
        if !rest.is_empty() {
            let mut v = [0.0; LANES];
            let mut o = [0.0; LANES];
            v[..rest.len()].copy_from_slice(rest);
            $chunk(&v, &mut o);
            oc.into_remainder().copy_from_slice(&o[..rest.len()]);
        }
    }};
}

/// One path of one kernel, compiled by `multiversion` for `$target` (the caller checks that
/// the CPU supports it; otherwise the generic clone would run).
macro_rules! vector_path {
    ($name:ident, $lanes:ident, $target:literal) => {
        #[multiversion(targets($target))]
        fn $name(x: &[f64], out: &mut [f64]) {
            const FMA: bool =
                target_cfg_f!(target_feature = "fma") || cfg!(target_arch = "aarch64");
            // One call per chunk: inlined, LLVM's loop vectorizer would vectorize across
            // chunks with gathers and scatters instead of across the lanes of a chunk.
            #[inherit_target]
            #[inline(never)]
            fn chunk(x: &[f64; LANES], out: &mut [f64; LANES]) {
                *out = $lanes::<FMA>(F(*x)).0;
            }
            drive!(x, out, chunk)
        }
    };
}

/// Every path of one kernel, in a module named after it, with its `run(path, x, out)`.
macro_rules! kernel_paths {
    ($kernel:ident, $lanes:ident, $std:expr) => {
        mod $kernel {
            use super::*;

            vector_path!(
                avx512,
                $lanes,
                "x86_64+avx512f+avx512vl+avx512dq+avx512vbmi2+avx2+fma"
            );
            vector_path!(avx2_fma, $lanes, "x86_64+avx2+fma");
            vector_path!(avx, $lanes, "x86_64+avx");

            fn baseline(x: &[f64], out: &mut [f64]) {
                const FMA: bool = cfg!(target_feature = "fma") || cfg!(target_arch = "aarch64");
                #[inline(never)]
                fn chunk(x: &[f64; LANES], out: &mut [f64; LANES]) {
                    *out = $lanes::<FMA>(F(*x)).0;
                }
                drive!(x, out, chunk)
            }

            fn std(x: &[f64], out: &mut [f64]) {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = $std(v);
                }
            }

            pub(super) fn run(path: Path, x: &[f64], out: &mut [f64]) {
                match path {
                    Path::Avx512 => avx512(x, out),
                    Path::Avx2Fma => avx2_fma(x, out),
                    Path::Avx => avx(x, out),
                    Path::Baseline => baseline(x, out),
                    Path::Std => std(x, out),
                }
            }
        }
    };
}

kernel_paths!(tanh, tanh_lanes, f64::tanh);
kernel_paths!(exp, exp_lanes, f64::exp);
kernel_paths!(ln, ln_lanes, f64::ln);
kernel_paths!(sigmoid, sigmoid_lanes, sigmoid_std);
kernel_paths!(softplus, softplus_lanes, softplus_std);
