//! Populations in model files: a `[template.NAME]` describes one cell (its sections, point
//! processes, artificial cells and internal NetCons, with names of its own); a
//! `[population.NAME]` makes `count` copies of it, named `NAME[i].LOCAL`, with per-copy
//! parameters (a number, an expression in `i` and `n`, or a list); a `[connect.NAME]` makes
//! NetCons `NAME[k]` from a set of sources to a set of targets by a rule (all to all, one to
//! one, a fixed probability with a seed, or explicit pairs), with delays and weights that may
//! depend on the source and target indices `i` and `j`.
//!
//! The copies are ordinary objects of the model, appended after the model's own in a fixed
//! order (docs/model-format.md): populations in file order, copies in index order, each
//! copy's objects in template order; then the connections, rule by rule. That order is
//! NEURON's creation order for a script that builds the same network in the same order, so
//! it decides the same orderings (spike detection, NetStim stream numbers).

use crate::error::{Error, Result};
use crate::expr::Expr;
use crate::mech::netstim;
use crate::model::{Field, Model, NameIndex, NetConSpec, Object, ParamRef};

/// The most copies in one population.
pub const MAX_COPIES: usize = 10_000_000;
/// The connection rules, for messages.
pub const RULES: &str = "all_to_all, one_to_one, probability, pairs";

/// A value per copy (variables i, n) or per connection (i, j).
#[derive(Debug, Clone, PartialEq)]
pub enum PerItem {
    Const(f64),
    Expr(Expr),
    /// One value per copy.
    List(Vec<f64>),
}

impl PerItem {
    fn at(&self, k: usize, vars: &[f64]) -> f64 {
        match self {
            PerItem::Const(x) => *x,
            PerItem::Expr(e) => e.eval(vars),
            PerItem::List(v) => v[k],
        }
    }
}

#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    /// The template's objects under their own names, checked like a model.
    pub model: Model,
    /// Per artificial cell: whether its NetStim stream id3 is NEURON's default (then each
    /// copy's id3 counts the model's NetStims, as NEURON numbers the streams it creates).
    pub default_id3: Vec<bool>,
    pub line: usize,
}

/// `set` of a population: one parameter of the template, per copy.
#[derive(Debug, Clone)]
pub struct PerCopySet {
    pub path: String,
    pub line: usize,
    /// The parameter in the template's model.
    pub param: ParamRef,
    pub field: &'static Field,
    pub value: PerItem,
}

#[derive(Debug, Clone)]
pub struct Population {
    pub name: String,
    pub template: usize,
    pub count: usize,
    pub sets: Vec<PerCopySet>,
    pub line: usize,
}

/// Which objects a connection rule uses: `POP[*].LOCAL`, `POP[a:b].LOCAL` (copies a to b - 1),
/// `POP[k].LOCAL`, or one object of the model by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// The population and the copies (None: all of them).
    pub pop: Option<(String, Option<(usize, usize)>)>,
    /// The object in the template, or the model object's name.
    pub local: String,
}

