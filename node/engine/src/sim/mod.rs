//! Execution: a `Sim` is built from a `Model` and advances it with NEURON's fixed-step method
//! (`nrn_finitialize`, `fadvance` with secondorder = 0), reproducing NEURON 9.0.2 bit for bit.
//!
//! Initialization and each step are split where a controller may pause the simulation:
//!
//! ```text
//! init_begin   t = 0, queue cleared, v = v_init            (FInitializeHandler type 0)
//! init_states  INITIAL blocks; artificial cells queue their first events
//!                                                          (type 1: the `init` sync point)
//! init_end     events at t = 0, currents, sample 0
//! step_begin   threshold detection, events due by t + dt/2 (the per-step sync point)
//! step_end     t += dt/2, currents, solve, v += dv, t += dt/2, states, sample, events due by t
//! ```
//!
//! Samples are taken through a callback exactly where NEURON records (before the events at
//! the end of the step). No allocation happens per step once the queue and the spike buffer
//! have grown to their working size.

mod artcell;
pub mod hh;
mod mech;
mod queue;
pub mod random123;
mod tree;

use std::ops::Range;

use crate::error::{Error, Result};
use crate::model::{CellKind, Model, Object, ParamRef, PointKind};
use crate::signal::{self, NodeVar, PointVar, SignalSpec};
use artcell::{NetStim, VecStim};
use hh::RateTable;
use mech::{Exp2Syn, ExpSyn, Hh, IClamp, Pas};
pub use queue::{Event, EventKind};
use queue::EventQueue;
use tree::Tree;

/// NEURON's offset of a detected spike past the step time (PreSyn::check, teps).
const THRESHOLD_TEPS: f64 = 1e-10;

/// Something that receives events (has a NET_RECEIVE block), by its slot in the type's arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    ExpSyn(u32),
    Exp2Syn(u32),
    NetStim(u32),
    VecStim(u32),
}

/// Where a model point process lives in its type's arrays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PointSlot {
    ExpSyn(usize),
    Exp2Syn(usize),
    IClamp(usize),
}

impl PointSlot {
    fn target(self) -> Option<Target> {
        match self {
            PointSlot::ExpSyn(k) => Some(Target::ExpSyn(k as u32)),
            PointSlot::Exp2Syn(k) => Some(Target::Exp2Syn(k as u32)),
            PointSlot::IClamp(_) => None,
        }
    }
}

/// A spike: its source (sections first, then artificial cells; see `Sim::source_name`) and time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    pub source: u32,
    pub t: f64,
}

/// A resolved signal: where its value lives, for fast repeated reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalRef {
    V(usize),
    Hh(NodeVar, usize),
    Pas(usize),
    ExpSyn(PointVar, usize),
    Exp2Syn(PointVar, usize),
    IClamp(usize),
}

/// Where the simulation is in its cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Built, never initialized.
    Built,
    /// After `init_begin`.
    InitBegun,
    /// After `init_states` (the `init` sync point).
    InitStates,
    /// Between steps: after `init_end` or `step_end`.
    Ready,
    /// After `step_begin` (the per-step sync point).
    InStep,
}

/// NetCons as arrays, with each source's NetCons (creation order) as ranges into `by_source`.
#[derive(Debug, Clone, Default)]
struct NetCons {
    delay: Vec<f64>,
    weight: Vec<f64>,
    target: Vec<Target>,
    by_source: Vec<u32>,
    source_range: Vec<Range<usize>>,
}

/// `net_event`: record the spike, queue one event per NetCon of the source.
fn fire(nets: &NetCons, spikes: &mut Vec<Spike>, source: usize, t: f64, queue: &mut EventQueue) {
    spikes.push(Spike { source: source as u32, t });
    for &nc in &nets.by_source[nets.source_range[source].clone()] {
        queue.push(t + nets.delay[nc as usize], EventKind::NetCon(nc));
    }
}

