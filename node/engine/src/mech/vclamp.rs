//! VClamp: NEURON's two-electrode voltage clamp (`vclmp.mod` as nocmodl translates it): three
//! levels `amp[j]` for `dur[j]` ms from t = 0, a control amplifier of `gain` with time
//! constants `tau1`, `tau2`, an ELECTRODE_CURRENT `i = (vo - v)/rstim`. Its three states (the
//! amplifiers' voltages e, vo, vi) solve a linear system (`LINEAR clamp`) by scopmath's
//! `simeq`, reproduced here operation for operation: at v + .001 and at v in each BREAKPOINT,
//! and again with the new v after each step (its SOLVE update).

use super::col::Col;
use super::block::{Base, Cx};
use super::{Allowed, Field, MechDef, MechKind, DV};

pub static DEF: MechDef = MechDef {
    name: "VClamp",
    kind: MechKind::Point,
    params: &[
        Field::new("dur[0]", "ms", 0.0, Allowed::NonNegative),
        Field::new("dur[1]", "ms", 0.0, Allowed::NonNegative),
        Field::new("dur[2]", "ms", 0.0, Allowed::NonNegative),
        Field::new("amp[0]", "mV", 0.0, Allowed::Any),
        Field::new("amp[1]", "mV", 0.0, Allowed::Any),
        Field::new("amp[2]", "mV", 0.0, Allowed::Any),
        Field::new("gain", "1", 1e5, Allowed::NonNegative),
        Field::new("rstim", "megohm", 1.0, Allowed::Positive),
        Field::new("tau1", "ms", 0.001, Allowed::NonNegative),
        Field::new("tau2", "ms", 0.0, Allowed::NonNegative),
        Field::new("fac", "1", 0.0, Allowed::NonNegative),
    ],
    vars: &["i", "e", "vo", "vi"],
    ions: &[],
    receives: false,
    receive_writes: &[],
    current_outputs: &[],
    initial_writes: &[],
};

const DUR: usize = 0;
const AMP: usize = 3;
const GAIN: usize = 6;
const RSTIM: usize = 7;
const TAU1: usize = 8;
const TAU2: usize = 9;
const FAC: usize = 10;

/// One instance's assigned variables and states (the .mod's names).
#[derive(Debug, Clone, Copy, Default)]
struct St {
    i: f64,
    e: f64,
    vo: f64,
    vi: f64,
    e0: f64,
    vo0: f64,
    vi0: f64,
    stim: f64,
    tc: f64,
}

#[derive(Debug, Clone)]
pub struct VClamp {
    pub base: Base,
    pub p: [Col; 11],
    pub mfact: Col,
    s: Vec<St>,
}

/// scopmath's `simeq` for n = 3: Gaussian elimination with partial pivoting by row indices
/// (rows are not swapped; `isave` carries over between columns as in the C code). Returns
/// the solution, or None when a pivot is below 1e-20 (NEURON stops the run).
fn simeq(coef: &mut [[f64; 4]; 3]) -> Option<[f64; 3]> {
    const N: usize = 3;
    let mut perm = [0usize, 1, 2];
    let mut isave = 0;
    for j in 0..N {
        let mut ipivot = perm[j];
        for i in j + 1..N {
            let jrow = perm[i];
            if coef[ipivot][j].abs() < coef[jrow][j].abs() {
                ipivot = jrow;
                isave = i;
            }
        }
        if coef[ipivot][j].abs() < 1e-20 {
            return None;
        }
        if ipivot != perm[j] {
            perm[isave] = perm[j];
            perm[j] = ipivot;
        }
        for kcol in j + 1..=N {
            coef[ipivot][kcol] /= coef[ipivot][j];
        }
        for i in j + 1..N {
            let jrow = perm[i];
            for kcol in j + 1..=N {
                coef[jrow][kcol] -= coef[ipivot][kcol] * coef[jrow][j];
            }
        }
    }
    let mut soln = [0.0; N];
    for i in (0..N).rev() {
        let jrow = perm[i];
        soln[i] = coef[jrow][N];
        for j in i + 1..N {
            soln[i] -= coef[jrow][j] * soln[j];
        }
    }
    Some(soln)
}

impl VClamp {
    pub fn new(base: Base) -> VClamp {
        let p = base.params(&DEF);
        VClamp { mfact: base.col(0.0), s: vec![St::default(); base.node.len() * base.lanes], p, base }
    }

    /// INITIAL: the amplifiers start at 0, v and v.
    pub fn initial(&mut self, v: &[f64]) {
        let n = self.base.lanes;
        for (k, &nd) in self.base.node.iter().enumerate() {
            for l in 0..n {
                let v = v[nd as usize * n + l];
                let s = &mut self.s[k * n + l];
                s.e0 = 0.0;
                s.vo = v;
                s.vo0 = v;
                s.vi = v;
                s.vi0 = v;
                s.e = 0.0;
            }
        }
    }

