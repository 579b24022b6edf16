//! Morphologies: a section's 3-d points (NEURON's pt3d) and the geometry NEURON 9.0.2
//! computes from them, bit for bit, and (`swc`) SWC files imported with NEURON's Import3d
//! conventions.
//!
//! A section with 3-d points takes its length from them (the arc length of the last point),
//! and the area and axial resistance of each segment from a trapezoidal integration over the
//! points that span it (`diam_from_list` in src/nrnoc/treeset.cpp), not from L and diam. NEURON
//! keeps the points as C floats (`struct Pt3d { float x, y, z, d; double arc; }`), so they are
//! stored here as f32 and every computation reads them as NEURON does.

pub mod swc;

use std::f64::consts::PI;

/// The most 3-d points of a section (NEURON's `pt3dclear` buffer bound).
pub const MAX_POINTS: usize = 30_000;

/// A section's 3-d points as NEURON stores them: coordinates and diameters as floats, and
/// each point's arc length (um from the first point) as a double.
#[derive(Debug, Clone, PartialEq)]
pub struct Pt3d {
    pub x: Vec<f32>,
    pub y: Vec<f32>,
    pub z: Vec<f32>,
    pub d: Vec<f32>,
    pub arc: Vec<f64>,
}

/// One segment's geometry from the points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegGeometry {
    /// Membrane area, um2.
    pub area: f64,
    /// 1 / (the right half resistance of the previous segment + this one's left half), uS
    /// (NEURON's NODERINV).
    pub rinv: f64,
    /// The mean diameter, um (NEURON sets the segment's `diam` to it).
    pub diam: f64,
}

impl Pt3d {
    /// `pt3dadd(x, y, z, d)` for each point in order: each value stored as a float, arc
    /// lengths as `nrn_pt3dmodified` computes them (differences taken in float, the rest in
    /// double).
    pub fn new(points: &[[f64; 4]]) -> Pt3d {
        let n = points.len();
        let mut p = Pt3d { x: Vec::with_capacity(n), y: Vec::with_capacity(n), z: Vec::with_capacity(n), d: Vec::with_capacity(n), arc: Vec::with_capacity(n) };
        for q in points {
            // C's double-to-float conversion: round to nearest, ties to even.
            p.x.push(q[0] as f32);
            p.y.push(q[1] as f32);
            p.z.push(q[2] as f32);
            p.d.push(q[3] as f32);
        }
        for i in 0..n {
            if i == 0 {
                p.arc.push(0.0);
                continue;
            }
            // `t1 = pt3d[i].x - p->x` subtracts two floats: a float result, then widened.
            let t1 = f64::from(p.x[i] - p.x[i - 1]);
            let t2 = f64::from(p.y[i] - p.y[i - 1]);
            let t3 = f64::from(p.z[i] - p.z[i - 1]);
            p.arc.push(p.arc[i - 1] + (t1 * t1 + t2 * t2 + t3 * t3).sqrt());
        }
        p
    }

    pub fn len(&self) -> usize {
        self.arc.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arc.is_empty()
    }

    /// NEURON's `section_length`: the last point's arc length, at least 1e-9.
    pub fn length(&self) -> f64 {
        self.arc.last().copied().unwrap_or(0.0).max(1e-9)
    }

    /// `diam3d(i)`: the absolute value of the stored diameter.
    pub fn diam3d(&self, i: usize) -> f64 {
        f64::from(self.d[i].abs())
    }

    /// NEURON's `nrn_area_ri` for a section with two or more 3-d points: `diam_from_list` for
    /// each of `nseg` segments in order, with axial resistivity `ra` (ohm cm). Calls `seg(j,
    /// geometry)` for segment j and returns the 1 end's NODERINV (1 / the last segment's
    /// right half resistance).
    pub fn area_ri(&self, nseg: u32, ra: f64, mut seg: impl FnMut(usize, SegGeometry)) -> f64 {
        let npt = self.arc.len();
        debug_assert!(npt >= 2, "area_ri needs two points");
        let absd = |i: usize| f64::from(self.d[i].abs());
        // The integration walks the points once over all segments (`static` j, x1, y1 in C).
        let mut j = 0usize;
        let mut x1 = self.arc[0];
        let mut y1 = absd(0);
        let ds = self.arc[npt - 1] / f64::from(nseg);
        let mut rparent = 0.0;
        for inode in 0..nseg {
            let mut si = f64::from(inode) * ds;
            let (mut diam, mut area, mut rleft, mut ri) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for ihalf in 0..2 {
                ri = 0.0;
                let sip = si + ds / 2.0;
                loop {
                    let jp = j + 1;
                    let xj = self.arc[j];
                    let xjp = self.arc[jp];
                    let (x2, y2, jnext);
                    if xjp > sip || jp == npt - 1 {
                        let frac = if (xjp - xj).abs() < 1e-10 { 1.0 } else { (sip - xj) / (xjp - xj) };
                        x2 = sip;
                        y2 = (1.0 - frac) * absd(j) + frac * absd(jp);
                        jnext = j;
                    } else {
                        x2 = xjp;
                        y2 = absd(jp);
                        jnext = jp;
                    }
                    let mut delta = x2 - x1;
                    diam += (y2 + y1) * delta;
                    if delta < 1e-15 {
                        delta = 1e-15;
                    }
                    let mut temp = y2 * y1 / delta;
                    if temp == 0.0 {
                        temp = 1e-15;
                    }
                    ri += 1.0 / temp;
                    // The taper's slant length.
                    let half = 0.5 * (y2 - y1);
                    let slant = (delta * delta + half * half).sqrt();
                    area += (y2 + y1) * slant;
                    x1 = x2;
                    y1 = y2;
                    if j == jnext {
                        break;
                    }
                    j = jnext;
                }
                if ihalf == 0 {
                    rleft = ri * ra / PI * (4.0 * 0.01);
                } else {
                    ri = ri * ra / PI * (4.0 * 0.01);
                }
                si = sip;
            }
            diam *= 0.5 / ds;
            seg(inode as usize, SegGeometry { area: area * 0.5 * PI, rinv: 1.0 / (rparent + rleft), diam });
            rparent = ri;
        }
        1.0 / rparent
    }

