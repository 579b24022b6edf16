//! SWC files to sections, as NEURON 9.0.2's Import3d makes them (`Import3d_SWC_read` in
//! share/lib/hoc/import3d/read_swc.hoc, then `Import3d_GUI.instantiate(nil)` in
//! import3d_gui.hoc), so that a model importing an SWC file has NEURON's sections: the same
//! names, connections and 3-d points, hence the same areas and resistances, bit for bit.
//!
//! NEURON's conventions, reproduced here:
//! - a line holds `id type x y z radius parent` (more numbers are ignored); `#` starts a
//!   comment line; the numbers are read as C floats (hoc's `sscanf("%f")`), the radius doubled;
//! - a section is an unbranched run of points of one type; the root section holds the first
//!   point and those after it up to the first branch point or type change;
//! - a soma of one point is a sphere, made a 3-point cylinder along x with L = diam; a soma of
//!   three points (neuromorpho.org's convention: the middle point first, the others at
//!   +-radius with the same diameter, no children) is that same sphere;
//! - a child section starts with a copy of its parent point (its diameter is the child's own
//!   first diameter when a dendrite leaves the soma), except when it joins a one-point soma
//!   or the inside of a soma by a "wire": then its first point is its own;
//! - children of a one-point soma, and those leaving the inside of a soma, connect at
//!   soma(0.5); children of the root's first point at 0; all others at their parent's 1 end;
//! - sections of one point after the wire, or of two equal points, are removed (their
//!   children move to the removed section's parent);
//! - names are `soma[i]`, `axon[i]`, `dend[i]`, `apic[i]` (types 1 to 4), `dend_N[i]` for
//!   another type N >= 0 and `minus_N[i]` for a type -N, numbered per type in section order;
//! - every 3-d point is passed through hoc's `%.8g` formatting (Import3d writes hoc
//!   statements) and stored as a float.
//!
//! The sections are returned in the order Import3d connects them (which orders the branches
//! at a branch point); NEURON creates them by type, which changes nothing in a simulation.

use super::{hoc_eq, hoc_gt, hoc_lt, MAX_POINTS};

/// A section made from an SWC file.
#[derive(Debug, Clone, PartialEq)]
pub struct SwcSection {
    /// NEURON's name: `soma[0]`, `dend[3]`, ...
    pub name: String,
    /// The SWC type of its points.
    pub swc_type: i64,
    /// Its type's name (`soma`, `dend`, `dend_5`): the hoc array it is in.
    pub type_name: String,
    /// The parent section (an index into the list) and the position on it.
    pub parent: Option<(usize, f64)>,
    /// Its 3-d points `[x, y, z, diam]`, as the doubles `pt3dadd` receives.
    pub points: Vec<[f64; 4]>,
}

/// A file that Import3d would not turn into one cell, or that NEURON reads differently from
/// what it says: the line and the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct SwcError {
    pub line: usize,
    pub msg: String,
}

impl std::fmt::Display for SwcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "line {}: {}", self.line, self.msg)
        }
    }
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, SwcError> {
    Err(SwcError { line, msg: msg.into() })
}

/// The points of the file: a column per field, as Import3d_SWC_read's vectors.
struct Points {
    id: Vec<f64>,
    ty: Vec<f64>,
    x: Vec<f64>,
    y: Vec<f64>,
    z: Vec<f64>,
    d: Vec<f64>,
    pid: Vec<f64>,
    line: Vec<usize>,
}