impl Selector {
    pub fn parse(text: &str) -> std::result::Result<Selector, String> {
        let bad = || format!("`{text}` is not POPULATION[*].NAME, POPULATION[a:b].NAME, POPULATION[k].NAME or an object's name");
        let Some((pop, rest)) = text.split_once('[') else {
            if !crate::parse::is_object_name(text) {
                return Err(bad());
            }
            return Ok(Selector { pop: None, local: text.to_string() });
        };
        let (inside, local) = rest.split_once("].").ok_or_else(bad)?;
        if !crate::parse::is_identifier(pop) || !crate::parse::is_object_name(local) {
            return Err(bad());
        }
        let index = |s: &str| s.trim().parse::<usize>().map_err(|_| bad());
        let range = match inside.trim() {
            "*" => None,
            r => match r.split_once(':') {
                Some((a, b)) => Some((index(a)?, index(b)?)),
                None => {
                    let k = index(r)?;
                    Some((k, k + 1))
                }
            },
        };
        Ok(Selector { pop: Some((pop.to_string(), range)), local: local.to_string() })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    AllToAll,
    OneToOne,
    /// Each (source, target) pair independently with probability p, from a stream of random
    /// numbers per source determined by `seed` (see `targets_by_probability`).
    Probability { p: f64, seed: u64 },
    /// (source index, target index) pairs, indices into the selections.
    Pairs(Vec<(usize, usize)>),
}

#[derive(Debug, Clone)]
pub struct Connect {
    pub name: String,
    pub source: Selector,
    pub target: Selector,
    pub rule: Rule,
    /// Whether a copy may connect to itself (same population, same index).
    pub autapses: bool,
    pub delay: PerItem,
    pub weight: PerItem,
    pub line: usize,
}

/// Everything of a model file that expands into copies.
#[derive(Debug, Clone, Default)]
pub struct Populations {
    pub templates: Vec<Template>,
    pub populations: Vec<Population>,
    pub connects: Vec<Connect>,
}

/// A selection resolved: the names of its objects and each one's copy index.
struct Resolved {
    names: Vec<String>,
    index: Vec<usize>,
    pop: Option<usize>,
}

impl Populations {
    /// Appends every copy and connection to `m`.
    pub fn expand(&self, m: &mut Model) -> Result<()> {
        if self.populations.is_empty() && self.connects.is_empty() {
            return Ok(());
        }
        let origin = m.origin.clone();
        let err = |line: usize, key: &str, msg: String| Error::Model { origin: origin.clone(), line, key: key.to_string(), msg };
        let mut netstims = m.cells.iter().filter(|c| c.mech == netstim::DEF.id()).count();
        for pop in &self.populations {
            let t = &self.templates[pop.template];
            let tm = &t.model;
            m.sections.reserve(pop.count * tm.sections.len());
            m.points.reserve(pop.count * tm.points.len());
            m.cells.reserve(pop.count * tm.cells.len());
            m.netcons.reserve(pop.count * tm.netcons.len());
            for i in 0..pop.count {
                let base = (m.sections.len(), m.points.len(), m.cells.len(), m.netcons.len());
                let name = |local: &str| format!("{}[{i}].{local}", pop.name);
                for s in &tm.sections {
                    let mut c = s.clone();
                    c.name = name(&s.name);
                    if let Some(p) = &mut c.parent {
                        p.section = name(&p.section);
                    }
                    m.sections.push(c);
                }
                for p in &tm.points {
                    let mut c = p.clone();
                    c.name = name(&p.name);
                    c.at.section = name(&p.at.section);
                    m.points.push(c);
                }
                for (k, cell) in tm.cells.iter().enumerate() {
                    let mut c = cell.clone();
                    c.name = name(&cell.name);
                    if c.mech == netstim::DEF.id() {
                        if t.default_id3[k] {
                            c.params[netstim::ID1 + 2] = (netstims + 1) as f64;
                        }
                        netstims += 1;
                    }
                    m.cells.push(c);
                }
                for n in &tm.netcons {
                    m.netcons.push(NetConSpec {
                        name: name(&n.name),
                        source: name(&n.source),
                        target: name(&n.target),
                        delay: n.delay,
                        weight: n.weight,
                    });
                }
                for set in &pop.sets {
                    let v = set.value.at(i, &[i as f64, pop.count as f64]);
                    set.field.allowed.check(v).map_err(|a| {
                        err(set.line, &set.path, format!("copy {i} ({}): {v} is not allowed: expected {a}", name("")))
                    })?;
                    m.set_ref(shift(set.param, base), v);
                }
            }
        }
        // Objects were added after any lookup: a fresh index.
        m.index = NameIndex::default();
        for c in &self.connects {
            let path = format!("connect.{}", c.name);
            let src = self.resolve(m, &c.source, true).map_err(|e| err(c.line, &format!("{path}.source"), e))?;
            let tgt = self.resolve(m, &c.target, false).map_err(|e| err(c.line, &format!("{path}.target"), e))?;
            let same_pop = src.pop.is_some() && src.pop == tgt.pop;
            let mut k = 0usize;
            let mut connect = |m: &mut Model, a: usize, b: usize| -> Result<()> {
                if same_pop && !c.autapses && src.index[a] == tgt.index[b] && c.rule != Rule::OneToOne {
                    return Ok(());
                }
                let vars = [src.index[a] as f64, tgt.index[b] as f64];
                let (delay, weight) = (c.delay.at(0, &vars), c.weight.at(0, &vars));
                let (i, j) = (src.index[a], tgt.index[b]);
                if !(delay.is_finite() && delay >= 0.0) {
                    return Err(err(c.line, &format!("{path}.delay"), format!("i = {i}, j = {j}: {delay} is not allowed: expected a finite number >= 0")));
                }
                if !weight.is_finite() {
                    return Err(err(c.line, &format!("{path}.weight"), format!("i = {i}, j = {j}: {weight} is not allowed: expected a finite number")));
                }
                m.netcons.push(NetConSpec {
                    name: format!("{}[{k}]", c.name),
                    source: src.names[a].clone(),
                    target: tgt.names[b].clone(),
                    delay,
                    weight,
                });
                k += 1;
                Ok(())
            };
            let (ns, nt) = (src.names.len(), tgt.names.len());
            match &c.rule {
                Rule::AllToAll => {
                    for a in 0..ns {
                        for b in 0..nt {
                            connect(m, a, b)?;
                        }
                    }
                }
                Rule::OneToOne => {
                    if ns != nt {
                        return Err(err(c.line, &format!("{path}.rule"), format!("one_to_one needs as many sources as targets: {ns} and {nt}")));
                    }
                    for a in 0..ns {
                        connect(m, a, a)?;
                    }
                }
                Rule::Probability { p, seed } => {
                    for a in 0..ns {
                        for b in targets_by_probability(*seed, a as u64, *p, nt) {
                            connect(m, a, b)?;
                        }
                    }
                }
                Rule::Pairs(pairs) => {
                    for &(a, b) in pairs {
                        if a >= ns || b >= nt {
                            return Err(err(c.line, &format!("{path}.pairs"), format!("[{a}, {b}]: the selections have {ns} sources and {nt} targets")));
                        }
                        connect(m, a, b)?;
                    }
                }
            }
        }
        m.index = NameIndex::default();
        Ok(())
    }

