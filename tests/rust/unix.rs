//! The unix:// control transport as a hostile or unlucky local client meets it: its framing
//! at the edges (split, pipelined, empty, oversized, abandoned frames), peers that stall or
//! never read, too many connections, the socket file (mode, a live endpoint never taken over,
//! stale files replaced, nothing else touched), and what it refuses at start-up. The protocol
//! itself runs on this transport in every test of `bus` and `reliability` (`NAME::unix`).

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spikebus_protocol::{self as proto, ErrorCode, Reason, Reply, Request};

use crate::node::{every, frame, read_frame, stop, unix_endpoint, Client, Node};
use crate::redteam::{peak_rss_kib, refused_at_startup, rss_kib};

const TIMEOUT: Duration = Duration::from_secs(30);

fn connect(ep: &str) -> UnixStream {
    let s = UnixStream::connect(ep.strip_prefix("unix://").unwrap()).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

fn hello_bytes(id: u64) -> Vec<u8> {
    proto::encode(&Request::Hello(proto::Hello { id: Some(id), protocol: 2, ..Default::default() }))
}

fn decode(bytes: &[u8]) -> Reply {
    rmp_serde::from_slice(bytes).expect("a reply decodes")
}

/// Whether the node has closed `s`: a read sees the end of the stream (or a reset).
fn closed_by_node(s: &mut UnixStream) -> bool {
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Ok(0) => true,
        Err(e) => e.kind() == ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

/// Start-up: abstract names (no file permissions, and no authentication on this transport),
/// --auth-file with a unix control channel, a unix stream, one path for both sockets, paths
/// that cannot be socket addresses: each refused, exit 2, one line, nothing written.
#[test]
fn what_unix_endpoints_refuse_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o");
    let o = out.to_str().unwrap();
    let auth = dir.path().join("users");
    std::fs::write(&auth, "alice:s3cret\n").unwrap();
    let ep = unix_endpoint(dir.path(), "ctl");
    let ipc_same = format!("ipc://{}", ep.strip_prefix("unix://").unwrap());
    let long = format!("unix:///tmp/{}", "x".repeat(120));
    for (args, says) in [
        (vec!["run", "--control", "unix://@spikebus-abstract", "--out", o], "abstract"),
        (vec!["run", "--control", "unix://@spikebus-abstract", "--auth-file", auth.to_str().unwrap(), "--out", o], "abstract"),
        (vec!["run", "--control", &ep, "--auth-file", auth.to_str().unwrap(), "--out", o], "no authentication"),
        (vec!["run", "--pub", &ep, "--out", o], "control channel only"),
        (vec!["run", "--control", &ep, "--pub", &ipc_same, "--out", o], "the same path"),
        (vec!["run", "--control", "unix://", "--out", o], "needs a path"),
        (vec!["run", "--control", &long, "--out", o], "at most 107"),
    ] {
        let err = refused_at_startup(&args, Some(&out));
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!dir.path().join("ctl.sock").exists());
}

/// The socket file is created 0600 whatever the umask (only the node's user may connect),
/// and removed when the node exits.
#[test]
fn the_socket_file_is_private_and_removed_at_exit() {
    let dir = tempfile::tempdir().unwrap();
    let ep = unix_endpoint(dir.path(), "ctl");
    let path = dir.path().join("ctl.sock");
    let mut cmd = Command::new(crate::bin());
    cmd.args(["run", "--control", &ep, "--set", "tstop=1", "--out", dir.path().join("o").to_str().unwrap()]);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let node = Node::spawn(cmd);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode {:o}", meta.permissions().mode());
    let c = Client::connect(&ep);
    assert!(matches!(c.raw(&proto::encode(&Request::Continue(proto::Continue { actions: vec![stop()], ..Default::default() }))), Reply::Done(_)));
    drop(c);
    assert_eq!(node.wait().0, Some(0));
    assert!(!path.exists(), "the socket file outlived the node");
}

/// A live endpoint (a unix node's, or a ZeroMQ ipc node's on the same path) is never taken
/// over; a stale socket file is replaced; a file that is not a socket is left alone.
#[test]
fn a_live_unix_endpoint_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let o = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let ep = unix_endpoint(dir.path(), "ctl");
    let path = dir.path().join("ctl.sock");
    let first = Node::start(&["--control", &ep, "--out", &o("a")]);
    let err = refused_at_startup(&["run", "--control", &ep, "--out", &o("b")], Some(&dir.path().join("b")));
    assert!(err.contains("in use"), "{err}");
    let ipc = format!("ipc://{}", path.display());
    let err = refused_at_startup(&["run", "--control", &ipc, "--out", &o("b")], Some(&dir.path().join("b")));
    assert!(err.contains("in use"), "{err}");
    // The first node still answers on its endpoint.
    let mut c = Client::connect(&ep);
    assert_eq!(c.hello().step, 0);
    drop((c, first));

    // A ZeroMQ node's live ipc endpoint is not taken by a unix one either.
    let zmq_path = dir.path().join("zmq.sock");
    let zmq_node = Node::start(&["--control", &format!("ipc://{}", zmq_path.display()), "--out", &o("c")]);
    let err = refused_at_startup(
        &["run", "--control", &format!("unix://{}", zmq_path.display()), "--out", &o("d")],
        Some(&dir.path().join("d")),
    );
    assert!(err.contains("in use"), "{err}");
    drop(zmq_node);

    // A stale socket file: the first node was killed (SIGKILL), its file left behind.
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    let node = Node::start(&["--control", &ep, "--out", &o("e")]);
    let mut c = Client::connect(&ep);
    assert_eq!(c.hello().step, 0);
    drop((c, node));

    // Not a socket: refused, and the file is untouched.
    let plain = dir.path().join("notes.txt");
    std::fs::write(&plain, "mine\n").unwrap();
    let err = refused_at_startup(
        &["run", "--control", &format!("unix://{}", plain.display()), "--out", &o("f")],
        Some(&dir.path().join("f")),
    );
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&plain).unwrap(), "mine\n");
}