/// hoc's `sscanf(line, "%f %f %f %f %f %f %f")` for the lines of an SWC file: comment
/// lines (`#` after blanks) and blank lines are skipped; a line that is neither and does not
/// start with seven numbers is an error (NEURON prints it and skips the line; spikebus refuses
/// the file).
fn read(text: &str) -> Result<Points, SwcError> {
    let mut p = Points { id: vec![], ty: vec![], x: vec![], y: vec![], z: vec![], d: vec![], pid: vec![], line: vec![] };
    for (k, raw) in text.lines().enumerate() {
        let line = k + 1;
        let t = raw.trim_start_matches([' ', '\t']);
        if t.starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        let mut a = [0f64; 7];
        let mut tokens = raw.split_whitespace();
        for (i, slot) in a.iter_mut().enumerate() {
            let Some(tok) = tokens.next() else {
                return err(line, format!("expected 7 numbers (id type x y z radius parent), found {i}"));
            };
            // C's "%f": a float, correctly rounded (as strtof).
            let v: f32 = tok.parse().map_err(|_| SwcError { line, msg: format!("`{tok}` is not a number") })?;
            if !v.is_finite() {
                return err(line, format!("`{tok}` is not a finite number"));
            }
            *slot = f64::from(v);
        }
        for (i, what) in [(0, "id"), (1, "type"), (6, "parent")] {
            if a[i].fract() != 0.0 {
                return err(line, format!("the {what} must be an integer, found {}", a[i]));
            }
        }
        if a[0] < 0.0 {
            return err(line, format!("an id must be >= 0, found {}", a[0]));
        }
        if a[5] < 0.0 {
            return err(line, format!("a radius must be >= 0, found {}", a[5]));
        }
        p.id.push(a[0]);
        p.ty.push(a[1]);
        p.x.push(a[2]);
        p.y.push(a[3]);
        p.z.push(a[4]);
        p.d.push(a[5] * 2.0); // radius to diameter
        p.pid.push(a[6]);
        p.line.push(line);
    }
    Ok(p)
}

/// An Import3d_Section: its first point (`id`), its points (`raw`: the parent point first for
/// a child section), where it starts (`first`: 1 when joined by a wire), its parent.
#[derive(Debug, Clone)]
struct ImpSection {
    id: usize,
    raw: Vec<[f64; 3]>,
    d: Vec<f64>,
    first: usize,
    parent: Option<usize>,
    parentx: f64,
    ty: f64,
}

