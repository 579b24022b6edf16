//! Model files: TOML text to a checked `Model`. Every error names the origin (file), the line,
//! the key and what is allowed; nothing is defaulted silently (unknown keys are errors).

use std::collections::HashMap;
use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::mech::{self, MechDef};
use crate::model::*;
use crate::morphology::Pt3d;
use crate::expr::Expr;
use crate::population::{Connect, PerCopySet, PerItem, Population, Populations, Rule, Selector, Template, MAX_COPIES, RULES};
use crate::signal;

/// Reads a file a model refers to (`[morphology] swc`), by the path written in the model;
/// Err: why it cannot be read.
pub type FileReader<'a> = &'a dyn Fn(&str) -> std::result::Result<String, String>;

/// Parses and checks a model that refers to no other file. `origin` names the text in
/// messages (usually its path).
pub fn parse_model(text: &str, origin: &str) -> Result<Model> {
    parse_model_with(text, origin, &|path: &str| {
        Err(format!("cannot read `{path}`: this model text does not come from a file (give the model file's path)"))
    })
}

/// Parses and checks a model, reading the files it refers to with `files` (the caller
/// resolves their paths, e.g. relative to the model file's directory).
pub fn parse_model_with(text: &str, origin: &str, files: FileReader<'_>) -> Result<Model> {
    let root = DeTable::parse(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        Error::Syntax { origin: origin.to_string(), line, col, msg: e.message().trim().to_string() }
    })?;
    let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let mut p = Parser { origin, line_starts, lines: HashMap::new(), thresholds: vec![], prefix: String::new(), netstims: 0, files };
    let mut model = p.model(root.get_ref())?;
    p.check_references(&mut model)?;
    Ok(model)
}

/// Which keys a section table may hold.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SectionKeys {
    All,
    /// A `[morphology]` table: not what the file gives (L, diam, pt3d, parent) nor nseg.
    Morphology,
}

/// `[morphology] nseg`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NsegRule {
    Fixed(u32),
    DLambda,
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
    /// Before every key path: `template.NAME.` inside a template.
    prefix: String,
    /// NetStims so far (their default stream ids count them).
    netstims: usize,
    /// Reads the files the model refers to.
    files: FileReader<'t>,
}

