//! Vectorized elementwise math kernels over `f64` slices: [`tanh`], [`exp`], [`ln`],
//! [`sigmoid`] and [`softplus`]; and the matrix product kernel of AVX-512 CPUs,
//! [`product`].
//!
//! Each kernel reads `x` and writes `out[i] = f(x[i])`; `x` and `out` must have the same
//! length (a mismatch is a programmer error and panics with both lengths in the message).
//! The kernels are branch-free over fixed chunks of eight lanes, so the same code
//! serves every element, including the special values, and LLVM turns every lane
//! operation into packed SIMD instructions.
//!
//! # Accuracy
//!
//! Measured maximum errors in ulps (units in the last place of the result). "vs std" compares
//! with Rust's `f64::exp`, `f64::ln`, `f64::tanh` (the platform libm: glibc 2.36 here) and,
//! for sigmoid and softplus, with a careful scalar reference built from std functions
//! (`1/(1+e)` or `e/(1+e)` with `e = exp(-|x|)` and the rounding error of `1+e` corrected;
//! `max(x, 0) + ln_1p(exp(-|x|))`). Measured over 1.2e7 inputs per kernel: random bit patterns
//! (every finite and non-finite `f64`), uniform samples of `[-1, 1]`, `[-3, 3]`, `[-20, 20]`
//! and `[-750, 750]` (`exp`: `[-750, 750]`, `[-746, -707]`, `[707, 710]`; `ln`: `(0, 100]`,
//! `[0.5, 2]`, 1 ± 1e-3), and log-uniform magnitudes down to 2^-80. "vs exact" compares a
//! 3e5-input subsample with the correctly rounded value (200-bit arithmetic).
//!
//! | kernel     | vs std | vs exact |
//! |------------|--------|----------|
//! | `exp`      | 1      | 0.91     |
//! | `ln`       | 1      | 0.78     |
//! | `tanh`     | 2      | 0.53     |
//! | `sigmoid`  | 2      | 0.73     |
//! | `softplus` | 2      | 1.00     |
//!
//! The 2-ulp differences for `tanh`, `sigmoid` and `softplus` are the reference's own error:
//! glibc's `tanh` is up to 2.08 ulp from the exact value, and the std-built sigmoid and
//! softplus references up to 1.76 and 1.47 ulp (they round `exp` once before using it), while
//! these kernels stay within 0.53, 0.73 and 1.00 ulp (sigmoid: 0.52 except for `x` in
//! `(-708.4, -672)`, where the low part of `exp(x)` loses bits to underflow; softplus: 0.78
//! over the 3e5-input sample, 1.000 at `x = -62.6` found later by the property suite, where
//! for `x` below about -37 the result is `exp(x)` rounded once more). The bounds hold
//! on every dispatch path (see below). Property tests check them on every path:
//! `tests/kernels.rs` against std (the bounds of the first column),
//! `tests/kernels_exact.rs` against double-double references (1 ulp from exact).
//!
//! # Algorithms
//!
//! **exp.** `x` is clamped to `[-746, 710]` (beyond which `exp` is 0 or overflows anyway, NaN
//! passes through). Cody–Waite reduction: `k = round(x / ln 2)` (by adding `1.5 * 2^52`, which
//! leaves `k` in the low mantissa bits), `r = (x - k ln2_hi) - k ln2_lo` with `ln2_hi` holding
//! 38 significant bits so `k ln2_hi` is exact, `|r| <= 0.347`. Then
//! `exp(r) = 1 + (r + r^2 (1/2 + r P(r)))` with `P` of degree 9, a minimax fit of our own
//! (relative error of `expm1` 3e-19 on `[-0.347, 0.347]`). Finally `2^k` is built from
//! exponent bits as two factors `2^k1 * 2^k2`, `k1 = floor(k/2)`, so that results that
//! overflow become `inf`, and results in the subnormal range are rounded only once.
//!
//! **ln.** Subnormal inputs are first scaled by `2^54`. Integer operations on the bit pattern
//! split `x = 2^e m` with `m` in `[sqrt(1/2), sqrt(2))`; with `f = m - 1` (exact) and
//! `s = f / (2 + f)`, `|s| <= 0.1716`, `ln(1 + f) = 2 atanh(s) = f - f^2/2 + s (f^2/2 + R(s^2))`,
//! `R` a degree-7 minimax polynomial of our own (absolute error 2.5e-18). The result is summed
//! as `e ln2_hi + (small terms + e ln2_lo)` so that only the last addition rounds at the
//! result's magnitude. Special cases by lane selects: `ln(±0) = -inf`, `ln(+inf) = +inf`,
//! `ln(x < 0) = ln(-inf) = NaN`, `ln(NaN) = NaN`.
//!
//! **tanh.** With `a = min(|x|, 22)` (`tanh(22)` rounds to 1), the same reduction gives
//! `e^(2a) = 2^k (1 + q)`, now with `q = expm1(r)` kept as an unevaluated double-double sum:
//! the reduction error of `r`, the exact square `r^2` and the rounding of the leading sums
//! are carried in a low part. For `k = 0` (`a < 0.174`), `tanh a = q / (q + 2)`; otherwise
//! `tanh a = 1 - c` with `c = 2^(1-k) / (1 + 2^-k + q)`. The quotient is computed once in
//! double and then corrected with its exact residual (an FMA, or Dekker's exact product where
//! the CPU has no FMA) and the low parts, so that, near 0.5 ulp, only the last operation
//! rounds. The sign is copied from `x`, so `tanh(-0) = -0`, `tanh(±inf) = ±1` and tiny and
//! subnormal inputs return themselves.
//!
//! **sigmoid.** `e = exp(-|x|)` as a double-double (same core; `|x| > 746` gives 0), then
//! `1 / (1 + e)` for `x >= 0` and `e / (1 + e)` for `x < 0`, with `1 + e` exact as a
//! double-double and the same corrected division. Neither form cancels, so the result is
//! accurate for every `x`, down to subnormal outputs, with `sigmoid(+inf) = 1`,
//! `sigmoid(-inf) = 0`.
//!
//! **softplus.** `softplus(x) = max(x, 0) + log1p(e)` with `e = exp(-|x|)` as a
//! double-double, so it is `x` for large `x` and `exp(x)` for very negative `x` without
//! overflow. `log1p(e)` for `e` in `[0, 1]` uses the ln core: `f = e` when
//! `e <= sqrt(2) - 1`, else `log1p(e) = ln 2 + log1p(f)` with `f = (1 + e)/2 - 1`, computed
//! exactly from `1 + e` and its rounding error; the low parts enter as `f_lo / (1 + f)`.
//! `max(x, 0) + e ln2_hi` is formed exactly (two-sum) before the small terms are added.
//!
//! NaN inputs give NaN in every kernel.
//!
//! # Speed and dispatch
//!
//! The chunk kernels are compiled four times, three of them by the
//! [`multiversion`](mod@multiversion) crate: for AVX-512 (F, VL, DQ, VBMI2, i.e. Ice Lake /
//! Zen 4 or later), AVX2 + FMA, AVX without FMA (Sandy Bridge, Ivy Bridge), and the
//! baseline (SSE2 on x86_64). The best one for the running CPU is detected once, at the
//! first call. With FMA the exact products use one fused multiply-add and the polynomials
//! are evaluated with FMAs; without it, Dekker's splitting gives the same exact products, so
//! every path meets the bounds above, but results can differ between paths in the last bit
//! (1 to 8 outputs in 3e5 differ, by 1 ulp, between FMA and baseline).
//!
//! [`paths`] names the path that runs ([`paths::describe`], printed by every benchmark),
//! and runs any path explicitly ([`paths::run`]); `tests/kernels.rs` runs every accuracy
//! test on every path the CPU supports, std included.
//!
//! Single-thread time per element on 2048 elements (Intel Xeon with AVX-512, glibc 2.36,
//! best of 400 interleaved runs pinned to one core, machine shared; std = a per-element
//! loop over the std functions, or the std-built sigmoid and softplus formulas above):
//!
//! | kernel     | AVX-512 | AVX2+FMA | AVX    | SSE2    | std     |
//! |------------|---------|----------|--------|---------|---------|
//! | `tanh`     | 2.4 ns  | 4.1 ns   | 6.2 ns | 12.5 ns | 11.4 ns |
//! | `exp`      | 1.1 ns  | 1.7 ns   | 2.4 ns | 4.0 ns  | 4.2 ns  |
//! | `ln`       | 1.2 ns  | 2.1 ns   | 2.7 ns | 4.8 ns  | 4.3 ns  |
//! | `sigmoid`  | 2.5 ns  | 3.9 ns   | 6.1 ns | 11.7 ns | 5.7-7.4 ns |
//! | `softplus` | 3.6 ns  | 6.3 ns   | 8.1 ns | 15.0 ns | 10.7 ns |
//!
//! So on a CPU whose best path is the SSE2 baseline (x86_64 before 2011), std is faster for
//! every kernel but `exp`, and the public functions call std for those
//! ([`paths::selection`]); the std path is then as accurate as std (2 ulp of the exact
//! value for sigmoid, see above). AVX without FMA beats std everywhere (for sigmoid within
//! the run-to-run noise of std). The std column was measured on a CPU with FMA, where glibc
//! uses its FMA versions of `exp` and `ln`; a CPU without AVX runs glibc's SSE2 versions,
//! which are slower, so the choice errs towards std. `benches/kernels.rs` has the criterion
//! benchmark of every path.
//!
//! The polynomial coefficients were fitted for this module with Sollya's `fpminimax`
//! (double coefficients): `expm1(x)` on `[-0.347, 0.347]`, relative, with the constrained
//! part `x + x^2/2` and monomials `x^3..x^12`; `(2 atanh(sqrt z) - 2 sqrt z)/sqrt z` on
//! `[2^-80, 0.02947]`, absolute, monomials `z^1..z^7`.

