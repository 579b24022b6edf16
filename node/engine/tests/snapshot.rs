//! The state as words (`Sim::state_words`, `read_state`, `state_hash`): a simulation put back
//! into a saved state goes on exactly as it did from there (samples, spikes and state, bit
//! for bit), from every kind of pause, with events in flight, noisy NetStims, parameter and
//! geometry changes; and the words and the hash do not depend on the thread count or the
//! kernel variant.

use spikebus_engine::{parse_model, Kernels, Model, Pause, Sim, Spike, Stops};

/// Two cells in one tile group and a third of another shape; every mechanism, every kind of
/// artificial cell, NetCons with delays (events in flight at every pause), a noisy NetStim.
const MODEL: &str = r#"
[run]
dt = 0.025
tstop = 40.0
celsius = 6.3

[section.soma]
L = 20.0
diam = 20.0
insert = ["hh"]
threshold = -10.0

[section.dend]
parent = "soma(1)"
L = 200.0
diam = 2.0
nseg = 5
insert = ["pas"]

[section.soma2]
L = 20.0
diam = 20.0
insert = ["hh"]
threshold = -10.0

[section.dend2]
parent = "soma2(1)"
L = 200.0
diam = 2.0
nseg = 5
insert = ["pas"]

[section.lone]
L = 30.0
diam = 30.0
nseg = 3
insert = ["hh", "pas"]
threshold = 0.0

[point.syn2]
type = "Exp2Syn"
at = "dend(0.7)"
tau1 = 0.5
tau2 = 5.0

[point.fast]
type = "ExpSyn"
at = "soma(0.5)"
tau = 1.0

[point.fast2]
type = "ExpSyn"
at = "soma2(0.5)"
tau = 2.0

[point.loneSyn]
type = "ExpSyn"
at = "lone(0.5)"
tau = 3.0

[point.clamp]
type = "IClamp"
at = "soma(0.5)"
del = 5.0
dur = 2.0
amp = 0.3

[cell.vs]
type = "VecStim"
times = [2.0, 2.3, 10.0, 21.125, 30.125]

[cell.ns]
type = "NetStim"
interval = 4.0
start = 1.0
number = 1e9
noise = 0.7

[netcon.a]
source = "vs"
target = "syn2"
delay = 1.5
weight = 0.02

[netcon.b]
source = "ns"
target = "fast"
delay = 3.0
weight = 0.02

[netcon.c]
source = "ns"
target = "fast2"
delay = 0.7
weight = 0.03

[netcon.d]
source = "soma"
target = "loneSyn"
delay = 2.0
weight = 0.05

[netcon.e]
source = "soma2"
target = "syn2"
delay = 1.25
weight = 0.01

[record]
signals = ["soma.v", "dend(0.7).v", "soma2.v", "lone.v", "syn2.g", "syn2.A", "fast.g", "soma.m_hh", "lone.n_hh", "clamp.i"]
"#;

fn model() -> Model {
    parse_model(MODEL, "m").unwrap()
}

/// Every pause kind: FInitializeHandlers, spikes of every source, scatter_gather every 7
/// steps, boundaries every 5.
fn all_stops(sim: &mut Sim) {
    let n = sim.source_names().len();
    *sim.stops_mut() = Stops { init: [true; 4], scatter_gather: 7, every: 5, on_spike: vec![true; n] };
}

/// What a run shows: each sample's bits (t first), each spike, each pause, and the state
/// hash at each pause.
#[derive(Debug, Default, PartialEq)]
struct Trace {
    samples: Vec<u64>,
    spikes: Vec<(u32, u64)>,
    pauses: Vec<String>,
    hashes: Vec<u64>,
}

fn record(sim: &Sim, out: &mut Vec<u64>) {
    out.push(sim.t().to_bits());
    for name in &sim.model().record {
        out.push(sim.value(sim.signal(name).unwrap()).to_bits());
    }
}

/// Advances `pauses` times (or to the end), recording; `act` runs at each pause.
fn run(sim: &mut Sim, pauses: usize, act: &mut dyn FnMut(&mut Sim, usize)) -> Trace {
    let mut tr = Trace::default();
    let mut samples = vec![];
    let mut spikes: Vec<Spike> = vec![];
    for k in 0..pauses {
        let p = sim.advance(&mut |s: &Sim| record(s, &mut samples));
        sim.take_spikes(&mut spikes);
        tr.pauses.push(format!("{p:?} t={} now={}", sim.t(), sim.now()));
        tr.hashes.push(sim.state_hash());
        if matches!(&p, Pause::Boundary(b) if b.end) {
            break;
        }
        act(sim, k);
    }
    tr.samples = samples;
    tr.spikes = spikes.iter().map(|s| (s.source, s.t.to_bits())).collect();
    tr
}

