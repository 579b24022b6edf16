//! The model description: what is simulated, separate from how (`sim`). A `Model` comes from a
//! TOML file (`parse`) or is the built-in seed model; `--set` edits it through `Model::set`
//! before a simulation is built, and a running `Sim` keeps its `Model` as the one source of
//! truth for parameter values.
//!
//! Mechanisms are described by their field tables (`mech::MechDef`): a section holds the
//! mechanisms inserted in it with one value per field, a point process or artificial cell its
//! type and values. Names, ranges, defaults and listings all come from those tables.

use crate::error::{Error, Result};
pub use crate::mech::{Allowed, Field, MechDef, MechId, MechKind};

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

impl RunSettings {
    /// Global `f` (an index in `GLOBAL_FIELDS`).
    pub fn get(&self, f: usize) -> f64 {
        [
            self.dt,
            self.tstop,
            self.v_init,
            self.celsius,
            f64::from(u8::from(self.usetable_hh)),
            f64::from(self.random123_globalindex),
        ][f]
    }

    /// Sets global `f` to an already checked value.
    pub fn set(&mut self, f: usize, value: f64) {
        match f {
            0 => self.dt = value,
            1 => self.tstop = value,
            2 => self.v_init = value,
            3 => self.celsius = value,
            4 => self.usetable_hh = value != 0.0,
            _ => self.random123_globalindex = value as u32,
        }
    }
}

/// The globals, in the order of `RunSettings`.
pub static GLOBAL_FIELDS: &[Field] = &[
    Field::new("dt", "ms", 0.025, Allowed::Positive),
    Field::new("tstop", "ms", 5.0, Allowed::NonNegative),
    Field::new("v_init", "mV", -65.0, Allowed::Any),
    Field::new("celsius", "degC", 6.3, Allowed::Any),
    Field::new("usetable_hh", "1", 1.0, Allowed::Flag),
    Field::new("Random123_globalindex", "1", 0.0, Allowed::Uint32),
];

/// A section's own fields (its mechanisms' follow).
pub static SECTION_FIELDS: &[Field] = &[
    Field::new("L", "um", 100.0, Allowed::Positive),
    Field::new("diam", "um", 500.0, Allowed::Positive),
    Field { name: "nseg", unit: "1", default: 1.0, allowed: Allowed::Count, runtime: false },
    Field::new("cm", "uF/cm2", 1.0, Allowed::NonNegative),
    Field::new("Ra", "ohm cm", 35.4, Allowed::Positive),
    // The detector at the section's middle (NEURON's NetCon default).
    Field::new("threshold", "mV", 10.0, Allowed::Any),
];
pub const SEC_L: usize = 0;
pub const SEC_DIAM: usize = 1;
pub const SEC_NSEG: usize = 2;
pub const SEC_CM: usize = 3;
pub const SEC_RA: usize = 4;
pub const SEC_THRESHOLD: usize = 5;

/// A NetCon's fields; `threshold` only when its source is a section (it is the source's).
pub static NETCON_FIELDS: &[Field] = &[
    Field::new("delay", "ms", 1.0, Allowed::NonNegative),
    Field::new("weight", "uS", 0.0, Allowed::Any),
    Field::new("threshold", "mV", 10.0, Allowed::Any),
];
pub const NC_DELAY: usize = 0;
pub const NC_WEIGHT: usize = 1;
pub const NC_THRESHOLD: usize = 2;

/// A location on a section: `soma(0.5)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loc {
    pub section: String,
    pub x: f64,
}

/// A mechanism inserted in a section: a value per field of its table.
#[derive(Debug, Clone, PartialEq)]
pub struct Inserted {
    pub mech: MechId,
    pub params: Vec<f64>,
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
    /// Threshold of the spike detector at the section's middle, mV.
    pub threshold: f64,
    /// Inserted mechanisms, in the order of `insert`, each followed by the ions it uses (once).
    pub mechs: Vec<Inserted>,
    /// 3-d points (NEURON's pt3d): when present, L and each segment's area, resistance and
    /// diameter come from them (`l` and `diam` are not used).
    pub pt3d: Option<std::sync::Arc<crate::morphology::Pt3d>>,
}

impl SectionSpec {
    pub fn new(name: &str) -> Self {
        let d = |f: usize| SECTION_FIELDS[f].default;
        SectionSpec {
            name: name.to_string(),
            l: d(SEC_L),
            diam: d(SEC_DIAM),
            nseg: d(SEC_NSEG) as u32,
            cm: d(SEC_CM),
            ra: d(SEC_RA),
            parent: None,
            threshold: d(SEC_THRESHOLD),
            mechs: vec![],
            pt3d: None,
        }
    }

