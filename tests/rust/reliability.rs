//! Promises of the Reliability section of the README: signals stop cleanly, files are never
//! torn, a silent controller meets the declared timeout policy, start-up errors are one line
//! with exit 2, and only authenticated clients get in when the node is reachable remotely.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use spikebus_protocol::{self as proto, Reply};

use crate::cli::spikebus;
use crate::bus::on_both_transports;
use crate::node::{every, stop, Client, Kind, Node};

on_both_transports!(
    signal_while_waiting_for_a_controller,
    silent_controller_abort_policy_saves_what_was_recorded,
    silent_controller_continue_policy_finishes_the_run,
);

/// traces.csv is whole: every row has every column and parses; returns the row count.
fn whole_rows(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("traces.csv")).expect("traces.csv written");
    let mut lines = text.lines();
    let width = lines.next().unwrap().split(',').count();
    let mut n = 0;
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols.len(), width, "torn row {line:?}");
        assert!(cols.iter().all(|c| c.parse::<f64>().is_ok()), "bad row {line:?}");
        n += 1;
    }
    assert!(text.ends_with('\n'));
    n
}

fn subscribe(endpoint: &str) -> (zmq::Context, zmq::Socket) {
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_rcvtimeo(30_000).unwrap();
    sub.connect(endpoint).unwrap();
    sub.set_subscribe(b"").unwrap();
    (ctx, sub)
}

/// Receives stream messages until one of `topic`; returns its map.
fn until(sub: &zmq::Socket, topic: &[u8]) -> serde_json::Value {
    loop {
        let parts = sub.recv_multipart(0).expect("a stream message");
        if parts[0] == topic {
            return rmp_serde::from_slice(&parts[1]).unwrap();
        }
    }
}

fn signal_free_run(sig: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&[
        "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "1", "--set", "tstop=1e7", "--out", dir.path().to_str().unwrap(),
    ]);
    let (_ctx, sub) = subscribe(node.publish.as_deref().unwrap());
    // Running: a few hundred samples have streamed by.
    for _ in 0..300 {
        until(&sub, b"state");
    }
    node.signal(sig);
    let done = until(&sub, b"done");
    assert_eq!(done["reason"], "signal");
    let step = done["step"].as_u64().unwrap();
    assert!(step >= 299);
    let (status, _) = node.wait();
    assert_eq!(status, Some(code));
    assert_eq!(whole_rows(dir.path()) as u64, step + 1, "every sample up to the stopping step is written");
    assert!(dir.path().join("spikes.csv").exists());
}

#[test]
fn sigint_stops_at_a_step_boundary_and_writes_everything() {
    signal_free_run("INT", 130);
}

#[test]
fn sigterm_stops_at_a_step_boundary_and_writes_everything() {
    signal_free_run("TERM", 143);
}

fn signal_while_waiting_for_a_controller(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&["--control", &kind.control(dir.path()), "--out", dir.path().to_str().unwrap()]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    let r = c.sync(vec![every(100)]);
    let r = {
        let _ = r;
        c.sync(vec![])
    };
    assert_eq!(r.body.step, 100);
    node.signal("TERM");
    let (status, _) = node.wait();
    assert_eq!(status, Some(143));
    assert_eq!(whole_rows(dir.path()), 101);
}

#[test]
fn second_sigint_exits_at_once_and_leaves_no_torn_file() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&[
        "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "1", "--set", "tstop=1e7", "--out", dir.path().to_str().unwrap(),
    ]);
    let (_ctx, sub) = subscribe(node.publish.as_deref().unwrap());
    until(&sub, b"state");
    node.signal("INT");
    node.signal("INT");
    let (status, _) = node.wait();
    assert_eq!(status, Some(130));
    // Either the first signal finished writing (a whole file) or nothing has the final name.
    if dir.path().join("traces.csv").exists() {
        whole_rows(dir.path());
    }
}

fn silent_controller_abort_policy_saves_what_was_recorded(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&[
        "--control", &kind.control(dir.path()), "--sync-timeout", "0.5", "--on-timeout", "abort", "--out", dir.path().to_str().unwrap(),
    ]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    let r = c.sync(vec![every(40)]);
    assert_eq!(r.body.step, 0);
    let r = c.sync(vec![]);
    assert_eq!(r.body.step, 40);
    // ... and then the controller says nothing more.
    let (status, _) = node.wait();
    assert_eq!(status, Some(3));
    assert_eq!(whole_rows(dir.path()), 41);
}

