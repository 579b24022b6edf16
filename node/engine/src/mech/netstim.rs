//! NetStim: NEURON's spike generator (`netstim.mod` of NEURON 9.0.2, statement for statement),
//! its noise drawn from a Random123 stream (`RANDOM ranvar`).
//!
//! An artificial cell talks to the rest of the simulation through the event queue: its own
//! `net_send` self-events, and `net_event` (the caller records the spike and queues the NetCon
//! events between `receive` and `after_event`).

use super::{Allowed, Field, MechDef, MechKind};
use crate::sim::queue::{EventKind, EventQueue};
use crate::sim::random123::Stream;

pub static DEF: MechDef = MechDef {
    name: "NetStim",
    kind: MechKind::Artificial,
    params: &[
        Field::new("interval", "ms", 10.0, Allowed::Positive),
        Field::new("number", "1", 10.0, Allowed::NonNegative),
        Field::new("start", "ms", 50.0, Allowed::Any),
        Field::new("noise", "1", 0.0, Allowed::UnitInterval),
        // The stream's identifiers; the default id3 counts the model's NetStims (see
        // `model::CellSpec::new`), as NEURON numbers the streams it creates.
        Field::new("id1", "1", 1.0, Allowed::Uint32),
        Field::new("id2", "1", 0.0, Allowed::Uint32),
        Field::new("id3", "1", 1.0, Allowed::Uint32),
    ],
    vars: &[],
    ions: &[],
    receives: true,
    receive_writes: &[],
    initial_writes: &[],
};

const INTERVAL: usize = 0;
const NUMBER: usize = 1;
const START: usize = 2;
const NOISE: usize = 3;
pub const ID1: usize = 4;

/// NMODL flags of NetStim's self-events.
pub const FLAG_SPIKE: u8 = 1;
pub const FLAG_INIT: u8 = 3;

#[derive(Debug, Clone, Default)]
pub struct NetStim {
    pub p: [Vec<f64>; 7],
    pub(crate) on: Vec<bool>,
    pub(crate) ispike: Vec<f64>,
    pub(crate) event: Vec<f64>,
    pub(crate) ranvar: Vec<Stream>,
    /// NEURON's `Random123_globalindex`, the key shared by every stream.
    pub globalindex: u32,
    /// This NetStim's index among all artificial cells (for its self-events).
    pub cell: Vec<u32>,
}

impl NetStim {
    pub fn push(&mut self, cell: u32) {
        for (f, field) in self.p.iter_mut().zip(DEF.params) {
            f.push(field.default);
        }
        self.ispike.push(0.0);
        self.event.push(0.0);
        self.on.push(false);
        self.ranvar.push(Stream::default());
        self.cell.push(cell);
    }

    /// A new value of a parameter. `ranvar.set_ids(...)` only when an id is what changed:
    /// NEURON's set_ids leaves the stream's position and computed block alone.
    pub fn set_param(&mut self, field: usize, k: usize, value: f64) {
        self.p[field][k] = value;
        if field >= ID1 {
            let ids = [0, 1, 2].map(|i| self.p[ID1 + i][k] as u32);
            self.ranvar[k].set_ids(ids);
        }
    }

    fn invl(&mut self, k: usize, mut mean: f64) -> f64 {
        if mean <= 0.0 {
            mean = 0.01;
        }
        let noise = self.p[NOISE][k];
        if noise == 0.0 {
            mean
        } else {
            // erand() = random_negexp(ranvar)
            (1.0 - noise) * mean + noise * mean * self.ranvar[k].negexp(self.globalindex)
        }
    }

    fn init_sequence(&mut self, k: usize) {
        if self.p[NUMBER][k] > 0.0 {
            self.on[k] = true;
            self.event[k] = 0.0;
            self.ispike[k] = 0.0;
        }
    }

    fn next_invl(&mut self, k: usize) {
        if self.p[NUMBER][k] > 0.0 {
            self.event[k] = self.invl(k, self.p[INTERVAL][k]);
        }
        if self.ispike[k] >= self.p[NUMBER][k] {
            self.on[k] = false;
        }
    }

    fn send(&self, k: usize, queue: &mut EventQueue, t: f64, delay: f64, flag: u8) {
        queue.push(t + delay, EventKind::SelfEvent { cell: self.cell[k], flag });
    }

    /// INITIAL at t = 0.
    pub fn initial(&mut self, k: usize, queue: &mut EventQueue) {
        // seed(0): random_setseq(ranvar, 0), so every run draws from sequence 0 (whatever
        // sequence a user set before), with the ids and global index in force now.
        self.ranvar[k].set_seq4which(0.0, self.globalindex);
        self.on[k] = false;
        self.ispike[k] = 0.0;
        self.p[NOISE][k] = self.p[NOISE][k].clamp(0.0, 1.0);
        if self.p[START][k] >= 0.0 && self.p[NUMBER][k] > 0.0 {
            self.on[k] = true;
            let interval = self.p[INTERVAL][k];
            let mut event = self.p[START][k] + self.invl(k, interval) - interval * (1.0 - self.p[NOISE][k]);
            if event < 0.0 {
                event = 0.0;
            }
            self.event[k] = event;
            self.send(k, queue, 0.0, event, FLAG_INIT);
        }
    }

    /// NET_RECEIVE at time t, up to its `net_event(t)`: true if it fires, and then the caller
    /// records the spike, queues its NetCon events and calls `after_event` (NEURON runs a
    /// NetCon.record callback and queues the NetCon events inside net_event, so before the
    /// next interval is drawn and the next self-event queued).
    pub fn receive(&mut self, k: usize, flag: u8, w: f64, t: f64, queue: &mut EventQueue) -> bool {
        if flag == 0 {
            if w > 0.0 && !self.on[k] {
                self.init_sequence(k);
                self.next_invl(k);
                self.event[k] -= self.p[INTERVAL][k] * (1.0 - self.p[NOISE][k]);
                self.send(k, queue, t, self.event[k], FLAG_SPIKE);
            } else if w < 0.0 {
                self.on[k] = false;
            }
        }
        if flag == FLAG_INIT && self.on[k] {
            self.init_sequence(k);
            self.send(k, queue, t, 0.0, FLAG_SPIKE);
        }
        if flag == FLAG_SPIKE && self.on[k] {
            self.ispike[k] += 1.0;
            return true;
        }
        false
    }

    /// The rest of NET_RECEIVE after `net_event` (flag 1): the next interval, read now.
    pub fn after_event(&mut self, k: usize, t: f64, queue: &mut EventQueue) {
        self.next_invl(k);
        if self.on[k] {
            self.send(k, queue, t, self.event[k], FLAG_SPIKE);
        }
    }
}
