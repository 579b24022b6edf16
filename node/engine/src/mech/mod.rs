//! The mechanism interface, after NEURON's `memb_func` list and Arbor's mechanism ABI.
//!
//! A mechanism is one file: a `MechDef` (its name, kind, field table of parameters with unit,
//! default and allowed range, its recordable variables, the ions it uses) and, for membrane
//! mechanisms and point processes, a kernel block (`Block`) with `initial`, `current`, `state`
//! and, if it receives events, `receive` hooks over structure-of-arrays storage; for an
//! artificial cell, an `ArtBlock` with `initial`, `receive` and `after_event` hooks over its
//! instances. Parsing, get/set by name, parameter listings, signals and the step loop all
//! derive from the table and the registry below, so adding a mechanism is its file plus its
//! entry in `MECHANISMS` and its variant with the variant's arms in `block.rs` (or `art.rs`).
//!
//! Storage is over *lanes*: the cells of a group (`sim::group`) have the same structure, so a
//! mechanism's instance `i` of every cell sits at `i * lanes + lane` and the kernels run the
//! same operations on every lane (vectorized), each lane's arithmetic exactly NEURON's.

/// `save` and `load` of a struct of f64 fields (a snapshot's values of one instance), in the
/// order listed. The struct is destructured and built whole, so a field missing from the
/// list is a compile error, not a value a snapshot forgets.
macro_rules! f64_fields {
    ($t:ident: $($f:ident),* $(,)?) => {
        impl $t {
            pub(crate) fn save(&self, o: &mut dyn FnMut(f64)) {
                let $t { $($f),* } = *self;
                $( o($f); )*
            }
            pub(crate) fn load(&mut self, i: &mut dyn FnMut() -> f64) {
                *self = $t { $($f: i()),* };
            }
        }
    };
}

pub mod alphasynapse;
pub mod art;
pub mod block;
pub mod col;
mod decay;
pub mod exp2syn;
pub mod expsyn;
pub mod hh;
pub mod iclamp;
pub mod intfire1;
pub mod intfire2;
pub mod intfire4;
pub mod lanes;
pub mod ion;
pub mod netstim;
pub mod pas;
pub mod seclamp;
pub mod vclamp;
pub mod vecstim;

pub use art::{ArtBlock, ArtCx};
pub use block::{Block, Cx, Rates};

/// What values a parameter accepts.
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

/// A parameter of a mechanism (or of a section, a NetCon, the run).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Field {
    /// NEURON's name: with the mechanism's suffix for a membrane mechanism (`gnabar_hh`).
    pub name: &'static str,
    pub unit: &'static str,
    /// NEURON's default.
    pub default: f64,
    pub allowed: Allowed,
    /// Whether a running simulation accepts a new value (false: structural).
    pub runtime: bool,
}

impl Field {
    pub const fn new(name: &'static str, unit: &'static str, default: f64, allowed: Allowed) -> Field {
        Field { name, unit, default, allowed, runtime: true }
    }
}

/// Where a mechanism lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MechKind {
    /// A membrane mechanism inserted in sections (hh, pas): an instance per segment.
    Density,
    /// An ion's per-segment state (na_ion, k_ion), inserted with the mechanisms that use it.
    Ion,
    /// A point process at a location (ExpSyn, Exp2Syn, AlphaSynapse, IClamp, SEClamp, VClamp).
    Point,
    /// An artificial cell (NetStim, IntFire1, IntFire2, IntFire4, VecStim): no membrane, only
    /// events.
    Artificial,
}

/// A mechanism's description: what the model format, the parameter names and the signals
/// know of it.
#[derive(Debug, PartialEq)]
pub struct MechDef {
    /// NEURON's name: the `insert` name of a membrane mechanism, the type of a point process
    /// or artificial cell.
    pub name: &'static str,
    pub kind: MechKind,
    pub params: &'static [Field],
    /// Recordable variables, by NEURON's names (`m_hh`, `ina`; `g`, `i`).
    pub vars: &'static [&'static str],
    /// Ion mechanisms inserted with this one (NEURON's USEION).
    pub ions: &'static [&'static MechDef],
    /// Has a NET_RECEIVE block: can be a NetCon's target.
    pub receives: bool,
    /// The variables (indices in `vars`) that NET_RECEIVE writes.
    pub receive_writes: &'static [usize],
    /// The variables (indices in `vars`) that only the currents write, for readers: skipped
    /// in steps whose outputs nobody reads (`Sim::set_outputs_read`).
    pub current_outputs: &'static [usize],
    /// Parameters that INITIAL may change (NEURON's Exp2Syn keeps tau1 below tau2): copied
    /// back to the model after initialization.
    pub initial_writes: &'static [usize],
}

