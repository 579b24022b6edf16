//! All ZeroMQ code of spikebus: binding, receiving requests, replying, publishing. Nothing
//! else touches a socket, so the transport stays replaceable.

use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::AppError;

/// One libzmq context for the process.
pub struct Bus {
    ctx: zmq::Context,
}

impl Default for Bus {
    fn default() -> Self {
        Bus { ctx: zmq::Context::new() }
    }
}

fn zmq_err(what: &str, endpoint: &str) -> impl Fn(zmq::Error) -> AppError {
    let context = format!("{what} {endpoint}");
    move |e| AppError::Bus(format!("{context}: {e}"))
}

/// Refuses endpoints that are not tcp:// or ipc://, and tcp addresses off this machine.
pub fn check_endpoint(endpoint: &str) -> Result<(), AppError> {
    let refuse = |why: &str| Err(AppError::Usage(format!("endpoint {endpoint}: {why}")));
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        if path.is_empty() {
            return refuse("an ipc endpoint needs a path, e.g. ipc:///tmp/spikebus.ctl");
        }
        return Ok(());
    }
    let Some(addr) = endpoint.strip_prefix("tcp://") else {
        return refuse("use tcp://HOST:PORT or ipc:///PATH");
    };
    let Some((host, port)) = addr.rsplit_once(':') else {
        return refuse("a tcp endpoint needs a port, e.g. tcp://127.0.0.1:0 (0 picks a free port)");
    };
    if port.parse::<u16>().is_err() {
        return refuse("the port must be a number from 0 to 65535");
    }
    let loopback = matches!(host, "localhost" | "[::1]") || host.split('.').next() == Some("127") && host.parse::<std::net::Ipv4Addr>().is_ok();
    if !loopback {
        return refuse("spikebus binds loopback only (127.0.0.1, [::1], localhost)");
    }
    Ok(())
}

/// The REP socket a controller talks to.
pub struct Control {
    sock: zmq::Socket,
    pub endpoint: String,
}

impl Bus {
    pub fn control(&self, endpoint: &str) -> Result<Control, AppError> {
        check_endpoint(endpoint)?;
        let sock = self.ctx.socket(zmq::REP).map_err(zmq_err("cannot create a socket for", endpoint))?;
        // The last reply (`done`) must reach the controller even though the node exits next.
        sock.set_linger(2000).map_err(zmq_err("cannot configure", endpoint))?;
        sock.bind(endpoint).map_err(zmq_err("cannot bind", endpoint))?;
        let bound = last_endpoint(&sock, endpoint);
        Ok(Control { sock, endpoint: bound })
    }

    pub fn publisher(&self, endpoint: &str, hwm: i32) -> Result<Publisher, AppError> {
        check_endpoint(endpoint)?;
        let mut sock = self.ctx.socket(zmq::XPUB).map_err(zmq_err("cannot create a socket for", endpoint))?;
        sock.set_sndhwm(hwm).map_err(zmq_err("cannot configure", endpoint))?;
        sock.set_linger(2000).map_err(zmq_err("cannot configure", endpoint))?;
        set_xpub_nodrop(&mut sock).map_err(zmq_err("cannot configure", endpoint))?;
        // Pass every subscription up, even a repeated one, so that `wait_subscribers` counts
        // subscribers rather than distinct topics.
        sock.set_xpub_verbose(true).map_err(zmq_err("cannot configure", endpoint))?;
        sock.bind(endpoint).map_err(zmq_err("cannot bind", endpoint))?;
        let bound = last_endpoint(&sock, endpoint);
        Ok(Publisher { sock, endpoint: bound, seq: 0, published: 0, dropped: 0, subscribers: 0 })
    }
}

fn last_endpoint(sock: &zmq::Socket, asked: &str) -> String {
    match sock.get_last_endpoint() {
        Ok(Ok(s)) => s,
        _ => asked.to_string(),
    }
}

