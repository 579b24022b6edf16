//! Who talks to the node: the run's owner, and the last replies sent to each client, so that
//! a request resent after a lost reply gets the same reply and is applied once.
//!
//! A client is known by the `client` name its requests carry, or, without one, by its
//! connection (`Peer::name`). Replies are kept per client (the last `REPLIES_PER_CLIENT`), for
//! the clients heard from most recently (`MAX_CLIENTS`), within `MAX_BYTES` in all: enough for
//! any controller's retries, bounded whatever the traffic.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

pub const REPLIES_PER_CLIENT: usize = 16;
pub const MAX_CLIENTS: usize = 64;
pub const MAX_BYTES: usize = 64 << 20;

/// A request answered: its id, a digest of its bytes, the reply sent.
struct Answered {
    id: u64,
    len: usize,
    digest: u64,
    reply: Vec<u8>,
}

struct Log {
    client: String,
    last_heard: u64,
    answered: VecDeque<Answered>,
}

#[derive(Default)]
pub struct Clients {
    owner: Option<String>,
    logs: Vec<Log>,
    tick: u64,
    bytes: usize,
}

/// SipHash-1-3 with fixed keys: the same digest for the same bytes within the process.
fn digest(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

impl Clients {
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// Makes `client` the owner; returns the previous owner.
    pub fn set_owner(&mut self, client: &str) -> Option<String> {
        self.owner.replace(client.to_string())
    }

    /// The reply already sent to `client` for request `id` with exactly these bytes.
    pub fn replied(&mut self, client: &str, id: u64, bytes: &[u8]) -> Option<&[u8]> {
        let tick = self.next_tick();
        let log = self.logs.iter_mut().find(|l| l.client == client)?;
        log.last_heard = tick;
        let d = digest(bytes);
        log.answered.iter().rev().find(|a| a.id == id && a.len == bytes.len() && a.digest == d).map(|a| a.reply.as_slice())
    }

    /// Remembers the reply to `client`'s request `id`.
    pub fn remember(&mut self, client: &str, id: u64, bytes: &[u8], reply: &[u8]) {
        let tick = self.next_tick();
        let i = match self.logs.iter().position(|l| l.client == client) {
            Some(i) => i,
            None => {
                if self.logs.len() >= MAX_CLIENTS {
                    self.forget_least_recent();
                }
                self.logs.push(Log { client: client.to_string(), last_heard: tick, answered: VecDeque::new() });
                self.logs.len() - 1
            }
        };
        let log = &mut self.logs[i];
        log.last_heard = tick;
        // A request id used again with other bytes replaces what was kept for it.
        if let Some(p) = log.answered.iter().position(|a| a.id == id) {
            self.bytes -= log.answered.remove(p).map_or(0, |a| a.reply.len());
        }
        if log.answered.len() >= REPLIES_PER_CLIENT {
            self.bytes -= log.answered.pop_front().map_or(0, |a| a.reply.len());
        }
        self.bytes += reply.len();
        log.answered.push_back(Answered { id, len: bytes.len(), digest: digest(bytes), reply: reply.to_vec() });
        while self.bytes > MAX_BYTES && self.drop_oldest_beyond_last() {}
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn forget_least_recent(&mut self) {
        if let Some(i) = (0..self.logs.len()).min_by_key(|&i| self.logs[i].last_heard) {
            let log = self.logs.swap_remove(i);
            self.bytes -= log.answered.iter().map(|a| a.reply.len()).sum::<usize>();
        }
    }

    /// Drops the oldest kept reply of the least recently heard client that has more than one
    /// (every client keeps at least its last reply); false if none can go.
    fn drop_oldest_beyond_last(&mut self) -> bool {
        let Some(i) = (0..self.logs.len()).filter(|&i| self.logs[i].answered.len() > 1).min_by_key(|&i| self.logs[i].last_heard)
        else {
            return false;
        };
        self.bytes -= self.logs[i].answered.pop_front().map_or(0, |a| a.reply.len());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resend_finds_its_reply_among_others() {
        let mut c = Clients::default();
        c.remember("a", 1, b"req1", b"rep1");
        c.remember("b", 1, b"other", b"repb");
        c.remember("a", 2, b"req2", b"rep2");
        assert_eq!(c.replied("a", 1, b"req1"), Some(&b"rep1"[..]));
        assert_eq!(c.replied("a", 1, b"req1-changed"), None);
        assert_eq!(c.replied("b", 1, b"req1"), None);
        assert_eq!(c.replied("b", 1, b"other"), Some(&b"repb"[..]));
    }

    #[test]
    fn each_client_keeps_its_last_replies() {
        let mut c = Clients::default();
        for i in 0..40u64 {
            c.remember("a", i, &i.to_le_bytes(), &i.to_be_bytes());
        }
        for i in 0..40u64 {
            let kept = c.replied("a", i, &i.to_le_bytes()).is_some();
            assert_eq!(kept, i >= 40 - REPLIES_PER_CLIENT as u64, "request {i}");
        }
    }

    #[test]
    fn memory_is_bounded() {
        let mut c = Clients::default();
        let big = vec![7u8; 1 << 20];
        for i in 0..(2 * MAX_CLIENTS as u64) {
            for j in 0..REPLIES_PER_CLIENT as u64 {
                c.remember(&format!("c{i}"), j, &j.to_le_bytes(), &big);
            }
        }
        assert!(c.bytes <= MAX_BYTES, "{} bytes kept", c.bytes);
        assert!(c.logs.len() <= MAX_CLIENTS);
        // The most recent client still has its last reply.
        let last = format!("c{}", 2 * MAX_CLIENTS - 1);
        let j = REPLIES_PER_CLIENT as u64 - 1;
        assert!(c.replied(&last, j, &j.to_le_bytes()).is_some());
    }
}
