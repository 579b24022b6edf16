//! pas: NEURON's passive leak (`pas.mod`), `i = g*(v - e)`.

use super::block::{Base, Cx};
use super::{Allowed, Field, MechDef, MechKind, DV};

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
    initial_writes: &[],
};

const G: usize = 0;
const E: usize = 1;

#[derive(Debug, Clone)]
pub struct Pas {
    pub base: Base,
    pub p: [Vec<f64>; 2],
    i: Vec<f64>,
}

impl Pas {
    pub fn new(base: Base) -> Pas {
        let p = base.params(&DEF);
        Pas { i: base.field(0.0), p, base }
    }

    /// BREAKPOINT, with nocmodl's numerical conductance: the current at v + .001 and at v.
    #[inline(always)]
    pub fn current(&mut self, cx: &mut Cx) {
        let n = self.base.lanes;
        for (k, &nd) in self.base.node.iter().enumerate() {
            let ir = cx.inst(k);
            let (v, rhs, d) = cx.node(nd);
            let (g, e, out) = (&self.p[G][ir.clone()], &self.p[E][ir.clone()], &mut self.i[ir]);
            for l in 0..n {
                let i_dv = g[l] * ((v[l] + DV) - e[l]);
                let i = g[l] * (v[l] - e[l]);
                rhs[l] -= i;
                d[l] += (i_dv - i) / DV;
                out[l] = i;
            }
        }
    }

    pub fn var(&self, _var: usize, at: usize) -> f64 {
        self.i[at]
    }
}
