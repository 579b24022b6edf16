//! VecStim: the classic `vecevent.mod`, one spike at each time of a list.

use super::art::{ArtCx, Senders};
use super::{MechDef, MechKind};
use crate::model::CellSpec;

pub static DEF: MechDef = MechDef {
    name: "VecStim",
    kind: MechKind::Artificial,
    params: &[],
    vars: &[],
    ions: &[],
    receives: true,
    receive_writes: &[],
    current_outputs: &[],
    initial_writes: &[],
};

const FLAG_SPIKE: u8 = 1;

#[derive(Debug, Clone, Default)]
pub struct VecStim {
    /// No parameters (the spike times are the cell's list).
    pub p: [Vec<f64>; 0],
    pub times: Vec<Vec<f64>>,
    /// Next element to play; -1 when the list is exhausted (vecevent.mod's `index`).
    pub(crate) index: Vec<f64>,
    pub(crate) etime: Vec<f64>,
    pub send: Senders,
}

impl VecStim {
    pub fn push(&mut self, cell: u32, spec: &CellSpec) {
        self.times.push(spec.times.clone());
        self.index.push(0.0);
        self.etime.push(0.0);
        self.send.push(cell);
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

    fn send_next(&mut self, k: usize, cx: &mut ArtCx) {
        if self.index[k] > 0.0 {
            // net_send(etime - t, 1): NEURON adds the delay back to t.
            self.send.send(k, cx, cx.t + (self.etime[k] - cx.t), FLAG_SPIKE);
        }
    }

    pub fn initial(&mut self, k: usize, cx: &mut ArtCx) {
        self.index[k] = 0.0;
        self.element(k);
        self.send_next(k, cx);
    }

    /// NET_RECEIVE up to `net_event(t)`: only its own events make it fire.
    pub fn receive(&mut self, _k: usize, flag: u8, _w: f64, _cx: &mut ArtCx) -> bool {
        flag == FLAG_SPIKE
    }

    /// The rest of NET_RECEIVE after `net_event`: the next element, its self-event.
    pub fn after_event(&mut self, k: usize, cx: &mut ArtCx) {
        self.element(k);
        self.send_next(k, cx);
    }

    pub fn set_param(&mut self, _field: usize, _k: usize, _value: f64) {
        unreachable!("VecStim has no parameters")
    }

    pub fn var(&self, _var: usize, _k: usize) -> f64 {
        unreachable!("VecStim has no recordable variables")
    }
}

impl VecStim {
    /// A snapshot's state of instance k: the next element's index and event time (the times
    /// are the model's).
    pub fn save(&self, k: usize, o: &mut dyn FnMut(u64)) {
        super::art::save_cols(&[&self.index, &self.etime], k, o);
    }

    pub fn load(&mut self, k: usize, i: &mut dyn FnMut() -> u64) -> Result<(), &'static str> {
        super::art::load_cols(&mut [&mut self.index, &mut self.etime], k, i);
        Ok(())
    }
}
