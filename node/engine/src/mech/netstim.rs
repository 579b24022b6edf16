//! NetStim: NEURON's spike generator (`netstim.mod` of NEURON 9.0.2, statement for statement),
//! its noise drawn from a Random123 stream (`RANDOM ranvar`).

use super::art::{params_push, ArtCx, Senders};
use super::{Allowed, Field, MechDef, MechKind};
use crate::model::CellSpec;
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
    current_outputs: &[],
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
    pub send: Senders,
}

impl NetStim {
    pub fn push(&mut self, cell: u32, spec: &CellSpec) {
        params_push(&mut self.p, spec);
        self.ispike.push(0.0);
        self.event.push(0.0);
        self.on.push(false);
        self.ranvar.push(Stream::default());
        self.send.push(cell);
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

    /// INITIAL at t = 0.
    pub fn initial(&mut self, k: usize, cx: &mut ArtCx) {
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
            self.send.send(k, cx, cx.t + event, FLAG_INIT);
        }
    }

    /// NET_RECEIVE, up to its `net_event(t)` (NEURON runs a NetCon.record callback and queues
    /// the NetCon events inside net_event, so before the next interval is drawn and the next
    /// self-event queued).
    pub fn receive(&mut self, k: usize, flag: u8, w: f64, cx: &mut ArtCx) -> bool {
        let t = cx.t;
        if flag == 0 {
            if w > 0.0 && !self.on[k] {
                self.init_sequence(k);
                self.next_invl(k);
                self.event[k] -= self.p[INTERVAL][k] * (1.0 - self.p[NOISE][k]);
                self.send.send(k, cx, t + self.event[k], FLAG_SPIKE);
            } else if w < 0.0 {
                self.on[k] = false;
            }
        }
        if flag == FLAG_INIT && self.on[k] {
            self.init_sequence(k);
            self.send.send(k, cx, t + 0.0, FLAG_SPIKE);
        }
        if flag == FLAG_SPIKE && self.on[k] {
            self.ispike[k] += 1.0;
            return true;
        }
        false
    }

    /// The rest of NET_RECEIVE after `net_event` (flag 1): the next interval, read now.
    pub fn after_event(&mut self, k: usize, cx: &mut ArtCx) {
        self.next_invl(k);
        if self.on[k] {
            self.send.send(k, cx, cx.t + self.event[k], FLAG_SPIKE);
        }
    }

    pub fn var(&self, _var: usize, _k: usize) -> f64 {
        unreachable!("NetStim has no recordable variables")
    }
}

impl NetStim {
    /// A snapshot's state of instance k: on, ispike, event, and its Random123 stream
    /// (counter, output block, next word).
    pub fn save(&self, k: usize, o: &mut dyn FnMut(u64)) {
        o(u64::from(self.on[k]));
        super::art::save_cols(&[&self.ispike, &self.event], k, o);
        let (c, r, which) = self.ranvar[k].raw();
        c.into_iter().chain(r).for_each(|x| o(u64::from(x)));
        o(u64::from(which));
    }

    pub fn load(&mut self, k: usize, i: &mut dyn FnMut() -> u64) -> Result<(), &'static str> {
        self.on[k] = match i() {
            0 => false,
            1 => true,
            _ => return Err("a NetStim's `on` flag"),
        };
        super::art::load_cols(&mut [&mut self.ispike, &mut self.event], k, i);
        let mut x = [0u32; 8];
        for w in &mut x {
            *w = u32::try_from(i()).map_err(|_| "a random stream word")?;
        }
        let which = u8::try_from(i()).ok().filter(|&w| w <= 3).ok_or("a random stream's next word")?;
        let [c0, c1, c2, c3, r0, r1, r2, r3] = x;
        self.ranvar[k] = crate::sim::random123::Stream::from_raw([c0, c1, c2, c3], [r0, r1, r2, r3], which);
        Ok(())
    }
}
