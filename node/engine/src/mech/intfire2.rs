//! IntFire2: NEURON's integrate-and-fire cell with a synaptic current (`intfire2.mod` as
//! nocmodl translates it): the current i decays to `ib` with `taus`, each input adds its
//! weight to i, m integrates i with `taum`; the firing time is found analytically (Newton's
//! method) and kept as a self-event of flag 1 that each input moves (`net_move`).

use super::art::{params_push, ArtCx, Senders};
use super::{Allowed, Field, MechDef, MechKind};
use crate::model::CellSpec;

pub static DEF: MechDef = MechDef {
    name: "IntFire2",
    kind: MechKind::Artificial,
    params: &[
        Field::new("taus", "ms", 20.0, Allowed::Positive),
        Field::new("taum", "ms", 10.0, Allowed::Positive),
        Field::new("ib", "1", 0.0, Allowed::Any),
    ],
    vars: &["i", "m"],
    ions: &[],
    receives: true,
    receive_writes: &[0, 1],
    current_outputs: &[],
    // INITIAL keeps taus above taum (taus = taum + 0.1) and writes it back, as NEURON does.
    initial_writes: &[TAUS],
};

const TAUS: usize = 0;
const TAUM: usize = 1;
const IB: usize = 2;

#[derive(Debug, Clone, Default)]
pub struct IntFire2 {
    pub p: [Vec<f64>; 3],
    i: Vec<f64>,
    m: Vec<f64>,
    t0: Vec<f64>,
    /// NET_RECEIVE's locals `inew` and `f` across `net_event` (a spike callback may change
    /// the parameters; the locals keep the values computed before it).
    inew: Vec<f64>,
    f: Vec<f64>,
    pub send: Senders,
}

impl IntFire2 {
    pub fn push(&mut self, cell: u32, spec: &CellSpec) {
        params_push(&mut self.p, spec);
        for v in [&mut self.i, &mut self.m, &mut self.t0, &mut self.inew, &mut self.f] {
            v.push(0.0);
        }
        self.send.push(cell);
    }

    pub fn set_param(&mut self, field: usize, k: usize, value: f64) {
        self.p[field][k] = value;
    }

    pub fn initial(&mut self, k: usize, cx: &mut ArtCx) {
        let ib = self.p[IB][k];
        self.i[k] = ib;
        self.m[k] = 0.0;
        if self.p[TAUS][k] <= self.p[TAUM][k] {
            self.p[TAUS][k] = self.p[TAUM][k] + 0.1;
        }
        self.t0[k] = cx.t;
        let td = cx.t + self.firetime(k, ib, 0.0, 0.0);
        self.send.send(k, cx, td, 1);
    }

    pub fn receive(&mut self, k: usize, flag: u8, w: f64, cx: &mut ArtCx) -> bool {
        let t = cx.t;
        let (taus, taum, ib) = (self.p[TAUS][k], self.p[TAUM][k], self.p[IB][k]);
        let f = taus / (taus - taum);
        let x = (self.i[k] - ib) * crate::exp::exp(-(t - self.t0[k]) / taus);
        let mut inew = ib + x;
        if flag == 1 {
            // Time to fire: net_event(t), then the rest in `after_event`.
            self.inew[k] = inew;
            self.f[k] = f;
            return true;
        }
        let m = self.m[k];
        self.m[k] = ib + f * x + (m - (ib + (self.i[k] - ib) * f)) * crate::exp::exp(-(t - self.t0[k]) / taum);
        inew += w;
        if self.m[k] >= 1.0 {
            // The time to fire is now.
            self.send.move_to(k, cx, t);
        } else {
            let ibf = (inew - ib) * f;
            let tf = self.firetime(k, ib, ibf, self.m[k]) + t;
            self.send.move_to(k, cx, tf);
        }
        self.t0[k] = t;
        self.i[k] = inew;
        false
    }

    /// After `net_event` (flag 1): m back to 0, the next firing time.
    pub fn after_event(&mut self, k: usize, cx: &mut ArtCx) {
        let t = cx.t;
        let (inew, f, ib) = (self.inew[k], self.f[k], self.p[IB][k]);
        self.m[k] = 0.0;
        let ibf = (inew - ib) * f;
        let td = t + self.firetime(k, ib, ibf, 0.0);
        self.send.send(k, cx, td, 1);
        self.t0[k] = t;
        self.i[k] = inew;
    }

    /// FUNCTION firetime(a, b, c): the time at which `1 = a + b*exp(-t/taus) +
    /// (c - a - b)*exp(-t/taum)`, or 1e9 if never.
    fn firetime(&self, k: usize, a: f64, b: f64, c: f64) -> f64 {
        let (taus, taum) = (self.p[TAUS][k], self.p[TAUM][k]);
        let r = taum / taus;
        if a <= 1.0 && a + b <= 1.0 {
            1e9
        } else if a > 1.0 && b <= 0.0 {
            let cab = c - a - b;
            let m = r * b + cab;
            if m >= 0.0 {
                -taus * newton1(a, cab, b, 1.0 / r, 0.0).ln()
            } else {
                let x = (1.0 - c + m) / m;
                if x <= 0.0 {
                    -taus * newton1(a, cab, b, 1.0 / r, 0.0).ln()
                } else {
                    -taum * newton1(a, b, cab, r, x).ln()
                }
            }
        } else {
            let cab = c - a - b;
            let x = (-cab / (r * b)).powf(1.0 / (r - 1.0));
            let f = a + b * x.powf(r) + cab * x;
            if x >= 1.0 || f <= 1.0 {
                1e9
            } else {
                let m = r * b + cab;
                let x = (1.0 - c + m) / m;
                -taum * newton1(a, b, cab, r, x).ln()
            }
        }
    }

    pub fn var(&self, var: usize, k: usize) -> f64 {
        [&self.i, &self.m][var][k]
    }
}

/// FUNCTION newton1(a, b, c, r, x): solves `1 = a + b*x^r + c*x` from x, within 0 < x <= 1.
fn newton1(a: f64, b: f64, c: f64, r: f64, mut x: f64) -> f64 {
    let (mut dx, mut f, mut iter) = (1.0f64, 0.0f64, 0.0);
    while dx.abs() > 1e-6 || (f - 1.0).abs() > 1e-6 {
        f = a + b * x.powf(r) + c * x;
        let df = r * b * x.powf(r - 1.0) + c;
        dx = (1.0 - f) / df;
        x += dx;
        if x <= 0.0 {
            x = 1e-4;
        } else if x > 1.0 {
            x = 1.0;
        }
        iter += 1.0;
        // NEURON prints a message and gives up after 10 iterations.
        if iter > 10.0 {
            f = 1.0;
            dx = 0.0;
        }
    }
    x
}

impl IntFire2 {
    /// A snapshot's state of instance k: i, m, t0, and NET_RECEIVE's inew and f.
    pub fn save(&self, k: usize, o: &mut dyn FnMut(u64)) {
        super::art::save_cols(&[&self.i, &self.m, &self.t0, &self.inew, &self.f], k, o);
    }

    pub fn load(&mut self, k: usize, i: &mut dyn FnMut() -> u64) -> Result<(), &'static str> {
        super::art::load_cols(&mut [&mut self.i, &mut self.m, &mut self.t0, &mut self.inew, &mut self.f], k, i);
        Ok(())
    }
}
