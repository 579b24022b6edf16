//! All ZeroMQ code of spikebus: binding, receiving requests, replying, publishing. The only
//! other socket code is `unix` (the control channel over a Unix-domain socket); the lockstep
//! sees either control channel through `transport::Transport`.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::AppError;
use crate::transport::{Inbound, Peer, Transport, RECV_TIMEOUT_MS};

/// One libzmq context for the process, and the authentication handler when there is one.
pub struct Bus {
    ctx: zmq::Context,
    zap: Option<Zap>,
    remote: bool,
}

/// The ZAP handler thread (libzmq asks it whether to let each new connection in).
struct Zap {
    thread: Option<std::thread::JoinHandle<()>>,
    shutdown: std::sync::Arc<AtomicBool>,
}

impl Drop for Bus {
    fn drop(&mut self) {
        // The handler's socket must close before the context can terminate (which flushes
        // the last replies).
        if let Some(zap) = self.zap.as_mut() {
            zap.shutdown.store(true, Ordering::SeqCst);
            if let Some(t) = zap.thread.take() {
                let _ = t.join();
            }
        }
    }
}

/// PLAIN credentials: `user:password` per line (`#` starts a comment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials(Vec<(String, String)>);

impl Credentials {
    pub fn load(path: &std::path::Path) -> Result<Self, AppError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| AppError::Usage(format!("cannot read --auth-file {}: {e}", path.display())))?;
        let mut users = vec![];
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (u, p) = line.split_once(':').filter(|(u, p)| !u.is_empty() && !p.is_empty()).ok_or_else(|| {
                AppError::Usage(format!("--auth-file {}:{}: expected user:password", path.display(), i + 1))
            })?;
            users.push((u.to_string(), p.to_string()));
        }
        if users.is_empty() {
            return Err(AppError::Usage(format!("--auth-file {}: no user:password line", path.display())));
        }
        Ok(Credentials(users))
    }

    fn allows(&self, user: &[u8], password: &[u8]) -> bool {
        self.0.iter().any(|(u, p)| u.as_bytes() == user && p.as_bytes() == password)
    }
}

const ZAP_DOMAIN: &str = "spikebus";

impl Bus {
    /// `remote`: allow binding tcp addresses other than loopback. `auth`: require PLAIN
    /// credentials on every socket (mandatory when `remote`).
    pub fn new(remote: bool, auth: Option<Credentials>) -> Result<Bus, AppError> {
        if remote && auth.is_none() {
            return Err(AppError::Usage(
                "--allow-remote needs --auth-file: a node reachable from other machines must authenticate its clients".into(),
            ));
        }
        let ctx = zmq::Context::new();
        let zap = auth.map(|creds| Zap::start(&ctx, creds)).transpose()?;
        Ok(Bus { ctx, zap, remote })
    }
}

impl Zap {
    fn start(ctx: &zmq::Context, creds: Credentials) -> Result<Zap, AppError> {
        let endpoint = "inproc://zeromq.zap.01";
        let sock = ctx.socket(zmq::REP).map_err(zmq_err("cannot create", endpoint))?;
        sock.bind(endpoint).map_err(zmq_err("cannot bind", endpoint))?;
        let shutdown = std::sync::Arc::new(AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&shutdown);
        let thread = std::thread::Builder::new()
            .name("zap".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    if sock.poll(zmq::POLLIN, 100).unwrap_or(0) == 0 {
                        continue;
                    }
                    let Ok(req) = sock.recv_multipart(0) else { continue };
                    let _ = sock.send_multipart(zap_reply(&req, &creds), 0);
                }
            })
            .map_err(|e| AppError::Bus(format!("cannot start the authentication thread: {e}")))?;
        Ok(Zap { thread: Some(thread), shutdown })
    }
}

/// Answers one ZAP request (RFC 27): 200 for known PLAIN credentials, 400 otherwise.
fn zap_reply(req: &[Vec<u8>], creds: &Credentials) -> Vec<Vec<u8>> {
    let frame = |i: usize| req.get(i).map(Vec::as_slice).unwrap_or(b"");
    let (version, request_id, address, mechanism) = (frame(0), frame(1), frame(3), frame(5));
    let ok = mechanism == b"PLAIN" && creds.allows(frame(6), frame(7));
    let who = String::from_utf8_lossy(frame(6)).into_owned();
    if !ok {
        eprintln!(
            "spikebus: auth: refused {} user {:?} from {}",
            String::from_utf8_lossy(mechanism),
            who,
            String::from_utf8_lossy(address)
        );
    }
    let (code, text, user): (&[u8], &[u8], Vec<u8>) =
        if ok { (b"200", b"OK", who.into_bytes()) } else { (b"400", b"unknown user or wrong password", vec![]) };
    vec![version.to_vec(), request_id.to_vec(), code.to_vec(), text.to_vec(), user, vec![]]
}

