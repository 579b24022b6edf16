//! glibc's double-precision `exp` (`sysdeps/ieee754/dbl-64/e_exp.c`), one argument at a time,
//! operation for operation, in the two forms x86_64 libm ships:
//!
//! - [`Fused`]: `__exp_fma` (built with `-mfma -mavx2`) and `__exp_fma4`, where GCC contracted
//!   `a*b + c` into one fused multiply-add at every place listed below;
//! - [`Unfused`]: `__exp_sse2` and `__exp_avx`, every product rounded on its own.
//!
//! Where the fused build contracts was read off the disassembly of Debian 12's libm (glibc
//! 2.36): `kd = fma(x, InvLn2N, Shift)` (z is never rounded), `r = fma(kd, NegLn2loN,
//! fma(kd, NegLn2hiN, x))`, `C2 + r*C3` and `C4 + r*C5`, both sums of `tmp`, and `scale +
//! scale*tmp` in the main path and in the overflow branch of `specialcase`. In the underflow
//! branch `scale*tmp` is used twice, so GCC kept it as a rounded product in both builds.

use super::data::{C2, C3, C4, C5, INV_LN2_N, N, NEG_LN2_HI_N, NEG_LN2_LO_N, SHIFT, TAB};

/// How `a*b + c` is evaluated: the one difference between glibc's builds of `exp`.
pub(super) trait Madd {
    fn madd(a: f64, b: f64, c: f64) -> f64;
}

/// `a*b + c` with one rounding (the FMA and FMA4 builds). Only fast inside a function compiled
/// with the `fma` target feature; elsewhere `mul_add` is a call to libm's `fma`. (Used on
/// x86_64 only: elsewhere the module calls libm.)
#[cfg(target_arch = "x86_64")]
pub(super) struct Fused;

/// `a*b + c` with two roundings (the SSE2 and AVX builds).
pub(super) struct Unfused;

#[cfg(target_arch = "x86_64")]
impl Madd for Fused {
    #[inline(always)]
    fn madd(a: f64, b: f64, c: f64) -> f64 {
        a.mul_add(b, c)
    }
}

impl Madd for Unfused {
    #[inline(always)]
    fn madd(a: f64, b: f64, c: f64) -> f64 {
        a * b + c
    }
}

/// `top12 (0x1p-54)`: below it |x| is so small that exp(x) rounds to 1 + x.
const TOP12_TINY: u32 = 0x3c9;
/// `top12 (512.0)`: from there on the result may overflow or underflow (`specialcase`).
pub(super) const TOP12_LARGE: u32 = 0x408;
/// `top12 (1024.0)`: from there on the result is certainly 0 or inf.
const TOP12_HUGE: u32 = 0x409;

/// `__exp (x)`.
#[inline(always)]
pub(super) fn exp<M: Madd>(x: f64) -> f64 {
    let mut abstop = top12(x) & 0x7ff;
    if abstop.wrapping_sub(TOP12_TINY) >= TOP12_LARGE - TOP12_TINY {
        if abstop.wrapping_sub(TOP12_TINY) >= 0x8000_0000 {
            // Tiny x (and 0, a common input): 1 + x, which also avoids a spurious underflow.
            return 1.0 + x;
        }
        if abstop >= TOP12_HUGE {
            if x.to_bits() == f64::NEG_INFINITY.to_bits() {
                return 0.0;
            }
            if abstop >= 0x7ff {
                // +inf stays inf; NaN comes back quieted, payload kept, as from glibc's 1.0 + x.
                return 1.0 + x;
            }
            // __math_uflow (0) and __math_oflow (0): 0x1p-767 * 0x1p-767 and 0x1p769 * 0x1p769
            // in the default rounding mode (the engine never changes it).
            return if x.to_bits() >> 63 != 0 {
                0.0
            } else {
                f64::INFINITY
            };
        }
        // 512 <= |x| < 1024: the main path, with scale rebuilt by specialcase.
        abstop = 0;
    }

    // exp(x) = 2^(k/N) * exp(r), with exp(r) in [2^(-1/2N), 2^(1/2N)];
    // x = ln2/N*k + r, with int k and r in [-ln2/2N, ln2/2N].
    let mut kd = M::madd(INV_LN2_N, x, SHIFT);
    let ki = kd.to_bits();
    kd -= SHIFT;
    let r = M::madd(kd, NEG_LN2_LO_N, M::madd(kd, NEG_LN2_HI_N, x));
    // 2^(k/N) ~= scale * (1 + tail).
    let idx = 2 * (ki % N) as usize;
    let top = ki << (52 - 7);
    let tail = f64::from_bits(TAB[idx]);
    // Only a valid scale when -1023*N < k < 1024*N.
    let sbits = TAB[idx + 1].wrapping_add(top);
    // exp(x) = 2^(k/N) * exp(r) ~= scale + scale * (tail + exp(r) - 1).
    let r2 = r * r;
    let tmp = M::madd(
        r2 * r2,
        M::madd(r, C5, C4),
        M::madd(r2, M::madd(r, C3, C2), tail + r),
    );
    if abstop == 0 {
        return specialcase::<M>(tmp, sbits, ki);
    }
    let scale = f64::from_bits(sbits);
    M::madd(scale, tmp, scale)
}

/// `specialcase (tmp, sbits, ki)`: scale*(1 + tmp) when the exponent of scale may have
/// overflowed (k > 0) or the result may be subnormal (k < 0). Inlined so that the fused
/// form gets the caller's `fma` target feature (rare inputs: 512 <= |x| < 1024).
#[inline(always)]
#[allow(clippy::assign_op_pattern)] // glibc's expressions as written, operation for operation
fn specialcase<M: Madd>(tmp: f64, sbits: u64, ki: u64) -> f64 {
    if ki & 0x8000_0000 == 0 {
        // k > 0: the exponent of scale might have overflowed by <= 460.
        let scale = f64::from_bits(sbits.wrapping_sub(1009 << 52));
        return f64::from_bits(0x7f00000000000000) * M::madd(scale, tmp, scale); // 0x1p1009
    }
    // k < 0: round y to the final precision before scaling it into the subnormal range, to
    // avoid double rounding. Unfused in every build: scale*tmp is used twice.
    let scale = f64::from_bits(sbits.wrapping_add(1022 << 52));
    let scale_tmp = scale * tmp;
    let mut y = scale + scale_tmp;
    if y < 1.0 {
        let mut lo = scale - y + scale_tmp;
        let hi = 1.0 + y;
        lo = 1.0 - hi + y + lo;
        y = (hi + lo) - 1.0;
        // Avoid -0.0 with downward rounding.
        if y == 0.0 {
            y = 0.0;
        }
    }
    f64::from_bits(0x0010000000000000) * y // 0x1p-1022
}

/// `top12 (x)`: the sign and exponent bits.
#[inline(always)]
fn top12(x: f64) -> u32 {
    (x.to_bits() >> 52) as u32
}
