//! The `spikebus` binary as a user runs it: real processes, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::golden::{decode_trace, load_golden, root};

pub fn spikebus() -> Command {
    Command::new(crate::bin())
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn spikebus");
    assert!(out.status.success(), "spikebus failed: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// Reads a CSV of numbers written by spikebus: header, then columns as f64.
fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header = lines.next().expect("header").split(',').map(str::to_string).collect();
    let rows = lines.map(|l| l.split(',').map(str::to_string).collect()).collect();
    (header, rows)
}

fn column(header: &[String], rows: &[Vec<String>], name: &str) -> Vec<f64> {
    let k = header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name} in {header:?}"));
    rows.iter().map(|r| r[k].parse::<f64>().expect("number")).collect()
}

/// The default run (no model file) is the seed model; its files carry NEURON's numbers
/// through text and back, bit for bit.
#[test]
fn run_seed_writes_neuron_exact_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(spikebus().args(["run", "--set", "soma.threshold=0", "--out"]).arg(dir.path()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("20000 steps"), "{stdout}");

    let golden = load_golden("seed");
    let (header, rows) = read_csv(&dir.path().join("traces.csv"));
    assert_eq!(header, ["t", "soma.v", "syn.g", "syn.i", "soma.m_hh", "soma.h_hh", "soma.n_hh"]);
    assert_eq!(rows.len(), 20001);
    for name in &golden.signals {
        let want = decode_trace(&golden.traces[name]);
        let got = column(&header, &rows, name);
        let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{name}: {differ} samples differ from NEURON after the CSV round trip");
    }

    let (header, rows) = read_csv(&dir.path().join("spikes.csv"));
    assert_eq!(header, ["source", "t"]);
    let times: Vec<f64> = rows.iter().map(|r| r[1].parse().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "spikes.csv is in time order");
    for (source, want) in &golden.spikes {
        let got: Vec<f64> = rows.iter().filter(|r| &r[0] == source).map(|r| r[1].parse().unwrap()).collect();
        assert_eq!(got.len(), want.len(), "{source}");
        assert!(got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "{source}: {got:?} vs {want:?}");
    }
    // Nothing half-written is left behind.
    let leftovers: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A free run that records no current output (here v and a gate) skips writing them in its
/// steps (`Sim::set_outputs_read`): what it records and its spikes are still NEURON's, on 1
/// and 2 threads.
#[test]
fn runs_recording_no_currents_are_neurons_too() {
    let golden = load_golden("seed");
    for threads in ["1", "2"] {
        let dir = tempfile::tempdir().unwrap();
        let args = ["run", "--set", "soma.threshold=0", "--record", "soma.v,soma.n_hh", "--threads", threads, "--out"];
        run_ok(spikebus().args(args).arg(dir.path()).env("SPIKEBUS_PARALLEL_MIN_WORK", "0"));
        let (header, rows) = read_csv(&dir.path().join("traces.csv"));
        assert_eq!(header, ["t", "soma.v", "soma.n_hh"]);
        for name in ["soma.v", "soma.n_hh"] {
            let want = decode_trace(&golden.traces[name]);
            let got = column(&header, &rows, name);
            let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!((got.len(), differ), (want.len(), 0), "{name}, {threads} threads");
        }
        let (_, rows) = read_csv(&dir.path().join("spikes.csv"));
        for (source, want) in &golden.spikes {
            let got: Vec<f64> = rows.iter().filter(|r| &r[0] == source).map(|r| r[1].parse().unwrap()).collect();
            assert!(got.len() == want.len() && got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()), "{source}");
        }
    }
}

/// `--threads 2` on a model too small to gain from threads steps on one, says why on stderr,
/// and writes the same files as one thread and as the threads forced with
/// SPIKEBUS_PARALLEL_MIN_WORK=0 (which says nothing): 20 seed cells (60 nodes, 3 tiles on 2
/// threads), and the seed alone (one tile: threads never step it); a value of the variable
/// that is not a number is refused before anything is written.
#[test]
fn small_models_step_on_one_thread_whatever_threads_says() {
    let tmp = tempfile::tempdir().unwrap();
    let pop = tmp.path().join("pop20.toml");
    std::fs::write(&pop, POP20).unwrap();
    let run = |model: &Path, threads: &str, env: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = spikebus();
        cmd.arg("run").arg(model).args(["--set", "tstop=100", "--threads", threads, "--out"]).arg(dir.path());
        cmd.env_remove("SPIKEBUS_PARALLEL_MIN_WORK");
        if let Some(v) = env {
            cmd.env("SPIKEBUS_PARALLEL_MIN_WORK", v);
        }
        let out = run_ok(&mut cmd);
        let files = ["traces.csv", "spikes.csv"].map(|f| std::fs::read(dir.path().join(f)).unwrap());
        (String::from_utf8_lossy(&out.stderr).into_owned(), files)
    };
    let (quiet, one) = run(&pop, "1", None);
    assert!(!quiet.contains("one thread"), "{quiet}");
    let (said, two) = run(&pop, "2", None);
    assert!(said.contains("--threads 2: this model steps on one thread") && said.contains("its 60 nodes are fewer than the 512"), "{said}");
    let (forced, two_forced) = run(&pop, "2", Some("0"));
    assert!(!forced.contains("one thread"), "{forced}");
    assert!(one == two && one == two_forced, "the files of 1 thread, 2 (one used) and 2 forced differ");
    let (said, _) = run(&root().join("models/seed.toml"), "2", Some("0"));
    assert!(said.contains("its cells fill one tile"), "{said}");

    let out = spikebus()
        .args(["run", "--threads", "2", "--out"])
        .arg(tmp.path().join("o"))
        .env("SPIKEBUS_PARALLEL_MIN_WORK", "lots")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SPIKEBUS_PARALLEL_MIN_WORK=lots: expected a whole number"));
    assert!(!tmp.path().join("o").exists(), "nothing written");
}