    /// The mean diameter of the segment holding x = 0.5 (what NEURON's `sec.diam` reads).
    pub fn mid_diam(&self, nseg: u32) -> f64 {
        let mid = (f64::from(nseg) * 0.5) as usize;
        let mut out = 0.0;
        self.area_ri(nseg, 1.0, |j, g| {
            if j == mid.min(nseg as usize - 1) {
                out = g.diam;
            }
        });
        out
    }

    /// stdlib.hoc's `lambda_f(freq)`: the section's length divided by its length in units of
    /// the AC length constant at `freq` Hz, from every 3-d point (hoc's arithmetic, in its
    /// order). Errors where hoc stops with one.
    pub fn lambda_f(&self, freq: f64, ra: f64, cm: f64) -> Result<f64, LambdaError> {
        if hoc_eq(cm, 0.0) {
            return Ok(1e10);
        }
        let mut x1 = self.arc[0];
        let mut d1 = self.diam3d(0);
        let mut lam = 0.0;
        for i in 1..self.len() {
            if hoc_eq(d1, 0.0) {
                return Err(LambdaError::ZeroDiameter(i - 1));
            }
            let (x2, d2) = (self.arc[i], self.diam3d(i));
            lam += (x2 - x1) / (d1 + d2).sqrt();
            x1 = x2;
            d1 = d2;
        }
        lam *= 2f64.sqrt() * 1e-5 * (4.0 * PI * freq * ra * cm).sqrt();
        // hoc's division checks for 0.
        if lam == 0.0 {
            return Err(LambdaError::ZeroLength);
        }
        Ok(self.length() / lam)
    }
}

/// Where stdlib.hoc's `lambda_f` stops with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LambdaError {
    /// The 3-d point with this index has diameter 0.
    ZeroDiameter(usize),
    /// The points are all at one place (a division by zero).
    ZeroLength,
}

impl std::fmt::Display for LambdaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LambdaError::ZeroDiameter(i) => write!(f, "3-d point {i} has diameter 0"),
            LambdaError::ZeroLength => write!(f, "its 3-d points are all at one place (length 0)"),
        }
    }
}

/// The d_lambda rule (the NEURON book, `geom_nseg`): the odd nseg that makes every segment
/// at most `d_lambda` of the AC length constant at `freq` Hz:
/// `int((L / (d_lambda * lambda_f(freq)) + 0.9) / 2) * 2 + 1`.
pub fn d_lambda_nseg(pt: &Pt3d, d_lambda: f64, freq: f64, ra: f64, cm: f64) -> Result<f64, LambdaError> {
    let lf = pt.lambda_f(freq, ra, cm)?;
    let q = d_lambda * lf;
    if q == 0.0 {
        return Err(LambdaError::ZeroLength);
    }
    Ok((((pt.length() / q + 0.9) / 2.0).trunc()) * 2.0 + 1.0)
}

/// hoc's `==`: equal within `hoc_epsilon` (1e-9).
pub fn hoc_eq(a: f64, b: f64) -> bool {
    a <= b + HOC_EPSILON && a >= b - HOC_EPSILON
}

/// hoc's `<`: below by more than `hoc_epsilon`.
pub fn hoc_lt(a: f64, b: f64) -> bool {
    a < b - HOC_EPSILON
}

/// hoc's `>`: above by more than `hoc_epsilon`.
pub fn hoc_gt(a: f64, b: f64) -> bool {
    a > b + HOC_EPSILON
}

/// hoc's tolerance in comparisons (`float_epsilon`, 1e-9 by default).
pub const HOC_EPSILON: f64 = 1e-9;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cylinder_of_points_has_the_cylinder_geometry() {
        // Two points, a uniform diameter: the area is pi d L and the resistance NEURON's.
        let p = Pt3d::new(&[[0.0, 0.0, 0.0, 2.0], [10.0, 0.0, 0.0, 2.0]]);
        assert_eq!(p.arc, vec![0.0, 10.0]);
        let mut areas = vec![];
        let last = p.area_ri(2, 100.0, |_, g| areas.push(g.area));
        for a in &areas {
            assert!((a - PI * 2.0 * 5.0).abs() < 1e-12, "{a}");
        }
        // The 1 end: half a segment (2.5 um) of 100 ohm cm, 2 um across: 1e-2 * 100 * 2.5 / pi.
        assert!((1.0 / last - 1e-2 * 100.0 * 2.5 / PI).abs() < 1e-12);
        assert_eq!(p.mid_diam(2), 2.0);
    }

    #[test]
    fn differences_are_taken_in_float() {
        // 0.1 and 0.3 as floats: their float difference is not the double difference.
        let p = Pt3d::new(&[[0.1, 0.0, 0.0, 1.0], [0.3, 0.0, 0.0, 1.0]]);
        assert_eq!(p.arc[1], f64::from(0.3f32 - 0.1f32));
    }
}
