//! ExpSyn: NEURON's single-exponential synapse (`expsyn.mod`): `i = g*(v - e)`, `g' = -g/tau`,
//! each event adds its weight to g.

use super::col::{Col, ColMut, Interner};
use super::block::{Base, Cx};
use super::decay::Decay;
use super::{lanes, Allowed, Field, MechDef, MechKind};

pub static DEF: MechDef = MechDef {
    name: "ExpSyn",
    kind: MechKind::Point,
    params: &[Field::new("tau", "ms", 0.1, Allowed::Positive), Field::new("e", "mV", 0.0, Allowed::Any)],
    vars: &["g", "i"],
    ions: &[],
    receives: true,
    receive_writes: &[0],
    current_outputs: &[1],
    initial_writes: &[],
};

pub const TAU: usize = 0;
const E: usize = 1;

#[derive(Debug, Clone)]
pub struct ExpSyn {
    pub base: Base,
    pub p: [Col; 2],
    pub mfact: Col,
    g: Vec<f64>,
    i: Vec<f64>,
    decay: Decay,
}

impl ExpSyn {
    pub fn new(base: Base) -> ExpSyn {
        let p = base.params(&DEF);
        let n = base.node.len() * base.lanes;
        ExpSyn { mfact: base.col(0.0), g: base.field(0.0), i: base.field(0.0), decay: Decay::new(n), p, base }
    }

    pub fn set_param(&mut self, field: usize, at: usize, value: f64) {
        self.p[field][at] = value;
        if field == TAU {
            self.decay.retau(at, value);
        }
    }

    pub fn initial(&mut self) {
        self.g.fill(0.0);
    }

    /// BREAKPOINT: `i = g*(v - e)` at v + .001 and at v, scaled to the node's area.
    #[inline(always)]
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        for (k, &nd) in self.base.node.iter().enumerate() {
            let ir = cx.inst(k);
            let outputs = cx.outputs;
            let (v, rhs, d) = cx.node(nd);
            lanes::synapse_current(v, rhs, d, &self.g[ir.clone()], &self.p[E][ir.clone()], &self.mfact[ir.clone()], outputs.then_some(&mut self.i[ir]));
        }
    }

    #[inline(always)]
    pub fn state(&mut self, dt: f64) {
        self.decay.for_dt(dt, &self.p[TAU]);
        self.decay.apply(&mut self.g);
    }

    /// See `Block::share`.
    pub fn share(&mut self, dt: f64, i: &mut Interner) {
        i.share_all(self.p.iter_mut().chain([&mut self.mfact]));
        self.decay.share(dt, &self.p[TAU], i);
    }

    /// NET_RECEIVE(weight): `g = g + weight`.
    pub fn receive(&mut self, at: usize, w: f64) {
        self.g[at] += w;
    }

    pub fn var(&self, var: usize, at: usize) -> f64 {
        [&self.g, &self.i][var][at]
    }

    /// The arrays a snapshot holds: tau, e, mfact, g, i (the decay constants follow from tau
    /// and dt: `forget_derived`).
    pub fn columns(&self) -> [&[f64]; 5] {
        [&self.p[0], &self.p[1], &self.mfact, &self.g, &self.i]
    }

    pub fn columns_mut(&mut self) -> [ColMut<'_>; 5] {
        let [tau, e] = &mut self.p;
        [tau.into(), e.into(), (&mut self.mfact).into(), (&mut self.g).into(), (&mut self.i).into()]
    }

    /// The decay constants are made again, from tau, at the next step.
    pub fn forget_derived(&mut self) {
        self.decay = Decay::new(self.g.len());
    }
}
