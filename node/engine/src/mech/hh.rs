//! hh: NEURON's Hodgkin-Huxley channels (`hh.mod` as nocmodl translates it, operation for
//! operation, so that results agree bit for bit), with its 201-entry rate tables.
//!
//! hh uses the na and k ions: it reads ena and ek (copied here from the section's ion
//! parameters) and writes ina and ik.

use super::col::{Col, ColMut};
use super::block::{Base, Cx, Rates as Shared};
use super::{ion, Allowed, Field, MechDef, MechKind, DV};

pub static DEF: MechDef = MechDef {
    name: "hh",
    kind: MechKind::Density,
    params: &[
        Field::new("gnabar_hh", "S/cm2", 0.12, Allowed::NonNegative),
        Field::new("gkbar_hh", "S/cm2", 0.036, Allowed::NonNegative),
        Field::new("gl_hh", "S/cm2", 0.0003, Allowed::NonNegative),
        Field::new("el_hh", "mV", -54.3, Allowed::Any),
    ],
    vars: &["m_hh", "h_hh", "n_hh", "ina", "ik", "il_hh", "gna_hh", "gk_hh"],
    ions: &[&ion::NA, &ion::K],
    receives: false,
    receive_writes: &[],
    current_outputs: &[3, 4, 5, 6, 7],
    initial_writes: &[],
};

/// The ion reversal potentials, after the field table's parameters (gnabar, gkbar, gl, el).
const ENA: usize = 4;
const EK: usize = 5;

/// The six rate quantities of hh at one voltage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub minf: f64,
    pub mtau: f64,
    pub hinf: f64,
    pub htau: f64,
    pub ninf: f64,
    pub ntau: f64,
}

/// hh's temperature factor: `3^((celsius - 6.3)/10)`.
pub fn q10(celsius: f64) -> f64 {
    3.0f64.powf((celsius - 6.3) / 10.0)
}

fn vtrap(x: f64, y: f64) -> f64 {
    if (x / y).abs() < 1e-6 {
        y * (1.0 - x / y / 2.0)
    } else {
        x / (crate::exp::exp(x / y) - 1.0)
    }
}

/// The exact rates (hh.mod's PROCEDURE rates with usetable_hh = 0).
pub fn rates_exact(v: f64, q10: f64) -> Rates {
    let exp = crate::exp::exp;
    let alpha = 0.1 * vtrap(-(v + 40.0), 10.0);
    let beta = 4.0 * exp(-(v + 65.0) / 18.0);
    let sum = alpha + beta;
    let mtau = 1.0 / (q10 * sum);
    let minf = alpha / sum;

    let alpha = 0.07 * exp(-(v + 65.0) / 20.0);
    let beta = 1.0 / (exp(-(v + 35.0) / 10.0) + 1.0);
    let sum = alpha + beta;
    let htau = 1.0 / (q10 * sum);
    let hinf = alpha / sum;

    let alpha = 0.01 * vtrap(-(v + 55.0), 10.0);
    let beta = 0.125 * exp(-(v + 65.0) / 80.0);
    let sum = alpha + beta;
    let ntau = 1.0 / (q10 * sum);
    let ninf = alpha / sum;
    Rates { minf, mtau, hinf, htau, ninf, ntau }
}

const TABLE_MIN: f64 = -100.0;
const TABLE_MAX: f64 = 100.0;
const TABLE_N: usize = 200;

/// NEURON's `TABLE minf, mtau, hinf, htau, ninf, ntau DEPEND celsius FROM -100 TO 100 WITH 200`:
/// a row of the six quantities per voltage (padded to eight, so that a row is one vector and
/// a lookup touches two neighbouring rows).
#[derive(Debug, Clone)]
pub struct RateTable {
    /// The celsius the table was made for; NaN before the first build.
    pub celsius: f64,
    mfac: f64,
    rows: Vec<[f64; 8]>,
}

impl Default for RateTable {
    fn default() -> Self {
        RateTable { celsius: f64::NAN, mfac: 0.0, rows: vec![[0.0; 8]; TABLE_N + 1] }
    }
}

impl RateTable {
    /// Rebuilds the table when celsius changed since it was made (nocmodl's `_check_rates`).
    pub fn check(&mut self, celsius: f64) {
        if self.celsius == celsius {
            return;
        }
        let q = q10(celsius);
        let dx = (TABLE_MAX - TABLE_MIN) / TABLE_N as f64;
        self.mfac = 1.0 / dx;
        let mut x = TABLE_MIN;
        for row in self.rows.iter_mut() {
            let r = rates_exact(x, q);
            *row = [r.minf, r.mtau, r.hinf, r.htau, r.ninf, r.ntau, 0.0, 0.0];
            x += dx;
        }
        self.celsius = celsius;
    }

