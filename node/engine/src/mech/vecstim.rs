//! VecStim: the classic `vecevent.mod`, one spike at each time of a list.

use super::{MechDef, MechKind};
use crate::sim::queue::{EventKind, EventQueue};

pub static DEF: MechDef = MechDef {
    name: "VecStim",
    kind: MechKind::Artificial,
    params: &[],
    vars: &[],
    ions: &[],
    receives: true,
    receive_writes: &[],
    initial_writes: &[],
};

const FLAG_SPIKE: u8 = 1;

#[derive(Debug, Clone, Default)]
pub struct VecStim {
    pub times: Vec<Vec<f64>>,
    /// Next element to play; -1 when the list is exhausted (vecevent.mod's `index`).
    pub(crate) index: Vec<f64>,
    pub(crate) etime: Vec<f64>,
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
