//! Artificial cells (NetStim, IntFire1, IntFire2, IntFire4, VecStim): the one `match` per
//! hook that dispatches to them, and what their NET_RECEIVE blocks share. An artificial cell
//! talks to the rest of the simulation only through the event queue: its own `net_send` and
//! `net_move` self-events, and `net_event` (a spike: the caller records it and queues its
//! NetCon events between `receive` and `after_event`, where NEURON's net_event queues them).
//!
//! Adding an artificial cell is its file (a `MechDef` of kind `Artificial` and a type with
//! the hooks below), its entry in `MECHANISMS`, its `ArtBlock` variant and the variant's arms
//! here.

use super::{intfire1, intfire2, intfire4, netstim, vecstim, MechDef};
use crate::model::{CellSpec, RunSettings};
use crate::sim::queue::{EventId, EventKind, EventQueue};

/// What an artificial cell's hooks see: the time (the event's, or 0 in INITIAL) and the queue.
pub struct ArtCx<'a> {
    pub t: f64,
    pub queue: &'a mut EventQueue,
}

/// The instances of one artificial-cell type, in model order.
#[derive(Debug, Clone)]
pub enum ArtBlock {
    NetStim(netstim::NetStim),
    IntFire1(intfire1::IntFire1),
    IntFire2(intfire2::IntFire2),
    IntFire4(intfire4::IntFire4),
    VecStim(vecstim::VecStim),
}

macro_rules! each {
    ($self:ident, $b:ident => $e:expr) => {
        match $self {
            ArtBlock::NetStim($b) => $e,
            ArtBlock::IntFire1($b) => $e,
            ArtBlock::IntFire2($b) => $e,
            ArtBlock::IntFire4($b) => $e,
            ArtBlock::VecStim($b) => $e,
        }
    };
}

impl ArtBlock {
    pub fn new(def: &'static MechDef) -> ArtBlock {
        match def.name {
            "NetStim" => ArtBlock::NetStim(Default::default()),
            "IntFire1" => ArtBlock::IntFire1(Default::default()),
            "IntFire2" => ArtBlock::IntFire2(Default::default()),
            "IntFire4" => ArtBlock::IntFire4(Default::default()),
            "VecStim" => ArtBlock::VecStim(Default::default()),
            other => unreachable!("{other} is not an artificial cell"),
        }
    }

    /// A new instance for model cell `cell`.
    pub fn push(&mut self, cell: u32, spec: &CellSpec) {
        each!(self, b => b.push(cell, spec))
    }

    pub fn len(&self) -> usize {
        self.senders().cell.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn senders(&self) -> &Senders {
        each!(self, b => &b.send)
    }

    /// The model cell of instance k.
    pub fn cell(&self, k: usize) -> u32 {
        self.senders().cell[k]
    }

    /// The run's globals changed.
    pub fn run_settings(&mut self, run: &RunSettings) {
        if let ArtBlock::NetStim(b) = self {
            b.globalindex = run.random123_globalindex;
        }
    }

    /// INITIAL of instance k, at t = 0.
    pub fn initial(&mut self, k: usize, cx: &mut ArtCx) {
        each!(self, b => b.initial(k, cx))
    }

    /// NET_RECEIVE of instance k at `cx.t` (flag 0: a NetCon's event of weight w), up to its
    /// `net_event`: true if it fires; then the caller records the spike, queues its NetCon
    /// events and calls `after_event`.
    pub fn receive(&mut self, k: usize, flag: u8, w: f64, cx: &mut ArtCx) -> bool {
        if flag == 1 {
            // NEURON: `if (_lflag == 1.) *(_tqitem) = nullptr;` (the event being delivered).
            self.senders_mut().tq[k] = None;
        }
        each!(self, b => b.receive(k, flag, w, cx))
    }

    fn senders_mut(&mut self) -> &mut Senders {
        each!(self, b => &mut b.send)
    }

    /// The rest of NET_RECEIVE after `net_event`.
    pub fn after_event(&mut self, k: usize, cx: &mut ArtCx) {
        each!(self, b => b.after_event(k, cx))
    }

    pub fn set_param(&mut self, field: usize, k: usize, value: f64) {
        each!(self, b => b.set_param(field, k, value))
    }

    pub fn param(&self, field: usize, k: usize) -> f64 {
        each!(self, b => b.p[field][k])
    }

    /// What a snapshot holds of instance k, as words: its parameters, its pending self-event,
    /// then its type's own state (doubles as their bits).
    pub fn save(&self, k: usize, o: &mut dyn FnMut(u64)) {
        each!(self, b => {
            b.p.iter().for_each(|p| o(p[k].to_bits()));
            b.send.save(k, o);
            b.save(k, o);
        })
    }

    /// Instance k as `save` wrote it; `Err` names a word that cannot be what it claims.
    pub fn load(&mut self, k: usize, i: &mut dyn FnMut() -> u64) -> Result<(), &'static str> {
        each!(self, b => {
            b.p.iter_mut().for_each(|p| p[k] = f64::from_bits(i()));
            b.send.load(k, i)?;
            b.load(k, i)
        })
    }

