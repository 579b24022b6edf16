//! Engine behaviour that the golden data does not pin down: model errors, parameter changes,
//! injected events.

use spikebus_engine::{parse_model, Error, Model, Sim};

fn seed() -> Model {
    Model::seed()
}

fn model_err(text: &str) -> Error {
    parse_model(text, "m.toml").expect_err("model should be refused")
}

#[test]
fn model_errors_carry_line_and_key() {
    match model_err("[run]\ndt = -1\n") {
        Error::Model { line, key, msg, .. } => {
            assert_eq!((line, key.as_str()), (2, "run.dt"));
            assert!(msg.contains("> 0"), "{msg}");
        }
        e => panic!("{e:?}"),
    }
    match model_err("[section.a]\n[section.b]\nparent = \"a(0.5)\"\n[point.a]\ntype = \"ExpSyn\"\nat = \"a(0.5)\"\n") {
        Error::Model { line, msg, .. } => assert!(line == 4 && msg.contains("already used"), "{line} {msg}"),
        e => panic!("{e:?}"),
    }
    match model_err("[section.a]\nparent = \"b(1)\"\n[section.b]\nparent = \"a(1)\"\n") {
        Error::Model { msg, .. } => assert!(msg.contains("loop"), "{msg}"),
        e => panic!("{e:?}"),
    }
    match model_err("[section.a]\nnseg = 2.5\n") {
        Error::Model { key, .. } => assert_eq!(key, "section.a.nseg"),
        e => panic!("{e:?}"),
    }
    match model_err("[section.a]\n[record]\nsignals = [\"a.m_hh\"]\n") {
        Error::Model { line, msg, .. } => assert!(line == 3 && msg.contains("no hh"), "{line} {msg}"),
        e => panic!("{e:?}"),
    }
    match model_err("[cell.v]\ntype = \"VecStim\"\ntimes = [1, 3, 2]\n") {
        Error::Model { msg, .. } => assert!(msg.contains("must not decrease"), "{msg}"),
        e => panic!("{e:?}"),
    }
    match model_err("x = 1") {
        Error::Model { key, msg, .. } => assert!(key == "x" && msg.contains("run, morphology, section"), "{msg}"),
        e => panic!("{e:?}"),
    }
    assert!(matches!(model_err("[run\n"), Error::Syntax { line: 1, .. }));
}

#[test]
fn netcon_threshold_belongs_to_the_source() {
    let m = parse_model(
        "[section.s]\n[point.p]\ntype=\"ExpSyn\"\nat=\"s(0.5)\"\n[netcon.a]\nsource=\"s\"\ntarget=\"p\"\nthreshold=-20\n",
        "m",
    )
    .unwrap();
    assert_eq!(m.get("s.threshold").unwrap(), -20.0);
    assert_eq!(m.get("a.threshold").unwrap(), -20.0);
    let e = model_err(
        "[section.s]\n[point.p]\ntype=\"ExpSyn\"\nat=\"s(0.5)\"\n[netcon.a]\nsource=\"s\"\ntarget=\"p\"\nthreshold=-20\n[netcon.b]\nsource=\"s\"\ntarget=\"p\"\nthreshold=0\n",
    );
    assert!(e.to_string().contains("belongs to the source"), "{e}");
}

#[test]
fn bad_sets_change_nothing() {
    let mut sim = Sim::new(seed()).unwrap();
    sim.initialize(|_| {});
    for _ in 0..100 {
        sim.step(|_| {});
    }
    let before = format!("{sim:?}");
    for (name, value) in [
        ("ns.interval", -1.0),
        ("ns.interval", f64::NAN),
        ("syn.tau", f64::INFINITY),
        ("soma.nseg", 3.0),
        ("soma.nope", 1.0),
        ("nope.x", 1.0),
        ("usetable_hh", 0.5),
        ("ns.id1", -1.0),
        ("ns.id2", 0.5),
        ("ns.id3", 4294967296.0),
        ("Random123_globalindex", -1.0),
        ("ns.seed", 1.0),
    ] {
        assert!(sim.set(name, value).is_err(), "{name}={value} accepted");
    }
    assert!(matches!(sim.set("soma.nseg", 3.0), Err(Error::NotWritable { .. })));
    assert!(matches!(sim.inject("syn", sim.t() - 1.0, Some(0.1)), Err(Error::EventInPast { .. })));
    assert!(sim.inject("nobody", sim.t(), Some(0.1)).is_err());
    assert_eq!(before, format!("{sim:?}"), "a refused change altered the simulation");
}

