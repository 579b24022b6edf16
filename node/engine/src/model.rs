//! The model description: what is simulated, separate from how (`sim`). A `Model` comes from a
//! TOML file (`parse`) or is the built-in seed model; `--set` edits it through `Model::set`
//! before a simulation is built, and a running `Sim` keeps its `Model` as the one source of
//! truth for parameter values.

use crate::error::{Error, Result};

/// The built-in default model, the same file the repository ships as `models/seed.toml`.
pub const SEED_TOML: &str = include_str!("../../../models/seed.toml");

/// Global run settings (`[run]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub dt: f64,
    pub tstop: f64,
    pub v_init: f64,
    pub celsius: f64,
    pub usetable_hh: bool,
    /// Word 0 of the key of every Random123 stream (NEURON's `Random123_globalindex`).
    pub random123_globalindex: u32,
}

impl Default for RunSettings {
    fn default() -> Self {
        // NEURON's defaults.
        RunSettings { dt: 0.025, tstop: 5.0, v_init: -65.0, celsius: 6.3, usetable_hh: true, random123_globalindex: 0 }
    }
}

/// hh parameters of a section (NEURON's `gnabar_hh` ..., and the ion reversal potentials).
#[derive(Debug, Clone, PartialEq)]
pub struct HhParams {
    pub gnabar: f64,
    pub gkbar: f64,
    pub gl: f64,
    pub el: f64,
    pub ena: f64,
    pub ek: f64,
}

