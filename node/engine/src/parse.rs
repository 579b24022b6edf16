//! Model files: TOML text to a checked `Model`. Every error names the origin (file), the line,
//! the key and what is allowed; nothing is defaulted silently (unknown keys are errors).

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::model::*;
use crate::signal;

/// Parses and checks a model. `origin` names the text in messages (usually its path).
pub fn parse_model(text: &str, origin: &str) -> Result<Model> {
    let root = DeTable::parse(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        Error::Syntax { origin: origin.to_string(), line, col, msg: e.message().trim().to_string() }
    })?;
    let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let mut p = Parser { origin, line_starts, lines: HashMap::new(), thresholds: vec![] };
    let mut model = p.model(root.get_ref())?;
    p.check_references(&mut model)?;
    Ok(model)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

type Val<'a> = Spanned<DeValue<'a>>;

struct Parser<'t> {
    origin: &'t str,
    /// Byte offset where each line starts, for turning spans into line numbers.
    line_starts: Vec<usize>,
    /// Line of each key path, kept for the cross-reference checks after parsing.
    lines: HashMap<String, usize>,
    /// `threshold` keys of NetCons: (netcon name, value, line).
    thresholds: Vec<(String, f64, usize)>,
}

impl<'t> Parser<'t> {
    fn line(&self, span: Range<usize>) -> usize {
        self.line_starts.partition_point(|&start| start <= span.start)
    }

    fn err(&self, span: Range<usize>, key: &str, msg: impl Into<String>) -> Error {
        Error::Model { origin: self.origin.to_string(), line: self.line(span), key: key.to_string(), msg: msg.into() }
    }

    fn err_at_line(&self, line: usize, key: &str, msg: impl Into<String>) -> Error {
        Error::Model { origin: self.origin.to_string(), line, key: key.to_string(), msg: msg.into() }
    }

