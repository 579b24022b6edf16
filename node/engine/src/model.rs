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

/// A mechanism inserted in a section: a value per field of its table (every segment's), and
/// the segments' own values of the fields that vary along the section.
#[derive(Debug, Clone, PartialEq)]
pub struct Inserted {
    pub mech: MechId,
    pub params: Vec<f64>,
    pub segs: SegValues,
}

/// The values of range variables (NEURON's per-segment parameters such as `dend(0.3).g_pas`)
/// that differ along a section: for such a field, one value per segment. Nothing is stored
/// (one null pointer) while every field holds one value for the whole section, the common
/// case.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SegValues(Option<Box<Vec<(u16, Box<[f64]>)>>>);

impl SegValues {
    /// Segment `seg`'s own value of `field`, if the field varies along the section.
    pub fn get(&self, field: usize, seg: u32) -> Option<f64> {
        self.values(field).map(|v| v[seg as usize])
    }

    /// Every segment's value of `field`, if it varies along the section.
    pub fn values(&self, field: usize) -> Option<&[f64]> {
        self.0.as_ref()?.iter().find(|(f, _)| usize::from(*f) == field).map(|(_, v)| &v[..])
    }

    /// Sets segment `seg` of `field` (of `nseg`), the others keeping `uniform` if the field
    /// did not vary yet.
    pub fn set(&mut self, field: usize, seg: u32, value: f64, nseg: u32, uniform: f64) {
        let list = self.0.get_or_insert_with(Default::default);
        let i = match list.iter().position(|(f, _)| usize::from(*f) == field) {
            Some(i) => i,
            None => {
                list.push((field as u16, vec![uniform; nseg as usize].into_boxed_slice()));
                list.len() - 1
            }
        };
        list[i].1[seg as usize] = value;
    }

    /// `field` holds one value for the whole section again.
    pub fn clear(&mut self, field: usize) {
        if let Some(list) = &mut self.0 {
            list.retain(|(f, _)| usize::from(*f) != field);
            if list.is_empty() {
                self.0 = None;
            }
        }
    }

    /// The fields that vary, with their values.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &[f64])> {
        self.0.iter().flat_map(|l| l.iter().map(|(f, v)| (usize::from(*f), &v[..])))
    }

    /// nseg changed from `old` to `new`: each new segment takes the value of the old segment
    /// holding its center, as NEURON does.
    fn renseg(&mut self, old: u32, new: u32) {
        if let Some(list) = &mut self.0 {
            for (_, v) in list.iter_mut() {
                *v = (0..new).map(|j| v[segment_index(old, (f64::from(j) + 0.5) / f64::from(new)) as usize]).collect();
            }
        }
    }
}

/// NEURON's `node_index` within a section of `nseg` segments: the segment holding x
/// (0 <= x <= 1; x = 1 is the last segment).
pub fn segment_index(nseg: u32, x: f64) -> u32 {
    ((f64::from(nseg) * x) as u32).min(nseg - 1)
}