    /// The objects of a selection; sources are sections or artificial cells, targets point
    /// processes that receive events or artificial cells.
    fn resolve(&self, m: &Model, sel: &Selector, source: bool) -> std::result::Result<Resolved, String> {
        let fits = |obj: Option<Object>, model: &Model| match obj {
            Some(Object::Section(_)) => source,
            Some(Object::Point(p)) => !source && model.points[p].mech.def().receives,
            Some(Object::Cell(_)) => true,
            _ => false,
        };
        let what = if source { "a section or an artificial cell" } else { "a synapse or an artificial cell" };
        let Some((pop_name, range)) = &sel.pop else {
            if !fits(m.object(&sel.local), m) {
                return Err(format!("`{}` is not {what} of the model", sel.local));
            }
            return Ok(Resolved { names: vec![sel.local.clone()], index: vec![0], pop: None });
        };
        let pi = self.populations.iter().position(|p| &p.name == pop_name).ok_or_else(|| format!("no population `{pop_name}`"))?;
        let pop = &self.populations[pi];
        let tm = &self.templates[pop.template].model;
        if !fits(tm.object(&sel.local), tm) {
            return Err(format!("`{}` is not {what} of template `{}`", sel.local, self.templates[pop.template].name));
        }
        let (a, b) = range.unwrap_or((0, pop.count));
        if a > b || b > pop.count {
            return Err(format!("copies {a} to {} of `{pop_name}`, which has {}", b as i64 - 1, pop.count));
        }
        Ok(Resolved {
            names: (a..b).map(|i| format!("{pop_name}[{i}].{}", sel.local)).collect(),
            index: (a..b).collect(),
            pop: Some(pi),
        })
    }
}

/// A template's parameter moved to a copy whose objects start at `base` (sections, points,
/// artificial cells, NetCons).
fn shift(r: ParamRef, (s0, p0, c0, n0): (usize, usize, usize, usize)) -> ParamRef {
    match r {
        ParamRef::Global(f) => ParamRef::Global(f),
        ParamRef::Section { section, field } => ParamRef::Section { section: s0 + section, field },
        ParamRef::Mech { section, slot, field } => ParamRef::Mech { section: s0 + section, slot, field },
        ParamRef::SectionSeg { section, field, seg } => ParamRef::SectionSeg { section: s0 + section, field, seg },
        ParamRef::MechSeg { section, slot, field, seg } => ParamRef::MechSeg { section: s0 + section, slot, field, seg },
        ParamRef::Point { point, field } => ParamRef::Point { point: p0 + point, field },
        ParamRef::Cell { cell, field } => ParamRef::Cell { cell: c0 + cell, field },
        ParamRef::NetCon { netcon, field } => ParamRef::NetCon { netcon: n0 + netcon, field },
    }
}

/// SplitMix64 (Steele, Lea and Flood), one step.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The targets (indices below `n`) that source `i` connects to with probability `p`: a
/// SplitMix64 stream started at `seed ^ (i * 0x9E3779B97F4A7C15)`, each draw
/// `u = (next >> 11) * 2^-53`, each gap to the next target `floor(ln(1 - u) / ln(1 - p))`
/// (a geometric distribution: the same law as testing every pair, in time proportional to
/// the connections made).
pub fn targets_by_probability(seed: u64, i: u64, p: f64, n: usize) -> Vec<usize> {
    if p <= 0.0 || n == 0 {
        return vec![];
    }
    if p >= 1.0 {
        return (0..n).collect();
    }
    let mut state = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let denom = (1.0 - p).ln();
    let mut out = vec![];
    let mut j: i64 = -1;
    loop {
        let u = (splitmix64(&mut state) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let gap = ((1.0 - u).ln() / denom).floor();
        // NaN (never: u < 1) or beyond the targets: done.
        if gap.is_nan() || gap >= n as f64 {
            break;
        }
        j += gap as i64 + 1;
        if j >= n as i64 {
            break;
        }
        out.push(j as usize);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probability_rule_makes_the_expected_number_of_connections() {
        let (n, p) = (2000usize, 0.05);
        let total: usize = (0..200).map(|i| targets_by_probability(7, i, p, n).len()).sum();
        let expected = 200.0 * n as f64 * p;
        // 200 * 2000 Bernoulli(0.05) trials: standard deviation ~138.
        assert!((total as f64 - expected).abs() < 5.0 * 138.0, "{total} connections, expected about {expected}");
        let a = targets_by_probability(7, 3, p, n);
        assert_eq!(a, targets_by_probability(7, 3, p, n), "deterministic");
        assert_ne!(a, targets_by_probability(8, 3, p, n), "the seed matters");
        assert!(a.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
        assert_eq!(targets_by_probability(1, 0, 1.0, 5), vec![0, 1, 2, 3, 4]);
        assert!(targets_by_probability(1, 0, 0.0, 5).is_empty());
    }

    #[test]
    fn selectors() {
        let s = Selector::parse("p[*].soma").unwrap();
        assert_eq!(s.pop, Some(("p".into(), None)));
        assert_eq!(Selector::parse("p[2:5].syn").unwrap().pop, Some(("p".into(), Some((2, 5)))));
        assert_eq!(Selector::parse("p[7].syn").unwrap().pop, Some(("p".into(), Some((7, 8)))));
        assert_eq!(Selector::parse("ns").unwrap().pop, None);
        assert!(Selector::parse("p[x].soma").is_err());
        assert!(Selector::parse("p[1]").is_err());
    }
}
