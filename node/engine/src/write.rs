//! A `Model` back to model-file text: every object written out with every value (the form
//! `spikebus expand` prints: populations and connection rules expanded, names as the copies
//! have them). Parsing the text gives the same model, value for value (numbers are written in
//! the shortest form that reads back to the same double).

use std::fmt::Write;

use crate::mech::{vecstim, MechKind};
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
        let _ = writeln!(out, "L = {}\ndiam = {}\nnseg = {}\ncm = {}\nRa = {}\nthreshold = {}", num(s.l), num(s.diam), s.nseg, num(s.cm), num(s.ra), num(s.threshold));
        if let Some(p) = &s.parent {
            let _ = writeln!(out, "parent = {}", string(&format!("{}({})", p.section, num(p.x))));
        }
        let inserted: Vec<String> =
            s.mechs.iter().map(|i| i.mech.def()).filter(|d| d.kind == MechKind::Density).map(|d| string(d.name)).collect();
        if !inserted.is_empty() {
            let _ = writeln!(out, "insert = [{}]", inserted.join(", "));
        }
        for ins in &s.mechs {
            for (f, v) in ins.mech.def().params.iter().zip(&ins.params) {
                let _ = writeln!(out, "{} = {}", f.name, num(*v));
            }
        }
    }
    for p in &m.points {
        let def = p.mech.def();
        let _ = writeln!(out, "\n[point.{}]\ntype = {}", key(&p.name), string(def.name));
        let _ = writeln!(out, "at = {}", string(&format!("{}({})", p.at.section, num(p.at.x))));
        for (f, v) in def.params.iter().zip(&p.params) {
            let _ = writeln!(out, "{} = {}", f.name, num(*v));
        }
    }
    for c in &m.cells {
        let def = c.mech.def();
        let _ = writeln!(out, "\n[cell.{}]\ntype = {}", key(&c.name), string(def.name));
        for (f, v) in def.params.iter().zip(&c.params) {
            let _ = writeln!(out, "{} = {}", f.name, num(*v));
        }
        if std::ptr::eq(def, &vecstim::DEF) {
            let times: Vec<String> = c.times.iter().map(|t| num(*t)).collect();
            let _ = writeln!(out, "times = [{}]", times.join(", "));
        }
    }
    for n in &m.netcons {
        let _ = writeln!(out, "\n[netcon.{}]", key(&n.name));
        let _ = writeln!(out, "source = {}\ntarget = {}\ndelay = {}\nweight = {}", string(&n.source), string(&n.target), num(n.delay), num(n.weight));
    }
    out += "\n[record]\n";
    let signals: Vec<String> = m.record.iter().map(|s| string(s)).collect();
    let _ = writeln!(out, "signals = [{}]", signals.join(", "));
    if let Some(dt) = m.record_dt {
        let _ = writeln!(out, "dt = {}", num(dt));
    }
    out
}