/// An injected event acts at its time, like NEURON's NetCon.event: the synapse conductance
/// jumps in the first step whose midpoint passes te.
#[test]
fn injected_event_reaches_the_synapse() {
    let mut m = seed();
    m.set("ns.number", 0.0).unwrap();
    let mut sim = Sim::new(m).unwrap();
    let g = sim.signal("syn.g").unwrap();
    sim.initialize(|_| {});
    sim.inject("syn", 1.0, Some(0.05)).unwrap();
    let mut first = None;
    while sim.t() < 2.0 {
        sim.step(|s| {
            if first.is_none() && s.value(g) > 0.0 {
                first = Some(s.t());
            }
        });
    }
    // Delivered at the start of the step from t_n with t_n + dt/2 >= 1.0; first seen at t_n+1.
    let t = first.expect("the event arrived");
    assert!((t - 1.025).abs() < 1e-9, "{t}");
    // By NetCon name: the NetCon's own weight and target.
    sim.inject("nc", sim.t() + 0.5, None).unwrap();
    assert_eq!(sim.pending_events(), 1);
}

#[test]
fn geometry_changes_take_effect_mid_run() {
    let mut a = Sim::new(seed()).unwrap();
    let mut b = Sim::new(seed()).unwrap();
    let v = a.signal("soma.v").unwrap();
    a.initialize(|_| {});
    b.initialize(|_| {});
    for _ in 0..40 {
        a.step(|_| {});
        b.step(|_| {});
    }
    b.set("soma.diam", 50.0).unwrap();
    a.step(|_| {});
    b.step(|_| {});
    assert_ne!(a.value(v), b.value(v));
}

/// NetStim streams are identified as NEURON identifies them: default ids (1, 0, n) for the
/// n-th NetStim in file order (other cells do not count, explicit ids do not shift the
/// numbering), ids and the global index settable as integers in 0..=2^32 - 1.
#[test]
fn netstim_stream_ids() {
    let m = parse_model(
        "[run]\nRandom123_globalindex = 4294967295\n\
         [cell.a]\ntype = \"NetStim\"\n[cell.v]\ntype = \"VecStim\"\n\
         [cell.b]\ntype = \"NetStim\"\nid1 = 9\nid3 = 70\n[cell.c]\ntype = \"NetStim\"\n",
        "m",
    )
    .unwrap();
    let ids = |c: &str| ["id1", "id2", "id3"].map(|f| m.get(&format!("{c}.{f}")).unwrap());
    assert_eq!(ids("a"), [1.0, 0.0, 1.0]);
    assert_eq!(ids("b"), [9.0, 0.0, 70.0]);
    assert_eq!(ids("c"), [1.0, 0.0, 3.0]);
    assert_eq!(m.get("Random123_globalindex").unwrap(), 4294967295.0);
    let names: Vec<String> = m.params().into_iter().map(|p| p.name).collect();
    for name in ["Random123_globalindex", "a.id1", "a.id2", "a.id3"] {
        assert!(names.iter().any(|n| n == name), "{name} not listed");
    }
    assert!(!names.iter().any(|n| n.ends_with(".seed")));

    let e = model_err("[cell.a]\ntype = \"NetStim\"\nseed = 1\n");
    assert!(e.to_string().contains("id1, id2, id3"), "{e}");
    for bad in ["id1 = -1", "id2 = 1.5", "id3 = 4294967296"] {
        let e = model_err(&format!("[cell.a]\ntype = \"NetStim\"\n{bad}\n"));
        assert!(e.to_string().contains("0 to 4294967295"), "{bad}: {e}");
    }
    let e = model_err("[run]\nRandom123_globalindex = 0.5\n");
    assert!(e.to_string().contains("0 to 4294967295"), "{e}");
}