#[derive(Debug, Clone)]
pub struct Sim {
    model: Model,
    tree: Tree,
    pas: Pas,
    hh: Hh,
    iclamp: IClamp,
    expsyn: ExpSyn,
    exp2syn: Exp2Syn,
    netstim: NetStim,
    vecstim: VecStim,
    /// Per section, its instances in `hh` and `pas`.
    sec_hh: Vec<Range<usize>>,
    sec_pas: Vec<Range<usize>>,
    /// Per model point process / artificial cell, its slot.
    point_slot: Vec<PointSlot>,
    cell_slot: Vec<Target>,
    det_node: Vec<usize>,
    det_thresh: Vec<f64>,
    det_flag: Vec<bool>,
    nets: NetCons,
    queue: EventQueue,
    spikes: Vec<Spike>,
    table: RateTable,
    q10: f64,
    t: f64,
    step: u64,
    geometry_dirty: bool,
    stage: Stage,
}

impl Sim {
    /// Builds a simulation of `model`; call `initialize` (or its three stages) before stepping.
    pub fn new(model: Model) -> Result<Sim> {
        for name in &model.record {
            signal::resolve(&model, name)?;
        }
        let tree = Tree::layout(&model);
        let nsec = model.sections.len();

        let mut pas = Pas::default();
        let mut hh = Hh::default();
        // Density mechanisms, in node order (sections are laid out contiguously).
        let mut by_first: Vec<usize> = (0..nsec).collect();
        by_first.sort_by_key(|&s| tree.sections[s].first);
        let mut sec_hh = vec![0..0; nsec];
        let mut sec_pas = vec![0..0; nsec];
        for &s in &by_first {
            let lay = tree.sections[s];
            let spec = &model.sections[s];
            if spec.hh.is_some() {
                let start = hh.node.len();
                (lay.first..lay.first + lay.nseg).for_each(|nd| hh.push(nd));
                sec_hh[s] = start..hh.node.len();
            }
            if spec.pas.is_some() {
                let start = pas.node.len();
                (lay.first..lay.first + lay.nseg).for_each(|nd| pas.push(nd));
                sec_pas[s] = start..pas.node.len();
            }
        }

        // Point processes: per type, by node, newest first on a shared node (NEURON prepends
        // new properties to a node's list).
        let point_node: Vec<usize> = model
            .points
            .iter()
            .map(|p| {
                let s = model.section_index(&p.at.section).expect("checked section");
                tree.sections[s].node_at(p.at.x)
            })
            .collect();
        let mut order: Vec<usize> = (0..model.points.len()).collect();
        order.sort_by_key(|&i| (point_node[i], std::cmp::Reverse(i)));
        let mut iclamp = IClamp::default();
        let mut expsyn = ExpSyn::default();
        let mut exp2syn = Exp2Syn::default();
        let mut point_slot = vec![PointSlot::IClamp(0); model.points.len()];
        for &i in &order {
            let nd = point_node[i];
            point_slot[i] = match model.points[i].kind {
                PointKind::IClamp { .. } => {
                    iclamp.push(nd);
                    PointSlot::IClamp(iclamp.node.len() - 1)
                }
                PointKind::ExpSyn { .. } => {
                    expsyn.push(nd);
                    PointSlot::ExpSyn(expsyn.node.len() - 1)
                }
                PointKind::Exp2Syn { .. } => {
                    exp2syn.push(nd);
                    PointSlot::Exp2Syn(exp2syn.node.len() - 1)
                }
            };
        }

        let mut netstim = NetStim::default();
        let mut vecstim = VecStim::default();
        let cell_slot: Vec<Target> = model
            .cells
            .iter()
            .enumerate()
            .map(|(ci, c)| match &c.kind {
                CellKind::NetStim { .. } => {
                    netstim.push(ci as u32);
                    Target::NetStim(netstim.cell.len() as u32 - 1)
                }
                CellKind::VecStim { times } => {
                    vecstim.push(ci as u32, times.clone());
                    Target::VecStim(vecstim.cell.len() as u32 - 1)
                }
            })
            .collect();

        let det_node: Vec<usize> = tree.sections.iter().map(|l| l.segment_node(0.5)).collect();

        let nsrc = nsec + model.cells.len();
        let source_of = |name: &str| match model.object(name) {
            Some(Object::Section(s)) => s,
            Some(Object::Cell(c)) => nsec + c,
            _ => unreachable!("checked source"),
        };
        let mut nets = NetCons::default();
        let mut per_source: Vec<Vec<u32>> = vec![vec![]; nsrc];
        for (i, n) in model.netcons.iter().enumerate() {
            per_source[source_of(&n.source)].push(i as u32);
            nets.target.push(match model.object(&n.target) {
                Some(Object::Point(p)) => point_slot[p].target().expect("checked: not an IClamp"),
                Some(Object::Cell(c)) => cell_slot[c],
                _ => unreachable!("checked target"),
            });
            nets.delay.push(0.0);
            nets.weight.push(0.0);
        }
        for list in per_source {
            let start = nets.by_source.len();
            nets.by_source.extend(list);
            nets.source_range.push(start..nets.by_source.len());
        }

        let mut sim = Sim {
            tree,
            pas,
            hh,
            iclamp,
            expsyn,
            exp2syn,
            netstim,
            vecstim,
            sec_hh,
            sec_pas,
            point_slot,
            cell_slot,
            det_flag: vec![false; det_node.len()],
            det_thresh: vec![0.0; det_node.len()],
            det_node,
            nets,
            queue: EventQueue::default(),
            spikes: Vec::with_capacity(1024),
            table: RateTable::default(),
            q10: 1.0,
            t: 0.0,
            step: 0,
            geometry_dirty: true,
            stage: Stage::Built,
            model,
        };
        sim.refresh_all();
        Ok(sim)
    }

