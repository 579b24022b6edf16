//! A `Model` back to model-file text: every object written out with every value (the form
//! `spikebus expand` prints: populations and connection rules expanded, names as the copies
//! have them). Parsing the text gives the same model, value for value (numbers are written in
//! the shortest form that reads back to the same double).

use std::fmt::Write;

use crate::mech::{vecstim, Field, MechKind};
use crate::model::*;
use crate::parse::is_identifier;

/// A table or key name: bare if it is an identifier, else quoted.
fn key(name: &str) -> String {
    if is_identifier(name) {
        name.to_string()
    } else {
        format!("\"{name}\"")
    }
}

/// A double as TOML: the shortest text that reads back to it.
/// (Every value of a model is finite: each range refuses inf and NaN.)
fn num(x: f64) -> String {
    format!("{x:?}")
}

/// Numbers as a TOML list.
fn list(xs: &[f64]) -> String {
    let items: Vec<String> = xs.iter().map(|x| num(*x)).collect();
    format!("[{}]", items.join(", "))
}

/// A point process's or artificial cell's parameters; an array parameter (VClamp's `dur[0]`,
/// `dur[1]`, `dur[2]`) as one list, `dur = [...]`, the form a model file gives it.
fn write_params(out: &mut String, fields: &[Field], values: &[f64]) {
    let mut i = 0;
    while i < fields.len() {
        let name = fields[i].name;
        match name.strip_suffix("[0]") {
            Some(array) => {
                let n = fields[i..].iter().take_while(|f| f.name.starts_with(array) && f.name[array.len()..].starts_with('[')).count();
                let _ = writeln!(out, "{array} = {}", list(&values[i..i + n]));
                i += n;
            }
            None => {
                let _ = writeln!(out, "{name} = {}", num(values[i]));
                i += 1;
            }
        }
    }
}

fn string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The model as a model file.
pub fn write_model(m: &Model) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {} written out by spikebus: every object and value.", m.origin);
    out += "\n[run]\n";
    for (i, f) in GLOBAL_FIELDS.iter().enumerate() {
        let v = m.run.get(i);
        // Flags and stream keys as the integers they are.
        let v = if matches!(f.allowed, Allowed::Flag | Allowed::Uint32) { format!("{}", v as u64) } else { num(v) };
        let _ = writeln!(out, "{} = {v}", f.name);
    }
    for s in &m.sections {
        let _ = writeln!(out, "\n[section.{}]", key(&s.name));
        let range = |f: usize, x: f64| s.segs.values(f).map_or_else(|| num(x), list);
        let (diam, cm) = (range(SEC_DIAM, s.diam), range(SEC_CM, s.cm));
        match s.pt3d.as_deref() {
            // The points give L and diam (an imported morphology is written as its points).
            Some(pt) => {
                let points: Vec<String> = (0..pt.len())
                    .map(|i| format!("[{}, {}, {}, {}]", num(pt.x[i].into()), num(pt.y[i].into()), num(pt.z[i].into()), num(pt.d[i].into())))
                    .collect();
                let _ = writeln!(out, "pt3d = [{}]", points.join(", "));
            }
            None => {
                let _ = writeln!(out, "L = {}\ndiam = {diam}", num(s.l));
            }
        }
        let _ = writeln!(out, "nseg = {}\ncm = {cm}\nRa = {}\nthreshold = {}", s.nseg, num(s.ra), num(s.threshold));
        if let Some(p) = &s.parent {
            let _ = writeln!(out, "parent = {}", string(&format!("{}({})", p.section, num(p.x))));
        }
        let inserted: Vec<String> =
            s.mechs.iter().map(|i| i.mech.def()).filter(|d| d.kind == MechKind::Density).map(|d| string(d.name)).collect();
        if !inserted.is_empty() {
            let _ = writeln!(out, "insert = [{}]", inserted.join(", "));
        }
        for ins in &s.mechs {
            for (i, (f, v)) in ins.mech.def().params.iter().zip(&ins.params).enumerate() {
                // A range variable that varies along the section: one value per segment.
                let _ = writeln!(out, "{} = {}", f.name, ins.segs.values(i).map_or_else(|| num(*v), list));
            }
        }
    }
    for p in &m.points {
        let def = p.mech.def();
        let _ = writeln!(out, "\n[point.{}]\ntype = {}", key(&p.name), string(def.name));
        let _ = writeln!(out, "at = {}", string(&format!("{}({})", p.at.section, num(p.at.x))));
        write_params(&mut out, def.params, &p.params);
    }
    for c in &m.cells {
        let def = c.mech.def();
        let _ = writeln!(out, "\n[cell.{}]\ntype = {}", key(&c.name), string(def.name));
        write_params(&mut out, def.params, &c.params);
        if std::ptr::eq(def, &vecstim::DEF) {
            let times: Vec<String> = c.times.iter().map(|t| num(*t)).collect();
            let _ = writeln!(out, "times = [{}]", times.join(", "));
        }
    }
    for n in &m.netcons {
        let _ = writeln!(out, "\n[netcon.{}]", key(&n.name));
        let _ = writeln!(out, "source = {}\ntarget = {}\ndelay = {}\nweight = {}", string(&n.source), string(&n.target), num(n.delay), num(n.weight));
    }
    for p in &m.plays {
        let _ = writeln!(out, "\n[play.{}]\ntarget = {}\nvalues = {}", key(&p.name), string(&p.target), list(&p.values));
        if let Some(times) = &p.times {
            let _ = writeln!(out, "times = {}", list(times));
        }
        if let Some(dt) = p.dt {
            let _ = writeln!(out, "dt = {}", num(dt));
        }
        let _ = writeln!(out, "continuous = {}", p.continuous);
    }
    out += "\n[record]\n";
    let signals: Vec<String> = m.record.iter().map(|s| string(s)).collect();
    let _ = writeln!(out, "signals = [{}]", signals.join(", "));
    if let Some(dt) = m.record_dt {
        let _ = writeln!(out, "dt = {}", num(dt));
    }
    out
}
