//! The kernel blocks: a tile's instances of one membrane mechanism or point process, and the
//! one `match` per block and phase that dispatches to them (no dispatch per compartment: each
//! kernel loops over its instances, and for each instance over the tile's lanes).

use std::ops::Range;

use super::col::{Col, Interner};
use super::{alphasynapse, exp2syn, expsyn, hh, iclamp, pas, seclamp, vclamp, MechDef};

/// The lane count of a tile: `N` when the kernels were instantiated for N lanes (so that
/// every loop over the lanes of a one-cell tile disappears at compile time), else `lanes`.
#[inline(always)]
pub fn lane_count<const N: usize>(lanes: usize) -> usize {
    if N > 0 {
        debug_assert_eq!(N, lanes);
        N
    } else {
        lanes
    }
}

/// What the current kernels see: a tile's node arrays (`[node * lanes + lane]`), the time
/// of the currents (t_n + dt/2) and the step; `N` as in `lane_count`.
pub struct Cx<'a, const N: usize> {
    pub lanes: usize,
    pub v: &'a [f64],
    pub rhs: &'a mut [f64],
    pub d: &'a mut [f64],
    pub t: f64,
    pub dt: f64,
    /// Whether the variables of the mechanisms' `current_outputs` (ina, a synapse's i, ...)
    /// are written: false in steps whose outputs nobody reads (`Sim::set_outputs_read`).
    pub outputs: bool,
}

impl<const N: usize> Cx<'_, N> {
    #[inline(always)]
    pub fn n(&self) -> usize {
        lane_count::<N>(self.lanes)
    }

    /// v, rhs and d of node `nd`, one entry per lane.
    #[inline(always)]
    pub fn node(&mut self, nd: u32) -> (&[f64], &mut [f64], &mut [f64]) {
        let n = self.n();
        let r = nd as usize * n..(nd as usize + 1) * n;
        (&self.v[r.clone()], &mut self.rhs[r.clone()], &mut self.d[r])
    }

    /// The entries of instance `k` in an instance array.
    #[inline(always)]
    pub fn inst(&self, k: usize) -> Range<usize> {
        k * self.n()..(k + 1) * self.n()
    }
}

/// hh's temperature-dependent state, shared by all its instances: q10 (computed at every
/// exact-rate call in NEURON, so it follows celsius at once) and the rate tables (rebuilt
/// only where NEURON checks them).
#[derive(Debug, Clone, Default)]
pub struct Rates {
    pub q10: f64,
    pub usetable: bool,
    pub table: hh::RateTable,
}

/// A tile's instances of one mechanism.
#[derive(Debug, Clone)]
pub enum Block {
    Pas(pas::Pas),
    IClamp(iclamp::IClamp),
    AlphaSynapse(alphasynapse::AlphaSynapse),
    ExpSyn(expsyn::ExpSyn),
    Exp2Syn(exp2syn::Exp2Syn),
    SEClamp(seclamp::SEClamp),
    VClamp(vclamp::VClamp),
    Hh(hh::Hh),
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            Block::Pas($b) => $e,
            Block::IClamp($b) => $e,
            Block::AlphaSynapse($b) => $e,
            Block::ExpSyn($b) => $e,
            Block::Exp2Syn($b) => $e,
            Block::SEClamp($b) => $e,
            Block::VClamp($b) => $e,
            Block::Hh($b) => $e,
        }
    };
}

impl Block {
    /// Instances at the cell-local nodes `node`, for `lanes` cells.
    pub fn new(def: &'static MechDef, node: Vec<u32>, lanes: usize) -> Block {
        let base = Base { node, lanes };
        match def.name {
            "pas" => Block::Pas(pas::Pas::new(base)),
            "IClamp" => Block::IClamp(iclamp::IClamp::new(base)),
            "AlphaSynapse" => Block::AlphaSynapse(alphasynapse::AlphaSynapse::new(base)),
            "ExpSyn" => Block::ExpSyn(expsyn::ExpSyn::new(base)),
            "Exp2Syn" => Block::Exp2Syn(exp2syn::Exp2Syn::new(base)),
            "SEClamp" => Block::SEClamp(seclamp::SEClamp::new(base)),
            "VClamp" => Block::VClamp(vclamp::VClamp::new(base)),
            "hh" => Block::Hh(hh::Hh::new(base)),
            other => unreachable!("{other} has no kernel block"),
        }
    }

