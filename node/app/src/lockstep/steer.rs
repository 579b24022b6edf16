//! The run as the lockstep steers it, apart from any transport: where it is paused (`point`,
//! `pending`), what reports carry (`watch`), the snapshots it holds, and the one way it moves:
//! `apply` — the actions accepted at a sync point, each controller's in the fixed order,
//! then the run to the next sync point (or back to a snapshot). The request loop
//! (`Lockstep`) and `spikebus replay` both drive it, so a replay does what the session did.
//!
//! Telemetry: the node is waiting from the moment a sync point is reached (its report is
//! sent) until the `continue`s that release it are in (`wait`), and then busy until it
//! reaches the next one (`sim`: the actions, the simulation, recording).

use std::collections::BTreeMap;
use std::time::Instant;

use spikebus_engine::{Pause, Spike};
use spikebus_protocol::{self as proto, Action, Reason};

use super::actions::{self, Ctx, Refusal};
use super::{Point, Watch};
use crate::control_log::{self, Entry};
use crate::run::Session;
use crate::signals::Stop;
use crate::snapshot::{hex, LockState, Snapshot, Snapshots};

/// What applying a sync point's actions led to.
pub enum Outcome {
    /// The run is at its next sync point (`pending`), or back at a restored one.
    Sync { snapshots: Vec<u64>, restored: Option<u64> },
    /// The run is over.
    Finish(proto::EndReason),
}

struct Tel {
    /// When the pending point was reached.
    reached: Instant,
    /// When it was released (the actions began), if it was.
    released: Option<Instant>,
    last_wait: f64,
    totals: proto::Totals,
}

pub struct Steer<'a> {
    pub session: Session,
    pub point: Point,
    pub watch: Watch,
    pub pending: proto::SyncBody,
    /// Spikes since the last report.
    since_sync: Vec<Spike>,
    pub sources: Vec<String>,
    pub snapshots: Snapshots,
    pub max_names: usize,
    stop: &'a Stop,
    wait_subscribers: usize,
    /// The stream's `started` has gone out.
    announced: bool,
    tel: Tel,
    /// Pauses run through since the last sync point was released (for the log's `end`).
    pauses: u64,
}

/// Where a node started from a snapshot file is: its point, watch and report.
pub struct Resume {
    pub lock: LockState,
}

impl<'a> Steer<'a> {
    pub fn new(session: Session, snapshots: Snapshots, max_names: usize, wait_subscribers: usize, stop: &'a Stop) -> Self {
        let sources: Vec<String> = session.sim.source_names().iter().map(|s| s.to_string()).collect();
        Steer {
            session,
            point: Point::Start,
            watch: Watch::default(),
            pending: proto::SyncBody {
                t: 0.0,
                step: 0,
                reasons: vec![Reason::Start],
                at: vec![],
                spike: None,
                values: BTreeMap::new(),
                spikes: vec![],
                hash: None,
                telemetry: None,
            },
            since_sync: vec![],
            sources,
            snapshots,
            max_names,
            stop,
            wait_subscribers,
            announced: false,
            tel: Tel { reached: Instant::now(), released: None, last_wait: 0.0, totals: proto::Totals::default() },
            pauses: 0,
        }
    }

    /// Starts at a snapshot's sync point (a node started with `--from-snapshot`).
    pub fn resume_at(&mut self, lock: LockState) {
        self.point = lock.point;
        self.watch = lock.watch;
        self.session.hash_every = self.watch.hash_every;
        self.pending = lock.pending;
        self.pending.values = self.read_watched();
        if self.watch.hash {
            self.pending.hash = Some(hex(self.session.sim.state_hash()));
        }
    }

    /// Checks a controller's actions here, after `prior` (the actions of the controllers
    /// before it, already accepted).
    pub fn check(&self, prior: &[Action], actions: &[Action]) -> Result<(), Refusal> {
        let cx = Ctx {
            sim: &self.session.sim,
            point: self.point,
            sources: &self.sources,
            max_names: self.max_names,
            snapshots: &self.snapshots,
        };
        actions::check(&cx, prior, actions)
    }

    /// The state hash, as the protocol writes it.
    pub fn hash(&self) -> String {
        hex(self.session.sim.state_hash())
    }

    /// Applies the actions accepted here (each controller's, in the order given: checked
    /// together), logs them, and runs to the next sync point.
    pub fn apply(&mut self, by: Vec<(String, Vec<Action>)>) -> Outcome {
        let taken = match self.act(by) {
            Ok(taken) => taken,
            Err(outcome) => return outcome,
        };
        if self.point == Point::End {
            return Outcome::Finish(proto::EndReason::End);
        }
        match self.run_to_next() {
            Some(reason) => Outcome::Finish(reason),
            None => Outcome::Sync { snapshots: taken, restored: None },
        }
    }

