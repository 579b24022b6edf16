//! The control channel over a Unix-domain stream socket (`--control unix:///path`): the same
//! protocol as over ZeroMQ, for controllers on the same machine that want the cheapest round
//! trip (no ZeroMQ I/O thread on either side: a request costs the node one poll, one read and
//! one write). All Unix-socket code of the node is here; the lockstep sees it through
//! `transport::Transport`, as it sees `bus::ZmqControl`.
//!
//! Framing (schemas/README.md, "The unix:// transport"): every message, in both directions, is
//! a 4-byte big-endian length N followed by N bytes (one MessagePack map). One frame is one
//! request or one reply. A request of more than `limit` bytes (`bus::socket_message_limit`:
//! twice --max-message) closes its connection before its body is read; one within it but over
//! --max-message is read and answered `too_large` by the lockstep, as over ZeroMQ.
//!
//! One thread, non-blocking sockets, poll(2) over the listener and the connections; each
//! connection is a peer. What a connection can cost the node is bounded:
//! - input: a connection is read only while it has no complete request waiting and no reply
//!   unsent, so its buffer holds at most one request (up to `limit`) and 64 KiB read ahead;
//! - output: at most one reply (its next request is read only once that reply is written), so
//!   a peer that never reads its replies stalls itself, not the node nor anyone else;
//! - a peer that sends half a frame and stalls keeps its buffer, and nobody waits for it;
//! - at most `MAX_CONNECTIONS` connections; more are accepted and closed at once.
//!
//! Access: there is no authentication on this transport; the socket file's permissions decide
//! who may connect. The node creates it with mode 0600 (only its user may connect). Abstract
//! names (`unix://@name`), which have no permissions, are refused. A live endpoint is never
//! taken over; a stale socket file (nobody listening) is replaced, anything else at the path is
//! refused.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bus::{refuse_if_listening, socket_message_limit};
use crate::error::AppError;
use crate::transport::{Inbound, Peer, Transport, RECV_TIMEOUT_MS};

/// The most connections served at once: a lockstep has one owner and a few readers. More are
/// closed as they arrive (their clients see the connection end), so that a runaway client
/// cannot exhaust the node's file descriptors.
pub const MAX_CONNECTIONS: usize = 256;

/// Bytes read from a connection at once.
const CHUNK: usize = 64 << 10;

/// How long the node tries, when it exits, to hand over replies not yet written (the final
/// `done`), as ZeroMQ's linger does for the other transport.
const FLUSH_ON_EXIT: Duration = Duration::from_secs(2);

/// The length of a frame's header.
const HEADER: usize = 4;

/// The path of a `unix://` endpoint, checked: not empty, not abstract, fits in a socket
/// address. `Ok(None)` when `endpoint` is not a `unix://` one.
pub fn endpoint_path(endpoint: &str) -> Result<Option<PathBuf>, AppError> {
    let Some(path) = endpoint.strip_prefix("unix://") else { return Ok(None) };
    let refuse = |why: &str| Err(AppError::Usage(format!("endpoint {endpoint}: {why}")));
    if path.is_empty() {
        return refuse("a unix endpoint needs a path, e.g. unix:///tmp/spikebus.ctl");
    }
    if path.starts_with('@') {
        return refuse(
            "an abstract socket name (unix://@...) has no file permissions, so any local user could connect, and \
             this transport has no authentication; use a path (unix:///dir/name, whose permissions decide who may connect)",
        );
    }
    if path.contains('\0') {
        return refuse("the path holds a NUL byte");
    }
    // sun_path holds 108 bytes, the terminating NUL included.
    if path.len() > 107 {
        return refuse(&format!("the path has {} bytes; a Unix socket path holds at most 107", path.len()));
    }
    Ok(Some(PathBuf::from(path)))
}

