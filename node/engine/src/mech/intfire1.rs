//! IntFire1: NEURON's leaky integrate-and-fire artificial cell (`intfire1.mod` as nocmodl
//! translates it): m decays with `tau` between inputs, each input adds its weight, m > 1
//! fires and starts a refractory period of `refrac` ms (a self-event of flag 1).

use super::art::{params_push, ArtCx, Senders};
use super::{Allowed, Field, MechDef, MechKind};
use crate::model::CellSpec;

pub static DEF: MechDef = MechDef {
    name: "IntFire1",
    kind: MechKind::Artificial,
    params: &[
        Field::new("tau", "ms", 10.0, Allowed::Positive),
        Field::new("refrac", "ms", 5.0, Allowed::NonNegative),
    ],
    vars: &["m"],
    ions: &[],
    receives: true,
    receive_writes: &[0],
    current_outputs: &[],
    initial_writes: &[],
};

const TAU: usize = 0;
const REFRAC: usize = 1;

#[derive(Debug, Clone, Default)]
pub struct IntFire1 {
    pub p: [Vec<f64>; 2],
    m: Vec<f64>,
    t0: Vec<f64>,
    /// 0: integrating inputs, 1: refractory.
    refractory: Vec<f64>,
    pub send: Senders,
}

impl IntFire1 {
    pub fn push(&mut self, cell: u32, spec: &CellSpec) {
        params_push(&mut self.p, spec);
        self.m.push(0.0);
        self.t0.push(0.0);
        self.refractory.push(0.0);
        self.send.push(cell);
    }

    pub fn set_param(&mut self, field: usize, k: usize, value: f64) {
        self.p[field][k] = value;
    }

    pub fn initial(&mut self, k: usize, cx: &mut ArtCx) {
        self.m[k] = 0.0;
        self.t0[k] = cx.t;
        self.refractory[k] = 0.0;
    }

    /// NET_RECEIVE(w): inputs count only while not refractory; the refractory period's end is
    /// its own event (flag 1). The self-event is queued before `net_event`, as in the .mod.
    pub fn receive(&mut self, k: usize, flag: u8, w: f64, cx: &mut ArtCx) -> bool {
        let t = cx.t;
        if self.refractory[k] == 0.0 {
            self.m[k] *= crate::exp::exp(-(t - self.t0[k]) / self.p[TAU][k]);
            self.t0[k] = t;
            self.m[k] += w;
            if self.m[k] > 1.0 {
                self.refractory[k] = 1.0;
                self.m[k] = 2.0;
                self.send.send(k, cx, t + self.p[REFRAC][k], 1);
                return true;
            }
        } else if flag == 1 {
            self.t0[k] = t;
            self.refractory[k] = 0.0;
            self.m[k] = 0.0;
        }
        false
    }

    pub fn after_event(&mut self, _k: usize, _cx: &mut ArtCx) {}

    pub fn var(&self, _var: usize, k: usize) -> f64 {
        self.m[k]
    }
}

impl IntFire1 {
    /// A snapshot's state of instance k: m, t0, refractory.
    pub fn save(&self, k: usize, o: &mut dyn FnMut(u64)) {
        super::art::save_cols(&[&self.m, &self.t0, &self.refractory], k, o);
    }

    pub fn load(&mut self, k: usize, i: &mut dyn FnMut() -> u64) -> Result<(), &'static str> {
        super::art::load_cols(&mut [&mut self.m, &mut self.t0, &mut self.refractory], k, i);
        Ok(())
    }
}