    pub fn base(&self) -> &Base {
        each!(self, b => &b.base)
    }

    /// BREAKPOINT: adds the currents and their conductances to rhs and d.
    #[inline(always)]
    pub fn current<const N: usize>(&mut self, cx: &mut Cx<N>) {
        each!(self, b => b.current(cx))
    }

    /// The SOLVE block (or the synapses' decay) with the new v, at t = t_{n+1}.
    #[inline(always)]
    pub fn state<const N: usize>(&mut self, v: &[f64], t: f64, dt: f64, rates: &Rates) {
        match self {
            Block::ExpSyn(b) => b.state(dt),
            Block::Exp2Syn(b) => b.state(dt),
            Block::SEClamp(b) => b.state(v),
            Block::VClamp(b) => b.state(v, t, dt),
            Block::Hh(b) => b.state::<N>(v, dt, rates),
            Block::Pas(_) | Block::IClamp(_) | Block::AlphaSynapse(_) => {}
        }
    }

    /// Shares the columns a step only reads (parameters, point factors, decay constants made
    /// for `dt`) with equal ones already seen by `i`: the values stay, tiles read one copy.
    pub fn share(&mut self, dt: f64, i: &mut Interner) {
        match self {
            Block::Pas(b) => i.share_all(&mut b.p),
            Block::Hh(b) => i.share_all(&mut b.p),
            Block::IClamp(b) => i.share_all(b.p.iter_mut().chain([&mut b.mfact])),
            Block::AlphaSynapse(b) => i.share_all(b.p.iter_mut().chain([&mut b.mfact])),
            Block::SEClamp(b) => i.share_all(b.p.iter_mut().chain([&mut b.mfact])),
            Block::VClamp(b) => i.share_all(b.p.iter_mut().chain([&mut b.mfact])),
            Block::ExpSyn(b) => b.share(dt, i),
            Block::Exp2Syn(b) => b.share(dt, i),
        }
    }

    /// INITIAL.
    pub fn initial(&mut self, v: &[f64], rates: &Rates) {
        match self {
            Block::Pas(_) | Block::AlphaSynapse(_) => {}
            Block::IClamp(b) => b.initial(),
            Block::ExpSyn(b) => b.initial(),
            Block::Exp2Syn(b) => b.initial(),
            Block::SEClamp(b) => b.initial(),
            Block::VClamp(b) => b.initial(v),
            Block::Hh(b) => b.initial(v, rates),
        }
    }

    /// Parameter `field` of instance entry `at` (`i * lanes + lane`): the index in the
    /// mechanism's field table, or for an ion's parameter the index `ion_field` gives.
    pub fn set_param(&mut self, field: usize, at: usize, value: f64) {
        match self {
            Block::ExpSyn(b) => b.set_param(field, at, value),
            Block::Exp2Syn(b) => b.set_param(field, at, value),
            _ => each!(self, b => b.p[field][at] = value),
        }
    }

    pub fn param(&self, field: usize, at: usize) -> f64 {
        each!(self, b => b.p[field][at])
    }

    /// Where this block keeps a copy of an ion's parameter (the mechanism uses the ion).
    pub fn ion_field(&self, ion: &MechDef) -> Option<usize> {
        match self {
            Block::Hh(_) => hh::Hh::ion_field(ion),
            _ => None,
        }
    }