    /// Linear interpolation as nocmodl's `_n_rates`.
    #[inline(always)]
    pub fn lookup(&self, v: f64) -> Rates {
        let r = self.lookup_row(v);
        Rates { minf: r[0], mtau: r[1], hinf: r[2], htau: r[3], ninf: r[4], ntau: r[5] }
    }

    /// The six quantities at v (then two unused entries): row 0 at or below -100 mV, row 200
    /// at or above 100 mV, else `a + theta*(b - a)` between the rows around v, all six at
    /// once.
    #[inline(always)]
    fn lookup_row(&self, v: f64) -> [f64; 8] {
        let xi = self.mfac * (v - TABLE_MIN);
        if xi <= 0.0 {
            return self.rows[0];
        }
        if xi >= TABLE_N as f64 {
            return self.rows[TABLE_N];
        }
        let i = (xi as usize).min(TABLE_N - 1);
        let theta = xi - i as f64;
        let (a, b) = (&self.rows[i], &self.rows[i + 1]);
        let mut r = [0.0; 8];
        for g in 0..8 {
            r[g] = a[g] + theta * (b[g] - a[g]);
        }
        r
    }
}

/// hh's BREAKPOINT over the lanes of one instance, at v + .001 and at v: `rhs -= i`,
/// `d += di/dv`, summing ina, ik, il in nocmodl's order. Every row a separate argument: see
/// `lanes`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn current_lanes<const OUT: bool>(
    v: &[f64],
    rhs: &mut [f64],
    d: &mut [f64],
    [gnabar, gkbar, gl, el, ena, ek]: [&[f64]; 6],
    m: &[f64],
    h: &[f64],
    ng: &[f64],
    gna_o: &mut [f64],
    gk_o: &mut [f64],
    ina_o: &mut [f64],
    ik_o: &mut [f64],
    il_o: &mut [f64],
) {
    let n = v.len();
    let (rhs, d, gnabar, gkbar, gl, el, ena, ek) =
        (&mut rhs[..n], &mut d[..n], &gnabar[..n], &gkbar[..n], &gl[..n], &el[..n], &ena[..n], &ek[..n]);
    let (m, h, ng, gna_o, gk_o, ina_o, ik_o, il_o) =
        (&m[..n], &h[..n], &ng[..n], &mut gna_o[..n], &mut gk_o[..n], &mut ina_o[..n], &mut ik_o[..n], &mut il_o[..n]);
    for l in 0..n {
        let c = breakpoint([gnabar[l], gkbar[l], gl[l], el[l], ena[l], ek[l]], m[l], h[l], ng[l], v[l]);
        rhs[l] -= c.total;
        d[l] += c.di;
        if OUT {
            gna_o[l] = c.gna;
            gk_o[l] = c.gk;
            ina_o[l] = c.ina;
            ik_o[l] = c.ik;
            il_o[l] = c.il;
        }
    }
}

/// hh's currents at one voltage: the conductances, ina, ik, il, their sum and `di/dv`.
struct Currents {
    gna: f64,
    gk: f64,
    ina: f64,
    ik: f64,
    il: f64,
    total: f64,
    di: f64,
}

/// BREAKPOINT at v + .001 and at v for one instance-lane, in nocmodl's order.
#[inline(always)]
fn breakpoint([gnabar, gkbar, gl, el, ena, ek]: [f64; 6], m: f64, h: f64, n: f64, v: f64) -> Currents {
    let gna = gnabar * m * m * m * h;
    let gk = gkbar * n * n * n * n;
    let vdv = v + DV;
    let total_dv = ((0.0 + gna * (vdv - ena)) + gk * (vdv - ek)) + gl * (vdv - el);
    let ina = gna * (v - ena);
    let ik = gk * (v - ek);
    let il = gl * (v - el);
    let total = ((0.0 + ina) + ik) + il;
    Currents { gna, gk, ina, ik, il, total, di: (total_dv - total) / DV }
}

/// cnexp's constants of one gate over the lanes: `inf` becomes `-(inf/tau)/a` and `tau`
/// becomes `dt*a`, with `a = -1/tau`.
#[inline(always)]
fn cnexp_prepare(inf: &mut [f64], tau: &mut [f64], dt: f64) {
    let tau = &mut tau[..inf.len()];
    for l in 0..inf.len() {
        (inf[l], tau[l]) = cnexp_constants(inf[l], tau[l], dt);
    }
}

/// cnexp's constants of one gate-lane: `(q, dt*a)` with `a = -1/tau`, `q = -(inf/tau)/a`.
#[inline(always)]
fn cnexp_constants(inf: f64, tau: f64, dt: f64) -> (f64, f64) {
    let a = -1.0 / tau;
    (-(inf / tau) / a, dt * a)
}