/// The sections NEURON's Import3d makes from an SWC file, in the order it connects them.
pub fn import(text: &str) -> Result<Vec<SwcSection>, SwcError> {
    let mut p = read(text)?;
    let n = p.id.len();
    if n < 2 {
        return err(0, format!("{n} point(s): Import3d makes no section from fewer than 2 points"));
    }
    if n > MAX_POINTS * 64 {
        return err(0, format!("{n} points: more than spikebus reads ({})", MAX_POINTS * 64));
    }

    // check_pid: ids increase, each parent comes before its child, one tree.
    for i in 0..n {
        if i > 0 && !hoc_gt(p.id[i], p.id[i - 1]) {
            return err(p.line[i], format!(
                "id {} after id {}: ids must increase down the file (NEURON's Import3d cannot sort them)",
                p.id[i], p.id[i - 1]
            ));
        }
        if !hoc_lt(p.pid[i], p.id[i]) {
            return err(p.line[i], format!("parent {} is not less than id {}", p.pid[i], p.id[i]));
        }
    }
    let max_id = p.id[n - 1] as usize;
    if max_id > 64 * MAX_POINTS * 64 {
        return err(p.line[n - 1], format!("id {max_id} is larger than spikebus allows"));
    }
    let mut id2index = vec![usize::MAX; max_id + 1];
    for i in 0..n {
        id2index[p.id[i] as usize] = i;
    }
    let roots: Vec<usize> = (0..n).filter(|&i| hoc_lt(p.pid[i], 0.0)).collect();
    if roots.len() != 1 || roots[0] != 0 {
        let lines: Vec<String> = roots.iter().map(|&r| p.line[r].to_string()).collect();
        return err(0, format!(
            "{} roots (parent -1) at lines {}: a file must hold one tree, rooted at its first point",
            roots.len(),
            lines.join(", ")
        ));
    }
    for i in 1..n {
        let pid = p.pid[i] as usize;
        if pid >= id2index.len() || id2index[pid] == usize::MAX {
            return err(p.line[i], format!("parent {pid} is not an id of the file"));
        }
    }
    // pix2ix: a point's parent point (None for the root); reads pid, which the 3-point soma
    // rule changes.
    let pix = |p: &Points, i: usize| -> Option<usize> {
        if hoc_lt(p.pid[i], 0.0) {
            None
        } else {
            Some(id2index[p.pid[i] as usize])
        }
    };

    // mark_branch: children per point (a non-contiguous child adds 1.01, a type change 0.01
    // more), and the points whose children connect to the proximal end of their section.
    let mut nchild = vec![0f64; n];
    let mut connect2prox = vec![false; n];
    for i in 0..n {
        let Some(pp) = pix(&p, i) else { continue };
        nchild[pp] += 1.0;
        if pp + 1 != i {
            nchild[pp] += 0.01;
            if pp > 1 {
                let gp = pix(&p, pp).expect("only the first point is a root");
                if !hoc_eq(p.ty[pp], 1.0) && hoc_eq(p.ty[gp], 1.0) {
                    connect2prox[i] = true;
                    nchild[pp] = 1.0;
                }
            } else if pp == 0 && !hoc_eq(p.ty[pp], 1.0) {
                connect2prox[i] = true;
                nchild[pp] = 1.0;
            }
        }
        if !hoc_eq(p.ty[pp], p.ty[i]) {
            nchild[pp] += 0.01;
        }
    }

    // sectionify
    let mut nchild_soma = vec![0f64; n];
    let mut nsoma_pts = usize::from(hoc_eq(p.ty[0], 1.0));
    for i in 1..n {
        if hoc_eq(p.ty[i], 1.0) {
            nsoma_pts += 1;
            if let Some(pp) = pix(&p, i) {
                if hoc_eq(p.ty[pp], 1.0) {
                    nchild_soma[pp] += 1.0;
                }
            }
        }
    }
    let soma3geom = nsoma_pts == 3 && neuromorph_3point_soma(&mut p, &nchild, &pix);
    for i in 0..n - 1 {
        if hoc_eq(p.ty[i], 1.0) && hoc_eq(p.ty[i + 1], 1.0) && pix(&p, i + 1) == Some(i) {
            // More than one soma child makes a soma branch point.
            if !(i != 0 && hoc_gt(nchild_soma[i], 1.0)) {
                nchild[i] = 1.0;
            }
        }
    }
    // The last point of each section (Vector.indvwhere(nchild, "!=", 1), hoc's tolerance).
    let sec2point: Vec<usize> = (0..n).filter(|&i| !hoc_eq(nchild[i], 1.0)).collect();
    let mut point2sec = vec![0usize; n];
    let mut si = 0;
    for (i, ps) in point2sec.iter_mut().enumerate().skip(1) {
        if i > sec2point[si] {
            si += 1;
        }
        *ps = si;
    }

    // mksections
    let mut sections: Vec<ImpSection> = vec![];
    let (mut isec, mut first) = (0usize, 0usize);
    for i in 0..n {
        if point2sec[i] > isec {
            sections.push(mksection(&p, &pix, &sections, &point2sec, &nchild_soma, &connect2prox, soma3geom, isec, first, i));
            isec += 1;
            first = i;
        }
    }
    sections.push(mksection(&p, &pix, &sections, &point2sec, &nchild_soma, &connect2prox, soma3geom, isec, first, n));

    chk_valid(&mut sections);
    Ok(instantiate(&sections))
}

/// neuromorpho.org's 3-point soma: the root and two children at +-radius with its diameter,
/// no other children, length/diameter within 1%: a sphere (the two points are dropped).
fn neuromorph_3point_soma(p: &mut Points, nchild: &[f64], pix: &dyn Fn(&Points, usize) -> Option<usize>) -> bool {
    if !(pix(p, 1) == Some(0) && pix(p, 2) == Some(0)) {
        return false;
    }
    if !(hoc_eq(nchild[1], 0.0) && hoc_eq(nchild[2], 0.0)) {
        return false;
    }
    if !(hoc_eq(p.d[1], p.d[0]) && hoc_eq(p.d[2], p.d[0])) {
        return false;
    }
    let mut len = 0.0;
    for i in 1..=2 {
        let (dx, dy, dz) = (p.x[i] - p.x[0], p.y[i] - p.y[0], p.z[i] - p.z[0]);
        len += (dx.powi(2) + dy.powi(2) + dz.powi(2)).sqrt();
    }
    if hoc_lt((len / p.d[0] - 1.0).abs(), 0.01) {
        // pid.x[2] = id.x[1]: keeps the two points from making two soma sections.
        p.pid[2] = p.id[1];
        return true;
    }
    false
}