/// ZMQ_XPUB_NODROP: at the high-water mark a send fails (EAGAIN) instead of silently dropping
/// for the slow subscriber, so that the node can count what was lost. The zmq crate has no
/// setter for it.
fn set_xpub_nodrop(sock: &mut zmq::Socket) -> Result<(), zmq::Error> {
    let on: c_int = 1;
    // SAFETY: a valid socket pointer, an int option value of the right size.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            sock.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as c_int,
            &on as *const c_int as *const c_void,
            std::mem::size_of::<c_int>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }))
    }
}

impl Control {
    /// Waits up to `timeout_ms` for a request (None on timeout). A multi-frame message is
    /// drained and returned as its first frame followed by a marker the decoder rejects.
    pub fn recv(&self, timeout_ms: i64) -> Result<Option<Vec<u8>>, AppError> {
        let ready = self.sock.poll(zmq::POLLIN, timeout_ms).map_err(zmq_err("cannot poll", &self.endpoint))?;
        if ready == 0 {
            return Ok(None);
        }
        let mut msg = self.sock.recv_bytes(0).map_err(zmq_err("cannot receive on", &self.endpoint))?;
        let mut extra = false;
        while self.sock.get_rcvmore().unwrap_or(false) {
            let _ = self.sock.recv_bytes(0);
            extra = true;
        }
        if extra {
            // 0xc1 is never valid MessagePack: the request is refused as a bad message.
            msg.push(0xc1);
        }
        Ok(Some(msg))
    }

    pub fn send(&self, bytes: &[u8]) -> Result<(), AppError> {
        self.sock.send(bytes, 0).map_err(zmq_err("cannot reply on", &self.endpoint))
    }
}

/// The state stream: an XPUB socket (subscribers see a PUB).
pub struct Publisher {
    sock: zmq::Socket,
    pub endpoint: String,
    seq: u64,
    /// Messages handed to libzmq for every subscriber, and messages dropped at the HWM.
    pub published: u64,
    pub dropped: u64,
    subscribers: usize,
}

impl Publisher {
    /// The `seq` of the next message (counts every attempt, so gaps show losses).
    pub fn next_seq(&mut self) -> u64 {
        let s = self.seq;
        self.seq += 1;
        s
    }

    /// Publishes without ever blocking; at the high-water mark the message is dropped and counted.
    pub fn send(&mut self, topic: &[u8], payload: &[u8]) {
        match self.sock.send(topic, zmq::DONTWAIT | zmq::SNDMORE) {
            Ok(()) => {
                // Once the first frame is in, the rest of a message is always accepted.
                let _ = self.sock.send(payload, 0);
                self.published += 1;
            }
            Err(_) => self.dropped += 1,
        }
    }

    /// Publishes, waiting up to `timeout_ms` for room (lifecycle messages must not be lost to
    /// a momentary backlog); counted as dropped if there is still none.
    pub fn send_reliable(&mut self, topic: &[u8], payload: &[u8], timeout_ms: i64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms as u64);
        loop {
            if self.sock.send(topic, zmq::DONTWAIT | zmq::SNDMORE).is_ok() {
                let _ = self.sock.send(payload, 0);
                self.published += 1;
                return;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                self.dropped += 1;
                return;
            }
            let _ = self.sock.poll(zmq::POLLOUT, left.as_millis().max(1) as i64);
        }
    }

    /// Blocks until `n` subscriptions have arrived (a handshake with observers), or `stop`.
    pub fn wait_subscribers(&mut self, n: usize, stop: &AtomicBool) -> Result<(), AppError> {
        while self.subscribers < n {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if self.sock.poll(zmq::POLLIN, 100).map_err(zmq_err("cannot poll", &self.endpoint))? > 0 {
                let msg = self.sock.recv_bytes(0).map_err(zmq_err("cannot receive on", &self.endpoint))?;
                if msg.first() == Some(&1) {
                    self.subscribers += 1;
                }
            }
        }
        Ok(())
    }
}