/// 20 copies of the seed cell, each NetStim starting 1 ms after the last.
const POP20: &str = r#"
[template.seed.section.soma]
L = 100.0
diam = 500.0
insert = ["hh"]

[template.seed.point.syn]
type = "ExpSyn"
at = "soma(0.5)"
tau = 20.0

[template.seed.cell.ns]
type = "NetStim"
interval = 20.0
number = 1e9

[template.seed.netcon.nc]
source = "ns"
target = "syn"
weight = 0.1

[population.c]
template = "seed"
count = 20
[population.c.set]
"ns.start" = "i"

[record]
signals = ["c[0].soma.v", "c[19].soma.v", "c[7].syn.g"]
"#;

/// The built-in default and the shipped file are the same model.
#[test]
fn default_model_is_the_shipped_seed_file() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    run_ok(spikebus().args(["run", "--set", "tstop=50", "--out"]).arg(a.path()));
    run_ok(spikebus().arg("run").arg(root().join("models/seed.toml")).args(["--set", "tstop=50", "--out"]).arg(b.path()));
    for f in ["traces.csv", "spikes.csv"] {
        let x = std::fs::read(a.path().join(f)).unwrap();
        let y = std::fs::read(b.path().join(f)).unwrap();
        assert!(x == y, "{f} differs between the default and models/seed.toml");
    }
}

#[test]
fn set_and_record_choose_what_runs_and_what_is_written() {
    let dir = tempfile::tempdir().unwrap();
    run_ok(
        spikebus()
            .args(["run", "--set", "tstop=10", "--set", "ns.interval=2.5", "--record", "soma.v,syn.g", "--out"])
            .arg(dir.path()),
    );
    let (header, rows) = read_csv(&dir.path().join("traces.csv"));
    assert_eq!(header, ["t", "soma.v", "syn.g"]);
    assert_eq!(rows.len(), 401);
    let (_, spikes) = read_csv(&dir.path().join("spikes.csv"));
    let ns: Vec<f64> = spikes.iter().filter(|r| r[0] == "ns").map(|r| r[1].parse().unwrap()).collect();
    // t after 400 steps is just below 10 (NEURON's t += dt/2 twice per step), so the spike
    // due at 10.0 is never delivered, as in NEURON.
    assert_eq!(ns, [0.0, 2.5, 5.0, 7.5]);
}

fn write_model(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("model.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn run_err(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn spikebus");
    assert_eq!(out.status.code(), Some(2), "expected exit 2, got {}; stdout {}", out.status, String::from_utf8_lossy(&out.stdout));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line on stderr: {err}");
    err
}

#[test]
fn bad_model_file_names_file_line_key_and_what_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_model(dir.path(), "[run]\ndt = 0.025\n\n[section.soma]\nL = 100\ndiam = \"wide\"\n");
    let err = run_err(spikebus().arg("check").arg(&p));
    let want = format!("{}:6: key `section.soma.diam`: expected a finite number > 0, found string", p.display());
    assert!(err.contains(&want), "{err}");

    let p = write_model(dir.path(), "[section.soma]\ninsert = [\"hh\"]\ngnabar = 0.1\n");
    let err = run_err(spikebus().arg("check").arg(&p));
    assert!(err.contains(":3: key `section.soma.gnabar`: unknown key; allowed here: L, diam"), "{err}");

    let p = write_model(dir.path(), "[section.soma]\n[netcon.nc]\nsource = \"soma\"\ntarget = \"nothing\"\n");
    let err = run_err(spikebus().arg("check").arg(&p));
    assert!(err.contains(":4: key `netcon.nc.target`: `nothing` is not a synapse or an artificial cell"), "{err}");

    let p = write_model(dir.path(), "[section.soma\nL = 1\n");
    let err = run_err(spikebus().arg("check").arg(&p));
    assert!(err.contains(":1:"), "{err}");

    let err = run_err(spikebus().arg("check").arg(dir.path().join("missing.toml")));
    assert!(err.contains("cannot read model file") && err.contains("missing.toml"), "{err}");
}