/// Noise draws from the stream its ids name: two NetStims with the same ids fire together,
/// and a change of id2 or of the global index changes the spike times.
#[test]
fn noisy_netstims_follow_their_ids() {
    let text = "[run]\ntstop = 200\n\
        [cell.a]\ntype = \"NetStim\"\nnoise = 1\nstart = 0\nnumber = 1e9\n\
        [cell.b]\ntype = \"NetStim\"\nnoise = 1\nstart = 0\nnumber = 1e9\nid3 = 1\n";
    let spikes = |sets: &[(&str, f64)]| {
        let mut m = parse_model(text, "m").unwrap();
        for (name, value) in sets {
            m.set(name, *value).unwrap();
        }
        let mut sim = Sim::new(m).unwrap();
        sim.initialize(|_| {});
        while sim.running() {
            sim.step(|_| {});
        }
        let mut all = vec![];
        sim.take_spikes(&mut all);
        let of = |src: u32| all.iter().filter(|s| s.source == src).map(|s| s.t).collect::<Vec<f64>>();
        (of(0), of(1))
    };
    let (a, b) = spikes(&[]);
    assert!(a.len() > 5);
    assert_eq!(a, b, "same ids (1, 0, 1), same stream");
    let (a2, b2) = spikes(&[("b.id2", 1.0)]);
    assert_eq!(a2, a);
    assert_ne!(b2, b);
    let (a3, _) = spikes(&[("Random123_globalindex", 1.0)]);
    assert_ne!(a3, a);
}

/// The network golden's two files, every object written out and as populations with
/// connection rules, are one model: the same objects, names, parameters (as bits), order.
#[test]
fn populations_expand_to_the_written_out_network() {
    let flat = parse_model(include_str!("../../../tests/models/network200.toml"), "flat").unwrap();
    let pop = parse_model(include_str!("../../../tests/models/network200_pop.toml"), "pop").unwrap();
    assert_eq!(flat.sections.len(), 360);
    assert_eq!(flat.netcons.len(), pop.netcons.len());
    for (a, b) in flat.sections.iter().zip(&pop.sections) {
        assert_eq!(a, b);
    }
    for (a, b) in flat.points.iter().zip(&pop.points) {
        assert_eq!(a, b);
    }
    for (a, b) in flat.cells.iter().zip(&pop.cells) {
        assert_eq!(a, b);
    }
    for (a, b) in flat.netcons.iter().zip(&pop.netcons) {
        assert_eq!(a, b);
    }
    assert_eq!(Model { origin: "pop".into(), ..flat }, pop);
    // Per-copy values as the expressions give them.
    assert_eq!(pop.get("p[45].soma.gnabar_hh").unwrap(), 0.10 + 0.0005 * (45.0f64 % 41.0));
    assert_eq!(pop.get("ns[3].ns.id3").unwrap(), 4.0, "NEURON numbers the streams in creation order");
}

/// `write_model` gives a file that parses to the same model, value for value.
#[test]
fn written_models_read_back_the_same() {
    let files = [
        ("seed", spikebus_engine::model::SEED_TOML),
        ("network200_pop", include_str!("../../../tests/models/network200_pop.toml")),
        ("branched", include_str!("../../../tests/models/branched.toml")),
        ("exp2syn", include_str!("../../../tests/models/exp2syn.toml")),
        ("netstim100_ids", include_str!("../../../tests/models/netstim100_ids.toml")),
        ("intfire4", include_str!("../../../tests/models/intfire4.toml")),
        ("vclamp", include_str!("../../../tests/models/vclamp.toml")),
        ("seclamp", include_str!("../../../tests/models/seclamp.toml")),
        ("alphasynapse", include_str!("../../../tests/models/alphasynapse.toml")),
        ("play_discrete", include_str!("../../../tests/models/play_discrete.toml")),
        ("play_continuous", include_str!("../../../tests/models/play_continuous.toml")),
        ("segments", include_str!("../../../tests/models/segments.toml")),
    ];
    for (name, text) in files {
        let m = parse_model(text, name).unwrap();
        let written = spikebus_engine::write::write_model(&m);
        let back = parse_model(&written, name).unwrap_or_else(|e| panic!("{name}: {e}\n{written}"));
        assert_eq!(back, m, "{name}");
        assert_eq!(spikebus_engine::write::write_model(&back), written, "{name}: writing is stable");
    }
}

