//! The simulation's state as a list of 64-bit words, independent of how the cells are laid
//! out in tiles (so of the thread count) and of the kernel variant: what a snapshot holds,
//! what a snapshot file carries, and what the state hash digests (XXH64 of the words'
//! little-endian bytes, `crate::xxh64`).
//!
//! Every value that can influence what the simulation does next or reports is in it: every
//! parameter (the model's and the copies the kernels read), every state variable and
//! recordable output, the event queue in delivery order with its insertion numbers, the
//! NetStim random streams, the spike detectors' thresholds and flags, the sync schedule
//! (`Stops`, the scheduled `at` times), t, the step, and where inside a step the simulation
//! paused. What is left out is recomputed before it is read (the matrix's rhs and d, hh's
//! rate tables, which follow from the celsius they were made for, the synapses' decay
//! constants, which follow from tau and dt) or is the node's configuration rather than the
//! simulation's (limits, thread count, kernel variant, the interrupt flag).
//!
//! The layout, in order (f64 as its IEEE bits, bool as 0 or 1, a list as its length then its
//! items), is documented in docs/snapshots.md; `STATE_FORMAT` numbers it.

use crate::mech::col::ColMut;
use super::queue::{Event, EventKind};
use super::{AfterFire, Phase, Resume, Sim, Spike, Target, Window};
use crate::error::{Error, Result};
use crate::mech::{MechId, MechKind};
use crate::xxh64::Xxh64;

/// The version of the word layout below. A snapshot of another layout is refused.
pub const STATE_FORMAT: u32 = 2;

/// Where words go: a list (a snapshot) or a hasher (the state hash).
pub trait Words {
    fn w(&mut self, x: u64);

    #[inline(always)]
    fn f(&mut self, x: f64) {
        self.w(x.to_bits());
    }

    #[inline(always)]
    fn b(&mut self, x: bool) {
        self.w(u64::from(x));
    }

    #[inline(always)]
    fn n(&mut self, len: usize) {
        self.w(len as u64);
    }

    fn fs(&mut self, xs: &[f64]) {
        self.n(xs.len());
        for &x in xs {
            self.f(x);
        }
    }
}

impl Words for Vec<u64> {
    #[inline(always)]
    fn w(&mut self, x: u64) {
        self.push(x);
    }
}

impl Words for Xxh64 {
    #[inline(always)]
    fn w(&mut self, x: u64) {
        self.word(x);
    }
}

/// Reads the words back, each read checked.
struct Reader<'a> {
    words: &'a [u64],
    pos: usize,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::State(msg.into())
}

impl Reader<'_> {
    fn w(&mut self) -> Result<u64> {
        let x = *self.words.get(self.pos).ok_or_else(|| bad(format!("the state ends after {} words", self.words.len())))?;
        self.pos += 1;
        Ok(x)
    }

    fn f(&mut self) -> Result<f64> {
        Ok(f64::from_bits(self.w()?))
    }

    fn b(&mut self) -> Result<bool> {
        match self.w()? {
            0 => Ok(false),
            1 => Ok(true),
            x => Err(bad(format!("word {}: {x} where a flag (0 or 1) belongs", self.pos - 1))),
        }
    }

    /// A count, which must be `want` (what this simulation has).
    fn expect(&mut self, want: usize, what: &str) -> Result<()> {
        let got = self.w()?;
        if got != want as u64 {
            return Err(bad(format!("the state has {got} {what}, this simulation {want}")));
        }
        Ok(())
    }

    /// An index below `bound`.
    fn index(&mut self, bound: usize, what: &str) -> Result<usize> {
        let x = self.w()?;
        if x >= bound as u64 {
            return Err(bad(format!("{what} {x} out of range (there are {bound})")));
        }
        Ok(x as usize)
    }

    /// A count of at most `max` items (which the words must still hold).
    fn len(&mut self, per_item: usize, what: &str) -> Result<usize> {
        let n = self.w()?;
        let left = (self.words.len() - self.pos) as u64;
        if n.saturating_mul(per_item as u64) > left {
            return Err(bad(format!("{n} {what} do not fit in the state")));
        }
        Ok(n as usize)
    }

    /// Checks that `n` more words are there (the unchecked reads below then cannot run out).
    fn have(&self, n: usize) -> Result<()> {
        if self.words.len() - self.pos < n {
            return Err(bad(format!("the state ends after {} words", self.words.len())));
        }
        Ok(())
    }

    /// The next word, after `have` (or `len`) made sure it is there.
    fn next_w(&mut self) -> u64 {
        self.pos += 1;
        self.words[self.pos - 1]
    }

    fn next_f(&mut self) -> f64 {
        f64::from_bits(self.next_w())
    }

    fn fs_into(&mut self, out: &mut [f64], what: &str) -> Result<()> {
        self.expect(out.len(), what)?;
        for x in out {
            *x = self.f()?;
        }
        Ok(())
    }
}