/// Changes made along the way: parameters of every kind, geometry, an injected event, an `at`
/// time, celsius (the hh tables are rebuilt), usetable.
fn changes(sim: &mut Sim, k: usize) {
    match k % 97 {
        3 => sim.set("syn2.tau2", 4.0 + (k % 5) as f64).unwrap(),
        11 => sim.set("ns.interval", 3.0 + (k % 3) as f64).unwrap(),
        17 => sim.set("a.delay", 1.0 + (k % 4) as f64 * 0.25).unwrap(),
        23 => sim.set("dend.diam", 2.0 + (k % 2) as f64).unwrap(),
        31 => sim.set("celsius", 6.3 + (k % 3) as f64).unwrap(),
        41 => sim.set("fast.tau", 0.8 + (k % 3) as f64 * 0.1).unwrap(),
        47 => sim.set("usetable_hh", (k % 2) as f64).unwrap(),
        53 if sim.initialized() => sim.inject("fast2", sim.now() + 0.6, Some(0.01)).unwrap(),
        59 => {
            let at = sim.t() + 1.3;
            sim.add_at(at).unwrap()
        }
        67 => sim.set("lone.threshold", -5.0 + (k % 3) as f64).unwrap(),
        _ => {}
    }
}

/// From every pause of a run with changes, a copy of the state read into a fresh simulation
/// (and into the same one, after it went on) goes on as the original did, bit for bit.
#[test]
fn a_read_state_goes_on_exactly_as_the_original() {
    let mut first = Sim::new(model()).unwrap();
    all_stops(&mut first);
    // Walk to several points of the run and branch there.
    let mut checked = 0;
    for stride in [1usize, 2, 37, 151, 400] {
        let mut sim = first.clone();
        let _ = run(&mut sim, stride, &mut changes);
        let words = sim.state_words();
        let hash = sim.state_hash();

        // The original goes on (with changes).
        let mut orig = sim.clone();
        let want = run(&mut orig, 100_000, &mut |s, k| changes(s, k + stride));

        // A fresh simulation of the model, put into the saved state.
        let mut fresh = Sim::new(model()).unwrap();
        fresh.read_state(&words).unwrap();
        assert_eq!(fresh.state_words(), words, "read then written again, stride {stride}");
        assert_eq!(fresh.state_hash(), hash);
        let got = run(&mut fresh, 100_000, &mut |s, k| changes(s, k + stride));
        assert_eq!(got, want, "fresh simulation from the state at pause {stride}");

        // The original itself, back from the end of its run.
        orig.read_state(&words).unwrap();
        assert_eq!(orig.state_hash(), hash);
        let again = run(&mut orig, 100_000, &mut |s, k| changes(s, k + stride));
        assert_eq!(again, want, "the same simulation restored at pause {stride}");
        assert!(want.samples.len() > 100 && !want.spikes.is_empty());
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// The state at a pause has events in flight (NetCon delays) and the noisy NetStim's stream
/// mid-block: a case the test above must have covered.
#[test]
fn saved_states_hold_events_in_flight() {
    let mut sim = Sim::new(model()).unwrap();
    all_stops(&mut sim);
    let mut max_events = 0;
    for _ in 0..3000 {
        let p = sim.advance(&mut |_| {});
        max_events = max_events.max(sim.pending_events());
        if matches!(p, Pause::Boundary(ref b) if b.end) {
            break;
        }
    }
    assert!(max_events >= 3, "{max_events}");
}

/// The words and the hash are the same for every thread count and kernel variant (the cells
/// sit in other tiles), and a state saved on one thread count goes on, read on another, as on
/// the first.
#[test]
fn the_state_does_not_depend_on_threads_or_kernels() {
    let text = include_str!("../../../tests/models/network200.toml");
    let m = parse_model(text, "network200").unwrap();
    let trace = |threads: usize, k: Kernels, from: Option<&[u64]>, steps: usize| {
        let mut sim = Sim::with_threads_from(m.clone(), threads, 0).unwrap();
        assert!(sim.set_kernels(k));
        if let Some(words) = from {
            sim.read_state(words).unwrap();
        } else {
            sim.initialize(|_| {});
        }
        let mut hashes = vec![];
        for _ in 0..steps {
            sim.step(|_| {});
            hashes.push(sim.state_hash());
        }
        (hashes, sim.state_words())
    };
    let (want, words) = trace(1, Kernels::Portable, None, 400);
    for threads in [1, 2, 3] {
        for k in Kernels::ALL.into_iter().filter(|k| k.runs_here()) {
            let (got, w) = trace(threads, k, None, 400);
            assert_eq!(got, want, "threads {threads}, {}", k.name());
            assert_eq!(w, words);
            // Read on this thread count, after 400 steps on one: the next 200 as on one.
            let (a, _) = trace(threads, k, Some(&words), 200);
            let (b, _) = trace(1, Kernels::Portable, Some(&words), 200);
            assert_eq!(a, b, "from the saved state, threads {threads}, {}", k.name());
        }
    }
}

/// A state of another model does not fit: the reason names what differs.
#[test]
fn a_state_of_another_structure_is_refused() {
    let mut sim = Sim::new(model()).unwrap();
    sim.initialize(|_| {});
    let words = sim.state_words();
    let mut seed = Sim::new(Model::seed()).unwrap();
    let e = seed.read_state(&words).unwrap_err().to_string();
    assert!(e.contains("the state has 7 spike sources, this simulation 2"), "{e}");
    let mut other = model();
    other.set("dend.L", 10.0).unwrap();
    let mut same_shape = Sim::new(other).unwrap();
    same_shape.read_state(&words).unwrap();
    assert_eq!(same_shape.get("dend.L").unwrap(), 200.0, "parameters come from the state");
    let e = same_shape.read_state(&words[..words.len() - 1]).unwrap_err().to_string();
    assert!(e.contains("ends after"), "{e}");
    let mut longer = words.clone();
    longer.push(0);
    assert!(same_shape.read_state(&longer).unwrap_err().to_string().contains("left over"));
    assert_ne!(Sim::new(Model::seed()).unwrap().structure(), sim.structure());
}

/// The hash is a function of the state: equal states, equal hashes; a parameter's last bit,
/// an event, the schedule each change it.
#[test]
fn the_hash_sees_every_kind_of_change() {
    let mut a = Sim::new(model()).unwrap();
    a.initialize(|_| {});
    for _ in 0..50 {
        a.step(|_| {});
    }
    let h = a.state_hash();
    assert_eq!(a.clone().state_hash(), h);
    let mut b = a.clone();
    let x = b.get("syn2.e").unwrap();
    b.set("syn2.e", f64::from_bits(x.to_bits() + 1)).unwrap();
    assert_ne!(b.state_hash(), h);
    let mut c = a.clone();
    c.inject("fast", c.t() + 1.0, Some(0.0)).unwrap();
    assert_ne!(c.state_hash(), h);
    let mut d = a.clone();
    d.stops_mut().every = 3;
    assert_ne!(d.state_hash(), h);
    let mut e = a.clone();
    e.set("ns.interval", 4.0).unwrap();
    assert_eq!(e.state_hash(), h, "the value it already had");
}

/// Every mechanism and feature of the repository's test models (IntFire1, IntFire2, IntFire4
/// with their moved self-events, AlphaSynapse, SEClamp, VClamp, Vector.play discrete and
/// continuous, per-segment values, a 3-d morphology): from several pauses, the state read
/// into a fresh simulation (on two threads) goes on as the original, bit for bit.
#[test]
fn every_test_model_goes_on_exactly_after_a_read_state() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/models");
    let mut covered = 0;
    for name in [
        "intfire1", "intfire2", "intfire4", "alphasynapse", "seclamp", "vclamp", "play_discrete", "play_continuous",
        "segments", "swc_pyramidal", "netstim100",
    ] {
        let path = dir.join(format!("{name}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).map_err(|e| e.to_string());
        let model = spikebus_engine::parse_model_with(&text, name, &read).unwrap();
        let mut first = Sim::new(model.clone()).unwrap();
        all_stops(&mut first);
        for stride in [3usize, 120, 900] {
            let mut sim = first.clone();
            let _ = run(&mut sim, stride, &mut |_, _| {});
            let words = sim.state_words();
            let want = run(&mut sim.clone(), 100_000, &mut |_, _| {});
            let mut fresh = Sim::with_threads_from(model.clone(), 2, 0).unwrap();
            fresh.read_state(&words).unwrap_or_else(|e| panic!("{name} at {stride}: {e}"));
            assert_eq!(fresh.state_hash(), sim.state_hash(), "{name} at {stride}");
            let got = run(&mut fresh, 100_000, &mut |_, _| {});
            assert!(got == want, "{name}: the state read at pause {stride} went on otherwise");
        }
        covered += 1;
    }
    assert_eq!(covered, 11);
}
