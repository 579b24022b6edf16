//! `--control-log` and `spikebus replay`, against the real binary: a steered session (sets,
//! events, schedule changes, snapshots and restores) replayed without a controller writes the
//! same files bit for bit, on another thread count too; a replay of a log whose requests were
//! altered names the first step whose state differs and exits 7.

use std::path::Path;
use std::process::Command;

use spikebus_protocol::{self as proto, Action, Reply};

use crate::node::{event, every, read_file, set, Client, Node};

/// A session worth replaying; returns the step of the sync point where `ns.interval` was set
/// to 7 (the request the divergence test alters).
fn steered_session(out: &Path, log: &Path) -> u64 {
    let node = Node::start(&[
        "--control", "tcp://127.0.0.1:0", "--out", out.to_str().unwrap(), "--control-log", log.to_str().unwrap(),
        "--set", "tstop=40", "--set", "ns.noise=0.3", "--set", "nc.delay=1.5",
    ]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.hello();
    let watch = Action::Watch(proto::Watch { values: Some(vec!["soma.v".into()]), hash: Some(true), ..Default::default() });
    let mut r = c.sync(vec![every(40), watch]);
    let mut set_at = 0;
    let mut restored = false;
    loop {
        if r.body.reasons.contains(&proto::Reason::End) {
            assert!(matches!(c.cont(vec![]), Reply::Done(_)));
            break;
        }
        let t = r.body.t;
        let actions = match r.body.step {
            200 => vec![set("ns.interval", 7.0), event("syn", t + 0.3, Some(0.05))],
            400 => vec![Action::Snapshot(proto::Snapshot {}), set("syn.tau", 4.0)],
            600 if !restored => {
                restored = true;
                vec![Action::Restore(proto::Restore { id: 0 })]
            }
            800 => vec![Action::Schedule(proto::Schedule { every: Some(60), ..Default::default() })],
            _ => vec![],
        };
        if r.body.step == 200 {
            set_at = r.body.step;
        }
        r = c.sync(actions);
    }
    assert_eq!(node.wait().0, Some(0));
    set_at
}

fn replay(log: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    // `--threads` steps on those threads even for this small model.
    let mut cmd = Command::new(crate::bin());
    cmd.arg("replay").arg(log).arg("--out").arg(out).args(extra).env("SPIKEBUS_PARALLEL_MIN_WORK", "0");
    cmd.output().unwrap()
}

#[test]
fn a_replay_writes_the_same_files_and_names_where_it_diverges() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, log) = (tmp.path().join("run"), tmp.path().join("session.log"));
    let set_at = steered_session(&out, &log);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 1600, "a hash per step and the requests");
    for (name, extra) in [("r1", &[][..]), ("r3", &["--threads", "3"][..])] {
        let o = replay(&log, &tmp.path().join(name), extra);
        assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
        let said = String::from_utf8_lossy(&o.stdout);
        let compared: usize = said.split(": ").nth(2).and_then(|w| w.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
        assert!(compared > 1600, "{said}");
        for f in ["traces.csv", "spikes.csv"] {
            assert!(read_file(&out, f) == read_file(&tmp.path().join(name), f), "{name}: {f} differs from the session's");
        }
    }

    // The session's `set ns.interval 7` altered to 7.5: the state differs from the next step on.
    let altered: String = text
        .lines()
        .map(|l| if l.contains("\"apply\"") && l.contains("\"ns.interval\"") { l.replace("\"value\":7.0", "\"value\":7.5") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(altered, text.trim_end());
    let bad_log = tmp.path().join("altered.log");
    std::fs::write(&bad_log, altered).unwrap();
    let o = replay(&bad_log, &tmp.path().join("bad"), &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(err.contains(&format!("diverges at step {}", set_at + 1)), "{err}");
    assert!(err.contains(&format!("it was the same at step {set_at}")), "{err}");
    let manifest: serde_json::Value = serde_json::from_slice(&read_file(&tmp.path().join("bad"), "manifest.json")).unwrap();
    assert_eq!(manifest["reason"], "diverged");
}

/// A session that ended between sync points (a step delivered more events than
/// --max-events-per-step: the engine's own limit, so the same step in any run): the log's
/// `end` counts the pauses after the last sync point, and the replay ends at the same step
/// with the same files.
#[test]
fn a_replay_ends_where_the_session_ended_between_sync_points() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, log) = (tmp.path().join("run"), tmp.path().join("session.log"));
    let node = Node::start(&[
        "--control", "tcp://127.0.0.1:0", "--out", out.to_str().unwrap(), "--control-log", log.to_str().unwrap(),
        "--set", "tstop=40", "--max-events-per-step", "6",
    ]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.hello();
    let mut r = c.cont(vec![every(400), set("nc.weight", 0.2)]);
    let mut points = 0;
    let done = loop {
        match r {
            Reply::Sync(s) => {
                points += 1;
                // From the third point on, the NetStim fires every 0.004 ms: a step holds more
                // events than the limit, some steps after the sync point.
                let faster = if points == 3 { vec![set("ns.interval", 0.004), set("ns.start", s.body.t + 0.3)] } else { vec![] };
                r = c.cont(faster);
            }
            Reply::Done(d) => break d,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(done.reason, proto::EndReason::Limit);
    assert_eq!(node.wait().0, Some(5));
    let text = std::fs::read_to_string(&log).unwrap();
    let end = text.lines().last().unwrap();
    assert!(end.contains("\"end\"") && end.contains("\"limit\"") && !end.contains("\"pauses\":0"), "{end}");
    let o = replay(&log, &tmp.path().join("r"), &[]);
    assert_eq!(o.status.code(), Some(5), "{}", String::from_utf8_lossy(&o.stderr));
    for f in ["traces.csv", "spikes.csv"] {
        assert!(read_file(&out, f) == read_file(&tmp.path().join("r"), f), "{f} differs from the session's");
    }
}
