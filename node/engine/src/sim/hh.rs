//! Hodgkin-Huxley rates, as NEURON's hh.mod computes them (nocmodl's translation, operation
//! for operation, so that results agree bit for bit), and its 201-entry rate tables.

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
        x / ((x / y).exp() - 1.0)
    }
}

/// The exact rates (hh.mod's PROCEDURE rates with usetable_hh = 0).
pub fn rates_exact(v: f64, q10: f64) -> Rates {
    let alpha = 0.1 * vtrap(-(v + 40.0), 10.0);
    let beta = 4.0 * (-(v + 65.0) / 18.0).exp();
    let sum = alpha + beta;
    let mtau = 1.0 / (q10 * sum);
    let minf = alpha / sum;

    let alpha = 0.07 * (-(v + 65.0) / 20.0).exp();
    let beta = 1.0 / ((-(v + 35.0) / 10.0).exp() + 1.0);
    let sum = alpha + beta;
    let htau = 1.0 / (q10 * sum);
    let hinf = alpha / sum;

    let alpha = 0.01 * vtrap(-(v + 55.0), 10.0);
    let beta = 0.125 * (-(v + 65.0) / 80.0).exp();
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
    #[inline]
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

/// cnexp's update for `y' = (inf - y)/tau` over one step: nocmodl writes
/// `y = y + (1. - exp(dt*((-1.0)/tau)))*(- (inf/tau)/((-1.0)/tau) - y)`.
#[inline]
pub fn cnexp(y: f64, inf: f64, tau: f64, dt: f64) -> f64 {
    let a = -1.0 / tau;
    y + (1.0 - (dt * a).exp()) * (-(inf / tau) / a - y)
}

/// cnexp's update for a pure decay `y' = -y/tau`, nocmodl's
/// `y = y + (1. - exp(dt*((-1.0)/tau)))*(-(0.0)/((-1.0)/tau) - y)`, with its constants for one
/// (tau, dt) computed once and reused while neither changes: the same operations on the same
/// operands, so the same bits, one `exp` fewer per synapse and step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decay {
    tau: f64,
    dt: f64,
    a: f64,
    c: f64,
}

impl Default for Decay {
    fn default() -> Self {
        Decay { tau: f64::NAN, dt: f64::NAN, a: f64::NAN, c: f64::NAN }
    }
}

impl Decay {
    pub fn new(tau: f64, dt: f64) -> Self {
        let a = -1.0 / tau;
        Decay { tau, dt, a, c: 1.0 - (dt * a).exp() }
    }

    /// `y + (1 - exp(dt*a)) * (-(0)/a - y)` with a = -1/tau.
    #[inline]
    pub fn apply(&self, y: f64) -> f64 {
        y + self.c * (-(0.0) / self.a - y)
    }

    /// Recomputes the constants if tau or dt changed since they were made.
    #[inline]
    pub fn refresh(&mut self, tau: f64, dt: f64) -> &Self {
        if self.tau.to_bits() != tau.to_bits() || self.dt.to_bits() != dt.to_bits() {
            *self = Decay::new(tau, dt);
        }
        self
    }
}
