//! Execution: a `Sim` is built from a `Model` and advances it with NEURON's fixed-step method
//! (`nrn_finitialize`, then `fadvance` with secondorder = 0), reproducing NEURON 9.0.2 bit for
//! bit.
//!
//! `advance` runs to the next *pause*: a step boundary, or one of the places where NEURON runs
//! a user's callback, when the caller asked for it (`Stops`, and `at` times queued as events).
//! The pauses, in NEURON's order (`nrn_finitialize`, `nrn_fixed_step` in fadvance.cpp,
//! `NetCvode::deliver_net_events` and `PreSyn::record` in netcvode.cpp):
//!
//! ```text
//! Init(3)     before anything (FInitializeHandler type 3)
//!             t = 0, tables, geometry, queue cleared (pending `at` times queued), v = v_init
//! Init(0)     FInitializeHandler type 0
//!             INITIAL blocks; artificial cells queue their first events
//! Init(1)     FInitializeHandler type 1
//!             events at t = 0 [Spike], currents, sample 0, events at t = 0 [Spike]
//! Boundary    t = 0: CVode.event callbacks delivered at 0, then FInitializeHandler type 2
//! each step from t_n:
//!             tables and geometry brought up to date (fadvance's checks)
//!             threshold detectors in order [Spike: NetCon.record's callback, t_n + 1e-10,
//!                                           before the spike's NetCon events are queued]
//!             events due by t_n + dt/2 [Spike at an artificial cell's net_event]
//!             t += dt/2, currents, solve, v += dv, t += dt/2
//! ScatterGather  extra_scatter_gather(0): v is v_{n+1}, h.t still t_n, states not updated
//!             states, sample, events due by t_{n+1} [Spike]
//! Boundary    t_{n+1}: CVode.event callbacks whose events were delivered during the step
//!             (NEURON defers them to the end of fadvance), the `every` point, the end
//! ```
//!
//! Samples are taken through a callback exactly where NEURON records. No allocation happens
//! per step once the queue and the spike buffer have grown to their working size.

pub mod cells;
pub mod kernels;
mod pool;
pub(crate) mod queue;
pub mod random123;
mod state;

use std::ops::Range;

use crate::error::{Error, Result};
use crate::mech::{hh, ArtBlock, ArtCx, MechKind, Rates, MECHANISMS};
use crate::model::{self, Model, Object, ParamRef};
use crate::signal::{self, NodeVar, SignalSpec};
use cells::{Cells, Probe};
pub use kernels::Kernels;
use kernels::Work;
pub use queue::{Event, EventKind};
use queue::EventQueue;
pub use state::{Words, EVENT_WORDS, STATE_FORMAT};

/// NEURON's offset of a detected spike past the step time (PreSyn::check, teps).
const THRESHOLD_TEPS: f64 = 1e-10;

/// Something that receives events (has a NET_RECEIVE block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A point process: its tile, block and entry.
    Point { tile: u32, block: u16, at: u32 },
    /// An artificial cell: its type's block (`Sim::arts`) and its instance there.
    Art { block: u16, k: u32 },
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
    /// v of a node: its tile and index in the tile's node arrays.
    V { tile: u32, idx: u32 },
    /// Variable `var` of entry `at` of a tile's block.
    Var { tile: u32, block: u16, var: u16, at: u32 },
    /// Variable `var` of instance k of an artificial cell type's block.
    Cell { block: u16, var: u16, k: u32 },
}

/// What `advance` pauses at besides step boundaries and `at` times: the callbacks a NEURON
/// program would have registered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stops {
    /// FInitializeHandler types 0 to 3 (type 2 is the boundary that ends initialization).
    pub init: [bool; 4],
    /// `CVode.extra_scatter_gather(0, f)` in the steps from t_n with n a multiple of N (every
    /// step for 1); 0: never.
    pub scatter_gather: u64,
    /// Mark the boundaries of steps that are multiples of N (`Boundary::every`); 0: never.
    pub every: u64,
    /// Per spike source (`Spike::source`): pause when it fires (`NetCon.record(callback)`).
    pub on_spike: Vec<bool>,
}

/// Where `advance` stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Pause {
    /// FInitializeHandler type 0, 1 or 3 (type 2 is a `Boundary` with `init`).
    Init(u8),
    /// A source in `Stops::on_spike` fired: NetCon.record's callback. `now()` is the spike's
    /// time. The spike's NetCon events are queued when the run resumes, with the delays read
    /// then (NEURON runs the callback before it queues them); an artificial cell finishes its
    /// NET_RECEIVE then too (a NetStim reads `interval` for its next spike after the callback).
    Spike(Spike),
    /// Inside a step: v is already v_{n+1}, the states are not yet updated, and `now()` is
    /// NEURON's h.t inside extra_scatter_gather (t_n, or the time of a spike whose callback
    /// ran earlier in the step), while `t()` is t_{n+1}.
    ScatterGather,
    /// A step boundary: t_n after every event due by t_n was delivered.
    Boundary(Boundary),
    /// The interrupt flag (`set_interrupt`) was raised while events were being delivered: the
    /// run should end (it can go on with `advance`).
    Interrupted,
    /// One of the `Limits` was passed (what, and the limit): the run must end; the state is
    /// consistent up to the last sample.
    Limit(LimitHit),
}

/// What a run may not exceed (a hostile or mistaken setting must not take the node down).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Steps from initialization to tstop: a `dt` or `tstop` that would make more is refused.
    pub max_steps: u64,
    /// Events delivered in one step (its two windows).
    pub max_events_per_step: u64,
    /// Events waiting in the queue.
    pub max_queue: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_steps: 1_000_000_000, max_events_per_step: 10_000_000, max_queue: 10_000_000 }
    }
}

/// A limit passed during a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    EventsPerStep(u64),
    Queue(usize),
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LimitHit::EventsPerStep(n) => write!(f, "more than {n} events in one step (--max-events-per-step)"),
            LimitHit::Queue(n) => write!(f, "more than {n} events waiting in the queue (--max-queue)"),
        }
    }
}

/// What falls on a step boundary.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Boundary {
    /// FInitializeHandler type 2: this boundary ends initialization (t = 0).
    pub init: bool,
    /// The step is a multiple of `Stops::every`.
    pub every: bool,
    /// The `at` times (as scheduled) whose events were delivered since the previous boundary,
    /// in delivery order: CVode.event callbacks, which NEURON runs at the end of the fadvance
    /// (or finitialize) that delivered their events.
    pub at: Vec<f64>,
    /// The run reached tstop (NEURON's rule: no step while t >= tstop - dt/2).
    pub end: bool,
}

/// Where `advance` is, between calls: the point it paused at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Built, never advanced: the FInitializeHandler type 3 point.
    Built,
    /// Paused at FInitializeHandler type 3.
    Init3,
    Init0,
    Init1,
    /// Delivering a window of events (paused at a spike inside it).
    Deliver(Window),
    Thresholds(usize),
    ScatterGather,
    Boundary,
}

/// The event deliveries of initialization and of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// Events at t = 0, before the initial currents.
    Init,
    /// Events at t = 0 after sample 0.
    InitRecord,
    /// Events due by t_n + dt/2, before the step's currents.
    StepStart,
    /// Events due by t_{n+1}, after the step's sample.
    StepEnd,
}

/// What follows a spike once its NetCon events are queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterFire {
    Detector,
    Art { block: u16, k: u32 },
}

/// A spike whose callback pause is in progress: the rest of its `PreSyn::send`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Resume {
    spike: Spike,
    then: AfterFire,
}