    /// Recordable variable `var` (the index in the mechanism's `vars`) of entry `at`.
    #[inline]
    pub fn var(&self, var: usize, at: usize) -> f64 {
        each!(self, b => b.var(var, at))
    }

    /// A point process's factor from current (nA) to current density (mA/cm2): 100 / area.
    pub fn set_mfact(&mut self, at: usize, mfact: f64) {
        match self {
            Block::IClamp(b) => b.mfact[at] = mfact,
            Block::AlphaSynapse(b) => b.mfact[at] = mfact,
            Block::ExpSyn(b) => b.mfact[at] = mfact,
            Block::Exp2Syn(b) => b.mfact[at] = mfact,
            Block::SEClamp(b) => b.mfact[at] = mfact,
            Block::VClamp(b) => b.mfact[at] = mfact,
            Block::Pas(_) | Block::Hh(_) => {}
        }
    }

    /// What a snapshot holds of entry `at` (`i * lanes + lane`): its parameters, states,
    /// outputs and factors, in the mechanism's fixed order (its `columns`).
    pub fn save(&self, at: usize, o: &mut dyn FnMut(f64)) {
        macro_rules! cols {
            ($b:ident) => {
                $b.columns().into_iter().for_each(|c| o(c[at]))
            };
        }
        match self {
            Block::Pas(b) => cols!(b),
            Block::IClamp(b) => cols!(b),
            Block::AlphaSynapse(b) => cols!(b),
            Block::ExpSyn(b) => cols!(b),
            Block::Exp2Syn(b) => cols!(b),
            Block::SEClamp(b) => cols!(b),
            Block::Hh(b) => cols!(b),
            Block::VClamp(b) => b.save(at, o),
        }
    }

    /// Entry `at` as `save` wrote it; then what the block computes by itself from those
    /// values (the synapses' decay constants) is made again.
    pub fn load(&mut self, at: usize, i: &mut dyn FnMut() -> f64) {
        macro_rules! cols {
            ($b:ident) => {
                $b.columns_mut().into_iter().for_each(|mut c| c.set(at, i()))
            };
        }
        match self {
            Block::Pas(b) => cols!(b),
            Block::IClamp(b) => cols!(b),
            Block::AlphaSynapse(b) => cols!(b),
            Block::ExpSyn(b) => {
                cols!(b);
                b.forget_derived();
            }
            Block::Exp2Syn(b) => {
                cols!(b);
                b.forget_derived();
            }
            Block::SEClamp(b) => cols!(b),
            Block::Hh(b) => cols!(b),
            Block::VClamp(b) => b.load(at, i),
        }
    }

    /// How many values `save` writes per entry.
    pub fn saved_len(&self) -> usize {
        let mut n = 0;
        if !self.base().node.is_empty() {
            self.save(0, &mut |_| n += 1);
        }
        n
    }

    /// NET_RECEIVE(weight) of a synapse.
    #[inline]
    pub fn receive(&mut self, at: usize, w: f64) {
        match self {
            Block::ExpSyn(b) => b.receive(at, w),
            Block::Exp2Syn(b) => b.receive(at, w),
            _ => unreachable!("no NET_RECEIVE"),
        }
    }
}

/// What every block has: the cell-local node of each instance, and the lane count.
#[derive(Debug, Clone)]
pub struct Base {
    pub node: Vec<u32>,
    pub lanes: usize,
}

impl Base {
    /// Storage for one field: an entry per instance and lane.
    pub fn field(&self, init: f64) -> Vec<f64> {
        vec![init; self.node.len() * self.lanes]
    }

    /// A column that tiles may share (`Col`): for values a step only reads.
    pub fn col(&self, init: f64) -> Col {
        Col::new(self.node.len() * self.lanes, init)
    }

    /// Storage for the first N parameters of a field table, at their defaults.
    pub fn params<const N: usize>(&self, def: &MechDef) -> [Col; N] {
        std::array::from_fn(|f| self.col(def.params[f].default))
    }
}
