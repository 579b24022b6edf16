//! Arguments for comparing [`super`]'s paths with libm's `exp`: the edge cases and a
//! deterministic random mix shaped like what the engine computes (hh's rate exponents, cnexp's
//! `dt*(-1/tau)`, synaptic decays) plus the whole range where exp is finite and nonzero, and
//! random bit patterns. Used by the start-up check behind [`super::verified`], by the unit
//! tests, and by `examples/exp_check.rs` (the 10^9-argument run).

/// exp's thresholds, each with its 64 neighbours on either side, and the special values.
pub fn edge_cases() -> Vec<f64> {
    let thresholds = [
        0.0,
        f64::from_bits(0x3c90000000000000), // 2^-54: glibc's tiny-argument limit
        512.0,                              // glibc's specialcase limit
        1024.0,                             // glibc's certain-overflow/underflow limit
        709.782712893384,                   // ln(DBL_MAX): overflow
        -708.3964185322641,                 // ln(DBL_MIN): results turn subnormal
        -744.4400719213812,                 // ln(min subnormal)
        -745.1332191019411,                 // ln(min subnormal / 2): results turn 0
        -745.1332191019412,
        1.0,
        core::f64::consts::LN_2 / 256.0, // the edge of the reduced interval
        f64::MIN_POSITIVE,
        f64::from_bits(1), // the smallest subnormal
        f64::MAX,
    ];
    let mut out = Vec::new();
    for t in thresholds {
        for sign in [1.0, -1.0] {
            let t = sign * t;
            let (mut up, mut down) = (t, t);
            out.push(t);
            for _ in 0..64 {
                up = up.next_up();
                down = down.next_down();
                out.extend([up, down]);
            }
        }
    }
    out.extend([
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0000000000001), // signalling NaN
        f64::from_bits(0xfff4000000000123), // negative signalling NaN with a payload
        f64::from_bits(0x7ff8dead0000beef), // quiet NaN with a payload
    ]);
    out
}

/// A deterministic stream of arguments (splitmix64): per draw, 55 % uniform in [-50, 50],
/// 15 % hh's exponents at a voltage in [-120, 80] mV, 5 % `dt*(-1/tau)` of cnexp and the
/// synapses, 20 % uniform in [-760, 720] (all finite nonzero results, subnormal ones, and
/// overflow), 5 % arbitrary bit patterns (NaN, inf, subnormal and huge arguments).
#[derive(Debug, Clone)]
pub struct Args {
    state: u64,
}

impl Args {
    pub fn new(seed: u64) -> Args {
        Args { state: seed }
    }

    /// Fills `out` with the next arguments of the stream.
    pub fn fill(&mut self, out: &mut [f64]) {
        for x in out {
            *x = self.next();
        }
    }

    fn next(&mut self) -> f64 {
        match self.below(100) {
            0..55 => self.uniform(-50.0, 50.0),
            55..70 => {
                let v = self.uniform(-120.0, 80.0);
                // The expressions of hh.rs (hh.mod as nocmodl translates it).
                match self.below(6) {
                    0 => -(v + 65.0) / 18.0,
                    1 => -(v + 65.0) / 20.0,
                    2 => -(v + 35.0) / 10.0,
                    3 => -(v + 65.0) / 80.0,
                    4 => -(v + 40.0) / 10.0, // vtrap(x, y): x/y
                    _ => -(v + 55.0) / 10.0,
                }
            }
            70..75 => {
                let dt = [0.025, 0.0125, 0.01, 0.005, 0.1][self.below(5) as usize];
                // tau from 1 us to 10 s, evenly in log.
                let tau = 10f64.powf(self.uniform(-3.0, 4.0));
                dt * ((-1.0) / tau)
            }
            75..95 => self.uniform(-760.0, 720.0),
            _ => f64::from_bits(self.bits()),
        }
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let u = (self.bits() >> 11) as f64 * f64::from_bits(0x3ca0000000000000); // 2^-53
        lo + (hi - lo) * u
    }

    /// Uniform in 0..n (multiply-shift: no division in this hot loop).
    fn below(&mut self, n: u64) -> u64 {
        ((self.bits() as u128 * n as u128) >> 64) as u64
    }

    /// splitmix64.
    fn bits(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
}

/// libm's `exp` of each argument, one call each (Rust's `f64::exp` is a call to the C
/// library's `exp` on glibc targets; see the module docs of [`super`]).
pub fn libm(xs: &[f64], out: &mut [f64]) {
    for (y, &x) in out.iter_mut().zip(xs) {
        *y = x.exp();
    }
}

/// How many results differ from the reference in any bit.
pub fn mismatches(got: &[f64], want: &[f64]) -> usize {
    got.iter()
        .zip(want)
        .filter(|(g, w)| g.to_bits() != w.to_bits())
        .count()
}
