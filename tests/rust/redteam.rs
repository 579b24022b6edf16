//! The red team's findings (issue 8), each replayed so it stays fixed: what a hostile local
//! user or an unlucky one did to the node, on loopback and ipc only, bounded in count and time.
//! `SPIKEBUS_BIN=<an older build> cargo test --release --test integration redteam` shows them
//! failing on a build from before the fixes.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use spikebus_protocol::{self as proto, ErrorCode, Reply};

use crate::cli::spikebus;
use crate::node::{every, set, watch, Client, Node};

/// Runs `spikebus ARGS` that must fail at start-up: exit 2, one line on stderr, no
/// `listening` line, and nothing written to `out` (when given).
pub(crate) fn refused_at_startup(args: &[&str], out: Option<&Path>) -> String {
    let o = spikebus().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"), "{args:?} listened first");
    if let Some(out) = out {
        let left: Vec<_> = std::fs::read_dir(out).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{args:?} left {left:?} in --out");
    }
    err
}

/// The node's peak resident memory so far, in KiB (VmHWM).
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

pub(crate) fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn sub_socket(ctx: &zmq::Context, endpoint: &str, topic: &[u8]) -> zmq::Socket {
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_rcvtimeo(30_000).unwrap();
    sub.connect(endpoint).unwrap();
    sub.set_subscribe(topic).unwrap();
    sub
}

/// 1. An abstract ipc name has no file permissions: refused unless clients authenticate.
#[test]
fn abstract_ipc_names_need_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let name = format!("ipc://@spikebus-redteam-{}", std::process::id());
    for opt in ["--control", "--pub"] {
        let err = refused_at_startup(&["run", opt, &name, "--out", out.to_str().unwrap()], Some(&out));
        assert!(err.contains("abstract") && err.contains("--auth-file"), "{err}");
    }
    let auth = dir.path().join("users");
    std::fs::write(&auth, "alice:s3cret\n").unwrap();
    let node = Node::start(&["--control", &name, "--auth-file", auth.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(node.control.as_deref(), Some(name.as_str()));
}

/// 2. A live ipc endpoint is never taken over; one socket's endpoint is not the other's.
#[test]
fn a_live_ipc_endpoint_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let ep = format!("ipc://{}", dir.path().join("ctl").display());
    let first = Node::start(&["--control", &ep, "--out", dir.path().join("a").to_str().unwrap()]);
    let out_b = dir.path().join("b");
    let err = refused_at_startup(&["run", "--control", &ep, "--out", out_b.to_str().unwrap()], Some(&out_b));
    assert!(err.contains("in use"), "{err}");
    // The first node still answers on its endpoint.
    let mut c = Client::connect(&ep);
    assert_eq!(c.hello().step, 0);
    drop(first);
    let both = format!("ipc://{}", dir.path().join("both").display());
    let err = refused_at_startup(&["run", "--control", &both, "--pub", &both, "--out", out_b.to_str().unwrap()], Some(&out_b));
    assert!(err.contains("its own endpoint"), "{err}");
    // A stale socket file (nobody listening) is reused.
    let node = Node::start(&["--control", &ep, "--out", dir.path().join("c").to_str().unwrap()]);
    assert_eq!(node.control.as_deref(), Some(ep.as_str()));
}

/// 3. A write error in a controlled run (the disk fills up; here a 256 KiB file size limit)
///    is reported at the next exchange: `done` with reason `io_error` naming the file and the
///    OS error, on the stream too; exit 4; the manifest says the run is incomplete.
#[test]
fn a_write_error_ends_the_run_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let mut cmd = Command::new(crate::bin());
    cmd.args(["run", "--control", "tcp://127.0.0.1:0", "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "1"]);
    cmd.args(["--set", "soma.threshold=0", "--out", out.to_str().unwrap()]);
    cmd.stderr(Stdio::piped());
    // SAFETY: async-signal-safe calls only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 256 << 10, rlim_max: 256 << 10 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            // Without SIGXFSZ the write fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut node = Node::spawn(cmd);
    let ctx = zmq::Context::new();
    let sub = sub_socket(&ctx, node.publish.as_deref().unwrap(), b"done");
    let mut c = Client::connect(node.control.as_deref().unwrap());
    let mut r = c.cont(vec![every(100)]);
    let mut syncs = 0;
    while let Reply::Sync(_) = r {
        syncs += 1;
        assert!(syncs < 400, "the run went on to the end");
        r = c.cont(vec![]);
    }
    let Reply::Done(done) = r else { panic!("{r:?}") };
    assert_eq!(done.reason, proto::EndReason::IoError);
    let msg = done.error.expect("done names the error");
    assert!(msg.contains("traces.csv.partial") && msg.contains("os error"), "{msg}");
    let parts = sub.recv_multipart(0).expect("done on the stream");
    let pub_done: serde_json::Value = rmp_serde::from_slice(&parts[1]).unwrap();
    assert_eq!(pub_done["reason"], "io_error");
    drop(c);
    let mut stderr = String::new();
    node.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let (code, _) = node.wait();
    assert_eq!(code, Some(4), "{stderr}");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["complete"], false);
    assert_eq!(manifest["reason"], "io_error");
    assert!(manifest["files"].get("traces.csv").is_none());
}

