//! `exp` with the bits of the C library's `exp`, over whole slices at once.
//!
//! NEURON is compiled C, so every exponential in its mechanisms is glibc's libm `exp`, and a
//! bit-exact engine must produce the same doubles. Calling libm per element costs a PLT jump
//! and libm's errno wrapper per call (a third of a 1,000-cell run); libmvec's vector exp
//! rounds differently and cannot be used. This module re-implements glibc's algorithm
//! (Szabolcs Nagy's table-based `sysdeps/ieee754/dbl-64/e_exp.c`, glibc 2.28 onwards) so that
//! 4 or 8 arguments go through it per instruction, with the same bits as libm.
//!
//! x86_64 libm carries four builds of that one C function and picks one per CPU with an ifunc
//! (`sysdeps/x86_64/fpu/multiarch/ifunc-avx-fma4.h`): `__exp_fma` if FMA and AVX2 are usable,
//! else `__exp_fma4` with FMA4, else `__exp_avx` with AVX, else `__exp_sse2`. The FMA and FMA4
//! builds let GCC contract `a*b + c` into fused multiply-adds, which changes about 1 result in
//! 1,500; the AVX and SSE2 builds round every product. So there are two variants of the bits
//! (see `scalar.rs`), and [`Path`] says how they are computed here. At first use the module
//! picks the path that mirrors glibc's choice on this CPU ([`path`]) and checks it against
//! libm on about 34,000 arguments (edge cases and a mix shaped like the engine's arguments,
//! see [`check`]). If any result differs — another libc, another glibc version, a
//! `GLIBC_TUNABLES` that changes glibc's choice — every function here calls libm instead
//! ([`verified`] is then false). Non-x86_64 targets always call libm.
//!
//! libm is reached through `f64::exp`: on `*-linux-gnu` targets Rust lowers it to a call of
//! the C library's `exp` (the symbol `exp@GLIBC_2.29`), never to an inline expansion.
//!
//! errno is not set: the engine never reads it.

pub mod check;
mod data;
mod scalar;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::sync::OnceLock;

use scalar::Unfused;

/// A way to compute exp over a slice. Every path that [`Path::runs_here`] computes one of
/// glibc's two variants exactly; which variant matches libm depends on the CPU (see the module
/// docs), and [`path`] is the one that does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// 8 arguments per instruction (AVX-512F), glibc's FMA build.
    Avx512,
    /// 4 arguments per instruction (AVX2 and FMA), glibc's FMA build.
    Avx2,
    /// One argument at a time with FMA, glibc's FMA build: for a CPU with FMA4 and FMA but no
    /// AVX2, where libm runs `__exp_fma4` (same contractions as `__exp_fma`).
    ScalarFma,
    /// One argument at a time without FMA: glibc's SSE2 and AVX builds.
    Scalar,
    /// libm's own `exp`, one call per argument: where equality cannot be established.
    Libm,
}