pub mod paths;
pub mod product;

use paths::Kernel;

/// `1.5 * 2^52`: `y + SHIFT` rounds `y` (`|y| < 2^51`) to an integer held in the low bits.
const SHIFT: f64 = 6755399441055744.0;
const LOG2E: f64 = core::f64::consts::LOG2_E;
/// `ln 2` to 38 significant bits: `k * LN2_HI` is exact for `|k| < 2^15`.
const LN2_HI: f64 = 0.6931471805598903;
/// `ln 2 - LN2_HI`.
const LN2_LO: f64 = 5.497923018708371e-14;

// expm1(r) ~ r + r^2 (1/2 + r (E3 + r E4 + ... + r^9 E12)), |r| <= 0.347 (relative error 3e-19).
const E3: f64 = 0.16666666666666677;
const E4: f64 = 0.04166666666666659;
const E5: f64 = 0.008333333333321431;
const E6: f64 = 0.0013888888888935911;
const E7: f64 = 0.000198412698866202;
const E8: f64 = 2.480158721317637e-05;
const E9: f64 = 2.7557243712666025e-06;
const E10: f64 = 2.7557373394590415e-07;
const E11: f64 = 2.510921181307093e-08;
const E12: f64 = 2.088332338510317e-09;

// (2 atanh(s) - 2 s) / s ~ z (L1 + z L2 + ... + z^6 L7), z = s^2, |s| <= 0.1716
// (absolute error 2.5e-18).
const L1: f64 = 0.6666666666666735;
const L2: f64 = 0.3999999999940987;
const L3: f64 = 0.28571428743492616;
const L4: f64 = 0.22222198455226205;
const L5: f64 = 0.1818357071360021;
const L6: f64 = 0.15313880364989055;
const L7: f64 = 0.14797720641788434;