/// What issue 12's built-ins refuse, each with what to use instead.
#[test]
fn builtins_refuse_with_what_to_use_instead() {
    let sec = "[section.soma]\ninsert = [\"hh\"]\n[section.dend]\nparent = \"soma(1)\"\nnseg = 5\ninsert = [\"pas\"]\n";
    let cases: &[(&str, &str)] = &[
        ("[point.x]\ntype = \"OClamp\"\nat = \"soma(0.5)\"\n", "NEURON's `OClamp`: clamp the voltage with SEClamp"),
        ("[point.x]\ntype = \"IntFire1\"\nat = \"soma(0.5)\"\n", "`IntFire1` belongs in a [cell.NAME] table"),
        ("[cell.x]\ntype = \"PatternStim\"\n", "one VecStim cell per source"),
        ("[section.b]\ninsert = [\"na_ion\"]\n", "insert hh, then set ena and ek"),
        ("[section.b]\ninsert = [\"ExpSyn\"]\n", "`ExpSyn` belongs in a [point.NAME] table"),
        // a play writes one value: a section with several segments needs SEC(x)
        ("[play.p]\ntarget = \"dend.g_pas\"\ndt = 1.0\nvalues = [1.0]\n", "name the segment, e.g. `dend(0.5).g_pas`"),
        ("[play.p]\ntarget = \"soma.L\"\ndt = 1.0\nvalues = [1.0]\n", "set them over the bus instead"),
        ("[play.p]\ntarget = \"dend(0.3).g_pas\"\nvalues = [1.0]\n", "give either `times`"),
        ("[play.p]\ntarget = \"dend(0.3).g_pas\"\ndt = 1.0\nvalues = [1.0]\ncontinuous = true\n", "continuous play needs `times`"),
        ("[play.p]\ntarget = \"dend(0.3).g_pas\"\ntimes = [0.0, 1.0]\nvalues = [1.0, 2.0]\ndiscon = [1.0]\n", "repeat a time in `times` instead"),
        ("[play.p]\ntarget = \"dend(0.3).g_pas\"\ntimes = [0.0]\nvalues = [-1.0]\n", "dend(0.3).g_pas takes"),
        // per-segment lists: one value per segment, range variables only
        ("[section.b]\nnseg = 2\nL = [1.0, 2.0]\n", "only diam, cm and mechanism parameters take a value per segment"),
        ("[section.b]\nnseg = 2\ninsert = [\"pas\"]\ng_pas = [0.001]\n", "nseg = 2, found 1 values"),
        ("[point.c]\ntype = \"VClamp\"\nat = \"soma(0.5)\"\ndur = [1.0, 2.0]\n", "expected a list of 3 numbers, found 2"),
        ("[point.a]\ntype = \"AlphaSynapse\"\nat = \"soma(0.5)\"\n[cell.n]\ntype = \"NetStim\"\n[netcon.c]\nsource = \"n\"\ntarget = \"a\"\n", "receives no events"),
        ("[point.a]\ntype = \"AlphaSynapse\"\nat = \"soma(0.5)\"\n[record]\nsignals = [\"a.g\"]\n", "AlphaSynapse `a` has i"),
    ];
    for (text, want) in cases {
        let e = model_err(&format!("{sec}{text}")).to_string();
        assert!(e.contains(want), "{text}\n=> {e}\n(wanted {want:?})");
    }
    // A section of one segment plays as NEURON's sec._ref_x (its one segment).
    let m = parse_model(&format!("{sec}[play.p]\ntarget = \"soma.gnabar_hh\"\ndt = 1.0\nvalues = [0.1]\n"), "m").unwrap();
    assert_eq!(m.plays.len(), 1);
    // Per-segment values set and read by name; the section's name reads the segment at 0.5.
    let mut m = parse_model(sec, "m").unwrap();
    m.set("dend(0.3).g_pas", 0.002).unwrap();
    assert_eq!(m.get("dend(0.3).g_pas").unwrap(), 0.002);
    assert_eq!(m.get("dend(0.25).g_pas").unwrap(), 0.002, "the same segment (nseg 5: 0.2 <= x < 0.4)");
    assert_eq!(m.get("dend(0.5).g_pas").unwrap(), 0.001);
    assert_eq!(m.get("dend.g_pas").unwrap(), 0.001);
    m.set("dend.g_pas", 0.0005).unwrap();
    assert_eq!(m.get("dend(0.3).g_pas").unwrap(), 0.0005, "the section's name sets every segment");
}