impl Path {
    pub const ALL: [Path; 5] = [
        Path::Avx512,
        Path::Avx2,
        Path::ScalarFma,
        Path::Scalar,
        Path::Libm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Path::Avx512 => "avx512",
            Path::Avx2 => "avx2",
            Path::ScalarFma => "scalar-fma",
            Path::Scalar => "scalar",
            Path::Libm => "libm",
        }
    }

    /// Whether this CPU can execute the path (not whether its bits are libm's: see [`path`]).
    pub fn runs_here(self) -> bool {
        match self {
            Path::Scalar | Path::Libm => true,
            #[cfg(target_arch = "x86_64")]
            Path::ScalarFma => is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => {
                is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Path::ScalarFma | Path::Avx2 | Path::Avx512 => false,
        }
    }

    fn needs(self) -> &'static str {
        match self {
            Path::Avx512 => "x86_64 with AVX-512F, AVX2 and FMA",
            Path::Avx2 => "x86_64 with AVX2 and FMA",
            Path::ScalarFma => "x86_64 with FMA",
            Path::Scalar | Path::Libm => "nothing",
        }
    }

    /// exp of one argument, in this path's variant. Only for paths that run here.
    fn exp1(self, x: f64) -> f64 {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: these paths run only where FMA does (`runs_here`, checked by the callers).
            Path::Avx512 | Path::Avx2 | Path::ScalarFma => unsafe { x86::exp_fma(x) },
            Path::Scalar => scalar::exp::<Unfused>(x),
            _ => x.exp(),
        }
    }

    /// [`exp`] of one argument written into the caller: for the step kernels, whose AVX2 and
    /// AVX-512 builds have FMA, so that glibc's multiply-adds are single instructions there
    /// and three exps of one cell's gates overlap. (In a build without FMA, such as the
    /// portable kernels forced on an FMA CPU, each multiply-add is a call to libm's `fma`: the
    /// same bits, slower.)
    #[inline(always)]
    pub(crate) fn exp1_inline(self, x: f64) -> f64 {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 | Path::Avx2 => scalar::exp::<scalar::Fused>(x),
            _ => self.exp1(x),
        }
    }

    /// exp of `n` doubles from `src` into `dst`.
    ///
    /// # Safety
    /// `self.runs_here()`; `src` readable and `dst` writable for `n` doubles, either the same
    /// pointer or not overlapping.
    unsafe fn run(self, src: *const f64, dst: *mut f64, n: usize) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Path::Avx512 => unsafe { x86::exp_avx512(src, dst, n) },
            #[cfg(target_arch = "x86_64")]
            Path::Avx2 => unsafe { x86::exp_avx2(src, dst, n) },
            #[cfg(target_arch = "x86_64")]
            Path::ScalarFma => unsafe { x86::exp_fma_slice(src, dst, n) },
            _ => {
                for i in 0..n {
                    unsafe { *dst.add(i) = self.exp1(*src.add(i)) };
                }
            }
        }
    }
}

