//! What a run records and how: traces.csv or traces.npy (`--format`), written by a thread of
//! their own; NEURON's `Vector.record(&x, Dt)` (`--record-dt`, `[record] dt`); no traces file
//! when nothing is recorded; a write error or `--max-output` ending a run promptly.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};
use spikebus_protocol::{self as proto, Reply};

use crate::cli::spikebus;
use crate::golden::{decode_trace, load_golden, root, Golden};
use crate::node::{every, stop, Client, Node};

fn run(args: &[&str], out: &Path) -> Output {
    spikebus().arg("run").args(args).arg("--out").arg(out).output().expect("spawn spikebus")
}

fn run_ok(args: &[&str], out: &Path) -> String {
    let o = run(args, out);
    assert!(o.status.success(), "{args:?}: {}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).expect("manifest.json")).unwrap()
}

/// A `.npy` file as NumPy's format defines it (version 1.0, '<f8', C order): (rows, columns,
/// values by row), the header checked field by field.
fn read_npy(path: &Path) -> (usize, usize, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00", "magic and version 1.0");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + len) % 64, 0, "data aligned to 64 bytes");
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.ends_with('\n'), "{header:?}");
    assert!(header.starts_with("{'descr': '<f8', 'fortran_order': False, 'shape': ("), "{header:?}");
    let shape = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let dims: Vec<usize> = shape.split(',').map(|d| d.trim().parse().unwrap()).collect();
    let data: Vec<f64> = bytes[10 + len..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(data.len(), dims[0] * dims[1], "the data is the header's shape");
    (dims[0], dims[1], data)
}

/// Columns of a traces file by name: traces.csv's header, or traces.npy's columns in the
/// manifest.
fn columns(dir: &Path) -> Vec<(String, Vec<f64>)> {
    let m = manifest(dir);
    if dir.join("traces.npy").exists() {
        let names: Vec<String> = serde_json::from_value(m["files"]["traces.npy"]["columns"].clone()).unwrap();
        let (rows, width, data) = read_npy(&dir.join("traces.npy"));
        assert_eq!(width, names.len());
        names.into_iter().enumerate().map(|(k, n)| (n, (0..rows).map(|i| data[i * width + k]).collect())).collect()
    } else {
        let text = std::fs::read_to_string(dir.join("traces.csv")).unwrap();
        let mut lines = text.lines();
        let names: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
        assert_eq!(serde_json::json!(names), m["files"]["traces.csv"]["columns"]);
        let rows: Vec<Vec<f64>> = lines.map(|l| l.split(',').map(|x| x.parse().unwrap()).collect()).collect();
        names.into_iter().enumerate().map(|(k, n)| (n, rows.iter().map(|r| r[k]).collect())).collect()
    }
}

/// The traces file holds NEURON's samples of `golden` (or their first `rows`), bit for bit.
fn assert_golden(dir: &Path, golden: &Golden, rows: Option<usize>) {
    let cols = columns(dir);
    assert_eq!(cols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), golden.signals);
    for (name, got) in cols {
        let mut want = decode_trace(&golden.traces[&name]);
        if let Some(n) = rows {
            want.truncate(n);
        }
        assert_eq!(got.len(), want.len(), "{name}: samples");
        let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{name}: {differ} samples differ from NEURON");
    }
}

/// Every file in the manifest has its length and SHA-256, and only those files are there.
fn assert_digests(dir: &Path) -> Vec<String> {
    let m = manifest(dir);
    let files = m["files"].as_object().unwrap();
    for (name, entry) in files {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(entry["bytes"], bytes.len(), "{name}");
        assert_eq!(entry["sha256"], format!("{:x}", Sha256::digest(&bytes)), "{name}");
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    on_disk.sort();
    let mut listed: Vec<String> = files.keys().cloned().chain(["manifest.json".to_string()]).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "the files of the run are the manifest's");
    files.keys().cloned().collect()
}