/// Refuses a path where something listens (a live node is never taken over) or where a file
/// that is not a socket lives (it is not the node's to replace). A stale socket file is fine:
/// it is replaced at bind.
pub fn check_path_free(path: &Path, endpoint: &str) -> Result<(), AppError> {
    refuse_if_listening(path, endpoint)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => Err(AppError::Usage(format!(
            "endpoint {endpoint}: {} exists and is not a socket; remove it or choose another path",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// One controller's connection.
struct Conn {
    fd: OwnedFd,
    id: u64,
    /// Bytes received and not yet handed out: the start of a frame (or a whole one), and what
    /// followed it in the same read.
    inbuf: Vec<u8>,
    /// The reply being written (its header included), and how much of it is written.
    out: Vec<u8>,
    sent: usize,
    /// The peer will send no more (it closed or shut down its side).
    eof: bool,
    /// Closed by the node (an error, or a frame over the limit): removed at the next sweep.
    dead: bool,
}

impl Conn {
    fn frame_len(&self) -> Option<usize> {
        let h = self.inbuf.get(..HEADER)?;
        Some(u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize)
    }

    fn complete(&self) -> bool {
        self.frame_len().is_some_and(|n| self.inbuf.len() >= HEADER + n)
    }

    fn unsent(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Whether to read from it: only when it has nothing waiting (one request at a time).
    fn wants_input(&self) -> bool {
        !self.eof && !self.dead && self.unsent() == 0 && !self.complete()
    }

    fn peer(&self) -> Peer {
        Peer { id: self.id.to_be_bytes().to_vec(), envelope: false }
    }

    /// Writes what it can of the pending reply; false when the connection is broken.
    fn flush(&mut self) -> bool {
        while self.unsent() > 0 {
            let rest = &self.out[self.sent..];
            // SAFETY: a valid fd and a valid buffer of rest.len() bytes. MSG_NOSIGNAL: a peer
            // that has gone is an EPIPE error here, not a SIGPIPE.
            let n = unsafe { libc::send(self.fd.as_raw_fd(), rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                self.sent += n as usize;
                continue;
            }
            match io::Error::last_os_error().kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return true,
                _ => return false,
            }
        }
        self.out.clear();
        self.sent = 0;
        true
    }
}

/// The control channel over a Unix-domain socket.
pub struct UnixControl {
    listener: UnixListener,
    path: PathBuf,
    /// (device, inode) of the socket file bound: removed at exit only if it is still this one.
    file: Option<(u64, u64)>,
    pub endpoint: String,
    conns: Vec<Conn>,
    next_id: u64,
    /// Frames longer than this close their connection unread.
    limit: usize,
    /// Where the search for the next request starts: connections take turns.
    cursor: usize,
    scratch: Vec<u8>,
    pollfds: Vec<libc::pollfd>,
    /// Connections closed because `MAX_CONNECTIONS` were open, not yet reported.
    refused: u64,
    refusal_reported: Option<Instant>,
}

impl UnixControl {
    /// Binds `endpoint` (`unix://PATH`) with mode 0600. `max_message` is --max-message.
    pub fn bind(endpoint: &str, max_message: usize) -> Result<UnixControl, AppError> {
        let path = endpoint_path(endpoint)?
            .ok_or_else(|| AppError::Usage(format!("endpoint {endpoint}: not a unix:// endpoint")))?;
        check_path_free(&path, endpoint)?;
        let cannot = |e: io::Error| AppError::Bus(format!("cannot bind {endpoint}: {e}"));
        let listener = match bind_private(&path) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                // A stale socket file (check_path_free found nobody listening): replace it.
                std::fs::remove_file(&path).map_err(cannot)?;
                bind_private(&path).map_err(cannot)?
            }
            r => r.map_err(cannot)?,
        };
        listener.set_nonblocking(true).map_err(cannot)?;
        let file = std::fs::symlink_metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        let limit = usize::try_from(socket_message_limit(max_message)).unwrap_or(usize::MAX).min(u32::MAX as usize);
        Ok(UnixControl {
            listener,
            path,
            file,
            endpoint: endpoint.to_string(),
            conns: Vec::new(),
            next_id: 1,
            limit,
            cursor: 0,
            scratch: vec![0; CHUNK],
            pollfds: Vec::new(),
            refused: 0,
            refusal_reported: None,
        })
    }

    /// The next complete request of a connection whose previous reply is written, taking the
    /// connections in turn.
    fn take_ready(&mut self) -> Option<Inbound> {
        let n = self.conns.len();
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let c = &mut self.conns[i];
            if c.dead || c.unsent() > 0 || !c.complete() {
                continue;
            }
            let len = c.frame_len().expect("a complete frame has a header");
            let bytes = c.inbuf[HEADER..HEADER + len].to_vec();
            if c.inbuf.len() == HEADER + len {
                c.inbuf.clear();
            } else {
                c.inbuf.drain(..HEADER + len);
            }
            self.cursor = i + 1;
            return Some(Inbound { peer: c.peer(), bytes, frames: 1 });
        }
        None
    }

    /// Closes what is finished: broken connections, and those whose peer is gone with nothing
    /// left to answer.
    fn sweep(&mut self) {
        self.conns.retain(|c| !(c.dead || (c.eof && c.unsent() == 0 && !c.complete())));
    }

    /// Accepts waiting connections; false if no more can be accepted now (out of descriptors).
    fn accept(&mut self) -> bool {
        // Connections that ended make room first.
        self.sweep();
        for _ in 0..64 {
            // SAFETY: a valid listening fd; null address arguments are allowed.
            let fd = unsafe {
                libc::accept4(
                    self.listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                return match e.raw_os_error() {
                    Some(libc::EAGAIN) => true,
                    Some(libc::EINTR | libc::ECONNABORTED | libc::EPROTO) => continue,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                        self.note_refusal();
                        false
                    }
                    _ => {
                        eprintln!("spikebus: cannot accept a connection on {}: {e}", self.endpoint);
                        false
                    }
                };
            }
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if self.conns.len() >= MAX_CONNECTIONS {
                drop(fd);
                self.note_refusal();
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            self.conns.push(Conn { fd, id, inbuf: Vec::new(), out: Vec::new(), sent: 0, eof: false, dead: false });
        }
        true
    }

    /// Counts a connection that could not be served, and says so on stderr (at most once a
    /// second, with the count).
    fn note_refusal(&mut self) {
        self.refused += 1;
        if self.refusal_reported.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            eprintln!(
                "spikebus: {} closed {} connection(s): {MAX_CONNECTIONS} are open (or no file descriptor is left)",
                self.endpoint, self.refused
            );
            self.refused = 0;
            self.refusal_reported = Some(Instant::now());
        }
    }

    /// Reads what connection `i` has sent (up to the end of one frame and CHUNK bytes more).
    fn read(&mut self, i: usize) {
        let (limit, endpoint) = (self.limit, &self.endpoint);
        let c = &mut self.conns[i];
        loop {
            // SAFETY: a valid fd, and scratch has CHUNK writable bytes.
            let n = unsafe { libc::recv(c.fd.as_raw_fd(), self.scratch.as_mut_ptr().cast(), CHUNK, 0) };
            if n < 0 {
                match io::Error::last_os_error().kind() {
                    io::ErrorKind::Interrupted => continue,
                    io::ErrorKind::WouldBlock => return,
                    _ => {
                        c.dead = true;
                        return;
                    }
                }
            }
            if n == 0 {
                c.eof = true;
                return;
            }
            let n = n as usize;
            c.inbuf.extend_from_slice(&self.scratch[..n]);
            if let Some(len) = c.frame_len().filter(|&len| len > limit) {
                eprintln!(
                    "spikebus: closed a connection to {endpoint} ({}): its frame of {len} bytes is over the limit of {limit} \
                     (twice --max-message)",
                    c.peer().name()
                );
                c.dead = true;
                c.inbuf = Vec::new();
                return;
            }
            // A whole request is here, or the socket had no more: the rest waits for poll.
            if c.complete() || n < CHUNK {
                return;
            }
        }
    }
}

/// Binds `path` with mode 0600: the umask is narrowed for the bind itself, so that the socket
/// never exists with wider permissions (a client connected in that moment would stay
/// connected). The umask is process-wide; the node binds from its main thread before it
/// starts anything that creates files.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    // SAFETY: umask cannot fail. (A stricter umask of the user's stays in force.)
    let old = unsafe { libc::umask(0o177) };
    unsafe { libc::umask(old | 0o177) };
    let r = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    r
}

impl Transport for UnixControl {
    fn recv(&mut self) -> Result<Option<Inbound>, AppError> {
        let deadline = Instant::now() + Duration::from_millis(RECV_TIMEOUT_MS as u64);
        let mut accepting = true;
        loop {
            if let Some(msg) = self.take_ready() {
                return Ok(Some(msg));
            }
            let before = self.conns.len();
            self.sweep();
            if self.conns.len() < before {
                // A peer has gone: the caller may be waiting for that (the linger after `done`
                // ends once no controller is connected).
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            // Whole milliseconds, rounded up: a wait of 0 would spin until the deadline.
            let timeout = left.as_micros().div_ceil(1000) as libc::c_int;
            if timeout == 0 {
                return Ok(None);
            }
            self.pollfds.clear();
            let fd = |fd: libc::c_int, events: libc::c_short| libc::pollfd { fd, events, revents: 0 };
            // The listener first; a negative fd is ignored by poll.
            let listener = if accepting { self.listener.as_raw_fd() } else { -1 };
            self.pollfds.push(fd(listener, libc::POLLIN));
            for c in &self.conns {
                let events = if c.unsent() > 0 {
                    libc::POLLOUT
                } else if c.wants_input() {
                    libc::POLLIN
                } else {
                    0
                };
                self.pollfds.push(fd(c.fd.as_raw_fd(), events));
            }
            // SAFETY: pollfds is a valid array of pollfds.len() entries.
            let rc = unsafe { libc::poll(self.pollfds.as_mut_ptr(), self.pollfds.len() as libc::nfds_t, timeout) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    // A signal: the lockstep looks at its stop flag.
                    return Ok(None);
                }
                return Err(AppError::Bus(format!("cannot poll {}: {e}", self.endpoint)));
            }
            if rc == 0 {
                return Ok(None);
            }
            // Connections first (their indices match pollfds[1..] until accept adds more).
            for i in 0..self.conns.len() {
                let revents = self.pollfds[i + 1].revents;
                if revents == 0 {
                    continue;
                }
                let c = &mut self.conns[i];
                if c.unsent() > 0 {
                    if !c.flush() {
                        c.dead = true;
                    }
                } else if c.wants_input() {
                    self.read(i);
                } else if !c.complete() && revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                    // A request already here is still served (its reply may find the peer gone).
                    c.dead = true;
                }
            }
            if self.pollfds[0].revents != 0 {
                accepting = self.accept();
            }
        }
    }

    fn send(&mut self, to: &Peer, reply: &[u8]) -> Result<(), AppError> {
        let Some(c) = self.conns.iter_mut().find(|c| !c.dead && to.id == c.id.to_be_bytes()) else {
            // The peer has gone: the reply is dropped, as ZeroMQ drops it.
            return Ok(());
        };
        let Ok(len) = u32::try_from(reply.len()) else {
            return Err(AppError::Bus(format!("a reply of {} bytes does not fit a frame", reply.len())));
        };
        c.out.extend_from_slice(&len.to_be_bytes());
        c.out.extend_from_slice(reply);
        if !c.flush() {
            c.dead = true;
        }
        Ok(())
    }

    fn connected(&mut self) -> Option<usize> {
        self.sweep();
        Some(self.conns.len())
    }
}

impl Drop for UnixControl {
    /// Removes the socket file (if it is still the one bound here: a later node may have
    /// replaced it), then hands over the replies not yet written, for up to `FLUSH_ON_EXIT`.
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.file {
            let _ = std::fs::remove_file(&self.path);
        }
        let deadline = Instant::now() + FLUSH_ON_EXIT;
        loop {
            self.conns.retain(|c| !c.dead && c.unsent() > 0);
            let left = deadline.saturating_duration_since(Instant::now());
            if self.conns.is_empty() || left.is_zero() {
                return;
            }
            let mut fds: Vec<libc::pollfd> =
                self.conns.iter().map(|c| libc::pollfd { fd: c.fd.as_raw_fd(), events: libc::POLLOUT, revents: 0 }).collect();
            let ms = left.as_millis().max(1) as libc::c_int;
            // SAFETY: fds is a valid array of fds.len() entries.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) } < 0 {
                if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    return;
                }
                continue;
            }
            for c in &mut self.conns {
                if !c.flush() {
                    c.dead = true;
                }
            }
        }
    }
}
