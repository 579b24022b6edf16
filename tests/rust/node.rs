//! A spikebus node in its own process, for tests: started with real sockets, its endpoints
//! read from the line it prints (no sleeps), killed when dropped. A minimal Rust controller
//! over either control transport (ZeroMQ, or a Unix socket with length-prefixed frames).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use spikebus_protocol::{self as proto, Action, Reply, Request};

pub struct Node {
    pub child: Child,
    pub control: Option<String>,
    pub publish: Option<String>,
    stdout: BufReader<ChildStdout>,
}

impl Node {
    /// Starts `spikebus run ARGS...` (args must include --control and/or --pub).
    pub fn start(args: &[&str]) -> Node {
        Self::start_with(args, Stdio::inherit())
    }

    /// As `start`, with the node's stderr going to `stderr`.
    pub fn start_with(args: &[&str], stderr: Stdio) -> Node {
        let mut cmd = Command::new(crate::bin());
        cmd.arg("run").args(args).stderr(stderr);
        Self::spawn(cmd)
    }

    /// Starts a prepared `spikebus run ...` command (its stdout is taken here).
    pub fn spawn(mut cmd: Command) -> Node {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn spikebus");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the listening line");
        assert!(line.starts_with("spikebus: listening"), "unexpected first line: {line:?}");
        let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_string);
        Node { control: field("control="), publish: field("pub="), child, stdout }
    }

    /// Sends a signal (`INT`, `TERM`, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the node to exit (bounded), returns its status code and the rest of stdout.
    pub fn wait(mut self) -> (Option<i32>, String) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut rest = String::new();
                std::io::Read::read_to_string(&mut self.stdout, &mut rest).unwrap();
                return (status.code(), rest);
            }
            assert!(std::time::Instant::now() < deadline, "node did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The two control transports a protocol test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// ZeroMQ (tcp loopback).
    Zmq,
    /// A Unix-domain socket with length-prefixed frames (`unix://`).
    Unix,
}

impl Kind {
    /// A fresh control endpoint of this kind: tcp on a free port, or a unix socket in `dir`.
    pub fn control(self, dir: &Path) -> String {
        match self {
            Kind::Zmq => "tcp://127.0.0.1:0".to_string(),
            Kind::Unix => unix_endpoint(dir, "ctl"),
        }
    }
}

/// `unix://DIR/NAME.sock`.
pub fn unix_endpoint(dir: &Path, name: &str) -> String {
    format!("unix://{}", dir.join(format!("{name}.sock")).display())
}

/// How long a client waits for a reply by default.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// A controller's connection: a ZeroMQ REQ socket, or a Unix-domain socket speaking frames
/// (a 4-byte big-endian length, then the message), chosen by the endpoint's scheme.
enum Conn {
    Zmq { sock: zmq::Socket, _ctx: zmq::Context },
    Unix(UnixStream),
}

/// A controller speaking the protocol, with ids.
pub struct Client {
    conn: Conn,
    next_id: u64,
}

impl Client {
    pub fn connect(endpoint: &str) -> Client {
        Self::connect_as(endpoint, None)
    }

    /// Connects with PLAIN credentials (user, password; ZeroMQ only).
    pub fn connect_as(endpoint: &str, plain: Option<(&str, &str)>) -> Client {
        if let Some(path) = endpoint.strip_prefix("unix://") {
            assert!(plain.is_none(), "the unix transport has no credentials");
            let stream = UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {endpoint}: {e}"));
            return Client { conn: Conn::Unix(stream), next_id: 1 };
        }
        let ctx = zmq::Context::new();
        let sock = ctx.socket(zmq::REQ).unwrap();
        if let Some((u, p)) = plain {
            sock.set_plain_username(Some(u)).unwrap();
            sock.set_plain_password(Some(p)).unwrap();
        }
        sock.set_rcvtimeo(REPLY_TIMEOUT.as_millis() as i32).unwrap();
        sock.set_linger(0).unwrap();
        // Lets it reach an IPv6 endpoint ([::1]) too.
        sock.set_ipv6(true).unwrap();
        sock.connect(endpoint).unwrap();
        Client { conn: Conn::Zmq { sock, _ctx: ctx }, next_id: 1 }
    }

    /// Sends a request and waits at most `timeout` for the reply's bytes; None on a timeout
    /// (or, over a Unix socket, when the node closed the connection).
    pub fn exchange(&self, bytes: &[u8], timeout: Duration) -> Option<Vec<u8>> {
        match &self.conn {
            Conn::Zmq { sock, .. } => {
                sock.set_rcvtimeo(timeout.as_millis() as i32).unwrap();
                sock.send(bytes, 0).unwrap();
                sock.recv_bytes(0).ok()
            }
            Conn::Unix(stream) => {
                stream.set_read_timeout(Some(timeout)).unwrap();
                let mut s = stream;
                s.write_all(&frame(bytes)).ok()?;
                read_frame(&mut s)
            }
        }
    }