/// Mantissa field of `sqrt(1/2)`.
const SQRT_HALF_MANT: u64 = 0x0006_A09E_667F_3BCD;
/// `sqrt(2) - 1`.
const SQRT2_M1: f64 = 0.41421356237309503;
/// `2^52`.
const TWO52: f64 = 4503599627370496.0;
/// `2^27 + 1`, Dekker's splitting constant.
const SPLITTER: f64 = 134217729.0;
const SIGN: u64 = 1 << 63;

/// Lanes processed together by one chunk kernel.
const LANES: usize = 8;

/// `LANES` f64 lanes. Every operation is a fixed-length loop that LLVM turns into packed
/// SIMD instructions of the target's width.
#[derive(Clone, Copy)]
struct F([f64; LANES]);

/// `LANES` u64 lanes: bit patterns of [`F`] and all-ones / all-zeros lane masks.
#[derive(Clone, Copy)]
struct B([u64; LANES]);

macro_rules! lanes {
    ($t:ident, |$i:ident| $e:expr) => {{
        let mut r = [Default::default(); LANES];
        for $i in 0..LANES {
            r[$i] = $e;
        }
        $t(r)
    }};
}

macro_rules! f_binop {
    ($tr:ident, $m:ident, $op:tt) => {
        impl core::ops::$tr for F {
            type Output = F;
            #[inline(always)]
            fn $m(self, o: F) -> F {
                lanes!(F, |i| self.0[i] $op o.0[i])
            }
        }
        impl core::ops::$tr<f64> for F {
            type Output = F;
            #[inline(always)]
            fn $m(self, o: f64) -> F {
                lanes!(F, |i| self.0[i] $op o)
            }
        }
        impl core::ops::$tr<F> for f64 {
            type Output = F;
            #[inline(always)]
            fn $m(self, o: F) -> F {
                lanes!(F, |i| self $op o.0[i])
            }
        }
    };
}
f_binop!(Add, add, +);
f_binop!(Sub, sub, -);
f_binop!(Mul, mul, *);
f_binop!(Div, div, /);