impl<'t> Parser<'t> {
    /// A key path, with the template it is in.
    fn path(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

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
        let mut m = Model::empty(self.origin);
        let mut pops = Populations::default();
        const TOP: &[&str] = &[
            "run", "morphology", "section", "point", "cell", "netcon", "play", "template", "population", "connect", "record",
        ];
        let mut morphology = vec![];
        for (k, v) in root {
            let key: &str = k.get_ref();
            match key {
                "run" => self.run(v, &mut m.run)?,
                "morphology" => morphology = self.morphology(v)?,
                "section" | "point" | "cell" | "netcon" => self.objects(key, v, &mut m)?,
                "play" => {
                    for (name, pv) in self.named_tables(v, "play")? {
                        let p = self.play(&name, pv)?;
                        m.plays.push(p);
                    }
                }
                "template" => {
                    for (name, tv) in self.named_tables(v, "template")? {
                        let line = self.line(tv.span());
                        let t = self.template(&name, tv, line)?;
                        pops.templates.push(t);
                    }
                }
                "population" => {
                    for (name, pv) in self.named_tables(v, "population")? {
                        let p = self.population(&name, pv, &pops.templates)?;
                        pops.populations.push(p);
                    }
                }
                "connect" => {
                    for (name, cv) in self.named_tables(v, "connect")? {
                        let c = self.connect(&name, cv)?;
                        pops.connects.push(c);
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
        // A morphology's sections come first, as when a NEURON script imports it first.
        if !morphology.is_empty() {
            morphology.append(&mut m.sections);
            m.sections = morphology;
            m.index = NameIndex::default();
        }
        pops.expand(&mut m)?;
        Ok(m)
    }

    /// `[section.NAME]`, `[point.NAME]`, `[cell.NAME]`, `[netcon.NAME]` tables into `m`.
    fn objects(&mut self, key: &str, v: &Val<'t>, m: &mut Model) -> Result<()> {
        for (name, ov) in self.named_tables(v, key)? {
            match key {
                "section" => {
                    let s = self.section(&name, ov)?;
                    m.sections.push(s);
                }
                "point" => {
                    let p = self.point(&name, ov)?;
                    m.points.push(p);
                }
                "cell" => {
                    let c = self.cell(&name, ov, self.netstims)?;
                    self.netstims += usize::from(c.mech == mech::netstim::DEF.id());
                    m.cells.push(c);
                }
                _ => {
                    let n = self.netcon(&name, ov)?;
                    m.netcons.push(n);
                }
            }
        }
        Ok(())
    }

    /// `[template.NAME]`: a cell's sections, point processes, artificial cells and NetCons
    /// with names of their own, checked like a model of their own.
    fn template(&mut self, name: &str, v: &Val<'t>, line: usize) -> Result<Template> {
        let t = self.table(v, name)?;
        let mut sub = Parser {
            origin: self.origin,
            line_starts: self.line_starts.clone(),
            lines: HashMap::new(),
            thresholds: vec![],
            prefix: format!("template.{name}."),
            netstims: 0,
            files: self.files,
        };
        let mut m = Model::empty(self.origin);
        let mut default_id3 = vec![];
        for (k, ov) in t {
            let key: &str = k.get_ref();
            match key {
                "section" | "point" | "cell" | "netcon" => sub.objects(key, ov, &mut m)?,
                "play" => {
                    let path = sub.path(key);
                    return Err(self.err(
                        k.span(),
                        &path,
                        "a play belongs to the model, not to a template: write [play.NAME] at the top level with the copy's parameter, e.g. target = \"pop[3].stim.amp\"",
                    ));
                }
                _ => {
                    let path = sub.path(key);
                    return Err(self.unknown_key(k, &path, &["section", "point", "cell", "netcon"]));
                }
            }
            if key == "cell" {
                for (_, cv) in sub.table(ov, "cell")? {
                    default_id3.push(cv.get_ref().as_table().is_some_and(|c| !c.contains_key("id3")));
                }
            }
        }
        if m.sections.is_empty() && m.cells.is_empty() {
            return Err(self.err_at_line(line, &format!("template.{name}"), "a template needs a section or an artificial cell"));
        }
        sub.check_references(&mut m)?;
        Ok(Template { name: name.to_string(), model: m, default_id3, line })
    }

    fn run(&self, v: &Val<'t>, run: &mut RunSettings) -> Result<()> {
        for (k, val) in self.table(v, "run")? {
            let key: &str = k.get_ref();
            let path = format!("run.{key}");
            let Some(f) = GLOBAL_FIELDS.iter().position(|f| f.name == key) else {
                let names: Vec<&str> = GLOBAL_FIELDS.iter().map(|f| f.name).collect();
                return Err(self.unknown_key(k, &path, &names));
            };
            run.set(f, self.number(val, &path, GLOBAL_FIELDS[f].allowed)?);
        }
        Ok(())
    }

    /// `[section.NAME]` and friends: a table of named tables; names must be identifiers.
    fn named_tables<'a>(&mut self, v: &'a Val<'t>, kind: &str) -> Result<Vec<(String, &'a Val<'t>)>> {
        let t = self.table(v, kind)?;
        let mut out = vec![];
        for (k, sv) in t {
            let name: &str = k.get_ref();
            let path = self.path(&format!("{kind}.{name}"));
            // Objects may carry the names `spikebus expand` gives population copies.
            let plain = matches!(kind, "template" | "population" | "connect");
            if !(if plain { is_identifier(name) } else { is_object_name(name) }) {
                return Err(self.err(
                    k.span(),
                    &path,
                    if plain {
                        "a name must start with a letter and hold only letters, digits and _"
                    } else {
                        "a name must start with a letter and hold only letters, digits and _ (or be a population copy's name, such as p[3].soma)"
                    },
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
        let base = self.path(&format!("section.{name}"));
        self.section_keys(&mut s, t, &base, SectionKeys::All)?;
        Ok(s)
    }

    /// The keys of a section table applied to `s` (`base`: the table's key path, for
    /// messages). A morphology's tables may not give what the file gives (`keys`).
    fn section_keys(&mut self, s: &mut SectionSpec, t: &DeTable<'t>, base: &str, keys: SectionKeys) -> Result<()> {
        // `insert` first: mechanism parameters are only valid for inserted mechanisms.
        if let Some(iv) = t.get("insert") {
            let path = format!("{base}.insert");
            let arr = iv.get_ref().as_array().ok_or_else(|| {
                self.err(iv.span(), &path, "expected an array of mechanism names, e.g. [\"hh\", \"pas\"]")
            })?;
            for m in arr.iter() {
                let mech = self.string(m, &path, "a mechanism name")?;
                let def = mech::find(mech, MechKind::Density).ok_or_else(|| {
                    let allowed = mech::names(MechKind::Density).join(", ");
                    self.err(m.span(), &path, unknown_mech("mechanism", mech, &allowed))
                })?;
                s.insert(def);
            }
        }
        if keys == SectionKeys::Morphology {
            for key in ["L", "diam", "nseg", "parent", "pt3d"] {
                if let Some((k, _)) = t.get_key_value(key) {
                    return Err(self.err(
                        k.span(),
                        &format!("{base}.{key}"),
                        "the SWC file gives the sections' points and connections, and [morphology] nseg their nseg",
                    ));
                }
            }
        }
        if let Some((k, _)) = t.get_key_value("pt3d") {
            for key in ["L", "diam"] {
                if let Some((lk, _)) = t.get_key_value(key) {
                    return Err(self.err(
                        lk.span(),
                        &format!("{base}.{key}"),
                        format!("not with pt3d (line {}): the 3-d points give the section's length and diameters", self.line(k.span())),
                    ));
                }
            }
        }
        // `nseg` first too: a list of per-segment values needs it.
        if let Some(val) = t.get("nseg") {
            let path = format!("{base}.nseg");
            if !val.get_ref().is_integer() {
                return Err(self.err(val.span(), &path, "expected an integer from 1 to 32767"));
            }
            s.nseg = self.number(val, &path, Allowed::Count)? as u32;
        }
        for (k, val) in t {
            let key: &str = k.get_ref();
            let path = format!("{base}.{key}");
            match key {
                "insert" | "nseg" => {}
                "pt3d" => s.pt3d = Some(std::sync::Arc::new(self.pt3d(val, &path)?)),
                "parent" => {
                    let text = self.string(val, &path, "a location such as \"soma(1)\"")?;
                    let loc = parse_loc(text).ok_or_else(|| {
                        self.err(val.span(), &path, format!("expected SECTION(x) with 0 <= x <= 1, found \"{text}\""))
                    })?;
                    self.lines.insert(path, self.line(val.span()));
                    s.parent = Some(loc);
                }
                _ => {
                    if let Some(f) = SECTION_FIELDS.iter().position(|f| f.name == key) {
                        if let Some(values) = self.per_segment(val, &path, &s, SECTION_FIELDS[f].allowed)? {
                            if !SectionSpec::is_range_field(f) {
                                return Err(self.err(val.span(), &path, format!("`{key}` is one value for the whole section; only diam, cm and mechanism parameters take a value per segment")));
                            }
                            for (seg, x) in values.into_iter().enumerate() {
                                let uniform = s.own_at(f, seg as u32);
                                s.segs.set(f, seg as u32, x, s.nseg, uniform);
                            }
                            continue;
                        }
                        let x = self.number(val, &path, SECTION_FIELDS[f].allowed)?;
                        s.set_own(f, x);
                        continue;
                    }
                    let found = s.mechs.iter().enumerate().find_map(|(slot, m)| {
                        m.mech.def().param(key).map(|f| (slot, f))
                    });
                    if let Some((slot, f)) = found {
                        let allowed = s.mechs[slot].mech.def().params[f].allowed;
                        if let Some(values) = self.per_segment(val, &path, &s, allowed)? {
                            let (nseg, m) = (s.nseg, &mut s.mechs[slot]);
                            for (seg, x) in values.into_iter().enumerate() {
                                m.segs.set(f, seg as u32, x, nseg, m.params[f]);
                            }
                            continue;
                        }
                        let x = self.number(val, &path, allowed)?;
                        s.mechs[slot].params[f] = x;
                        continue;
                    }
                    // A field of a mechanism that is not inserted: say which one.
                    let owner = mech::MECHANISMS
                        .iter()
                        .find(|m| matches!(m.kind, MechKind::Density | MechKind::Ion) && m.param(key).is_some());
                    if let Some(owner) = owner {
                        let users: Vec<&str> = if owner.kind == MechKind::Ion {
                            mech::MECHANISMS.iter().filter(|m| m.ions.iter().any(|i| std::ptr::eq(*i, *owner))).map(|m| m.name).collect()
                        } else {
                            vec![owner.name]
                        };
                        return Err(self.err(
                            k.span(),
                            &path,
                            format!("needs {0}: add \"{0}\" to this section's insert", users.join(" or ")),
                        ));
                    }
                    let mut allowed: Vec<&str> = SECTION_FIELDS.iter().map(|f| f.name).collect();
                    allowed.extend(["parent", "insert", "pt3d"]);
                    allowed.extend(s.mechs.iter().flat_map(|m| m.mech.def().params.iter().map(|f| f.name)));
                    return Err(self.unknown_key(k, &path, &allowed));
                }
            }
        }
        Ok(())
    }

    /// `pt3d = [[x, y, z, diam], ...]`: two or more 3-d points (um), as NEURON's pt3dadd.
    fn pt3d(&self, v: &Val<'t>, path: &str) -> Result<Pt3d> {
        let bad = |span| self.err(span, path, "expected a list of [x, y, z, diam] points (um), at least 2");
        let arr = v.get_ref().as_array().ok_or_else(|| bad(v.span()))?;
        if arr.len() < 2 || arr.len() > crate::morphology::MAX_POINTS {
            return Err(self.err(v.span(), path, format!("expected 2 to {} points, found {}", crate::morphology::MAX_POINTS, arr.len())));
        }
        let mut points = Vec::with_capacity(arr.len());
        for item in arr.iter() {
            let q = item.get_ref().as_array().filter(|q| q.len() == 4).ok_or_else(|| bad(item.span()))?;
            let mut pt = [0.0; 4];
            for (i, x) in q.iter().enumerate() {
                pt[i] = self.number(x, path, if i == 3 { Allowed::NonNegative } else { Allowed::Any })?;
                // Stored as a C float, as NEURON does: it must be one.
                if !(pt[i] as f32).is_finite() {
                    return Err(self.err(x.span(), path, format!("{} is beyond a float's range", pt[i])));
                }
            }
            points.push(pt);
        }
        Ok(Pt3d::new(&points))
    }

    /// `[morphology]`: the sections of an SWC file, as NEURON's Import3d makes them, with
    /// the parameters of the `all` table and of their type's table, and nseg by the rule.
    fn morphology(&mut self, v: &Val<'t>) -> Result<Vec<SectionSpec>> {
        let t = self.table(v, "morphology")?;
        let swc_val = t.get("swc").ok_or_else(|| self.err(v.span(), "morphology", "missing key `swc` (the SWC file, relative to the model file)"))?;
        let file = self.string(swc_val, "morphology.swc", "a path to an SWC file")?;
        let text = (self.files)(file).map_err(|e| self.err(swc_val.span(), "morphology.swc", e))?;
        let imported = crate::morphology::swc::import(&text)
            .map_err(|e| self.err(swc_val.span(), "morphology.swc", format!("{file}: {e}")))?;
        let mut rule = NsegRule::Fixed(1);
        let (mut d_lambda, mut freq) = (None, None);
        let mut tables: Vec<(&str, &DeTable<'t>, Range<usize>)> = vec![];
        for (k, val) in t {
            let key: &str = k.get_ref();
            let path = format!("morphology.{key}");
            match key {
                "swc" => {}
                "nseg" => {
                    rule = match val.get_ref() {
                        DeValue::String(s) if s.as_ref() == "d_lambda" => NsegRule::DLambda,
                        DeValue::Integer(_) => NsegRule::Fixed(self.number(val, &path, Allowed::Count)? as u32),
                        _ => return Err(self.err(val.span(), &path, "expected an integer from 1 to 32767 or \"d_lambda\"")),
                    }
                }
                "d_lambda" => d_lambda = Some((self.number(val, &path, Allowed::Positive)?, val.span())),
                "d_lambda_freq" => freq = Some((self.number(val, &path, Allowed::Positive)?, val.span())),
                _ => {
                    let Some(tt) = val.get_ref().as_table() else {
                        return Err(self.unknown_key(k, &path, &["swc", "nseg", "d_lambda", "d_lambda_freq", "all", "TYPE (a table: soma, axon, dend, apic, ...)"]));
                    };
                    if key != "all" && !imported.iter().any(|s| s.type_name == key) {
                        let mut have: Vec<&str> = imported.iter().map(|s| s.type_name.as_str()).collect();
                        have.dedup();
                        return Err(self.err(k.span(), &path, format!("{file} has no `{key}` sections; its types: {}; `all` is every section", have.join(", "))));
                    }
                    tables.push((key, tt, k.span()));
                }
            }
        }
        if rule != NsegRule::DLambda {
            if let Some((_, span)) = d_lambda.clone().or(freq.clone()) {
                return Err(self.err(span, "morphology", "d_lambda and d_lambda_freq need nseg = \"d_lambda\""));
            }
        }
        // `all` first, then the type's own table.
        tables.sort_by_key(|(key, _, _)| *key != "all");
        let mut out = Vec::with_capacity(imported.len());
        for sec in &imported {
            let mut s = SectionSpec::new(&self.path(&sec.name));
            s.pt3d = Some(std::sync::Arc::new(Pt3d::new(&sec.points)));
            s.parent = sec.parent.map(|(pi, x)| Loc { section: self.path(&imported[pi].name), x });
            for (key, tt, _) in &tables {
                if *key == "all" || *key == sec.type_name {
                    self.section_keys(&mut s, tt, &format!("morphology.{key}"), SectionKeys::Morphology)?;
                }
            }
            s.nseg = match rule {
                NsegRule::Fixed(n) => n,
                NsegRule::DLambda => {
                    let pt = s.pt3d.as_deref().expect("set above");
                    let n = crate::morphology::d_lambda_nseg(pt, d_lambda.as_ref().map_or(0.1, |d| d.0), freq.as_ref().map_or(100.0, |f| f.0), s.ra, s.cm)
                        .map_err(|e| self.err(v.span(), "morphology.nseg", format!("{}: the d_lambda rule cannot be applied (NEURON's lambda_f fails): {e}", sec.name)))?;
                    if !(1.0..=32767.0).contains(&n) {
                        return Err(self.err(v.span(), "morphology.nseg", format!("{}: the d_lambda rule gives nseg = {n}, beyond 32767", sec.name)));
                    }
                    n as u32
                }
            };
            self.lines.insert(self.path(&format!("section.{}", sec.name)), self.line(v.span()));
            self.lines.insert(self.path(&format!("section.{}.parent", sec.name)), self.line(swc_val.span()));
            out.push(s);
        }
        Ok(out)
    }

    /// A range variable given per segment: a list of one value per segment (None for a single
    /// number).
    fn per_segment(&self, v: &Val<'t>, path: &str, s: &SectionSpec, allowed: Allowed) -> Result<Option<Vec<f64>>> {
        let Some(arr) = v.get_ref().as_array() else { return Ok(None) };
        if arr.len() != s.nseg as usize {
            return Err(self.err(
                v.span(),
                path,
                format!("a list gives one value per segment: nseg = {}, found {} values", s.nseg, arr.len()),
            ));
        }
        arr.iter().map(|x| self.number(x, path, allowed)).collect::<Result<_>>().map(Some)
    }

    /// The `type` key of a point process or artificial cell, required, as a mechanism.
    fn type_key(&self, t: &DeTable<'t>, v: &Val<'t>, path: &str, kind: MechKind) -> Result<&'static MechDef> {
        let allowed = mech::names(kind).join(", ");
        let tv = t
            .get("type")
            .ok_or_else(|| self.err(v.span(), path, format!("missing key `type` ({allowed})")))?;
        let tpath = format!("{path}.type");
        let ty = self.string(tv, &tpath, &allowed)?;
        mech::find(ty, kind).ok_or_else(|| self.err(tv.span(), &tpath, unknown_mech("type", ty, &allowed)))
    }

    /// The numeric keys of a point process or artificial cell: its mechanism's fields.
    fn fields(&self, t: &DeTable<'t>, path: &str, def: &MechDef, skip: &[&str], params: &mut [f64]) -> Result<()> {
        for (k, val) in t {
            let key: &str = k.get_ref();
            if skip.contains(&key) {
                continue;
            }
            let kpath = format!("{path}.{key}");
            // An array parameter (VClamp's `dur[0]`, `dur[1]`, `dur[2]`) as a list.
            let elems: Vec<usize> = (0..).map_while(|j| def.param(&format!("{key}[{j}]"))).collect();
            if let (false, Some(arr)) = (elems.is_empty(), val.get_ref().as_array()) {
                if arr.len() != elems.len() {
                    return Err(self.err(val.span(), &kpath, format!("expected a list of {} numbers, found {}", elems.len(), arr.len())));
                }
                for (&f, x) in elems.iter().zip(arr.iter()) {
                    params[f] = self.number(x, &kpath, def.params[f].allowed)?;
                }
                continue;
            }
            let Some(f) = def.param(key) else {
                if key == "seed" && def.name == "NetStim" {
                    return Err(self.err(
                        k.span(),
                        &kpath,
                        "NetStim has no seed: its noise is NEURON's Random123 stream, \
                         identified by id1, id2, id3 and the global Random123_globalindex \
                         (docs/model-format.md)",
                    ));
                }
                let mut allowed: Vec<&str> = skip.to_vec();
                allowed.extend(def.params.iter().map(|f| f.name));
                return Err(self.unknown_key(k, &kpath, &allowed));
            };
            params[f] = self.number(val, &kpath, def.params[f].allowed)?;
        }
        Ok(())
    }

    fn point(&mut self, name: &str, v: &Val<'t>) -> Result<PointSpec> {
        let t = self.table(v, name)?;
        let path = self.path(&format!("point.{name}"));
        let def = self.type_key(t, v, &path, MechKind::Point)?;
        let at = t.get("at").ok_or_else(|| self.err(v.span(), &path, "missing key `at`, e.g. at = \"soma(0.5)\""))?;
        let at_path = format!("{path}.at");
        let at_text = self.string(at, &at_path, "a location such as \"soma(0.5)\"")?;
        let loc = parse_loc(at_text).ok_or_else(|| {
            self.err(at.span(), &at_path, format!("expected SECTION(x) with 0 <= x <= 1, found \"{at_text}\""))
        })?;
        self.lines.insert(at_path, self.line(at.span()));
        let mut params = def.defaults();
        self.fields(t, &path, def, &["type", "at"], &mut params)?;
        Ok(PointSpec { name: name.to_string(), at: loc, mech: def.id(), params })
    }

    /// `[cell.NAME]`; `netstims_before` (NetStims earlier in the file) numbers its default
    /// random stream.
    fn cell(&mut self, name: &str, v: &Val<'t>, netstims_before: usize) -> Result<CellSpec> {
        let t = self.table(v, name)?;
        let path = self.path(&format!("cell.{name}"));
        let def = self.type_key(t, v, &path, MechKind::Artificial)?;
        let mut c = CellSpec::new(name, def, netstims_before);
        let is_vecstim = def.name == "VecStim";
        let skip: &[&str] = if is_vecstim { &["type", "times"] } else { &["type"] };
        self.fields(t, &path, def, skip, &mut c.params)?;
        if let (true, Some(val)) = (is_vecstim, t.get("times")) {
            let kpath = format!("{path}.times");
            let arr = val
                .get_ref()
                .as_array()
                .ok_or_else(|| self.err(val.span(), &kpath, "expected an array of spike times (ms)"))?;
            for item in arr.iter() {
                let x = self.number(item, &kpath, Allowed::NonNegative)?;
                if let Some(&last) = c.times.last() {
                    if x < last {
                        return Err(self.err(item.span(), &kpath, format!("times must not decrease; {x} comes after {last}")));
                    }
                }
                c.times.push(x);
            }
        }
        Ok(c)
    }

    /// `[play.NAME]`: NEURON's `Vector.play` into a parameter (checked against the model in
    /// `check_references`).
    fn play(&mut self, name: &str, v: &Val<'t>) -> Result<PlaySpec> {
        let t = self.table(v, name)?;
        let path = format!("play.{name}");
        for req in ["target", "values"] {
            if !t.contains_key(req) {
                return Err(self.err(v.span(), &path, format!("missing key `{req}`")));
            }
        }
        let mut p = PlaySpec { name: name.to_string(), target: String::new(), values: vec![], times: None, dt: None, continuous: false };
        let list = |key: &str, val: &Val<'t>| -> Result<Vec<f64>> {
            let kpath = format!("{path}.{key}");
            let arr = val.get_ref().as_array().ok_or_else(|| self.err(val.span(), &kpath, "expected a list of numbers"))?;
            arr.iter().map(|x| self.number(x, &kpath, Allowed::Any)).collect()
        };
        let mut lines = vec![];
        for (k, val) in t {
            let key: &str = k.get_ref();
            let kpath = format!("{path}.{key}");
            match key {
                "target" => {
                    p.target = self.string(val, &kpath, "a parameter name such as \"stim.amp\"")?.to_string();
                    lines.push((kpath, self.line(val.span())));
                }
                "values" => {
                    p.values = list(key, val)?;
                    if p.values.is_empty() {
                        return Err(self.err(val.span(), &kpath, "expected at least one value"));
                    }
                    lines.push((kpath, self.line(val.span())));
                }
                "times" => {
                    let times = list(key, val)?;
                    if let Some(w) = times.windows(2).find(|w| w[1] < w[0]) {
                        return Err(self.err(val.span(), &kpath, format!("times must not decrease; {} comes after {}", w[1], w[0])));
                    }
                    p.times = Some(times);
                }
                // Vector.play's bounds for Dt (chkarg 1e-9 to 1e10).
                "dt" => {
                    let dt = self.number(val, &kpath, Allowed::Positive)?;
                    if !(1e-9..=1e10).contains(&dt) {
                        return Err(self.err(val.span(), &kpath, format!("expected 1e-9 to 1e10 ms, found {dt}")));
                    }
                    p.dt = Some(dt);
                }
                "continuous" => {
                    p.continuous = val.get_ref().as_bool().ok_or_else(|| self.err(val.span(), &kpath, "expected true or false"))?;
                }
                "discon" => {
                    return Err(self.err(
                        k.span(),
                        &kpath,
                        "discontinuity indices (Vector.play's third argument as a Vector) are not supported: repeat a time in `times` instead (equal times give a step)",
                    ))
                }
                _ => return Err(self.unknown_key(k, &kpath, &["target", "values", "times", "dt", "continuous"])),
            }
        }
        self.lines.extend(lines);
        match (&p.times, p.dt) {
            (Some(times), None) if times.len() != p.values.len() => {
                Err(self.err(t["times"].span(), &format!("{path}.times"), format!("one time per value: {} values, {} times", p.values.len(), times.len())))
            }
            (Some(_), Some(_)) | (None, None) => {
                Err(self.err(v.span(), &path, "give either `times` (a list, one per value) or `dt` (a value every dt ms from 0)"))
            }
            (None, Some(_)) if p.continuous => Err(self.err(
                t["continuous"].span(),
                &format!("{path}.continuous"),
                "continuous play needs `times` (NEURON: \"Second argument of Vector.play in continuous mode must be a time vector\")",
            )),
            _ => Ok(p),
        }
    }

    fn netcon(&mut self, name: &str, v: &Val<'t>) -> Result<NetConSpec> {
        let t = self.table(v, name)?;
        let path = self.path(&format!("netcon.{name}"));
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

    /// A value given per copy or per pair: a number, an expression (a string) in `vars`, or
    /// (with `list_len`) an array of that many numbers.
    fn per_item(&self, v: &Val<'t>, path: &str, vars: &[&str], list_len: Option<usize>, allowed: Allowed) -> Result<PerItem> {
        match v.get_ref() {
            DeValue::String(text) => Expr::parse(text, vars)
                .map(PerItem::Expr)
                .map_err(|e| self.err(v.span(), path, format!("expression \"{text}\": {e}"))),
            DeValue::Array(items) => {
                let Some(n) = list_len else {
                    return Err(self.err(v.span(), path, "expected a number or an expression (a string)"));
                };
                if items.len() != n {
                    return Err(self.err(v.span(), path, format!("a list needs one value per copy: {n}, found {}", items.len())));
                }
                items.iter().map(|x| self.number(x, path, allowed)).collect::<Result<_>>().map(PerItem::List)
            }
            _ => self.number(v, path, allowed).map(PerItem::Const),
        }
    }

    /// `[population.NAME]`: `count` copies of a template, with per-copy parameters (`set`).
    fn population(&mut self, name: &str, v: &Val<'t>, templates: &[Template]) -> Result<Population> {
        let t = self.table(v, name)?;
        let path = format!("population.{name}");
        for req in ["template", "count"] {
            if !t.contains_key(req) {
                return Err(self.err(v.span(), &path, format!("missing key `{req}`")));
            }
        }
        let tv = &t["template"];
        let tname = self.string(tv, &format!("{path}.template"), "a template name")?;
        let template = templates.iter().position(|x| x.name == tname).ok_or_else(|| {
            let known: Vec<&str> = templates.iter().map(|x| x.name.as_str()).collect();
            self.err(tv.span(), &format!("{path}.template"), format!("no template `{tname}` before this population; templates: {}", known.join(", ")))
        })?;
        let count = self.number(&t["count"], &format!("{path}.count"), Allowed::NonNegative)?;
        if count.fract() != 0.0 || count > MAX_COPIES as f64 {
            return Err(self.err(t["count"].span(), &format!("{path}.count"), format!("expected an integer from 0 to {MAX_COPIES}")));
        }
        let count = count as usize;
        let mut sets = vec![];
        for (k, val) in t {
            let key: &str = k.get_ref();
            match key {
                "template" | "count" => {}
                "set" => {
                    let st = self.table(val, &format!("{path}.set"))?;
                    for (pk, pv) in st {
                        let param: &str = pk.get_ref();
                        let ppath = format!("{path}.set.{param}");
                        let (r, field) = templates[template].model.resolve(param).map_err(|e| self.err(pk.span(), &ppath, e.to_string()))?;
                        if matches!(r, ParamRef::Global(_)) {
                            return Err(self.err(pk.span(), &ppath, "a global is not a copy's: set it in [run]"));
                        }
                        templates[template].model.check_writable(r, param).map_err(|e| self.err(pk.span(), &ppath, e.to_string()))?;
                        let value = self.per_item(pv, &ppath, &["i", "n"], Some(count), field.allowed)?;
                        sets.push(PerCopySet { path: ppath, line: self.line(pv.span()), param: r, field, value });
                    }
                }
                _ => return Err(self.unknown_key(k, &format!("{path}.{key}"), &["template", "count", "set"])),
            }
        }
        Ok(Population { name: name.to_string(), template, count, sets, line: self.line(v.span()) })
    }

    /// `[connect.NAME]`: NetCons from a set of sources to a set of targets by a rule.
    fn connect(&mut self, name: &str, v: &Val<'t>) -> Result<Connect> {
        let t = self.table(v, name)?;
        let path = format!("connect.{name}");
        for req in ["source", "target", "rule"] {
            if !t.contains_key(req) {
                return Err(self.err(v.span(), &path, format!("missing key `{req}`")));
            }
        }
        let sel = |key: &str| -> Result<Selector> {
            let val = &t[key];
            let kpath = format!("{path}.{key}");
            let text = self.string(val, &kpath, "POPULATION[*].NAME, POPULATION[a:b].NAME or an object's name")?;
            Selector::parse(text).map_err(|msg| self.err(val.span(), &kpath, msg))
        };
        let (source, target) = (sel("source")?, sel("target")?);
        let rv = &t["rule"];
        let rule_name = self.string(rv, &format!("{path}.rule"), RULES)?;
        let mut c = Connect {
            name: name.to_string(),
            source,
            target,
            rule: Rule::AllToAll,
            autapses: false,
            delay: PerItem::Const(NETCON_FIELDS[NC_DELAY].default),
            weight: PerItem::Const(NETCON_FIELDS[NC_WEIGHT].default),
            line: self.line(v.span()),
        };
        let (mut prob, mut seed, mut pairs) = (None, None, None);
        for (k, val) in t {
            let key: &str = k.get_ref();
            let kpath = format!("{path}.{key}");
            match key {
                "source" | "target" | "rule" => {}
                "p" => prob = Some((self.number(val, &kpath, Allowed::UnitInterval)?, val.span())),
                "seed" => {
                    let x = self.number(val, &kpath, Allowed::NonNegative)?;
                    if x.fract() != 0.0 || x > 9007199254740992.0 {
                        return Err(self.err(val.span(), &kpath, "expected an integer from 0 to 2^53"));
                    }
                    seed = Some(x as u64);
                }
                "pairs" => {
                    let arr = val.get_ref().as_array().ok_or_else(|| self.err(val.span(), &kpath, "expected a list of [i, j] pairs"))?;
                    let mut list = Vec::with_capacity(arr.len());
                    for item in arr.iter() {
                        let pair = item.get_ref().as_array().filter(|a| a.len() == 2).ok_or_else(|| self.err(item.span(), &kpath, "expected [i, j]: a source and a target index"))?;
                        let ix = |x: &Val<'t>| -> Result<usize> {
                            let n = self.number(x, &kpath, Allowed::NonNegative)?;
                            if n.fract() != 0.0 {
                                return Err(self.err(x.span(), &kpath, format!("an index is an integer, found {n}")));
                            }
                            Ok(n as usize)
                        };
                        list.push((ix(&pair[0])?, ix(&pair[1])?));
                    }
                    pairs = Some(list);
                }
                "autapses" => {
                    c.autapses = val.get_ref().as_bool().ok_or_else(|| self.err(val.span(), &kpath, "expected true or false"))?;
                }
                "delay" => c.delay = self.per_item(val, &kpath, &["i", "j"], None, Allowed::NonNegative)?,
                "weight" => c.weight = self.per_item(val, &kpath, &["i", "j"], None, Allowed::Any)?,
                _ => {
                    return Err(self.unknown_key(
                        k,
                        &kpath,
                        &["source", "target", "rule", "p", "seed", "pairs", "autapses", "delay", "weight"],
                    ))
                }
            }
        }
        let rpath = format!("{path}.rule");
        let need = |what: &str| self.err(rv.span(), &rpath, format!("rule `{rule_name}` needs `{what}`"));
        c.rule = match rule_name {
            "all_to_all" => Rule::AllToAll,
            "one_to_one" => Rule::OneToOne,
            "probability" => {
                let (p, _) = prob.ok_or_else(|| need("p"))?;
                Rule::Probability { p, seed: seed.ok_or_else(|| need("seed"))? }
            }
            "pairs" => Rule::Pairs(pairs.ok_or_else(|| need("pairs"))?),
            other => return Err(self.err(rv.span(), &rpath, format!("unknown rule `{other}`; rules: {RULES}"))),
        };
        Ok(c)
    }

    fn line_of(&self, key: &str) -> usize {
        self.lines.get(key).copied().unwrap_or(1)
    }

    /// Names, connections and recordings refer to things that exist and fit together.
    fn check_references(&self, m: &mut Model) -> Result<()> {
        let mut seen: HashMap<&str, &str, FastHash> = HashMap::with_capacity_and_hasher(m.sections.len() + m.points.len() + m.cells.len() + m.netcons.len(), FastHash::default());
        let kinds = m.sections.iter().map(|s| (s.name.as_str(), "section"))
            .chain(m.points.iter().map(|s| (s.name.as_str(), "point")))
            .chain(m.cells.iter().map(|s| (s.name.as_str(), "cell")))
            .chain(m.netcons.iter().map(|s| (s.name.as_str(), "netcon")));
        for (name, kind) in kinds {
            let path = self.path(&format!("{kind}.{name}"));
            if GLOBAL_FIELDS.iter().any(|g| g.name == name) {
                return Err(self.err_at_line(self.line_of(&path), &path, format!("`{name}` is a global parameter name; choose another name")));
            }
            if let Some(first) = seen.insert(name, kind) {
                return Err(self.err_at_line(self.line_of(&path), &path, format!("the name `{name}` is already used by {first}.{name}; names are shared by all objects")));
            }
        }
        // Parents exist and form a tree.
        for s in &m.sections {
            let Some(p) = &s.parent else { continue };
            let path = self.path(&format!("section.{}.parent", s.name));
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
            if m.section_index(&p.at.section).is_none() {
                let path = self.path(&format!("point.{}.at", p.name));
                return Err(self.err_at_line(self.line_of(&path), &path, format!("no section named `{}`", p.at.section)));
            }
        }
        for n in &m.netcons {
            let src_path = self.path(&format!("netcon.{}.source", n.name));
            match m.object(&n.source) {
                Some(Object::Section(_)) | Some(Object::Cell(_)) => {}
                _ => {
                    return Err(self.err_at_line(self.line_of(&src_path), &src_path, format!("`{}` is not a section or an artificial cell", n.source)))
                }
            }
            let tgt_path = self.path(&format!("netcon.{}.target", n.name));
            match m.object(&n.target) {
                Some(Object::Point(pi)) if !m.points[pi].mech.def().receives => {
                    let targets: Vec<&str> = mech::MECHANISMS.iter().filter(|d| d.receives).map(|d| d.name).collect();
                    return Err(self.err_at_line(self.line_of(&tgt_path), &tgt_path, format!("`{}` is an {}, which receives no events; targets are {}", n.target, m.points[pi].mech.def().name, targets.join(", "))))
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
            let path = self.path(&format!("netcon.{nc}.threshold"));
            let Some(Object::NetCon(n)) = m.object(nc) else { unreachable!("a parsed netcon") };
            let source = &m.netcons[n].source;
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
        for p in &m.plays {
            let tpath = format!("play.{}.target", p.name);
            let (_, field) = m.play_target(&p.target).map_err(|e| self.err_at_line(self.line_of(&tpath), &tpath, e.to_string()))?;
            for &x in &p.values {
                field.allowed.check(x).map_err(|a| {
                    let vpath = format!("play.{}.values", p.name);
                    self.err_at_line(self.line_of(&vpath), &vpath, format!("{} takes {a}, found {x}", p.target))
                })?;
            }
        }
        for s in &m.record {
            let path = format!("record.signals.{s}");
            signal::resolve(m, s).map_err(|e| self.err_at_line(self.line_of(&path), "record.signals", e.to_string()))?;
        }
        Ok(())
    }
}

/// An identifier, or identifiers each with an optional `[index]`, joined by dots: the names
/// population copies get (`p[3].soma`).
pub fn is_object_name(s: &str) -> bool {
    s.split('.').all(|part| match part.split_once('[') {
        None => is_identifier(part),
        Some((head, rest)) => {
            is_identifier(head)
                && rest.strip_suffix(']').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        }
    })
}

pub fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic()) && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

/// `soma(0.5)` to a location; None when malformed or x outside [0, 1].
pub fn parse_loc(text: &str) -> Option<Loc> {
    let (sec, rest) = text.trim().split_once('(')?;
    let x: f64 = rest.strip_suffix(')')?.trim().parse().ok()?;
    if !is_object_name(sec.trim()) || !(0.0..=1.0).contains(&x) {
        return None;
    }
    Some(Loc { section: sec.trim().to_string(), x })
}

/// "unknown type `X`; allowed: ...", and what to use instead when X is one of NEURON's
/// built-ins that spikebus does not have (or one of another kind: a point process where an
/// artificial cell is expected).
fn unknown_mech(what: &str, name: &str, allowed: &str) -> String {
    let mut text = format!("unknown {what} `{name}`; allowed: {allowed}");
    let other = mech::MECHANISMS.iter().find(|m| m.name == name).map(|m| m.kind);
    if let Some(hint) = mech::instead_of(name) {
        text += &format!(" (NEURON's `{name}`: {hint})");
    } else if let Some(kind) = other {
        let table = match kind {
            mech::MechKind::Density | mech::MechKind::Ion => "`insert` of a [section.NAME]",
            mech::MechKind::Point => "a [point.NAME] table",
            mech::MechKind::Artificial => "a [cell.NAME] table",
        };
        text += &format!(" (`{name}` belongs in {table})");
    }
    text
}