/// Import3d_SWC_read's `mksection(isec, first, i)`: section `isec` of points first..i.
#[allow(clippy::too_many_arguments)]
fn mksection(
    p: &Points,
    pix: &dyn Fn(&Points, usize) -> Option<usize>,
    sections: &[ImpSection],
    point2sec: &[usize],
    nchild_soma: &[f64],
    connect2prox: &[bool],
    soma3geom: bool,
    isec: usize,
    first: usize,
    mut i: usize,
) -> ImpSection {
    let pt = |k: usize| [p.x[k], p.y[k], p.z[k]];
    let mut sec;
    if isec == 0 {
        if soma3geom {
            i = 1;
        }
        sec = ImpSection { id: first, raw: vec![], d: vec![], first: 0, parent: None, parentx: 1.0, ty: 0.0 };
        for k in first..i {
            sec.raw.push(pt(k));
            sec.d.push(p.d[k]);
        }
    } else {
        let ppt = pix(p, first).expect("a child section's first point has a parent");
        let psec_i = point2sec[ppt];
        let psec = &sections[psec_i];
        sec = ImpSection { id: first, raw: vec![], d: vec![], first: 0, parent: Some(psec_i), parentx: 1.0, ty: 0.0 };
        let den_con_soma = hoc_eq(psec.ty, 1.0) && !hoc_eq(p.ty[first], 1.0);
        let con_soma = hoc_eq(psec.ty, 1.0);
        let mut handled = false;
        if psec_i == 0 {
            handled = true;
            if den_con_soma && psec.d.len() == 1 {
                // A one-point soma: every branch joins its middle, by a wire if it has points.
                sec.parentx = 0.5;
                if i - first > 1 {
                    sec.first = 1;
                }
            } else if ppt == psec.id {
                // The root's first point.
                sec.parentx = 0.0;
                if !hoc_eq(p.ty[first], 1.0) && hoc_gt(nchild_soma[ppt], 1.0) {
                    sec.first = 1;
                }
            } else {
                handled = false;
            }
        }
        if !handled && con_soma {
            let offset: isize = if psec.id == 0 { -1 } else { -2 };
            if (ppt as isize) < psec.id as isize + psec.d.len() as isize + offset {
                // Not the soma's last point: the inside of the soma.
                sec.parentx = 0.5;
                if den_con_soma && i - first > 1 {
                    sec.first = 1;
                }
            } else if i - first > 1 && hoc_gt(nchild_soma[ppt], 1.0) && !hoc_eq(p.ty[first], 1.0) {
                sec.first = 1;
            }
        }
        sec.raw.push(pt(ppt));
        sec.d.push(p.d[ppt]);
        for k in first..i {
            sec.raw.push(pt(k));
            sec.d.push(p.d[k]);
        }
    }
    sec.ty = p.ty[first];
    if let Some(ps) = sec.parent {
        if hoc_eq(sections[ps].ty, 1.0) && !hoc_eq(sec.ty, 1.0) {
            sec.d[0] = sec.d[1];
        }
    }
    if connect2prox[first] {
        sec.parentx = 0.0;
    }
    sec
}

/// Import3d_GUI's `chk_valid`: child sections of one point after the wire, or of two equal
/// points (within hoc's tolerance), are removed; their children move to their parent.
fn chk_valid(sections: &mut Vec<ImpSection>) {
    let mut i = sections.len();
    while i > 0 {
        i -= 1;
        let sec = &sections[i];
        if sec.parent.is_none() {
            continue;
        }
        let ncol = sec.raw.len();
        let remove = if ncol - sec.first <= 1 {
            true
        } else if ncol - sec.first <= 2 {
            let (a, b) = (sec.raw[sec.first], sec.raw[sec.first + 1]);
            (0..3).all(|k| a[k] - b[k] <= 1e-9 && b[k] - a[k] <= 1e-9)
        } else {
            false
        };
        if remove {
            let gone = sections.remove(i);
            for s in sections.iter_mut().skip(i) {
                if s.parent == Some(i) {
                    s.parent = gone.parent;
                    s.parentx = gone.parentx;
                }
            }
            // Later sections' parent indices past the removed one shift down.
            for s in sections.iter_mut() {
                if let Some(pi) = s.parent.as_mut() {
                    if *pi > i {
                        *pi -= 1;
                    }
                }
            }
        }
    }
}