fn silent_controller_continue_policy_finishes_the_run(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let free = tempfile::tempdir().unwrap();
    let node = Node::start(&[
        "--control", &kind.control(dir.path()), "--set", "tstop=50", "--sync-timeout", "0.3", "--on-timeout", "continue",
        "--out", dir.path().to_str().unwrap(),
    ]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.sync(vec![every(100)]);
    let (status, _) = node.wait();
    assert_eq!(status, Some(0));
    let out = spikebus().args(["run", "--set", "tstop=50", "--out"]).arg(free.path()).output().unwrap();
    assert!(out.status.success());
    for f in ["traces.csv", "spikes.csv"] {
        assert!(std::fs::read(dir.path().join(f)).unwrap() == std::fs::read(free.path().join(f)).unwrap(), "{f}");
    }
}

fn one_line_exit_2(args: &[&str]) -> String {
    let out = spikebus().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    err
}

#[test]
fn startup_errors_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    // A port in use.
    let ctx = zmq::Context::new();
    let holder = ctx.socket(zmq::REP).unwrap();
    holder.bind("tcp://127.0.0.1:0").unwrap();
    let taken = holder.get_last_endpoint().unwrap().unwrap();
    let err = one_line_exit_2(&["run", "--control", &taken, "--out", out]);
    assert!(err.contains("cannot bind") && err.contains(&taken), "{err}");
    // Bad endpoints.
    let err = one_line_exit_2(&["run", "--control", "udp://127.0.0.1:5", "--out", out]);
    assert!(err.contains("tcp://HOST:PORT or ipc:///PATH"), "{err}");
    let err = one_line_exit_2(&["run", "--pub", "tcp://127.0.0.1", "--out", out]);
    assert!(err.contains("needs a port"), "{err}");
    // Not loopback without the flag; the flag without credentials.
    let err = one_line_exit_2(&["run", "--control", "tcp://0.0.0.0:0", "--out", out]);
    assert!(err.contains("--allow-remote"), "{err}");
    let err = one_line_exit_2(&["run", "--allow-remote", "--control", "tcp://0.0.0.0:0", "--out", out]);
    assert!(err.contains("--auth-file"), "{err}");
    // Unreadable and invalid models.
    one_line_exit_2(&["run", "/nonexistent/model.toml", "--out", out]);
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[section.soma]\nL = -1\n").unwrap();
    let err = one_line_exit_2(&["run", bad.to_str().unwrap(), "--out", out]);
    assert!(err.contains("bad.toml:2: key `section.soma.L`"), "{err}");
    assert!(!dir.path().join("traces.csv").exists());
}

/// Bound to all interfaces (reached here over loopback), the node lets in only clients with
/// credentials from --auth-file; a refused client is named on stderr.
#[test]
fn remote_binding_requires_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("users");
    std::fs::write(&auth, "# who may steer\nalice:s3cret\n").unwrap();
    let mut node = Node::start_with(
        &[
            "--allow-remote", "--auth-file", auth.to_str().unwrap(), "--control", "tcp://0.0.0.0:0", "--set", "tstop=1",
            "--out", dir.path().join("o").to_str().unwrap(),
        ],
        Stdio::piped(),
    );
    let port = node.control.as_deref().unwrap().rsplit(':').next().unwrap().to_string();
    let ep = format!("tcp://127.0.0.1:{port}");
    let mut stderr = BufReader::new(node.child.stderr.take().unwrap());
    let hello = proto::encode(&proto::Request::Hello(proto::Hello { id: Some(1), protocol: proto::PROTOCOL_VERSION, ..Default::default() }));

    // Wrong password: no answer, and the node says whom it refused.
    let intruder = Client::connect_as(&ep, Some(("alice", "guess")));
    let mut line = String::new();
    std::thread::spawn({
        let hello = hello.clone();
        move || {
            let _ = intruder.try_raw(&hello, 3000);
        }
    });
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("auth: refused PLAIN user \"alice\""), "{line}");
    // No credentials at all (NULL mechanism) against a PLAIN server: never answered either.
    let anonymous = Client::connect(&ep);
    assert!(anonymous.try_raw(&hello, 500).is_none(), "an anonymous client got an answer");

    // The right credentials: served.
    let mut friend = Client::connect_as(&ep, Some(("alice", "s3cret")));
    assert!(matches!(friend.raw(&hello), Reply::Hello(_)));
    let r = friend.sync(vec![every(10)]);
    assert_eq!(r.body.step, 0);
    assert!(matches!(friend.cont(vec![stop()]), Reply::Done(_)));
    drop((friend, anonymous));
    assert_eq!(node.wait().0, Some(0));
}

#[test]
fn auth_file_errors_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("users");
    std::fs::write(&auth, "nopassword\n").unwrap();
    let err = one_line_exit_2(&["run", "--auth-file", auth.to_str().unwrap(), "--control", "tcp://127.0.0.1:0", "--out", dir.path().to_str().unwrap()]);
    assert!(err.contains("users:1: expected user:password"), "{err}");
}

