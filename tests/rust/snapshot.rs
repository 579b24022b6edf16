//! Snapshots over the bus, against the real binary: a restored run goes on bit for bit as it
//! did (reports, state hashes, the files), with events in flight, a noisy NetStim and
//! parameter changes; the limits are typed errors that change nothing; an exported snapshot
//! starts another node (a fork, on another thread count) that goes on exactly as the first.

use std::path::Path;

use spikebus_protocol::{self as proto, Action, ErrorCode, Reply, Request};

use crate::node::{every, read_file, set, Client, Node};

/// The seed model with a noisy NetStim (its random stream is state), a NetCon delay (events
/// in flight at every sync point) and a short run.
const MODEL: &[&str] = &["--set", "tstop=60", "--set", "ns.noise=0.5", "--set", "ns.interval=4", "--set", "nc.delay=2.5"];

fn start(out: &Path, extra: &[&str]) -> Node {
    let mut args = vec!["--control", "tcp://127.0.0.1:0", "--out", out.to_str().unwrap()];
    args.extend_from_slice(MODEL);
    args.extend_from_slice(extra);
    Node::start(&args)
}

fn watch_all() -> Action {
    Action::Watch(proto::Watch {
        values: Some(vec!["soma.v".into(), "syn.g".into(), "soma.m_hh".into()]),
        spikes: Some(true),
        hash: Some(true),
        ..Default::default()
    })
}

fn snapshot() -> Action {
    Action::Snapshot(proto::Snapshot {})
}

fn restore(id: u64) -> Action {
    Action::Restore(proto::Restore { id })
}

fn discard(id: u64) -> Action {
    Action::Discard(proto::Discard { id })
}

/// A report as compared: everything but the telemetry (wall times).
fn key(r: &proto::SyncReport) -> String {
    let mut b = r.body.clone();
    b.telemetry = None;
    let bits: Vec<(String, u64)> = b.values.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect();
    format!("{} {} {:?} {:?} {:?} {bits:?} {:?}", b.t.to_bits(), b.step, b.reasons, b.spike, b.spikes, b.hash)
}

/// Continues with no actions until a report at t >= `until` (or the end); the reports.
fn run_until(c: &mut Client, until: f64) -> Vec<proto::SyncReport> {
    let mut out = vec![];
    loop {
        let r = c.sync(vec![]);
        let last = r.body.t >= until || r.body.reasons.contains(&proto::Reason::End);
        out.push(r);
        if last {
            return out;
        }
    }
}

fn error_code(r: Reply) -> ErrorCode {
    match r {
        Reply::Error(e) => e.code,
        r => panic!("expected an error, got {r:?}"),
    }
}

fn finish(c: &mut Client, node: Node) -> proto::DoneReply {
    let done = loop {
        match c.cont(vec![]) {
            Reply::Done(d) => break d,
            Reply::Sync(_) => {}
            r => panic!("{r:?}"),
        }
    };
    assert_eq!(node.wait().0, Some(0));
    done
}