    /// Logs and applies the actions accepted here, without running on: the snapshots they
    /// took, or the outcome when they decide it (a `restore`, a `stop`).
    pub fn act(&mut self, by: Vec<(String, Vec<Action>)>) -> Result<Vec<u64>, Outcome> {
        self.log_point(&by, false);
        self.release();
        let mut taken = vec![];
        for (_, list) in by {
            for a in list {
                match a {
                    Action::Snapshot(_) => taken.push(self.take_snapshot()),
                    Action::Restore(r) => {
                        self.restore(r.id);
                        return Err(Outcome::Sync { snapshots: taken, restored: Some(r.id) });
                    }
                    Action::Discard(d) => self.discard(d.id),
                    a => {
                        let s = &mut self.session;
                        if actions::apply(&mut s.sim, &mut self.watch, &self.sources, a) {
                            return Err(Outcome::Finish(proto::EndReason::Stop));
                        }
                        s.hash_every = self.watch.hash_every;
                    }
                }
            }
        }
        Ok(taken)
    }

    /// Writes the sync point and the actions applied there to the control log.
    fn log_point(&mut self, by: &[(String, Vec<Action>)], free: bool) {
        if self.session.log.is_none() {
            return;
        }
        let applied = control_log::Applied {
            t: self.pending.t,
            step: self.pending.step,
            reasons: self.pending.reasons.clone(),
            hash: self.hash(),
            by: by
                .iter()
                .map(|(client, list)| control_log::By { client: client.clone(), actions: control_log::actions_to_json(list) })
                .collect(),
        };
        let log = self.session.log.as_mut().expect("checked");
        log.write(&if free { Entry::Free(applied) } else { Entry::Apply(applied) });
        log.flush();
        self.pauses = 0;
    }

    /// Writes how a run ended that no request ended.
    pub fn log_end(&mut self, reason: proto::EndReason) {
        let pauses = self.pauses;
        if let Some(log) = self.session.log.as_mut() {
            log.write(&Entry::End(control_log::Ended { reason, pauses }));
        }
    }

    fn take_snapshot(&mut self) -> u64 {
        let id = self.snapshots.next_id;
        self.snapshots.next_id += 1;
        let words = self.session.sim.state_words();
        let hash = spikebus_engine::xxh64::of_words(&words);
        let rec = self.session.mark(id);
        let lock = LockState { point: self.point, watch: self.watch.clone(), pending: self.pending.clone() };
        self.snapshots.list.push(Snapshot { id, words, hash, rec, lock });
        id
    }

    fn discard(&mut self, id: u64) {
        if self.snapshots.remove(id).is_some() {
            self.session.forget_mark(id);
        }
    }

    /// Back to snapshot `id`: the simulation's state, the point and its report, the watch,
    /// and the outputs as they stood.
    fn restore(&mut self, id: u64) {
        let snap = self.snapshots.get(id).expect("checked: a held snapshot").clone();
        self.session.sim.read_state(&snap.words).expect("a snapshot of this simulation fits it");
        debug_assert_eq!(self.session.sim.state_hash(), snap.hash);
        self.session.rewind(id, &snap.rec);
        self.point = snap.lock.point;
        self.watch = snap.lock.watch;
        self.session.hash_every = self.watch.hash_every;
        self.since_sync.clear();
        let mut body = snap.lock.pending;
        body.values = self.read_watched();
        body.hash = self.watch.hash.then(|| hex(snap.hash));
        body.telemetry = None;
        self.pending = body;
        self.reached();
        self.session.publish_sync(&self.pending);
    }

    fn read_watched(&self) -> BTreeMap<String, f64> {
        let sim = &self.session.sim;
        self.watch.values.iter().map(|(n, w)| (n.clone(), Watch::read(sim, n, w))).collect()
    }

    /// The point is released: its wait ends.
    fn release(&mut self) {
        let now = Instant::now();
        let wait = now.saturating_duration_since(self.tel.reached).as_secs_f64();
        self.tel.last_wait = wait;
        self.tel.totals.wait += wait;
        self.tel.released = Some(now);
    }

    /// A sync point is reached: the exchange's telemetry.
    fn reached(&mut self) -> proto::Telemetry {
        let now = Instant::now();
        let sim = self.tel.released.take().map_or(0.0, |r| now.saturating_duration_since(r).as_secs_f64());
        self.tel.totals.sim += sim;
        self.tel.totals.exchanges += 1;
        self.tel.reached = now;
        let t = proto::Telemetry { wait: self.tel.last_wait, sim };
        if self.watch.telemetry {
            self.pending.telemetry = Some(t);
        }
        t
    }

    /// The run's telemetry so far (a release not followed by a sync point counts as
    /// simulating until now).
    pub fn totals(&self) -> proto::Totals {
        let mut t = self.tel.totals;
        if let Some(r) = self.tel.released {
            t.sim += r.elapsed().as_secs_f64();
        }
        t
    }

    /// Runs `n` pauses on, past any sync point (a replay of a run that ended between sync
    /// points: `n` from the log's `end`); the end reason if the run had to end sooner.
    pub fn run_pauses(&mut self, n: u64) -> Option<proto::EndReason> {
        if self.point == Point::Start && n > 0 {
            self.point = Point::Paused;
        }
        for _ in 0..n {
            if let Err(reason) = self.pause_once() {
                return Some(reason);
            }
        }
        None
    }