fn phase_code(p: Phase) -> (u64, u64) {
    match p {
        Phase::Built => (0, 0),
        Phase::Init3 => (1, 0),
        Phase::Init0 => (2, 0),
        Phase::Init1 => (3, 0),
        Phase::Deliver(Window::Init) => (4, 0),
        Phase::Deliver(Window::InitRecord) => (5, 0),
        Phase::Deliver(Window::StepStart) => (6, 0),
        Phase::Deliver(Window::StepEnd) => (7, 0),
        Phase::Thresholds(first) => (8, first as u64),
        Phase::ScatterGather => (9, 0),
        Phase::Boundary => (10, 0),
    }
}

fn phase_of(code: u64, arg: u64, detectors: usize) -> Result<Phase> {
    Ok(match code {
        0 => Phase::Built,
        1 => Phase::Init3,
        2 => Phase::Init0,
        3 => Phase::Init1,
        4 => Phase::Deliver(Window::Init),
        5 => Phase::Deliver(Window::InitRecord),
        6 => Phase::Deliver(Window::StepStart),
        7 => Phase::Deliver(Window::StepEnd),
        8 if arg <= detectors as u64 => Phase::Thresholds(arg as usize),
        9 => Phase::ScatterGather,
        10 => Phase::Boundary,
        _ => return Err(bad(format!("unknown phase {code} ({arg})"))),
    })
}

/// An event's kind as three words: a tag and two arguments (targets as model indices).
const EV_NETCON: u64 = 0;
const EV_SELF: u64 = 1;
const EV_POINT: u64 = 2;
const EV_CELL: u64 = 3;
const EV_AT: u64 = 4;

const EV_PLAY: u64 = 5;

/// Words per event: t, id, entry number, tag, two arguments.
pub const EVENT_WORDS: usize = 6;

impl Sim {
    /// The state as words (see the module's doc).
    pub fn state_words(&self) -> Vec<u64> {
        let mut v = Vec::with_capacity(1024);
        self.write_state(&mut v);
        v
    }

    /// XXH64 of the state's words: the same for the same state in any process, on any
    /// machine, with any thread count or kernel variant.
    pub fn state_hash(&self) -> u64 {
        let mut h = Xxh64::new();
        self.write_state(&mut h);
        h.finish()
    }