#[test]
fn bad_set_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let err = run_err(spikebus().args(["run", "--set", "soma.gnabar=0.1", "--out"]).arg(dir.path()));
    assert!(err.contains("unknown parameter `soma.gnabar`") && err.contains("gnabar_hh"), "{err}");
    let err = run_err(spikebus().args(["run", "--set", "syn.tau=-1", "--out"]).arg(dir.path()));
    assert!(err.contains("parameter `syn.tau`: -1 is not allowed: a finite number > 0"), "{err}");
    let err = run_err(spikebus().args(["run", "--set", "dt=abc", "--out"]).arg(dir.path()));
    assert!(err.contains("`abc` is not a number"), "{err}");
    let err = run_err(spikebus().args(["run", "--record", "soma.q", "--out"]).arg(dir.path()));
    assert!(err.contains("unknown signal `soma.q`"), "{err}");
    assert!(!dir.path().join("traces.csv").exists(), "nothing is written for a refused run");
}

#[test]
fn check_and_params_describe_a_good_model() {
    let out = run_ok(spikebus().arg("check").arg(root().join("models/seed.toml")));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok (1 sections, 1 point processes, 1 artificial cells, 1 NetCons, 6 recorded signals)"));
    let out = run_ok(spikebus().args(["params", "--set", "ns.interval=7"]));
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("ns.interval ")).expect("ns.interval listed");
    assert!(line.contains(" 7 ") && line.contains("ms") && line.contains("writable"), "{line}");
    assert!(text.lines().any(|l| l.starts_with("soma.nseg ") && l.contains("model only")));
}

/// `--threads N` runs the 200-cell network golden to NEURON's numbers on any thread count:
/// the files of 1, 2 and 3 threads are identical byte for byte, and their traces and spikes
/// are NEURON's.
#[test]
fn threads_give_the_same_files_and_neurons_numbers() {
    let model = root().join("tests/models/network200.toml");
    let golden = load_golden("network200");
    let mut first: Option<(Vec<u8>, Vec<u8>)> = None;
    for threads in ["1", "2", "3"] {
        let dir = tempfile::tempdir().unwrap();
        // 600 nodes: more than PARALLEL_MIN_WORK, so the threads step; said to be sure.
        let out = run_ok(spikebus().arg("run").arg(&model).args(["--threads", threads, "--out"]).arg(dir.path()).env("SPIKEBUS_PARALLEL_MIN_WORK", "0"));
        assert!(!String::from_utf8_lossy(&out.stderr).contains("one thread"));
        let traces = std::fs::read(dir.path().join("traces.csv")).unwrap();
        let spikes = std::fs::read(dir.path().join("spikes.csv")).unwrap();
        match &first {
            None => {
                let (header, rows) = read_csv(&dir.path().join("traces.csv"));
                for name in &golden.signals {
                    let want = decode_trace(&golden.traces[name]);
                    let got = column(&header, &rows, name);
                    let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                    assert_eq!((got.len(), differ), (want.len(), 0), "{name}");
                }
                let (_, rows) = read_csv(&dir.path().join("spikes.csv"));
                let total: usize = golden.spikes.values().map(Vec::len).sum();
                assert_eq!(rows.len(), total, "every spike of NEURON's run");
                first = Some((traces, spikes));
            }
            Some((t1, s1)) => {
                assert!(&traces == t1, "traces.csv of {threads} threads differs from 1 thread's");
                assert!(&spikes == s1, "spikes.csv of {threads} threads differs from 1 thread's");
            }
        }
    }
}