macro_rules! b_binop {
    ($tr:ident, $m:ident, $op:tt) => {
        impl core::ops::$tr for B {
            type Output = B;
            #[inline(always)]
            fn $m(self, o: B) -> B {
                lanes!(B, |i| self.0[i] $op o.0[i])
            }
        }
        impl core::ops::$tr<u64> for B {
            type Output = B;
            #[inline(always)]
            fn $m(self, o: u64) -> B {
                lanes!(B, |i| self.0[i] $op o)
            }
        }
    };
}
b_binop!(BitAnd, bitand, &);
b_binop!(BitOr, bitor, |);

impl core::ops::Not for B {
    type Output = B;
    #[inline(always)]
    fn not(self) -> B {
        lanes!(B, |i| !self.0[i])
    }
}

impl F {
    #[inline(always)]
    fn splat(v: f64) -> F {
        F([v; LANES])
    }
    #[inline(always)]
    fn bits(self) -> B {
        lanes!(B, |i| self.0[i].to_bits())
    }
    #[inline(always)]
    fn abs(self) -> F {
        (self.bits() & !SIGN).float()
    }
    /// `|self|` with the sign of `s`.
    #[inline(always)]
    fn with_sign_of(self, s: F) -> F {
        ((self.bits() & !SIGN) | (s.bits() & SIGN)).float()
    }
}