impl Default for HhParams {
    fn default() -> Self {
        HhParams { gnabar: 0.12, gkbar: 0.036, gl: 0.0003, el: -54.3, ena: 50.0, ek: -77.0 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PasParams {
    pub g: f64,
    pub e: f64,
}

impl Default for PasParams {
    fn default() -> Self {
        PasParams { g: 0.001, e: -70.0 }
    }
}

/// A location on a section: `soma(0.5)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loc {
    pub section: String,
    pub x: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SectionSpec {
    pub name: String,
    pub l: f64,
    pub diam: f64,
    pub nseg: u32,
    pub cm: f64,
    pub ra: f64,
    /// This section's 0 end attaches to `parent` (NEURON's `connect child(0), parent(x)`).
    pub parent: Option<Loc>,
    pub hh: Option<HhParams>,
    pub pas: Option<PasParams>,
    /// Threshold of the spike detector at the section's middle, mV.
    pub threshold: f64,
}

impl SectionSpec {
    pub fn new(name: &str) -> Self {
        SectionSpec {
            name: name.to_string(),
            l: 100.0,
            diam: 500.0,
            nseg: 1,
            cm: 1.0,
            ra: 35.4,
            parent: None,
            hh: None,
            pas: None,
            threshold: 10.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum PointKind {
    ExpSyn { tau: f64, e: f64 },
    Exp2Syn { tau1: f64, tau2: f64, e: f64 },
    IClamp { del: f64, dur: f64, amp: f64 },
}

impl PointKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            PointKind::ExpSyn { .. } => "ExpSyn",
            PointKind::Exp2Syn { .. } => "Exp2Syn",
            PointKind::IClamp { .. } => "IClamp",
        }
    }

    /// NEURON's defaults for a point process of type `name`.
    pub fn default_for(name: &str) -> Option<Self> {
        match name {
            "ExpSyn" => Some(PointKind::ExpSyn { tau: 0.1, e: 0.0 }),
            "Exp2Syn" => Some(PointKind::Exp2Syn { tau1: 0.1, tau2: 10.0, e: 0.0 }),
            "IClamp" => Some(PointKind::IClamp { del: 0.0, dur: 0.0, amp: 0.0 }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointSpec {
    pub name: String,
    pub at: Loc,
    pub kind: PointKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CellKind {
    /// `id1`, `id2`, `id3` identify the Random123 stream of its noise (NEURON's `ranvar`).
    NetStim { interval: f64, number: f64, start: f64, noise: f64, id1: f64, id2: f64, id3: f64 },
    VecStim { times: Vec<f64> },
}

impl CellKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            CellKind::NetStim { .. } => "NetStim",
            CellKind::VecStim { .. } => "VecStim",
        }
    }

    /// NEURON's defaults for an artificial cell of type `name`, with `netstims_before`
    /// NetStims before it in the model. NEURON gives each new RANDOM stream the ids
    /// (1, MPI rank, n), n counting the streams created in the process (`nrnran123_newstream()`),
    /// so a model's NetStims, created in file order in one process, get id3 = 1, 2, 3 and so on.
    pub fn default_for(name: &str, netstims_before: usize) -> Option<Self> {
        match name {
            "NetStim" => Some(CellKind::NetStim {
                interval: 10.0,
                number: 10.0,
                start: 50.0,
                noise: 0.0,
                id1: 1.0,
                id2: 0.0,
                id3: (netstims_before + 1) as f64,
            }),
            "VecStim" => Some(CellKind::VecStim { times: Vec::new() }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CellSpec {
    pub name: String,
    pub kind: CellKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetConSpec {
    pub name: String,
    /// An artificial cell or a section (its spike detector).
    pub source: String,
    /// A synapse (ExpSyn, Exp2Syn) or an artificial cell (NetStim, VecStim).
    pub target: String,
    pub delay: f64,
    pub weight: f64,
}

/// A whole model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Where the model came from, for messages: a file path or `<seed>`.
    pub origin: String,
    pub run: RunSettings,
    pub sections: Vec<SectionSpec>,
    pub points: Vec<PointSpec>,
    pub cells: Vec<CellSpec>,
    pub netcons: Vec<NetConSpec>,
    /// Signals recorded into traces, in order.
    pub record: Vec<String>,
    /// `[record] dt`: record at t = 0, Dt, 2 Dt, ... as NEURON's `Vector.record(&x, Dt)`
    /// (none: at t = 0 and after every step). The engine only carries it; the app samples.
    pub record_dt: Option<f64>,
    /// Name lookups, built on first use (see `object`).
    pub index: NameIndex,
}

/// A cache from object names to objects. Lookups are checked against the vectors, so a
/// model edited after the cache was built is still answered correctly (by a scan).
#[derive(Default)]
pub struct NameIndex(std::sync::OnceLock<std::collections::HashMap<String, Object>>);

impl Clone for NameIndex {
    fn clone(&self) -> Self {
        NameIndex::default()
    }
}

impl PartialEq for NameIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for NameIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameIndex")
    }
}

/// What kind of object a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Section(usize),
    Point(usize),
    Cell(usize),
    NetCon(usize),
}

/// What a numeric parameter allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    Any,
    Positive,
    NonNegative,
    UnitInterval,
    /// An integer >= 1.
    Count,
    /// 0 or 1.
    Flag,
    /// An integer in 0..=2^32 - 1 (a Random123 stream identifier).
    Uint32,
}

impl Allowed {
    pub fn check(self, v: f64) -> std::result::Result<(), &'static str> {
        if !v.is_finite() {
            return Err("a finite number");
        }
        let ok = match self {
            Allowed::Any => true,
            Allowed::Positive => v > 0.0,
            Allowed::NonNegative => v >= 0.0,
            Allowed::UnitInterval => (0.0..=1.0).contains(&v),
            Allowed::Count => v >= 1.0 && v.fract() == 0.0 && v <= 32767.0,
            Allowed::Flag => v == 0.0 || v == 1.0,
            Allowed::Uint32 => v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX),
        };
        if ok {
            Ok(())
        } else {
            Err(self.describe())
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Allowed::Any => "a finite number",
            Allowed::Positive => "a finite number > 0",
            Allowed::NonNegative => "a finite number >= 0",
            Allowed::UnitInterval => "a number from 0 to 1",
            Allowed::Count => "an integer from 1 to 32767",
            Allowed::Flag => "0 or 1",
            Allowed::Uint32 => "an integer from 0 to 4294967295",
        }
    }
}

/// Description of one settable parameter: name, unit, range, whether a running simulation
/// accepts it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub unit: &'static str,
    pub allowed: Allowed,
    /// False for structural parameters (nseg), which only a model file or `--set` can change.
    pub runtime: bool,
    pub value: f64,
}

/// The fields of each object kind: (field, unit, allowed, writable at run time).
type FieldTable = &'static [(&'static str, &'static str, Allowed, bool)];

pub const GLOBAL_FIELDS: FieldTable = &[
    ("dt", "ms", Allowed::Positive, true),
    ("tstop", "ms", Allowed::NonNegative, true),
    ("v_init", "mV", Allowed::Any, true),
    ("celsius", "degC", Allowed::Any, true),
    ("usetable_hh", "1", Allowed::Flag, true),
    ("Random123_globalindex", "1", Allowed::Uint32, true),
];
const SECTION_FIELDS: FieldTable = &[
    ("L", "um", Allowed::Positive, true),
    ("diam", "um", Allowed::Positive, true),
    ("nseg", "1", Allowed::Count, false),
    ("cm", "uF/cm2", Allowed::NonNegative, true),
    ("Ra", "ohm cm", Allowed::Positive, true),
    ("threshold", "mV", Allowed::Any, true),
];
const HH_FIELDS: FieldTable = &[
    ("gnabar_hh", "S/cm2", Allowed::NonNegative, true),
    ("gkbar_hh", "S/cm2", Allowed::NonNegative, true),
    ("gl_hh", "S/cm2", Allowed::NonNegative, true),
    ("el_hh", "mV", Allowed::Any, true),
    ("ena", "mV", Allowed::Any, true),
    ("ek", "mV", Allowed::Any, true),
];
const PAS_FIELDS: FieldTable = &[
    ("g_pas", "S/cm2", Allowed::NonNegative, true),
    ("e_pas", "mV", Allowed::Any, true),
];
const EXPSYN_FIELDS: FieldTable =
    &[("tau", "ms", Allowed::Positive, true), ("e", "mV", Allowed::Any, true)];
const EXP2SYN_FIELDS: FieldTable = &[
    ("tau1", "ms", Allowed::Positive, true),
    ("tau2", "ms", Allowed::Positive, true),
    ("e", "mV", Allowed::Any, true),
];
const ICLAMP_FIELDS: FieldTable = &[
    ("del", "ms", Allowed::Any, true),
    ("dur", "ms", Allowed::NonNegative, true),
    ("amp", "nA", Allowed::Any, true),
];
const NETSTIM_FIELDS: FieldTable = &[
    ("interval", "ms", Allowed::Positive, true),
    ("number", "1", Allowed::NonNegative, true),
    ("start", "ms", Allowed::Any, true),
    ("noise", "1", Allowed::UnitInterval, true),
    ("id1", "1", Allowed::Uint32, true),
    ("id2", "1", Allowed::Uint32, true),
    ("id3", "1", Allowed::Uint32, true),
];
const NETCON_FIELDS: FieldTable = &[("delay", "ms", Allowed::NonNegative, true), ("weight", "uS", Allowed::Any, true)];
/// Only a NetCon whose source is a section has a threshold (its source's).
const NETCON_THRESHOLD: FieldTable = &[("threshold", "mV", Allowed::Any, true)];

/// The field table of an object, for lookups and for listing parameters.
fn fields_of(model: &Model, obj: Object) -> Vec<FieldTable> {
    match obj {
        Object::Section(i) => {
            let s = &model.sections[i];
            let mut v = vec![SECTION_FIELDS];
            if s.hh.is_some() {
                v.push(HH_FIELDS);
            }
            if s.pas.is_some() {
                v.push(PAS_FIELDS);
            }
            v
        }
        Object::Point(i) => vec![match model.points[i].kind {
            PointKind::ExpSyn { .. } => EXPSYN_FIELDS,
            PointKind::Exp2Syn { .. } => EXP2SYN_FIELDS,
            PointKind::IClamp { .. } => ICLAMP_FIELDS,
        }],
        Object::Cell(i) => match model.cells[i].kind {
            CellKind::NetStim { .. } => vec![NETSTIM_FIELDS],
            CellKind::VecStim { .. } => vec![],
        },
        Object::NetCon(i) => match model.object(&model.netcons[i].source) {
            Some(Object::Section(_)) => vec![NETCON_FIELDS, NETCON_THRESHOLD],
            _ => vec![NETCON_FIELDS],
        },
    }
}

/// A resolved parameter: which object and which field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRef {
    Global(&'static str),
    Field(Object, &'static str),
}

/// The place of a numeric field, written once for both `&` and `&mut` access.
macro_rules! field_slot {
    ($model:ident, $obj:ident, $f:ident $(, $m:tt)?) => {
        match $obj {
            Object::Section(i) => {
                let s = & $($m)? $model.sections[i];
                match $f {
                    "L" => & $($m)? s.l,
                    "diam" => & $($m)? s.diam,
                    "cm" => & $($m)? s.cm,
                    "Ra" => & $($m)? s.ra,
                    "threshold" => & $($m)? s.threshold,
                    "gnabar_hh" | "gkbar_hh" | "gl_hh" | "el_hh" | "ena" | "ek" => {
                        let Some(hh) = & $($m)? s.hh else { unreachable!("hh field of a section without hh") };
                        match $f {
                            "gnabar_hh" => & $($m)? hh.gnabar,
                            "gkbar_hh" => & $($m)? hh.gkbar,
                            "gl_hh" => & $($m)? hh.gl,
                            "el_hh" => & $($m)? hh.el,
                            "ena" => & $($m)? hh.ena,
                            _ => & $($m)? hh.ek,
                        }
                    }
                    "g_pas" | "e_pas" => {
                        let Some(pas) = & $($m)? s.pas else { unreachable!("pas field of a section without pas") };
                        if $f == "g_pas" { & $($m)? pas.g } else { & $($m)? pas.e }
                    }
                    _ => unreachable!("section field {}", $f),
                }
            }
            Object::Point(i) => match & $($m)? $model.points[i].kind {
                PointKind::ExpSyn { tau, e } => if $f == "tau" { tau } else { e },
                PointKind::Exp2Syn { tau1, tau2, e } => match $f {
                    "tau1" => tau1,
                    "tau2" => tau2,
                    _ => e,
                },
                PointKind::IClamp { del, dur, amp } => match $f {
                    "del" => del,
                    "dur" => dur,
                    _ => amp,
                },
            },
            Object::Cell(i) => match & $($m)? $model.cells[i].kind {
                CellKind::NetStim { interval, number, start, noise, id1, id2, id3 } => match $f {
                    "interval" => interval,
                    "number" => number,
                    "start" => start,
                    "noise" => noise,
                    "id1" => id1,
                    "id2" => id2,
                    _ => id3,
                },
                CellKind::VecStim { .. } => unreachable!("VecStim has no numeric fields"),
            },
            Object::NetCon(i) => {
                let n = & $($m)? $model.netcons[i];
                match $f {
                    "delay" => & $($m)? n.delay,
                    "weight" => & $($m)? n.weight,
                    _ => unreachable!("netcon field {}", $f),
                }
            }
        }
    };
}

impl Model {
    /// The built-in seed model.
    pub fn seed() -> Self {
        crate::parse::parse_model(SEED_TOML, "<seed>").expect("the embedded seed model is valid")
    }

    /// Finds an object by name.
    pub fn object(&self, name: &str) -> Option<Object> {
        let index = self.index.0.get_or_init(|| {
            let mut m = std::collections::HashMap::new();
            for obj in self.all_objects() {
                m.entry(self.object_name(obj).to_string()).or_insert(obj);
            }
            m
        });
        match index.get(name) {
            Some(&obj) if self.holds(obj, name) => Some(obj),
            _ => self.scan(name),
        }
    }

    /// The index of the section called `name`.
    pub fn section_index(&self, name: &str) -> Option<usize> {
        match self.object(name) {
            Some(Object::Section(i)) => Some(i),
            _ => None,
        }
    }

    fn holds(&self, obj: Object, name: &str) -> bool {
        match obj {
            Object::Section(i) => self.sections.get(i).is_some_and(|s| s.name == name),
            Object::Point(i) => self.points.get(i).is_some_and(|s| s.name == name),
            Object::Cell(i) => self.cells.get(i).is_some_and(|s| s.name == name),
            Object::NetCon(i) => self.netcons.get(i).is_some_and(|s| s.name == name),
        }
    }

    fn all_objects(&self) -> impl Iterator<Item = Object> {
        (0..self.sections.len())
            .map(Object::Section)
            .chain((0..self.points.len()).map(Object::Point))
            .chain((0..self.cells.len()).map(Object::Cell))
            .chain((0..self.netcons.len()).map(Object::NetCon))
    }

    fn scan(&self, name: &str) -> Option<Object> {
        if let Some(i) = self.sections.iter().position(|s| s.name == name) {
            return Some(Object::Section(i));
        }
        if let Some(i) = self.points.iter().position(|s| s.name == name) {
            return Some(Object::Point(i));
        }
        if let Some(i) = self.cells.iter().position(|s| s.name == name) {
            return Some(Object::Cell(i));
        }
        self.netcons.iter().position(|s| s.name == name).map(Object::NetCon)
    }

    pub fn object_name(&self, obj: Object) -> &str {
        match obj {
            Object::Section(i) => &self.sections[i].name,
            Object::Point(i) => &self.points[i].name,
            Object::Cell(i) => &self.cells[i].name,
            Object::NetCon(i) => &self.netcons[i].name,
        }
    }

    /// Resolves a parameter name (`dt`, `soma.gnabar_hh`, `nc.weight`) with its metadata.
    pub fn resolve(&self, name: &str) -> Result<(ParamRef, &'static str, Allowed, bool)> {
        if let Some(&(f, unit, allowed, rt)) = GLOBAL_FIELDS.iter().find(|e| e.0 == name) {
            return Ok((ParamRef::Global(f), unit, allowed, rt));
        }
        let unknown = |hint: String| Error::UnknownName { what: "parameter", name: name.to_string(), hint };
        let Some((obj_name, field)) = name.split_once('.') else {
            let globals: Vec<&str> = GLOBAL_FIELDS.iter().map(|e| e.0).collect();
            return Err(unknown(format!(
                "a parameter is a global ({}) or OBJECT.FIELD such as soma.gnabar_hh",
                globals.join(", ")
            )));
        };
        let obj = self.object(obj_name).ok_or_else(|| {
            unknown(format!("there is no object `{obj_name}`; objects are {}", self.object_names().join(", ")))
        })?;
        for table in fields_of(self, obj) {
            if let Some(&(f, unit, allowed, rt)) = table.iter().find(|e| e.0 == field) {
                return Ok((ParamRef::Field(obj, f), unit, allowed, rt));
            }
        }
        let fields: Vec<&str> = fields_of(self, obj).iter().flat_map(|t| t.iter().map(|e| e.0)).collect();
        Err(unknown(if fields.is_empty() {
            format!("`{obj_name}` has no parameters")
        } else {
            format!("`{obj_name}` has {}", fields.join(", "))
        }))
    }

    pub fn object_names(&self) -> Vec<&str> {
        let s = self.sections.iter().map(|s| s.name.as_str());
        let p = self.points.iter().map(|s| s.name.as_str());
        let c = self.cells.iter().map(|s| s.name.as_str());
        let n = self.netcons.iter().map(|s| s.name.as_str());
        s.chain(p).chain(c).chain(n).collect()
    }

    /// Reads a parameter by name.
    pub fn get(&self, name: &str) -> Result<f64> {
        let (r, ..) = self.resolve(name)?;
        Ok(self.get_ref(r))
    }

    pub fn get_ref(&self, r: ParamRef) -> f64 {
        match r {
            ParamRef::Global(f) => match f {
                "dt" => self.run.dt,
                "tstop" => self.run.tstop,
                "v_init" => self.run.v_init,
                "celsius" => self.run.celsius,
                "usetable_hh" => f64::from(u8::from(self.run.usetable_hh)),
                "Random123_globalindex" => f64::from(self.run.random123_globalindex),
                _ => unreachable!("global field {f}"),
            },
            ParamRef::Field(obj, f) => self.value_of(obj, f),
        }
    }

    /// Sets a parameter by name, checking its range; on error nothing changes.
    pub fn set(&mut self, name: &str, value: f64) -> Result<ParamRef> {
        let (r, _) = self.check(name, value)?;
        self.set_ref(r, value);
        Ok(r)
    }

    /// Resolves a parameter and checks a value against its range, changing nothing; also says
    /// whether a running simulation accepts it.
    pub fn check(&self, name: &str, value: f64) -> Result<(ParamRef, bool)> {
        let (r, _, allowed, runtime) = self.resolve(name)?;
        allowed.check(value).map_err(|a| Error::InvalidValue {
            name: name.to_string(),
            value,
            allowed: a.to_string(),
        })?;
        Ok((r, runtime))
    }

    /// Stores an already checked value.
    pub(crate) fn set_ref(&mut self, r: ParamRef, value: f64) {
        match r {
            ParamRef::Global(f) => match f {
                "dt" => self.run.dt = value,
                "tstop" => self.run.tstop = value,
                "v_init" => self.run.v_init = value,
                "celsius" => self.run.celsius = value,
                "usetable_hh" => self.run.usetable_hh = value != 0.0,
                "Random123_globalindex" => self.run.random123_globalindex = value as u32,
                _ => unreachable!("global field {f}"),
            },
            ParamRef::Field(Object::Section(i), "nseg") => self.sections[i].nseg = value as u32,
            ParamRef::Field(Object::NetCon(i), "threshold") => {
                // NEURON: a threshold belongs to the source, shared by all its NetCons.
                let Some(Object::Section(s)) = self.object(&self.netcons[i].source) else {
                    unreachable!("resolve offers threshold only for section sources")
                };
                self.sections[s].threshold = value;
            }
            ParamRef::Field(obj, f) => *self.field_slot(obj, f) = value,
        }
    }

    fn field_slot_ro(&self, obj: Object, f: &str) -> &f64 {
        field_slot!(self, obj, f)
    }

    fn field_slot(&mut self, obj: Object, f: &str) -> &mut f64 {
        field_slot!(self, obj, f, mut)
    }

    /// Every parameter with its metadata and current value, in model order.
    pub fn params(&self) -> Vec<ParamInfo> {
        let mut out: Vec<ParamInfo> = GLOBAL_FIELDS
            .iter()
            .map(|&(f, unit, allowed, runtime)| ParamInfo {
                name: f.to_string(),
                unit,
                allowed,
                runtime,
                value: self.get_ref(ParamRef::Global(f)),
            })
            .collect();
        for obj in self.all_objects() {
            for table in fields_of(self, obj) {
                for &(f, unit, allowed, runtime) in table {
                    let name = format!("{}.{f}", self.object_name(obj));
                    let value = self.value_of(obj, f);
                    out.push(ParamInfo { name, unit, allowed, runtime, value });
                }
            }
        }
        out
    }

    fn value_of(&self, obj: Object, f: &str) -> f64 {
        match (obj, f) {
            (Object::Section(i), "nseg") => f64::from(self.sections[i].nseg),
            (Object::NetCon(i), "threshold") => self.netcon_threshold(i),
            _ => *self.field_slot_ro(obj, f),
        }
    }

    /// A NetCon's threshold is its source section's.
    fn netcon_threshold(&self, i: usize) -> f64 {
        match self.object(&self.netcons[i].source) {
            Some(Object::Section(s)) => self.sections[s].threshold,
            _ => unreachable!("resolve offers threshold only for section sources"),
        }
    }
}