/// The error of a socket operation; the text is made only if there is an error (this sits on
/// the lockstep's path).
fn zmq_err<'a>(what: &'a str, endpoint: &'a str) -> impl Fn(zmq::Error) -> AppError + 'a {
    move |e| AppError::Bus(format!("{what} {endpoint}: {e}"))
}

/// An endpoint as the node binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// What to pass to zmq_bind (`localhost` becomes 127.0.0.1: libzmq would take it for the
    /// name of a network interface).
    pub bind: String,
    /// An IPv6 address (the socket needs ZMQ_IPV6).
    pub ipv6: bool,
    /// The path of an ipc endpoint that lives in the file system.
    pub ipc_path: Option<std::path::PathBuf>,
}

/// Checks an endpoint: tcp:// on loopback (unless `remote`) or ipc://. An abstract ipc name
/// (`ipc://@name`) has no file permissions, so anyone on the machine could connect: it is
/// allowed only with authentication (`auth`).
pub fn check_endpoint(endpoint: &str, remote: bool, auth: bool) -> Result<Endpoint, AppError> {
    let refuse = |why: &str| Err(AppError::Usage(format!("endpoint {endpoint}: {why}")));
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        if path.is_empty() {
            return refuse("an ipc endpoint needs a path, e.g. ipc:///tmp/spikebus.ctl");
        }
        if path.starts_with('@') {
            if !auth {
                return refuse(
                    "an abstract ipc name (ipc://@...) has no file permissions, so any local user could connect; \
                     use a path (ipc:///dir/name, whose permissions decide who may connect) or --auth-file",
                );
            }
            return Ok(Endpoint { bind: endpoint.to_string(), ipv6: false, ipc_path: None });
        }
        return Ok(Endpoint { bind: endpoint.to_string(), ipv6: false, ipc_path: Some(path.into()) });
    }
    if endpoint.starts_with("unix://") {
        return refuse("unix:// serves the control channel only (--control); the state stream is a ZeroMQ PUB socket: use tcp://HOST:PORT or ipc:///PATH");
    }
    let Some(addr) = endpoint.strip_prefix("tcp://") else {
        return refuse("use tcp://HOST:PORT or ipc:///PATH (or, for --control, unix:///PATH)");
    };
    let Some((host, port)) = addr.rsplit_once(':') else {
        return refuse("a tcp endpoint needs a port, e.g. tcp://127.0.0.1:0 (0 picks a free port)");
    };
    if port.parse::<u16>().is_err() {
        return refuse("the port must be a number from 0 to 65535");
    }
    let ipv6 = host.starts_with('[');
    let loopback = match host {
        "localhost" => true,
        h if ipv6 => h.trim_start_matches('[').trim_end_matches(']').parse::<std::net::Ipv6Addr>().is_ok_and(|a| a.is_loopback()),
        h => h.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback()),
    };
    if !loopback && !remote {
        return refuse("spikebus binds loopback only (127.0.0.1, [::1], localhost); another address needs --allow-remote and --auth-file");
    }
    let bind = if host == "localhost" { format!("tcp://127.0.0.1:{port}") } else { endpoint.to_string() };
    Ok(Endpoint { bind, ipv6, ipc_path: None })
}

/// Refuses to bind an ipc path where a live node (or anything) is listening: libzmq would
/// silently take the path over. A stale socket file (nobody listening) is fine: libzmq
/// replaces it.
pub fn check_not_in_use(ep: &Endpoint, endpoint: &str) -> Result<(), AppError> {
    match &ep.ipc_path {
        Some(path) => refuse_if_listening(path, endpoint),
        None => Ok(()),
    }
}

/// Refuses a socket path where something listens: connecting is the test (a stale socket file
/// refuses the connection). Both ipc:// and unix:// endpoints are checked so.
pub fn refuse_if_listening(path: &std::path::Path, endpoint: &str) -> Result<(), AppError> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(AppError::Usage(format!(
            "endpoint {endpoint} is in use: something is listening on {}; stop it or choose another path",
            path.display()
        )));
    }
    Ok(())
}