    fn table<'a>(&self, v: &'a Val<'t>, key: &str) -> Result<&'a DeTable<'t>> {
        v.get_ref().as_table().ok_or_else(|| {
            self.err(v.span(), key, format!("expected a table, found {}", v.get_ref().type_str()))
        })
    }

    fn number(&self, v: &Val<'_>, key: &str, allowed: Allowed) -> Result<f64> {
        let x = match v.get_ref() {
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
                i64::from_str_radix(&digits, i.radix()).map(|n| n as f64).map_err(|_| {
                    self.err(v.span(), key, format!("integer {} is out of range", i.as_str()))
                })?
            }
            DeValue::Float(f) => {
                let digits: String = f.as_str().chars().filter(|c| *c != '_').collect();
                digits.parse::<f64>().map_err(|_| self.err(v.span(), key, format!("bad number {}", f.as_str())))?
            }
            other => {
                return Err(self.err(
                    v.span(),
                    key,
                    format!("expected {}, found {}", allowed.describe(), other.type_str()),
                ))
            }
        };
        allowed
            .check(x)
            .map_err(|a| self.err(v.span(), key, format!("expected {a}, found {x}")))?;
        Ok(x)
    }

    fn string<'a>(&self, v: &'a Val<'_>, key: &str, what: &str) -> Result<&'a str> {
        v.get_ref().as_str().ok_or_else(|| {
            self.err(v.span(), key, format!("expected {what} (a string), found {}", v.get_ref().type_str()))
        })
    }

    fn unknown_key(&self, k: &Spanned<impl AsRef<str>>, path: &str, allowed: &[&str]) -> Error {
        self.err(k.span(), path, format!("unknown key; allowed here: {}", allowed.join(", ")))
    }

    fn model(&mut self, root: &DeTable<'t>) -> Result<Model> {
        let mut m = Model {
            origin: self.origin.to_string(),
            run: RunSettings::default(),
            sections: vec![],
            points: vec![],
            cells: vec![],
            netcons: vec![],
            record: vec![],
            record_dt: None,
            index: NameIndex::default(),
        };
        const TOP: &[&str] = &["run", "section", "point", "cell", "netcon", "record"];
        for (k, v) in root {
            let key: &str = k.get_ref();
            match key {
                "run" => self.run(v, &mut m.run)?,
                "section" => {
                    for (name, sv) in self.named_tables(v, "section")? {
                        let s = self.section(&name, sv)?;
                        m.sections.push(s);
                    }
                }
                "point" => {
                    for (name, pv) in self.named_tables(v, "point")? {
                        let p = self.point(&name, pv)?;
                        m.points.push(p);
                    }
                }
                "cell" => {
                    for (name, cv) in self.named_tables(v, "cell")? {
                        let netstims = m.cells.iter().filter(|c| matches!(c.kind, CellKind::NetStim { .. })).count();
                        let c = self.cell(&name, cv, netstims)?;
                        m.cells.push(c);
                    }
                }
                "netcon" => {
                    for (name, nv) in self.named_tables(v, "netcon")? {
                        let n = self.netcon(&name, nv)?;
                        m.netcons.push(n);
                    }
                }
                "record" => {
                    let t = self.table(v, "record")?;
                    for (rk, rv) in t {
                        if rk.get_ref() == "dt" {
                            // Vector.record's bounds for Dt (nrn_vecsim_add: chkarg 1e-9 to 1e10).
                            let dt = self.number(rv, "record.dt", Allowed::Positive)?;
                            if !(1e-9..=1e10).contains(&dt) {
                                return Err(self.err(rv.span(), "record.dt", format!("expected 1e-9 to 1e10 ms, found {dt}")));
                            }
                            m.record_dt = Some(dt);
                            continue;
                        }
                        if rk.get_ref() != "signals" {
                            return Err(self.unknown_key(rk, "record", &["signals", "dt"]));
                        }
                        let arr = rv.get_ref().as_array().ok_or_else(|| {
                            self.err(rv.span(), "record.signals", "expected an array of signal names")
                        })?;
                        for item in arr.iter() {
                            let name = self.string(item, "record.signals", "a signal name")?;
                            self.lines.insert(format!("record.signals.{name}"), self.line(item.span()));
                            m.record.push(name.to_string());
                        }
                    }
                }
                _ => return Err(self.unknown_key(k, key, TOP)),
            }
        }
        Ok(m)
    }

    fn run(&self, v: &Val<'t>, run: &mut RunSettings) -> Result<()> {
        for (k, val) in self.table(v, "run")? {
            let key: &str = k.get_ref();
            let path = format!("run.{key}");
            let Some(&(_, _, allowed, _)) = GLOBAL_FIELDS.iter().find(|e| e.0 == key) else {
                let names: Vec<&str> = GLOBAL_FIELDS.iter().map(|e| e.0).collect();
                return Err(self.unknown_key(k, &path, &names));
            };
            let x = self.number(val, &path, allowed)?;
            match key {
                "dt" => run.dt = x,
                "tstop" => run.tstop = x,
                "v_init" => run.v_init = x,
                "celsius" => run.celsius = x,
                "usetable_hh" => run.usetable_hh = x != 0.0,
                "Random123_globalindex" => run.random123_globalindex = x as u32,
                _ => unreachable!("run key {key} is in GLOBAL_FIELDS"),
            }
        }
        Ok(())
    }

    /// `[section.NAME]` and friends: a table of named tables; names must be identifiers.
    fn named_tables<'a>(&mut self, v: &'a Val<'t>, kind: &str) -> Result<Vec<(String, &'a Val<'t>)>> {
        let t = self.table(v, kind)?;
        let mut out = vec![];
        for (k, sv) in t {
            let name: &str = k.get_ref();
            let path = format!("{kind}.{name}");
            if !is_identifier(name) {
                return Err(self.err(
                    k.span(),
                    &path,
                    "a name must start with a letter and hold only letters, digits and _",
                ));
            }
            if sv.get_ref().as_table().is_none() {
                return Err(self.err(sv.span(), &path, "expected a table ([".to_string() + &path + "])"));
            }
            self.lines.insert(path, self.line(k.span()));
            out.push((name.to_string(), sv));
        }
        Ok(out)
    }

    fn section(&mut self, name: &str, v: &Val<'t>) -> Result<SectionSpec> {
        let t = self.table(v, name)?;
        let mut s = SectionSpec::new(name);
        // `insert` first: mechanism parameters are only valid for inserted mechanisms.
        if let Some(iv) = t.get("insert") {
            let path = format!("section.{name}.insert");
            let arr = iv.get_ref().as_array().ok_or_else(|| {
                self.err(iv.span(), &path, "expected an array of mechanism names, e.g. [\"hh\", \"pas\"]")
            })?;
            for m in arr.iter() {
                match self.string(m, &path, "a mechanism name")? {
                    "hh" => s.hh = Some(HhParams::default()),
                    "pas" => s.pas = Some(PasParams::default()),
                    other => {
                        return Err(self.err(m.span(), &path, format!("unknown mechanism `{other}`; allowed: hh, pas")))
                    }
                }
            }
        }
        for (k, val) in t {
            let key: &str = k.get_ref();
            let path = format!("section.{name}.{key}");
            match key {
                "insert" => {}
                "parent" => {
                    let text = self.string(val, &path, "a location such as \"soma(1)\"")?;
                    let loc = parse_loc(text).ok_or_else(|| {
                        self.err(val.span(), &path, format!("expected SECTION(x) with 0 <= x <= 1, found \"{text}\""))
                    })?;
                    self.lines.insert(path, self.line(val.span()));
                    s.parent = Some(loc);
                }
                "nseg" => {
                    if !val.get_ref().is_integer() {
                        return Err(self.err(val.span(), &path, "expected an integer from 1 to 32767"));
                    }
                    s.nseg = self.number(val, &path, Allowed::Count)? as u32;
                }
                "L" => s.l = self.number(val, &path, Allowed::Positive)?,
                "diam" => s.diam = self.number(val, &path, Allowed::Positive)?,
                "cm" => s.cm = self.number(val, &path, Allowed::NonNegative)?,
                "Ra" => s.ra = self.number(val, &path, Allowed::Positive)?,
                "threshold" => s.threshold = self.number(val, &path, Allowed::Any)?,
                "gnabar_hh" | "gkbar_hh" | "gl_hh" | "el_hh" | "ena" | "ek" => {
                    let allowed = if key.starts_with('g') { Allowed::NonNegative } else { Allowed::Any };
                    let x = self.number(val, &path, allowed)?;
                    let hh = s
                        .hh
                        .as_mut()
                        .ok_or_else(|| self.err(k.span(), &path, "needs hh: add \"hh\" to this section's insert"))?;
                    match key {
                        "gnabar_hh" => hh.gnabar = x,
                        "gkbar_hh" => hh.gkbar = x,
                        "gl_hh" => hh.gl = x,
                        "el_hh" => hh.el = x,
                        "ena" => hh.ena = x,
                        _ => hh.ek = x,
                    }
                }
                "g_pas" | "e_pas" => {
                    let allowed = if key == "g_pas" { Allowed::NonNegative } else { Allowed::Any };
                    let x = self.number(val, &path, allowed)?;
                    let pas = s
                        .pas
                        .as_mut()
                        .ok_or_else(|| self.err(k.span(), &path, "needs pas: add \"pas\" to this section's insert"))?;
                    if key == "g_pas" {
                        pas.g = x
                    } else {
                        pas.e = x
                    }
                }
                _ => {
                    return Err(self.unknown_key(
                        k,
                        &path,
                        &[
                            "L", "diam", "nseg", "cm", "Ra", "parent", "insert", "threshold", "gnabar_hh",
                            "gkbar_hh", "gl_hh", "el_hh", "ena", "ek", "g_pas", "e_pas",
                        ],
                    ))
                }
            }
        }
        Ok(s)
    }

    /// The `type` key of a point process or artificial cell, required.
    fn type_key<'a>(&self, t: &'a DeTable<'t>, v: &Val<'t>, path: &str, allowed: &str) -> Result<&'a str> {
        let tv = t
            .get("type")
            .ok_or_else(|| self.err(v.span(), path, format!("missing key `type` ({allowed})")))?;
        self.string(tv, &format!("{path}.type"), allowed)
    }

    fn point(&mut self, name: &str, v: &Val<'t>) -> Result<PointSpec> {
        let t = self.table(v, name)?;
        let path = format!("point.{name}");
        let ty = self.type_key(t, v, &path, "ExpSyn, Exp2Syn or IClamp")?;
        let mut kind = PointKind::default_for(ty).ok_or_else(|| {
            self.err(t["type"].span(), &format!("{path}.type"), format!("unknown type `{ty}`; allowed: ExpSyn, Exp2Syn, IClamp"))
        })?;
        let at = t.get("at").ok_or_else(|| self.err(v.span(), &path, "missing key `at`, e.g. at = \"soma(0.5)\""))?;
        let at_path = format!("{path}.at");
        let at_text = self.string(at, &at_path, "a location such as \"soma(0.5)\"")?;
        let loc = parse_loc(at_text).ok_or_else(|| {
            self.err(at.span(), &at_path, format!("expected SECTION(x) with 0 <= x <= 1, found \"{at_text}\""))
        })?;
        self.lines.insert(at_path, self.line(at.span()));
        for (k, val) in t {
            let key: &str = k.get_ref();
            let kpath = format!("{path}.{key}");
            if key == "type" || key == "at" {
                continue;
            }
            let slot: Option<(&mut f64, Allowed)> = match (&mut kind, key) {
                (PointKind::ExpSyn { tau, .. }, "tau") => Some((tau, Allowed::Positive)),
                (PointKind::ExpSyn { e, .. }, "e") => Some((e, Allowed::Any)),
                (PointKind::Exp2Syn { tau1, .. }, "tau1") => Some((tau1, Allowed::Positive)),
                (PointKind::Exp2Syn { tau2, .. }, "tau2") => Some((tau2, Allowed::Positive)),
                (PointKind::Exp2Syn { e, .. }, "e") => Some((e, Allowed::Any)),
                (PointKind::IClamp { del, .. }, "del") => Some((del, Allowed::Any)),
                (PointKind::IClamp { dur, .. }, "dur") => Some((dur, Allowed::NonNegative)),
                (PointKind::IClamp { amp, .. }, "amp") => Some((amp, Allowed::Any)),
                _ => None,
            };
            let Some((slot, allowed)) = slot else {
                let allowed_keys: &[&str] = match kind {
                    PointKind::ExpSyn { .. } => &["type", "at", "tau", "e"],
                    PointKind::Exp2Syn { .. } => &["type", "at", "tau1", "tau2", "e"],
                    PointKind::IClamp { .. } => &["type", "at", "del", "dur", "amp"],
                };
                return Err(self.unknown_key(k, &kpath, allowed_keys));
            };
            *slot = self.number(val, &kpath, allowed)?;
        }
        Ok(PointSpec { name: name.to_string(), at: loc, kind })
    }

    /// `[cell.NAME]`; `netstims_before` (NetStims earlier in the file) numbers its default
    /// random stream.
    fn cell(&mut self, name: &str, v: &Val<'t>, netstims_before: usize) -> Result<CellSpec> {
        let t = self.table(v, name)?;
        let path = format!("cell.{name}");
        let ty = self.type_key(t, v, &path, "NetStim or VecStim")?;
        let mut kind = CellKind::default_for(ty, netstims_before).ok_or_else(|| {
            self.err(t["type"].span(), &format!("{path}.type"), format!("unknown type `{ty}`; allowed: NetStim, VecStim"))
        })?;
        for (k, val) in t {
            let key: &str = k.get_ref();
            let kpath = format!("{path}.{key}");
            if key == "type" {
                continue;
            }
            match &mut kind {
                CellKind::NetStim { interval, number, start, noise, id1, id2, id3 } => {
                    let (slot, allowed) = match key {
                        "interval" => (interval, Allowed::Positive),
                        "number" => (number, Allowed::NonNegative),
                        "start" => (start, Allowed::Any),
                        "noise" => (noise, Allowed::UnitInterval),
                        "id1" => (id1, Allowed::Uint32),
                        "id2" => (id2, Allowed::Uint32),
                        "id3" => (id3, Allowed::Uint32),
                        "seed" => {
                            return Err(self.err(
                                k.span(),
                                &kpath,
                                "NetStim has no seed: its noise is NEURON's Random123 stream, \
                                 identified by id1, id2, id3 and the global Random123_globalindex \
                                 (docs/model-format.md)",
                            ))
                        }
                        _ => {
                            return Err(self.unknown_key(
                                k,
                                &kpath,
                                &["type", "interval", "number", "start", "noise", "id1", "id2", "id3"],
                            ))
                        }
                    };
                    *slot = self.number(val, &kpath, allowed)?;
                }
                CellKind::VecStim { times } => {
                    if key != "times" {
                        return Err(self.unknown_key(k, &kpath, &["type", "times"]));
                    }
                    let arr = val
                        .get_ref()
                        .as_array()
                        .ok_or_else(|| self.err(val.span(), &kpath, "expected an array of spike times (ms)"))?;
                    times.clear();
                    for item in arr.iter() {
                        let x = self.number(item, &kpath, Allowed::NonNegative)?;
                        if times.last().is_some_and(|&last| x < last) {
                            return Err(self.err(item.span(), &kpath, format!("times must not decrease; {x} comes after {}", times.last().unwrap())));
                        }
                        times.push(x);
                    }
                }
            }
        }
        Ok(CellSpec { name: name.to_string(), kind })
    }

    fn netcon(&mut self, name: &str, v: &Val<'t>) -> Result<NetConSpec> {
        let t = self.table(v, name)?;
        let path = format!("netcon.{name}");
        let mut n = NetConSpec { name: name.to_string(), source: String::new(), target: String::new(), delay: 1.0, weight: 0.0 };
        for req in ["source", "target"] {
            if !t.contains_key(req) {
                return Err(self.err(v.span(), &path, format!("missing key `{req}`")));
            }
        }
        for (k, val) in t {
            let key: &str = k.get_ref();
            let kpath = format!("{path}.{key}");
            match key {
                "source" => n.source = self.string(val, &kpath, "an artificial cell or a section name")?.to_string(),
                "target" => n.target = self.string(val, &kpath, "a synapse or an artificial cell name")?.to_string(),
                "delay" => n.delay = self.number(val, &kpath, Allowed::NonNegative)?,
                "weight" => n.weight = self.number(val, &kpath, Allowed::Any)?,
                "threshold" => {
                    // Applied to the source section in check_references.
                    let x = self.number(val, &kpath, Allowed::Any)?;
                    self.thresholds.push((name.to_string(), x, self.line(val.span())));
                }
                _ => return Err(self.unknown_key(k, &kpath, &["source", "target", "delay", "weight", "threshold"])),
            }
            if key == "source" || key == "target" {
                self.lines.insert(kpath, self.line(val.span()));
            }
        }
        Ok(n)
    }

    fn line_of(&self, key: &str) -> usize {
        self.lines.get(key).copied().unwrap_or(1)
    }

    /// Names, connections and recordings refer to things that exist and fit together.
    fn check_references(&self, m: &mut Model) -> Result<()> {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        let kinds = m.sections.iter().map(|s| (s.name.as_str(), "section"))
            .chain(m.points.iter().map(|s| (s.name.as_str(), "point")))
            .chain(m.cells.iter().map(|s| (s.name.as_str(), "cell")))
            .chain(m.netcons.iter().map(|s| (s.name.as_str(), "netcon")));
        for (name, kind) in kinds {
            let path = format!("{kind}.{name}");
            if GLOBAL_FIELDS.iter().any(|g| g.0 == name) {
                return Err(self.err_at_line(self.line_of(&path), &path, format!("`{name}` is a global parameter name; choose another name")));
            }
            if let Some(first) = seen.insert(name, kind) {
                return Err(self.err_at_line(self.line_of(&path), &path, format!("the name `{name}` is already used by {first}.{name}; names are shared by all objects")));
            }
        }
        // Parents exist and form a tree.
        for s in &m.sections {
            let Some(p) = &s.parent else { continue };
            let path = format!("section.{}.parent", s.name);
            let line = self.line_of(&path);
            let Some(pi) = m.section_index(&p.section) else {
                return Err(self.err_at_line(line, &path, format!("no section named `{}`", p.section)));
            };
            let mut cur = pi;
            for _ in 0..=m.sections.len() {
                if m.sections[cur].name == s.name {
                    return Err(self.err_at_line(line, &path, "this connection makes a loop"));
                }
                match &m.sections[cur].parent {
                    Some(pp) => cur = m.section_index(&pp.section).unwrap_or(cur),
                    None => break,
                }
            }
        }
        for p in &m.points {
            let path = format!("point.{}.at", p.name);
            if !m.sections.iter().any(|s| s.name == p.at.section) {
                return Err(self.err_at_line(self.line_of(&path), &path, format!("no section named `{}`", p.at.section)));
            }
        }
        for n in &m.netcons {
            let src_path = format!("netcon.{}.source", n.name);
            match m.object(&n.source) {
                Some(Object::Section(_)) | Some(Object::Cell(_)) => {}
                _ => {
                    return Err(self.err_at_line(self.line_of(&src_path), &src_path, format!("`{}` is not a section or an artificial cell", n.source)))
                }
            }
            let tgt_path = format!("netcon.{}.target", n.name);
            match m.object(&n.target) {
                Some(Object::Point(pi)) if matches!(m.points[pi].kind, PointKind::IClamp { .. }) => {
                    return Err(self.err_at_line(self.line_of(&tgt_path), &tgt_path, format!("`{}` is an IClamp, which receives no events; targets are ExpSyn, Exp2Syn, NetStim or VecStim", n.target)))
                }
                Some(Object::Point(_)) | Some(Object::Cell(_)) => {}
                _ => {
                    return Err(self.err_at_line(self.line_of(&tgt_path), &tgt_path, format!("`{}` is not a synapse or an artificial cell", n.target)))
                }
            }
        }
        // NetCon thresholds set their source's detector; two different values conflict.
        let mut by_source: HashMap<String, (f64, String)> = HashMap::new();
        for (nc, x, line) in &self.thresholds {
            let path = format!("netcon.{nc}.threshold");
            let source = &m.netcons.iter().find(|n| &n.name == nc).expect("parsed netcon").source;
            let Some(Object::Section(si)) = m.object(source) else {
                return Err(self.err_at_line(*line, &path, "only a section source has a threshold (an artificial cell fires by itself)"));
            };
            if let Some((y, other)) = by_source.get(source) {
                if y != x {
                    return Err(self.err_at_line(*line, &path, format!("{other} sets {y} for the same source `{source}`; a threshold belongs to the source")));
                }
            }
            by_source.insert(source.clone(), (*x, path));
            m.sections[si].threshold = *x;
        }
        for s in &m.record {
            let path = format!("record.signals.{s}");
            signal::resolve(m, s).map_err(|e| self.err_at_line(self.line_of(&path), "record.signals", e.to_string()))?;
        }
        Ok(())
    }
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic()) && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// `soma(0.5)` to a location; None when malformed or x outside [0, 1].
pub fn parse_loc(text: &str) -> Option<Loc> {
    let (sec, rest) = text.trim().split_once('(')?;
    let x: f64 = rest.strip_suffix(')')?.trim().parse().ok()?;
    if !is_identifier(sec.trim()) || !(0.0..=1.0).contains(&x) {
        return None;
    }
    Some(Loc { section: sec.trim().to_string(), x })
}