    /// Writes the state's words.
    pub fn write_state(&self, o: &mut impl Words) {
        let m = &self.model;
        // The run's globals.
        for f in 0..crate::model::GLOBAL_FIELDS.len() {
            o.f(m.run.get(f));
        }
        // Where the simulation is.
        o.f(self.t);
        o.w(self.step);
        let (code, arg) = phase_code(self.phase);
        o.w(code);
        o.w(arg);
        for x in [self.now, self.hoc_t, self.dt_step, self.til, self.tsav, self.v_init] {
            o.f(x);
        }
        o.w(self.delivered);
        o.b(self.geometry_dirty);
        match self.resume {
            None => (0..6).for_each(|_| o.w(0)),
            Some(Resume { spike, then }) => {
                o.w(1);
                o.w(u64::from(spike.source));
                o.f(spike.t);
                let (tag, k) = match then {
                    AfterFire::Detector => (0, (0, 0)),
                    AfterFire::Art { block, k } => (1, (block, k)),
                };
                o.w(tag);
                o.w(u64::from(k.0));
                o.w(u64::from(k.1));
            }
        }
        o.f(self.rates.q10);
        o.b(self.rates.usetable);
        o.f(self.rates.table.celsius);
        // The sync schedule.
        for x in self.stops.init {
            o.b(x);
        }
        o.w(self.stops.scatter_gather);
        o.w(self.stops.every);
        o.n(self.stops.on_spike.len());
        for &x in &self.stops.on_spike {
            o.b(x);
        }
        o.w(u64::from(self.at_next_id));
        o.n(self.at_pending.len());
        for &(id, at, te) in &self.at_pending {
            o.w(u64::from(id));
            o.f(at);
            o.f(te);
        }
        o.fs(&self.at_fired);
        // Spikes found and not yet taken.
        o.n(self.spikes.len());
        for s in &self.spikes {
            o.w(u64::from(s.source));
            o.f(s.t);
        }
        // The event queue: the least item, then the tree's live entries in their order.
        let (least, tree, next_seq, next_id) = self.queue.live();
        o.w(next_seq);
        o.w(next_id);
        o.b(least.is_some());
        least.iter().for_each(|e| self.write_event(o, e));
        o.n(tree.len());
        tree.iter().for_each(|e| self.write_event(o, e));
        // The plays: where each is in its vector.
        o.n(self.plays.list.len());
        for p in &self.plays.list {
            o.w(p.index as u64);
            o.w(p.last as u64);
        }
        // Sections: parameters, then their nodes, capacitance, detector and density mechanisms.
        o.n(m.sections.len());
        for (s, spec) in m.sections.iter().enumerate() {
            for x in [spec.l, spec.diam, f64::from(spec.nseg), spec.cm, spec.ra, spec.threshold] {
                o.f(x);
            }
            o.n(spec.mechs.len());
            for ins in &spec.mechs {
                o.w(u64::from(ins.mech.0));
                o.fs(&ins.params);
                seg_values(o, &ins.segs);
            }
            seg_values(o, &spec.segs);
            let at = self.cells.sec_at[s];
            let tile = &self.cells.tiles[at.tile as usize];
            let (n, lane, j) = (tile.lanes, at.lane as usize, at.local as usize);
            let nodes = section_nodes(tile, j, spec.parent.is_none());
            o.n(nodes.len());
            for arr in [&tile.v[..], &tile.area, &tile.rinv, &tile.a, &tile.b] {
                for nd in nodes.clone() {
                    o.f(arr[nd * n + lane]);
                }
            }
            let caps = tile.template.cap_range(j);
            o.n(caps.len());
            for c in caps {
                o.f(tile.cm[c * n + lane]);
            }
            let x = j * n + lane;
            o.f(tile.thresh[x]);
            o.b(tile.above[x]);
            o.b(tile.flag[x]);
            o.n(density_blocks(tile, j).count());
            for b in density_blocks(tile, j) {
                let range = tile.template.instances(b, j);
                o.w(u64::from(tile.template.blocks[b].0 .0));
                o.n(range.len());
                o.n(tile.blocks[b].saved_len());
                for i in range.clone() {
                    tile.blocks[b].save(i * n + lane, &mut |x| o.f(x));
                }
            }
        }
        // Point processes: the model's parameters, then the block's columns.
        o.n(m.points.len());
        for (p, spec) in m.points.iter().enumerate() {
            o.w(u64::from(spec.mech.0));
            o.fs(&spec.params);
            let at = self.cells.point_at[p];
            let block = &self.cells.tiles[at.tile as usize].blocks[at.block as usize];
            o.n(block.saved_len());
            block.save(at.at as usize, &mut |x| o.f(x));
        }
        // Artificial cells: the model's parameters, then the cell's own state.
        o.n(m.cells.len());
        for (c, spec) in m.cells.iter().enumerate() {
            o.w(u64::from(spec.mech.0));
            o.fs(&spec.params);
            let Target::Art { block, k } = self.cell_slot[c] else { unreachable!("a cell's slot") };
            let mut words = vec![];
            self.arts[block as usize].save(k as usize, &mut |x| words.push(x));
            o.n(words.len());
            words.into_iter().for_each(|x| o.w(x));
        }
        // NetCons: the model's delay and weight, then the copies events read.
        o.n(m.netcons.len());
        for (i, nc) in m.netcons.iter().enumerate() {
            o.f(nc.delay);
            o.f(nc.weight);
            o.f(self.nets.delay[i]);
            o.f(self.nets.weight[i]);
        }
    }