/// The control channel over ZeroMQ: a ROUTER socket, which tells controllers apart (their
/// routing ids) and so lets the lockstep answer each one, own runs and keep replies per
/// controller. REQ clients (the usual controller) and DEALER clients both work: a reply goes
/// back in the envelope its request came in.
pub struct ZmqControl {
    sock: zmq::Socket,
    pub endpoint: String,
    monitor: Monitor,
}

/// Connection events of a socket (a ZeroMQ socket monitor): peers connected, and clients
/// refused at the handshake, which are named on stderr (those refused by the ZAP handler are
/// named by it, with their user name).
struct Monitor {
    sock: zmq::Socket,
    endpoint: String,
    peers: usize,
}

/// Stops monitoring `sock`. It must happen before the socket closes: libzmq's I/O thread
/// reports the disconnections of a closing socket to its monitor with a blocking send, and
/// once the monitor's reading end is gone that send never returns (the I/O thread, and with
/// it every socket of the node, would hang).
fn stop_monitor(sock: &mut zmq::Socket) {
    // SAFETY: a valid socket pointer; a null address stops the monitor (zmq_socket_monitor).
    unsafe {
        zmq_sys::zmq_socket_monitor(sock.as_mut_ptr(), std::ptr::null(), 0);
    }
}

impl Drop for ZmqControl {
    fn drop(&mut self) {
        stop_monitor(&mut self.sock);
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        stop_monitor(&mut self.sock);
    }
}

impl Monitor {
    fn new(ctx: &zmq::Context, sock: &zmq::Socket, endpoint: &str) -> Result<Monitor, AppError> {
        let err = |what| zmq_err(what, endpoint);
        // Each monitor needs its own inproc address (tests may make several in one process).
        static MONITORS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let addr = format!("inproc://spikebus-monitor-{}", MONITORS.fetch_add(1, Ordering::Relaxed));
        let events = zmq_sys::ZMQ_EVENT_ACCEPTED
            | zmq_sys::ZMQ_EVENT_DISCONNECTED
            | zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
        sock.monitor(&addr, events as i32).map_err(err("cannot monitor"))?;
        let monitor = ctx.socket(zmq::PAIR).map_err(err("cannot create a monitor for"))?;
        monitor.connect(&addr).map_err(err("cannot monitor"))?;
        Ok(Monitor { sock: monitor, endpoint: endpoint.to_string(), peers: 0 })
    }

    /// Reads the events so far; the number of peers connected.
    fn poll(&mut self) -> usize {
        // Events: a 6-byte frame (u16 event, u32 value, little-endian), then the endpoint.
        while let Ok(frame) = self.sock.recv_bytes(zmq::DONTWAIT) {
            let mut endpoint = None;
            while self.sock.get_rcvmore().unwrap_or(false) {
                endpoint = self.sock.recv_bytes(zmq::DONTWAIT).ok();
            }
            if frame.len() < 6 {
                continue;
            }
            let endpoint = endpoint.map_or_else(|| self.endpoint.clone(), |e| String::from_utf8_lossy(&e).into_owned());
            let event = u32::from(u16::from_le_bytes([frame[0], frame[1]]));
            let value = u32::from_le_bytes([frame[2], frame[3], frame[4], frame[5]]);
            match event {
                zmq_sys::ZMQ_EVENT_ACCEPTED => self.peers += 1,
                zmq_sys::ZMQ_EVENT_DISCONNECTED => self.peers = self.peers.saturating_sub(1),
                zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL => {
                    let why = if value == zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH {
                        "its security mechanism is not PLAIN (no credentials?)".to_string()
                    } else {
                        format!("ZMTP protocol error {value:#x}")
                    };
                    eprintln!("spikebus: auth: refused a client of {endpoint}: {why}");
                }
                zmq_sys::ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL => {
                    eprintln!(
                        "spikebus: auth: refused a client of {endpoint}: its handshake failed (no PLAIN credentials, or a different security mechanism?)"
                    );
                }
                _ => {}
            }
        }
        self.peers
    }
}

impl Bus {
    /// Makes `sock` a PLAIN server checked by the ZAP handler, if authentication is on.
    fn secure(&self, sock: &zmq::Socket, endpoint: &str) -> Result<(), AppError> {
        if self.zap.is_some() {
            sock.set_plain_server(true).map_err(zmq_err("cannot configure", endpoint))?;
            sock.set_zap_domain(ZAP_DOMAIN).map_err(zmq_err("cannot configure", endpoint))?;
        }
        Ok(())
    }

