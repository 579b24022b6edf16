//! Development timing of the engine alone (no I/O): N copies of the seed cell, each driven by
//! its own NetStim, stepped for a given time; prints the best of several repeats (thread CPU time) per kernel
//! variant, in ns per cell-step. The benchmarks against NEURON and Arbor are in bench/.
//!
//!     [KERNELS=avx512|avx2|portable] [THREADS=N] cargo run --release -p spikebus-engine --example step_time -- [CELLS] [TSTOP] [REPEATS]
//!
//! With WINDOWS=1, it advances as `spikebus run` does: in windows of steps
//! (`Sim::set_windows`) where the model allows them; with PROBE=SIGNAL (e.g. soma0.v) as well,
//! it reads that signal after every step, as `spikebus run --record SIGNAL` does (into a
//! vector here, not a file).
//!
//! With MODEL=FILE, that model file instead (its own tstop; CELLS counts its sections and
//! artificial cells), e.g. an event-heavy network.

use spikebus_engine::{parse_model, Kernels, Sim};

fn model(n: usize, tstop: f64) -> String {
    let mut s = format!("[run]\ntstop = {tstop}\n");
    for i in 0..n {
        s += &format!(
            "[section.soma{i}]\ninsert = [\"hh\"]\n[point.syn{i}]\ntype = \"ExpSyn\"\nat = \"soma{i}(0.5)\"\ntau = 20.0\n\
             [cell.ns{i}]\ntype = \"NetStim\"\ninterval = 20.0\nstart = {}\nnumber = 1e9\n\
             [netcon.nc{i}]\nsource = \"ns{i}\"\ntarget = \"syn{i}\"\ndelay = 0.0\nweight = 0.1\n",
            (i % 20) as f64
        );
    }
    s
}

/// This thread's CPU time in seconds: less disturbed by other processes than wall time.
fn cpu_time() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(1000, |a| a.parse().unwrap());
    let tstop: f64 = args.get(2).map_or(100.0, |a| a.parse().unwrap());
    let repeats: usize = args.get(3).map_or(5, |a| a.parse().unwrap());
    let (m, n) = match std::env::var("MODEL") {
        Ok(path) => {
            let m = parse_model(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
            let cells = m.sections.len() + m.cells.len();
            (m, cells)
        }
        Err(_) => (parse_model(&model(n, tstop), "bench").unwrap(), n),
    };
    let only = std::env::var("KERNELS").ok();
    let threads: usize = std::env::var("THREADS").map_or(1, |t| t.parse().unwrap());
    for k in Kernels::ALL.into_iter().filter(|k| k.runs_here() && only.as_deref().is_none_or(|o| o == k.name())) {
        let mut best = f64::INFINITY;
        let mut steps = 0;
        for _ in 0..repeats {
            let mut sim = Sim::with_threads(m.clone(), threads).unwrap();
            sim.set_kernels(k);
            // Like `spikebus run` recording v only: nothing reads the currents' outputs.
            sim.set_outputs_read(std::env::var("OUTPUTS").is_ok());
            let windows = std::env::var("WINDOWS").is_ok_and(|w| w == "1");
            let probe: Vec<_> = std::env::var("PROBE").ok().map(|p| sim.signal(&p).unwrap()).into_iter().collect();
            if windows {
                sim.set_windows(Some(&probe));
            }
            // A block of samples written over and over (the app hands full blocks to a writer).
            let mut samples: Vec<f64> = Vec::with_capacity(8192);
            let mut sample = |s: &Sim| {
                if let Some(&r) = probe.first() {
                    if samples.len() == samples.capacity() {
                        samples.clear();
                    }
                    samples.push(s.t());
                    samples.push(s.value(r));
                }
            };
            sim.initialize(|_| {});
            let (t0, w0) = (cpu_time(), std::time::Instant::now());
            while sim.running() {
                if windows {
                    sim.advance(&mut sample);
                } else {
                    sim.step(&mut sample);
                }
            }
            // One thread: its CPU time; more: wall time (the workers' time is not ours).
            best = best.min(if threads == 1 { cpu_time() - t0 } else { w0.elapsed().as_secs_f64() });
            steps = sim.step_index();
        }
        let per = best * 1e9 / (n as f64 * steps as f64);
        let used = Sim::with_threads(m.clone(), threads).unwrap().step_threads();
        println!("{n:>9} cells {:>8} {used} thread(s): {per:.2} ns/cell-step ({best:.3} s for {steps} steps)", k.name());
    }
}