/// A `set` of a played parameter holds until the play writes its next value: a discrete
/// play's next time, a continuous play's next step.
#[test]
fn a_set_holds_until_the_play_writes_again() {
    let text = "[run]\ntstop = 20.0\n[section.s]\n[point.stim]\ntype = \"IClamp\"\nat = \"s(0.5)\"\n\
                [point.se]\ntype = \"SEClamp\"\nat = \"s(0.5)\"\n\
                [play.a]\ntarget = \"stim.amp\"\ntimes = [0.0, 10.0]\nvalues = [0.1, 0.2]\n\
                [play.c]\ntarget = \"se.amp1\"\ntimes = [0.0, 20.0]\nvalues = [0.0, -20.0]\ncontinuous = true\n";
    let mut sim = Sim::new(parse_model(text, "m").unwrap()).unwrap();
    sim.initialize(|_| {});
    assert_eq!(sim.get("stim.amp").unwrap(), 0.1, "the value at t = 0, written at initialization");
    while sim.t() < 5.0 {
        sim.step(|_| {});
    }
    sim.set("stim.amp", 0.5).unwrap();
    sim.set("se.amp1", 7.0).unwrap();
    sim.step(|_| {});
    assert_eq!(sim.get("stim.amp").unwrap(), 0.5, "held until the play's next time");
    let amp1 = sim.get("se.amp1").unwrap();
    assert!(amp1 < -4.9 && amp1 > -5.2, "a continuous play writes again in the next step: {amp1}");
    while sim.t() < 10.5 {
        sim.step(|_| {});
    }
    assert_eq!(sim.get("stim.amp").unwrap(), 0.2, "the play's value at 10 ms");
}

/// Tiles with equal parameters share one copy of them (`mech::col`); a change to one cell's
/// parameter or geometry mid-run acts on that cell alone. Every cell's v is checked against a
/// run of that cell by itself (cells are independent; a one-cell run steps with other kernels
/// and shares nothing), so the check fails if a write leaks into the other tiles' copy or is
/// lost.
#[test]
fn shared_parameters_change_one_cell_only() {
    fn cell(i: usize) -> String {
        format!(
            "[section.soma{i}]\ninsert = [\"hh\"]\n[point.syn{i}]\ntype = \"ExpSyn\"\nat = \"soma{i}(0.5)\"\ntau = 2.0\n\
             [cell.ns{i}]\ntype = \"NetStim\"\ninterval = 5.0\nstart = {}\nnumber = 1e9\n\
             [netcon.nc{i}]\nsource = \"ns{i}\"\ntarget = \"syn{i}\"\ndelay = 0.0\nweight = 0.5\n",
            (i % 3) as f64
        )
    }
    let run_text = "[run]\ntstop = 30.0\n";
    // (cell, parameter, value at 10 ms); 300 cells are tiles of 128, 128 and 44 lanes.
    let changes = [(7, "soma7.gnabar_hh", 0.2), (140, "syn140.tau", 7.0), (290, "soma290.diam", 300.0), (141, "soma141.threshold", 1e9)];
    let run = |sim: &mut Sim, cells: std::ops::Range<usize>| -> (Vec<Vec<u64>>, Vec<spikebus_engine::Spike>) {
        let sigs: Vec<_> = cells.clone().map(|c| sim.signal(&format!("soma{c}.v")).unwrap()).collect();
        let mut out = vec![vec![]; sigs.len()];
        sim.initialize(|_| {});
        while sim.running() {
            if sim.step_index() == 400 {
                for &(c, name, x) in &changes {
                    if cells.contains(&c) {
                        sim.set(name, x).unwrap();
                    }
                }
            }
            sim.step(|s| sigs.iter().zip(out.iter_mut()).for_each(|(&g, o)| o.push(s.value(g).to_bits())));
        }
        let mut spikes = vec![];
        sim.take_spikes(&mut spikes);
        (out, spikes)
    };
    let n = 300;
    let text: String = std::iter::once(run_text.to_string()).chain((0..n).map(cell)).collect();
    let (got, spikes) = run(&mut Sim::new(parse_model(&text, "many").unwrap()).unwrap(), 0..n);
    let mut alone = std::collections::HashMap::new();
    for (c, mine) in got.iter().enumerate() {
        let key = if changes.iter().any(|ch| ch.0 == c) { c } else { c % 3 };
        let want = alone.entry(key).or_insert_with(|| {
            let one = parse_model(&format!("{run_text}{}", cell(key)), "one").unwrap();
            run(&mut Sim::new(one).unwrap(), key..key + 1).0.remove(0)
        });
        let first = mine.iter().zip(want.iter()).position(|(a, b)| a != b);
        assert!(mine == want, "cell {c}: v differs from its run alone from sample {first:?}");
    }
    // The changes did change what they change: the check above can fail.
    assert_ne!(got[7], got[4], "gnabar");
    assert_ne!(got[140], got[143], "tau");
    assert_ne!(got[290], got[287], "diam");
    let late = |c: usize| spikes.iter().filter(|s| s.source as usize == c && s.t > 10.5).count();
    assert_eq!(late(141), 0, "the raised threshold holds for soma141");
    assert!(late(138) > 0 && late(12) > 0, "the others' thresholds are their own: {} {}", late(138), late(12));
}