/// Frames at their edges: a request split into single bytes (each sent alone), several
/// requests in one write (answered in order, one reply each), an empty frame (bad_message),
/// a frame over --max-message but within twice it (read, too_large), and a request whose
/// sender closes at once after it (still carried out).
#[test]
fn frames_split_pipelined_and_empty() {
    let dir = tempfile::tempdir().unwrap();
    let ep = unix_endpoint(dir.path(), "ctl");
    let node = Node::start(&["--control", &ep, "--max-message", "4096", "--set", "tstop=5", "--out", dir.path().join("o").to_str().unwrap()]);
    let mut s = connect(&ep);
    for b in frame(&hello_bytes(1)) {
        s.write_all(&[b]).unwrap();
        s.flush().unwrap();
    }
    assert!(matches!(decode(&read_frame(&mut s).unwrap()), Reply::Hello(h) if h.id == Some(1)));

    let cont = |id: u64, actions: Vec<proto::Action>| {
        proto::encode(&Request::Continue(proto::Continue { id: Some(id), client: Some("pipe".into()), actions }))
    };
    let mut burst = frame(&cont(10, vec![every(1)]));
    burst.extend(frame(&cont(11, vec![])));
    burst.extend(frame(b""));
    burst.extend(frame(&cont(12, vec![])));
    s.write_all(&burst).unwrap();
    let replies: Vec<Reply> = (0..4).map(|_| decode(&read_frame(&mut s).unwrap())).collect();
    let steps: Vec<Option<u64>> = replies.iter().map(|r| if let Reply::Sync(x) = r { Some(x.body.step) } else { None }).collect();
    assert_eq!(steps, [Some(0), Some(1), None, Some(2)], "{replies:?}");
    assert!(matches!(&replies[2], Reply::Error(e) if e.code == ErrorCode::BadMessage && e.id.is_none()), "{:?}", replies[2]);

    let big = vec![0x80u8; 6000];
    s.write_all(&frame(&big)).unwrap();
    assert!(matches!(decode(&read_frame(&mut s).unwrap()), Reply::Error(e) if e.code == ErrorCode::TooLarge));
    // Still in step.
    s.write_all(&frame(&hello_bytes(2))).unwrap();
    assert!(matches!(decode(&read_frame(&mut s).unwrap()), Reply::Hello(h) if h.id == Some(2) && h.step == 2));
    drop(s);

    // Fire and forget: the stop is carried out though its sender never reads the reply.
    let mut last = connect(&ep);
    last.write_all(&frame(&cont(13, vec![stop()]))).unwrap();
    drop(last);
    let (code, stdout) = node.wait();
    assert_eq!(code, Some(0));
    assert!(stdout.contains("2 steps"), "{stdout}");
}