    fn write_event(&self, o: &mut impl Words, e: &Event) {
        o.f(e.t);
        o.w(e.id);
        o.w(e.seq());
        let (tag, a, b) = self.event_code(e.kind);
        o.w(tag);
        o.w(a);
        o.w(b);
    }

    /// An event's kind as (tag, a, b), its target named by model index.
    fn event_code(&self, kind: EventKind) -> (u64, u64, u64) {
        match kind {
            EventKind::NetCon(nc) => (EV_NETCON, u64::from(nc), 0),
            EventKind::SelfEvent { cell, flag } => (EV_SELF, u64::from(cell), u64::from(flag)),
            EventKind::External { target, weight } => match target {
                Target::Point { tile, block, at } => (EV_POINT, self.point_of(tile, block, at) as u64, weight.to_bits()),
                Target::Art { block, k } => (EV_CELL, u64::from(self.arts[block as usize].cell(k as usize)), weight.to_bits()),
            },
            EventKind::At(id) => (EV_AT, u64::from(id), 0),
            EventKind::Play(p) => (EV_PLAY, u64::from(p), 0),
        }
    }

    /// The model point process at a tile's block entry.
    fn point_of(&self, tile: u32, block: u16, at: u32) -> usize {
        let t = &self.cells.tiles[tile as usize];
        let (i, lane) = (at as usize / t.lanes, at as usize % t.lanes);
        let k = t.template.points.iter().position(|&(b, inst)| b == block && inst as usize == i).expect("a point's entry");
        t.points[k * t.lanes + lane] as usize
    }

