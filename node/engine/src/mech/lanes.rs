//! Loops over the lanes of a row: the same operations on every cell of a tile. Each takes
//! its rows as separate slice arguments: the compiler then knows they do not overlap (also
//! after inlining), and vectorizes the loop without run-time overlap checks. Every slice is
//! cut to the first one's length first, so that the loops carry no bounds checks.

use super::DV;

/// `y[l] += k * x[l]`.
#[inline(always)]
pub fn add_scaled(y: &mut [f64], k: f64, x: &[f64]) {
    let x = &x[..y.len()];
    for l in 0..y.len() {
        y[l] += k * x[l];
    }
}

/// `y[l] += x[l]`.
#[inline(always)]
pub fn add(y: &mut [f64], x: &[f64]) {
    let x = &x[..y.len()];
    for l in 0..y.len() {
        y[l] += x[l];
    }
}

/// `y[l] /= x[l]`.
#[inline(always)]
pub fn divide(y: &mut [f64], x: &[f64]) {
    let x = &x[..y.len()];
    for l in 0..y.len() {
        y[l] /= x[l];
    }
}

/// The axial current between node i and its parent p (NEURON's nrn_rhs and nrn_lhs), `v` =
/// (v_p, v_i).
#[inline(always)]
pub fn axial(
    rhs_i: &mut [f64],
    rhs_p: &mut [f64],
    d_i: &mut [f64],
    d_p: &mut [f64],
    v: (&[f64], &[f64]),
    a: &[f64],
    b: &[f64],
) {
    let n = rhs_i.len();
    let (rhs_p, d_i, d_p, v_p, v_i, a, b) = (&mut rhs_p[..n], &mut d_i[..n], &mut d_p[..n], &v.0[..n], &v.1[..n], &a[..n], &b[..n]);
    for l in 0..n {
        let dv = v_p[l] - v_i[l];
        rhs_i[l] -= b[l] * dv;
        rhs_p[l] += a[l] * dv;
        d_i[l] -= b[l];
        d_p[l] -= a[l];
    }
}

/// One elimination of the tree solve (NEURON's triang): node i into its parent p.
#[inline(always)]
pub fn triang(rhs_p: &mut [f64], d_p: &mut [f64], rhs_i: &[f64], d_i: &[f64], a: &[f64], b: &[f64]) {
    let n = rhs_p.len();
    let (d_p, rhs_i, d_i, a, b) = (&mut d_p[..n], &rhs_i[..n], &d_i[..n], &a[..n], &b[..n]);
    for l in 0..n {
        (rhs_p[l], d_p[l]) = eliminate(rhs_p[l], d_p[l], rhs_i[l], d_i[l], a[l], b[l]);
    }
}

/// One elimination (NEURON's triang) of row i, complete, into its parent's row p, on one
/// lane: the parent's new `(rhs, d)`.
#[inline(always)]
pub fn eliminate(rhs_p: f64, d_p: f64, rhs_i: f64, d_i: f64, a: f64, b: f64) -> (f64, f64) {
    let pv = a / d_i;
    (rhs_p - pv * rhs_i, d_p - pv * b)
}

/// One back substitution (NEURON's bksub): node i from its parent p.
#[inline(always)]
pub fn bksub(rhs_i: &mut [f64], rhs_p: &[f64], b: &[f64], d: &[f64]) {
    let n = rhs_i.len();
    let (rhs_p, b, d) = (&rhs_p[..n], &b[..n], &d[..n]);
    for l in 0..n {
        rhs_i[l] = back_substitute(rhs_i[l], rhs_p[l], b[l], d[l]);
    }
}

/// One back substitution (NEURON's bksub) on one lane: row i's solution from its parent's.
#[inline(always)]
pub fn back_substitute(rhs_i: f64, rhs_p: f64, b: f64, d_i: f64) -> f64 {
    (rhs_i - b * rhs_p) / d_i
}

/// `y[l] = a[l] - b[l]`.
#[inline(always)]
pub fn difference(y: &mut [f64], a: &[f64], b: &[f64]) {
    let (a, b) = (&a[..y.len()], &b[..y.len()]);
    for l in 0..y.len() {
        y[l] = a[l] - b[l];
    }
}

/// An ohmic current `i = g*(v - e)` (pas): `rhs -= i`, `d += (i(v + .001) - i(v))/.001`, as
/// nocmodl computes a conductance; `out = i` when outputs are read (see `Cx::outputs`).
#[inline(always)]
pub fn leak_current(v: &[f64], rhs: &mut [f64], d: &mut [f64], g: &[f64], e: &[f64], out: Option<&mut [f64]>) {
    #[inline(always)]
    fn run<const OUT: bool>(v: &[f64], rhs: &mut [f64], d: &mut [f64], g: &[f64], e: &[f64], out: &mut [f64]) {
        let n = rhs.len();
        let (v, d, g, e) = (&v[..n], &mut d[..n], &g[..n], &e[..n]);
        let out = if OUT { &mut out[..n] } else { out };
        for l in 0..n {
            let i_dv = g[l] * ((v[l] + DV) - e[l]);
            let i = g[l] * (v[l] - e[l]);
            rhs[l] -= i;
            d[l] += (i_dv - i) / DV;
            if OUT {
                out[l] = i;
            }
        }
    }
    match out {
        Some(out) => run::<true>(v, rhs, d, g, e, out),
        None => run::<false>(v, rhs, d, g, e, &mut []),
    }
}

/// A synapse's current `i = g*(v - e)` in nA, to the node's density with `mfact` = 100/area
/// (NEURON's point-process factor); `out = i` when outputs are read.
#[inline(always)]
pub fn synapse_current(v: &[f64], rhs: &mut [f64], d: &mut [f64], g: &[f64], e: &[f64], mfact: &[f64], out: Option<&mut [f64]>) {
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn run<const OUT: bool>(v: &[f64], rhs: &mut [f64], d: &mut [f64], g: &[f64], e: &[f64], mfact: &[f64], out: &mut [f64]) {
        let n = rhs.len();
        let (v, d, g, e, mfact) = (&v[..n], &mut d[..n], &g[..n], &e[..n], &mfact[..n]);
        let out = if OUT { &mut out[..n] } else { out };
        for l in 0..n {
            let i_dv = g[l] * ((v[l] + DV) - e[l]);
            let i = g[l] * (v[l] - e[l]);
            rhs[l] -= i * mfact[l];
            d[l] += (i_dv - i) / DV * mfact[l];
            if OUT {
                out[l] = i;
            }
        }
    }
    match out {
        Some(out) => run::<true>(v, rhs, d, g, e, mfact, out),
        None => run::<false>(v, rhs, d, g, e, mfact, &mut []),
    }
}

/// `out[l] = v[l] - thresh[l] > 0` (NEURON's spike detector test); whether some `out[l]`
/// differs from `flag[l]`.
#[inline(always)]
pub fn above(out: &mut [bool], flag: &[bool], v: &[f64], thresh: &[f64]) -> bool {
    let (flag, v, thresh) = (&flag[..out.len()], &v[..out.len()], &thresh[..out.len()]);
    let mut changed = false;
    for l in 0..out.len() {
        out[l] = v[l] - thresh[l] > 0.0;
        changed |= out[l] != flag[l];
    }
    changed
}

/// `x[l] = 0` and `y[l] = 0` (one loop: for the few nodes of a small tile, cheaper than two
/// calls of memset).
#[inline(always)]
pub fn zero2(x: &mut [f64], y: &mut [f64]) {
    let y = &mut y[..x.len()];
    for l in 0..x.len() {
        x[l] = 0.0;
        y[l] = 0.0;
    }
}
