//! AlphaSynapse: NEURON's alpha-function synapse (`syn.mod` as nocmodl translates it):
//! `g = gmax * alpha((t - onset)/tau)` with `alpha(x) = x*exp(1 - x)` for 0 <= x <= 10 (else
//! 0), `i = g*(v - e)`. It is driven by time alone (no NET_RECEIVE). `at_time(onset)` only
//! matters to CVode; a fixed step ignores it.

use super::col::{Col, ColMut};
use super::block::{Base, Cx};
use super::{lanes, Allowed, Field, MechDef, MechKind};

pub static DEF: MechDef = MechDef {
    name: "AlphaSynapse",
    kind: MechKind::Point,
    params: &[
        Field::new("onset", "ms", 0.0, Allowed::Any),
        Field::new("tau", "ms", 0.1, Allowed::Positive),
        Field::new("gmax", "uS", 0.0, Allowed::NonNegative),
        Field::new("e", "mV", 0.0, Allowed::Any),
    ],
    // g is ASSIGNED but not RANGE in syn.mod: NEURON cannot record it, so neither do we.
    vars: &["i"],
    ions: &[],
    receives: false,
    receive_writes: &[],
    current_outputs: &[0],
    initial_writes: &[],
};

const ONSET: usize = 0;
const TAU: usize = 1;
const GMAX: usize = 2;
const E: usize = 3;

#[derive(Debug, Clone)]
pub struct AlphaSynapse {
    pub base: Base,
    pub p: [Col; 4],
    pub mfact: Col,
    g: Vec<f64>,
    i: Vec<f64>,
}

/// FUNCTION alpha(x).
fn alpha(x: f64) -> f64 {
    if x < 0.0 || x > 10.0 {
        0.0
    } else {
        x * crate::exp::exp(1.0 - x)
    }
}

impl AlphaSynapse {
    pub fn new(base: Base) -> AlphaSynapse {
        let p = base.params(&DEF);
        AlphaSynapse { mfact: base.col(0.0), g: base.field(0.0), i: base.field(0.0), p, base }
    }

    /// BREAKPOINT (computed at v + .001 and at v, with the same g): g at time t, then the
    /// current scaled to the node's area.
    #[inline(always)]
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        let (n, t) = (cx.n(), cx.t);
        for (k, &nd) in self.base.node.iter().enumerate() {
            let ir = cx.inst(k);
            let (onset, tau, gmax) = (&self.p[ONSET][ir.clone()], &self.p[TAU][ir.clone()], &self.p[GMAX][ir.clone()]);
            let g = &mut self.g[ir.clone()];
            for l in 0..n {
                g[l] = gmax[l] * alpha((t - onset[l]) / tau[l]);
            }
            let outputs = cx.outputs;
            let (v, rhs, d) = cx.node(nd);
            lanes::synapse_current(v, rhs, d, g, &self.p[E][ir.clone()], &self.mfact[ir.clone()], outputs.then_some(&mut self.i[ir]));
        }
    }

    pub fn var(&self, var: usize, at: usize) -> f64 {
        [&self.i][var][at]
    }
}

impl AlphaSynapse {
    /// The arrays a snapshot holds: onset, tau, gmax, e, mfact, g, i.
    pub fn columns(&self) -> [&[f64]; 7] {
        [&self.p[0], &self.p[1], &self.p[2], &self.p[3], &self.mfact, &self.g, &self.i]
    }

    pub fn columns_mut(&mut self) -> [ColMut<'_>; 7] {
        let [a, b, c, d] = &mut self.p;
        [a.into(), b.into(), c.into(), d.into(), (&mut self.mfact).into(), (&mut self.g).into(), (&mut self.i).into()]
    }
}
