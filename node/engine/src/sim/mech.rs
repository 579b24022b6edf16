//! Membrane mechanisms and point processes as flat arrays (one Vec per field, indexed by
//! instance), with the current and state kernels of NEURON's translated .mod files.
//!
//! NEURON adds the currents of a node in mechanism-type order (pas, IClamp, ExpSyn, Exp2Syn,
//! hh in NEURON 9.0.2) and, within a type, by node index (newest first on a shared node).
//! `Sim` calls the kernels in that order and builds the instance arrays in that order.

use super::hh::{cnexp, Decay, RateTable, Rates};
use super::tree::Tree;

/// NEURON's numerical derivative step for conductances: `(i(v + .001) - i(v)) / .001`.
const DV: f64 = 0.001;

#[derive(Debug, Clone, Default)]
pub struct Pas {
    pub node: Vec<usize>,
    pub g: Vec<f64>,
    pub e: Vec<f64>,
    pub i: Vec<f64>,
}

impl Pas {
    pub fn push(&mut self, node: usize) {
        self.node.push(node);
        self.g.push(0.0);
        self.e.push(0.0);
        self.i.push(0.0);
    }

    #[inline]
    pub fn current(&mut self, tree: &mut Tree) {
        for k in 0..self.node.len() {
            let nd = self.node[k];
            let v = tree.v[nd];
            let (g, e) = (self.g[k], self.e[k]);
            let i_dv = g * ((v + DV) - e);
            let i = g * (v - e);
            tree.rhs[nd] -= i;
            tree.d[nd] += (i_dv - i) / DV;
            self.i[k] = i;
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Hh {
    pub node: Vec<usize>,
    pub gnabar: Vec<f64>,
    pub gkbar: Vec<f64>,
    pub gl: Vec<f64>,
    pub el: Vec<f64>,
    pub ena: Vec<f64>,
    pub ek: Vec<f64>,
    pub m: Vec<f64>,
    pub h: Vec<f64>,
    pub n: Vec<f64>,
    pub ina: Vec<f64>,
    pub ik: Vec<f64>,
    pub il: Vec<f64>,
    pub gna: Vec<f64>,
    pub gk: Vec<f64>,
}

/// hh's BREAKPOINT currents at v: (gna, ina, gk, ik, il, total).
#[inline]
fn hh_currents(hh: &Hh, k: usize, v: f64) -> (f64, f64, f64, f64, f64, f64) {
    let (m, h, n) = (hh.m[k], hh.h[k], hh.n[k]);
    let gna = hh.gnabar[k] * m * m * m * h;
    let ina = gna * (v - hh.ena[k]);
    let gk = hh.gkbar[k] * n * n * n * n;
    let ik = gk * (v - hh.ek[k]);
    let il = hh.gl[k] * (v - hh.el[k]);
    (gna, ina, gk, ik, il, ((0.0 + ina) + ik) + il)
}

impl Hh {
    pub fn push(&mut self, node: usize) {
        self.node.push(node);
        for f in [
            &mut self.gnabar, &mut self.gkbar, &mut self.gl, &mut self.el, &mut self.ena, &mut self.ek,
            &mut self.m, &mut self.h, &mut self.n, &mut self.ina, &mut self.ik, &mut self.il,
            &mut self.gna, &mut self.gk,
        ] {
            f.push(0.0);
        }
    }

    #[inline]
    pub fn current(&mut self, tree: &mut Tree) {
        for k in 0..self.node.len() {
            let nd = self.node[k];
            let v = tree.v[nd];
            let total_dv = hh_currents(self, k, v + DV).5;
            let (gna, ina, gk, ik, il, total) = hh_currents(self, k, v);
            tree.rhs[nd] -= total;
            tree.d[nd] += (total_dv - total) / DV;
            self.gna[k] = gna;
            self.ina[k] = ina;
            self.gk[k] = gk;
            self.ik[k] = ik;
            self.il[k] = il;
        }
    }

    /// INITIAL: gates at their steady state for the node's voltage.
    pub fn initial(&mut self, tree: &Tree, rates: impl Fn(f64) -> Rates) {
        for k in 0..self.node.len() {
            let r = rates(tree.v[self.node[k]]);
            self.m[k] = r.minf;
            self.h[k] = r.hinf;
            self.n[k] = r.ninf;
        }
    }

    /// `SOLVE states METHOD cnexp` with the rates at the new voltage.
    #[inline]
    pub fn state(&mut self, tree: &Tree, dt: f64, table: Option<&RateTable>, q10: f64) {
        for k in 0..self.node.len() {
            let v = tree.v[self.node[k]];
            let r = match table {
                Some(t) => t.lookup(v),
                None => super::hh::rates_exact(v, q10),
            };
            self.m[k] = cnexp(self.m[k], r.minf, r.mtau, dt);
            self.h[k] = cnexp(self.h[k], r.hinf, r.htau, dt);
            self.n[k] = cnexp(self.n[k], r.ninf, r.ntau, dt);
        }
    }
}

/// Point processes convert currents (nA) and conductances (uS) to densities at their node
/// with NEURON's factor `1.e2/area`.
#[derive(Debug, Clone, Default)]
pub struct IClamp {
    pub node: Vec<usize>,
    pub mfact: Vec<f64>,
    pub del: Vec<f64>,
    pub dur: Vec<f64>,
    pub amp: Vec<f64>,
    pub i: Vec<f64>,
}

impl IClamp {
    pub fn push(&mut self, node: usize) {
        self.node.push(node);
        for f in [&mut self.mfact, &mut self.del, &mut self.dur, &mut self.amp, &mut self.i] {
            f.push(0.0);
        }
    }

    /// An ELECTRODE_CURRENT: it adds to rhs; its conductance is 0, so d is unchanged.
    #[inline]
    pub fn current(&mut self, tree: &mut Tree, t: f64) {
        for k in 0..self.node.len() {
            let i = if t < self.del[k] + self.dur[k] && t >= self.del[k] { self.amp[k] } else { 0.0 };
            tree.rhs[self.node[k]] += i * self.mfact[k];
            self.i[k] = i;
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExpSyn {
    pub node: Vec<usize>,
    pub mfact: Vec<f64>,
    pub tau: Vec<f64>,
    pub e: Vec<f64>,
    pub g: Vec<f64>,
    pub i: Vec<f64>,
    decay: Vec<Decay>,
}

impl ExpSyn {
    pub fn push(&mut self, node: usize) {
        self.node.push(node);
        for f in [&mut self.mfact, &mut self.tau, &mut self.e, &mut self.g, &mut self.i] {
            f.push(0.0);
        }
        self.decay.push(Decay::default());
    }

    #[inline]
    pub fn current(&mut self, tree: &mut Tree) {
        for k in 0..self.node.len() {
            let nd = self.node[k];
            let v = tree.v[nd];
            let (g, e) = (self.g[k], self.e[k]);
            let i_dv = g * ((v + DV) - e);
            let i = g * (v - e);
            let mf = self.mfact[k];
            tree.rhs[nd] -= i * mf;
            tree.d[nd] += (i_dv - i) / DV * mf;
            self.i[k] = i;
        }
    }

    #[inline]
    pub fn state(&mut self, dt: f64) {
        for k in 0..self.node.len() {
            self.g[k] = self.decay[k].refresh(self.tau[k], dt).apply(self.g[k]);
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Exp2Syn {
    pub node: Vec<usize>,
    pub mfact: Vec<f64>,
    pub tau1: Vec<f64>,
    pub tau2: Vec<f64>,
    pub e: Vec<f64>,
    pub a: Vec<f64>,
    pub b: Vec<f64>,
    pub g: Vec<f64>,
    pub i: Vec<f64>,
    pub factor: Vec<f64>,
    decay_a: Vec<Decay>,
    decay_b: Vec<Decay>,
}

impl Exp2Syn {
    pub fn push(&mut self, node: usize) {
        self.node.push(node);
        for f in [
            &mut self.mfact, &mut self.tau1, &mut self.tau2, &mut self.e, &mut self.a, &mut self.b,
            &mut self.g, &mut self.i, &mut self.factor,
        ] {
            f.push(0.0);
        }
        self.decay_a.push(Decay::default());
        self.decay_b.push(Decay::default());
    }

    /// INITIAL of exp2syn.mod; it may change tau1 (as NEURON does), returned for the model.
    pub fn initial(&mut self, k: usize) -> f64 {
        let tau2 = self.tau2[k];
        if self.tau1[k] / tau2 > 0.9999 {
            self.tau1[k] = 0.9999 * tau2;
        }
        if self.tau1[k] / tau2 < 1e-9 {
            self.tau1[k] = tau2 * 1e-9;
        }
        let tau1 = self.tau1[k];
        self.a[k] = 0.0;
        self.b[k] = 0.0;
        let tp = (tau1 * tau2) / (tau2 - tau1) * (tau2 / tau1).ln();
        let factor = -(-tp / tau1).exp() + (-tp / tau2).exp();
        self.factor[k] = 1.0 / factor;
        tau1
    }

    #[inline]
    pub fn current(&mut self, tree: &mut Tree) {
        for k in 0..self.node.len() {
            let nd = self.node[k];
            let v = tree.v[nd];
            let g = self.b[k] - self.a[k];
            let e = self.e[k];
            let i_dv = g * ((v + DV) - e);
            let i = g * (v - e);
            let mf = self.mfact[k];
            tree.rhs[nd] -= i * mf;
            tree.d[nd] += (i_dv - i) / DV * mf;
            self.g[k] = g;
            self.i[k] = i;
        }
    }

    #[inline]
    pub fn state(&mut self, dt: f64) {
        for k in 0..self.node.len() {
            self.a[k] = self.decay_a[k].refresh(self.tau1[k], dt).apply(self.a[k]);
            self.b[k] = self.decay_b[k].refresh(self.tau2[k], dt).apply(self.b[k]);
        }
    }
}