    /// Puts the simulation in the state `words` describe (`state_words` of a simulation of a
    /// model of the same structure: same sections, segments, mechanisms, point processes,
    /// cells and NetCons). On error the simulation may be half overwritten: the caller
    /// restores from a copy or discards it.
    pub fn read_state(&mut self, words: &[u64]) -> Result<()> {
        let mut r = Reader { words, pos: 0 };
        let nglob = crate::model::GLOBAL_FIELDS.len();
        for f in 0..nglob {
            let x = r.f()?;
            self.model.run.set(f, x);
        }
        self.t = r.f()?;
        self.step = r.w()?;
        let (code, arg) = (r.w()?, r.w()?);
        self.phase = phase_of(code, arg, self.det.x.len())?;
        self.now = r.f()?;
        self.hoc_t = r.f()?;
        self.dt_step = r.f()?;
        self.til = r.f()?;
        self.tsav = r.f()?;
        self.v_init = r.f()?;
        self.delivered = r.w()?;
        self.geometry_dirty = r.b()?;
        let nsrc = self.stops.on_spike.len();
        self.resume = if r.b()? {
            let source = r.index(nsrc, "spike source")? as u32;
            let t = r.f()?;
            let (tag, k) = (r.w()?, r.w()?);
            let k2 = r.w()?;
            let then = match tag {
                0 => AfterFire::Detector,
                1 if (k as usize) < self.arts.len() && (k2 as usize) < self.arts[k as usize].len() => {
                    AfterFire::Art { block: k as u16, k: k2 as u32 }
                }
                _ => return Err(bad(format!("a paused spike's continuation {tag} ({k}, {k2})"))),
            };
            Some(Resume { spike: Spike { source, t }, then })
        } else {
            (0..5).try_for_each(|_| r.w().map(drop))?;
            None
        };
        self.rates.q10 = r.f()?;
        self.rates.usetable = r.b()?;
        let celsius = r.f()?;
        // The table is a function of the celsius it was made for: kept if made for the same.
        if celsius.is_nan() {
            self.rates.table = Default::default();
        } else if self.rates.table.celsius.to_bits() != celsius.to_bits() {
            self.rates.table = Default::default();
            self.rates.table.check(celsius);
        }
        for k in 0..4 {
            self.stops.init[k] = r.b()?;
        }
        self.stops.scatter_gather = r.w()?;
        self.stops.every = r.w()?;
        r.expect(nsrc, "spike sources")?;
        for k in 0..nsrc {
            self.stops.on_spike[k] = r.b()?;
        }
        self.watched = None;
        self.at_next_id = u32::try_from(r.w()?).map_err(|_| bad("the next sync id"))?;
        let n = r.len(3, "scheduled times")?;
        self.at_pending.clear();
        for _ in 0..n {
            let id = u32::try_from(r.w()?).map_err(|_| bad("a sync id"))?;
            self.at_pending.push((id, r.f()?, r.f()?));
        }
        let n = r.len(1, "delivered times")?;
        self.at_fired.clear();
        for _ in 0..n {
            self.at_fired.push(r.f()?);
        }
        let n = r.len(2, "spikes")?;
        self.spikes.clear();
        for _ in 0..n {
            let source = r.index(nsrc, "spike source")? as u32;
            self.spikes.push(Spike { source, t: r.f()? });
        }
        let next_seq = r.w()?;
        let next_id = r.w()?;
        let has_least = r.b()?;
        let read_event = |r: &mut Reader| -> Result<Event> {
            let t = r.f()?;
            let (id, seq) = (r.w()?, r.w()?);
            let (tag, a, b) = (r.w()?, r.w()?, r.w()?);
            Ok(Event::restored(t, id, seq, self.event_kind(tag, a, b)?))
        };
        let least = if has_least { Some(read_event(&mut r)?) } else { None };
        let n = r.len(EVENT_WORDS, "events")?;
        let mut tree = Vec::with_capacity(n);
        for _ in 0..n {
            tree.push(read_event(&mut r)?);
        }
        self.queue.restore(least, tree, next_seq, next_id);
        let n = r.len(2, "plays")?;
        if n != self.plays.list.len() {
            return Err(bad(format!("the state has {n} plays, this simulation {}", self.plays.list.len())));
        }
        for p in &mut self.plays.list {
            p.index = r.w()? as usize;
            p.last = r.w()? as usize;
        }

        let nsec = self.model.sections.len();
        r.expect(nsec, "sections")?;
        for s in 0..nsec {
            let spec = &mut self.model.sections[s];
            spec.l = r.f()?;
            spec.diam = r.f()?;
            let nseg = r.f()?;
            if nseg != f64::from(spec.nseg) {
                return Err(bad(format!("section `{}` has nseg {nseg} in the state, {} here", spec.name, spec.nseg)));
            }
            spec.cm = r.f()?;
            spec.ra = r.f()?;
            spec.threshold = r.f()?;
            r.expect(spec.mechs.len(), &format!("mechanisms in `{}`", spec.name))?;
            for ins in &mut spec.mechs {
                if r.w()? != u64::from(ins.mech.0) {
                    return Err(bad(format!("section `{}` has other mechanisms in the state", spec.name)));
                }
                r.fs_into(&mut ins.params, "parameters")?;
                read_seg_values(&mut r, &mut ins.segs, spec.nseg)?;
            }
            read_seg_values(&mut r, &mut spec.segs, spec.nseg)?;
            let root = spec.parent.is_none();
            let at = self.cells.sec_at[s];
            let tile = &mut self.cells.tiles[at.tile as usize];
            let (n, lane, j) = (tile.lanes, at.lane as usize, at.local as usize);
            let nodes = section_nodes(tile, j, root);
            r.expect(nodes.len(), "nodes")?;
            for k in 0..5 {
                let mut arr: ColMut = match k {
                    0 => (&mut tile.v).into(),
                    1 => (&mut tile.area).into(),
                    2 => (&mut tile.rinv).into(),
                    3 => (&mut tile.a).into(),
                    _ => (&mut tile.b).into(),
                };
                for nd in nodes.clone() {
                    arr.set(nd * n + lane, r.f()?);
                }
            }
            let caps = tile.template.cap_range(j);
            r.expect(caps.len(), "capacitance nodes")?;
            for c in caps {
                tile.cm.set(c * n + lane, r.f()?);
            }
            let x = j * n + lane;
            tile.thresh.set(x, r.f()?);
            tile.above[x] = r.b()?;
            tile.flag[x] = r.b()?;
            // Cheap and always right: `crossings` compares every detector of the tile again.
            tile.changed = true;
            let dens: Vec<usize> = density_blocks(tile, j).collect();
            r.expect(dens.len(), "density mechanisms")?;
            for b in dens {
                let range = tile.template.instances(b, j);
                if r.w()? != u64::from(tile.template.blocks[b].0 .0) {
                    return Err(bad("a density mechanism of another type"));
                }
                r.expect(range.len(), "instances")?;
                let per = tile.blocks[b].saved_len();
                r.expect(per, "values per instance")?;
                r.have(per * range.len())?;
                for i in range.clone() {
                    tile.blocks[b].load(i * n + lane, &mut || r.next_f());
                }
            }
        }
        r.expect(self.model.points.len(), "point processes")?;
        for p in 0..self.model.points.len() {
            let spec = &mut self.model.points[p];
            if r.w()? != u64::from(spec.mech.0) {
                return Err(bad(format!("point process `{}` is of another type in the state", spec.name)));
            }
            r.fs_into(&mut spec.params, "parameters")?;
            let at = self.cells.point_at[p];
            let block = &mut self.cells.tiles[at.tile as usize].blocks[at.block as usize];
            let per = block.saved_len();
            r.expect(per, "values per instance")?;
            r.have(per)?;
            block.load(at.at as usize, &mut || r.next_f());
        }
        r.expect(self.model.cells.len(), "artificial cells")?;
        for c in 0..self.model.cells.len() {
            let spec = &mut self.model.cells[c];
            if r.w()? != u64::from(spec.mech.0) {
                return Err(bad(format!("cell `{}` is of another type in the state", spec.name)));
            }
            r.fs_into(&mut spec.params, "parameters")?;
            let Target::Art { block, k } = self.cell_slot[c] else { unreachable!("a cell's slot") };
            let n = r.len(1, "words of a cell")?;
            let art = &mut self.arts[block as usize];
            let mut want = 0;
            art.save(k as usize, &mut |_| want += 1);
            if n != want {
                return Err(bad(format!("cell `{}` has {n} words of state, {want} here", self.model.cells[c].name)));
            }
            art.load(k as usize, &mut || r.next_w()).map_err(|what| bad(format!("cell `{}`: {what}", self.model.cells[c].name)))?;
        }
        r.expect(self.model.netcons.len(), "NetCons")?;
        for i in 0..self.model.netcons.len() {
            self.model.netcons[i].delay = r.f()?;
            self.model.netcons[i].weight = r.f()?;
            self.nets.delay[i] = r.f()?;
            self.nets.weight[i] = r.f()?;
        }
        self.det_delay = None;
        if r.pos != words.len() {
            return Err(bad(format!("{} words left over after the state", words.len() - r.pos)));
        }
        // Loading wrote every column: equal ones are shared again, as after initialization.
        self.cells.share(self.dt_step);
        Ok(())
    }