/// With `set_outputs_read(false)` the steps skip the currents' outputs (ina, a synapse's i,
/// pas's i), and nothing else changes: every state and v bit for bit, every spike, and at the
/// end the whole state (its words include the outputs, written again by the last step).
#[test]
fn unread_outputs_change_nothing_else() {
    let text = "[run]\ntstop = 25.0\n[section.soma]\ninsert = [\"hh\"]\n\
                [section.dend]\nparent = \"soma(1)\"\nnseg = 3\ninsert = [\"pas\"]\n\
                [point.syn]\ntype = \"ExpSyn\"\nat = \"soma(0.5)\"\ntau = 2.0\n\
                [point.syn2]\ntype = \"Exp2Syn\"\nat = \"dend(0.5)\"\n\
                [point.alpha]\ntype = \"AlphaSynapse\"\nat = \"dend(0.9)\"\nonset = 3.0\ngmax = 0.05\n\
                [cell.ns]\ntype = \"NetStim\"\ninterval = 4.0\nstart = 1.0\nnumber = 1e9\n\
                [netcon.a]\nsource = \"ns\"\ntarget = \"syn\"\nweight = 0.05\n\
                [netcon.b]\nsource = \"ns\"\ntarget = \"syn2\"\nweight = 0.02\n";
    let model = parse_model(text, "m").unwrap();
    let states = ["soma.v", "dend(0.5).v", "soma.m_hh", "soma.n_hh", "syn.g", "syn2.g", "syn2.A"];
    let outputs = ["soma.ina", "soma.ik", "soma.il_hh", "soma.gna_hh", "soma.gk_hh", "syn.i", "syn2.i", "alpha.i", "dend(0.5).i_pas"];
    let mut sims = [Sim::new(model.clone()).unwrap(), Sim::new(model).unwrap()];
    sims[1].set_outputs_read(false);
    let refs = |sim: &Sim, names: &[&str]| names.iter().map(|n| sim.signal(n).unwrap()).collect::<Vec<_>>();
    let (st, out) = (refs(&sims[0], &states), refs(&sims[0], &outputs));
    assert!(out.iter().all(|&r| sims[0].is_current_output(r)) && !st.iter().any(|&r| sims[0].is_current_output(r)));
    sims.iter_mut().for_each(|s| s.initialize(|_| {}));
    let mut stale = 0;
    while sims[0].running() {
        sims.iter_mut().for_each(|s| s.step(|_| {}));
        for &r in &st {
            assert_eq!(sims[0].value(r).to_bits(), sims[1].value(r).to_bits(), "step {}", sims[0].step_index());
        }
        stale += out.iter().filter(|&&r| sims[0].value(r) != sims[1].value(r)).count();
    }
    assert!(!sims[1].running());
    assert!(stale > 1000, "the outputs were skipped mid-run ({stale} stale values)");
    let mut spikes = [vec![], vec![]];
    sims.iter_mut().zip(spikes.iter_mut()).for_each(|(s, o)| s.take_spikes(o));
    assert!(!spikes[0].is_empty());
    assert_eq!(spikes[0], spikes[1]);
    assert_eq!(sims[0].state_words(), sims[1].state_words(), "the last step wrote the outputs");
}