/// 3b. An --out that cannot be written fails before anything is bound.
#[test]
fn an_unwritable_out_fails_before_listening() {
    let err = refused_at_startup(&["run", "--control", "tcp://127.0.0.1:0", "--out", "/proc/spikebus-redteam/out"], None);
    assert!(err.contains("/proc/spikebus-redteam"), "{err}");
}

/// 4. Start-up values that crashed the node (a panic, an abort on an 8 TB allocation) or left
///    files behind are refused before anything is bound or written.
#[test]
fn startup_values_are_checked_before_anything_happens() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    for args in [
        &["run", "--control", "tcp://127.0.0.1:0", "--sync-timeout", "1e300", "--out", o][..],
        &["run", "--control", "tcp://127.0.0.1:0", "--sync-timeout=-1", "--out", o],
        &["run", "--control", "tcp://127.0.0.1:0", "--linger", "1e30", "--out", o],
        &["run", "--pub", "tcp://127.0.0.1:0", "--pub-batch", "18446744073709551615", "--out", o],
        &["run", "--pub", "tcp://127.0.0.1:0", "--pub-batch", "1000000000000", "--out", o],
        &["run", "--control", "tcp://127.0.0.1:0", "--max-message", "1", "--out", o],
        &["run", "--set", "dt=1e-300", "--out", o],
        &["run", "--set", "tstop=1e300", "--out", o],
    ] {
        refused_at_startup(args, Some(&out));
    }
}

/// 5. The documented loopback addresses work.
#[test]
fn documented_loopback_addresses_bind() {
    let dir = tempfile::tempdir().unwrap();
    let has_ipv6_loopback = std::fs::read_to_string("/proc/net/if_inet6").is_ok_and(|t| t.lines().any(|l| l.ends_with(" lo")));
    for ep in ["tcp://localhost:0", "tcp://[::1]:0"] {
        if ep.contains("::1") && !has_ipv6_loopback {
            // Without ::1 the node must say so (exit 2), not pretend.
            let err = refused_at_startup(&["run", "--control", ep, "--out", dir.path().to_str().unwrap()], None);
            assert!(err.contains("cannot bind"), "{err}");
            continue;
        }
        let node = Node::start(&["--control", ep, "--out", dir.path().join(&ep[6..10]).to_str().unwrap()]);
        let bound = node.control.clone().unwrap();
        let mut c = Client::connect(&bound);
        if ep.contains("::1") {
            // The client side needs IPv6 too.
            assert!(bound.starts_with("tcp://[::1]:"), "{bound}");
        }
        assert_eq!(c.hello().step, 0, "{ep} -> {bound}");
    }
}

/// 6. --max-message bounds memory: a huge request costs its connection, not the node's RAM,
///    and a request a little too long still gets `too_large`.
#[test]
fn oversized_requests_do_not_take_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&["--control", "tcp://127.0.0.1:0", "--max-message", "1048576", "--out", dir.path().to_str().unwrap()]);
    let ep = node.control.clone().unwrap();
    let pid = node.child.id();
    let c = Client::connect(&ep);
    match c.raw(&vec![0x80u8; 1_500_000]) {
        Reply::Error(e) => assert_eq!(e.code, ErrorCode::TooLarge),
        r => panic!("{r:?}"),
    }
    let before = peak_rss_kib(pid);
    let huge = Client::connect(&ep);
    assert!(huge.try_raw(&vec![0x80u8; 256 << 20], 2000).is_none(), "a 256 MiB request was read");
    let after = peak_rss_kib(pid);
    assert!(after < before + 32 * 1024, "peak RSS {before} KiB -> {after} KiB");
    // Still serving.
    let mut ok = Client::connect(&ep);
    assert_eq!(ok.hello().step, 0);
}

