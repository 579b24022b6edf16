//! pas: NEURON's passive leak (`pas.mod`), `i = g*(v - e)`.

use super::col::{Col, ColMut};
use super::block::{Base, Cx};
use super::{lanes, Allowed, Field, MechDef, MechKind};

pub static DEF: MechDef = MechDef {
    name: "pas",
    kind: MechKind::Density,
    params: &[
        Field::new("g_pas", "S/cm2", 0.001, Allowed::NonNegative),
        Field::new("e_pas", "mV", -70.0, Allowed::Any),
    ],
    vars: &["i_pas"],
    ions: &[],
    receives: false,
    receive_writes: &[],
    current_outputs: &[0],
    initial_writes: &[],
};

const G: usize = 0;
const E: usize = 1;

#[derive(Debug, Clone)]
pub struct Pas {
    pub base: Base,
    pub p: [Col; 2],
    i: Vec<f64>,
}

impl Pas {
    pub fn new(base: Base) -> Pas {
        let p = base.params(&DEF);
        Pas { i: base.field(0.0), p, base }
    }

    /// BREAKPOINT, with nocmodl's numerical conductance: the current at v + .001 and at v.
    #[inline(always)]
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        for (k, &nd) in self.base.node.iter().enumerate() {
            let ir = cx.inst(k);
            let outputs = cx.outputs;
            let (v, rhs, d) = cx.node(nd);
            lanes::leak_current(v, rhs, d, &self.p[G][ir.clone()], &self.p[E][ir.clone()], outputs.then_some(&mut self.i[ir]));
        }
    }

    pub fn var(&self, _var: usize, at: usize) -> f64 {
        self.i[at]
    }

    /// The arrays a snapshot holds: g, e, i.
    pub fn columns(&self) -> [&[f64]; 3] {
        [&self.p[0], &self.p[1], &self.i]
    }

    pub fn columns_mut(&mut self) -> [ColMut<'_>; 3] {
        let [g, e] = &mut self.p;
        [g.into(), e.into(), (&mut self.i).into()]
    }
}