/// A short name for a location in segment `seg` of `nseg`: its center, rounded to the fewest
/// decimals that stay within a twentieth of a segment of it.
pub fn segment_x(nseg: u32, seg: u32) -> String {
    let center = (f64::from(seg) + 0.5) / f64::from(nseg);
    for digits in 1..=17 {
        let text = format!("{center:.digits$}");
        let x: f64 = text.parse().expect("a number");
        if segment_index(nseg, x) == seg && (x - center).abs() <= 0.05 / f64::from(nseg) {
            return text.trim_end_matches('0').trim_end_matches('.').to_string();
        }
    }
    center.to_string()
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
    /// Segments' own `diam` and `cm` (`SEC_DIAM`, `SEC_CM`) where they vary.
    pub segs: SegValues,
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
            segs: SegValues::default(),
        }
    }

    /// `insert NAME`: the mechanism with its defaults, and the ions it uses; inserting again
    /// changes nothing (as in NEURON).
    pub fn insert(&mut self, def: &'static MechDef) {
        for d in std::iter::once(def).chain(def.ions.iter().copied()) {
            if self.slot(d.id()).is_none() {
                self.mechs.push(Inserted { mech: d.id(), params: d.defaults(), segs: SegValues::default() });
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

    /// Sets one of `SECTION_FIELDS` (an already checked value) for the whole section. A new
    /// nseg keeps the values along the section as NEURON does.
    pub fn set_own(&mut self, f: usize, value: f64) {
        if f == SEC_NSEG {
            let new = value as u32;
            self.segs.renseg(self.nseg, new);
            for m in &mut self.mechs {
                m.segs.renseg(self.nseg, new);
            }
            self.nseg = new;
        } else {
            *self.own_mut(f) = value;
            self.segs.clear(f);
        }
    }

    /// Whether section field `f` is a range variable (a value per segment in NEURON).
    pub fn is_range_field(f: usize) -> bool {
        f == SEC_DIAM || f == SEC_CM
    }

    /// Segment `seg`'s value of section field `f` (diam, cm).
    pub fn own_at(&self, f: usize, seg: u32) -> f64 {
        self.segs.get(f, seg).unwrap_or_else(|| self.own(f))
    }

    /// The value NEURON gives for a section's range variable without a location: the
    /// segment holding x = 0.5.
    fn own_mid(&self, f: usize) -> f64 {
        if Self::is_range_field(f) {
            self.own_at(f, segment_index(self.nseg, 0.5))
        } else {
            self.own(f)
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

/// NEURON's `Vector.play` of `values` into a parameter: at given `times` or every `dt`
/// (discrete: each value from its time on), or interpolated in time (`continuous`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlaySpec {
    pub name: String,
    /// The parameter played into, by name (`stim.amp`, `soma.gnabar_hh`, `dend(0.3).g_pas`).
    pub target: String,
    pub values: Vec<f64>,
    /// The values' times (ms, non-decreasing); none: every `dt` from 0.
    pub times: Option<Vec<f64>>,
    pub dt: Option<f64>,
    pub continuous: bool,
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
    /// `Vector.play`s, in creation order.
    pub plays: Vec<PlaySpec>,
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
    /// A section's range variable (`SEC_DIAM`, `SEC_CM`) in one segment (`dend(0.3).cm`).
    SectionSeg { section: usize, field: usize, seg: u32 },
    /// A mechanism's field in one segment (`dend(0.3).g_pas`).
    MechSeg { section: usize, slot: usize, field: usize, seg: u32 },
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
            plays: vec![],
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
        if obj_name.contains('(') {
            return self.resolve_segment(name, obj_name, field);
        }
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

    /// The parameter a `Vector.play` writes: a parameter that NEURON's play can write
    /// without further updates (NEURON writes the value through a pointer).
    pub fn play_target(&self, name: &str) -> Result<(ParamRef, &'static Field)> {
        let (r, field) = self.resolve(name)?;
        let ok = match r {
            ParamRef::Mech { .. } | ParamRef::MechSeg { .. } | ParamRef::Point { .. } | ParamRef::Cell { .. } => true,
            ParamRef::Section { field, .. } | ParamRef::SectionSeg { field, .. } => field == SEC_CM,
            ParamRef::NetCon { field, .. } => field == NC_WEIGHT,
            ParamRef::Global(_) => false,
        };
        // NEURON plays into one value (a pointer): a section's range variable is the one of
        // the segment at 0.5, which `SEC.FIELD` means only with one segment.
        if let ParamRef::Mech { section, .. } | ParamRef::Section { section, .. } = r {
            let s = &self.sections[section];
            if ok && s.nseg > 1 {
                let field_name = name.rsplit_once('.').map_or(name, |(_, f)| f);
                return Err(Error::UnknownName {
                    what: "play target",
                    name: name.to_string(),
                    hint: format!(
                        "`{}` has {} segments and a play writes one value (NEURON's `{}(0.5)._ref_{field_name}`): \
                         name the segment, e.g. `{}(0.5).{field_name}`, with a play for each segment to change",
                        s.name, s.nseg, s.name, s.name
                    ),
                });
            }
        }
        if !ok || !field.runtime {
            return Err(Error::UnknownName {
                what: "play target",
                name: name.to_string(),
                hint: "a play writes a mechanism's parameter (soma.gnabar_hh, dend(0.3).g_pas, stim.amp), an \
                       artificial cell's, cm, or a NetCon's weight; globals, geometry (L, diam, Ra, nseg), \
                       thresholds and delays need updates a play does not make: set them over the bus instead"
                    .into(),
            });
        }
        Ok((r, field))
    }

    /// `SEC(x).FIELD`: a range variable (a section's `diam` or `cm`, or a parameter of an
    /// inserted mechanism) in the segment holding x (NEURON's rule: x = 1 is the last).
    fn resolve_segment(&self, name: &str, obj_name: &str, field: &str) -> Result<(ParamRef, &'static Field)> {
        let unknown = |hint: String| Error::UnknownName { what: "parameter", name: name.to_string(), hint };
        let loc = crate::parse::parse_loc(obj_name)
            .ok_or_else(|| unknown(format!("`{obj_name}` is not SECTION(x) with 0 <= x <= 1")))?;
        let Some(Object::Section(section)) = self.object(&loc.section) else {
            return Err(unknown(format!("there is no section `{}` (only a section's parameters have segments)", loc.section)));
        };
        let sec = &self.sections[section];
        let seg = segment_index(sec.nseg, loc.x);
        if let Some(f) = SECTION_FIELDS.iter().position(|f| f.name == field) {
            if !SectionSpec::is_range_field(f) {
                return Err(unknown(format!(
                    "`{field}` belongs to the whole section, not to a segment: set `{}.{field}`",
                    loc.section
                )));
            }
            return Ok((ParamRef::SectionSeg { section, field: f, seg }, &SECTION_FIELDS[f]));
        }
        for (slot, m) in sec.mechs.iter().enumerate() {
            let def = m.mech.def();
            if let Some(f) = def.param(field) {
                return Ok((ParamRef::MechSeg { section, slot, field: f, seg }, &def.params[f]));
            }
        }
        let mut fields: Vec<&str> = vec!["diam", "cm"];
        fields.extend(sec.mechs.iter().flat_map(|m| m.mech.def().params.iter().map(|f| f.name)));
        Err(unknown(format!("a segment of `{}` has {}", loc.section, fields.join(", "))))
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
            ParamRef::Section { section, field } => self.sections[section].own_mid(field),
            ParamRef::Mech { section, slot, field } => {
                let s = &self.sections[section];
                let m = &s.mechs[slot];
                m.segs.get(field, segment_index(s.nseg, 0.5)).unwrap_or(m.params[field])
            }
            ParamRef::SectionSeg { section, field, seg } => self.sections[section].own_at(field, seg),
            ParamRef::MechSeg { section, slot, field, seg } => {
                let m = &self.sections[section].mechs[slot];
                m.segs.get(field, seg).unwrap_or(m.params[field])
            }
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
        if let ParamRef::Section { section, field: field @ (SEC_L | SEC_DIAM) }
        | ParamRef::SectionSeg { section, field: field @ (SEC_L | SEC_DIAM), .. } = r
        {
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
            ParamRef::Mech { section, slot, field } => {
                let m = &mut self.sections[section].mechs[slot];
                m.params[field] = value;
                m.segs.clear(field);
            }
            ParamRef::SectionSeg { section, field, seg } => {
                let s = &mut self.sections[section];
                let uniform = s.own(field);
                s.segs.set(field, seg, value, s.nseg, uniform);
            }
            ParamRef::MechSeg { section, slot, field, seg } => {
                let s = &mut self.sections[section];
                let m = &mut s.mechs[slot];
                m.segs.set(field, seg, value, s.nseg, m.params[field]);
            }
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
            // Range variables that vary along the section: each segment's value too (the
            // section's entry above is the segment at 0.5).
            if let Object::Section(si) = obj {
                let s = &self.sections[si];
                type SegRef = Box<dyn Fn(u32) -> ParamRef>;
                let varying = s.segs.iter().map(|(field, v)| {
                    let r: SegRef = Box::new(move |seg| ParamRef::SectionSeg { section: si, field, seg });
                    (&SECTION_FIELDS[field], v.len(), r)
                });
                let varying = varying.chain(s.mechs.iter().enumerate().flat_map(|(slot, m)| {
                    m.segs.iter().map(move |(field, v)| {
                        let r: SegRef = Box::new(move |seg| ParamRef::MechSeg { section: si, slot, field, seg });
                        (&m.mech.def().params[field], v.len(), r)
                    })
                }));
                for (f, count, make) in varying {
                    for seg in 0..count as u32 {
                        let name = format!("{}({}).{}", s.name, segment_x(s.nseg, seg), f.name);
                        out.push(info(name, f, make(seg)));
                    }
                }
            }
        }
        out
    }
}