    // ---- parameters -------------------------------------------------------------------

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Reads a parameter by its NEURON-style name.
    pub fn get(&self, name: &str) -> Result<f64> {
        self.model.get(name)
    }

    /// Sets a parameter; it takes effect from the next computation that uses it (a change of
    /// geometry rebuilds the cable coefficients before the next currents). Structural
    /// parameters (nseg) cannot change in a built simulation. On error nothing changes.
    pub fn set(&mut self, name: &str, value: f64) -> Result<()> {
        let r = self.check_set(name, value)?;
        self.model.set_ref(r, value);
        self.refresh(r);
        Ok(())
    }

    /// Everything `set` checks, without changing anything.
    pub fn check_set(&self, name: &str, value: f64) -> Result<ParamRef> {
        let (_, _, _, runtime) = self.model.resolve(name)?;
        if !runtime {
            return Err(Error::NotWritable {
                name: name.to_string(),
                reason: "it changes the model's structure: set it in the model file or with --set".into(),
            });
        }
        Ok(self.model.check(name, value)?.0)
    }

    fn refresh_all(&mut self) {
        self.refresh(ParamRef::Global("celsius"));
        for s in 0..self.model.sections.len() {
            self.refresh_section(s);
        }
        for p in 0..self.model.points.len() {
            self.refresh(ParamRef::Field(Object::Point(p), ""));
        }
        for c in 0..self.model.cells.len() {
            self.refresh(ParamRef::Field(Object::Cell(c), ""));
        }
        for n in 0..self.model.netcons.len() {
            self.refresh(ParamRef::Field(Object::NetCon(n), ""));
        }
    }

