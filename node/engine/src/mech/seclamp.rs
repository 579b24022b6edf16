//! SEClamp: NEURON's single-electrode voltage clamp (`svclmp.mod` as nocmodl translates it):
//! three levels `amp1..3` for `dur1..3` ms from t = 0 through a series resistance `rs`, an
//! ELECTRODE_CURRENT `i = (vc - v)/rs` (positive depolarizes), off (i = 0) after the last
//! level. The current is computed again with the new v after each step (its SOLVE icur).

use super::col::{Col, ColMut};
use super::block::{Base, Cx};
use super::{Allowed, Field, MechDef, MechKind, DV};

pub static DEF: MechDef = MechDef {
    name: "SEClamp",
    kind: MechKind::Point,
    params: &[
        Field::new("dur1", "ms", 0.0, Allowed::NonNegative),
        Field::new("amp1", "mV", 0.0, Allowed::Any),
        Field::new("dur2", "ms", 0.0, Allowed::NonNegative),
        Field::new("amp2", "mV", 0.0, Allowed::Any),
        Field::new("dur3", "ms", 0.0, Allowed::NonNegative),
        Field::new("amp3", "mV", 0.0, Allowed::Any),
        Field::new("rs", "megohm", 1.0, Allowed::Positive),
    ],
    vars: &["i", "vc"],
    ions: &[],
    receives: false,
    receive_writes: &[],
    current_outputs: &[],
    initial_writes: &[],
};

const DUR1: usize = 0;
const AMP1: usize = 1;
const AMP2: usize = 3;
const DUR2: usize = 2;
const DUR3: usize = 4;
const AMP3: usize = 5;
const RS: usize = 6;

#[derive(Debug, Clone)]
pub struct SEClamp {
    pub base: Base,
    pub p: [Col; 7],
    pub mfact: Col,
    i: Vec<f64>,
    vc: Vec<f64>,
    /// The ends of levels 2 and 3, computed by INITIAL only (as in NEURON).
    tc2: Vec<f64>,
    tc3: Vec<f64>,
    /// 1 while the clamp is on.
    on: Vec<f64>,
}

impl SEClamp {
    pub fn new(base: Base) -> SEClamp {
        let p = base.params(&DEF);
        let z = || base.field(0.0);
        SEClamp { mfact: base.col(0.0), i: z(), vc: z(), tc2: z(), tc3: z(), on: z(), p, base }
    }

    pub fn initial(&mut self) {
        for at in 0..self.on.len() {
            self.tc2[at] = self.p[DUR1][at] + self.p[DUR2][at];
            self.tc3[at] = self.tc2[at] + self.p[DUR3][at];
            self.on[at] = 0.0;
        }
    }

    /// PROCEDURE vstim(): the level at time t (sets vc and on).
    #[inline(always)]
    fn vstim(&mut self, at: usize, t: f64) {
        self.on[at] = 1.0;
        self.vc[at] = if t < self.p[DUR1][at] {
            self.p[AMP1][at]
        } else if t < self.tc2[at] {
            self.p[AMP2][at]
        } else if t < self.tc3[at] {
            self.p[AMP3][at]
        } else {
            self.on[at] = 0.0;
            0.0
        };
    }

    /// PROCEDURE icur() at v.
    #[inline(always)]
    fn icur(&self, at: usize, v: f64) -> f64 {
        if self.on[at] != 0.0 {
            (self.vc[at] - v) / self.p[RS][at]
        } else {
            0.0
        }
    }

    /// BREAKPOINT at v + .001 and at v: an electrode current adds to rhs, its conductance
    /// comes off d (nocmodl's nrn_cur and nrn_jacob for an ELECTRODE_CURRENT).
    #[inline(always)]
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        let (n, t) = (cx.n(), cx.t);
        for k in 0..self.base.node.len() {
            let nd = self.base.node[k];
            let ir = cx.inst(k);
            let (v, rhs, d) = cx.node(nd);
            for l in 0..n {
                let at = ir.start + l;
                self.vstim(at, t);
                let i_dv = self.icur(at, v[l] + DV);
                self.vstim(at, t);
                let i = self.icur(at, v[l]);
                self.i[at] = i;
                let mfact = self.mfact[at];
                rhs[l] += i * mfact;
                d[l] -= (i_dv - i) / DV * mfact;
            }
        }
    }

    /// SOLVE icur METHOD after_cvode: the current with the new v.
    #[inline(always)]
    pub fn state(&mut self, v: &[f64]) {
        let n = self.base.lanes;
        for k in 0..self.base.node.len() {
            let nd = self.base.node[k] as usize;
            for l in 0..n {
                let at = k * n + l;
                self.i[at] = self.icur(at, v[nd * n + l]);
            }
        }
    }

    pub fn var(&self, var: usize, at: usize) -> f64 {
        [&self.i, &self.vc][var][at]
    }
}

impl SEClamp {
    /// The arrays a snapshot holds: the parameters, mfact, i, vc, tc2, tc3, on.
    pub fn columns(&self) -> [&[f64]; 13] {
        let p = &self.p;
        [&p[0], &p[1], &p[2], &p[3], &p[4], &p[5], &p[6], &self.mfact, &self.i, &self.vc, &self.tc2, &self.tc3, &self.on]
    }

    pub fn columns_mut(&mut self) -> [ColMut<'_>; 13] {
        let [a, b, c, d, e, f, g] = &mut self.p;
        [a.into(), b.into(), c.into(), d.into(), e.into(), f.into(), g.into(), (&mut self.mfact).into(), (&mut self.i).into(), (&mut self.vc).into(), (&mut self.tc2).into(), (&mut self.tc3).into(), (&mut self.on).into()]
    }
}