    /// `insert NAME`: the mechanism with its defaults, and the ions it uses; inserting again
    /// changes nothing (as in NEURON).
    pub fn insert(&mut self, def: &'static MechDef) {
        for d in std::iter::once(def).chain(def.ions.iter().copied()) {
            if self.slot(d.id()).is_none() {
                self.mechs.push(Inserted { mech: d.id(), params: d.defaults() });
            }
        }
    }

    /// Where mechanism `id` is in `mechs`.
    pub fn slot(&self, id: MechId) -> Option<usize> {
        self.mechs.iter().position(|m| m.mech == id)
    }

    pub fn has(&self, id: MechId) -> bool {
        self.slot(id).is_some()
    }

    fn own(&self, f: usize) -> f64 {
        match (f, &self.pt3d) {
            // What NEURON's sec.L and sec.diam read: the points' length, the middle segment's
            // mean diameter.
            (SEC_L, Some(p)) => return p.length(),
            (SEC_DIAM, Some(p)) => return p.mid_diam(self.nseg),
            _ => {}
        }
        match f {
            SEC_L => self.l,
            SEC_DIAM => self.diam,
            SEC_NSEG => f64::from(self.nseg),
            SEC_CM => self.cm,
            SEC_RA => self.ra,
            SEC_THRESHOLD => self.threshold,
            _ => unreachable!("section field {f}"),
        }
    }

    /// Sets one of `SECTION_FIELDS` (an already checked value).
    pub fn set_own(&mut self, f: usize, value: f64) {
        if f == SEC_NSEG {
            self.nseg = value as u32;
        } else {
            *self.own_mut(f) = value;
        }
    }