/// traces.npy holds NEURON's doubles (the same as traces.csv's text), its shape in the
/// header, its columns and digest in the manifest; spikes stay CSV.
#[test]
fn npy_holds_neuron_doubles_and_the_manifest_names_its_columns() {
    let (csv, npy) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run_ok(&["--set", "soma.threshold=0"], csv.path());
    run_ok(&["--set", "soma.threshold=0", "--format", "npy"], npy.path());
    let golden = load_golden("seed");
    assert_golden(npy.path(), &golden, None);
    assert_golden(csv.path(), &golden, None);
    assert_eq!(assert_digests(npy.path()), ["spikes.csv", "traces.npy"]);
    assert_eq!(assert_digests(csv.path()), ["spikes.csv", "traces.csv"]);
    let spikes = |d: &Path| std::fs::read(d.join("spikes.csv")).unwrap();
    assert_eq!(spikes(csv.path()), spikes(npy.path()));
    assert_eq!(manifest(npy.path())["complete"], true);
}

/// `--record-dt` and `[record] dt` record what NEURON's Vector.record(&x, Dt) records: the
/// times te = 0, Dt, Dt + Dt, ... and the values of the step boundary that delivers each.
#[test]
fn record_dt_is_neurons_vector_record_dt() {
    for (variant, format) in [("recdt_seed", "csv"), ("recdt_seed", "npy"), ("recdt_seed_003", "npy"), ("recdt_seed_001", "csv")] {
        let g = load_golden(variant);
        let dir = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = g.set.iter().map(|(k, v)| format!("{k}={v}")).flat_map(|s| ["--set".to_string(), s]).collect();
        let dt = g.record_dt.unwrap().to_string();
        let record = g.signals[1..].join(",");
        args.extend(["--record-dt", &dt, "--record", &record, "--format", format].map(String::from));
        run_ok(&args.iter().map(String::as_str).collect::<Vec<_>>(), dir.path());
        assert_golden(dir.path(), &g, None);
        assert_digests(dir.path());
    }
    // The same from a model file's [record] dt.
    let g = load_golden("recdt_iclamp");
    let text = std::fs::read_to_string(root().join(&g.model)).unwrap();
    let head = text.split("[record]").next().unwrap();
    let signals: Vec<String> = g.signals[1..].iter().map(|s| format!("{s:?}")).collect();
    let model = format!("{head}[record]\nsignals = [{}]\ndt = {:?}\n", signals.join(", "), g.record_dt.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.toml");
    std::fs::write(&path, model).unwrap();
    let out = dir.path().join("o");
    let o = spikebus().arg("run").arg(&path).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_golden(&out, &g, None);
}

/// A Dt record of a value that synaptic events write (NEURON reads it after the events
/// delivered just before), or a Dt out of NEURON's bounds, is refused before anything runs.
#[test]
fn record_dt_refuses_what_it_cannot_record_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    for (args, want) in [
        (&["--record-dt", "0.1"][..], "`syn.g` cannot be recorded with a Dt"),
        (&["--record-dt", "0.1", "--record", "soma.v,syn.g"], "`syn.g` cannot be recorded with a Dt"),
        (&["--record-dt", "0", "--record", "soma.v"], "--record-dt 0: expected 1e-9 to 1e10 ms"),
        (&["--record-dt", "1e11", "--record", "soma.v"], "--record-dt 100000000000: expected 1e-9 to 1e10 ms"),
        (&["--record-dt", "NaN", "--record", "soma.v"], "--record-dt NaN"),
        (&["--record-dt", "1e-9", "--record", "soma.v", "--max-steps", "1000000"], "more than --max-steps 1000000"),
    ] {
        let o = run(args, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote something");
    }
    let model = dir.path().join("m.toml");
    std::fs::write(&model, "[section.soma]\n\n[record]\nsignals = [\"soma.v\"]\ndt = -1\n").unwrap();
    let o = spikebus().arg("check").arg(&model).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains(":5: key `record.dt`: expected a finite number > 0, found -1"), "{err}");
}

/// Nothing recorded, no traces file: the manifest lists spikes.csv alone and the run is
/// complete.
#[test]
fn nothing_recorded_writes_no_traces_file() {
    for format in ["csv", "npy"] {
        let dir = tempfile::tempdir().unwrap();
        let stdout = run_ok(&["--record", "", "--set", "tstop=20", "--format", format], dir.path());
        assert!(stdout.contains("wrote") && stdout.contains("spikes.csv") && !stdout.contains("traces"), "{stdout}");
        assert_eq!(assert_digests(dir.path()), ["spikes.csv"]);
        assert_eq!(manifest(dir.path())["complete"], true);
    }
}

