//! IntFire4: NEURON's integrate-and-fire cell with a fast excitatory current and a slower,
//! alpha-like inhibitory current (`intfire4.mod` as nocmodl translates it). States e, i1, i2
//! and m evolve analytically between events; a lower bound of the firing time (a self-event
//! of flag 1, moved by each input) is found from the slope of m; m > 1 - eps fires.

use super::art::{params_push, ArtCx, Senders};
use super::{Allowed, Field, MechDef, MechKind};
use crate::model::CellSpec;

pub static DEF: MechDef = MechDef {
    name: "IntFire4",
    kind: MechKind::Artificial,
    params: &[
        Field::new("taue", "ms", 5.0, Allowed::Positive),
        Field::new("taui1", "ms", 10.0, Allowed::Positive),
        Field::new("taui2", "ms", 20.0, Allowed::Positive),
        Field::new("taum", "ms", 50.0, Allowed::Positive),
    ],
    vars: &["e", "i1", "i2", "m", "ae", "ai2", "ai1", "nself", "nexcite", "ninhibit"],
    ions: &[],
    receives: true,
    receive_writes: &[E, I1, I2, M, NSELF, NEXCITE, NINHIBIT],
    current_outputs: &[],
    // INITIAL enforces the time constants' order (fixprecondition) and writes them back.
    initial_writes: &[TAUE, TAUI1, TAUI2, TAUM],
};

const TAUE: usize = 0;
const TAUI1: usize = 1;
const TAUI2: usize = 2;
const TAUM: usize = 3;

// Indices in `vars` (then ae, ai2, ai1).
const E: usize = 0;
const I1: usize = 1;
const I2: usize = 2;
const M: usize = 3;
const NSELF: usize = 7;
const NEXCITE: usize = 8;
const NINHIBIT: usize = 9;

/// NEURON's GLOBALs `eps_IntFire4` and `taueps_IntFire4`, at their defaults.
const EPS: f64 = 1e-6;
const TAUEPS: f64 = 0.01;

/// One instance's assigned variables (the .mod's names).
#[derive(Debug, Clone, Copy, Default)]
struct St {
    e: f64,
    i1: f64,
    i2: f64,
    m: f64,
    enew: f64,
    i1new: f64,
    i2new: f64,
    mnew: f64,
    t0: f64,
    nself: f64,
    nexcite: f64,
    ninhibit: f64,
    ke: f64,
    ki1: f64,
    ki2: f64,
    km: f64,
    ae: f64,
    ai1: f64,
    ai2: f64,
    be: f64,
    bi1: f64,
    bi2: f64,
    a: f64,
    b: f64,
}

impl St {
    /// PROCEDURE newstates(d): the states d ms after t0.
    fn newstates(&mut self, d: f64) {
        let exp = crate::exp::exp;
        let ee = exp(-self.ke * d);
        let ei1 = exp(-self.ki1 * d);
        let ei2 = exp(-self.ki2 * d);
        let em = exp(-self.km * d);
        self.enew = self.e * ee;
        self.i1new = self.i1 * ei1;
        self.i2new = self.i2 * ei2 + self.bi1 * self.i1 * (ei2 - ei1);
        self.mnew = self.m * em + self.be * self.e * (em - ee) + (self.bi2 * self.i2 + self.a * self.i1) * (em - ei2)
            - self.b * self.i1 * (em - ei1);
    }

    /// PROCEDURE update().
    fn update(&mut self, t: f64) {
        self.e = self.enew;
        self.i1 = self.i1new;
        self.i2 = self.i2new;
        self.m = self.mnew;
        self.t0 = t;
    }

    /// FUNCTION deriv(d): proportional to dm/dt after a unit i1 (sign exact).
    fn deriv(&self, d: f64) -> f64 {
        let exp = crate::exp::exp;
        let (km, ki1, ki2) = (self.km, self.ki1, self.ki2);
        (-km * exp(-d * km) + ki2 * exp(-d * ki2)) / (ki2 - km) - (-km * exp(-d * km) + ki1 * exp(-d * ki1)) / (ki1 - km)
    }