/// A morphology that cannot be imported as NEURON would import it, or tables that contradict
/// the file, are refused with the file, line and key (and the SWC file's line).
#[test]
fn bad_morphologies_are_refused_with_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let swc = dir.path().join("cell.swc");
    std::fs::write(&swc, "# two points\n1 1 0 0 0 5 -1\n2 3 10 0 0 1 1\n").unwrap();
    let check = |text: &str| run_err(spikebus().arg("check").arg(write_model(dir.path(), text)));

    let err = check("[morphology]\nswc = \"nothere.swc\"\n");
    assert!(err.contains(":2: key `morphology.swc`: cannot read") && err.contains("nothere.swc"), "{err}");
    let err = check("[morphology]\nswc = \"cell.swc\"\n\n[morphology.apic]\ninsert = [\"pas\"]\n");
    assert!(err.contains("key `morphology.apic`: cell.swc has no `apic` sections; its types: soma, dend"), "{err}");
    let err = check("[morphology]\nswc = \"cell.swc\"\n\n[morphology.all]\nL = 10.0\n");
    assert!(err.contains(":5: key `morphology.all.L`: the SWC file gives"), "{err}");
    let err = check("[morphology]\nswc = \"cell.swc\"\nnseg = 3\nd_lambda = 0.1\n");
    assert!(err.contains("d_lambda and d_lambda_freq need nseg = \"d_lambda\""), "{err}");
    let err = check("[section.a]\npt3d = [[0, 0, 0, 1], [1, 0, 0, 1]]\nL = 5.0\n");
    assert!(err.contains(":3: key `section.a.L`: not with pt3d (line 2)"), "{err}");
    let err = check("[section.a]\npt3d = [[0, 0, 0, 1]]\n");
    assert!(err.contains("key `section.a.pt3d`: expected 2 to"), "{err}");

    std::fs::write(&swc, "1 1 0 0 0 5 -1\n2 3 10 0 0 1 1\n3 3 20 0 0 1 7\n").unwrap();
    let err = check("[morphology]\nswc = \"cell.swc\"\n");
    assert!(err.contains("cell.swc: line 3: parent 7 is not less than id 3"), "{err}");
    std::fs::write(&swc, "1 1 0 0 0 5 -1\n2 3 10 0 zero 1 1\n").unwrap();
    let err = check("[morphology]\nswc = \"cell.swc\"\n");
    assert!(err.contains("cell.swc: line 2: `zero` is not a number"), "{err}");

    // L and diam of a section with points come from them: not settable.
    std::fs::write(&swc, "1 1 0 0 0 5 -1\n2 3 10 0 0 1 1\n").unwrap();
    let p = write_model(dir.path(), "[morphology]\nswc = \"cell.swc\"\n");
    let err = run_err(spikebus().arg("run").arg(&p).arg("--set").arg("dend[0].L=3").arg("--out").arg("/dev/null"));
    assert!(err.contains("section `dend[0]` has 3-d points"), "{err}");
}

/// `spikebus expand` writes a model file that runs exactly as the populations it expands, as
/// the models with plays, per-segment values, array parameters and artificial cells, and a
/// morphology as its sections' 3-d points.
#[test]
fn expanded_models_run_the_same() {
    for name in ["network200_pop", "play_discrete", "play_continuous", "segments", "vclamp", "intfire4", "swc_pyramidal"] {
        expands_to_the_same_run(&format!("tests/models/{name}.toml"));
    }
}

fn expands_to_the_same_run(model: &str) {
    let model = root().join(model);
    let out = run_ok(spikebus().arg("expand").arg(&model));
    let dir = tempfile::tempdir().unwrap();
    let flat = write_model(dir.path(), &String::from_utf8(out.stdout).unwrap());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    run_ok(spikebus().arg("run").arg(&model).arg("--out").arg(&a));
    run_ok(spikebus().arg("run").arg(&flat).arg("--out").arg(&b));
    for f in ["traces.csv", "spikes.csv"] {
        assert!(std::fs::read(a.join(f)).unwrap() == std::fs::read(b.join(f)).unwrap(), "{}: {f} differs", model.display());
    }
}

/// NEURON's built-ins from model files, with `--set` of single segments and of VClamp's
/// array elements: `spikebus run` writes NEURON 9.0.2's traces and spikes bit for bit.
#[test]
fn builtins_and_segment_sets_run_to_neurons_numbers() {
    let variants = [
        "intfire1", "intfire2", "intfire4", "alphasynapse", "seclamp", "vclamp", "vclamp_slow", "play_discrete",
        "play_continuous", "segments", "segments_set",
    ];
    for name in variants {
        let g = load_golden(name);
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = spikebus();
        cmd.arg("run").arg(root().join(&g.model));
        for (k, v) in &g.set {
            cmd.arg("--set").arg(format!("{k}={v:?}"));
        }
        run_ok(cmd.arg("--out").arg(dir.path()));
        let (header, rows) = read_csv(&dir.path().join("traces.csv"));
        assert_eq!(header, g.signals, "{name}");
        for sig in &g.signals {
            let want = decode_trace(&g.traces[sig]);
            let got = column(&header, &rows, sig);
            assert_eq!(got.len(), want.len(), "{name} {sig}");
            let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
            assert_eq!(differ, 0, "{name} {sig}: {differ} samples differ from NEURON");
        }
        let (_, rows) = read_csv(&dir.path().join("spikes.csv"));
        for (source, want) in &g.spikes {
            let got: Vec<f64> = rows.iter().filter(|r| &r[0] == source).map(|r| r[1].parse().unwrap()).collect();
            assert!(
                got.len() == want.len() && got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name} {source}: {got:?} vs NEURON {want:?}"
            );
        }
    }
}
