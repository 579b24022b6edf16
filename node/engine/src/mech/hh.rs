//! hh: NEURON's Hodgkin-Huxley channels (`hh.mod` as nocmodl translates it, operation for
//! operation, so that results agree bit for bit), with its 201-entry rate tables.
//!
//! hh uses the na and k ions: it reads ena and ek (copied here from the section's ion
//! parameters) and writes ina and ik.

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

/// NEURON's `TABLE minf, mtau, hinf, htau, ninf, ntau DEPEND celsius FROM -100 TO 100 WITH 200`.
#[derive(Debug, Clone)]
pub struct RateTable {
    /// The celsius the table was made for; NaN before the first build.
    pub celsius: f64,
    mfac: f64,
    rows: Vec<Rates>,
}

impl Default for RateTable {
    fn default() -> Self {
        RateTable { celsius: f64::NAN, mfac: 0.0, rows: vec![Rates::default(); TABLE_N + 1] }
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
            *row = rates_exact(x, q);
            x += dx;
        }
        self.celsius = celsius;
    }

    /// Linear interpolation as nocmodl's `_n_rates`.
    #[inline(always)]
    pub fn lookup(&self, v: f64) -> Rates {
        let xi = self.mfac * (v - TABLE_MIN);
        if xi <= 0.0 {
            return self.rows[0];
        }
        if xi >= TABLE_N as f64 {
            return self.rows[TABLE_N];
        }
        let i = xi as usize;
        let theta = xi - i as f64;
        let (a, b) = (&self.rows[i], &self.rows[i + 1]);
        let lerp = |p: f64, q: f64| p + theta * (q - p);
        Rates {
            minf: lerp(a.minf, b.minf),
            mtau: lerp(a.mtau, b.mtau),
            hinf: lerp(a.hinf, b.hinf),
            htau: lerp(a.htau, b.htau),
            ninf: lerp(a.ninf, b.ninf),
            ntau: lerp(a.ntau, b.ntau),
        }
    }
}

impl Shared {
    fn at(&self, v: f64) -> Rates {
        if self.usetable {
            self.table.lookup(v)
        } else {
            rates_exact(v, self.q10)
        }
    }
}

#[derive(Debug, Clone)]
pub struct Hh {
    pub base: Base,
    /// gnabar, gkbar, gl, el, then ena and ek.
    pub p: [Vec<f64>; 6],
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
        let p = [gnabar, gkbar, gl, el, base.field(ion::NA.params[0].default), base.field(ion::K.params[0].default)];
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
    pub fn current(&mut self, cx: &mut Cx) {
        let n = self.base.lanes;
        for (k, &nd) in self.base.node.iter().enumerate() {
            let ir = cx.inst(k);
            let (v, rhs, d) = cx.node(nd);
            let [gnabar, gkbar, gl, el, ena, ek] = &self.p;
            let (gnabar, gkbar, gl, el) = (&gnabar[ir.clone()], &gkbar[ir.clone()], &gl[ir.clone()], &el[ir.clone()]);
            let (ena, ek) = (&ena[ir.clone()], &ek[ir.clone()]);
            let (m, h, ng) = (&self.m[ir.clone()], &self.h[ir.clone()], &self.n[ir.clone()]);
            let (ina_o, ik_o, il_o) = (&mut self.ina[ir.clone()], &mut self.ik[ir.clone()], &mut self.il[ir.clone()]);
            let (gna_o, gk_o) = (&mut self.gna[ir.clone()], &mut self.gk[ir]);
            for l in 0..n {
                let gna = gnabar[l] * m[l] * m[l] * m[l] * h[l];
                let gk = gkbar[l] * ng[l] * ng[l] * ng[l] * ng[l];
                let vdv = v[l] + DV;
                let total_dv = ((0.0 + gna * (vdv - ena[l])) + gk * (vdv - ek[l])) + gl[l] * (vdv - el[l]);
                let ina = gna * (v[l] - ena[l]);
                let ik = gk * (v[l] - ek[l]);
                let il = gl[l] * (v[l] - el[l]);
                let total = ((0.0 + ina) + ik) + il;
                rhs[l] -= total;
                d[l] += (total_dv - total) / DV;
                gna_o[l] = gna;
                gk_o[l] = gk;
                ina_o[l] = ina;
                ik_o[l] = ik;
                il_o[l] = il;
            }
        }
    }

    /// `SOLVE states METHOD cnexp` at the new voltage: each gate
    /// `y = y + (1. - exp(dt*((-1.0)/tau)))*(- (inf/tau)/((-1.0)/tau) - y)`.
    #[inline(always)]
    pub fn state(&mut self, v: &[f64], dt: f64, rates: &Shared) {
        let n = self.base.lanes;
        let (q, arg) = self.scratch.split_at_mut(3 * n);
        for (k, &nd) in self.base.node.iter().enumerate() {
            let v = &v[nd as usize * n..(nd as usize + 1) * n];
            for l in 0..n {
                let r = rates.at(v[l]);
                for (g, (inf, tau)) in [(r.minf, r.mtau), (r.hinf, r.htau), (r.ninf, r.ntau)].into_iter().enumerate() {
                    let a = -1.0 / tau;
                    q[g * n + l] = -(inf / tau) / a;
                    arg[g * n + l] = dt * a;
                }
            }
            crate::exp::exp_in_place(arg);
            let ir = k * n..(k + 1) * n;
            for (g, y) in [&mut self.m, &mut self.h, &mut self.n].into_iter().enumerate() {
                let (y, q, e) = (&mut y[ir.clone()], &q[g * n..(g + 1) * n], &arg[g * n..(g + 1) * n]);
                for l in 0..n {
                    y[l] += (1.0 - e[l]) * (q[l] - y[l]);
                }
            }
        }
    }

    pub fn var(&self, var: usize, at: usize) -> f64 {
        [&self.m, &self.h, &self.n, &self.ina, &self.ik, &self.il, &self.gna, &self.gk][var][at]
    }
}
