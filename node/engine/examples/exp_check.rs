//! The long verification of `spikebus_engine::exp`: N arguments (default 10^9, from
//! `exp::check::Args`, after the edge cases) through every path that runs on this CPU and
//! through the module's own `exp()`, each compared bit for bit with libm's `exp`, with the time
//! per element of each; then a micro-benchmark on a cache-resident slice the size of one step
//! of 1,000 hh cells (3,000 arguments, those of the stream within [-50, 50]).
//!
//!     cargo run --release -p spikebus-engine --example exp_check -- 1000000000
//!
//! Exits with status 1 if a path of libm's variant (or `exp()`) mismatched anywhere.

use std::hint::black_box;
use std::time::{Duration, Instant};

use spikebus_engine::exp::{self, check, Path};

/// Arguments per comparison round: 2 x 512 KiB, resident in L2 while the paths run over it.
const CHUNK: usize = 1 << 16;
/// The micro-benchmark's slice: 1,000 cells x 3 exps of hh per step.
const HOT: usize = 3_000;

extern "C" {
    fn gnu_get_libc_version() -> *const std::ffi::c_char;
}

/// What one row of the tables computes.
#[derive(Clone, Copy)]
enum Subject {
    /// libm's `exp` through `f64::exp`: the reference.
    Libm,
    /// `exp::exp_into_with(path, ..)`.
    Path(Path),
    /// `exp::exp(x)`, one call per argument.
    Scalar,
}

impl Subject {
    fn label(self) -> String {
        match self {
            Subject::Libm => "libm exp (f64::exp)".into(),
            Subject::Path(p) => format!("path {}", p.name()),
            Subject::Scalar => "exp::exp() per call".into(),
        }
    }

    fn run(self, xs: &[f64], out: &mut [f64]) {
        match self {
            Subject::Libm => check::libm(xs, out),
            Subject::Path(p) => exp::exp_into_with(p, xs, out),
            Subject::Scalar => {
                for (y, &x) in out.iter_mut().zip(xs) {
                    *y = exp::exp(x);
                }
            }
        }
    }
}

struct Row {
    subject: Subject,
    /// Whether its results must equal libm's (it computes the variant libm runs here).
    must_match: bool,
    mismatches: u64,
    time: Duration,
}