    pub fn control(&self, endpoint: &str, max_message: usize) -> Result<ZmqControl, AppError> {
        let ep = check_endpoint(endpoint, self.remote, self.zap.is_some())?;
        check_not_in_use(&ep, endpoint)?;
        let err = |what| zmq_err(what, endpoint);
        let sock = self.ctx.socket(zmq::ROUTER).map_err(err("cannot create a socket for"))?;
        self.secure(&sock, endpoint)?;
        sock.set_ipv6(ep.ipv6).map_err(err("cannot configure"))?;
        // A request longer than this closes its connection before libzmq buffers it; one up to
        // it is read and answered `too_large` when longer than --max-message.
        sock.set_maxmsgsize(socket_message_limit(max_message)).map_err(err("cannot configure"))?;
        // The last reply (`done`) must reach the controller even though the node exits next.
        sock.set_linger(2000).map_err(err("cannot configure"))?;
        sock.set_rcvtimeo(RECV_TIMEOUT_MS).map_err(err("cannot configure"))?;
        let monitor = Monitor::new(&self.ctx, &sock, endpoint)?;
        sock.bind(&ep.bind).map_err(err("cannot bind"))?;
        let bound = last_endpoint(&sock, endpoint);
        Ok(ZmqControl { sock, endpoint: bound, monitor })
    }

    pub fn publisher(&self, endpoint: &str, hwm: i32) -> Result<Publisher, AppError> {
        let ep = check_endpoint(endpoint, self.remote, self.zap.is_some())?;
        check_not_in_use(&ep, endpoint)?;
        let err = |what| zmq_err(what, endpoint);
        let mut sock = self.ctx.socket(zmq::XPUB).map_err(err("cannot create a socket for"))?;
        self.secure(&sock, endpoint)?;
        // At a subscriber's high-water mark libzmq drops that subscriber's messages only (the
        // others keep receiving); each subscriber sees its own losses as gaps in `seq`.
        sock.set_sndhwm(hwm).map_err(err("cannot configure"))?;
        sock.set_linger(2000).map_err(err("cannot configure"))?;
        // Subscriptions are the node's to apply (`Publisher::subscriptions`): only prefixes of
        // its topics are kept, so what a subscriber can make the node remember is bounded; a
        // subscription message longer than any topic closes its connection.
        set_int_option(&mut sock, zmq_sys::ZMQ_XPUB_MANUAL, 1).map_err(err("cannot configure"))?;
        sock.set_maxmsgsize(64).map_err(err("cannot configure"))?;
        sock.set_ipv6(ep.ipv6).map_err(err("cannot configure"))?;
        let monitor = Monitor::new(&self.ctx, &sock, endpoint)?;
        sock.bind(&ep.bind).map_err(err("cannot bind"))?;
        let bound = last_endpoint(&sock, endpoint);
        Ok(Publisher { sock, endpoint: bound, monitor, seq: 0, published: 0, subscribers: 0 })
    }
}

/// The largest request the control socket reads at all: twice `--max-message` (at least 64
/// KiB more), so that a request somewhat too long still gets a `too_large` reply, while a huge
/// one only costs its connection (libzmq closes it before buffering the message).
pub fn socket_message_limit(max_message: usize) -> i64 {
    let limit = max_message.saturating_mul(2).max(max_message.saturating_add(64 << 10));
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn last_endpoint(sock: &zmq::Socket, asked: &str) -> String {
    match sock.get_last_endpoint() {
        Ok(Ok(s)) => s,
        _ => asked.to_string(),
    }
}

/// An int socket option the zmq crate has no setter for.
fn set_int_option(sock: &mut zmq::Socket, option: u32, value: c_int) -> Result<(), zmq::Error> {
    // SAFETY: a valid socket pointer, an int option value of the right size.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            sock.as_mut_ptr(),
            option as c_int,
            &value as *const c_int as *const c_void,
            std::mem::size_of::<c_int>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }))
    }
}