    /// Sends a request and waits at most `ms` for the reply.
    pub fn try_raw(&self, bytes: &[u8], ms: i32) -> Option<Reply> {
        let reply = self.exchange(bytes, Duration::from_millis(ms as u64))?;
        Some(rmp_serde::from_slice(&reply).expect("a reply decodes"))
    }

    pub fn raw(&self, bytes: &[u8]) -> Reply {
        let reply = self.exchange(bytes, REPLY_TIMEOUT).expect("a reply within the timeout");
        rmp_serde::from_slice(&reply).expect("a reply decodes")
    }

    pub fn request(&mut self, req: Request) -> Reply {
        self.next_id += 1;
        self.raw(&proto::encode(&req))
    }

    fn id(&mut self) -> Option<u64> {
        self.next_id += 1;
        Some(self.next_id)
    }

    pub fn hello(&mut self) -> proto::HelloReply {
        let id = self.id();
        self.hello_with(proto::Hello { id, protocol: proto::PROTOCOL_VERSION, ..Default::default() })
    }

    /// hello with `takeover: true`: this client owns the run from now on.
    pub fn takeover(&mut self) -> proto::HelloReply {
        let id = self.id();
        self.hello_with(proto::Hello { id, protocol: proto::PROTOCOL_VERSION, takeover: true, ..Default::default() })
    }

    fn hello_with(&mut self, h: proto::Hello) -> proto::HelloReply {
        match self.raw(&proto::encode(&Request::Hello(h))) {
            Reply::Hello(h) => *h,
            r => panic!("hello got {r:?}"),
        }
    }

    pub fn cont(&mut self, actions: Vec<Action>) -> Reply {
        let id = self.id();
        self.raw(&proto::encode(&Request::Continue(proto::Continue { id, client: None, actions })))
    }

    pub fn sync(&mut self, actions: Vec<Action>) -> proto::SyncReport {
        match self.cont(actions) {
            Reply::Sync(s) => s,
            r => panic!("expected a sync, got {r:?}"),
        }
    }
}

/// One frame of the unix:// transport: the length (4 bytes, big-endian), then `bytes`.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    let mut f = (bytes.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(bytes);
    f
}

/// Reads one frame; None at the end of the stream, on a timeout or an error.
pub fn read_frame(r: &mut impl Read) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(header) as usize];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

pub fn every(n: u64) -> Action {
    Action::Schedule(proto::Schedule { every: Some(n), ..Default::default() })
}

pub fn scatter_gather(n: u64) -> Action {
    Action::Schedule(proto::Schedule { scatter_gather: Some(n), ..Default::default() })
}

pub fn schedule(s: proto::Schedule) -> Action {
    Action::Schedule(s)
}

pub fn watch(names: &[&str]) -> Action {
    Action::Watch(proto::Watch { values: Some(names.iter().map(|s| s.to_string()).collect()), ..Default::default() })
}

pub fn set(name: &str, value: f64) -> Action {
    Action::Set(proto::Set { name: name.into(), value })
}

pub fn event(target: &str, t: f64, weight: Option<f64>) -> Action {
    Action::Event(proto::Event { target: target.into(), t, weight })
}

pub fn stop() -> Action {
    Action::Stop(proto::Stop {})
}

/// The seed document's callback as a controller: in every step's extra_scatter_gather, when
/// int(h.t) % 50 == 0, ns.interval += 10 (reading ns.interval from the node). Runs to `done`.
pub fn seed_interval_controller(endpoint: &str) -> proto::DoneReply {
    let mut c = Client::connect(endpoint);
    let hello = c.hello();
    assert_eq!(hello.pending.report().body.reasons, [proto::Reason::Start]);
    let mut report = c.sync(vec![scatter_gather(1), watch(&["ns.interval"])]);
    loop {
        if report.body.reasons.contains(&proto::Reason::End) {
            match c.cont(vec![]) {
                Reply::Done(d) => return d,
                r => panic!("expected done, got {r:?}"),
            }
        }
        let mut actions = vec![];
        if (report.body.t as i64) % 50 == 0 {
            actions.push(set("ns.interval", report.body.values["ns.interval"] + 10.0));
        }
        report = c.sync(actions);
    }
}

pub fn read_file(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}
