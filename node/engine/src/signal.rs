//! Signal names: the state variables and currents that can be recorded or watched, such as
//! `soma.v`, `dend(0.1).v`, `soma.m_hh`, `syn.g`. Resolved against a `Model` here (so a model
//! file can name a bad signal with its line) and against a `Sim`'s arrays in `sim`.

use crate::error::{Error, Result};
use crate::model::{Model, Object, PointKind};

/// A variable that lives on a node of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeVar {
    V,
    MHh,
    HHh,
    NHh,
    Ina,
    Ik,
    IlHh,
    GnaHh,
    GkHh,
    IPas,
}

const NODE_VARS: &[(&str, NodeVar)] = &[
    ("v", NodeVar::V),
    ("m_hh", NodeVar::MHh),
    ("h_hh", NodeVar::HHh),
    ("n_hh", NodeVar::NHh),
    ("ina", NodeVar::Ina),
    ("ik", NodeVar::Ik),
    ("il_hh", NodeVar::IlHh),
    ("gna_hh", NodeVar::GnaHh),
    ("gk_hh", NodeVar::GkHh),
    ("i_pas", NodeVar::IPas),
];

/// A variable of a point process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointVar {
    G,
    I,
    A,
    B,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SignalSpec {
    /// `x` is where on the section (0.5 when the name has no location).
    Node { section: usize, x: f64, var: NodeVar },
    Point { point: usize, var: PointVar },
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
            let &(_, nv) = NODE_VARS.iter().find(|(n, _)| *n == var).ok_or_else(|| {
                unknown(format!(
                    "section variables are {}",
                    NODE_VARS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let needs = match nv {
                NodeVar::V => None,
                NodeVar::IPas => Some(("pas", s.pas.is_some())),
                _ => Some(("hh", s.hh.is_some())),
            };
            let x = x.unwrap_or(0.5);
            if let Some((mech, present)) = needs {
                if !present {
                    return Err(unknown(format!("section `{obj_name}` has no {mech} (insert it)")));
                }
                if x <= 0.0 || x >= 1.0 {
                    return Err(unknown(format!("{mech} lives inside the section: use 0 < x < 1")));
                }
            }
            Ok(SignalSpec::Node { section: si, x, var: nv })
        }
        Some(Object::Point(pi)) => {
            if x.is_some() {
                return Err(unknown(format!("`{obj_name}` is a point process: name it without (x)")));
            }
            let kind = &m.points[pi].kind;
            let (vars, allowed): (&[(&str, PointVar)], &str) = match kind {
                PointKind::ExpSyn { .. } => (&[("g", PointVar::G), ("i", PointVar::I)], "g, i"),
                PointKind::Exp2Syn { .. } => (
                    &[("g", PointVar::G), ("i", PointVar::I), ("A", PointVar::A), ("B", PointVar::B)],
                    "g, i, A, B",
                ),
                PointKind::IClamp { .. } => (&[("i", PointVar::I)], "i"),
            };
            let &(_, pv) = vars
                .iter()
                .find(|(n, _)| *n == var)
                .ok_or_else(|| unknown(format!("{} `{obj_name}` has {allowed}", kind.type_name())))?;
            Ok(SignalSpec::Point { point: pi, var: pv })
        }
        Some(Object::Cell(_)) | Some(Object::NetCon(_)) => Err(unknown(format!(
            "`{obj_name}` has no recordable variables (its spikes are in spikes.csv)"
        ))),
        None => Err(unknown(format!("there is no section or point process `{obj_name}`"))),
    }
}

/// Every recordable signal of a model, by its plain name (sections at their middle).
pub fn names(m: &Model) -> Vec<String> {
    let mut out = vec![];
    for s in &m.sections {
        for (var, nv) in NODE_VARS {
            let present = match nv {
                NodeVar::V => true,
                NodeVar::IPas => s.pas.is_some(),
                _ => s.hh.is_some(),
            };
            if present {
                out.push(format!("{}.{var}", s.name));
            }
        }
    }
    for p in &m.points {
        let vars: &[&str] = match p.kind {
            PointKind::ExpSyn { .. } => &["g", "i"],
            PointKind::Exp2Syn { .. } => &["g", "i", "A", "B"],
            PointKind::IClamp { .. } => &["i"],
        };
        out.extend(vars.iter().map(|v| format!("{}.{v}", p.name)));
    }
    out
}