impl B {
    #[inline(always)]
    fn float(self) -> F {
        lanes!(F, |i| f64::from_bits(self.0[i]))
    }
    #[inline(always)]
    fn add(self, o: u64) -> B {
        lanes!(B, |i| self.0[i].wrapping_add(o))
    }
    #[inline(always)]
    fn sub(self, o: B) -> B {
        lanes!(B, |i| self.0[i].wrapping_sub(o.0[i]))
    }
    /// `o - self`.
    #[inline(always)]
    fn rsub(self, o: u64) -> B {
        lanes!(B, |i| o.wrapping_sub(self.0[i]))
    }
    #[inline(always)]
    fn shl(self, n: u32) -> B {
        lanes!(B, |i| self.0[i] << n)
    }
    #[inline(always)]
    fn shr(self, n: u32) -> B {
        lanes!(B, |i| self.0[i] >> n)
    }
}

/// Lane mask of `a < b` (false for NaN).
#[inline(always)]
fn lt(a: F, b: F) -> B {
    lanes!(B, |i| if a.0[i] < b.0[i] { !0 } else { 0 })
}

/// Lane mask of `a >= b` (false for NaN).
#[inline(always)]
fn ge(a: F, b: F) -> B {
    lanes!(B, |i| if a.0[i] >= b.0[i] { !0 } else { 0 })
}

/// Lane mask of `a == b`.
#[inline(always)]
fn eq(a: F, b: F) -> B {
    lanes!(B, |i| if a.0[i] == b.0[i] { !0 } else { 0 })
}

/// `m ? a : b`, lane by lane.
#[inline(always)]
fn sel(m: B, a: F, b: F) -> F {
    ((a.bits() & m) | (b.bits() & !m)).float()
}

/// `a` where `m`, else `+0`.
#[inline(always)]
fn keep(m: B, a: F) -> F {
    (a.bits() & m).float()
}

/// `a * b + c`: fused where the target has FMA, else two roundings.
#[inline(always)]
fn mad<const FMA: bool>(a: F, b: F, c: f64) -> F {
    if FMA {
        lanes!(F, |i| a.0[i].mul_add(b.0[i], c))
    } else {
        a * b + c
    }
}

/// Dekker's split of `a` into a high part of 26 bits and the rest.
#[inline(always)]
fn split(a: F) -> (F, F) {
    let c = a * SPLITTER;
    let h = c - (c - a);
    (h, a - h)
}

/// The exact `a * b - p` for `p = fl(a * b)`: one FMA, or Dekker's product without FMA.
#[inline(always)]
fn mul_err<const FMA: bool>(a: F, b: F, p: F) -> F {
    if FMA {
        return lanes!(F, |i| a.0[i].mul_add(b.0[i], -p.0[i]));
    }
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    ((ah * bh - p) + ah * bl + al * bh) + al * bl
}

/// Round `y` (`|y| < 2^51`) to the nearest integer `k`: returns `k` as f64 and as
/// two's-complement bits.
#[inline(always)]
fn round_int(y: F) -> (F, B) {
    let t = y + SHIFT;
    (t - SHIFT, t.bits().sub(F::splat(SHIFT).bits()))
}

/// `p * 2^k` for `k` in `[-1077, 1024]`, as two normal factors so that an overflowing
/// result becomes inf and a subnormal one is rounded once.
#[inline(always)]
fn scale(p: F, k: B) -> F {
    let k1 = k.add(2048).shr(1); // floor(k / 2) + 1024
    let s1 = k1.add(u64::MAX).shl(52).float(); // 2^(k1 - 1024)
    let s2 = k.add(2047).sub(k1).shl(52).float(); // 2^(k - k1 + 1024)
    p * s1 * s2
}

/// `r^3 (E3 + ... + r^9 E12)`, the part of `expm1(r)` after `r + r^2/2`.
#[inline(always)]
fn expm1_tail<const FMA: bool>(r: F, r2: F) -> F {
    let p = F::splat(E12);
    let p = mad::<FMA>(p, r, E11);
    let p = mad::<FMA>(p, r, E10);
    let p = mad::<FMA>(p, r, E9);
    let p = mad::<FMA>(p, r, E8);
    let p = mad::<FMA>(p, r, E7);
    let p = mad::<FMA>(p, r, E6);
    let p = mad::<FMA>(p, r, E5);
    let p = mad::<FMA>(p, r, E4);
    let p = mad::<FMA>(p, r, E3);
    (r * r2) * p
}

