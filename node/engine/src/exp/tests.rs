//! Every path that runs on this CPU against libm's `exp`, bit for bit. The paths of the
//! variant libm uses here are compared in this process; the other variant is compared in a
//! child process in which `GLIBC_TUNABLES` makes glibc pick its unfused builds.

use super::check::{self, Args};
use super::*;

/// Arguments of the in-process comparison (the 10^9 run is `examples/exp_check.rs`).
const ARGS: usize = 10_000_000;

/// The runnable paths that compute the variant libm runs on this CPU.
fn paths_of_libms_variant() -> Vec<Path> {
    let same: &[Path] = match glibc_path() {
        Path::Avx512 | Path::Avx2 | Path::ScalarFma => &[Path::Avx512, Path::Avx2, Path::ScalarFma],
        Path::Scalar => &[Path::Scalar],
        Path::Libm => &[],
    };
    same.iter().copied().filter(|p| p.runs_here()).collect()
}

/// The edge cases followed by `n` arguments of the stream `seed`.
fn arguments(seed: u64, n: usize) -> Vec<f64> {
    let mut xs = check::edge_cases();
    let edges = xs.len();
    xs.resize(edges + n, 0.0);
    Args::new(seed).fill(&mut xs[edges..]);
    xs
}

fn libm_of(xs: &[f64]) -> Vec<f64> {
    let mut want = vec![0.0; xs.len()];
    check::libm(xs, &mut want);
    want
}