/// Run to t1, snapshot, run to t2; restore, run to t2 again: the same reports (values,
/// spikes, state hashes) bit for bit; again after a parameter change at the restored point,
/// both times. The files of the run equal those of a run that went straight along the last
/// branch (what a restore leaves in traces.csv and spikes.csv: the history that led to the
/// end, without the branches left).
#[test]
fn a_restored_run_goes_on_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let (out_a, out_b) = (tmp.path().join("a"), tmp.path().join("b"));
    let node = start(&out_a, &[]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.hello();
    let mut r = c.sync(vec![every(40), watch_all()]);
    while r.body.t < 20.0 {
        r = c.sync(vec![]);
    }
    let at_snapshot = r.clone();
    assert!(at_snapshot.body.hash.is_some());
    let first = c.sync(vec![snapshot()]);
    assert_eq!(first.snapshots, [0]);
    let mut branch1 = vec![first];
    branch1.extend(run_until(&mut c, 45.0));
    assert!(branch1.iter().any(|r| !r.body.spikes.is_empty()), "spikes on the branch");

    // Back: the report of the snapshot's point, its hash.
    let back = c.sync(vec![restore(0)]);
    assert_eq!(back.restored, Some(0));
    assert_eq!(key(&back), key(&at_snapshot));
    let again = run_until(&mut c, 45.0);
    assert_eq!(again.len(), branch1.len());
    for (a, b) in branch1.iter().zip(&again) {
        assert_eq!(key(a), key(b));
    }

    // A parameter change at the restored point, twice: the same again, and not the first branch.
    let changed: Vec<Vec<String>> = (0..2)
        .map(|_| {
            let back = c.sync(vec![restore(0)]);
            assert_eq!(key(&back), key(&at_snapshot));
            let mut b = vec![c.sync(vec![set("syn.tau", 3.0), set("nc.weight", 0.3)])];
            b.extend(run_until(&mut c, 45.0));
            b.iter().map(key).collect()
        })
        .collect();
    assert_eq!(changed[0], changed[1]);
    assert_ne!(changed[0], branch1.iter().map(key).collect::<Vec<_>>());
    let hello = c.hello();
    assert_eq!(hello.snapshots.len(), 1);
    assert_eq!(hello.snapshots[0].hash, *at_snapshot.body.hash.as_ref().unwrap());
    let done_a = finish(&mut c, node);

    // The straight run along the last branch.
    let node = start(&out_b, &[]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.hello();
    let mut r = c.sync(vec![every(40), watch_all()]);
    while r.body.t < 20.0 {
        r = c.sync(vec![]);
    }
    assert_eq!(key(&r), key(&at_snapshot));
    let mut b = vec![c.sync(vec![set("syn.tau", 3.0), set("nc.weight", 0.3)])];
    b.extend(run_until(&mut c, 45.0));
    assert_eq!(b.iter().map(key).collect::<Vec<_>>(), changed[1]);
    let done_b = finish(&mut c, node);
    assert_eq!((done_a.t, done_a.step), (done_b.t, done_b.step));
    for f in ["traces.csv", "spikes.csv"] {
        assert!(read_file(&out_a, f) == read_file(&out_b, f), "{f} after restores differs from the straight run's");
    }
    let manifest: serde_json::Value = serde_json::from_slice(&read_file(&out_a, "manifest.json")).unwrap();
    assert_eq!(manifest["restores"], 3);
}

/// --max-snapshots, --snapshot-memory and unknown ids: typed errors, and the refused request
/// changes nothing (the node is where it was, with the snapshots it had).
#[test]
fn snapshot_limits_are_typed_errors_that_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let node = start(tmp.path(), &["--max-snapshots", "2"]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.hello();
    c.sync(vec![every(40), snapshot()]);
    let r = c.sync(vec![snapshot()]);
    let before = c.hello();
    assert_eq!(before.snapshots.iter().map(|s| s.id).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(error_code(c.cont(vec![set("syn.tau", 7.0), snapshot()])), ErrorCode::SnapshotLimit);
    assert_eq!(error_code(c.cont(vec![restore(5)])), ErrorCode::UnknownSnapshot);
    assert_eq!(error_code(c.cont(vec![discard(0), restore(0)])), ErrorCode::UnknownSnapshot);
    assert_eq!(error_code(c.cont(vec![restore(1), set("syn.tau", 7.0)])), ErrorCode::InvalidValue);
    let after = c.hello();
    assert_eq!((after.t, after.step, after.snapshots.len()), (r.body.t, r.body.step, 2));
    assert_eq!(after.params, before.params, "a refused request changed a parameter");
    // Discarding one makes room.
    let r2 = c.sync(vec![discard(0), snapshot()]);
    assert_eq!(r2.snapshots, [2]);
    assert_eq!(c.hello().snapshots.iter().map(|s| s.id).collect::<Vec<_>>(), [1, 2]);
    finish(&mut c, node);

    let node = start(&tmp.path().join("m"), &["--snapshot-memory", "1000"]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.hello();
    assert_eq!(error_code(c.cont(vec![every(40), snapshot()])), ErrorCode::SnapshotLimit);
    assert!(c.hello().snapshots.is_empty());
    finish(&mut c, node);
}

/// `export` and `spikebus run --from-snapshot FILE`: the second node (with two threads) starts
/// at the snapshot's sync point with its state hash, and goes on with the same reports as the
/// first; a free run from the file writes the rows of the first run's traces that follow the
/// snapshot, bit for bit.
#[test]
fn an_exported_snapshot_forks_into_a_second_node() {
    let tmp = tempfile::tempdir().unwrap();
    let snaps = tmp.path().join("snaps");
    let node = start(&tmp.path().join("a"), &["--snapshot-dir", snaps.to_str().unwrap()]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.hello();
    let mut r = c.sync(vec![every(40), watch_all()]);
    while r.body.t < 20.0 {
        r = c.sync(vec![]);
    }
    let at_snapshot = r;
    let mut original = vec![c.sync(vec![snapshot()])];
    let exported = match c.request(Request::Export(proto::Export { id: Some(900), client: None, snapshot: 0, file: "at20.snap".into() })) {
        Reply::Exported(e) => e,
        r => panic!("{r:?}"),
    };
    assert_eq!(exported.hash, *at_snapshot.body.hash.as_ref().unwrap());
    let bad = c.request(Request::Export(proto::Export { id: Some(901), client: None, snapshot: 0, file: "../x".into() }));
    assert_eq!(error_code(bad), ErrorCode::BadMessage);
    let bad = c.request(Request::Export(proto::Export { id: Some(902), client: None, snapshot: 9, file: "x".into() }));
    assert_eq!(error_code(bad), ErrorCode::UnknownSnapshot);
    // A file that cannot be written (a directory is in its place): io_error.
    std::fs::create_dir(snaps.join("taken")).unwrap();
    let bad = c.request(Request::Export(proto::Export { id: Some(903), client: None, snapshot: 0, file: "taken".into() }));
    assert_eq!(error_code(bad), ErrorCode::IoError);
    original.extend(run_until(&mut c, f64::INFINITY));
    finish(&mut c, node);
    let file = snaps.join("at20.snap");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), exported.bytes);

    // The fork, steered.
    let out_f = tmp.path().join("f");
    let mut cmd = std::process::Command::new(crate::bin());
    cmd.args(["run", "--from-snapshot", file.to_str().unwrap(), "--threads", "2", "--control", "tcp://127.0.0.1:0"]);
    cmd.args(["--out", out_f.to_str().unwrap()]).env("SPIKEBUS_PARALLEL_MIN_WORK", "0");
    let fork = Node::spawn(cmd);
    let mut c = Client::connect(fork.control.as_deref().unwrap());
    let hello = c.hello();
    assert_eq!((hello.t, hello.step), (at_snapshot.body.t, at_snapshot.body.step));
    assert_eq!(key(hello.pending.report()), key(&at_snapshot));
    let forked = run_until(&mut c, f64::INFINITY);
    assert_eq!(forked.iter().map(key).collect::<Vec<_>>(), original.iter().map(key).collect::<Vec<_>>());
    finish(&mut c, fork);
    let manifest: serde_json::Value = serde_json::from_slice(&read_file(&out_f, "manifest.json")).unwrap();
    assert_eq!(manifest["from_snapshot"], exported.hash.as_str());

    // The fork, free: the first run's rows after the snapshot's step.
    let out_g = tmp.path().join("g");
    let st = std::process::Command::new(crate::bin())
        .args(["run", "--from-snapshot", file.to_str().unwrap(), "--out", out_g.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let a = String::from_utf8(read_file(&tmp.path().join("a"), "traces.csv")).unwrap();
    let g = String::from_utf8(read_file(&out_g, "traces.csv")).unwrap();
    let skip = 1 + at_snapshot.body.step as usize + 1;
    let tail: Vec<&str> = a.lines().skip(skip).collect();
    let got: Vec<&str> = g.lines().skip(1).collect();
    assert!(!got.is_empty());
    assert_eq!(got, tail);

    // A damaged file is refused, saying why.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 1;
    let bad = tmp.path().join("bad.snap");
    std::fs::write(&bad, bytes).unwrap();
    let o = std::process::Command::new(crate::bin()).args(["run", "--from-snapshot", bad.to_str().unwrap(), "--out", "/dev/null"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("damaged"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The state hash does not depend on the thread count: the 200-cell network on 1 and 3
/// threads gives the same hashes in its reports and on the stream (`watch.hash_every`), and
/// the stream's hash at a reported step is the report's.
#[test]
fn the_state_hash_is_the_same_on_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let model = crate::golden::root().join("tests/models/network200.toml");
    let run = |threads: &str| {
        let out = tmp.path().join(threads);
        let node = Node::start(&[
            model.to_str().unwrap(), "--set", "tstop=30", "--threads", threads, "--control", "tcp://127.0.0.1:0",
            "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "1", "--out", out.to_str().unwrap(),
        ]);
        let ctx = zmq::Context::new();
        let sub = ctx.socket(zmq::SUB).unwrap();
        sub.set_rcvtimeo(30_000).unwrap();
        sub.connect(node.publish.as_deref().unwrap()).unwrap();
        sub.set_subscribe(b"hash").unwrap();
        sub.set_subscribe(b"done").unwrap();
        let mut c = Client::connect(node.control.as_deref().unwrap());
        c.hello();
        let hashes = Action::Watch(proto::Watch { hash: Some(true), hash_every: Some(100), ..Default::default() });
        let mut reports = vec![];
        let mut r = c.sync(vec![every(200), hashes]);
        loop {
            reports.push((r.body.step, r.body.hash.clone().unwrap()));
            if r.body.reasons.contains(&proto::Reason::End) {
                break;
            }
            r = c.sync(vec![]);
        }
        let done = finish(&mut c, node);
        assert_eq!(done.reason, proto::EndReason::End);
        let mut stream = vec![];
        loop {
            let parts = sub.recv_multipart(0).expect("a stream message");
            if parts[0] == b"done" {
                break;
            }
            let h: proto::HashPub = rmp_serde::from_slice(&parts[1]).unwrap();
            stream.push((h.step, h.hash));
        }
        (reports, stream)
    };
    let (r1, s1) = run("1");
    let (r3, s3) = run("3");
    let steps: Vec<u64> = s1.iter().map(|(s, _)| *s).collect();
    assert_eq!(steps, (0..=1200).step_by(100).collect::<Vec<u64>>(), "a hash every 100 steps");
    assert_eq!(r1, r3);
    assert_eq!(s1, s3);
    for (step, h) in &r1 {
        if let Some((_, sh)) = s1.iter().find(|(s, _)| s == step) {
            assert_eq!(sh, h, "step {step}: the stream's hash is not the report's");
        }
    }
    let distinct: std::collections::BTreeSet<&String> = s1.iter().map(|(_, h)| h).collect();
    assert_eq!(distinct.len(), s1.len(), "the state changes from one hash to the next");
}

/// Telemetry: with `watch.telemetry`, each report says how long the node waited for the
/// controller at the previous point and how long it then simulated; `done` carries the sums
/// and the number of exchanges. The controller thinks for 60 ms at one point: that shows as
/// the next report's `wait`, and in the total.
#[test]
fn reports_and_done_carry_telemetry() {
    let tmp = tempfile::tempdir().unwrap();
    let node = start(tmp.path(), &[]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.hello();
    let tel = Action::Watch(proto::Watch { telemetry: Some(true), ..Default::default() });
    let mut r = c.sync(vec![every(400), tel]);
    let mut reports = vec![r.clone()];
    let mut thought = false;
    while !r.body.reasons.contains(&proto::Reason::End) {
        if r.body.step == 800 {
            // The controller's own work between two exchanges (not a wait for a socket).
            std::thread::sleep(std::time::Duration::from_millis(60));
            thought = true;
        }
        r = c.sync(vec![]);
        reports.push(r.clone());
    }
    assert!(thought);
    for r in &reports {
        let t = r.body.telemetry.expect("telemetry in every report once watched");
        assert!(t.wait >= 0.0 && t.sim > 0.0, "{t:?}");
    }
    let after = reports.iter().find(|r| r.body.step == 1200).unwrap().body.telemetry.unwrap();
    assert!(after.wait >= 0.06, "the 60 ms the controller took: {after:?}");
    let done = match c.cont(vec![]) {
        Reply::Done(d) => d,
        r => panic!("{r:?}"),
    };
    assert_eq!(node.wait().0, Some(0));
    // The start point, then every report.
    assert_eq!(done.telemetry.exchanges, reports.len() as u64);
    assert!(done.telemetry.wait >= 0.06, "{:?}", done.telemetry);
    let sims: f64 = reports.iter().map(|r| r.body.telemetry.unwrap().sim).sum();
    // The sum of the reports' `sim`, and the last stretch (from the end point to `done`).
    assert!(done.telemetry.sim + 1e-9 >= sims && done.telemetry.sim < sims + 1.0, "{:?} vs {sims}", done.telemetry);
}