#[inline(always)]
fn exp_lanes<const FMA: bool>(x: F) -> F {
    let x = sel(lt(F::splat(710.0), x), F::splat(710.0), x);
    let x = sel(lt(x, F::splat(-746.0)), F::splat(-746.0), x);
    let (kf, k) = round_int(x * LOG2E);
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    let r2 = r * r;
    let q = r + (0.5 * r2 + expm1_tail::<FMA>(r, r2));
    scale(1.0 + q, k)
}

/// `y = k ln2 + r`, `|r| <= 0.347`: returns (`k` as f64, `k` as bits, `q_hi`, `q_lo`) with
/// `q_hi + q_lo = expm1(r)` to about 2^-61 relative. For `y` in `[-746, 44]` or NaN.
#[inline(always)]
fn expm1_dd<const FMA: bool>(y: F) -> (F, B, F, F) {
    let (kf, k) = round_int(y * LOG2E);
    let rh = y - kf * LN2_HI; // exact
    let c = kf * LN2_LO;
    let r = rh - c;
    let rl = (rh - r) - c;
    let r2 = r * r;
    let r2l = mul_err::<FMA>(r, r, r2);
    let tail = expm1_tail::<FMA>(r, r2);
    let h = 0.5 * r2;
    let s = h + tail;
    let sl = (h - s) + tail;
    let qh = r + s;
    let ql = ((r - qh) + s) + (sl + 0.5 * r2l + rl * (1.0 + qh));
    (kf, k, qh, ql)
}

/// `exp(-a)` as (hi, lo) for `a >= 0` (`a > 746` gives 0; NaN gives NaN).
#[inline(always)]
fn exp_neg_dd<const FMA: bool>(a: F) -> (F, F) {
    let y = sel(lt(F::splat(746.0), a), F::splat(-746.0), 0.0 - a);
    let (_, k, qh, ql) = expm1_dd::<FMA>(y);
    let ph = 1.0 + qh;
    let pl = ((1.0 - ph) + qh) + ql;
    (scale(ph, k), scale(pl, k))
}

/// `e ln2 + log1p(f) + c` for `f` in `[sqrt(1/2) - 1, sqrt(2) - 1]` and a small
/// correction `c`, as the exact `e ln2_hi` and the rest.
#[inline(always)]
fn log1p_core<const FMA: bool>(e: F, f: F, c: F) -> (F, F) {
    let s = f / (2.0 + f);
    let z = s * s;
    let r = F::splat(L7);
    let r = mad::<FMA>(r, z, L6);
    let r = mad::<FMA>(r, z, L5);
    let r = mad::<FMA>(r, z, L4);
    let r = mad::<FMA>(r, z, L3);
    let r = mad::<FMA>(r, z, L2);
    let r = mad::<FMA>(r, z, L1);
    let r = r * z;
    let hfsq = 0.5 * (f * f);
    (e * LN2_HI, f - (hfsq - (s * (hfsq + r) + (e * LN2_LO + c))))
}

#[inline(always)]
fn ln_lanes<const FMA: bool>(x: F) -> F {
    let sub = lt(x, F::splat(f64::MIN_POSITIVE));
    let xs = sel(sub, x * 18014398509481984.0, x); // 2^54
    let eadj = keep(sub, F::splat(54.0));
    let bits = xs.bits();
    let eb = bits.add(SQRT_HALF_MANT.wrapping_neg()).shr(52); // biased exponent of m's scale
    let m = bits.sub(eb.add(1022u64.wrapping_neg()).shl(52)).float();
    let e = ((eb | TWO52.to_bits()).float() - (TWO52 + 1022.0)) - eadj;
    let (hi, lo) = log1p_core::<FMA>(e, m - 1.0, F::splat(0.0));
    let res = hi + lo;
    let res = sel(lt(F::splat(f64::MAX), x), x, res);
    let res = sel(eq(x, F::splat(0.0)), F::splat(f64::NEG_INFINITY), res);
    sel(ge(x, F::splat(0.0)), res, F::splat(f64::NAN))
}

