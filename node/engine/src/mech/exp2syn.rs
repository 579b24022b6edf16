//! Exp2Syn: NEURON's double-exponential synapse (`exp2syn.mod`): `g = B - A`, A and B decay
//! with tau1 and tau2, each event adds `weight*factor` to both.

use super::col::{Col, ColMut, Interner};
use super::block::{Base, Cx};
use super::decay::Decay;
use super::{lanes, Allowed, Field, MechDef, MechKind};

pub static DEF: MechDef = MechDef {
    name: "Exp2Syn",
    kind: MechKind::Point,
    params: &[
        Field::new("tau1", "ms", 0.1, Allowed::Positive),
        Field::new("tau2", "ms", 10.0, Allowed::Positive),
        Field::new("e", "mV", 0.0, Allowed::Any),
    ],
    vars: &["g", "i", "A", "B"],
    ions: &[],
    receives: true,
    // INITIAL keeps tau1 below tau2 and writes it back, as NEURON does.
    receive_writes: &[2, 3],
    current_outputs: &[1],
    initial_writes: &[TAU1],
};

pub const TAU1: usize = 0;
pub const TAU2: usize = 1;
const E: usize = 2;

#[derive(Debug, Clone)]
pub struct Exp2Syn {
    pub base: Base,
    pub p: [Col; 3],
    pub mfact: Col,
    a: Vec<f64>,
    b: Vec<f64>,
    g: Vec<f64>,
    i: Vec<f64>,
    factor: Vec<f64>,
    decay_a: Decay,
    decay_b: Decay,
}

impl Exp2Syn {
    pub fn new(base: Base) -> Exp2Syn {
        let p = base.params(&DEF);
        let n = base.node.len() * base.lanes;
        Exp2Syn {
            mfact: base.col(0.0),
            a: base.field(0.0),
            b: base.field(0.0),
            g: base.field(0.0),
            i: base.field(0.0),
            factor: base.field(0.0),
            decay_a: Decay::new(n),
            decay_b: Decay::new(n),
            p,
            base,
        }
    }

    pub fn set_param(&mut self, field: usize, at: usize, value: f64) {
        self.p[field][at] = value;
        match field {
            TAU1 => self.decay_a.retau(at, value),
            TAU2 => self.decay_b.retau(at, value),
            _ => {}
        }
    }

    /// INITIAL of exp2syn.mod, every entry.
    pub fn initial(&mut self) {
        for k in 0..self.a.len() {
            let tau2 = self.p[TAU2][k];
            let mut tau1 = self.p[TAU1][k];
            if tau1 / tau2 > 0.9999 {
                tau1 = 0.9999 * tau2;
            }
            if tau1 / tau2 < 1e-9 {
                tau1 = tau2 * 1e-9;
            }
            self.set_param(TAU1, k, tau1);
            self.a[k] = 0.0;
            self.b[k] = 0.0;
            let tp = (tau1 * tau2) / (tau2 - tau1) * (tau2 / tau1).ln();
            let factor = -crate::exp::exp(-tp / tau1) + crate::exp::exp(-tp / tau2);
            self.factor[k] = 1.0 / factor;
        }
    }

    #[inline(always)]
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        for (k, &nd) in self.base.node.iter().enumerate() {
            let ir = cx.inst(k);
            let outputs = cx.outputs;
            let (v, rhs, d) = cx.node(nd);
            let g = &mut self.g[ir.clone()];
            lanes::difference(g, &self.b[ir.clone()], &self.a[ir.clone()]);
            lanes::synapse_current(v, rhs, d, g, &self.p[E][ir.clone()], &self.mfact[ir.clone()], outputs.then_some(&mut self.i[ir]));
        }
    }

    #[inline(always)]
    pub fn state(&mut self, dt: f64) {
        self.decay_a.for_dt(dt, &self.p[TAU1]);
        self.decay_b.for_dt(dt, &self.p[TAU2]);
        self.decay_a.apply(&mut self.a);
        self.decay_b.apply(&mut self.b);
    }

    /// NET_RECEIVE(weight): A and B both gain `weight*factor`.
    pub fn receive(&mut self, at: usize, w: f64) {
        let f = self.factor[at];
        self.a[at] += w * f;
        self.b[at] += w * f;
    }

    pub fn var(&self, var: usize, at: usize) -> f64 {
        [&self.g, &self.i, &self.a, &self.b][var][at]
    }

    /// The arrays a snapshot holds: tau1, tau2, e, mfact, A, B, g, i, factor (made by INITIAL
    /// from the taus of then); the decay constants follow from the taus and dt.
    pub fn columns(&self) -> [&[f64]; 9] {
        [&self.p[0], &self.p[1], &self.p[2], &self.mfact, &self.a, &self.b, &self.g, &self.i, &self.factor]
    }

    pub fn columns_mut(&mut self) -> [ColMut<'_>; 9] {
        let [tau1, tau2, e] = &mut self.p;
        [tau1.into(), tau2.into(), e.into(), (&mut self.mfact).into(), (&mut self.a).into(), (&mut self.b).into(), (&mut self.g).into(), (&mut self.i).into(), (&mut self.factor).into()]
    }

    /// See `Block::share`.
    pub fn share(&mut self, dt: f64, i: &mut Interner) {
        i.share_all(self.p.iter_mut().chain([&mut self.mfact]));
        self.decay_a.share(dt, &self.p[TAU1], i);
        self.decay_b.share(dt, &self.p[TAU2], i);
    }

    /// The decay constants are made again, from the taus, at the next step.
    pub fn forget_derived(&mut self) {
        self.decay_a = Decay::new(self.a.len());
        self.decay_b = Decay::new(self.b.len());
    }
}