/// A run stopped early writes a `.npy` whose header says the rows it has (rewritten at the
/// end), with the digest of the file as it is on disk.
#[test]
fn a_stopped_run_writes_a_whole_npy() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&["--control", "tcp://127.0.0.1:0", "--set", "soma.threshold=0", "--format", "npy", "--out", dir.path().to_str().unwrap()]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    let mut report = c.sync(vec![every(1000)]);
    while report.body.step < 3000 {
        report = c.sync(vec![]);
    }
    let Reply::Done(done) = c.cont(vec![stop()]) else { panic!("stop gets done") };
    assert_eq!(done.reason, proto::EndReason::Stop);
    assert_eq!(node.wait().0, Some(0));
    assert_eq!(assert_digests(dir.path()), ["spikes.csv", "traces.npy"]);
    assert_golden(dir.path(), &load_golden("seed"), Some(3001));
}

/// Runs `args` with files limited to `bytes` (RLIMIT_FSIZE): a write fails with EFBIG.
fn run_with_file_limit(args: &[&str], out: &Path, bytes: u64) -> Output {
    let mut cmd = Command::new(crate::bin());
    cmd.arg("run").args(args).arg("--out").arg(out);
    // SAFETY: async-signal-safe calls only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    cmd.output().unwrap()
}

/// A write error ends a free run within a few blocks of the samples that could not be
/// written (not at tstop): exit 4, the error names the file, the manifest says incomplete.
#[test]
fn a_write_error_ends_a_free_run_promptly() {
    // The limits hold about 2,300 rows (CSV: ~116 bytes a row; npy: 56); the run would take
    // 20,000 steps. The writer fails within a block or two of that (its buffer is 64 KiB) and
    // the run is at most 4 blocks of 1,170 samples ahead of it (traces.rs), so it must end
    // before step 10,000.
    for (format, name, limit) in [("csv", "traces.csv", 256 << 10), ("npy", "traces.npy", 128 << 10)] {
        let dir = tempfile::tempdir().unwrap();
        let o = run_with_file_limit(&["--set", "soma.threshold=0", "--format", format], dir.path(), limit);
        let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(4), "{stdout}{stderr}");
        assert!(stderr.contains(&format!("{name}.partial")) && stderr.contains("os error"), "{stderr}");
        let steps: u64 = stdout.split(" steps").next().unwrap().rsplit(' ').next().unwrap().parse().unwrap();
        assert!(steps < 10_000, "{format}: the run went on to step {steps}");
        let m = manifest(dir.path());
        assert_eq!(m["complete"], false);
        assert_eq!(m["reason"], "io_error");
        assert!(m["files"].get(name).is_none());
        assert!(dir.path().join(format!("{name}.partial")).exists());
    }
}

/// `--max-output` ends the run at the first sample that would pass it: the file holds whole
/// rows, at most that many bytes, and the run's reason is `limit` (exit 5).
#[test]
fn max_output_ends_the_run_with_whole_rows() {
    let g = load_golden("seed");
    for (format, max, rows) in [("csv", 100_000, None), ("npy", 128 + 56 * 700 + 55, Some(700))] {
        let dir = tempfile::tempdir().unwrap();
        let max_s = max.to_string();
        let o = run(&["--set", "soma.threshold=0", "--format", format, "--max-output", &max_s], dir.path());
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(5), "{stderr}");
        assert!(stderr.contains("(--max-output)"), "{stderr}");
        let m = manifest(dir.path());
        assert_eq!((m["reason"].as_str(), m["complete"].as_bool()), (Some("limit"), Some(true)));
        let file = dir.path().join(format!("traces.{format}"));
        let len = std::fs::metadata(&file).unwrap().len();
        assert!(len <= max, "{len} > {max}");
        let n = columns(dir.path())[0].1.len();
        if let Some(rows) = rows {
            assert_eq!(n, rows);
        } else {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(text.ends_with('\n') && len + 200 > max, "whole rows, up to the limit ({len} bytes)");
        }
        assert_golden(dir.path(), &g, Some(n));
        assert_digests(dir.path());
    }
}