    fn event_kind(&self, tag: u64, a: u64, b: u64) -> Result<EventKind> {
        let idx = |bound: usize, what: &str| {
            if a < bound as u64 {
                Ok(a as usize)
            } else {
                Err(bad(format!("an event for {what} {a} (there are {bound})")))
            }
        };
        Ok(match tag {
            EV_NETCON => EventKind::NetCon(idx(self.model.netcons.len(), "NetCon")? as u32),
            EV_SELF if b <= u64::from(u8::MAX) => {
                EventKind::SelfEvent { cell: idx(self.model.cells.len(), "cell")? as u32, flag: b as u8 }
            }
            EV_POINT => {
                let p = idx(self.model.points.len(), "point process")?;
                EventKind::External { target: super::point_target(&self.cells, p), weight: f64::from_bits(b) }
            }
            EV_CELL => EventKind::External { target: self.cell_slot[idx(self.model.cells.len(), "cell")?], weight: f64::from_bits(b) },
            EV_AT => EventKind::At(u32::try_from(a).map_err(|_| bad("a sync id"))?),
            EV_PLAY => EventKind::Play(idx(self.plays.list.len(), "play")? as u32),
            _ => return Err(bad(format!("an event of unknown kind {tag}"))),
        })
    }

    /// The model's structure, one line per object, in model order: what must be the same for
    /// a state to fit (`read_state`). Parameter values are not in it.
    pub fn structure(&self) -> Vec<String> {
        let m = &self.model;
        let mut out = vec![];
        for s in &m.sections {
            let parent = s.parent.as_ref().map_or_else(|| "-".to_string(), |p| format!("{}({})", p.section, p.x));
            let mechs: Vec<&str> = s.mechs.iter().map(|i| i.mech.def().name).collect();
            out.push(format!("section {} nseg={} parent={parent} mechanisms={}", s.name, s.nseg, mechs.join(",")));
        }
        for p in &m.points {
            out.push(format!("point {} {} at {}({})", p.name, p.mech.def().name, p.at.section, p.at.x));
        }
        for c in &m.cells {
            let times = if c.times.is_empty() {
                String::new()
            } else {
                let words: Vec<u64> = c.times.iter().map(|t| t.to_bits()).collect();
                format!(" times={}:{:016x}", c.times.len(), crate::xxh64::of_words(&words))
            };
            out.push(format!("cell {} {}{times}", c.name, c.mech.def().name));
        }
        for n in &m.netcons {
            out.push(format!("netcon {} {} -> {}", n.name, n.source, n.target));
        }
        out
    }
}