/// 7. Subscriptions do not grow the node's memory: topics that are not prefixes of the
///    node's are not kept, a subscription longer than any topic closes its connection, and a
///    subscription repeated is one.
#[test]
fn subscriptions_do_not_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&[
        "--control", "tcp://127.0.0.1:0", "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "1",
        "--out", dir.path().to_str().unwrap(),
    ]);
    let pid = node.child.id();
    let ctx = zmq::Context::new();
    // The handshake subscriber, so that the run (and its draining of subscriptions) starts.
    let watcher = sub_socket(&ctx, node.publish.as_deref().unwrap(), b"sync");
    let greedy = ctx.socket(zmq::SUB).unwrap();
    greedy.connect(node.publish.as_deref().unwrap()).unwrap();
    for i in 0..300u32 {
        let mut topic = vec![b'x'; 64 << 10];
        topic[..4].copy_from_slice(&i.to_le_bytes());
        greedy.set_subscribe(&topic).unwrap();
    }
    let repeat = ctx.socket(zmq::SUB).unwrap();
    repeat.connect(node.publish.as_deref().unwrap()).unwrap();
    for _ in 0..2000 {
        repeat.set_subscribe(b"state").unwrap();
    }
    let base = rss_kib(pid);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    let mut r = c.cont(vec![every(200)]);
    while let Reply::Sync(s) = &r {
        if s.body.reasons.contains(&proto::Reason::End) {
            break;
        }
        r = c.cont(vec![]);
    }
    let grown = rss_kib(pid).saturating_sub(base);
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB with 300 x 64 KiB and 2000 repeated subscriptions");
    assert!(watcher.recv_multipart(0).is_ok(), "the handshake subscriber got nothing");
}

/// 8. A stuck subscriber loses its own messages only: a healthy one gets every message (no
///    gap in seq) and `done`. (The stuck one fills its queue of --pub-hwm = 100,000 messages
///    halfway through the run's 200,000.)
#[test]
fn a_stuck_subscriber_blinds_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&[
        "--pub", "tcp://127.0.0.1:0", "--wait-subscribers", "2", "--set", "tstop=5000", "--record", "soma.v",
        "--out", dir.path().to_str().unwrap(),
    ]);
    let ep = node.publish.clone().unwrap();
    let ctx = zmq::Context::new();
    let stuck = ctx.socket(zmq::SUB).unwrap();
    stuck.set_rcvhwm(10).unwrap();
    stuck.connect(&ep).unwrap();
    stuck.set_subscribe(b"").unwrap();
    // The healthy subscriber takes everything into its own queue as fast as it comes.
    let healthy = ctx.socket(zmq::SUB).unwrap();
    healthy.set_rcvhwm(0).unwrap();
    healthy.set_rcvtimeo(30_000).unwrap();
    healthy.connect(&ep).unwrap();
    healthy.set_subscribe(b"").unwrap();
    let mut seq = 0u64;
    loop {
        let parts = healthy.recv_multipart(0).expect("the healthy subscriber keeps receiving");
        let m: serde_json::Value = rmp_serde::from_slice(&parts[1]).unwrap();
        assert_eq!(m["seq"].as_u64(), Some(seq), "a gap for the healthy subscriber");
        seq += 1;
        if parts[0] == b"done" {
            break;
        }
    }
    assert!(seq > 200_000, "{seq} messages");
    drop(stuck);
}

/// 9. Outputs are crash-consistent: an earlier run's files are gone once a run starts, and a
///    run's files are complete exactly when manifest.json is there with their digests.
#[test]
fn outputs_are_crash_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    std::fs::create_dir(&out).unwrap();
    for f in ["traces.csv", "spikes.csv", "manifest.json", "traces.csv.partial"] {
        std::fs::write(out.join(f), "an earlier run\n").unwrap();
    }
    // Killed mid-run: no manifest, and nothing of the earlier run.
    let node = Node::start(&["--control", "tcp://127.0.0.1:0", "--out", out.to_str().unwrap()]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    c.sync(vec![every(40)]);
    c.sync(vec![]);
    drop(node);
    let left: Vec<String> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(left, ["traces.csv.partial"], "after a crash");
    assert!(!std::fs::read_to_string(out.join("traces.csv.partial")).unwrap().contains("earlier"));
    // A complete run: the manifest, written last, holds each file's length and SHA-256.
    let o = spikebus().args(["run", "--set", "tstop=5", "--set", "soma.threshold=0", "--out"]).arg(&out).output().unwrap();
    assert!(o.status.success());
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["complete"], true);
    assert_eq!(manifest["reason"], "end");
    assert_eq!(manifest["set"], serde_json::json!(["tstop=5", "soma.threshold=0"]));
    for f in ["traces.csv", "spikes.csv"] {
        let bytes = std::fs::read(out.join(f)).unwrap();
        assert_eq!(manifest["files"][f]["bytes"], bytes.len());
        assert_eq!(manifest["files"][f]["sha256"], format!("{:x}", Sha256::digest(&bytes)), "{f}");
    }
}