/// Asserts bit equality, naming the first few arguments that differ.
fn assert_same_bits(what: &str, xs: &[f64], got: &[f64], want: &[f64]) {
    let bad: Vec<String> = (0..xs.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .take(5)
        .map(|i| {
            format!(
                "exp({:e} = {:#018x}): {:#018x}, libm {:#018x}",
                xs[i],
                xs[i].to_bits(),
                got[i].to_bits(),
                want[i].to_bits()
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{what}: {} of {} results differ from libm, e.g. {bad:#?}",
        check::mismatches(got, want),
        xs.len()
    );
}

#[test]
fn paths_of_libms_variant_match_libm_on_ten_million_arguments() {
    let xs = arguments(1, ARGS);
    let want = libm_of(&xs);
    let paths = paths_of_libms_variant();
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("fma") && is_x86_feature_detected!("avx2") {
        assert!(
            paths.contains(&Path::Avx2) && paths.contains(&Path::ScalarFma),
            "{paths:?}"
        );
    }
    let mut got = vec![0.0; xs.len()];
    for &path in &paths {
        got.fill(0.0);
        exp_into_with(path, &xs, &mut got);
        assert_same_bits(&format!("exp_into_with({})", path.name()), &xs, &got, &want);
        got.copy_from_slice(&xs);
        exp_in_place_with(path, &mut got);
        assert_same_bits(
            &format!("exp_in_place_with({})", path.name()),
            &xs,
            &got,
            &want,
        );
        eprintln!("{}: {} arguments, 0 mismatches", path.name(), xs.len());
    }

    // The module's own choice, over slices and one argument at a time.
    if glibc_path() != Path::Libm {
        assert!(
            verified(),
            "the start-up check rejected {}",
            glibc_path().name()
        );
        assert_eq!(path(), glibc_path());
    }
    exp_into(&xs, &mut got);
    assert_same_bits("exp_into", &xs, &got, &want);
    let one_by_one: Vec<f64> = xs.iter().map(|&x| exp(x)).collect();
    assert_same_bits("exp", &xs, &one_by_one, &want);
}

/// Every slice length around the vector widths, at every alignment, with special arguments
/// (handled lane by lane) at every lane position, in place and not.
#[test]
fn every_length_offset_and_lane_of_a_special_argument() {
    let specials = check::edge_cases();
    let mut normal = vec![0.0; 4096];
    Args::new(2).fill(&mut normal);
    let paths: Vec<Path> = paths_of_libms_variant()
        .into_iter()
        .chain([Path::Libm])
        .collect();
    let mut case = 0;
    for len in 0..=40 {
        for offset in 0..8 {
            case += 1;
            let buf: Vec<f64> = (0..offset + len)
                .map(|i| {
                    if (i + case) % 5 == 0 {
                        specials[(i * 31 + case * 7) % specials.len()]
                    } else {
                        normal[(i + case * 13) % normal.len()]
                    }
                })
                .collect();
            let xs = &buf[offset..];
            let want = libm_of(xs);
            for &path in &paths {
                let mut got = vec![f64::NAN; len];
                exp_into_with(path, xs, &mut got);
                assert_same_bits(
                    &format!("{} len {len} offset {offset}", path.name()),
                    xs,
                    &got,
                    &want,
                );
                let mut in_place = buf.clone();
                exp_in_place_with(path, &mut in_place[offset..]);
                assert_same_bits(
                    &format!("{} in place", path.name()),
                    xs,
                    &in_place[offset..],
                    &want,
                );
                assert_eq!(
                    in_place[..offset],
                    buf[..offset],
                    "{}: wrote before the slice",
                    path.name()
                );
            }
        }
    }
}

/// The start-up check must catch a libm that runs the other variant (the fallback test below
/// shows it does under `GLIBC_TUNABLES`): its arguments must contain enough results where the
/// two variants differ.
#[test]
fn the_start_up_arguments_tell_the_two_variants_apart() {
    if !Path::ScalarFma.runs_here() {
        eprintln!("no FMA on this CPU: the FMA variant cannot be computed here");
        return;
    }
    let mut differ = 0;
    let mut n = 0;
    for_each_verification_block(|xs| {
        n += xs.len();
        differ += xs
            .iter()
            .filter(|&&x| Path::ScalarFma.exp1(x).to_bits() != Path::Scalar.exp1(x).to_bits())
            .count();
        true
    });
    eprintln!("the variants differ on {differ} of the {n} start-up arguments");
    assert!(differ >= 10, "only {differ} of {n}");
}

/// Set in the child processes of the next test: the `GLIBC_TUNABLES` they run under.
const CHILD: &str = "SPIKEBUS_EXP_TEST_TUNABLES";

/// glibc's unfused builds (`__exp_avx`, `__exp_sse2`) are what a CPU without FMA or AVX2
/// runs. `GLIBC_TUNABLES` makes glibc pick them on this CPU too, in a child process running
/// this test again, which then checks: libm has changed (its results differ from the FMA
/// variant's, where the CPU can compute that), `Path::Scalar` matches it bit for bit, and the
/// start-up check notices that the CPU's fused path no longer matches and falls back to libm.
#[test]
fn unfused_variant_matches_glibcs_sse2_and_avx_builds() {
    let name = "exp::tests::unfused_variant_matches_glibcs_sse2_and_avx_builds";
    let Some(tunables) = std::env::var_os(CHILD) else {
        for tunables in [
            "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4",
            "glibc.cpu.hwcaps=-AVX2,-FMA,-FMA4,-AVX",
        ] {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args([name, "--exact", "--nocapture", "--test-threads=1"])
                .env(CHILD, tunables)
                .env("GLIBC_TUNABLES", tunables)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "child with {tunables} failed:\n{stdout}\n{stderr}"
            );
            // The child must have run this test (and not filtered it away).
            assert!(
                stdout.contains("1 passed"),
                "child with {tunables} ran no test:\n{stdout}"
            );
            eprint!("{stderr}");
        }
        return;
    };

    let xs = arguments(3, 1_000_000);
    let want = libm_of(&xs);
    let mut got = vec![0.0; xs.len()];
    #[cfg(target_arch = "x86_64")]
    if Path::ScalarFma.runs_here() {
        exp_into_with(Path::ScalarFma, &xs, &mut got);
        let differ = check::mismatches(&got, &want);
        assert!(
            differ > 0,
            "{tunables:?} did not change libm's exp: it still matches the FMA variant"
        );
        eprintln!(
            "{tunables:?}: the FMA variant differs from libm in {differ} of {} results",
            xs.len()
        );
    }
    exp_into_with(Path::Scalar, &xs, &mut got);
    assert_same_bits(&format!("scalar under {tunables:?}"), &xs, &got, &want);
    eprintln!(
        "{tunables:?}: scalar (unfused): {} arguments, 0 mismatches",
        xs.len()
    );

    // The module picks its path from CPUID, which the tunables do not change.
    match glibc_path() {
        Path::Avx512 | Path::Avx2 | Path::ScalarFma => {
            assert!(
                !verified(),
                "the start-up check accepted the FMA variant under {tunables:?}"
            );
            assert_eq!(path(), Path::Libm);
        }
        Path::Scalar => assert!(verified() && path() == Path::Scalar),
        Path::Libm => assert!(!verified()),
    }
    exp_into(&xs, &mut got);
    assert_same_bits("exp_into after the fallback", &xs, &got, &want);
}