/// The path whose bits are glibc's on this CPU, as glibc's ifunc selector picks its build:
/// FMA and AVX2 usable: the FMA build (fastest vector path); FMA4: the FMA4 build, whose
/// contractions are the FMA build's (computed with FMA if the CPU has it, else by libm); AVX
/// or SSE2: the unfused build. Non-x86_64: libm.
fn glibc_path() -> Path {
    #[cfg(target_arch = "x86_64")]
    {
        if Path::Avx512.runs_here() {
            Path::Avx512
        } else if Path::Avx2.runs_here() {
            Path::Avx2
        } else if has_fma4() {
            if Path::ScalarFma.runs_here() {
                Path::ScalarFma
            } else {
                Path::Libm
            }
        } else {
            Path::Scalar
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Path::Libm
    }
}

/// FMA4 usable, as glibc decides it: CPUID 0x80000001 ECX bit 16 and AVX state enabled by
/// the OS (`std` has no FMA4 feature test).
#[cfg(target_arch = "x86_64")]
fn has_fma4() -> bool {
    use core::arch::x86_64::__cpuid;
    // `__cpuid` was an unsafe fn in older Rust versions.
    #[allow(unused_unsafe)]
    let (max, ecx) = unsafe {
        let max = __cpuid(0x8000_0000).eax;
        (
            max,
            if max >= 0x8000_0001 {
                __cpuid(0x8000_0001).ecx
            } else {
                0
            },
        )
    };
    max >= 0x8000_0001 && ecx & (1 << 16) != 0 && is_x86_feature_detected!("avx")
}

/// Random arguments (besides [`check::edge_cases`]) in the start-up comparison with libm. The
/// FMA and unfused variants differ in about 1 result in 1,600 of this mix, so a wrong variant
/// shows up about 20 times (a test counts them); the whole check takes under 1 ms.
const VERIFY_ARGS: usize = 30_000;
const VERIFY_SEED: u64 = 0x5eed_e4b0_0000_0001;

#[derive(Debug, Clone, Copy)]
struct Selection {
    path: Path,
    verified: bool,
}

static SELECTION: OnceLock<Selection> = OnceLock::new();

#[inline]
fn selection() -> Selection {
    *SELECTION.get_or_init(|| {
        let candidate = glibc_path();
        let verified = candidate != Path::Libm && agrees_with_libm(candidate);
        Selection {
            path: if verified { candidate } else { Path::Libm },
            verified,
        }
    })
}

/// Whether `path` (which runs here), over slices and one argument at a time, returns libm's
/// bits on the verification arguments.
fn agrees_with_libm(path: Path) -> bool {
    let (mut want, mut got) = (vec![0.0; VERIFY_BLOCK], vec![0.0; VERIFY_BLOCK]);
    for_each_verification_block(|xs| {
        let (want, got) = (&mut want[..xs.len()], &mut got[..xs.len()]);
        check::libm(xs, want);
        // SAFETY: the caller passes a path that runs here; the slices have equal lengths.
        unsafe { path.run(xs.as_ptr(), got.as_mut_ptr(), xs.len()) };
        check::mismatches(got, want) == 0
            && xs
                .iter()
                .zip(want.iter())
                .all(|(&x, w)| path.exp1(x).to_bits() == w.to_bits())
    })
}

/// The verification arguments go through buffers of this many, whose first-touch page faults
/// would otherwise cost as much as the comparison.
const VERIFY_BLOCK: usize = 4096;

/// Calls `f` on successive blocks of the verification arguments ([`check::edge_cases`], then
/// [`VERIFY_ARGS`] of [`check::Args`]) while it returns true; returns whether it always did.
fn for_each_verification_block(mut f: impl FnMut(&[f64]) -> bool) -> bool {
    let edges = check::edge_cases();
    if !edges.chunks(VERIFY_BLOCK).all(&mut f) {
        return false;
    }
    let mut args = check::Args::new(VERIFY_SEED);
    let mut xs = vec![0.0; VERIFY_BLOCK];
    let mut done = 0;
    while done < VERIFY_ARGS {
        let n = VERIFY_BLOCK.min(VERIFY_ARGS - done);
        args.fill(&mut xs[..n]);
        if !f(&xs[..n]) {
            return false;
        }
        done += n;
    }
    true
}

/// The path in use: [`glibc_path`] if it agreed with libm at start-up, else [`Path::Libm`].
#[inline]
pub fn path() -> Path {
    selection().path
}

/// Whether the fast path agreed with libm at start-up (computed once, on first use of this
/// module; under 1 ms). False means every function here calls libm.
pub fn verified() -> bool {
    selection().verified
}

/// exp(x) with the bits of libm's `exp`.
#[inline]
pub fn exp(x: f64) -> f64 {
    path().exp1(x)
}

/// `xs[i] = exp(xs[i])` for every element, with the bits of libm's `exp`.
pub fn exp_in_place(xs: &mut [f64]) {
    let p = xs.as_mut_ptr();
    // SAFETY: the selected path runs here; in place over one slice.
    unsafe { path().run(p, p, xs.len()) }
}

/// `out[i] = exp(xs[i])`, with the bits of libm's `exp`. Panics if the lengths differ.
pub fn exp_into(xs: &[f64], out: &mut [f64]) {
    assert_eq!(
        xs.len(),
        out.len(),
        "exp_into: argument and result slices differ in length"
    );
    // SAFETY: the selected path runs here; `&` and `&mut` slices cannot overlap.
    unsafe { path().run(xs.as_ptr(), out.as_mut_ptr(), xs.len()) }
}

/// [`exp_in_place`] through a chosen path, whatever [`path`] is: for tests and benchmarks.
/// Its bits are libm's only if the path computes the variant libm uses here. Panics if the
/// path cannot run on this CPU (check [`Path::runs_here`] first): forcing one is a
/// programming error, not bad input.
pub fn exp_in_place_with(path: Path, xs: &mut [f64]) {
    assert_runs(path);
    let p = xs.as_mut_ptr();
    // SAFETY: checked just above; in place over one slice.
    unsafe { path.run(p, p, xs.len()) }
}

/// [`exp_into`] through a chosen path (see [`exp_in_place_with`]). Panics if the path cannot
/// run on this CPU or the lengths differ.
pub fn exp_into_with(path: Path, xs: &[f64], out: &mut [f64]) {
    assert_runs(path);
    assert_eq!(
        xs.len(),
        out.len(),
        "exp_into_with: argument and result slices differ in length"
    );
    // SAFETY: checked just above; `&` and `&mut` slices cannot overlap.
    unsafe { path.run(xs.as_ptr(), out.as_mut_ptr(), xs.len()) }
}

fn assert_runs(path: Path) {
    assert!(
        path.runs_here(),
        "exp path `{}` cannot run on this CPU: it needs {}",
        path.name(),
        path.needs()
    );
}
