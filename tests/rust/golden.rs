//! Golden tests: spikebus against the real NEURON 9.0.2, bit for bit.
//!
//! Each `tests/golden/<variant>.json` was written by `tests/golden/generate.py` running NEURON
//! on a model file plus overrides. Here the engine runs the same variant; every recorded
//! sample (t, v, conductances, gates, currents) and every spike time must be the same double.
//! A variant with a first run (a restart, or parameters changed between two runs) is run the
//! same way here: initialize, step to `until`, set `between`, then the recorded run. A variant
//! with `record_dt` (NEURON's `Vector.record(&x, Dt)`) is sampled by the node's own rule
//! (`spikebus_app::record::DtClock`), as `spikebus run --record-dt` does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;
use spikebus_app::record::DtClock;
use spikebus_engine::{parse_model_with, Kernels, Pause, SignalRef, Sim, Spike};

#[derive(Deserialize)]
pub struct Golden {
    pub model: String,
    pub set: BTreeMap<String, f64>,
    pub callback: Option<String>,
    pub steps: usize,
    pub signals: Vec<String>,
    pub traces: BTreeMap<String, String>,
    pub spikes: BTreeMap<String, Vec<f64>>,
    #[serde(default)]
    pub r#final: BTreeMap<String, f64>,
    pub first_run: Option<FirstRun>,
    pub record_dt: Option<f64>,
}

/// A run before the recorded one: `h.stdinit(); h.continuerun(until)`, then `between` set.
#[derive(Deserialize)]
pub struct FirstRun {
    pub until: f64,
    pub between: BTreeMap<String, f64>,
    pub spikes: BTreeMap<String, Vec<f64>>,
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn load_golden(name: &str) -> Golden {
    let file = root().join("tests/golden").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_str(&text).expect("golden json")
}

pub fn decode_trace(b64: &str) -> Vec<f64> {
    use std::io::Read as _;
    let z = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
    let mut raw = vec![];
    flate2::read::ZlibDecoder::new(&z[..]).read_to_end(&mut raw).expect("zlib");
    raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()
}

/// The samples NEURON records: after every step, or at its Dt record events.
struct Recording {
    refs: Vec<SignalRef>,
    traces: Vec<Vec<f64>>,
    clock: Option<DtClock>,
}

impl Recording {
    fn push(&mut self, t: f64, s: &Sim) {
        self.traces[0].push(t);
        for (k, r) in self.refs.iter().enumerate() {
            self.traces[k + 1].push(s.value(*r));
        }
    }

    /// The sample at t = 0 and at the end of every step.
    fn sample(&mut self, s: &Sim) {
        let Some(mut clock) = self.clock else { return self.push(s.t(), s) };
        if s.step_index() == 0 {
            clock.restart();
        }
        while let Some(te) = clock.take_due(s.t()) {
            self.push(te, s);
        }
        self.clock = Some(clock);
    }

    /// A step begins from the boundary where `s` is.
    fn step_begins(&mut self, s: &Sim) {
        if let Some(mut clock) = self.clock {
            while let Some(te) = clock.take_due(s.t() + 0.5 * s.dt()) {
                self.push(te, s);
            }
            self.clock = Some(clock);
        }
    }
}

/// What spikebus produced for a variant.
struct Run {
    traces: Vec<Vec<f64>>,
    spikes: BTreeMap<String, Vec<f64>>,
    first_spikes: Option<BTreeMap<String, Vec<f64>>>,
    sim: Sim,
}

/// The spikes since initialization, by source name (every source, empty lists included).
fn spikes_by_source(sim: &mut Sim) -> BTreeMap<String, Vec<f64>> {
    let mut all: Vec<Spike> = vec![];
    sim.take_spikes(&mut all);
    let names: Vec<String> = sim.source_names().iter().map(|s| s.to_string()).collect();
    let mut spikes: BTreeMap<String, Vec<f64>> = names.iter().map(|n| (n.clone(), vec![])).collect();
    for s in all {
        spikes.get_mut(&names[s.source as usize]).unwrap().push(s.t);
    }
    spikes
}

fn run_variant(g: &Golden, kernels: Kernels, threads: usize, outputs_read: bool, windows: bool) -> Run {
    let path = root().join(&g.model);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Files the model refers to (an SWC file) are read relative to it, as the CLI does.
    let dir = path.parent().expect("a model file has a directory").to_path_buf();
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).map_err(|e| format!("{file}: {e}"));
    let mut model = parse_model_with(&text, &g.model, &read).unwrap_or_else(|e| panic!("{e}"));
    for (name, value) in &g.set {
        model.set(name, *value).unwrap_or_else(|e| panic!("{e}"));
    }
    // The golden models are small: their steps use the threads only when told to.
    let mut sim = Sim::with_threads_from(model, threads, 0).unwrap_or_else(|e| panic!("{e}"));
    assert!(sim.set_kernels(kernels));
    sim.set_outputs_read(outputs_read);
    let first_spikes = g.first_run.as_ref().map(|first| {
        sim.initialize(|_| {});
        // stdrun's continuerun(until): steps while t < until - dt/2.
        while sim.t() < first.until - sim.dt() / 2.0 {
            sim.step(|_| {});
        }
        let spikes = spikes_by_source(&mut sim);
        for (name, value) in &first.between {
            sim.set(name, *value).unwrap_or_else(|e| panic!("{e}"));
        }
        // The recorded run begins with a second finitialize.
        sim.reinitialize();
        spikes
    });
    let refs: Vec<_> = g.signals[1..].iter().map(|s| sim.signal(s).unwrap_or_else(|e| panic!("{e}"))).collect();
    let traces: Vec<Vec<f64>> = vec![Vec::with_capacity(g.steps + 1); g.signals.len()];
    if windows {
        sim.set_windows(Some(&refs));
    }
    let mut rec = Recording { refs, traces, clock: g.record_dt.map(DtClock::new) };
    // The seed document's callback runs in extra_scatter_gather: inside every step, where
    // h.t is still t_n.
    let seed_interval = match g.callback.as_deref() {
        None => false,
        Some("seed_interval") => true,
        Some(other) => panic!("unknown callback {other}"),
    };
    sim.stops_mut().scatter_gather = u64::from(seed_interval);
    let mut at_boundary = false;
    loop {
        if at_boundary && sim.running() {
            rec.step_begins(&sim);
        }
        let pause = sim.advance(&mut |s: &Sim| rec.sample(s));
        at_boundary = matches!(pause, Pause::Boundary(_));
        match pause {
            Pause::ScatterGather if (sim.now() as i64) % 50 == 0 => {
                let interval = sim.get("ns.interval").unwrap();
                sim.set("ns.interval", interval + 10.0).unwrap();
            }
            Pause::Boundary(b) if b.end => break,
            _ => {}
        }
    }
    let spikes = spikes_by_source(&mut sim);
    Run { traces: rec.traces, spikes, first_spikes, sim }
}