/// cnexp's update of one gate-lane, `y + (1 - e)*(q - y)` with `e = exp(dt*a)`.
#[inline(always)]
fn cnexp_step(y: f64, q: f64, e: f64) -> f64 {
    y + (1.0 - e) * (q - y)
}

/// cnexp's update with `q = -(inf/tau)/a` and `e = exp(dt*a)`: `y = y + (1 - e)*(q - y)`.
#[inline(always)]
fn cnexp_update(y: &mut [f64], q: &[f64], e: &[f64]) {
    let (q, e) = (&q[..y.len()], &e[..y.len()]);
    for l in 0..y.len() {
        y[l] = cnexp_step(y[l], q[l], e[l]);
    }
}

/// Where `Shared::fill` puts the rates of the table's order (minf, mtau, hinf, htau, ninf,
/// ntau).
const SLOT: [usize; 6] = [0, 3, 1, 4, 2, 5];

impl Shared {
    #[inline(always)]
    fn at(&self, v: f64) -> Rates {
        if self.usetable {
            self.table.lookup(v)
        } else {
            rates_exact(v, self.q10)
        }
    }

    /// The rates at each voltage of `v`: `out[r*n + l]` holds rate r of lane l, in the order
    /// minf, hinf, ninf, mtau, htau, ntau (the three taus together).
    #[inline(always)]
    fn fill(&self, v: &[f64], out: &mut [f64]) {
        let n = v.len();
        let out = &mut out[..6 * n];
        if self.usetable {
            for (l, &v) in v.iter().enumerate() {
                let r = self.table.lookup_row(v);
                for g in 0..6 {
                    out[SLOT[g] * n + l] = r[g];
                }
            }
        } else {
            for (l, &v) in v.iter().enumerate() {
                let r = rates_exact(v, self.q10);
                for (g, x) in [r.minf, r.mtau, r.hinf, r.htau, r.ninf, r.ntau].into_iter().enumerate() {
                    out[SLOT[g] * n + l] = x;
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hh {
    pub base: Base,
    /// gnabar, gkbar, gl, el, then ena and ek.
    pub p: [Col; 6],
    m: Vec<f64>,
    h: Vec<f64>,
    n: Vec<f64>,
    ina: Vec<f64>,
    ik: Vec<f64>,
    il: Vec<f64>,
    gna: Vec<f64>,
    gk: Vec<f64>,
    /// Per gate and lane of one instance: `-(inf/tau)/a`, then `dt*a`, whose exp is taken
    /// over the whole slice at once (a = -1/tau).
    scratch: Vec<f64>,
}

impl Hh {
    pub fn new(base: Base) -> Hh {
        let [gnabar, gkbar, gl, el] = base.params(&DEF);
        let p = [gnabar, gkbar, gl, el, base.col(ion::NA.params[0].default), base.col(ion::K.params[0].default)];
        let z = || base.field(0.0);
        Hh {
            m: z(),
            h: z(),
            n: z(),
            ina: z(),
            ik: z(),
            il: z(),
            gna: z(),
            gk: z(),
            scratch: vec![0.0; 6 * base.lanes],
            p,
            base,
        }
    }

    /// Where an ion's parameter lives in `p`.
    pub fn ion_field(ion: &MechDef) -> Option<usize> {
        if std::ptr::eq(ion, &ion::NA) {
            Some(ENA)
        } else if std::ptr::eq(ion, &ion::K) {
            Some(EK)
        } else {
            None
        }
    }

    /// INITIAL: the gates at their steady state for the node's voltage.
    pub fn initial(&mut self, v: &[f64], rates: &Shared) {
        let n = self.base.lanes;
        for (k, &nd) in self.base.node.iter().enumerate() {
            for l in 0..n {
                let r = rates.at(v[nd as usize * n + l]);
                self.m[k * n + l] = r.minf;
                self.h[k * n + l] = r.hinf;
                self.n[k * n + l] = r.ninf;
            }
        }
    }

    /// BREAKPOINT at v + .001 and at v: `rhs -= i`, `d += di/dv`, summing ina, ik, il in
    /// nocmodl's order.
    #[inline(always)]
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        // Two instantiations, so that the loop carries no test: with and without the stores of
        // the outputs.
        if cx.outputs {
            self.current_with::<N, true>(cx)
        } else {
            self.current_with::<N, false>(cx)
        }
    }

    #[inline(always)]
    fn current_with<const N: usize, const OUT: bool>(&mut self, cx: &mut Cx<N>) {
        if N == 1 {
            return self.current_one::<OUT>(cx.v, cx.rhs, cx.d);
        }
        for (k, &nd) in self.base.node.iter().enumerate() {
            let ir = cx.inst(k);
            let (v, rhs, d) = cx.node(nd);
            let [gnabar, gkbar, gl, el, ena, ek] = &self.p;
            let r = ir.clone();
            let p = [&gnabar[r.clone()], &gkbar[r.clone()], &gl[r.clone()], &el[r.clone()], &ena[r.clone()], &ek[r]];
            current_lanes::<OUT>(
                v,
                rhs,
                d,
                p,
                &self.m[ir.clone()],
                &self.h[ir.clone()],
                &self.n[ir.clone()],
                &mut self.gna[ir.clone()],
                &mut self.gk[ir.clone()],
                &mut self.ina[ir.clone()],
                &mut self.ik[ir.clone()],
                &mut self.il[ir],
            );
        }
    }

    /// `current` of a one-lane tile: instance k's entries are numbers, indexed directly (the
    /// row slices of the lane loops were most of a one-cell step's instructions, and a
    /// one-cell step takes as long as its instructions and its chain of divisions together).
    #[inline(always)]
    fn current_one<const OUT: bool>(&mut self, v: &[f64], rhs: &mut [f64], d: &mut [f64]) {
        let [gnabar, gkbar, gl, el, ena, ek] = &self.p;
        for (k, &nd) in self.base.node.iter().enumerate() {
            let nd = nd as usize;
            let c = breakpoint([gnabar[k], gkbar[k], gl[k], el[k], ena[k], ek[k]], self.m[k], self.h[k], self.n[k], v[nd]);
            rhs[nd] -= c.total;
            d[nd] += c.di;
            if OUT {
                self.gna[k] = c.gna;
                self.gk[k] = c.gk;
                self.ina[k] = c.ina;
                self.ik[k] = c.ik;
                self.il[k] = c.il;
            }
        }
    }

    /// `SOLVE states METHOD cnexp` at the new voltage: each gate
    /// `y = y + (1. - exp(dt*((-1.0)/tau)))*(- (inf/tau)/((-1.0)/tau) - y)`, in three passes
    /// over the lanes: the rates (table lookups), the divisions, then exp of every `dt*a` at
    /// once and the update.
    #[inline(always)]
    pub fn state<const N: usize>(&mut self, v: &[f64], dt: f64, rates: &Shared) {
        if N == 1 {
            return self.state_one(v, dt, rates);
        }
        let n = super::block::lane_count::<N>(self.base.lanes);
        let s = &mut self.scratch[..6 * n];
        for (k, &nd) in self.base.node.iter().enumerate() {
            rates.fill(&v[nd as usize * n..(nd as usize + 1) * n], s);
            // Each gate's inf and tau become q = -(inf/tau)/a and dt*a, with a = -1/tau; then
            // exp of the three gates' dt*a in one call.
            let (q, arg) = s.split_at_mut(3 * n);
            cnexp_prepare(q, arg, dt);
            crate::exp::exp_in_place(arg);
            let ir = k * n..(k + 1) * n;
            for (g, y) in [&mut self.m, &mut self.h, &mut self.n].into_iter().enumerate() {
                cnexp_update(&mut y[ir.clone()], &q[g * n..(g + 1) * n], &arg[g * n..(g + 1) * n]);
            }
        }
    }

    /// `state` for a one-lane tile: the same operations, in registers.
    #[inline(always)]
    fn state_one(&mut self, v: &[f64], dt: f64, rates: &Shared) {
        let path = crate::exp::path();
        for (k, &nd) in self.base.node.iter().enumerate() {
            let r = rates.at(v[nd as usize]);
            for (y, inf, tau) in [(&mut self.m, r.minf, r.mtau), (&mut self.h, r.hinf, r.htau), (&mut self.n, r.ninf, r.ntau)] {
                let (q, arg) = cnexp_constants(inf, tau, dt);
                y[k] = cnexp_step(y[k], q, path.exp1_inline(arg));
            }
        }
    }

    pub fn var(&self, var: usize, at: usize) -> f64 {
        [&self.m, &self.h, &self.n, &self.ina, &self.ik, &self.il, &self.gna, &self.gk][var][at]
    }

    /// The arrays a snapshot holds: gnabar, gkbar, gl, el, ena, ek, m, h, n, ina, ik, il, gna,
    /// gk (`scratch` is rewritten before every use).
    pub fn columns(&self) -> [&[f64]; 14] {
        let p = &self.p;
        [&p[0], &p[1], &p[2], &p[3], &p[4], &p[5], &self.m, &self.h, &self.n, &self.ina, &self.ik, &self.il, &self.gna, &self.gk]
    }

    pub fn columns_mut(&mut self) -> [ColMut<'_>; 14] {
        let [a, b, c, d, e, f] = &mut self.p;
        [a.into(), b.into(), c.into(), d.into(), e.into(), f.into(), (&mut self.m).into(), (&mut self.h).into(), (&mut self.n).into(), (&mut self.ina).into(), (&mut self.ik).into(), (&mut self.il).into(), (&mut self.gna).into(), (&mut self.gk).into()]
    }
}
