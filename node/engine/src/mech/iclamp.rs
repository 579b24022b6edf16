//! IClamp: NEURON's current pulse (`stim.mod`), an ELECTRODE_CURRENT of `amp` nA from `del`
//! for `dur` ms.

use super::col::{Col, ColMut};
use super::block::{Base, Cx};
use super::{Allowed, Field, MechDef, MechKind};

pub static DEF: MechDef = MechDef {
    name: "IClamp",
    kind: MechKind::Point,
    params: &[
        Field::new("del", "ms", 0.0, Allowed::Any),
        Field::new("dur", "ms", 0.0, Allowed::NonNegative),
        Field::new("amp", "nA", 0.0, Allowed::Any),
    ],
    vars: &["i"],
    ions: &[],
    receives: false,
    receive_writes: &[],
    current_outputs: &[],
    initial_writes: &[],
};

const DEL: usize = 0;
const DUR: usize = 1;
const AMP: usize = 2;

#[derive(Debug, Clone)]
pub struct IClamp {
    pub base: Base,
    pub p: [Col; 3],
    /// 100/area of the instance's node: nA to mA/cm2.
    pub mfact: Col,
    i: Vec<f64>,
}

impl IClamp {
    pub fn new(base: Base) -> IClamp {
        let p = base.params(&DEF);
        IClamp { mfact: base.col(0.0), i: base.field(0.0), p, base }
    }

    pub fn initial(&mut self) {
        self.i.fill(0.0);
    }

    /// An electrode current adds to rhs; its conductance is 0, so d is unchanged.
    #[inline(always)]
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        let (n, t) = (cx.n(), cx.t);
        for (k, &nd) in self.base.node.iter().enumerate() {
            let ir = cx.inst(k);
            let (_, rhs, _) = cx.node(nd);
            let (del, dur, amp) = (&self.p[DEL][ir.clone()], &self.p[DUR][ir.clone()], &self.p[AMP][ir.clone()]);
            let (mfact, out) = (&self.mfact[ir.clone()], &mut self.i[ir]);
            for l in 0..n {
                let i = if t < del[l] + dur[l] && t >= del[l] { amp[l] } else { 0.0 };
                rhs[l] += i * mfact[l];
                out[l] = i;
            }
        }
    }

    pub fn var(&self, _var: usize, at: usize) -> f64 {
        self.i[at]
    }

    /// The arrays a snapshot holds: del, dur, amp, mfact, i.
    pub fn columns(&self) -> [&[f64]; 5] {
        [&self.p[0], &self.p[1], &self.p[2], &self.mfact, &self.i]
    }

    pub fn columns_mut(&mut self) -> [ColMut<'_>; 5] {
        let [del, dur, amp] = &mut self.p;
        [del.into(), dur.into(), amp.into(), (&mut self.mfact).into(), (&mut self.i).into()]
    }
}