/// The nodes of local section j: the cell's root node if it is the root section, then its
/// segments' centers and its 1 end.
fn section_nodes(tile: &super::cells::Tile, j: usize, root: bool) -> std::ops::Range<usize> {
    let lay = tile.template.sections[j];
    let first = if root { 0 } else { lay.first as usize };
    debug_assert!(!root || lay.first == 1);
    first..lay.end_node() as usize + 1
}

/// The density mechanism blocks with instances on local section j, in type order.
fn density_blocks(tile: &super::cells::Tile, j: usize) -> impl Iterator<Item = usize> + '_ {
    let t = &tile.template;
    (0..t.blocks.len()).filter(move |&b| {
        let id: MechId = t.blocks[b].0;
        id.def().kind == MechKind::Density && !t.instances(b, j).is_empty()
    })
}

/// A section's or mechanism's per-segment values: how many fields vary, then each field, its
/// count of segments and their values.
fn seg_values(o: &mut impl Words, segs: &crate::model::SegValues) {
    o.n(segs.iter().count());
    for (field, values) in segs.iter() {
        o.n(field);
        o.fs(values);
    }
}

fn read_seg_values(r: &mut Reader, segs: &mut crate::model::SegValues, nseg: u32) -> Result<()> {
    let fields: Vec<usize> = segs.iter().map(|(f, _)| f).collect();
    fields.into_iter().for_each(|f| segs.clear(f));
    let n = r.len(2, "fields with per-segment values")?;
    for _ in 0..n {
        let field = r.index(u16::MAX as usize, "field")?;
        r.expect(nseg as usize, "segments")?;
        for seg in 0..nseg {
            let x = r.f()?;
            segs.set(field, seg, x, nseg, 0.0);
        }
    }
    Ok(())
}