/// --max-message bounds memory: a frame announcing more than twice the limit closes its
/// connection before its body is read (the node's peak RSS does not grow by it); others are
/// served throughout.
#[test]
fn oversized_frames_cost_the_connection_not_memory() {
    let dir = tempfile::tempdir().unwrap();
    let ep = unix_endpoint(dir.path(), "ctl");
    let mut node = Node::start_with(
        &["--control", &ep, "--max-message", "1048576", "--out", dir.path().join("o").to_str().unwrap()],
        Stdio::piped(),
    );
    let pid = node.child.id();
    let c = Client::connect(&ep);
    assert!(matches!(c.raw(&vec![0x80u8; 1_500_000]), Reply::Error(e) if e.code == ErrorCode::TooLarge));
    let before = peak_rss_kib(pid);
    for announced in [(2u32 << 20) + 1, 256 << 20, u32::MAX] {
        let mut s = connect(&ep);
        s.write_all(&announced.to_be_bytes()).unwrap();
        // The body, as far as the node lets it in: it closes the connection instead.
        let chunk = vec![0x80u8; 1 << 20];
        let mut sent = 0usize;
        while sent < 64 << 20 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        assert!(sent < 64 << 20, "the node read 64 MiB of a frame announcing {announced} bytes");
        assert!(closed_by_node(&mut s), "a frame announcing {announced} bytes");
    }
    assert!(peak_rss_kib(pid) < before + 8 * 1024, "peak RSS {before} KiB -> {} KiB", peak_rss_kib(pid));
    let mut ok = Client::connect(&ep);
    assert_eq!(ok.hello().step, 0);
    drop((c, ok));
    node.signal("TERM");
    let mut stderr = String::new();
    node.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert_eq!(stderr.matches("is over the limit of 2097152").count(), 3, "{stderr}");
}