    /// FUNCTION search(): where dm/dt = 0 after a unit i1 (exponential search, then
    /// bisection); NEURON prints an error and gives up at 1e-9 or 1e9 ms.
    fn search(&self) -> f64 {
        let mut t1 = 1.0f64;
        let mut t2 = 0.0f64;
        let mut search = 0.0f64;
        let mut failed = false;
        if self.deriv(t1) < 0.0 {
            while self.deriv(t1) < 0.0 && t1 > 1e-9 {
                t2 = t1;
                t1 /= 10.0;
            }
            if self.deriv(t1) < 0.0 {
                failed = true;
                search = 1e-9;
            }
        } else {
            t2 = t1;
            while self.deriv(t2) > 0.0 && t2 < 1e9 {
                t1 = t2;
                t2 *= 10.0;
            }
            if self.deriv(t2) > 0.0 {
                failed = true;
                search = 1e9;
            }
        }
        while t2 - t1 > 1e-6 && !failed {
            search = (t1 + t2) / 2.0;
            let x = self.deriv(search);
            if x > 0.0 {
                t1 = search;
            } else {
                t2 = search;
            }
        }
        search
    }

    /// PROCEDURE factors(): rate constants and normalizations (a unit excitatory weight
    /// peaks m at 1, a unit inhibitory one peaks i2 and m at -1).
    fn factors(&mut self, [taue, taui1, taui2, taum]: [f64; 4]) {
        self.ke = 1.0 / taue;
        self.ki1 = 1.0 / taui1;
        self.ki2 = 1.0 / taui2;
        self.km = 1.0 / taum;
        let exp = crate::exp::exp;
        let tp = (self.km / self.ke).ln() / (self.km - self.ke);
        self.be = 1.0 / (exp(-self.km * tp) - exp(-self.ke * tp));
        self.ae = self.be * (self.ke - self.km);
        let tp = (self.ki2 / self.ki1).ln() / (self.ki2 - self.ki1);
        self.bi1 = 1.0 / (exp(-self.ki2 * tp) - exp(-self.ki1 * tp));
        self.ai1 = self.bi1 * (self.ki1 - self.ki2);
        self.e = 0.0;
        self.i1 = 1.0;
        self.i2 = 0.0;
        self.m = 0.0;
        self.bi2 = 1.0;
        self.set_bi2_terms();
        let tp = self.search();
        self.newstates(tp);
        self.bi2 = 1.0 / self.mnew;
        self.set_bi2_terms();
        self.newstates(tp);
        self.i1 = 0.0;
    }

    fn set_bi2_terms(&mut self) {
        self.ai2 = self.bi2 * (self.ki2 - self.km);
        self.a = self.bi2 * self.bi1;
        self.b = self.a * (self.ki2 - self.km) / (self.ki1 - self.km);
    }

    /// FUNCTION firetimebound().
    fn firetimebound(&self) -> f64 {
        let slope = -self.km * self.m + self.ae * self.e + self.ai2 * self.i2;
        if slope <= 1e-9 {
            1e9
        } else {
            (1.0 - self.m) / slope
        }
    }
}

/// PROCEDURE fixprecondition(): taue < taui2, taui1 < taui2, and every two time constants at
/// least taueps apart (NEURON prints a warning when it adjusts taue or swaps taui1, taui2).
fn fixprecondition([mut taue, mut taui1, mut taui2, mut taum]: [f64; 4]) -> [f64; 4] {
    if taui2 < 4.0 * TAUEPS {
        taui2 = 4.0 * TAUEPS;
    }
    if taui1 < 3.0 * TAUEPS {
        taui1 = 3.0 * TAUEPS;
    }
    if taue < 2.0 * TAUEPS {
        taue = 2.0 * TAUEPS;
    }
    if taue > taui2 {
        taue = taui2 - TAUEPS;
    } else if taui2 - taue < TAUEPS {
        taue = taui2 - TAUEPS;
    }
    if taui1 > taui2 {
        std::mem::swap(&mut taui1, &mut taui2);
    }
    if taui2 - taui1 < TAUEPS {
        taui1 = taui2 - TAUEPS;
    }
    if taum <= taui2 {
        if taui2 - taum < TAUEPS {
            taum = taui2 - TAUEPS;
        }
        if (taui1 - taum).abs() < TAUEPS {
            taum = taui1 - TAUEPS;
        }
        if (taui1 - taum).abs() < TAUEPS {
            if taui1 - taum < 0.0 {
                taum = taui1 - TAUEPS;
            } else {
                taui1 = taum - TAUEPS;
            }
        }
        if (taue - taum).abs() < TAUEPS {
            if taue - taum < 0.0 {
                taum = taue - TAUEPS;
            } else {
                taue = taum - TAUEPS;
            }
        }
        if (taui1 - taum).abs() < TAUEPS {
            taum = taui1 - TAUEPS;
        }
    } else if taum - taui2 < TAUEPS {
        taum = taui2 + TAUEPS;
    }
    [taue, taui1, taui2, taum]
}