/// Windows of steps (`Sim::set_windows`) change nothing: the 200-cell network (NetCons of 1 to
/// 2.5 ms from the detectors, NetStims) run in windows on 1 and 2 threads gives, at every
/// step, the sampled signals (in both threads' tiles) of a run one step per `advance`, bit for
/// bit, the same spikes in the same order and the same final state. The windows ran, on both
/// threads, and their crossings were fired after them (the network's cells spike inside
/// windows).
#[test]
fn windows_change_nothing() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/models/network200.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let model = parse_model(&text, "network200.toml").unwrap();
    // Signals of tiles of both threads' shares.
    let names = ["p[0].soma.v", "p[1].dend(0.1).v", "p[7].esyn.g", "p[159].soma.m_hh", "q[3].soma.v", "q[3].esyn.i"];
    let run = |threads: usize, windows: bool| {
        let mut sim = Sim::with_threads_from(model.clone(), threads, 0).unwrap();
        let refs: Vec<_> = names.iter().map(|n| sim.signal(n).unwrap()).collect();
        if windows {
            sim.set_windows(Some(&refs));
        }
        let mut samples: Vec<(u64, u64, Vec<u64>)> = vec![];
        let mut boundaries = 0;
        loop {
            let pause = sim.advance(&mut |s: &Sim| {
                samples.push((s.step_index(), s.t().to_bits(), refs.iter().map(|&r| s.value(r).to_bits()).collect()))
            });
            match pause {
                spikebus_engine::Pause::Boundary(b) if b.end => break,
                spikebus_engine::Pause::Boundary(_) => boundaries += 1,
                p => panic!("{p:?}"),
            }
        }
        let mut spikes = vec![];
        sim.take_spikes(&mut spikes);
        (samples, spikes, sim.state_words(), sim.windows_run(), boundaries, sim.step_threads())
    };
    let (want, want_spikes, want_state, none, steps, _) = run(1, false);
    assert_eq!(none, 0);
    assert_eq!(want.len(), 8001, "t = 0 and 8000 steps");
    for threads in [1, 2] {
        let (got, spikes, state, windows, boundaries, used) = run(threads, true);
        assert_eq!(used, threads);
        assert!(windows > 100 && boundaries < steps - 1000, "{threads} threads: {windows} windows, {boundaries} boundaries");
        let first = got.iter().zip(&want).position(|(a, b)| a != b);
        assert!(got == want, "{threads} threads: the samples differ from step {first:?}");
        assert!(spikes.len() > 1000);
        assert!(spikes == want_spikes, "{threads} threads: the spikes differ");
        assert!(state == want_state, "{threads} threads: the final state differs");
    }
}

/// A spike found inside a window reaches its target in time: one NetStim event makes cell a
/// spike, whose NetCon (1 ms) makes b spike; with nothing else queued the windows would be
/// long, and a window must end before the spike's event is due (fired after the window, it
/// would otherwise arrive late). b's v at every step and every spike as one step at a time.
#[test]
fn windows_end_before_a_spike_inside_is_due() {
    let text = "[run]\ntstop = 60.0\n\
                [section.a]\ninsert = [\"hh\"]\n[section.b]\ninsert = [\"hh\"]\n\
                [point.sa]\ntype = \"ExpSyn\"\nat = \"a(0.5)\"\ntau = 5.0\n[point.sb]\ntype = \"ExpSyn\"\nat = \"b(0.5)\"\ntau = 5.0\n\
                [cell.ns]\ntype = \"NetStim\"\nstart = 5.0\nnumber = 1\n\
                [netcon.in]\nsource = \"ns\"\ntarget = \"sa\"\nweight = 0.5\n\
                [netcon.ab]\nsource = \"a\"\ntarget = \"sb\"\ndelay = 1.0\nweight = 0.5\n";
    let model = parse_model(text, "m").unwrap();
    let run = |windows: bool| {
        let mut sim = Sim::new(model.clone()).unwrap();
        let refs = [sim.signal("b.v").unwrap()];
        if windows {
            sim.set_windows(Some(&refs));
        }
        let mut v = vec![];
        while !matches!(sim.advance(&mut |s: &Sim| v.push(s.value(refs[0]).to_bits())), spikebus_engine::Pause::Boundary(b) if b.end) {}
        let mut spikes = vec![];
        sim.take_spikes(&mut spikes);
        (v, spikes, sim.windows_run())
    };
    let (want, want_spikes, _) = run(false);
    let (got, spikes, windows) = run(true);
    assert!(windows > 2, "{windows} windows");
    let names: Vec<_> = want_spikes.iter().map(|s| s.source).collect();
    assert_eq!(names, [2, 0, 1], "ns, then a, then b spike");
    assert!(spikes == want_spikes, "{spikes:?} against {want_spikes:?}");
    assert!(got == want, "b's v differs from step {:?}", got.iter().zip(&want).position(|(a, b)| a != b));
}

