//! cnexp's update for a pure decay `y' = -y/tau`, which nocmodl writes
//! `y = y + (1. - exp(dt*((-1.0)/tau)))*(-(0.0)/((-1.0)/tau) - y)`, with the constants of each
//! instance computed once per (tau, dt) and reused: the same operations on the same operands,
//! so the same bits, and no `exp` or division per synapse and step.

use super::col::{Col, Interner};

/// The decay constants of every instance-lane of one time constant (columns tiles share
/// when equal: see `col`).
#[derive(Debug, Clone)]
pub struct Decay {
    /// The dt they were made for (NaN: never made).
    dt: f64,
    /// `1 - exp(dt * a)` with `a = -1/tau`.
    c: Col,
    /// `-(0.0)/a`.
    z: Col,
}

impl Decay {
    pub fn new(n: usize) -> Decay {
        Decay { dt: f64::NAN, c: Col::new(n, f64::NAN), z: Col::new(n, f64::NAN) }
    }

    /// `(c, z)` of one time constant for `dt`, in nocmodl's operations.
    fn constants(dt: f64, tau: f64) -> (f64, f64) {
        let a = -1.0 / tau;
        (1.0 - crate::exp::exp(dt * a), -(0.0) / a)
    }

    fn make(&mut self, at: usize, tau: f64) {
        let (c, z) = Decay::constants(self.dt, tau);
        self.c[at] = c;
        self.z[at] = z;
    }

    /// The constants made for `dt` (as the next step's `for_dt` would), then shared with
    /// equal ones.
    pub fn share(&mut self, dt: f64, tau: &[f64], i: &mut Interner) {
        self.for_dt(dt, tau);
        i.share(&mut self.c);
        i.share(&mut self.z);
    }

    /// tau of entry `at` changed: its constants follow (for the dt in use).
    pub fn retau(&mut self, at: usize, tau: f64) {
        if !self.dt.is_nan() {
            self.make(at, tau);
        }
    }

    /// Before the states of a step: every constant made for `dt`.
    #[inline(always)]
    pub fn for_dt(&mut self, dt: f64, tau: &[f64]) {
        if self.dt.to_bits() != dt.to_bits() {
            self.dt = dt;
            // Borrowed once for the loop (each `DerefMut` of a column checks its sharing).
            let (c, z) = (&mut *self.c, &mut *self.z);
            for ((c, z), &tau) in c.iter_mut().zip(z.iter_mut()).zip(tau) {
                (*c, *z) = Decay::constants(dt, tau);
            }
        }
    }

    /// `y = y + c*(z - y)` over entries `r`.
    #[inline(always)]
    pub fn apply(&self, y: &mut [f64]) {
        let n = y.len();
        let (c, z) = (&self.c[..n], &self.z[..n]);
        for l in 0..n {
            y[l] += c[l] * (z[l] - y[l]);
        }
    }
}