    /// Copies an object's parameters from the model into the arrays the kernels read.
    fn refresh(&mut self, r: ParamRef) {
        match r {
            ParamRef::Global(_) => {
                let run = &self.model.run;
                self.q10 = hh::q10(run.celsius);
                self.netstim.globalindex = run.random123_globalindex;
                if run.usetable_hh {
                    self.table.check(run.celsius);
                }
            }
            ParamRef::Field(Object::Section(s), _) => self.refresh_section(s),
            ParamRef::Field(Object::Point(p), _) => match (self.model.points[p].kind.clone(), self.point_slot[p]) {
                (PointKind::ExpSyn { tau, e }, PointSlot::ExpSyn(k)) => {
                    self.expsyn.tau[k] = tau;
                    self.expsyn.e[k] = e;
                }
                (PointKind::Exp2Syn { tau1, tau2, e }, PointSlot::Exp2Syn(k)) => {
                    self.exp2syn.tau1[k] = tau1;
                    self.exp2syn.tau2[k] = tau2;
                    self.exp2syn.e[k] = e;
                }
                (PointKind::IClamp { del, dur, amp }, PointSlot::IClamp(k)) => {
                    self.iclamp.del[k] = del;
                    self.iclamp.dur[k] = dur;
                    self.iclamp.amp[k] = amp;
                }
                _ => unreachable!("a point's slot matches its kind"),
            },
            ParamRef::Field(Object::Cell(c), field) => {
                if let (CellKind::NetStim { interval, number, start, noise, id1, id2, id3 }, Target::NetStim(k)) =
                    (&self.model.cells[c].kind, self.cell_slot[c])
                {
                    let k = k as usize;
                    self.netstim.interval[k] = *interval;
                    self.netstim.number[k] = *number;
                    self.netstim.start[k] = *start;
                    self.netstim.noise[k] = *noise;
                    // `ranvar.set_ids(...)`, only when the ids are what changed: NEURON's
                    // set_ids leaves the stream's position and computed block alone.
                    if matches!(field, "" | "id1" | "id2" | "id3") {
                        self.netstim.ranvar[k].set_ids([*id1 as u32, *id2 as u32, *id3 as u32]);
                    }
                }
            }
            ParamRef::Field(Object::NetCon(n), _) => {
                let spec = &self.model.netcons[n];
                self.nets.delay[n] = spec.delay;
                self.nets.weight[n] = spec.weight;
                if let Some(Object::Section(s)) = self.model.object(&spec.source) {
                    self.det_thresh[s] = self.model.sections[s].threshold;
                }
            }
        }
    }

    fn refresh_section(&mut self, s: usize) {
        let spec = &self.model.sections[s];
        self.det_thresh[s] = spec.threshold;
        if let Some(p) = &spec.hh {
            for k in self.sec_hh[s].clone() {
                self.hh.gnabar[k] = p.gnabar;
                self.hh.gkbar[k] = p.gkbar;
                self.hh.gl[k] = p.gl;
                self.hh.el[k] = p.el;
                self.hh.ena[k] = p.ena;
                self.hh.ek[k] = p.ek;
            }
        }
        if let Some(p) = &spec.pas {
            for k in self.sec_pas[s].clone() {
                self.pas.g[k] = p.g;
                self.pas.e[k] = p.e;
            }
        }
        self.geometry_dirty = true;
    }

    fn update_geometry(&mut self) {
        if !self.geometry_dirty {
            return;
        }
        self.tree.geometry(&self.model.sections);
        let area = &self.tree.area;
        for (mf, &nd) in self.iclamp.mfact.iter_mut().zip(&self.iclamp.node) {
            *mf = 1.0e2 / area[nd];
        }
        for (mf, &nd) in self.expsyn.mfact.iter_mut().zip(&self.expsyn.node) {
            *mf = 1.0e2 / area[nd];
        }
        for (mf, &nd) in self.exp2syn.mfact.iter_mut().zip(&self.exp2syn.node) {
            *mf = 1.0e2 / area[nd];
        }
        self.geometry_dirty = false;
    }

    // ---- time ---------------------------------------------------------------------------

    pub fn t(&self) -> f64 {
        self.t
    }

    /// Steps completed since initialization.
    pub fn step_index(&self) -> u64 {
        self.step
    }

    pub fn dt(&self) -> f64 {
        self.model.run.dt
    }