    /// PROCEDURE vstim(): the level in force at t (stim), and the time it ends (tc, or
    /// 100 ms past it while a level is on).
    fn vstim(&mut self, at: usize, t: f64) {
        let s = &mut self.s[at];
        s.tc = 0.0;
        for j in 0..3 {
            s.stim = self.p[AMP + j][at];
            s.tc += self.p[DUR + j][at];
            if t < s.tc {
                s.tc += 100.0;
                break;
            }
        }
    }

    /// FUNCTION icur() at v, time t, step dt: off after the last level, else the clamp's
    /// states solved (`SOLVE clamp`) and `(vo - v)/rstim`.
    fn icur(&mut self, at: usize, v: f64, t: f64, dt: f64) -> f64 {
        let p = |f: usize| self.p[f][at];
        let (gain, rstim, tau1, tau2, fac) = (p(GAIN), p(RSTIM), p(TAU1), p(TAU2), p(FAC));
        let s = &mut self.s[at];
        if t > s.tc {
            s.e0 = 0.0;
            s.vo0 = 0.0;
            return 0.0;
        }
        // LINEAR clamp as nocmodl builds it (columns vi, vo, e; column 3 the right side).
        let mut c = [[0.0f64; 4]; 3];
        let t1 = tau1 / dt;
        let t2 = tau2 / dt;
        c[0][0] -= 1.0;
        c[0][3] -= v;
        c[0][1] += fac * 1.0;
        c[0][3] += fac * v;
        c[1][1] -= t2 * 1.0;
        c[1][3] -= t2 * s.vo0;
        c[1][1] -= 1.0;
        c[1][2] -= gain * 1.0;
        c[2][3] -= s.stim;
        c[2][2] += 1.0;
        c[2][0] -= 1.0;
        c[2][2] += 1.0;
        c[2][0] -= t1 * 1.0;
        c[2][2] += t1 * 1.0;
        c[2][3] -= t1 * (s.vi0 - s.e0);
        c[2][3] -= 0.0;
        // A singular system (not reachable with the allowed parameters) leaves the states.
        if let Some([vi, vo, e]) = simeq(&mut c) {
            s.vi = vi;
            s.vo = vo;
            s.e = e;
        }
        (s.vo - v) / rstim
    }

    /// BREAKPOINT at v + .001 and at v (each solving the clamp): an electrode current adds to
    /// rhs, its conductance comes off d.
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        let (n, t, dt) = (cx.n(), cx.t, cx.dt);
        for k in 0..self.base.node.len() {
            let nd = self.base.node[k];
            let ir = cx.inst(k);
            let (v, rhs, d) = cx.node(nd);
            for l in 0..n {
                let at = ir.start + l;
                self.vstim(at, t);
                let i_dv = self.icur(at, v[l] + DV, t, dt);
                self.s[at].i = i_dv;
                self.vstim(at, t);
                let i = self.icur(at, v[l], t, dt);
                self.s[at].i = i;
                let mfact = self.mfact[at];
                rhs[l] += i * mfact;
                d[l] -= (i_dv - i) / DV * mfact;
            }
        }
    }

    /// SOLVE update: the current and states with the new v at t_{n+1}, which become the
    /// previous values of the next step.
    pub fn state(&mut self, v: &[f64], t: f64, dt: f64) {
        let n = self.base.lanes;
        for k in 0..self.base.node.len() {
            let nd = self.base.node[k] as usize;
            for l in 0..n {
                let at = k * n + l;
                let i = self.icur(at, v[nd * n + l], t, dt);
                let s = &mut self.s[at];
                s.i = i;
                s.e0 = s.e;
                s.vo0 = s.vo;
                s.vi0 = s.vi;
            }
        }
    }

    pub fn var(&self, var: usize, at: usize) -> f64 {
        let s = &self.s[at];
        [s.i, s.e, s.vo, s.vi][var]
    }
}

f64_fields!(St: i, e, vo, vi, e0, vo0, vi0, stim, tc);

impl VClamp {
    /// What a snapshot holds of entry `at`: the parameters, mfact, the assigned variables
    /// and states.
    pub fn save(&self, at: usize, o: &mut dyn FnMut(f64)) {
        self.p.iter().for_each(|p| o(p[at]));
        o(self.mfact[at]);
        self.s[at].save(o);
    }

    pub fn load(&mut self, at: usize, i: &mut dyn FnMut() -> f64) {
        self.p.iter_mut().for_each(|p| p.set(at, i()));
        self.mfact.set(at, i());
        self.s[at].load(i);
    }
}