/// Peers that stall do not stall the node: one sends half a header, one half a frame, one
/// sends 40,000 hellos and never reads a reply (their replies are about 75 MB). A
/// controller meanwhile runs to `done`; the node's memory stays bounded (it reads a
/// connection's next request only once its reply is written); then the reader-less peer reads
/// and finds exactly one reply per request, in order.
#[test]
fn stalled_peers_block_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let ep = unix_endpoint(dir.path(), "ctl");
    let node = Node::start(&["--control", &ep, "--set", "tstop=20", "--out", dir.path().join("o").to_str().unwrap()]);
    let pid = node.child.id();
    let mut half_header = connect(&ep);
    half_header.write_all(&[0, 0]).unwrap();
    let mut half_frame = connect(&ep);
    let f = frame(&hello_bytes(7));
    half_frame.write_all(&f[..f.len() / 2]).unwrap();

    let mut mute = connect(&ep);
    let hello_len = {
        let mut c = Client::connect(&ep);
        let h = c.hello();
        proto::encode(&Reply::Hello(Box::new(h))).len()
    };
    const N: u64 = 40_000;
    assert!(hello_len as u64 * N > 40 << 20, "hello replies of {hello_len} bytes");
    let base = rss_kib(pid);
    let writer = {
        let mut w = mute.try_clone().unwrap();
        std::thread::spawn(move || {
            let all: Vec<u8> = (1..=N).flat_map(|id| frame(&hello_bytes(id))).collect();
            w.write_all(&all).unwrap();
        })
    };
    // The owner runs the whole run, one sync point every 10 steps, while the others stall.
    let started = Instant::now();
    let mut c = Client::connect(&ep);
    let mut r = c.sync(vec![every(10)]);
    while !r.body.reasons.contains(&Reason::End) {
        r = c.sync(vec![]);
    }
    assert_eq!(r.body.step, 800);
    assert!(started.elapsed() < Duration::from_secs(10), "the run took {:?}", started.elapsed());
    let grown = rss_kib(pid).saturating_sub(base);
    assert!(grown < 16 * 1024, "RSS grew {grown} KiB with a peer that never reads");
    assert!(!writer.is_finished(), "the node read all 40,000 requests without writing their replies");

    // Now it reads: one hello per request, in order.
    for id in 1..=N {
        match decode(&read_frame(&mut mute).expect("a reply")) {
            Reply::Hello(h) => assert_eq!(h.id, Some(id)),
            r => panic!("{r:?}"),
        }
    }
    writer.join().unwrap();
    // The half frame completed late is served as any other.
    half_frame.write_all(&f[f.len() / 2..]).unwrap();
    assert!(matches!(decode(&read_frame(&mut half_frame).unwrap()), Reply::Hello(h) if h.id == Some(7)));
    assert!(matches!(c.cont(vec![]), Reply::Done(_)));
    drop((c, mute, half_frame, half_header));
    assert_eq!(node.wait().0, Some(0));
}

/// At most 256 connections are served at once: more are closed as they arrive (said on
/// stderr), the others are served, and a connection that closes makes room for a new one.
#[test]
fn connections_beyond_the_limit_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let ep = unix_endpoint(dir.path(), "ctl");
    let mut node = Node::start_with(&["--control", &ep, "--out", dir.path().join("o").to_str().unwrap()], Stdio::piped());
    let mut conns: Vec<UnixStream> = (0..300).map(|_| connect(&ep)).collect();
    // Served in connection order; the 44 beyond 256 are closed.
    for (i, s) in conns.iter_mut().enumerate() {
        // One beyond the limit may be closed already.
        let _ = s.write_all(&frame(&hello_bytes(i as u64)));
    }
    let mut served = 0;
    for (i, s) in conns.iter_mut().enumerate() {
        match read_frame(s) {
            Some(r) => {
                assert!(matches!(decode(&r), Reply::Hello(h) if h.id == Some(i as u64)));
                served += 1;
            }
            None => assert!(i >= 256, "connection {i} was closed"),
        }
    }
    assert_eq!(served, 256);
    conns.truncate(246);
    let fresh: Vec<Client> = (0..10).map(|_| Client::connect(&ep)).collect();
    let answered: Vec<bool> = fresh.iter().map(|c| c.try_raw(&hello_bytes(1), 30_000).is_some()).collect();
    node.signal("TERM");
    let mut stderr = String::new();
    node.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(answered.iter().all(|&a| a), "new connections after 54 closed: answered {answered:?}; stderr: {stderr}");
    assert!(stderr.contains("256 are open"), "{stderr}");
}

/// A request is answered even when its sender shut its writing side right after it (a
/// half-closed connection is read to its end, and the reply still delivered).
#[test]
fn a_half_closed_connection_gets_its_reply() {
    let dir = tempfile::tempdir().unwrap();
    let ep = unix_endpoint(dir.path(), "ctl");
    let _node = Node::start(&["--control", &ep, "--out", dir.path().join("o").to_str().unwrap()]);
    let mut s = connect(&ep);
    let mut two = frame(&hello_bytes(1));
    two.extend(frame(&hello_bytes(2)));
    s.write_all(&two).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    for id in [1, 2] {
        assert!(matches!(decode(&read_frame(&mut s).unwrap()), Reply::Hello(h) if h.id == Some(id)));
    }
    assert!(closed_by_node(&mut s), "the node keeps a finished half-closed connection");
}
