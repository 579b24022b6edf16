//! The x86_64 forms of glibc's FMA build of `exp` (`__exp_fma`): one argument with FMA, and 4
//! (AVX2) or 8 (AVX-512F) arguments per instruction. Each lane performs exactly the
//! operations of [`scalar::exp`] with [`Fused`]: the same fused multiply-adds, the same
//! rounded products and sums, the same table entries. Lanes where glibc leaves its main path
//! for good (|x| >= 512, NaN) are recomputed one at a time by [`exp_fma`], which follows every
//! branch of glibc's code.
//!
//! glibc also branches away for |x| < 2^-54 (and 0), returning `1.0 + x`, which is 1.0 in the
//! default rounding mode. The vector main path gives the same 1.0 there, so those lanes stay
//! in the vector (x = 0 is common: hh at v = -65): kd rounds to Shift exactly (|x N/ln2| <
//! 2^-46 and Shift's ulp is 1), so k = 0, tail = 0 and scale = 1; tmp = r + O(r^2) with r = x
//! keeps |tmp| < 2^-54, so `fma(scale, tmp, scale)` = round(1 + tmp) = 1.0. (The tests' edge
//! cases walk 64 ulps either side of ±2^-54 and cover 0 and subnormals; about 2 % of the
//! random bit patterns of the long run are such tiny arguments.)

use core::arch::x86_64::*;

use super::data::{C2, C3, C4, C5, INV_LN2_N, N, NEG_LN2_HI_N, NEG_LN2_LO_N, SHIFT, TAB};
use super::scalar::{self, Fused, TOP12_LARGE};

/// 512: the first |x| outside glibc's main path (`top12 (512.0)`).
const FAST_END: f64 = f64::from_bits((TOP12_LARGE as u64) << 52);

/// glibc's `__exp_fma` for one argument.
#[target_feature(enable = "fma")]
pub(super) fn exp_fma(x: f64) -> f64 {
    scalar::exp::<Fused>(x)
}

/// exp over `n` doubles from `src` to `dst`, one at a time.
///
/// # Safety
/// The CPU has FMA; `src` is readable and `dst` writable for `n` doubles. They may be the
/// same pointer (in place) but must not otherwise overlap.
#[target_feature(enable = "fma")]
pub(super) unsafe fn exp_fma_slice(src: *const f64, dst: *mut f64, n: usize) {
    for i in 0..n {
        unsafe { *dst.add(i) = exp_fma(*src.add(i)) };
    }
}

/// exp over `n` doubles from `src` to `dst`, 4 at a time.
///
/// # Safety
/// The CPU has AVX2 and FMA; `src` is readable and `dst` writable for `n` doubles. They may be
/// the same pointer (in place) but must not otherwise overlap.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn exp_avx2(src: *const f64, dst: *mut f64, n: usize) {
    let mut i = 0;
    while i + 4 <= n {
        let x = unsafe { _mm256_loadu_pd(src.add(i)) };
        unsafe { _mm256_storeu_pd(dst.add(i), exp4(x)) };
        i += 4;
    }
    if n < 4 {
        // As in `exp_avx512`: a few arguments one at a time.
        return unsafe { exp_fma_slice(src, dst, n) };
    }
    if i < n {
        // The last 1..3 with masked loads and stores; the missing lanes read as 0.0.
        let rest = (n - i) as i64;
        let live = _mm256_cmpgt_epi64(_mm256_set1_epi64x(rest), _mm256_set_epi64x(3, 2, 1, 0));
        let x = unsafe { _mm256_maskload_pd(src.add(i), live) };
        unsafe { _mm256_maskstore_pd(dst.add(i), live, exp4(x)) };
    }
}

/// exp over `n` doubles from `src` to `dst`, 8 at a time.
///
/// # Safety
/// The CPU has AVX-512F, AVX2 and FMA; otherwise as [`exp_avx2`].
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn exp_avx512(src: *const f64, dst: *mut f64, n: usize) {
    let mut i = 0;
    while i + 8 <= n {
        let x = unsafe { _mm512_loadu_pd(src.add(i)) };
        unsafe { _mm512_storeu_pd(dst.add(i), exp8(x)) };
        i += 8;
    }
    if n < 4 {
        // A few arguments (a one-cell tile's three gates): one at a time. A masked load of
        // values just stored one by one cannot be forwarded from those stores and waits for
        // them, which costs more on a step's critical path than three scalar exps side by side.
        return unsafe { exp_fma_slice(src, dst, n) };
    }
    if i < n {
        // The last 1..7 with masked loads and stores; the missing lanes read as 0.0.
        let live: __mmask8 = (1u8 << (n - i)) - 1;
        let x = unsafe { _mm512_maskz_loadu_pd(live, src.add(i)) };
        unsafe { _mm512_mask_storeu_pd(dst.add(i), live, exp8(x)) };
    }
}

