//! The control channel as the lockstep sees it: requests in, one reply out per request, and
//! who sent what. Two transports implement it, ZeroMQ (`bus::ZmqControl`) and a Unix-domain
//! socket (`unix::UnixControl`); the lockstep logic (`lockstep`) talks only to this trait.

use crate::error::AppError;

/// How long `Transport::recv` waits at most before giving the caller a chance to check its
/// stop flag, timeouts and lingering.
pub const RECV_TIMEOUT_MS: i32 = 100;

/// Who sent a request, as the transport tells them apart (one per connection): where to send
/// the reply, and a name for a controller that did not name itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peer {
    /// The transport's address of the connection (a ZeroMQ routing id, or the number of a
    /// Unix-socket connection).
    pub id: Vec<u8>,
    /// Whether the request came in a REQ envelope (an empty delimiter frame), to be answered
    /// in one.
    pub envelope: bool,
}

impl Peer {
    /// `peer-` and the connection's id in hex.
    pub fn name(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(5 + 2 * self.id.len());
        s.push_str("peer-");
        for &b in &self.id {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 15)] as char);
        }
        s
    }
}

/// A request as it arrived: the first frame of its body and how many frames the body had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub peer: Peer,
    pub bytes: Vec<u8>,
    pub frames: usize,
}

pub trait Transport {
    /// The next request, waiting at most `RECV_TIMEOUT_MS`; None when none came or a signal
    /// interrupted the wait.
    fn recv(&mut self) -> Result<Option<Inbound>, AppError>;

    /// Sends `reply` to the peer a request came from.
    fn send(&mut self, to: &Peer, reply: &[u8]) -> Result<(), AppError>;

    /// How many peers are connected now, if the transport can tell.
    fn connected(&mut self) -> Option<usize>;
}