    /// Recordable variable `var` (the index in the mechanism's `vars`) of instance k.
    pub fn var(&self, var: usize, k: usize) -> f64 {
        each!(self, b => b.var(var, k))
    }
}

/// The self-events of one type's instances: each instance's model cell, and its pending
/// flag-1 event (NMODL's `_tqitem`, which `net_move` moves).
#[derive(Debug, Clone, Default)]
pub struct Senders {
    pub cell: Vec<u32>,
    tq: Vec<Option<(EventId, f64)>>,
}

impl Senders {
    pub fn push(&mut self, cell: u32) {
        self.cell.push(cell);
        self.tq.push(None);
    }

    /// Instance k's pending flag-1 event: a flag, its id and time.
    fn save(&self, k: usize, o: &mut dyn FnMut(u64)) {
        let (on, id, t) = self.tq[k].map_or((0, 0, 0.0), |(id, t)| (1, id, t));
        o(on);
        o(id);
        o(f64::to_bits(t));
    }

    fn load(&mut self, k: usize, i: &mut dyn FnMut() -> u64) -> Result<(), &'static str> {
        let (on, id, t) = (i(), i(), f64::from_bits(i()));
        self.tq[k] = match on {
            0 => None,
            1 => Some((id, t)),
            _ => return Err("a pending self-event's flag"),
        };
        Ok(())
    }

    /// `net_send` at absolute time `td` (nocmodl adds t to the delay).
    pub fn send(&mut self, k: usize, cx: &mut ArtCx, td: f64, flag: u8) {
        let id = cx.queue.push(td, EventKind::SelfEvent { cell: self.cell[k], flag });
        if flag == 1 {
            self.tq[k] = Some((id, td));
        }
    }

    /// `net_move(tnew)` of the pending flag-1 event. NEURON stops the run when there is none;
    /// the cells here always have one when they move it.
    pub fn move_to(&mut self, k: usize, cx: &mut ArtCx, tnew: f64) {
        if let Some((id, _)) = self.tq[k] {
            cx.queue.move_to(id, EventKind::SelfEvent { cell: self.cell[k], flag: 1 }, tnew);
            self.tq[k] = Some((id, tnew));
        } else {
            debug_assert!(false, "net_move without a pending flag-1 event");
        }
    }
}

/// Appends an instance's parameter values (the cell's, in field order) to field-major storage.
pub fn params_push(p: &mut [Vec<f64>], spec: &CellSpec) {
    for (f, v) in p.iter_mut().zip(&spec.params) {
        f.push(*v);
    }
}

/// Saves instance k's entry of each column (doubles as their bits).
pub(crate) fn save_cols(cols: &[&Vec<f64>], k: usize, o: &mut dyn FnMut(u64)) {
    cols.iter().for_each(|c| o(c[k].to_bits()));
}

/// Loads instance k's entry of each column.
pub(crate) fn load_cols(cols: &mut [&mut Vec<f64>], k: usize, i: &mut dyn FnMut() -> u64) {
    cols.iter_mut().for_each(|c| c[k] = f64::from_bits(i()));
}
