//! Signal names: the state variables and currents that can be recorded or watched, such as
//! `soma.v`, `dend(0.1).v`, `soma.m_hh`, `syn.g`, `cell.m` (an artificial cell's state). Resolved against a `Model` here (so a model
//! file can name a bad signal with its line) and against a `Sim`'s arrays in `sim`.

use crate::error::{Error, Result};
use crate::mech::{MechId, MechKind, MECHANISMS};
use crate::model::{Model, Object};

/// A variable that lives on a node of a section: v, or a variable of an inserted mechanism
/// (the index in its `vars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeVar {
    V,
    Mech { mech: MechId, var: usize },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignalSpec {
    /// `x` is where on the section (0.5 when the name has no location).
    Node { section: usize, x: f64, var: NodeVar },
    /// A variable of a point process (the index in its mechanism's `vars`).
    Point { point: usize, var: usize },
    /// A variable of an artificial cell (the index in its mechanism's `vars`).
    Cell { cell: usize, var: usize },
}

/// Resolves a signal name against a model.
pub fn resolve(m: &Model, name: &str) -> Result<SignalSpec> {
    let unknown = |hint: String| Error::UnknownName { what: "signal", name: name.to_string(), hint };
    let (head, var) = name
        .rsplit_once('.')
        .ok_or_else(|| unknown("a signal is OBJECT.VAR or SECTION(x).VAR, e.g. soma.v".into()))?;
    let (obj_name, x) = match head.split_once('(') {
        Some(_) => {
            let loc = crate::parse::parse_loc(head)
                .ok_or_else(|| unknown(format!("`{head}` is not SECTION(x) with 0 <= x <= 1")))?;
            (loc.section, Some(loc.x))
        }
        None => (head.to_string(), None),
    };
    match m.object(&obj_name) {
        Some(Object::Section(si)) => {
            let s = &m.sections[si];
            let x = x.unwrap_or(0.5);
            if var == "v" {
                return Ok(SignalSpec::Node { section: si, x, var: NodeVar::V });
            }
            let found = s.mechs.iter().find_map(|ins| {
                let def = ins.mech.def();
                def.vars.iter().position(|v| *v == var).map(|i| (ins.mech, i))
            });
            let Some((mech, i)) = found else {
                let owner = MECHANISMS.iter().find(|d| d.kind == MechKind::Density && d.vars.contains(&var));
                return Err(unknown(match owner {
                    Some(d) => format!("section `{obj_name}` has no {} (insert it)", d.name),
                    None => format!("section variables are {}", section_vars(m, si).join(", ")),
                }));
            };
            if x <= 0.0 || x >= 1.0 {
                return Err(unknown(format!("{} lives inside the section: use 0 < x < 1", mech.def().name)));
            }
            Ok(SignalSpec::Node { section: si, x, var: NodeVar::Mech { mech, var: i } })
        }
        Some(Object::Point(pi)) => {
            if x.is_some() {
                return Err(unknown(format!("`{obj_name}` is a point process: name it without (x)")));
            }
            let def = m.points[pi].mech.def();
            let i = def
                .vars
                .iter()
                .position(|v| *v == var)
                .ok_or_else(|| unknown(format!("{} `{obj_name}` has {}", def.name, def.vars.join(", "))))?;
            Ok(SignalSpec::Point { point: pi, var: i })
        }
        Some(Object::Cell(ci)) => {
            if x.is_some() {
                return Err(unknown(format!("`{obj_name}` is an artificial cell: name it without (x)")));
            }
            let def = m.cells[ci].mech.def();
            if def.vars.is_empty() {
                return Err(unknown(format!("a {} has no recordable variables (its spikes are in spikes.csv)", def.name)));
            }
            let i = def
                .vars
                .iter()
                .position(|v| *v == var)
                .ok_or_else(|| unknown(format!("{} `{obj_name}` has {}", def.name, def.vars.join(", "))))?;
            Ok(SignalSpec::Cell { cell: ci, var: i })
        }
        Some(Object::NetCon(_)) => Err(unknown(format!(
            "`{obj_name}` has no recordable variables (its spikes are in spikes.csv)"
        ))),
        None => Err(unknown(format!("there is no section or point process `{obj_name}`"))),
    }
}

/// The variables of a section: v, then its mechanisms' in insertion order.
fn section_vars(m: &Model, si: usize) -> Vec<&'static str> {
    let mechs = m.sections[si].mechs.iter().flat_map(|ins| ins.mech.def().vars.iter().copied());
    std::iter::once("v").chain(mechs).collect()
}

/// Every recordable signal of a model, by its plain name (sections at their middle).
pub fn names(m: &Model) -> Vec<String> {
    let mut out = vec![];
    for (si, s) in m.sections.iter().enumerate() {
        out.extend(section_vars(m, si).iter().map(|var| format!("{}.{var}", s.name)));
    }
    for p in &m.points {
        out.extend(p.mech.def().vars.iter().map(|v| format!("{}.{v}", p.name)));
    }
    for c in &m.cells {
        out.extend(c.mech.def().vars.iter().map(|v| format!("{}.{v}", c.name)));
    }
    out
}
