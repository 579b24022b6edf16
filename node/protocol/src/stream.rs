//! Messages of the state stream (PUB). Each is sent as two frames: the topic, then the map.

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize};

use crate::control::{EndReason, SyncBody, Totals};

pub const TOPIC_STARTED: &[u8] = b"started";
pub const TOPIC_STATE: &[u8] = b"state";
pub const TOPIC_SPIKE: &[u8] = b"spike";
pub const TOPIC_SYNC: &[u8] = b"sync";
pub const TOPIC_DONE: &[u8] = b"done";
pub const TOPIC_OWNER: &[u8] = b"owner";
pub const TOPIC_HASH: &[u8] = b"hash";
pub const TOPIC_RESTORE: &[u8] = b"restore";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Started {
    pub seq: u64,
    pub model: String,
    pub dt: f64,
    pub tstop: f64,
    pub signals: Vec<String>,
    pub sources: Vec<String>,
}

/// A batch of samples: `step` and `t` lists, then one list per signal keyed by its name.
#[derive(Debug, Clone, Copy)]
pub struct StateBatch<'a> {
    pub seq: u64,
    pub step: &'a [u64],
    pub t: &'a [f64],
    pub signals: &'a [String],
    /// `values[k]` holds signal k's samples, as long as `t`.
    pub values: &'a [Vec<f64>],
}

impl Serialize for StateBatch<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3 + self.signals.len()))?;
        m.serialize_entry("seq", &self.seq)?;
        m.serialize_entry("step", self.step)?;
        m.serialize_entry("t", self.t)?;
        for (name, vals) in self.signals.iter().zip(self.values) {
            m.serialize_entry(name, vals)?;
        }
        m.end()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SpikePub<'a> {
    pub seq: u64,
    pub source: &'a str,
    pub t: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncPub<'a> {
    pub seq: u64,
    #[serde(flatten)]
    pub body: &'a SyncBody,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DonePub {
    pub seq: u64,
    pub reason: EndReason,
    pub t: f64,
    pub step: u64,
    pub published: u64,
    pub error: Option<String>,
    pub telemetry: Totals,
}

/// The state hash at a step boundary (every `hash_every` steps, when asked for).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct HashPub {
    pub seq: u64,
    pub step: u64,
    pub t: f64,
    pub hash: String,
}

/// The run went back to a snapshot: what follows on the stream continues from there.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct RestorePub {
    pub seq: u64,
    pub snapshot: u64,
    pub t: f64,
    pub step: u64,
}

/// A controller took over the run (`hello` with `takeover`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct OwnerPub {
    pub seq: u64,
    pub client: String,
    /// The owner before (null if the run had none).
    pub previous: Option<String>,
    pub t: f64,
    pub step: u64,
}