/// The quotient `(n + nl) / (dh + dl)` to about 2^-100 relative before its final rounding,
/// given `w = fl(n / dh)` and `inv ~ 1 / dh` (to a few bits): returns the correction `c`
/// with `(n + nl) / (dh + dl) ~ w + c`.
#[inline(always)]
fn div_corr<const FMA: bool>(n: F, nl: F, dh: F, dl: F, w: F, inv: F) -> F {
    let p = w * dh;
    let rho = ((n - p) - mul_err::<FMA>(w, dh, p)) + (nl - w * dl);
    rho * inv
}

#[inline(always)]
fn tanh_lanes<const FMA: bool>(x: F) -> F {
    let a = x.abs();
    let a = sel(lt(F::splat(22.0), a), F::splat(22.0), a);
    let (kf, k, qh, ql) = expm1_dd::<FMA>(a + a);
    // e^(2a) = 2^k (1 + q). k = 0: tanh = q / (2 + q); else 1 - 2^(1-k) / (1 + 2^-k + q).
    let k0 = eq(kf, F::splat(0.0));
    let inv2k = k.rsub(1023).shl(52).float(); // 2^-k
    let c = sel(k0, F::splat(2.0), 1.0 + inv2k);
    let dh = c + qh;
    let dl = ((c - dh) + qh) + ql;
    let n = sel(k0, qh, inv2k + inv2k);
    let w = n / dh;
    // 1 / dh = (1 - w) / 2 for k = 0, and w 2^(k-1) otherwise.
    let inv = sel(k0, 0.5 * (1.0 - w), w * k.add(1022).shl(52).float());
    let corr = div_corr::<FMA>(n, keep(k0, ql), dh, dl, w, inv);
    let s = 1.0 - w;
    let se = (1.0 - s) - w;
    let t = sel(k0, w + corr, s + (se - corr));
    t.with_sign_of(x)
}

#[inline(always)]
fn sigmoid_lanes<const FMA: bool>(x: F) -> F {
    let (eh, el) = exp_neg_dd::<FMA>(x.abs());
    let dh = 1.0 + eh;
    let dl = ((1.0 - dh) + eh) + el;
    let neg = lt(x, F::splat(0.0));
    let n = sel(neg, eh, F::splat(1.0));
    let w = n / dh;
    // 1 / dh = w for x >= 0 and 1 - w for x < 0.
    let inv = sel(neg, 1.0 - w, w);
    w + div_corr::<FMA>(n, keep(neg, el), dh, dl, w, inv)
}

#[inline(always)]
fn softplus_lanes<const FMA: bool>(x: F) -> F {
    let (u, ul) = exp_neg_dd::<FMA>(x.abs());
    // log1p(u + ul) for u in [0, 1]. For u > sqrt(2) - 1: ln 2 + log1p(f) with
    // f = (1 + u) / 2 - 1, exact from w = fl(1 + u) and its rounding error.
    let w = 1.0 + u;
    let wl = (1.0 - w) + u;
    let big = lt(F::splat(SQRT2_M1), u);
    let f = sel(big, 0.5 * w - 1.0, u);
    let fl = sel(big, 0.5 * (wl + ul), ul);
    let e = keep(big, F::splat(1.0));
    // The low part enters as fl / (1 + f), which is needed to a few bits only:
    // 1 / (1 + f) = (1 - s) / (1 + s) with s = f / (2 + f), |s| < 0.172, and
    // 1 / (1 + s) ~ 1 - s + s^2.
    let s = f / (2.0 + f);
    let c = fl * ((1.0 - s) * (1.0 - s + s * s));
    let (hi, lo) = log1p_core::<FMA>(e, f, c);
    // max(x, 0) + hi exactly as sh + sl (Knuth's two-sum), so that near x = 0 only the
    // final addition rounds.
    let m = sel(lt(F::splat(0.0), x), x, F::splat(0.0));
    let sh = m + hi;
    let bb = sh - m;
    let sl = (m - (sh - bb)) + (hi - bb);
    let res = sh + (sl + lo);
    sel(lt(F::splat(f64::MAX), x), x, res)
}