impl Transport for ZmqControl {
    /// A plain blocking receive with a timeout (set at bind), not poll + receive: one system
    /// call fewer per exchange on the lockstep path.
    fn recv(&mut self) -> Result<Option<Inbound>, AppError> {
        let id = match self.sock.recv_bytes(0) {
            Ok(m) => m,
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => return Ok(None),
            Err(e) => return Err(zmq_err("cannot receive on", &self.endpoint)(e)),
        };
        // The rest of the message is already here (ZeroMQ delivers messages whole).
        let mut body = vec![];
        while self.sock.get_rcvmore().unwrap_or(false) {
            match self.sock.recv_bytes(0) {
                Ok(frame) => body.push(frame),
                Err(zmq::Error::EINTR) => continue,
                Err(e) => return Err(zmq_err("cannot receive on", &self.endpoint)(e)),
            }
        }
        let envelope = body.first().is_some_and(Vec::is_empty);
        if envelope {
            body.remove(0);
        }
        let frames = body.len();
        let bytes = if body.is_empty() { vec![] } else { body.swap_remove(0) };
        Ok(Some(Inbound { peer: Peer { id, envelope }, bytes, frames }))
    }

    fn send(&mut self, to: &Peer, reply: &[u8]) -> Result<(), AppError> {
        let send = |bytes: &[u8], flags: i32| loop {
            match self.sock.send(bytes, flags) {
                Err(zmq::Error::EINTR) => continue,
                // A peer that has gone: ZeroMQ drops the reply (not ROUTER_MANDATORY).
                r => return r.map_err(zmq_err("cannot reply on", &self.endpoint)),
            }
        };
        send(&to.id, zmq::SNDMORE)?;
        if to.envelope {
            send(b"", zmq::SNDMORE)?;
        }
        send(reply, 0)
    }

    fn connected(&mut self) -> Option<usize> {
        Some(self.monitor.poll())
    }
}

/// The state stream: an XPUB socket (subscribers see a PUB).
pub struct Publisher {
    sock: zmq::Socket,
    pub endpoint: String,
    monitor: Monitor,
    seq: u64,
    /// Messages handed to libzmq (each reaches every subscriber not at its high-water mark).
    pub published: u64,
    subscribers: usize,
}

/// The topics the node publishes (`spikebus_protocol`'s TOPIC_*): a subscription is kept
/// only if it is a prefix of one of them.
const TOPICS: [&[u8]; 8] = [b"started", b"state", b"spike", b"sync", b"owner", b"done", b"hash", b"restore"];

impl Publisher {
    /// The `seq` of the next message (counts every attempt, so gaps show losses).
    pub fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    /// Applies the subscriptions that arrived (XPUB_MANUAL): a prefix of one of the node's
    /// topics is applied for the subscriber that sent it; anything else could never match and
    /// is not kept. Returns how many subscriptions were applied.
    fn subscriptions(&mut self) -> usize {
        let mut applied = 0;
        while let Ok(msg) = self.sock.recv_bytes(zmq::DONTWAIT) {
            let (Some(&kind), topic) = (msg.first(), msg.get(1..).unwrap_or(&[])) else { continue };
            if kind > 1 || !TOPICS.iter().any(|t| t.starts_with(topic)) {
                continue;
            }
            // Applies to the pipe of the message just received.
            let r = if kind == 1 { self.sock.set_subscribe(topic) } else { self.sock.set_unsubscribe(topic) };
            if r.is_ok() && kind == 1 {
                applied += 1;
            }
        }
        applied
    }

    /// Publishes without ever blocking (a subscriber at its high-water mark loses this
    /// message; the others get it).
    pub fn send(&mut self, topic: &[u8], payload: &[u8]) {
        self.subscribers += self.subscriptions();
        if self.seq.is_multiple_of(256) {
            // Name refused clients now and then (the count of peers is not needed here).
            self.monitor.poll();
        }
        if self.sock.send(topic, zmq::DONTWAIT | zmq::SNDMORE).is_ok() {
            // Once the first frame is in, the rest of a message is always accepted.
            let _ = self.sock.send(payload, 0);
            self.published += 1;
        }
    }

    /// Blocks until `n` subscriptions have arrived (a handshake with observers), or `stop`.
    pub fn wait_subscribers(&mut self, n: usize, stop: &AtomicBool) -> Result<(), AppError> {
        loop {
            self.monitor.poll();
            self.subscribers += self.subscriptions();
            if self.subscribers >= n || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            match self.sock.poll(zmq::POLLIN, 100) {
                Ok(_) | Err(zmq::Error::EINTR) => {}
                Err(e) => return Err(zmq_err("cannot poll", &self.endpoint)(e)),
            }
        }
    }
}