    /// Runs to the engine's next pause (collecting the spikes reports carry); the end reason
    /// if the run must end there (a signal, a limit, an output that failed, a divergence).
    fn pause_once(&mut self) -> Result<Pause, proto::EndReason> {
        let (pause, spikes) = self.session.advance();
        self.pauses += 1;
        if self.watch.spikes {
            self.since_sync.extend_from_slice(spikes);
        }
        match pause {
            Pause::Interrupted => return Err(proto::EndReason::Signal),
            Pause::Limit(hit) => {
                self.session.limit(hit);
                return Err(proto::EndReason::Limit);
            }
            _ => {}
        }
        self.session.must_end().map_or(Ok(pause), Err)
    }

    /// Runs to the next sync point and makes it pending; the end reason if the run must end.
    pub fn run_to_next(&mut self) -> Option<proto::EndReason> {
        if !self.announced {
            // Observers are waited for (and greeted) when the run leaves its first point, so
            // a controller can say hello meanwhile.
            if let Err(e) = self.session.announce(self.wait_subscribers, self.stop) {
                eprintln!("spikebus: {e}");
                return Some(proto::EndReason::Signal);
            }
            // The first point, as the controller saw it, opens the stream's sync messages.
            self.session.publish_sync(&self.pending);
            self.announced = true;
        }
        if self.point == Point::Start {
            self.point = Point::Paused;
        }
        loop {
            if self.stop.requested() {
                return Some(proto::EndReason::Signal);
            }
            let pause = match self.pause_once() {
                Ok(p) => p,
                Err(reason) => return Some(reason),
            };
            if let Some(body) = self.report(pause) {
                if body.reasons.contains(&Reason::End) {
                    self.point = Point::End;
                }
                // The log's `end` counts the pauses since the last sync point reached.
                self.pauses = 0;
                self.pending = body;
                self.reached();
                self.session.publish_sync(&self.pending);
                return None;
            }
        }
    }

    /// The sync report for a pause, if the pause is a sync point.
    fn report(&mut self, pause: Pause) -> Option<proto::SyncBody> {
        let mut at = vec![];
        let mut spike = None;
        let reasons = match pause {
            Pause::Init(kind) => vec![Reason::init(kind)],
            Pause::Spike(s) => {
                spike = Some(proto::SpikeRecord { source: self.sources[s.source as usize].clone(), t: s.t });
                vec![Reason::Spike]
            }
            Pause::ScatterGather => vec![Reason::ScatterGather],
            Pause::Interrupted | Pause::Limit(_) => vec![],
            Pause::Boundary(b) => {
                // NEURON's order at a boundary: CVode.event callbacks (allthread_handle), then
                // FInitializeHandler type 2 (at the end of initialization).
                let mut r = vec![];
                if !b.at.is_empty() {
                    r.push(Reason::At);
                    at = b.at;
                }
                if b.init {
                    r.push(Reason::Init2);
                }
                if b.every {
                    r.push(Reason::Every);
                }
                if b.end {
                    r.push(Reason::End);
                }
                r
            }
        };
        if reasons.is_empty() {
            return None;
        }
        let sim = &self.session.sim;
        Some(proto::SyncBody {
            t: sim.now(),
            step: sim.step_index(),
            reasons,
            at,
            spike,
            values: self.read_watched(),
            spikes: self
                .since_sync
                .drain(..)
                .map(|s| proto::SpikeRecord { source: self.sources[s.source as usize].clone(), t: s.t })
                .collect(),
            hash: self.watch.hash.then(|| hex(sim.state_hash())),
            telemetry: None,
        })
    }

    /// The `--on-timeout continue` policy: the actions that arrived apply (logged as `free`),
    /// the schedule is dropped and the run goes on to tstop.
    pub fn run_free(&mut self, by: Vec<(String, Vec<Action>)>) -> proto::EndReason {
        self.log_point(&by, true);
        self.release();
        for (_, list) in by {
            for a in list {
                match a {
                    Action::Snapshot(_) => {
                        self.take_snapshot();
                    }
                    Action::Discard(d) => self.discard(d.id),
                    // A restore here would land on a sync point the free run does not stop
                    // at; the free run goes on from where it is.
                    Action::Restore(_) => {}
                    a => {
                        if actions::apply(&mut self.session.sim, &mut self.watch, &self.sources, a) {
                            return proto::EndReason::Stop;
                        }
                    }
                }
            }
        }
        let sim = &mut self.session.sim;
        let stops = sim.stops_mut();
        stops.init = [false; 4];
        stops.every = 0;
        stops.scatter_gather = 0;
        stops.on_spike.iter_mut().for_each(|s| *s = false);
        for t in sim.pending_at() {
            let _ = sim.remove_at(t);
        }
        if self.point == Point::End {
            return proto::EndReason::End;
        }
        self.run_to_next().unwrap_or(proto::EndReason::End)
    }

    /// Hands the run's telemetry to the session (for `done` on the stream) and returns it.
    pub fn close(&mut self) -> proto::Totals {
        let t = self.totals();
        self.session.telemetry = Some(t);
        t
    }
}