/// Spike times that differ from NEURON's, one message per source.
fn spike_failures(what: &str, got: &BTreeMap<String, Vec<f64>>, want: &BTreeMap<String, Vec<f64>>) -> Vec<String> {
    let mut failures = vec![];
    for (src, want) in want {
        let got = got.get(src).cloned().unwrap_or_default();
        let same = got.len() == want.len() && got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits());
        if !same {
            failures.push(format!("{what} of {src}: spikebus {got:?}, NEURON {want:?}"));
        }
    }
    failures
}

/// Checks a variant with every instruction set of the step kernels this CPU runs, on one
/// thread, and with the best of them on 2 and 3 threads; then as a free run that reads no
/// current outputs runs it (`Sim::set_outputs_read(false)`: every other signal, the spikes
/// and the final values must still be NEURON's); then, where nothing but the sampling looks
/// at a boundary (no callback, no record clock), in windows of steps (`Sim::set_windows`) on
/// 1 and 2 threads, outputs read and not.
fn check_variant(name: &str) {
    let g = load_golden(name);
    for k in Kernels::ALL.into_iter().filter(|k| k.runs_here()) {
        check_run(name, &g, k, 1, true, false);
    }
    for threads in [2, 3] {
        check_run(name, &g, Kernels::best(), threads, true, false);
    }
    check_run(name, &g, Kernels::best(), 1, false, false);
    if g.callback.is_none() && g.record_dt.is_none() {
        for (threads, outputs_read) in [(1, true), (2, false)] {
            check_run(name, &g, Kernels::best(), threads, outputs_read, true);
        }
    }
}

fn check_run(name: &str, g: &Golden, kernels: Kernels, threads: usize, outputs_read: bool, windows: bool) {
    let run = run_variant(g, kernels, threads, outputs_read, windows);
    let mut failures = vec![];
    for (k, sig) in g.signals.iter().enumerate() {
        if !outputs_read && k > 0 && run.sim.is_current_output(run.sim.signal(sig).unwrap()) {
            continue;
        }
        let want = decode_trace(&g.traces[sig]);
        let got = &run.traces[k];
        if got.len() != want.len() {
            failures.push(format!("{sig}: {} samples, NEURON has {}", got.len(), want.len()));
            continue;
        }
        if let Some(i) = (0..want.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
            let n = (0..want.len()).filter(|&i| got[i].to_bits() != want[i].to_bits()).count();
            failures.push(format!(
                "{sig}: {n} samples differ, first at #{i} (t={:?}): spikebus {:?}, NEURON {:?}",
                run.traces[0][i], got[i], want[i]
            ));
        }
    }
    failures.extend(spike_failures("spikes", &run.spikes, &g.spikes));
    if let (Some(first), Some(got)) = (&g.first_run, &run.first_spikes) {
        failures.extend(spike_failures("first-run spikes", got, &first.spikes));
    }
    for (param, want) in &g.r#final {
        let got = run.sim.get(param).unwrap();
        if got.to_bits() != want.to_bits() {
            failures.push(format!("final {param}: spikebus {got:?}, NEURON {want:?}"));
        }
    }
    let k = kernels.name();
    assert!(
        failures.is_empty(),
        "variant {name} ({k} kernels, {threads} threads{}{}) differs from NEURON 9.0.2:\n  {}",
        if outputs_read { "" } else { ", outputs unread" },
        if windows { format!(", {} windows", run.sim.windows_run()) } else { String::new() },
        failures.join("\n  ")
    );
    if windows {
        eprintln!("{name}: {threads} thread(s), {} windows", run.sim.windows_run());
    }
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $( #[test] fn $name() { check_variant(stringify!($name)); } )*
        const VARIANTS: &[&str] = &[$(stringify!($name)),*];
    };
}