fn check_len(name: &str, x: &[f64], out: &[f64]) {
    assert!(
        x.len() == out.len(),
        "kernels::{name}: input length {} != output length {}",
        x.len(),
        out.len()
    );
}

macro_rules! kernel {
    ($(#[$doc:meta])* $name:ident, $kernel:ident) => {
        $(#[$doc])*
        pub fn $name(x: &[f64], out: &mut [f64]) {
            check_len(stringify!($name), x, out);
            paths::run_unchecked(paths::selected(Kernel::$kernel), Kernel::$kernel, x, out);
        }
    };
}

kernel!(
    /// `out[i] = tanh(x[i])`, within 0.53 ulp of the exact value (2 ulp of `f64::tanh`).
    ///
    /// `tanh(±0) = ±0`, `tanh(±inf) = ±1`, `tanh(NaN) = NaN`.
    ///
    /// # Panics
    /// If `x.len() != out.len()`.
    tanh,
    Tanh
);
kernel!(
    /// `out[i] = exp(x[i])`, within 0.91 ulp of the exact value (1 ulp of `f64::exp`).
    ///
    /// `exp(x) = inf` above 709.78, subnormal below -708.4 and 0 below -745.13;
    /// `exp(±0) = 1`, `exp(-inf) = 0`, `exp(inf) = inf`, `exp(NaN) = NaN`.
    ///
    /// # Panics
    /// If `x.len() != out.len()`.
    exp,
    Exp
);
kernel!(
    /// `out[i] = ln(x[i])`, within 0.78 ulp of the exact value (1 ulp of `f64::ln`).
    ///
    /// Subnormal inputs are exact; `ln(±0) = -inf`, `ln(inf) = inf`, and `ln` of a negative
    /// number, of `-inf` or of NaN is NaN.
    ///
    /// # Panics
    /// If `x.len() != out.len()`.
    ln,
    Ln
);
kernel!(
    /// `out[i] = 1 / (1 + exp(-x[i]))`, the logistic sigmoid, within 0.73 ulp of the exact
    /// value for every `x` (no overflow or cancellation for large `|x|`; subnormal results
    /// for `x < -708.4`).
    ///
    /// `sigmoid(0) = 0.5`, `sigmoid(inf) = 1`, `sigmoid(-inf) = 0`, `sigmoid(NaN) = NaN`.
    ///
    /// # Panics
    /// If `x.len() != out.len()`.
    sigmoid,
    Sigmoid
);
kernel!(
    /// `out[i] = ln(1 + exp(x[i]))`, within about 1 ulp of the exact value (1.001 measured; 0.78
    /// but for very negative `x`, where it is `exp(x)` rounded once more): computed as
    /// `max(x, 0) + ln(1 + exp(-|x|))`, it is `x` for large `x` and `exp(x)` for very
    /// negative `x`, without overflow.
    ///
    /// `softplus(0) = ln 2`, `softplus(inf) = inf`, `softplus(-inf) = 0`,
    /// `softplus(NaN) = NaN`.
    ///
    /// # Panics
    /// If `x.len() != out.len()`.
    softplus,
    Softplus
);