/// A tile of one cell steps through its own code (`Tile::matrix_solve_one`, hh's
/// `state_one`: a row summed in registers), a tile of several cells through the lane loops;
/// both are NEURON's operations in NEURON's order, so a cell gives the same bits either way.
/// Four branched cells (a node with three children, one of them attached mid-section; hh,
/// pas, ExpSyn, IClamp; parameters differing per cell) as the lanes of one tile, and each
/// alone: every node's v, the gates and the synapse at every step, and the spikes.
#[test]
fn one_cell_tiles_step_as_lanes_do() {
    let cell = |i: usize| {
        format!(
            "[section.s{i}]\nL = 20.0\ndiam = 20.0\ninsert = [\"hh\"]\ngnabar_hh = {gna}\n\
             [section.a{i}]\nparent = \"s{i}(1)\"\nnseg = 3\nL = 200.0\ndiam = 2.0\ninsert = [\"pas\"]\n\
             [section.b{i}]\nparent = \"s{i}(1)\"\nnseg = 2\nL = 150.0\ndiam = 1.5\ninsert = [\"pas\"]\ng_pas = {gpas}\n\
             [section.c{i}]\nparent = \"s{i}(1)\"\nL = 50.0\ndiam = 1.0\ninsert = [\"pas\"]\n\
             [section.x{i}]\nparent = \"a{i}(0.5)\"\nnseg = 2\nL = 80.0\ndiam = 1.0\ninsert = [\"hh\"]\n\
             [point.syn{i}]\ntype = \"ExpSyn\"\nat = \"a{i}(0.9)\"\ntau = 3.0\n\
             [point.ic{i}]\ntype = \"IClamp\"\nat = \"s{i}(0.5)\"\ndel = 2.0\ndur = 30.0\namp = {amp}\n\
             [cell.ns{i}]\ntype = \"NetStim\"\ninterval = {interval}\nstart = 1.0\nnumber = 1e9\n\
             [netcon.n{i}]\nsource = \"ns{i}\"\ntarget = \"syn{i}\"\nweight = 0.02\n",
            gna = 0.12 + 0.01 * i as f64,
            gpas = 0.001 * (i + 1) as f64,
            amp = 0.1 + 0.05 * i as f64,
            interval = 3.0 + i as f64,
        )
    };
    let names = |i: usize| {
        let mut n: Vec<String> = ["s(0.5).v", "s(0).v", "a(0.1).v", "a(0.5).v", "a(0.9).v", "a(1).v", "b(0.25).v", "b(1).v", "c(0.5).v", "x(0.25).v", "x(0.75).v", "s.m_hh", "s.h_hh", "x(0.75).n_hh"]
            .iter()
            .map(|s| format!("{}{i}{}", &s[..1], &s[1..]))
            .collect();
        n.push(format!("syn{i}.g"));
        n
    };
    let run = |cells: &[usize]| {
        let text = String::from("[run]\ntstop = 40.0\n") + &cells.iter().map(|&i| cell(i)).collect::<String>();
        let mut sim = Sim::new(parse_model(&text, "m").unwrap()).unwrap();
        let refs: Vec<Vec<_>> = cells.iter().map(|&i| names(i).iter().map(|n| sim.signal(n).unwrap()).collect()).collect();
        let mut traces: Vec<Vec<u64>> = vec![vec![]; cells.len()];
        sim.initialize(|_| {});
        let tiles = sim.tile_count();
        while sim.running() {
            sim.step(|s| {
                for (trace, refs) in traces.iter_mut().zip(&refs) {
                    trace.extend(refs.iter().map(|&r| s.value(r).to_bits()));
                }
            });
        }
        let mut spikes = vec![];
        sim.take_spikes(&mut spikes);
        let names = sim.source_names().iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let spikes: Vec<(String, u64)> = spikes.iter().map(|s| (names[s.source as usize].clone(), s.t.to_bits())).collect();
        (traces, spikes, tiles)
    };
    let all: Vec<usize> = (0..4).collect();
    let (traces, spikes, tiles) = run(&all);
    assert_eq!(tiles, 1, "the four cells are the lanes of one tile");
    for i in all {
        let (alone, alone_spikes, _) = run(&[i]);
        let first = alone[0].iter().zip(&traces[i]).position(|(a, b)| a != b);
        assert!(alone[0] == traces[i], "cell {i}: alone, its values differ from its lane's from sample {first:?}");
        let mine: Vec<_> = spikes.iter().filter(|(s, _)| s.ends_with(&i.to_string())).cloned().collect();
        assert!(alone_spikes.iter().any(|(s, _)| s.starts_with('s')), "cell {i} spikes");
        assert_eq!(alone_spikes, mine, "cell {i}: spikes");
    }
}