golden!(
    seed,
    seed_exact_rates,
    seed_delay,
    seed_warm,
    seed_warm_exact,
    seed_dt001,
    seed_params,
    ball_stick,
    branched,
    iclamp,
    exp2syn,
    seed_interval,
    seed_noise05,
    seed_noise1,
    netstim100,
    netstim100_ids,
    seed_noise_ids_changed,
    netstim100_restart,
    recdt_seed,
    recdt_seed_dt,
    recdt_seed_003,
    recdt_seed_001,
    recdt_exp2syn,
    recdt_iclamp,
    network200,
    swc_pyramidal,
    swc_random72,
    intfire1,
    intfire2,
    intfire4,
    alphasynapse,
    seclamp,
    vclamp,
    vclamp_slow,
    play_discrete,
    play_continuous,
    segments,
    segments_set,
);

/// Every golden file is checked: a variant added to variants.toml must be added here too
/// (callback programs, `prog_*`, run over the bus in tests/py/test_programs.py, which checks
/// that each of them has its golden file).
#[test]
fn every_golden_file_is_tested() {
    let dir = root().join("tests/golden");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .filter(|name| !name.starts_with("prog_"))
        // NEURON's geometry of random SWC files, checked by `swc_geometry_is_neurons` below.
        .filter(|name| name != "swc_geometry")
        .collect();
    files.sort();
    let mut listed: Vec<String> = VARIANTS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed, "golden files in {} vs the variants tested", Path::new("tests/golden").display());
}

/// NEURON's geometry of the sections Import3d makes from random SWC files
/// (tests/golden/swc_geometry.json, by `generate.py --swc-geometry`): spikebus makes the same
/// sections, in the same order, with the same names, connections and nseg, and every
/// segment's area and axial resistance is NEURON's `seg.area()` and `seg.ri()`, bit for bit.
#[test]
fn swc_geometry_is_neurons() {
    #[derive(Deserialize)]
    struct Case {
        seed: u64,
        swc: String,
        model: String,
        segments: Vec<[String; 5]>,
    }
    #[derive(Deserialize)]
    struct File {
        cases: Vec<Case>,
    }
    let path = root().join("tests/golden/swc_geometry.json");
    let file: File = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(file.cases.len() >= 50, "{} cases", file.cases.len());
    let num = |s: &str| -> f64 { s.parse().unwrap_or_else(|e| panic!("{s}: {e}")) };
    let mut segments = 0;
    for case in &file.cases {
        let read = |_: &str| Ok(case.swc.clone());
        let what = format!("random_swc({}) with {:?}", case.seed, case.model);
        let model = parse_model_with(&case.model, "swc_geometry", &read).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut sim = Sim::new(model).unwrap_or_else(|e| panic!("{what}: {e}"));
        let mut got = vec![];
        for s in 0..sim.model().sections.len() {
            let (name, parent) = {
                let spec = &sim.model().sections[s];
                (spec.name.clone(), spec.parent.as_ref().map(|p| (p.section.clone(), p.x)))
            };
            let geometry = sim.segment_geometry(s);
            let nseg = geometry.len() as f64;
            for (j, (area, ri)) in geometry.into_iter().enumerate() {
                got.push((name.clone(), (j as f64 + 0.5) / nseg, area, ri, parent.clone()));
            }
        }
        let want: Vec<_> = case
            .segments
            .iter()
            .map(|[name, x, area, ri, parent]| {
                let parent = (parent != "-").then(|| {
                    let (sec, x) = parent.trim_end_matches(')').rsplit_once('(').expect("SEC(x)");
                    (sec.to_string(), num(x))
                });
                (name.clone(), num(x), num(area), num(ri), parent)
            })
            .collect();
        assert_eq!(got.len(), want.len(), "{what}: segments");
        for (g, w) in got.iter().zip(&want) {
            // Compared as bits: the same double, not merely close.
            let same = g.0 == w.0 && g.4 == w.4 && [(g.1, w.1), (g.2, w.2), (g.3, w.3)].iter().all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{what}: spikebus {g:?}, NEURON {w:?}");
        }
        segments += got.len();
    }
    assert_eq!(segments, file.cases.iter().map(|c| c.segments.len()).sum::<usize>());
}