/// Import3d_GUI's `type2name`.
pub fn type_name(ty: i64) -> String {
    match ty {
        1 => "soma".into(),
        2 => "axon".into(),
        3 => "dend".into(),
        4 => "apic".into(),
        t if t < 0 => format!("minus_{}", -t),
        t => format!("dend_{t}"),
    }
}

/// Import3d_GUI's `instantiate(nil)`: names (per type, in section order), connections, and
/// the 3-d points from `first` on, a single point becoming a 3-point cylinder, each value
/// written with hoc's `%.8g` and read back.
fn instantiate(sections: &[ImpSection]) -> Vec<SwcSection> {
    let mut count: std::collections::BTreeMap<i64, usize> = Default::default();
    let mut out = Vec::with_capacity(sections.len());
    for sec in sections {
        let ty = sec.ty as i64;
        let k = count.entry(ty).or_insert(0);
        let tname = type_name(ty);
        let name = format!("{tname}[{k}]");
        *k += 1;
        let j = sec.first;
        let mut pts: Vec<[f64; 4]> = (j..sec.raw.len()).map(|c| [sec.raw[c][0], sec.raw[c][1], sec.raw[c][2], sec.d[c]]).collect();
        if pts.len() == 1 {
            // sphere_rep: a cylinder along x with L = diam.
            let [x, y, z, d] = pts[0];
            pts = vec![[x - d / 2.0, y, z, d], [x, y, z, d], [x + d / 2.0, y, z, d]];
        }
        for q in pts.iter_mut() {
            for v in q.iter_mut() {
                *v = hoc_g8(*v);
            }
        }
        out.push(SwcSection { name, swc_type: ty, type_name: tname, parent: sec.parent.map(|pi| (pi, sec.parentx)), points: pts });
    }
    out
}

/// A number written by hoc's `sprint("%.8g")` and read back: rounded to 8 significant
/// digits (correctly, ties to even, as glibc's printf).
pub fn hoc_g8(v: f64) -> f64 {
    format!("{v:.7e}").parse().expect("a formatted number parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(secs: &[SwcSection]) -> Vec<&str> {
        secs.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn one_point_soma_becomes_a_cylinder_and_branches_join_its_middle() {
        let swc = "# a cell\n1 1 0 0 0 10 -1\n2 3 10 0 0 2 1\n3 3 20 1 0 1.5 2\n4 3 30 5 0 1.2 3\n\
                   5 3 35 10 0 1 4\n6 3 35 -3 0 1 4\n7 2 -10 0 0 1.5 1\n8 2 -30 0 1 1 7\n";
        let s = import(swc).unwrap();
        assert_eq!(names(&s), ["soma[0]", "dend[0]", "dend[1]", "dend[2]", "axon[0]"]);
        assert_eq!(s[0].points, vec![[-10.0, 0.0, 0.0, 20.0], [0.0, 0.0, 0.0, 20.0], [10.0, 0.0, 0.0, 20.0]]);
        // by a wire: the first point is the dendrite's own
        assert_eq!(s[1].parent, Some((0, 0.5)));
        assert_eq!(s[1].points[0], [10.0, 0.0, 0.0, 4.0]);
        assert_eq!(s[2].parent, Some((1, 1.0)));
        assert_eq!(s[2].points[0], [30.0, 5.0, 0.0, hoc_g8(f64::from(1.2f32) * 2.0)]);
        assert_eq!(s[4].parent, Some((0, 0.5)));
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(import("1 1 0 0 0 1 -1\n").is_err());
        assert!(import("1 1 0 0 0 1 -1\n2 3 1 0 0 1 5\n").is_err());
        assert!(import("1 1 0 0 0 1 -1\n2 3 1 0 0 1 -1\n").is_err());
        assert!(import("1 1 0 0 0 1 -1\n2 3 1 0 0 1\n").unwrap_err().line == 2);
        assert!(import("2 1 0 0 0 1 -1\n1 3 1 0 0 1 2\n").is_err());
    }

    #[test]
    fn g8_rounds_ties_to_even() {
        assert_eq!(hoc_g8(1234567.25), 1234567.2);
        assert_eq!(hoc_g8(0.1), 0.1);
        assert_eq!(hoc_g8(f64::from(0.1f32)), 0.1);
    }
}