/// Four lanes of `__exp_fma`.
#[target_feature(enable = "avx2,fma")]
fn exp4(x: __m256d) -> __m256d {
    let kd = _mm256_fmadd_pd(_mm256_set1_pd(INV_LN2_N), x, _mm256_set1_pd(SHIFT));
    let ki = _mm256_castpd_si256(kd);
    let kd = _mm256_sub_pd(kd, _mm256_set1_pd(SHIFT));
    let r = _mm256_fmadd_pd(kd, _mm256_set1_pd(NEG_LN2_HI_N), x);
    let r = _mm256_fmadd_pd(kd, _mm256_set1_pd(NEG_LN2_LO_N), r);
    let (tail, sbits) = table4(ki);
    let scale = _mm256_castsi256_pd(_mm256_add_epi64(sbits, _mm256_slli_epi64::<45>(ki)));
    let r2 = _mm256_mul_pd(r, r);
    let p23 = _mm256_fmadd_pd(r, _mm256_set1_pd(C3), _mm256_set1_pd(C2));
    let p45 = _mm256_fmadd_pd(r, _mm256_set1_pd(C5), _mm256_set1_pd(C4));
    let tmp = _mm256_fmadd_pd(r2, p23, _mm256_add_pd(tail, r));
    let tmp = _mm256_fmadd_pd(_mm256_mul_pd(r2, r2), p45, tmp);
    let y = _mm256_fmadd_pd(scale, tmp, scale);

    let ax = _mm256_andnot_pd(_mm256_set1_pd(-0.0), x);
    let fast = _mm256_movemask_pd(_mm256_cmp_pd::<_CMP_LT_OQ>(ax, _mm256_set1_pd(FAST_END)));
    if fast == 0b1111 {
        return y;
    }
    let (mut xs, mut ys) = ([0.0; 4], [0.0; 4]);
    // SAFETY: both arrays hold 4 doubles.
    unsafe {
        _mm256_storeu_pd(xs.as_mut_ptr(), x);
        _mm256_storeu_pd(ys.as_mut_ptr(), y);
    }
    redo_slow_lanes(&xs, &mut ys, !fast as u8 & 0b1111);
    unsafe { _mm256_loadu_pd(ys.as_ptr()) }
}

/// `ys[lane] = exp_fma(xs[lane])` for the lanes set in `slow`.
#[target_feature(enable = "fma")]
fn redo_slow_lanes<const L: usize>(xs: &[f64; L], ys: &mut [f64; L], slow: u8) {
    for lane in 0..L {
        if slow & (1 << lane) != 0 {
            ys[lane] = exp_fma(xs[lane]);
        }
    }
}

/// `(T[idx], T[idx + 1])` with idx = 2 * (ki % N) for four lanes: the tail and the scale bits
/// of 2^(k/N). Each pair is one 16-byte load; two interleaves sort the halves. (On the AMD
/// Zen 5 of BENCHMARKS.md this took 0.85 ns/element where two gathers took 1.1.)
#[target_feature(enable = "avx2")]
fn table4(ki: __m256i) -> (__m256d, __m256i) {
    let mut k = [0u64; 4];
    // SAFETY: k holds 4 u64.
    unsafe { _mm256_storeu_si256(k.as_mut_ptr().cast(), ki) };
    let pair = |lane: usize| {
        let idx = 2 * (k[lane] % N) as usize;
        // SAFETY: idx <= 254, so TAB[idx] and TAB[idx + 1] exist.
        unsafe { _mm_loadu_pd(TAB.as_ptr().add(idx).cast()) }
    };
    let even = _mm256_insertf128_pd::<1>(_mm256_castpd128_pd256(pair(0)), pair(2)); // t0 s0 t2 s2
    let odd = _mm256_insertf128_pd::<1>(_mm256_castpd128_pd256(pair(1)), pair(3)); // t1 s1 t3 s3
    (
        _mm256_unpacklo_pd(even, odd),
        _mm256_castpd_si256(_mm256_unpackhi_pd(even, odd)),
    )
}

/// Eight lanes of `__exp_fma`.
#[target_feature(enable = "avx512f,avx2,fma")]
fn exp8(x: __m512d) -> __m512d {
    let kd = _mm512_fmadd_pd(_mm512_set1_pd(INV_LN2_N), x, _mm512_set1_pd(SHIFT));
    let ki = _mm512_castpd_si512(kd);
    let kd = _mm512_sub_pd(kd, _mm512_set1_pd(SHIFT));
    let r = _mm512_fmadd_pd(kd, _mm512_set1_pd(NEG_LN2_HI_N), x);
    let r = _mm512_fmadd_pd(kd, _mm512_set1_pd(NEG_LN2_LO_N), r);
    // Two halves through the 4-lane lookup (a single 8-lane one measured no faster).
    let (tail_lo, sbits_lo) = table4(_mm512_castsi512_si256(ki));
    let (tail_hi, sbits_hi) = table4(_mm512_extracti64x4_epi64::<1>(ki));
    let tail = _mm512_insertf64x4::<1>(_mm512_castpd256_pd512(tail_lo), tail_hi);
    let sbits = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(sbits_lo), sbits_hi);
    let scale = _mm512_castsi512_pd(_mm512_add_epi64(sbits, _mm512_slli_epi64::<45>(ki)));
    let r2 = _mm512_mul_pd(r, r);
    let p23 = _mm512_fmadd_pd(r, _mm512_set1_pd(C3), _mm512_set1_pd(C2));
    let p45 = _mm512_fmadd_pd(r, _mm512_set1_pd(C5), _mm512_set1_pd(C4));
    let tmp = _mm512_fmadd_pd(r2, p23, _mm512_add_pd(tail, r));
    let tmp = _mm512_fmadd_pd(_mm512_mul_pd(r2, r2), p45, tmp);
    let y = _mm512_fmadd_pd(scale, tmp, scale);

    let ax = _mm512_abs_pd(x);
    let fast = _mm512_cmp_pd_mask::<_CMP_LT_OQ>(ax, _mm512_set1_pd(FAST_END));
    if fast == 0xff {
        return y;
    }
    let (mut xs, mut ys) = ([0.0; 8], [0.0; 8]);
    // SAFETY: both arrays hold 8 doubles.
    unsafe {
        _mm512_storeu_pd(xs.as_mut_ptr(), x);
        _mm512_storeu_pd(ys.as_mut_ptr(), y);
    }
    redo_slow_lanes(&xs, &mut ys, !fast);
    unsafe { _mm512_loadu_pd(ys.as_ptr()) }
}