    pub fn tstop(&self) -> f64 {
        self.model.run.tstop
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// NEURON's stdrun rule: another step is taken while `t < tstop - dt/2`.
    pub fn running(&self) -> bool {
        self.t < self.model.run.tstop - self.model.run.dt / 2.0
    }

    /// Steps a free run from t = 0 takes (NEURON's loop, counted without simulating).
    pub fn planned_steps(&self) -> u64 {
        let (dt, stop) = (self.model.run.dt, self.model.run.tstop - self.model.run.dt / 2.0);
        let mut t = 0.0f64;
        let mut n = 0;
        while t < stop {
            t += 0.5 * dt;
            t += 0.5 * dt;
            n += 1;
        }
        n
    }

    // ---- initialization -----------------------------------------------------------------

    /// t = 0, events discarded, every node at v_init (FInitializeHandler type 0 follows).
    pub fn init_begin(&mut self) {
        self.t = 0.0;
        self.step = 0;
        self.refresh(ParamRef::Global("celsius"));
        self.update_geometry();
        self.queue.clear();
        self.spikes.clear();
        self.det_flag.iter_mut().for_each(|f| *f = false);
        let v_init = self.model.run.v_init;
        self.tree.v.iter_mut().for_each(|v| *v = v_init);
        self.stage = Stage::InitBegun;
    }

    /// The INITIAL blocks, mechanisms then artificial cells (type 1 handlers follow: `init`).
    pub fn init_states(&mut self) {
        self.iclamp.i.iter_mut().for_each(|i| *i = 0.0);
        self.expsyn.g.iter_mut().for_each(|g| *g = 0.0);
        for (p, slot) in self.point_slot.iter().enumerate() {
            if let PointSlot::Exp2Syn(k) = *slot {
                // NEURON writes an adjusted tau1 back to the parameter; so does the model.
                let tau1 = self.exp2syn.initial(k);
                if let PointKind::Exp2Syn { tau1: t1, .. } = &mut self.model.points[p].kind {
                    *t1 = tau1;
                }
            }
        }
        let (usetable, q10) = (self.model.run.usetable_hh, self.q10);
        let table = &self.table;
        self.hh.initial(&self.tree, |v| if usetable { table.lookup(v) } else { hh::rates_exact(v, q10) });
        for k in 0..self.netstim.cell.len() {
            self.netstim.initial(k, &mut self.queue);
        }
        for k in 0..self.vecstim.cell.len() {
            self.vecstim.initial(k, &mut self.queue);
        }
        self.stage = Stage::InitStates;
    }

    /// Events at t = 0, the currents once, then sample 0.
    pub fn init_end(&mut self, mut sample: impl FnMut(&Sim)) {
        self.deliver(self.t);
        self.currents();
        sample(self);
        self.deliver(self.t);
        self.stage = Stage::Ready;
    }

    /// All of initialization (NEURON's `finitialize(v_init)`).
    pub fn initialize(&mut self, sample: impl FnMut(&Sim)) {
        self.init_begin();
        self.init_states();
        self.init_end(sample);
    }

    // ---- stepping -----------------------------------------------------------------------

    /// Threshold detection and the events due by t + dt/2.
    pub fn step_begin(&mut self) {
        debug_assert_eq!(self.stage, Stage::Ready);
        self.check_thresholds();
        self.deliver(self.t + 0.5 * self.model.run.dt);
        self.stage = Stage::InStep;
    }

    /// The rest of the step; `sample` sees the state NEURON records.
    pub fn step_end(&mut self, mut sample: impl FnMut(&Sim)) {
        debug_assert_eq!(self.stage, Stage::InStep);
        let dt = self.model.run.dt;
        self.t += 0.5 * dt;
        self.currents();
        self.tree.solve_and_update();
        self.t += 0.5 * dt;
        self.expsyn.state(dt);
        self.exp2syn.state(dt);
        let table = self.model.run.usetable_hh.then_some(&self.table);
        self.hh.state(&self.tree, dt, table, self.q10);
        self.step += 1;
        sample(self);
        self.deliver(self.t);
        self.stage = Stage::Ready;
    }

    /// One whole fixed step (NEURON's `fadvance`).
    pub fn step(&mut self, sample: impl FnMut(&Sim)) {
        self.step_begin();
        self.step_end(sample);
    }

    /// The matrix of the step: membrane currents in NEURON's mechanism-type order, then
    /// capacitance and axial terms.
    fn currents(&mut self) {
        self.update_geometry();
        self.tree.rhs.fill(0.0);
        self.tree.d.fill(0.0);
        self.pas.current(&mut self.tree);
        self.iclamp.current(&mut self.tree, self.t);
        self.expsyn.current(&mut self.tree);
        self.exp2syn.current(&mut self.tree);
        self.hh.current(&mut self.tree);
        self.tree.add_cap_and_axial(self.model.run.dt);
    }

    fn check_thresholds(&mut self) {
        for s in 0..self.det_node.len() {
            let v = self.tree.v[self.det_node[s]];
            if v - self.det_thresh[s] > 0.0 {
                if !self.det_flag[s] {
                    self.det_flag[s] = true;
                    fire(&self.nets, &mut self.spikes, s, self.t + THRESHOLD_TEPS, &mut self.queue);
                }
            } else {
                self.det_flag[s] = false;
            }
        }
    }

    /// Delivers every event due by `til`, in order; t is each event's time while it acts.
    fn deliver(&mut self, til: f64) {
        let tsav = self.t;
        while let Some(ev) = self.queue.pop_due(til) {
            self.t = ev.t;
            match ev.kind {
                EventKind::NetCon(nc) => {
                    let nc = nc as usize;
                    self.receive(self.nets.target[nc], 0, self.nets.weight[nc]);
                }
                EventKind::SelfEvent { cell, flag } => self.receive(self.cell_slot[cell as usize], flag, 0.0),
                EventKind::External { target, weight } => self.receive(target, 0, weight),
            }
        }
        self.t = tsav;
    }

    fn receive(&mut self, target: Target, flag: u8, w: f64) {
        let t = self.t;
        let nsec = self.model.sections.len();
        let (nets, spikes) = (&self.nets, &mut self.spikes);
        match target {
            Target::ExpSyn(k) => self.expsyn.g[k as usize] += w,
            Target::Exp2Syn(k) => {
                let k = k as usize;
                let f = self.exp2syn.factor[k];
                self.exp2syn.a[k] += w * f;
                self.exp2syn.b[k] += w * f;
            }
            Target::NetStim(k) => {
                let src = nsec + self.netstim.cell[k as usize] as usize;
                self.netstim.receive(k as usize, flag, w, t, &mut self.queue, |q| fire(nets, spikes, src, t, q));
            }
            Target::VecStim(k) => {
                let src = nsec + self.vecstim.cell[k as usize] as usize;
                self.vecstim.receive(k as usize, flag, t, &mut self.queue, |q| fire(nets, spikes, src, t, q));
            }
        }
    }

    // ---- events from outside ------------------------------------------------------------

    /// Queues an event for the target named `target` at `te` >= t: NEURON's `NetCon.event(te)`.
    /// A synapse or artificial cell needs a `weight`; a NetCon name uses its own target and,
    /// without `weight`, its own weight.
    pub fn inject(&mut self, target: &str, te: f64, weight: Option<f64>) -> Result<()> {
        let (tgt, w) = self.check_inject(target, te, weight)?;
        self.queue.push(te, EventKind::External { target: tgt, weight: w });
        Ok(())
    }

    /// Everything `inject` checks, without queueing anything.
    pub fn check_inject(&self, target: &str, te: f64, weight: Option<f64>) -> Result<(Target, f64)> {
        let (tgt, w) = match self.model.object(target) {
            Some(Object::Point(p)) => {
                let tgt = self.point_slot[p].target().ok_or_else(|| Error::NotATarget {
                    target: target.into(),
                    reason: "an IClamp has no NET_RECEIVE".into(),
                })?;
                (tgt, weight)
            }
            Some(Object::Cell(c)) => (self.cell_slot[c], weight),
            Some(Object::NetCon(n)) => (self.nets.target[n], Some(weight.unwrap_or(self.nets.weight[n]))),
            _ => {
                return Err(Error::UnknownName {
                    what: "event target",
                    name: target.into(),
                    hint: format!("targets are {}", self.targets().join(", ")),
                })
            }
        };
        let w = w.ok_or_else(|| Error::InvalidValue {
            name: format!("{target} event weight"),
            value: f64::NAN,
            allowed: "a weight is needed for a synapse or artificial cell target".into(),
        })?;
        for (what, v) in [("time", te), ("weight", w)] {
            if !v.is_finite() {
                return Err(Error::InvalidValue {
                    name: format!("{target} event {what}"),
                    value: v,
                    allowed: "a finite number".into(),
                });
            }
        }
        if te < self.t {
            return Err(Error::EventInPast { target: target.into(), te, t: self.t });
        }
        Ok((tgt, w))
    }

    /// Names that can receive events: synapses, artificial cells, NetCons.
    pub fn targets(&self) -> Vec<&str> {
        let m = &self.model;
        let points = m.points.iter().zip(&self.point_slot).filter(|(_, s)| s.target().is_some());
        points
            .map(|(p, _)| p.name.as_str())
            .chain(m.cells.iter().map(|c| c.name.as_str()))
            .chain(m.netcons.iter().map(|n| n.name.as_str()))
            .collect()
    }

    /// The index of a spike source by name (as in `Spike::source`).
    pub fn source_index(&self, name: &str) -> Option<usize> {
        self.source_names().iter().position(|s| *s == name)
    }

    pub fn pending_events(&self) -> usize {
        self.queue.len()
    }

    // ---- outputs ------------------------------------------------------------------------

    /// Names of spike sources, indexed by `Spike::source`: sections, then artificial cells.
    pub fn source_names(&self) -> Vec<&str> {
        let s = self.model.sections.iter().map(|s| s.name.as_str());
        s.chain(self.model.cells.iter().map(|c| c.name.as_str())).collect()
    }

    /// Moves the spikes found since the last call into `out` (keeps both buffers' capacity).
    pub fn take_spikes(&mut self, out: &mut Vec<Spike>) {
        out.append(&mut self.spikes);
    }

    /// Resolves a signal name (`soma.v`, `dend(0.1).v`, `syn.g`) to a fast reference.
    pub fn signal(&self, name: &str) -> Result<SignalRef> {
        Ok(match signal::resolve(&self.model, name)? {
            SignalSpec::Node { section, x, var } => {
                let lay = self.tree.sections[section];
                if var == NodeVar::V {
                    SignalRef::V(lay.node_at(x))
                } else {
                    let nd = lay.segment_node(x);
                    let k = if var == NodeVar::IPas {
                        self.sec_pas[section].start
                    } else {
                        self.sec_hh[section].start
                    } + (nd - lay.first);
                    if var == NodeVar::IPas {
                        SignalRef::Pas(k)
                    } else {
                        SignalRef::Hh(var, k)
                    }
                }
            }
            SignalSpec::Point { point, var } => match self.point_slot[point] {
                PointSlot::IClamp(k) => SignalRef::IClamp(k),
                PointSlot::ExpSyn(k) => SignalRef::ExpSyn(var, k),
                PointSlot::Exp2Syn(k) => SignalRef::Exp2Syn(var, k),
            },
        })
    }

    /// A digest of the whole simulation state (time, every state variable, parameter, pending
    /// event and random stream), for checking that something changed nothing.
    pub fn state_hash(&self) -> u64 {
        fnv1a(format!("{self:?}").as_bytes())
    }

    #[inline]
    pub fn value(&self, s: SignalRef) -> f64 {
        match s {
            SignalRef::V(nd) => self.tree.v[nd],
            SignalRef::Hh(var, k) => {
                let h = &self.hh;
                match var {
                    NodeVar::MHh => h.m[k],
                    NodeVar::HHh => h.h[k],
                    NodeVar::NHh => h.n[k],
                    NodeVar::Ina => h.ina[k],
                    NodeVar::Ik => h.ik[k],
                    NodeVar::IlHh => h.il[k],
                    NodeVar::GnaHh => h.gna[k],
                    NodeVar::GkHh => h.gk[k],
                    NodeVar::V | NodeVar::IPas => unreachable!("not an hh variable"),
                }
            }
            SignalRef::Pas(k) => self.pas.i[k],
            SignalRef::ExpSyn(var, k) => match var {
                PointVar::G => self.expsyn.g[k],
                _ => self.expsyn.i[k],
            },
            SignalRef::Exp2Syn(var, k) => match var {
                PointVar::G => self.exp2syn.g[k],
                PointVar::I => self.exp2syn.i[k],
                PointVar::A => self.exp2syn.a[k],
                PointVar::B => self.exp2syn.b[k],
            },
            SignalRef::IClamp(k) => self.iclamp.i[k],
        }
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}
