//! Development timing of the state as words (what a snapshot, a restore and the state hash
//! cost): a model's state written, hashed and read back, best of several repeats in thread
//! CPU time, beside the cost of one step of the same model.
//!
//!     cargo run --release -p spikebus-engine --example state_time -- [MODEL.toml] [REPEATS]
//!
//! Without a model file: the seed model.

use spikebus_engine::{parse_model, Model, Sim};

/// This thread's CPU time in seconds.
fn cpu_time() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The best time of `f` over `repeats` rounds of `inner` calls, per call, in microseconds.
fn best(repeats: usize, inner: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..repeats {
        let t0 = cpu_time();
        for _ in 0..inner {
            f();
        }
        best = best.min((cpu_time() - t0) / inner as f64);
    }
    best * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let model = match args.get(1) {
        Some(p) => parse_model(&std::fs::read_to_string(p).unwrap(), p).unwrap(),
        None => Model::seed(),
    };
    let repeats: usize = args.get(2).map_or(7, |a| a.parse().unwrap());
    let mut sim = Sim::new(model).unwrap();
    sim.initialize(|_| {});
    for _ in 0..400 {
        sim.step(|_| {});
    }
    let words = sim.state_words();
    let inner = (2_000_000 / words.len()).clamp(10, 100_000);
    let step = {
        let mut s = sim.clone();
        best(repeats, 400, || s.step(|_| {}))
    };
    let write = best(repeats, inner, || {
        std::hint::black_box(sim.state_words());
    });
    let hash = best(repeats, inner, || {
        std::hint::black_box(sim.state_hash());
    });
    let mut other = sim.clone();
    let read = best(repeats, inner, || other.read_state(&words).unwrap());
    println!(
        "{}: {} words ({} bytes); step {step:.2} us; state_words {write:.2} us; state_hash {hash:.2} us; read_state {read:.2} us",
        sim.model().origin,
        words.len(),
        words.len() * 8
    );
}