/// 10. Well-formed but hostile values: refused when they can be seen to exceed a limit,
///     bounded when they cannot; a signal is honoured inside a storm of events.
#[test]
fn hostile_values_are_refused_or_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(&["--control", "tcp://127.0.0.1:0", "--max-events-per-step", "100000", "--out", dir.path().to_str().unwrap()]);
    let mut c = Client::connect(node.control.as_deref().unwrap());
    for (name, value) in [("dt", 1e-300), ("tstop", 1e300)] {
        match c.cont(vec![set(name, value)]) {
            Reply::Error(e) => assert_eq!((e.code, e.field.as_deref()), (ErrorCode::InvalidValue, Some("actions[0].value"))),
            r => panic!("{name}={value} accepted: {r:?}"),
        }
    }
    let names: Vec<String> = (0..100_000).map(|_| "soma.v".to_string()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    match c.cont(vec![watch(&refs)]) {
        Reply::Error(e) => assert_eq!((e.code, e.field.as_deref()), (ErrorCode::TooLarge, Some("actions[0].values"))),
        r => panic!("a watch of 100,000 names: {r:?}"),
    }
    // A storm: NetStim spikes every 1e-9 ms. The run ends at the limit, promptly.
    let started = Instant::now();
    match c.cont(vec![set("ns.interval", 1e-9)]) {
        Reply::Done(d) => {
            assert_eq!(d.reason, proto::EndReason::Limit);
            assert!(d.error.unwrap().contains("--max-events-per-step"));
        }
        r => panic!("{r:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(c);
    assert_eq!(node.wait().0, Some(5));

    // The same storm without that limit: SIGTERM ends it within a moment.
    let node = Node::start(&[
        "--control", "tcp://127.0.0.1:0", "--max-events-per-step", "1000000000000", "--record", "soma.v",
        "--out", dir.path().join("b").to_str().unwrap(),
    ]);
    let ep = node.control.clone().unwrap();
    let storm = std::thread::spawn(move || {
        let c = Client::connect(&ep);
        let bytes = proto::encode(&proto::Request::Continue(proto::Continue {
            id: Some(1),
            client: None,
            actions: vec![set("ns.interval", 1e-9), set("ns.start", 1.0)],
        }));
        c.try_raw(&bytes, 30_000)
    });
    // Wait until the node is busy delivering (its CPU time grows), then signal it.
    let stat = |pid: u32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    let pid = node.child.id();
    let t0 = stat(pid);
    let deadline = Instant::now() + Duration::from_secs(20);
    while stat(pid) < t0 + 20 {
        assert!(Instant::now() < deadline, "the storm never started");
        std::thread::yield_now();
    }
    let signalled = Instant::now();
    node.signal("TERM");
    let (code, _) = node.wait();
    let took = signalled.elapsed();
    assert_eq!(code, Some(143));
    // Stopping takes a moment; writing the millions of spikes of the storm to spikes.csv
    // takes the rest.
    assert!(took < Duration::from_secs(3), "SIGTERM took {took:?} in a storm");
    let reply = storm.join().unwrap();
    assert!(matches!(reply, Some(Reply::Done(ref d)) if d.reason == proto::EndReason::Signal), "{reply:?}");
}

/// 11. A client refused at the handshake is named on stderr (one with a wrong password by the
///     authentication handler, with its user name; one without credentials too).
#[test]
fn refused_clients_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let auth = dir.path().join("users");
    std::fs::write(&auth, "alice:s3cret\n").unwrap();
    let mut node = Node::start_with(
        &["--control", "tcp://127.0.0.1:0", "--auth-file", auth.to_str().unwrap(), "--out", dir.path().join("o").to_str().unwrap()],
        Stdio::piped(),
    );
    let ep = node.control.clone().unwrap();
    let mut stderr = BufReader::new(node.child.stderr.take().unwrap());
    let hello = proto::encode(&proto::Request::Hello(proto::Hello { id: Some(1), protocol: 2, ..Default::default() }));
    let anonymous = Client::connect(&ep);
    assert!(anonymous.try_raw(&hello, 300).is_none());
    // The node names it once it reads its connection events (when idle, within 100 ms).
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("refused a client of") && line.contains(&ep), "{line}");
}