#[derive(Debug, Clone, Default)]
pub struct IntFire4 {
    pub p: [Vec<f64>; 4],
    s: Vec<St>,
    /// NET_RECEIVE's flag and weight across `net_event`.
    pending: Vec<(u8, f64)>,
    pub send: Senders,
}

impl IntFire4 {
    pub fn push(&mut self, cell: u32, spec: &CellSpec) {
        params_push(&mut self.p, spec);
        self.s.push(St::default());
        self.pending.push((0, 0.0));
        self.send.push(cell);
    }

    pub fn set_param(&mut self, field: usize, k: usize, value: f64) {
        self.p[field][k] = value;
    }

    fn taus(&self, k: usize) -> [f64; 4] {
        [TAUE, TAUI1, TAUI2, TAUM].map(|f| self.p[f][k])
    }

    pub fn initial(&mut self, k: usize, cx: &mut ArtCx) {
        let taus = fixprecondition(self.taus(k));
        for (f, tau) in taus.into_iter().enumerate() {
            self.p[f][k] = tau;
        }
        let s = &mut self.s[k];
        s.factors(taus);
        s.e = 0.0;
        s.i1 = 0.0;
        s.i2 = 0.0;
        s.m = 0.0;
        s.t0 = cx.t;
        let td = cx.t + s.firetimebound();
        s.nself = 0.0;
        s.nexcite = 0.0;
        s.ninhibit = 0.0;
        self.send.send(k, cx, td, 1);
    }

    pub fn receive(&mut self, k: usize, flag: u8, w: f64, cx: &mut ArtCx) -> bool {
        let s = &mut self.s[k];
        s.newstates(cx.t - s.t0);
        s.update(cx.t);
        if s.m > 1.0 - EPS {
            // Time to fire: net_event(t), then the rest in `after_event`.
            self.pending[k] = (flag, w);
            return true;
        }
        self.rest(k, flag, w, cx);
        false
    }

    pub fn after_event(&mut self, k: usize, cx: &mut ArtCx) {
        self.s[k].m = 0.0;
        let (flag, w) = self.pending[k];
        self.rest(k, flag, w, cx);
    }

    /// NET_RECEIVE after the firing test: a self-event plans the next bound, an input adds
    /// to e (w > 0) or i1 and moves the planned event.
    fn rest(&mut self, k: usize, flag: u8, w: f64, cx: &mut ArtCx) {
        let s = &mut self.s[k];
        if flag == 1 {
            s.nself += 1.0;
            let td = cx.t + s.firetimebound();
            self.send.send(k, cx, td, 1);
        } else {
            if w > 0.0 {
                s.nexcite += 1.0;
                s.e += w;
            } else {
                s.ninhibit += 1.0;
                s.i1 += w;
            }
            let tnew = s.firetimebound() + cx.t;
            self.send.move_to(k, cx, tnew);
        }
    }

    pub fn var(&self, var: usize, k: usize) -> f64 {
        let s = &self.s[k];
        [s.e, s.i1, s.i2, s.m, s.ae, s.ai2, s.ai1, s.nself, s.nexcite, s.ninhibit][var]
    }
}

f64_fields!(St: e, i1, i2, m, enew, i1new, i2new, mnew, t0, nself, nexcite, ninhibit, ke, ki1, ki2, km, ae, ai1, ai2, be, bi1, bi2, a, b);

impl IntFire4 {
    /// A snapshot's state of instance k: its variables, and NET_RECEIVE's flag and weight
    /// across `net_event`.
    pub fn save(&self, k: usize, o: &mut dyn FnMut(u64)) {
        self.s[k].save(&mut |x| o(x.to_bits()));
        let (flag, w) = self.pending[k];
        o(u64::from(flag));
        o(w.to_bits());
    }

    pub fn load(&mut self, k: usize, i: &mut dyn FnMut() -> u64) -> Result<(), &'static str> {
        self.s[k].load(&mut || f64::from_bits(i()));
        let flag = u8::try_from(i()).map_err(|_| "an IntFire4 flag")?;
        self.pending[k] = (flag, f64::from_bits(i()));
        Ok(())
    }
}