fn main() {
    let n: u64 = match std::env::args().nth(1) {
        None => 1_000_000_000,
        Some(s) => s.replace('_', "").parse().unwrap_or_else(|_| {
            eprintln!("usage: exp_check [N arguments, default 1000000000]");
            std::process::exit(2)
        }),
    };

    println!("cpu: {}", cpu_model());
    // SAFETY: glibc returns a static NUL-terminated string.
    let glibc = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) };
    println!("glibc: {}", glibc.to_string_lossy());
    let t0 = Instant::now();
    let verified = exp::verified();
    let check_ms = t0.elapsed().as_secs_f64() * 1e3;
    let verdict = if verified {
        "passed"
    } else {
        "FAILED, libm used"
    };
    println!(
        "selected path: {} (start-up check against libm: {verdict}, {check_ms:.3} ms)",
        exp::path().name()
    );

    // The FMA paths and the unfused one compute glibc's two variants; libm runs the selected
    // path's (when the start-up check passed).
    let fused = |p: Path| matches!(p, Path::Avx512 | Path::Avx2 | Path::ScalarFma);
    let row = |subject, must_match| Row {
        subject,
        must_match,
        mismatches: 0,
        time: Duration::ZERO,
    };
    let mut rows = vec![row(Subject::Libm, true)];
    for p in Path::ALL
        .into_iter()
        .filter(|&p| p != Path::Libm && p.runs_here())
    {
        rows.push(row(
            Subject::Path(p),
            verified && fused(p) == fused(exp::path()),
        ));
    }
    rows.push(row(Subject::Scalar, true));

    let mut args = check::Args::new(0x10_0000_0000);
    let edges = check::edge_cases();
    let mut xs = vec![0.0; CHUNK];
    let mut want = vec![0.0; CHUNK];
    let mut got = vec![0.0; CHUNK];
    let mut done: u64 = 0;
    let start = Instant::now();
    let busy_before = cpu_ticks();
    while done < n {
        let len = if done == 0 {
            let len = edges.len().min(n as usize);
            xs[..len].copy_from_slice(&edges[..len]);
            len
        } else {
            let len = CHUNK.min((n - done) as usize);
            args.fill(&mut xs[..len]);
            len
        };
        let (xs, want, got) = (&xs[..len], &mut want[..len], &mut got[..len]);
        for r in &mut rows {
            let reference = matches!(r.subject, Subject::Libm);
            let t0 = Instant::now();
            r.subject
                .run(xs, if reference { &mut *want } else { &mut *got });
            r.time += t0.elapsed();
            if !reference {
                r.mismatches += check::mismatches(got, want) as u64;
            }
        }
        done += len as u64;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{done} arguments ({} edge cases, then exp::check::Args), {seconds:.1} s",
        edges.len().min(n as usize),
    );
    if let (Some(before), Some(after)) = (busy_before, cpu_ticks()) {
        // Clock ticks are 1/100 s on Linux.
        let others = (after.0 - before.0) as f64 - (after.1 - before.1) as f64;
        println!(
            "CPU used by other processes meanwhile: {:.2} cores",
            others / 100.0 / seconds
        );
    }
    println!();
    println!(
        "{:<24} {:>22} {:>12}   (streaming over {CHUNK}-element chunks)",
        "", "mismatches", "ns/element"
    );
    let mut failed = false;
    for r in &rows {
        let ns = r.time.as_secs_f64() * 1e9 / done as f64;
        let mismatches = match r.subject {
            Subject::Libm => "reference".to_string(),
            _ if r.must_match => r.mismatches.to_string(),
            _ => format!("{} (other variant)", r.mismatches),
        };
        failed |= r.must_match && r.mismatches > 0;
        println!("{:<24} {:>22} {:>12.3}", r.subject.label(), mismatches, ns);
    }

    println!();
    println!("micro-benchmark: {HOT} arguments in [-50, 50] (L1-resident), best of 20 runs of 2,000 repetitions");
    // The stream's arguments within [-50, 50] (the uniform part, hh's and cnexp's exponents).
    let mut hot = Vec::with_capacity(HOT);
    let mut args = check::Args::new(7);
    let mut draw = [0.0; 1];
    while hot.len() < HOT {
        args.fill(&mut draw);
        if draw[0].abs() <= 50.0 {
            hot.push(draw[0]);
        }
    }
    let mut out = vec![0.0; HOT];
    for r in &rows {
        let ns = best_ns_per_element(|| r.subject.run(black_box(&hot), black_box(&mut out)));
        println!("{:<24} {:>12.3} ns/element", r.subject.label(), ns);
    }
    if failed {
        println!("FAILED: a path of libm's variant mismatched");
        std::process::exit(1);
    }
}

fn best_ns_per_element(mut f: impl FnMut()) -> f64 {
    const REPS: u32 = 2_000;
    (0..20)
        .map(|_| {
            let t0 = Instant::now();
            for _ in 0..REPS {
                f();
            }
            t0.elapsed().as_secs_f64() * 1e9 / (REPS as f64 * HOT as f64)
        })
        .fold(f64::INFINITY, f64::min)
}

/// (ticks all CPUs were busy, ticks this process ran) from /proc.
fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = cpu.iter().take(8).sum::<u64>() - cpu.get(3)? - cpu.get(4)?;
    let own = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let after_name: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
    let own = after_name.get(11)?.parse::<u64>().ok()? + after_name.get(12)?.parse::<u64>().ok()?;
    Some((busy, own))
}

fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let has: Vec<&str> = ["fma", "avx2", "avx512f", "fma4"]
        .into_iter()
        .filter(|f| flags.split(' ').any(|x| x == *f))
        .collect();
    format!(
        "{} (family {}, model {}); flags: {}",
        field("model name"),
        field("cpu family"),
        field("model\t"),
        has.join(" ")
    )
}