impl MechDef {
    pub fn id(&'static self) -> MechId {
        MechId(MECHANISMS.iter().position(|m| std::ptr::eq(*m, self)).expect("registered") as u16)
    }

    /// The index of a parameter by name.
    pub fn param(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|f| f.name == name)
    }

    /// The defaults, in field order.
    pub fn defaults(&self) -> Vec<f64> {
        self.params.iter().map(|f| f.default).collect()
    }
}

/// A mechanism by its place in `MECHANISMS`: NEURON's type number, which also orders the
/// currents of a node (NEURON adds them type by type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MechId(pub u16);

impl MechId {
    pub fn def(self) -> &'static MechDef {
        MECHANISMS[self.0 as usize]
    }
}

/// Every mechanism, in NEURON 9.0.2's type order (`h.MechanismType(...).internal_type()`:
/// pas 4, IClamp 7, AlphaSynapse 8, ExpSyn 9, Exp2Syn 10, SEClamp 11, VClamp 12, na_ion 15,
/// k_ion 16, hh 17, NetStim 18, IntFire1 19, IntFire2 20, IntFire4 21, then VecStim, which
/// a model loads from its own library). The type order is the order of the currents at a
/// node and of the artificial cells' INITIAL blocks; ions add no current.
pub static MECHANISMS: &[&MechDef] = &[
    &pas::DEF,
    &iclamp::DEF,
    &alphasynapse::DEF,
    &expsyn::DEF,
    &exp2syn::DEF,
    &seclamp::DEF,
    &vclamp::DEF,
    &ion::NA,
    &ion::K,
    &hh::DEF,
    &netstim::DEF,
    &intfire1::DEF,
    &intfire2::DEF,
    &intfire4::DEF,
    &vecstim::DEF,
];

/// A mechanism by its NEURON name and kind.
pub fn find(name: &str, kind: MechKind) -> Option<&'static MechDef> {
    MECHANISMS.iter().copied().find(|m| m.name == name && m.kind == kind)
}

/// What to use instead of one of NEURON's built-in mechanisms that spikebus does not have, for
/// the message that refuses it.
pub fn instead_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "OClamp" => "clamp the voltage with SEClamp (svclmp.mod) or VClamp",
        "APCount" => "every section has a spike detector at its middle: its spikes are in spikes.csv and on the bus",
        "PatternStim" => "make one VecStim cell per source with its spike times",
        "NetStimFD" | "IntervalFire" => "use NetStim, or IntFire1, IntFire2, IntFire4",
        "fastpas" => "insert pas",
        "extracellular" => "nothing yet: spikebus has no extracellular layers",
        "k_ion" | "na_ion" => "ions come with the mechanism that uses them: insert hh, then set ena and ek",
        "ExpSyn2" | "AlphaSyn" => "use ExpSyn, Exp2Syn or AlphaSynapse",
        _ => return None,
    })
}

/// The names of the mechanisms of a kind, for messages.
pub fn names(kind: MechKind) -> Vec<&'static str> {
    MECHANISMS.iter().filter(|m| m.kind == kind).map(|m| m.name).collect()
}

/// NEURON's numerical derivative step for conductances: `(i(v + .001) - i(v)) / .001`.
pub const DV: f64 = 0.001;

#[cfg(test)]
mod tests {
    /// The variable lists of the field tables name variables that exist and are not also
    /// written by events (an output skipped in a step must be one only the currents write).
    #[test]
    fn variable_lists_name_variables() {
        for m in super::MECHANISMS {
            for &v in m.current_outputs.iter().chain(m.receive_writes) {
                assert!(v < m.vars.len(), "{}: variable {v} of {:?}", m.name, m.vars);
            }
            assert!(m.current_outputs.iter().all(|v| !m.receive_writes.contains(v)), "{}", m.name);
        }
    }
}
