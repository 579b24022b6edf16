//! Artificial cells: NetStim (netstim.mod of NEURON 9.0.2, statement for statement) and
//! VecStim (the classic vecevent.mod: one spike at each time of a list).
//!
//! They talk to the rest of the simulation through the event queue: their own `net_send`
//! self-events, and `net_event` (a `fire` callback from `Sim` that queues the NetCon events).

use super::queue::{EventKind, EventQueue};
use super::random123::Stream;

/// NMODL flags of NetStim's self-events.
pub const FLAG_SPIKE: u8 = 1;
pub const FLAG_INIT: u8 = 3;

#[derive(Debug, Clone, Default)]
pub struct NetStim {
    pub interval: Vec<f64>,
    pub number: Vec<f64>,
    pub start: Vec<f64>,
    pub noise: Vec<f64>,
    pub on: Vec<bool>,
    pub ispike: Vec<f64>,
    pub event: Vec<f64>,
    /// `RANDOM ranvar`: each NetStim's Random123 stream (ids set by `Sim` from the model).
    pub ranvar: Vec<Stream>,
    /// NEURON's `Random123_globalindex`, the key shared by every stream.
    pub globalindex: u32,
    /// This NetStim's index among all artificial cells (for its self-events).
    pub cell: Vec<u32>,
}

impl NetStim {
    pub fn push(&mut self, cell: u32) {
        for f in [
            &mut self.interval, &mut self.number, &mut self.start, &mut self.noise, &mut self.ispike,
            &mut self.event,
        ] {
            f.push(0.0);
        }
        self.on.push(false);
        self.ranvar.push(Stream::default());
        self.cell.push(cell);
    }

    fn invl(&mut self, k: usize, mut mean: f64) -> f64 {
        if mean <= 0.0 {
            mean = 0.01;
        }
        let noise = self.noise[k];
        if noise == 0.0 {
            mean
        } else {
            // erand() = random_negexp(ranvar)
            (1.0 - noise) * mean + noise * mean * self.ranvar[k].negexp(self.globalindex)
        }
    }

    fn init_sequence(&mut self, k: usize) {
        if self.number[k] > 0.0 {
            self.on[k] = true;
            self.event[k] = 0.0;
            self.ispike[k] = 0.0;
        }
    }

    fn next_invl(&mut self, k: usize) {
        if self.number[k] > 0.0 {
            self.event[k] = self.invl(k, self.interval[k]);
        }
        if self.ispike[k] >= self.number[k] {
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
        self.noise[k] = self.noise[k].clamp(0.0, 1.0);
        if self.start[k] >= 0.0 && self.number[k] > 0.0 {
            self.on[k] = true;
            let interval = self.interval[k];
            let mut event = self.start[k] + self.invl(k, interval) - interval * (1.0 - self.noise[k]);
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
                self.event[k] -= self.interval[k] * (1.0 - self.noise[k]);
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

#[derive(Debug, Clone, Default)]
pub struct VecStim {
    pub times: Vec<Vec<f64>>,
    /// Next element to play; -1 when the list is exhausted (vecevent.mod's `index`).
    pub index: Vec<f64>,
    pub etime: Vec<f64>,
    pub cell: Vec<u32>,
}

impl VecStim {
    pub fn push(&mut self, cell: u32, times: Vec<f64>) {
        self.times.push(times);
        self.index.push(0.0);
        self.etime.push(0.0);
        self.cell.push(cell);
    }

    fn element(&mut self, k: usize) {
        let i = self.index[k];
        if i >= 0.0 {
            if (i as usize) < self.times[k].len() {
                self.etime[k] = self.times[k][i as usize];
                self.index[k] += 1.0;
            } else {
                self.index[k] = -1.0;
            }
        }
    }

    fn send_next(&self, k: usize, t: f64, queue: &mut EventQueue) {
        if self.index[k] > 0.0 {
            // net_send(etime - t, 1): NEURON adds the delay back to t.
            queue.push(t + (self.etime[k] - t), EventKind::SelfEvent { cell: self.cell[k], flag: FLAG_SPIKE });
        }
    }

    pub fn initial(&mut self, k: usize, queue: &mut EventQueue) {
        self.index[k] = 0.0;
        self.element(k);
        self.send_next(k, 0.0, queue);
    }

    /// NET_RECEIVE up to `net_event(t)`: only its own events make it fire (then the caller
    /// records the spike, queues its NetCon events and calls `after_event`).
    pub fn receive(&mut self, _k: usize, flag: u8) -> bool {
        flag == FLAG_SPIKE
    }

    /// The rest of NET_RECEIVE after `net_event`: the next element, its self-event.
    pub fn after_event(&mut self, k: usize, t: f64, queue: &mut EventQueue) {
        self.element(k);
        self.send_next(k, t, queue);
    }
}