/// NEURON's `CVode.event(T)` in a fixed-step run moves T to T - dt/4 when T is (within 1e-6)
/// a multiple of dt above dt, so that round-off in t cannot push it into the next step
/// (cvodeobj.cpp, `nrn_event`). The event is then delivered in the step that reaches it.
pub fn cvode_event_time(t: f64, dt: f64) -> f64 {
    let y = t / dt;
    if y > 1.0 && ((y + 1e-6).floor() - y).abs() < 1e-6 {
        t - dt / 4.0
    } else {
        t
    }
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

/// The state of each `Vector.play` of the model (what it plays is `Model::plays`).
#[derive(Debug, Clone, Default)]
struct Plays {
    list: Vec<Play>,
    /// The continuous plays, in creation order (NEURON's `fixed_play_` list).
    continuous: Vec<u32>,
}

/// vrecord.cpp's VecPlayStep (`index`: current_index_) or VecPlayContinuous (`index`:
/// ubound_index_, `last`: last_index_).
#[derive(Debug, Clone)]
struct Play {
    target: ParamRef,
    index: usize,
    last: usize,
}

/// Where the spike detector of each section is (its threshold and flags live in its tile).
#[derive(Debug, Clone, Default)]
struct Detectors {
    tile: Vec<u32>,
    /// The detector's entry in its tile's detector arrays.
    x: Vec<u32>,
    /// v of the detector's node: its index in the tile's node arrays.
    idx: Vec<u32>,
    /// Sections whose detector fired in the current step's check, ascending.
    fired: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct Sim {
    /// First, so that it is dropped first: dropping the pool waits for the step threads,
    /// which may still be stepping tiles (a window whose caller panicked), before the tiles
    /// go.
    threads: Threads,
    model: Model,
    cells: Cells,
    /// The artificial cells, a block per type present, in type order (NEURON's order of
    /// their INITIAL blocks).
    arts: Vec<ArtBlock>,
    /// Per artificial cell of the model, where it is in `arts`.
    cell_slot: Vec<Target>,
    det: Detectors,
    nets: NetCons,
    plays: Plays,
    queue: EventQueue,
    spikes: Vec<Spike>,
    rates: Rates,
    t: f64,
    step: u64,
    geometry_dirty: bool,
    stops: Stops,
    /// Which spikes pause the run, known since the stops last changed; None: to be found
    /// again (`stops_mut` hands them out for changing). Scanning every section's flag at
    /// every step cost more than the rest of the threshold check at 1,000 cells.
    watched: Option<Watched>,
    phase: Phase,
    /// NEURON's h.t at the current pause (see `now`).
    now: f64,
    /// hoc's `t` inside the current step: t_n, or the time of the last spike whose callback
    /// ran (NEURON sets it there and resets it only when the step ends).
    hoc_t: f64,
    /// The step's dt (NEURON copies dt to its threads when a step begins: a change of dt
    /// inside a step acts from the next one).
    dt_step: f64,
    /// The current delivery window: events due by `til`, then t back to `tsav`.
    til: f64,
    tsav: f64,
    resume: Option<Resume>,
    /// The v_init of this initialization (finitialize's argument).
    v_init: f64,
    /// Scheduled `at` times not yet delivered: (id, T as scheduled, T as queued).
    at_pending: Vec<(u32, f64, f64)>,
    at_next_id: u32,
    /// `at` times delivered since the previous boundary.
    at_fired: Vec<f64>,
    limits: Limits,
    /// Events delivered in the current step (or initialization).
    delivered: u64,
    /// Raised from outside (a signal handler) to stop a long delivery.
    interrupt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The rows of the matrix while a tile steps on this thread (`kernels::dispatch`).
    scratch: Vec<f64>,
    /// Whether anything may read the mechanisms' `current_outputs` between steps (see
    /// `set_outputs_read`).
    outputs_read: bool,
    kernels: Kernels,
    /// Windows of steps allowed (`set_windows`).
    windows: bool,
    /// The least delay of a NetCon from a section's detector (infinite: none), known since
    /// the delays last changed.
    det_delay: Option<f64>,
    /// The sampled signals that live in tiles, each with its tile and its index among the
    /// tile's probes (`set_windows`).
    window_refs: Vec<(SignalRef, u32, u32)>,
    /// While `sample` sees step j of a window after it ran: j (`value` reads the probes).
    replay: Option<u32>,
    /// t after each step of the current window, and the crossings found in it.
    window_t: Vec<f64>,
    window_found: Vec<(u32, u32)>,
    /// Windows run so far (`windows_run`).
    windows_run: u64,
}

/// Which spike sources pause the run (`Stops::on_spike`).
#[derive(Debug, Clone, Copy)]
struct Watched {
    /// Some section's detector.
    sections: bool,
    /// Some source at all.
    any: bool,
}

/// The threads that run the step kernels (one: the caller alone).
struct Threads {
    n: usize,
    /// Each thread's tiles.
    shares: Vec<Range<usize>>,
    /// A step's work: nodes over all cells.
    work: usize,
    /// The least `work` for which the steps use the threads (`PARALLEL_MIN_WORK`).
    min_work: usize,
    /// The threads the steps run on (`Sim::step_threads`).
    used: usize,
    /// Started at the first step that uses it.
    pool: Option<pool::Pool>,
}

impl Clone for Threads {
    /// A copy has its own threads, started when it first steps.
    fn clone(&self) -> Self {
        Threads { pool: None, shares: self.shares.clone(), ..*self }
    }
}

impl std::fmt::Debug for Threads {
    /// Nothing: the thread count is not part of the simulation's state.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Threads")
    }
}

/// The most threads a simulation takes.
pub const MAX_THREADS: usize = 256;

/// A window of steps (`Sim::set_windows`) is at most this much work (nodes times steps, about
/// 10 ms on one thread), so that a signal or a full disk is seen soon after it happens. The
/// longer a window, the longer a tile's data stays in cache (10^5 cells step in windows of
/// 13 steps: 0.74-0.81 s for 800 steps against 0.78-0.79 s with windows of 3, `spikebus run`)...
const WINDOW_WORK: usize = 1 << 22;
/// ...and at most this many steps.
const MAX_WINDOW: usize = 1024;

/// The least work per step (nodes, over all cells; the seed cell has 3) for which the steps
/// run on more than one thread. Starting the threads and waiting for them costs
/// 0.25-1.5 µs per step on a 2-vCPU machine (the host decides how far apart its vCPUs are);
/// below about 170 seed cells that is more than the second thread saves (`step_time`, 1 and 2
/// threads: 128 cells 9.3 against 10.1 ns per cell-step, 256 cells 8.8 against 6.1).
pub const PARALLEL_MIN_WORK: usize = 512;

impl Sim {
    /// Builds a simulation of `model`; `advance` (or `initialize`, then `step`) runs it.
    pub fn new(model: Model) -> Result<Sim> {
        Sim::with_threads(model, 1)
    }

    /// A simulation whose steps run on `threads` threads (1 to `MAX_THREADS`): the results
    /// are the same for every thread count. A model too small to gain from threads (less
    /// work per step than `PARALLEL_MIN_WORK`) steps on one (`step_threads`).
    pub fn with_threads(model: Model, threads: usize) -> Result<Sim> {
        Sim::with_threads_from(model, threads, PARALLEL_MIN_WORK)
    }

    /// `with_threads`, the steps on the threads from `min_work` nodes of work per step (0:
    /// whenever there are two tiles). Below it the cells are cut into tiles as for one thread.
    pub fn with_threads_from(model: Model, threads: usize, min_work: usize) -> Result<Sim> {
        if !(1..=MAX_THREADS).contains(&threads) {
            return Err(Error::InvalidValue {
                name: "threads".into(),
                value: threads as f64,
                allowed: format!("an integer from 1 to {MAX_THREADS}"),
            });
        }
        for name in &model.record {
            signal::resolve(&model, name)?;
        }
        let mut cells = Cells::build(&model, threads);
        let work: usize = cells.tiles.iter().map(|t| t.v.len()).sum();
        if threads > 1 && work < min_work {
            // Stepped on one thread: in one thread's tiles (fewer, wider).
            cells = Cells::build(&model, 1);
        }
        let scratch = vec![0.0; cells.scratch_len()];
        let shares = pool::shares(&cells.tiles, threads);
        let used = if threads > 1 && cells.tiles.len() > 1 && work >= min_work { threads } else { 1 };
        let nsec = model.sections.len();

        let mut arts: Vec<ArtBlock> = vec![];
        let mut cell_slot = vec![Target::Art { block: 0, k: 0 }; model.cells.len()];
        for def in MECHANISMS.iter().filter(|d| d.kind == MechKind::Artificial) {
            let mut block = ArtBlock::new(def);
            for (ci, c) in model.cells.iter().enumerate().filter(|(_, c)| std::ptr::eq(c.mech.def(), *def)) {
                cell_slot[ci] = Target::Art { block: arts.len() as u16, k: block.len() as u32 };
                block.push(ci as u32, c);
            }
            if !block.is_empty() {
                arts.push(block);
            }
        }

        let mut det = Detectors::default();
        for at in &cells.sec_at {
            let tile = &cells.tiles[at.tile as usize];
            det.tile.push(at.tile);
            det.x.push(at.local * tile.lanes as u32 + at.lane);
            det.idx.push(tile.det_index(at.local as usize, at.lane as usize) as u32);
        }

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
                Some(Object::Point(p)) => point_target(&cells, p),
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

        let mut plays = Plays::default();
        for (p, spec) in model.plays.iter().enumerate() {
            let (target, _) = model.play_target(&spec.target)?;
            let ok = !spec.values.is_empty()
                && match (&spec.times, spec.dt) {
                    (Some(t), None) => t.len() == spec.values.len() && t.windows(2).all(|w| w[0] <= w[1]),
                    (None, Some(dt)) => dt > 0.0 && !spec.continuous,
                    _ => false,
                };
            if !ok {
                return Err(Error::InvalidValue {
                    name: format!("play {}", spec.name),
                    value: spec.values.len() as f64,
                    allowed: "values with non-decreasing times, one per value, or a dt (not continuous)".into(),
                });
            }
            plays.list.push(Play { target, index: 0, last: 0 });
            if spec.continuous {
                plays.continuous.push(p as u32);
            }
        }

        let mut sim = Sim {
            plays,
            cells,
            arts,
            cell_slot,
            det,
            nets,
            queue: EventQueue::default(),
            spikes: Vec::with_capacity(1024),
            rates: Rates { q10: 1.0, ..Rates::default() },
            t: 0.0,
            step: 0,
            geometry_dirty: true,
            stops: Stops { on_spike: vec![false; nsrc], ..Stops::default() },
            watched: None,
            windows: false,
            det_delay: None,
            window_refs: vec![],
            replay: None,
            window_t: vec![],
            window_found: vec![],
            windows_run: 0,
            phase: Phase::Built,
            now: 0.0,
            hoc_t: 0.0,
            dt_step: 0.0,
            til: 0.0,
            tsav: 0.0,
            resume: None,
            v_init: 0.0,
            at_pending: vec![],
            at_next_id: 0,
            at_fired: vec![],
            limits: Limits::default(),
            delivered: 0,
            interrupt: None,
            scratch,
            outputs_read: true,
            kernels: Kernels::best(),
            threads: Threads { n: threads, shares, work, min_work, used, pool: None },
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
        let (_, field) = self.model.resolve(name)?;
        if !field.runtime {
            return Err(Error::NotWritable {
                name: name.to_string(),
                reason: "it changes the model's structure: set it in the model file or with --set".into(),
            });
        }
        let r = self.model.check(name, value)?.0;
        let run = &self.model.run;
        match name {
            "dt" => self.check_length(value, run.tstop)?,
            "tstop" => self.check_length(run.dt, value)?,
            _ => {}
        }
        Ok(r)
    }

    fn refresh_all(&mut self) {
        self.refresh(ParamRef::Global(3));
        for s in 0..self.model.sections.len() {
            self.refresh_section(s);
        }
        for point in 0..self.model.points.len() {
            for field in 0..self.model.points[point].params.len() {
                self.refresh_point(point, field);
            }
        }
        for cell in 0..self.model.cells.len() {
            for field in 0..self.model.cells[cell].params.len() {
                self.refresh(ParamRef::Cell { cell, field });
            }
        }
        for netcon in 0..self.model.netcons.len() {
            self.refresh(ParamRef::NetCon { netcon, field: model::NC_DELAY });
            self.refresh(ParamRef::NetCon { netcon, field: model::NC_WEIGHT });
        }
    }

    /// Copies a parameter from the model into the arrays the kernels read.
    fn refresh(&mut self, r: ParamRef) {
        match r {
            // hh computes q10 at every exact-rate call, so a new celsius acts at once; its
            // tables are rebuilt only where NEURON checks them (`check_tables`).
            ParamRef::Global(_) => {
                let run = &self.model.run;
                self.rates.q10 = hh::q10(run.celsius);
                self.rates.usetable = run.usetable_hh;
                for a in &mut self.arts {
                    a.run_settings(run);
                }
            }
            ParamRef::Section { section, field } | ParamRef::SectionSeg { section, field, .. } => {
                self.refresh_section_field(section, field)
            }
            // Every segment's value of the field (nseg writes).
            ParamRef::Mech { section, slot, field } | ParamRef::MechSeg { section, slot, field, .. } => {
                let at = self.cells.sec_at[section];
                let ins = &self.model.sections[section].mechs[slot];
                let tile = &mut self.cells.tiles[at.tile as usize];
                let value = |seg| ins.segs.get(field, seg).unwrap_or(ins.params[field]);
                tile.set_section_param(at.local as usize, at.lane as usize, ins.mech.def(), field, value);
            }
            ParamRef::Point { point, field } => self.refresh_point(point, field),
            ParamRef::Cell { cell, field } => {
                if let Target::Art { block, k } = self.cell_slot[cell] {
                    self.arts[block as usize].set_param(field, k as usize, self.model.cells[cell].params[field]);
                }
            }
            ParamRef::NetCon { netcon, field } => match field {
                model::NC_DELAY => {
                    self.nets.delay[netcon] = self.model.netcons[netcon].delay;
                    self.det_delay = None;
                }
                model::NC_WEIGHT => self.nets.weight[netcon] = self.model.netcons[netcon].weight,
                _ => {
                    let s = self.model.netcon_source_section(netcon).expect("resolved: a section source");
                    self.refresh_section_field(s, model::SEC_THRESHOLD);
                }
            },
        }
    }

    fn refresh_point(&mut self, point: usize, field: usize) {
        let at = self.cells.point_at[point];
        let value = self.model.points[point].params[field];
        self.cells.tiles[at.tile as usize].blocks[at.block as usize].set_param(field, at.at as usize, value);
    }

    fn refresh_section(&mut self, s: usize) {
        for field in [model::SEC_CM, model::SEC_THRESHOLD, model::SEC_L] {
            self.refresh_section_field(s, field);
        }
        for slot in 0..self.model.sections[s].mechs.len() {
            for field in 0..self.model.sections[s].mechs[slot].params.len() {
                self.refresh(ParamRef::Mech { section: s, slot, field });
            }
        }
    }

    fn refresh_section_field(&mut self, s: usize, field: usize) {
        let spec = &self.model.sections[s];
        match field {
            model::SEC_THRESHOLD => {
                let at = self.cells.sec_at[s];
                self.cells.tiles[at.tile as usize].set_threshold(at.local as usize, at.lane as usize, spec.threshold);
            }
            // cm is read by every step's matrix at once.
            model::SEC_CM => {
                let at = self.cells.sec_at[s];
                self.cells.tiles[at.tile as usize].set_cm(at.local as usize, at.lane as usize, |seg| spec.own_at(model::SEC_CM, seg));
            }
            // L, diam and Ra change the geometry, which NEURON recomputes (recalc_diam) only
            // when the next step or initialization begins.
            _ => self.geometry_dirty = true,
        }
    }

    /// nocmodl's `_check_rates` through `nrn_thread_table_check`: at initialization and when
    /// a step begins, never inside one.
    fn check_tables(&mut self) {
        if self.model.run.usetable_hh {
            self.rates.table.check(self.model.run.celsius);
        }
    }

    fn update_geometry(&mut self) {
        if !self.geometry_dirty {
            return;
        }
        for tile in &mut self.cells.tiles {
            tile.geometry(&self.model.sections);
        }
        self.geometry_dirty = false;
    }

    // ---- time ---------------------------------------------------------------------------

    /// The simulation time. Inside a step (at `Pause::ScatterGather`) it is already t_{n+1};
    /// while events are delivered it is the time of the event being delivered.
    pub fn t(&self) -> f64 {
        self.t
    }

    /// NEURON's h.t at the current pause: t_n at a boundary, the spike's time at a spike
    /// (`PreSyn::record` sets it), inside a step t_n or the last such spike's time, 0 during
    /// initialization.
    pub fn now(&self) -> f64 {
        self.now
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

    /// NEURON's stdrun rule: another step is taken while `t < tstop - dt/2`.
    pub fn running(&self) -> bool {
        self.t < self.model.run.tstop - self.model.run.dt / 2.0
    }

    /// Whether initialization has begun (the event queue was cleared): events can be queued.
    pub fn initialized(&self) -> bool {
        !matches!(self.phase, Phase::Built | Phase::Init3)
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

    pub fn stops(&self) -> &Stops {
        &self.stops
    }

    /// The pauses to make from now on (`on_spike` has one entry per spike source).
    pub fn stops_mut(&mut self) -> &mut Stops {
        self.watched = None;
        &mut self.stops
    }

    // ---- advancing ----------------------------------------------------------------------

    /// Runs to the next pause: a step boundary or one of `stops`, whichever comes first.
    /// `sample` sees the state wherever NEURON records (t = 0 and the end of every step).
    /// At the end of the run it keeps returning the final boundary.
    pub fn advance(&mut self, sample: &mut impl FnMut(&Sim)) -> Pause {
        if let Some(r) = self.resume.take() {
            self.after_fire(r);
        }
        loop {
            match self.phase {
                Phase::Built | Phase::Init3 => {
                    if self.phase == Phase::Built {
                        // stdrun calls finitialize(v_init): the argument is read before any
                        // FInitializeHandler runs (a type-3 handler cannot change it).
                        self.v_init = self.model.run.v_init;
                        if self.stops.init[3] {
                            self.phase = Phase::Init3;
                            return self.pause_init(3);
                        }
                    }
                    self.init_begin();
                    self.phase = Phase::Init0;
                    if self.stops.init[0] {
                        return self.pause_init(0);
                    }
                }
                Phase::Init0 => {
                    self.init_states();
                    // Parameters are in place for the run: tiles with equal ones share them.
                    self.cells.share(self.dt_step);
                    self.phase = Phase::Init1;
                    if self.stops.init[1] {
                        return self.pause_init(1);
                    }
                }
                Phase::Init1 => self.open_window(Window::Init, self.t),
                Phase::Deliver(w) => {
                    if let Some(pause) = self.deliver(self.til) {
                        return pause;
                    }
                    self.t = self.tsav;
                    match w {
                        Window::Init => {
                            let (t, dt) = (self.t, self.dt_step);
                            for tile in &mut self.cells.tiles {
                                tile.currents::<0>(t, dt, true, &mut self.scratch);
                            }
                            sample(self);
                            self.open_window(Window::InitRecord, self.t);
                        }
                        Window::InitRecord => return self.arrive_at_boundary(self.stops.init[2]),
                        Window::StepStart => {
                            let dt = self.dt_step;
                            self.t += 0.5 * dt;
                            self.play_continuous();
                            let every = self.stops.scatter_gather;
                            let pause_sg = every > 0 && self.step.is_multiple_of(every);
                            // Without a pause inside the step (nor a continuous play, which
                            // writes its value at t_{n+1} before the states), each tile's
                            // whole step at once.
                            let split = pause_sg || !self.plays.continuous.is_empty();
                            // The outputs nobody reads are skipped, except in the run's last
                            // step: the state a run ends with is whole.
                            let last = (self.t + 0.5 * dt) >= self.model.run.tstop - self.model.run.dt / 2.0;
                            let outputs = self.outputs_read || last;
                            self.run_kernels(Work::Step { t: self.t, dt, states: !split, outputs });
                            self.t += 0.5 * dt;
                            self.play_continuous();
                            if pause_sg {
                                self.phase = Phase::ScatterGather;
                                self.now = self.hoc_t;
                                return Pause::ScatterGather;
                            }
                            if split {
                                self.run_kernels(Work::States { t: self.t, dt });
                            }
                            self.end_step(sample);
                        }
                        Window::StepEnd => return self.arrive_at_boundary(false),
                    }
                }
                Phase::Boundary => {
                    if !self.running() {
                        return self.arrive_at_boundary(false);
                    }
                    self.begin_step();
                    self.phase = Phase::Thresholds(0);
                }
                Phase::Thresholds(first) => {
                    if let Some(spike) = self.check_thresholds(first) {
                        return self.pause_spike(spike);
                    }
                    if first == 0 {
                        let k = self.window_steps();
                        if k >= 2 {
                            self.run_window(k, sample);
                            continue;
                        }
                    }
                    self.open_window(Window::StepStart, self.t + 0.5 * self.dt_step);
                }
                Phase::ScatterGather => {
                    self.run_kernels(Work::States { t: self.t, dt: self.dt_step });
                    self.end_step(sample);
                }
            }
        }
    }

    /// Runs the step kernels over every tile, on the simulation's threads (`step_threads`).
    fn run_kernels(&mut self, work: Work) {
        if self.step_threads() > 1 {
            let th = &mut self.threads;
            let pool = th.pool.get_or_insert_with(|| pool::Pool::new(th.n, self.cells.scratch_len()));
            pool.run(&mut self.cells.tiles, &th.shares, work, &self.rates, self.kernels);
        } else {
            kernels::dispatch(self.kernels, &mut self.cells.tiles, work, &self.rates, &mut self.scratch);
        }
    }

    /// The threads the simulation was given.
    pub fn threads(&self) -> usize {
        self.threads.n
    }

    /// The threads the steps run on: `threads()`, or one when a step's work (`step_work`) is
    /// below the least that pays for more (`PARALLEL_MIN_WORK`, see `with_threads_from`) or
    /// there is one tile. Which changes no result.
    pub fn step_threads(&self) -> usize {
        self.threads.used
    }

    /// The tiles the cells are in (a thread steps whole tiles).
    pub fn tile_count(&self) -> usize {
        self.cells.tiles.len()
    }

    /// A step's work: nodes over all cells.
    pub fn step_work(&self) -> usize {
        self.threads.work
    }

    /// The least step work for which the steps use the threads.
    pub fn parallel_min_work(&self) -> usize {
        self.threads.min_work
    }

    /// Lets `advance` run several steps at once (a window) where nothing but `sample` looks
    /// at a step boundary: `Some(signals)`, the signals `sample` reads (besides t and the step
    /// index); None: one step per `advance` (the default). The caller must not need the
    /// boundaries inside a window: a free run with no sync points, stream, state hash or
    /// record clock. Results are the same either way, bit for bit.
    ///
    /// A window is a run of steps in which no event is delivered (the queue's first event
    /// is later than the window) and no spike found inside can deliver one (every NetCon of a
    /// section detector is slower than the window); with nothing paused, played or watched.
    /// Its steps do everything a step does, in the same order for each cell, one tile after
    /// the other (a tile's data stays in cache across the steps), each thread its share: one
    /// start and one wait of the threads per window instead of per step. The sampled values
    /// are read after each step into the tiles' probes, and `sample` sees each step after
    /// the window (t, the step index and those values as they were after it); the detectors'
    /// crossings found inside are fired then, in step and then section order (as the steps
    /// would have fired them: nothing else enters the queue in between).
    pub fn set_windows(&mut self, sampled: Option<&[SignalRef]>) {
        self.windows = sampled.is_some();
        self.window_refs.clear();
        self.cells.tiles.iter_mut().for_each(|t| t.probes.clear());
        for &r in sampled.unwrap_or_default() {
            let (tile, probe) = match r {
                SignalRef::V { tile, idx } => (tile, Probe::V { idx }),
                SignalRef::Var { tile, block, var, at } => (tile, Probe::Var { block, var, at }),
                // An artificial cell's values change only with events: none in a window.
                SignalRef::Cell { .. } => continue,
            };
            let probes = &mut self.cells.tiles[tile as usize].probes;
            self.window_refs.push((r, tile, probes.len() as u32));
            probes.push(probe);
        }
    }

    /// How many windows of steps this simulation has run (see `set_windows`).
    pub fn windows_run(&self) -> u64 {
        self.windows_run
    }

    /// Which spikes pause the run (see `watched`).
    fn watched(&mut self) -> Watched {
        let (on, nsec) = (&self.stops.on_spike, self.det.x.len());
        *self.watched.get_or_insert_with(|| Watched { sections: on[..nsec].contains(&true), any: on.contains(&true) })
    }

    /// The steps of a window that can start here (after the thresholds of step n were
    /// checked, before its first deliveries): 0 when none can.
    fn window_steps(&mut self) -> u32 {
        if !self.windows {
            return 0;
        }
        if self.watched().any || self.stops.scatter_gather > 0 || self.stops.every > 0 || !self.plays.continuous.is_empty() || self.resume.is_some() {
            return 0;
        }
        let dt = self.dt_step;
        let nsec = self.det.x.len();
        let (nets, det_delay) = (&self.nets, &mut self.det_delay);
        let delay = *det_delay.get_or_insert_with(|| {
            let ncs = &nets.by_source[..nets.source_range.get(nsec.wrapping_sub(1)).map_or(0, |r| r.end)];
            ncs.iter().map(|&nc| nets.delay[nc as usize]).fold(f64::INFINITY, f64::min)
        });
        // A spike found after step j of the window is fired at t_{n+j+1}: its events must be
        // due after the window's last delivery (t_{n+k-1} + dt/2); a step's margin more.
        let by_delay = if delay.is_finite() { (delay / dt).floor() - 1.0 } else { f64::INFINITY };
        let by_work = (WINDOW_WORK / self.threads.work.max(1)).clamp(2, MAX_WINDOW) as f64;
        let most = by_delay.min(by_work).max(0.0) as u32;
        let (least, tstop, run_dt) = (self.queue.least_t(), self.model.run.tstop, self.model.run.dt);
        // t at the end of each step, as the steps compute it (`Work::Window`).
        self.window_t.clear();
        let (mut t, mut k) = (self.t, 0);
        while k < most {
            // Step k delivers the events due by t + dt/2 first (and, inside the window, those
            // due by its end, which the next step's test covers); the run's last step writes
            // every output (see `advance`): not in a window.
            let mid = t + 0.5 * dt;
            let next = mid + 0.5 * dt;
            if least <= mid || next >= tstop - run_dt / 2.0 {
                break;
            }
            t = next;
            self.window_t.push(t);
            k += 1;
        }
        k
    }

    /// Runs the `k` whole steps `window_steps` found (their end times in `window_t`), ending
    /// where a step ends, before the events due by its end are delivered.
    fn run_window(&mut self, k: u32, sample: &mut impl FnMut(&Sim)) {
        let (t0, dt) = (self.t, self.dt_step);
        self.windows_run += 1;
        let work = Work::Window { t: t0, dt, steps: k, outputs: self.outputs_read };
        let ntiles = self.cells.tiles.len();
        // The tiles are reached through this pointer until the window's threads are done:
        // the workers step their shares meanwhile, so no reference to all of them may exist.
        let base = self.cells.tiles.as_mut_ptr();
        let threaded = self.step_threads() > 1;
        let own = if threaded {
            let th = &mut self.threads;
            let pool = th.pool.get_or_insert_with(|| pool::Pool::new(th.n, self.cells.scratch_len()));
            // SAFETY: until `join`, this thread touches only its share's tiles (below).
            unsafe { pool.start_others(base, ntiles, &th.shares, work, &self.rates, self.kernels) };
            th.shares[0].clone()
        } else {
            0..ntiles
        };
        // SAFETY: this thread's share, within the tiles (see above).
        let tiles = unsafe { std::slice::from_raw_parts_mut(base.add(own.start), own.len()) };
        kernels::dispatch(self.kernels, tiles, work, &self.rates, &mut self.scratch);
        if threaded {
            let pool = self.threads.pool.as_mut().expect("started above");
            pool.own_done();
            pool.join();
        }
        // Each step's sample: its t, and the tiles' values from their probes.
        let step0 = self.step;
        for j in 0..k {
            self.t = self.window_t[j as usize];
            self.step = step0 + u64::from(j) + 1;
            self.replay = Some(j);
            sample(self);
        }
        self.replay = None;
        // hoc's t as the last step's start left it (`begin_step`; the rest of it changes
        // nothing inside a window).
        self.hoc_t = if k >= 2 { self.window_t[k as usize - 2] } else { t0 };
        // The crossings found after steps 0..k-1, fired as the boundaries after them would
        // have: by step, then in section order (those after the last step: at the next
        // boundary, as ever).
        let mut found = std::mem::take(&mut self.window_found);
        found.clear();
        for tile in &mut self.cells.tiles {
            found.append(&mut tile.window_fired);
        }
        found.sort_unstable();
        for &(j, s) in &found {
            let spike = self.fire(s as usize, self.window_t[j as usize] + THRESHOLD_TEPS, AfterFire::Detector);
            debug_assert!(spike.is_none(), "no source is watched");
        }
        self.window_found = found;
        self.open_window(Window::StepEnd, self.t);
    }

    /// After the states: the step is complete, its sample, then the events due by t_{n+1}.
    fn end_step(&mut self, sample: &mut impl FnMut(&Sim)) {
        self.step += 1;
        sample(self);
        self.open_window(Window::StepEnd, self.t);
    }

    /// Makes the next `advance` initialize again (a second `finitialize`), wherever the run
    /// is; `at` times not yet delivered are queued again by that initialization.
    pub fn reinitialize(&mut self) {
        self.phase = Phase::Built;
        self.resume = None;
    }

    /// All of initialization (NEURON's `finitialize(v_init)`), for runs without `stops`.
    pub fn initialize(&mut self, mut sample: impl FnMut(&Sim)) {
        while !matches!(self.advance(&mut sample), Pause::Boundary(_)) {}
    }

    /// One whole fixed step (NEURON's `fadvance`), for runs without `stops`.
    pub fn step(&mut self, mut sample: impl FnMut(&Sim)) {
        while !matches!(self.advance(&mut sample), Pause::Boundary(_)) {}
    }

    fn pause_init(&mut self, kind: u8) -> Pause {
        self.now = self.t;
        Pause::Init(kind)
    }

    fn pause_spike(&mut self, spike: Spike) -> Pause {
        // PreSyn::record sets hoc's t to the spike's time for its callback, and it stays so
        // until the step ends (so extra_scatter_gather of that step sees it too).
        self.hoc_t = spike.t;
        self.now = spike.t;
        Pause::Spike(spike)
    }

    fn arrive_at_boundary(&mut self, init: bool) -> Pause {
        self.phase = Phase::Boundary;
        self.now = self.t;
        let every = self.stops.every;
        Pause::Boundary(Boundary {
            init,
            every: every > 0 && self.step.is_multiple_of(every),
            at: std::mem::take(&mut self.at_fired),
            end: !self.running(),
        })
    }

    fn open_window(&mut self, w: Window, til: f64) {
        self.phase = Phase::Deliver(w);
        self.til = til;
        self.tsav = self.t;
    }

    /// `nrn_finitialize` up to FInitializeHandler type 0: tables and geometry brought up to
    /// date, t = 0, the queue cleared (then the pending `at` times queued, as CVode.events
    /// registered by a type 0 handler), every node at v_init.
    fn init_begin(&mut self) {
        self.t = 0.0;
        self.step = 0;
        self.check_tables();
        self.update_geometry();
        self.queue.clear();
        self.spikes.clear();
        self.at_fired.clear();
        self.delivered = 0;
        self.dt_step = self.model.run.dt;
        // nrn_play_init, then the play events at t = 0 (before v is set).
        self.play_init();
        while let Some(ev) = self.queue.pop_due(self.t) {
            let EventKind::Play(p) = ev.kind else { unreachable!("only plays are queued") };
            self.play_deliver(p as usize, ev.t);
        }
        for p in &mut self.at_pending {
            p.2 = cvode_event_time(p.1, self.dt_step);
            self.queue.push(p.2, EventKind::At(p.0));
        }
        let v_init = self.v_init;
        for tile in &mut self.cells.tiles {
            tile.v.fill(v_init);
            tile.flag.fill(false);
            tile.detect::<0>();
        }
    }

    /// The INITIAL blocks, mechanisms then artificial cells.
    fn init_states(&mut self) {
        for tile in &mut self.cells.tiles {
            tile.initial(&self.rates);
        }
        // NEURON writes what INITIAL changed in a parameter back (Exp2Syn's tau1); so does
        // the model.
        for (p, at) in self.cells.point_at.iter().enumerate() {
            let spec = &mut self.model.points[p];
            for &f in spec.mech.def().initial_writes {
                spec.params[f] = self.cells.tiles[at.tile as usize].blocks[at.block as usize].param(f, at.at as usize);
            }
        }
        let mut cx = ArtCx { t: self.t, queue: &mut self.queue };
        for a in &mut self.arts {
            for k in 0..a.len() {
                a.initial(k, &mut cx);
            }
            let c0 = a.cell(0) as usize;
            for &f in self.model.cells[c0].mech.def().initial_writes {
                for k in 0..a.len() {
                    self.model.cells[a.cell(k) as usize].params[f] = a.param(f, k);
                }
            }
        }
    }

    /// What `fadvance` does before the step proper: geometry (recalc_diam), dt copied to the
    /// step, tables (nrn_thread_table_check).
    fn begin_step(&mut self) {
        self.delivered = 0;
        self.update_geometry();
        self.dt_step = self.model.run.dt;
        self.check_tables();
        self.hoc_t = self.t;
    }

    /// The threshold detectors from `first` on (NetCvode::check_thresh), in section order: a
    /// spike at t + 1e-10 when v rises above threshold. Stops at a spike of a watched source.
    fn check_thresholds(&mut self, first: usize) -> Option<Spike> {
        if first == 0 && !self.watched().sections {
            // No callback can run between two detectors: the tiles' crossings (computed with
            // the step's v and the thresholds in force), fired in section order.
            let mut fired = std::mem::take(&mut self.det.fired);
            fired.clear();
            self.cells.tiles.iter_mut().for_each(|tile| tile.crossings(&mut fired));
            fired.sort_unstable();
            for &s in &fired {
                let spike = self.fire(s as usize, self.t + THRESHOLD_TEPS, AfterFire::Detector);
                debug_assert!(spike.is_none(), "no source is watched");
            }
            self.det.fired = fired;
            return None;
        }
        for s in first..self.det.x.len() {
            let (tile, x) = (&mut self.cells.tiles[self.det.tile[s] as usize], self.det.x[s] as usize);
            // The fast path compares `above` with `flag` again.
            tile.changed = true;
            let v = tile.v[self.det.idx[s] as usize];
            if v - tile.thresh[x] > 0.0 {
                if !tile.flag[x] {
                    tile.flag[x] = true;
                    if let Some(spike) = self.fire(s, self.t + THRESHOLD_TEPS, AfterFire::Detector) {
                        self.phase = Phase::Thresholds(s + 1);
                        return Some(spike);
                    }
                }
            } else {
                tile.flag[x] = false;
            }
        }
        None
    }

    /// `PreSyn::send`: records the spike, then (unless its source is watched, which pauses
    /// first, as NEURON runs NetCon.record's callback first) queues the NetCon events.
    fn fire(&mut self, source: usize, t: f64, then: AfterFire) -> Option<Spike> {
        let spike = Spike { source: source as u32, t };
        self.spikes.push(spike);
        let r = Resume { spike, then };
        if self.stops.on_spike[source] {
            self.resume = Some(r);
            return Some(spike);
        }
        self.after_fire(r);
        None
    }

    /// The rest of a spike: one event per NetCon of the source (each with its delay as it is
    /// now), then the rest of the artificial cell's NET_RECEIVE.
    fn after_fire(&mut self, r: Resume) {
        let Spike { source, t } = r.spike;
        for &nc in &self.nets.by_source[self.nets.source_range[source as usize].clone()] {
            self.queue.push(t + self.nets.delay[nc as usize], EventKind::NetCon(nc));
        }
        if let AfterFire::Art { block, k } = r.then {
            self.arts[block as usize].after_event(k as usize, &mut ArtCx { t, queue: &mut self.queue });
        }
    }

    /// Delivers the events due by `til` in order, t at each event's time while it acts. Stops
    /// early (t stays at that event's time) at a spike of a watched source, when interrupted,
    /// or at a limit.
    fn deliver(&mut self, til: f64) -> Option<Pause> {
        while let Some(ev) = self.queue.pop_due(til) {
            self.delivered += 1;
            if self.delivered > self.limits.max_events_per_step {
                return Some(Pause::Limit(LimitHit::EventsPerStep(self.limits.max_events_per_step)));
            }
            if self.delivered.is_multiple_of(1024) && self.interrupted() {
                // The event is not lost: put back where it was in the order.
                self.queue.unpop(ev);
                return Some(Pause::Interrupted);
            }
            self.t = ev.t;
            let fired = match ev.kind {
                EventKind::NetCon(nc) => {
                    let nc = nc as usize;
                    self.receive(self.nets.target[nc], 0, self.nets.weight[nc])
                }
                EventKind::SelfEvent { cell, flag } => self.receive(self.cell_slot[cell as usize], flag, 0.0),
                EventKind::External { target, weight } => self.receive(target, 0, weight),
                EventKind::At(id) => {
                    if let Some(i) = self.at_pending.iter().position(|p| p.0 == id) {
                        self.at_fired.push(self.at_pending.remove(i).1);
                    }
                    None
                }
                EventKind::Play(p) => {
                    self.play_deliver(p as usize, ev.t);
                    None
                }
            };
            if let Some(spike) = fired {
                return Some(self.pause_spike(spike));
            }
            if self.queue.len() > self.limits.max_queue {
                return Some(Pause::Limit(LimitHit::Queue(self.limits.max_queue)));
            }
        }
        None
    }

    fn interrupted(&self) -> bool {
        self.interrupt.as_ref().is_some_and(|f| f.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// A flag that, when raised, makes `advance` return `Pause::Interrupted` from inside a long
    /// delivery of events (checked every 1024 events); steps end at boundaries anyway.
    pub fn set_interrupt(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.interrupt = Some(flag);
    }

    /// Says whether anything reads the variables the mechanisms' currents only write for
    /// readers (`MechDef::current_outputs`: hh's ina, ik, il_hh, gna_hh, gk_hh, pas's i, a
    /// synapse's i) between steps: samples, pauses, the state words. With `false` the steps
    /// skip those stores (less memory traffic per step), except the run's last step, and
    /// until then those variables hold the values of the last step that wrote them: for a
    /// caller that reads none of them, such as a free run that records and publishes none
    /// and needs no state hash before the end. Every other value is the same either way.
    /// The default is `true`.
    pub fn set_outputs_read(&mut self, read: bool) {
        self.outputs_read = read;
    }

    /// Whether signal `s` is one of the mechanisms' `current_outputs` (see
    /// `set_outputs_read`).
    pub fn is_current_output(&self, s: SignalRef) -> bool {
        match s {
            SignalRef::Var { tile, block, var, .. } => {
                let t = &self.cells.tiles[tile as usize].template;
                t.blocks[block as usize].0.def().current_outputs.contains(&usize::from(var))
            }
            SignalRef::V { .. } | SignalRef::Cell { .. } => false,
        }
    }

    /// The instruction set of the step kernels (every one gives the same bits).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Chooses the step kernels; refused (false) if this CPU cannot run them.
    pub fn set_kernels(&mut self, k: Kernels) -> bool {
        if k.runs_here() {
            self.kernels = k;
        }
        k.runs_here()
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Sets the limits; refused if the run as it stands already takes more steps.
    pub fn set_limits(&mut self, limits: Limits) -> Result<()> {
        let old = std::mem::replace(&mut self.limits, limits);
        let run = &self.model.run;
        if let Err(e) = self.check_length(run.dt, run.tstop) {
            self.limits = old;
            return Err(e);
        }
        Ok(())
    }

    /// Refuses a dt and tstop that would make the run longer than `Limits::max_steps` from
    /// here.
    fn check_length(&self, dt: f64, tstop: f64) -> Result<()> {
        let steps = ((tstop - self.t) / dt).ceil();
        if steps > self.limits.max_steps as f64 {
            return Err(Error::TooLong { dt, tstop, t: self.t, steps, max: self.limits.max_steps });
        }
        Ok(())
    }

    /// NET_RECEIVE of `target` at t; Some when it fired a spike of a watched source.
    fn receive(&mut self, target: Target, flag: u8, w: f64) -> Option<Spike> {
        let t = self.t;
        let nsec = self.model.sections.len();
        match target {
            Target::Point { tile, block, at } => {
                self.cells.tiles[tile as usize].blocks[block as usize].receive(at as usize, w);
            }
            Target::Art { block, k } => {
                let a = &mut self.arts[block as usize];
                if a.receive(k as usize, flag, w, &mut ArtCx { t, queue: &mut self.queue }) {
                    let src = nsec + a.cell(k as usize) as usize;
                    return self.fire(src, t, AfterFire::Art { block, k });
                }
            }
        }
        None
    }

    // ---- Vector.play ----------------------------------------------------------------------

    /// A played value is written as NEURON's play writes it, through the parameter's storage
    /// (the model, and the arrays the kernels read).
    fn play_write(&mut self, p: usize, value: f64) {
        let r = self.plays.list[p].target;
        self.model.set_ref(r, value);
        self.refresh(r);
    }

    /// nrn_play_init: each play's first event (VecPlayStep / VecPlayContinuous::play_init).
    fn play_init(&mut self) {
        for (p, spec) in self.model.plays.iter().enumerate() {
            let play = &mut self.plays.list[p];
            play.index = 0;
            play.last = 0;
            match &spec.times {
                Some(times) => self.queue.push(times[0], EventKind::Play(p as u32)),
                None => self.queue.push(0.0, EventKind::Play(p as u32)),
            };
        }
    }

    /// A play's event at time tt (`deliver` of vrecord.cpp): a discrete play writes its next
    /// value and plans the one after; a continuous play moves on to the next time point and
    /// writes its value interpolated at tt.
    fn play_deliver(&mut self, p: usize, tt: f64) {
        let spec = &self.model.plays[p];
        let play = &mut self.plays.list[p];
        if !spec.continuous {
            let value = spec.values[play.index];
            play.index += 1;
            if play.index < spec.values.len() {
                let next = match (&spec.times, spec.dt) {
                    (Some(times), _) => times[play.index],
                    (None, Some(dt)) => tt + dt,
                    (None, None) => unreachable!("checked play"),
                };
                self.queue.push(next, EventKind::Play(p as u32));
            }
            self.play_write(p, value);
        } else {
            let times = spec.times.as_ref().expect("a continuous play has times");
            play.last = play.index;
            if play.index < times.len() - 1 {
                play.index += 1;
                self.queue.push(times[play.index], EventKind::Play(p as u32));
            }
            let value = self.interpolate(p, tt);
            self.play_write(p, value);
        }
    }

    /// fixed_play_continuous: every continuous play writes its value at the current t.
    /// (Called twice per step: inlined, a model without continuous plays pays one test.)
    #[inline(always)]
    fn play_continuous(&mut self) {
        if !self.plays.continuous.is_empty() {
            self.play_continuous_all();
        }
    }

    #[inline(never)]
    fn play_continuous_all(&mut self) {
        for i in 0..self.plays.continuous.len() {
            let p = self.plays.continuous[i] as usize;
            let value = self.interpolate(p, self.t);
            self.play_write(p, value);
        }
    }

    /// VecPlayContinuous::interpolate: linear between the time points around tt (moving
    /// `last`), the first value before the first time, extrapolated from the last two points
    /// when tt passed the upper bound not yet delivered.
    fn interpolate(&mut self, p: usize, tt: f64) -> f64 {
        let spec = &self.model.plays[p];
        let (ts, ys) = (spec.times.as_ref().expect("a continuous play has times"), &spec.values);
        let play = &mut self.plays.list[p];
        if tt >= ts[play.index] {
            play.last = play.index;
            if play.last == 0 {
                return ys[0];
            }
        } else if tt <= ts[0] {
            play.last = 0;
            return ys[0];
        } else {
            while tt < ts[play.last] {
                play.last -= 1;
            }
            while tt >= ts[play.last] {
                play.last += 1;
            }
        }
        let (x0, x1, t0, t1) = (ys[play.last - 1], ys[play.last], ts[play.last - 1], ts[play.last]);
        if t0 == t1 {
            return (x0 + x1) / 2.0;
        }
        x0 + (x1 - x0) * ((tt - t0) / (t1 - t0))
    }

    // ---- events and sync times from outside ---------------------------------------------

    /// Queues an event at `te` >= `now()`, as NEURON's `NetCon.event(te)`. For a synapse or
    /// an artificial cell, `weight` is needed: the event of a NetCon with no source, that
    /// target and that weight. For a NetCon's name without `weight`, it is that NetCon's own
    /// event: its target receives the NetCon's weight as it is when the event is delivered
    /// (NEURON reads `weight` at delivery); with `weight`, that weight goes to the NetCon's target.
    pub fn inject(&mut self, target: &str, te: f64, weight: Option<f64>) -> Result<()> {
        let kind = self.check_inject(target, te, weight)?;
        self.queue.push(te, kind);
        Ok(())
    }

    /// Schedules a pause at a boundary for time `at`, as a NEURON program's `CVode.event(at,
    /// callback)` registered now: its event (at `cvode_event_time`) is queued (before
    /// initialization: queued by initialization, after the queue is cleared) and, when
    /// delivered, `at` is reported at the end of that step (`Boundary::at`).
    pub fn add_at(&mut self, at: f64) -> Result<()> {
        let te = self.check_at(at)?;
        let id = self.at_next_id;
        self.at_next_id += 1;
        self.at_pending.push((id, at, te));
        if self.initialized() {
            self.queue.push(te, EventKind::At(id));
        }
        Ok(())
    }

    /// Everything `add_at` checks: the time, as queued, must not have passed.
    pub fn check_at(&self, at: f64) -> Result<f64> {
        if !at.is_finite() {
            return Err(Error::InvalidValue { name: "sync time".into(), value: at, allowed: "a finite number".into() });
        }
        let te = cvode_event_time(at, self.model.run.dt);
        if te < self.t {
            return Err(Error::SyncInPast { at, te, t: self.t });
        }
        Ok(te)
    }

    /// Cancels a scheduled `at` time (the first one with exactly these bits).
    pub fn remove_at(&mut self, at: f64) -> Result<()> {
        let i = self.at_pending.iter().position(|p| p.1.to_bits() == at.to_bits()).ok_or(Error::NotScheduled { at })?;
        self.at_pending.remove(i);
        Ok(())
    }

    /// The scheduled `at` times not yet delivered, ascending.
    pub fn pending_at(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self.at_pending.iter().map(|p| p.1).collect();
        v.sort_by(f64::total_cmp);
        v
    }

    /// Everything `inject` checks, without queueing anything; the event it would queue.
    pub fn check_inject(&self, target: &str, te: f64, weight: Option<f64>) -> Result<EventKind> {
        if !self.initialized() {
            return Err(Error::NotNow {
                what: "an event",
                reason: "initialization discards queued events: send events from FInitializeHandler type 0 on".into(),
            });
        }
        let need_weight = || Error::InvalidValue {
            name: format!("{target} event weight"),
            value: f64::NAN,
            allowed: "a weight is needed for a synapse or artificial cell target".into(),
        };
        let kind = match self.model.object(target) {
            Some(Object::Point(p)) => {
                let def = self.model.points[p].mech.def();
                if !def.receives {
                    return Err(Error::NotATarget {
                        target: target.into(),
                        reason: format!("an {} has no NET_RECEIVE", def.name),
                    });
                }
                EventKind::External { target: point_target(&self.cells, p), weight: weight.ok_or_else(need_weight)? }
            }
            Some(Object::Cell(c)) => EventKind::External { target: self.cell_slot[c], weight: weight.ok_or_else(need_weight)? },
            Some(Object::NetCon(n)) => match weight {
                Some(w) => EventKind::External { target: self.nets.target[n], weight: w },
                None => EventKind::NetCon(n as u32),
            },
            _ => {
                return Err(Error::UnknownName {
                    what: "event target",
                    name: target.into(),
                    hint: format!("targets are {}", self.targets().join(", ")),
                })
            }
        };
        let w = if let EventKind::External { weight, .. } = kind { weight } else { 0.0 };
        for (what, v) in [("time", te), ("weight", w)] {
            if !v.is_finite() {
                return Err(Error::InvalidValue {
                    name: format!("{target} event {what}"),
                    value: v,
                    allowed: "a finite number".into(),
                });
            }
        }
        if te < self.now {
            return Err(Error::EventInPast { target: target.into(), te, t: self.now });
        }
        if self.queue.len() >= self.limits.max_queue {
            return Err(Error::NotNow {
                what: "an event",
                reason: format!("{} events are waiting, the limit (--max-queue)", self.queue.len()),
            });
        }
        Ok(kind)
    }

    /// Names that can receive events: synapses, artificial cells, NetCons.
    pub fn targets(&self) -> Vec<&str> {
        let m = &self.model;
        let points = m.points.iter().filter(|p| p.mech.def().receives);
        points
            .map(|p| p.name.as_str())
            .chain(m.cells.iter().map(|c| c.name.as_str()))
            .chain(m.netcons.iter().map(|n| n.name.as_str()))
            .collect()
    }

    /// The index of a spike source by name (as in `Spike::source`).
    pub fn source_index(&self, name: &str) -> Option<usize> {
        match self.model.object(name)? {
            Object::Section(s) => Some(s),
            Object::Cell(c) => Some(self.model.sections.len() + c),
            _ => None,
        }
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
                let at = self.cells.sec_at[section];
                let tile = &self.cells.tiles[at.tile as usize];
                let (t, j, lanes) = (&tile.template, at.local as usize, tile.lanes as u32);
                let lay = t.sections[j];
                match var {
                    NodeVar::V => SignalRef::V { tile: at.tile, idx: lay.node_at(x) * lanes + at.lane },
                    NodeVar::Mech { mech, var } => {
                        let b = t.blocks.iter().position(|(id, _)| *id == mech).expect("inserted: a block");
                        let i = t.instances(b, j).start as u32 + (lay.segment_node(x) - lay.first);
                        SignalRef::Var { tile: at.tile, block: b as u16, var: var as u16, at: i * lanes + at.lane }
                    }
                }
            }
            SignalSpec::Point { point, var } => {
                let at = self.cells.point_at[point];
                SignalRef::Var { tile: at.tile, block: at.block, var: var as u16, at: at.at }
            }
            SignalSpec::Cell { cell, var } => {
                let Target::Art { block, k } = self.cell_slot[cell] else { unreachable!("a cell's slot") };
                SignalRef::Cell { block, var: var as u16, k }
            }
        })
    }

    /// Each segment's membrane area (um2) and axial resistance to its parent node (Megohm):
    /// NEURON's `seg.area()` and `seg.ri()` for every segment of section `section` (a model
    /// index), as the next step computes them.
    pub fn segment_geometry(&mut self, section: usize) -> Vec<(f64, f64)> {
        self.update_geometry();
        let at = self.cells.sec_at[section];
        self.cells.tiles[at.tile as usize].segment_geometry(at.local as usize, at.lane as usize)
    }

    /// Whether a synaptic event (NET_RECEIVE) writes the signal's value.
    pub fn written_by_events(&self, s: SignalRef) -> bool {
        match s {
            SignalRef::V { .. } => false,
            SignalRef::Var { tile, block, var, .. } => {
                let t = &self.cells.tiles[tile as usize].template;
                t.blocks[block as usize].0.def().receive_writes.contains(&usize::from(var))
            }
            SignalRef::Cell { block, var, k } => {
                let cell = self.arts[block as usize].cell(k as usize) as usize;
                self.model.cells[cell].mech.def().receive_writes.contains(&usize::from(var))
            }
        }
    }

    #[inline]
    pub fn value(&self, s: SignalRef) -> f64 {
        if let Some(j) = self.replay {
            if let Some(&(_, tile, k)) = self.window_refs.iter().find(|w| w.0 == s) {
                let tile = &self.cells.tiles[tile as usize];
                return tile.probed[j as usize * tile.probes.len() + k as usize];
            }
        }
        match s {
            SignalRef::V { tile, idx } => self.cells.tiles[tile as usize].v[idx as usize],
            SignalRef::Var { tile, block, var, at } => {
                self.cells.tiles[tile as usize].blocks[block as usize].var(var as usize, at as usize)
            }
            SignalRef::Cell { block, var, k } => self.arts[block as usize].var(var as usize, k as usize),
        }
    }
}

/// The event target of a model point process that receives events.
fn point_target(cells: &Cells, p: usize) -> Target {
    let at = cells.point_at[p];
    Target::Point { tile: at.tile, block: at.block, at: at.at }
}