    fn own_mut(&mut self, f: usize) -> &mut f64 {
        match f {
            SEC_L => &mut self.l,
            SEC_DIAM => &mut self.diam,
            SEC_CM => &mut self.cm,
            SEC_RA => &mut self.ra,
            SEC_THRESHOLD => &mut self.threshold,
            _ => unreachable!("section field {f} is not a number"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PointSpec {
    pub name: String,
    pub at: Loc,
    pub mech: MechId,
    pub params: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CellSpec {
    pub name: String,
    pub mech: MechId,
    pub params: Vec<f64>,
    /// A VecStim's spike times (empty for other types).
    pub times: Vec<f64>,
}

impl CellSpec {
    /// An artificial cell with NEURON's defaults, with `netstims_before` NetStims before it in
    /// the model. NEURON gives each new RANDOM stream the ids (1, MPI rank, n), n counting the
    /// streams created in the process (`nrnran123_newstream()`), so a model's NetStims, created
    /// in file order in one process, get id3 = 1, 2, 3 and so on.
    pub fn new(name: &str, def: &'static MechDef, netstims_before: usize) -> CellSpec {
        let mut params = def.defaults();
        if std::ptr::eq(def, &crate::mech::netstim::DEF) {
            params[crate::mech::netstim::ID1 + 2] = (netstims_before + 1) as f64;
        }
        CellSpec { name: name.to_string(), mech: def.id(), params, times: vec![] }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetConSpec {
    pub name: String,
    /// An artificial cell or a section (its spike detector).
    pub source: String,
    /// A synapse (a point process that receives events) or an artificial cell.
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

/// FxHash (rustc's hasher): several times faster than std's SipHash on the short names and
/// keys of a model; a model file is trusted input, so resistance to chosen collisions is not
/// needed.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Hash maps keyed by names and structures of a model.
pub type FastHash = std::hash::BuildHasherDefault<FxHasher>;

/// A cache from object names to objects. Lookups are checked against the vectors, so a
/// model edited after the cache was built is still answered correctly (by a scan).
#[derive(Default)]
pub struct NameIndex(std::sync::OnceLock<std::collections::HashMap<String, Object, FastHash>>);

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

/// Description of one settable parameter: name, unit, range, whether a running simulation
/// accepts it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub unit: &'static str,
    pub allowed: Allowed,
    /// False for structural parameters (nseg), which only a model file or `--set` can change.
    pub runtime: bool,
    /// True when nothing may set it: the L and diam of a section with 3-d points.
    pub read_only: bool,
    pub value: f64,
}

/// A resolved parameter: which object and which field of its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamRef {
    /// An index in `GLOBAL_FIELDS`.
    Global(usize),
    /// An index in `SECTION_FIELDS`.
    Section { section: usize, field: usize },
    /// Field `field` of the mechanism in the section's `mechs[slot]`.
    Mech { section: usize, slot: usize, field: usize },
    Point { point: usize, field: usize },
    Cell { cell: usize, field: usize },
    /// An index in `NETCON_FIELDS`.
    NetCon { netcon: usize, field: usize },
}

/// A field table with the `ParamRef` of each of its fields.
type Table = (&'static [Field], Box<dyn Fn(usize) -> ParamRef>);

/// The field tables of an object.
fn tables_of(model: &Model, obj: Object) -> Vec<Table> {
    match obj {
        Object::Section(section) => {
            let s = &model.sections[section];
            let mut v: Vec<Table> =
                vec![(SECTION_FIELDS, Box::new(move |field| ParamRef::Section { section, field }))];
            for (slot, m) in s.mechs.iter().enumerate() {
                v.push((m.mech.def().params, Box::new(move |field| ParamRef::Mech { section, slot, field })));
            }
            v
        }
        Object::Point(point) => {
            vec![(model.points[point].mech.def().params, Box::new(move |field| ParamRef::Point { point, field }))]
        }
        Object::Cell(cell) => {
            vec![(model.cells[cell].mech.def().params, Box::new(move |field| ParamRef::Cell { cell, field }))]
        }
        Object::NetCon(netcon) => {
            let n = if model.netcon_source_section(netcon).is_some() { 3 } else { 2 };
            vec![(&NETCON_FIELDS[..n], Box::new(move |field| ParamRef::NetCon { netcon, field }))]
        }
    }
}

impl Model {
    /// The built-in seed model.
    pub fn seed() -> Self {
        crate::parse::parse_model(SEED_TOML, "<seed>").expect("the embedded seed model is valid")
    }

    pub fn empty(origin: &str) -> Self {
        Model {
            origin: origin.to_string(),
            run: RunSettings::default(),
            sections: vec![],
            points: vec![],
            cells: vec![],
            netcons: vec![],
            record: vec![],
            record_dt: None,
            index: NameIndex::default(),
        }
    }

    /// Finds an object by name.
    pub fn object(&self, name: &str) -> Option<Object> {
        let index = self.index.0.get_or_init(|| {
            let mut m = std::collections::HashMap::with_capacity_and_hasher(self.object_count(), FastHash::default());
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

    /// The section a NetCon's source is, if it is one.
    pub fn netcon_source_section(&self, netcon: usize) -> Option<usize> {
        self.section_index(&self.netcons[netcon].source)
    }

    fn holds(&self, obj: Object, name: &str) -> bool {
        match obj {
            Object::Section(i) => self.sections.get(i).is_some_and(|s| s.name == name),
            Object::Point(i) => self.points.get(i).is_some_and(|s| s.name == name),
            Object::Cell(i) => self.cells.get(i).is_some_and(|s| s.name == name),
            Object::NetCon(i) => self.netcons.get(i).is_some_and(|s| s.name == name),
        }
    }

    fn object_count(&self) -> usize {
        self.sections.len() + self.points.len() + self.cells.len() + self.netcons.len()
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

    /// Resolves a parameter name (`dt`, `soma.gnabar_hh`, `nc.weight`) to its place and field.
    pub fn resolve(&self, name: &str) -> Result<(ParamRef, &'static Field)> {
        if let Some(i) = GLOBAL_FIELDS.iter().position(|f| f.name == name) {
            return Ok((ParamRef::Global(i), &GLOBAL_FIELDS[i]));
        }
        let unknown = |hint: String| Error::UnknownName { what: "parameter", name: name.to_string(), hint };
        let Some((obj_name, field)) = name.rsplit_once('.') else {
            let globals: Vec<&str> = GLOBAL_FIELDS.iter().map(|f| f.name).collect();
            return Err(unknown(format!(
                "a parameter is a global ({}) or OBJECT.FIELD such as soma.gnabar_hh",
                globals.join(", ")
            )));
        };
        let obj = self.object(obj_name).ok_or_else(|| {
            unknown(format!("there is no object `{obj_name}`; objects are {}", self.object_names_hint()))
        })?;
        let tables = tables_of(self, obj);
        for (table, make) in &tables {
            if let Some(i) = table.iter().position(|f| f.name == field) {
                return Ok((make(i), &table[i]));
            }
        }
        let fields: Vec<&str> = tables.iter().flat_map(|(t, _)| t.iter().map(|f| f.name)).collect();
        Err(unknown(if fields.is_empty() {
            format!("`{obj_name}` has no parameters")
        } else {
            format!("`{obj_name}` has {}", fields.join(", "))
        }))
    }

    /// The object names, for a message: all of them for a small model, else the first few.
    fn object_names_hint(&self) -> String {
        let names = self.object_names();
        if names.len() <= 40 {
            names.join(", ")
        } else {
            format!("{}, ... ({} in all)", names[..20].join(", "), names.len())
        }
    }

    pub fn object_names(&self) -> Vec<&str> {
        self.all_objects().map(|o| self.object_name(o)).collect()
    }

    /// Reads a parameter by name.
    pub fn get(&self, name: &str) -> Result<f64> {
        let (r, _) = self.resolve(name)?;
        Ok(self.get_ref(r))
    }

    pub fn get_ref(&self, r: ParamRef) -> f64 {
        match r {
            ParamRef::Global(f) => self.run.get(f),
            ParamRef::Section { section, field } => self.sections[section].own(field),
            ParamRef::Mech { section, slot, field } => self.sections[section].mechs[slot].params[field],
            ParamRef::Point { point, field } => self.points[point].params[field],
            ParamRef::Cell { cell, field } => self.cells[cell].params[field],
            ParamRef::NetCon { netcon, field } => match field {
                NC_DELAY => self.netcons[netcon].delay,
                NC_WEIGHT => self.netcons[netcon].weight,
                _ => self.sections[self.netcon_source_section(netcon).expect("resolved: a section source")].threshold,
            },
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
        let (r, field) = self.resolve(name)?;
        field.allowed.check(value).map_err(|a| Error::InvalidValue {
            name: name.to_string(),
            value,
            allowed: a.to_string(),
        })?;
        self.check_writable(r, name)?;
        Ok((r, field.runtime))
    }

    /// L and diam of a section with 3-d points come from its points: NEURON would move or
    /// resize the points (`nrn_length_change`, `nrn_diam_change`), which spikebus does not do.
    pub fn check_writable(&self, r: ParamRef, name: &str) -> Result<()> {
        if let ParamRef::Section { section, field: field @ (SEC_L | SEC_DIAM) } = r {
            if self.sections[section].pt3d.is_some() {
                return Err(Error::NotWritable {
                    name: name.to_string(),
                    reason: format!(
                        "section `{}` has 3-d points, which give its {}: change the points (pt3d) instead",
                        self.sections[section].name,
                        if field == SEC_L { "length" } else { "diameters" }
                    ),
                });
            }
        }
        Ok(())
    }

    /// Stores an already checked value.
    pub(crate) fn set_ref(&mut self, r: ParamRef, value: f64) {
        match r {
            ParamRef::Global(f) => self.run.set(f, value),
            ParamRef::Section { section, field } => self.sections[section].set_own(field, value),
            ParamRef::Mech { section, slot, field } => self.sections[section].mechs[slot].params[field] = value,
            ParamRef::Point { point, field } => self.points[point].params[field] = value,
            ParamRef::Cell { cell, field } => self.cells[cell].params[field] = value,
            ParamRef::NetCon { netcon, field } => match field {
                NC_DELAY => self.netcons[netcon].delay = value,
                NC_WEIGHT => self.netcons[netcon].weight = value,
                // NEURON: a threshold belongs to the source, shared by all its NetCons.
                _ => {
                    let s = self.netcon_source_section(netcon).expect("resolved: a section source");
                    self.sections[s].threshold = value;
                }
            },
        }
    }

    /// Every parameter with its metadata and current value, in model order.
    pub fn params(&self) -> Vec<ParamInfo> {
        let info = |name: String, f: &Field, r: ParamRef| {
            let read_only = self.check_writable(r, &name).is_err();
            ParamInfo { name, unit: f.unit, allowed: f.allowed, runtime: f.runtime && !read_only, read_only, value: self.get_ref(r) }
        };
        let mut out: Vec<ParamInfo> =
            GLOBAL_FIELDS.iter().enumerate().map(|(i, f)| info(f.name.to_string(), f, ParamRef::Global(i))).collect();
        for obj in self.all_objects() {
            for (table, make) in tables_of(self, obj) {
                for (i, f) in table.iter().enumerate() {
                    let name = format!("{}.{}", self.object_name(obj), f.name);
                    out.push(info(name, f, make(i)));
                }
            }
        }
        out
    }
}
