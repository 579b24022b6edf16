//! The lockstep loop: the node pauses at sync points and answers its controller (REQ/REP);
//! a `continue` applies its actions and runs the simulation to the next sync point. The
//! protocol is `schemas/README.md`.
//!
//! A bad request changes nothing: every action of a `continue` is checked before any is
//! applied. A request resent with the same bytes (a retry after a lost reply) gets the same
//! reply again and is not applied twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spikebus_engine::{signal, Error as EngineError, SignalRef, Spike, Stage};
use spikebus_protocol::{self as proto, Action, ErrorCode, Reason, Reply, Request, RequestId};

use crate::bus::{Control, Incoming};
use crate::error::AppError;
use crate::run::{RunSummary, Session};
use crate::signals::Stop;

pub struct ControlOptions {
    pub wait_subscribers: usize,
    /// Requests longer than this get a `too_large` error.
    pub max_message: usize,
    /// How long the node waits at a sync point for a request, and what it does then.
    pub sync_timeout: Option<Duration>,
    pub on_timeout: TimeoutPolicy,
}

/// What the node does when no controller has sent anything for `--sync-timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TimeoutPolicy {
    /// Keep waiting (a line on stderr says so, once per timeout).
    Wait,
    /// End the run: write everything recorded, publish `done` (reason timeout), exit 3.
    Abort,
    /// Run on to tstop without pausing again, as a free run.
    Continue,
}

/// Where the node is paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    Start,
    Init,
    Step,
    End,
}

/// A watched name: a parameter (read from the model) or a signal (read from the arrays).
#[derive(Debug, Clone)]
enum Watched {
    Param,
    Signal(SignalRef),
}

struct Lockstep {
    point: Point,
    init: bool,
    every: u64,
    /// One-shot sync times, ascending.
    at: Vec<f64>,
    /// Per spike source: does a spike of it make a sync point?
    on_spike: Vec<bool>,
    watch: Vec<(String, Watched)>,
    watch_spikes: bool,
    pending: proto::SyncBody,
    /// Spikes since the last report (names are looked up when it is made).
    since_sync: Vec<Spike>,
    spike_hit: bool,
    sources: Vec<String>,
    wait_subscribers: usize,
}

/// What a request leads to.
enum Handled {
    Reply(Reply),
    /// The run is over (`end` passed or `stop`): finish, then reply `done`.
    Finish(RequestId, proto::EndReason),
}

fn error(id: RequestId, code: ErrorCode, message: impl Into<String>, field: Option<String>) -> Reply {
    Reply::Error(proto::ErrorReply { id, code, message: message.into(), field })
}

/// An engine error as a protocol error at `field`.
fn engine_error(id: RequestId, e: EngineError, field: String) -> Reply {
    let code = match e {
        EngineError::UnknownName { .. } | EngineError::NotATarget { .. } => ErrorCode::UnknownName,
        EngineError::InvalidValue { .. } => ErrorCode::InvalidValue,
        EngineError::NotWritable { .. } => ErrorCode::NotWritable,
        EngineError::EventInPast { .. } => ErrorCode::EventInPast,
        EngineError::Syntax { .. } | EngineError::Model { .. } => ErrorCode::BadMessage,
    };
    error(id, code, e.to_string(), Some(field))
}

impl Lockstep {
    fn new(session: &Session, wait_subscribers: usize) -> Self {
        let sources: Vec<String> = session.sim.source_names().iter().map(|s| s.to_string()).collect();
        Lockstep {
            point: Point::Start,
            init: false,
            every: 0,
            at: vec![],
            on_spike: vec![false; sources.len()],
            watch: vec![],
            watch_spikes: true,
            pending: proto::SyncBody { t: 0.0, step: 0, reasons: vec![Reason::Start], values: BTreeMap::new(), spikes: vec![] },
            since_sync: vec![],
            spike_hit: false,
            sources,
            wait_subscribers,
        }
    }

    fn handle(&mut self, session: &mut Session, bytes: &[u8], opts: &ControlOptions, stop: &Stop) -> Handled {
        if bytes.len() > opts.max_message {
            return Handled::Reply(error(
                None,
                ErrorCode::TooLarge,
                format!("the message has {} bytes; this node accepts at most {} (--max-message)", bytes.len(), opts.max_message),
                None,
            ));
        }
        let req = match proto::decode_request(bytes) {
            Ok(r) => r,
            Err(e) => return Handled::Reply(error(proto::peek_id(bytes), e.code, e.message, e.field)),
        };
        match req {
            // decode_request has refused any other protocol version.
            Request::Hello { id, .. } => Handled::Reply(self.hello(session, id)),
            Request::Get { id, names } => Handled::Reply(self.get(session, id, &names)),
            Request::Continue { id, actions } => {
                if let Err(reply) = self.check(session, id, &actions) {
                    return Handled::Reply(reply);
                }
                for a in actions {
                    if self.apply(session, a) {
                        return Handled::Finish(id, proto::EndReason::Stop);
                    }
                }
                if self.point == Point::End {
                    return Handled::Finish(id, proto::EndReason::End);
                }
                if !self.run_to_next(session, stop) {
                    return Handled::Finish(id, proto::EndReason::Signal);
                }
                session.publish_sync(&self.pending);
                Handled::Reply(Reply::Sync(proto::SyncReport { id, body: self.pending.clone() }))
            }
        }
    }

    fn hello(&self, session: &Session, id: RequestId) -> Reply {
        let sim = &session.sim;
        let model = sim.model();
        Reply::Hello(Box::new(proto::HelloReply {
            id,
            protocol: proto::PROTOCOL_VERSION,
            node: format!("spikebus {}", env!("CARGO_PKG_VERSION")),
            model: model.origin.clone(),
            dt: sim.dt(),
            tstop: sim.tstop(),
            t: sim.t(),
            step: sim.step_index(),
            params: model
                .params()
                .into_iter()
                .map(|p| proto::ParamEntry { name: p.name, unit: p.unit.to_string(), writable: p.runtime, value: p.value })
                .collect(),
            signals: signal::names(model),
            sources: self.sources.clone(),
            targets: sim.targets().iter().map(|s| s.to_string()).collect(),
            schedule: proto::ScheduleState {
                init: self.init,
                every: self.every,
                at: self.at.clone(),
                on_spike: self.sources.iter().zip(&self.on_spike).filter(|(_, on)| **on).map(|(s, _)| s.clone()).collect(),
            },
            watch: proto::WatchState { values: self.watch.iter().map(|(n, _)| n.clone()).collect(), spikes: self.watch_spikes },
            pending: proto::Pending::Sync(proto::SyncReport { id: None, body: self.pending.clone() }),
        }))
    }

    /// A parameter or a signal, by name.
    fn resolve_watch(session: &Session, name: &str) -> Result<Watched, EngineError> {
        if session.sim.model().resolve(name).is_ok() {
            return Ok(Watched::Param);
        }
        session.sim.signal(name).map(Watched::Signal).map_err(|_| EngineError::UnknownName {
            what: "parameter or signal",
            name: name.to_string(),
            hint: "see hello's params and signals".into(),
        })
    }

    fn read(session: &Session, name: &str, w: &Watched) -> f64 {
        match w {
            Watched::Param => session.sim.get(name).expect("resolved parameter"),
            Watched::Signal(r) => session.sim.value(*r),
        }
    }

    fn get(&self, session: &Session, id: RequestId, names: &[String]) -> Reply {
        let mut values = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            match Self::resolve_watch(session, name) {
                Ok(w) => {
                    values.insert(name.clone(), Self::read(session, name, &w));
                }
                Err(e) => return engine_error(id, e, format!("names[{i}]")),
            }
        }
        Reply::Values(proto::ValuesReply {
            id,
            t: session.sim.t(),
            step: session.sim.step_index(),
            values,
            hash: format!("{:016x}", self.state_hash(session)),
        })
    }

    /// The simulation's state hash combined with the schedule and watch list.
    fn state_hash(&self, session: &Session) -> u64 {
        let schedule = format!("{:?}", (self.point, self.init, self.every, &self.at, &self.on_spike, &self.watch_spikes));
        let watch: Vec<&str> = self.watch.iter().map(|(n, _)| n.as_str()).collect();
        let mine = spikebus_engine::sim::fnv1a(format!("{schedule}{watch:?}").as_bytes());
        session.sim.state_hash() ^ mine.rotate_left(1)
    }

    /// Whether a sync time T can still happen from here.
    fn time_ahead(&self, session: &Session, t: f64) -> bool {
        match self.point {
            Point::Start | Point::Init => t >= 0.0,
            Point::Step => t > session.sim.t() + 0.5 * session.sim.dt(),
            Point::End => false,
        }
    }

    /// Checks every action without applying any.
    fn check(&self, session: &Session, id: RequestId, actions: &[Action]) -> Result<(), Reply> {
        let sim = &session.sim;
        let mut at = self.at.clone();
        for (i, a) in actions.iter().enumerate() {
            let field = |f: &str| format!("actions[{i}].{f}");
            match a {
                Action::Set { name, value } => {
                    sim.check_set(name, *value).map_err(|e| {
                        let f = if matches!(e, EngineError::UnknownName { .. }) { "name" } else { "value" };
                        engine_error(id, e, field(f))
                    })?;
                }
                Action::Event { target, t, weight } => {
                    if matches!(self.point, Point::Start | Point::End) {
                        let why = if self.point == Point::Start {
                            "initialization discards events: schedule an `init` sync and send events there"
                        } else {
                            "the run has ended"
                        };
                        return Err(error(id, ErrorCode::WrongState, format!("no events now: {why}"), Some(field("t"))));
                    }
                    sim.check_inject(target, *t, *weight).map_err(|e| {
                        let f = match e {
                            EngineError::UnknownName { .. } | EngineError::NotATarget { .. } => "target",
                            EngineError::InvalidValue { ref name, .. } if name.ends_with("weight") => "weight",
                            _ => "t",
                        };
                        engine_error(id, e, field(f))
                    })?;
                }
                Action::Schedule { add_at, remove_at, on_spike, .. } => {
                    for (k, &t) in add_at.iter().flatten().enumerate() {
                        if !t.is_finite() {
                            return Err(error(id, ErrorCode::InvalidValue, format!("sync time {t} is not a finite number"), Some(field(&format!("add_at[{k}]")))));
                        }
                        if self.point == Point::End {
                            return Err(error(id, ErrorCode::WrongState, "the run has ended", Some(field(&format!("add_at[{k}]")))));
                        }
                        if !self.time_ahead(session, t) {
                            return Err(error(
                                id,
                                ErrorCode::EventInPast,
                                format!("sync time {t} has passed (t is {}, the next step point is past t + dt/2)", sim.t()),
                                Some(field(&format!("add_at[{k}]"))),
                            ));
                        }
                        at.push(t);
                    }
                    for (k, t) in remove_at.iter().flatten().enumerate() {
                        match at.iter().position(|x| x.to_bits() == t.to_bits()) {
                            Some(p) => {
                                at.remove(p);
                            }
                            None => {
                                return Err(error(id, ErrorCode::InvalidValue, format!("no sync is scheduled at {t}"), Some(field(&format!("remove_at[{k}]")))))
                            }
                        }
                    }
                    for (k, s) in on_spike.iter().flatten().enumerate() {
                        if !self.sources.contains(s) {
                            return Err(error(
                                id,
                                ErrorCode::UnknownName,
                                format!("unknown spike source `{s}`; sources are {}", self.sources.join(", ")),
                                Some(field(&format!("on_spike[{k}]"))),
                            ));
                        }
                    }
                }
                Action::Watch { values, .. } => {
                    for (k, name) in values.iter().flatten().enumerate() {
                        Self::resolve_watch(session, name).map_err(|e| engine_error(id, e, field(&format!("values[{k}]"))))?;
                    }
                }
                Action::Stop {} => {}
            }
        }
        Ok(())
    }

    /// Applies a checked action; true for `stop`.
    fn apply(&mut self, session: &mut Session, a: Action) -> bool {
        match a {
            Action::Set { name, value } => session.sim.set(&name, value).expect("checked"),
            Action::Event { target, t, weight } => session.sim.inject(&target, t, weight).expect("checked"),
            Action::Schedule { every, add_at, remove_at, on_spike, init } => {
                if let Some(n) = every {
                    self.every = n;
                }
                self.at.extend(add_at.unwrap_or_default());
                for t in remove_at.unwrap_or_default() {
                    if let Some(p) = self.at.iter().position(|x| x.to_bits() == t.to_bits()) {
                        self.at.remove(p);
                    }
                }
                self.at.sort_by(f64::total_cmp);
                if let Some(list) = on_spike {
                    self.on_spike = self.sources.iter().map(|s| list.contains(s)).collect();
                }
                if let Some(i) = init {
                    self.init = i;
                }
            }
            Action::Watch { values, spikes } => {
                if let Some(names) = values {
                    self.watch = names
                        .into_iter()
                        .map(|n| {
                            let w = Self::resolve_watch(session, &n).expect("checked");
                            (n, w)
                        })
                        .collect();
                }
                if let Some(s) = spikes {
                    self.watch_spikes = s;
                }
            }
            Action::Stop {} => return true,
        }
        false
    }

    /// Drops the schedule and runs to tstop; false if `stop` interrupted the run.
    fn run_free(&mut self, session: &mut Session, stop: &Stop) -> bool {
        self.init = false;
        self.every = 0;
        self.at.clear();
        self.on_spike.iter_mut().for_each(|s| *s = false);
        if self.point == Point::End {
            return true;
        }
        self.run_to_next(session, stop)
    }

    fn note_spikes(&mut self, spikes: &[Spike]) {
        for s in spikes {
            if self.watch_spikes {
                self.since_sync.push(*s);
            }
            if self.on_spike[s.source as usize] {
                self.spike_hit = true;
            }
        }
    }

    /// Runs to the next sync point and makes it pending; false if `stop` interrupted the run.
    fn run_to_next(&mut self, session: &mut Session, stop: &Stop) -> bool {
        match self.point {
            Point::Start => {
                // Observers are waited for (and greeted) when the run leaves its start point,
                // so a controller can say hello meanwhile.
                if let Err(e) = session.announce(self.wait_subscribers, stop) {
                    eprintln!("spikebus: {e}");
                    return false;
                }
                // The start point, as the controller saw it, opens the stream's sync messages.
                session.publish_sync(&self.pending);
                session.init_to_states();
                if self.init {
                    self.pause(session, Point::Init, vec![Reason::Init]);
                    return true;
                }
                let sp = session.init_end();
                self.note_spikes(sp);
            }
            Point::Init => {
                let sp = session.init_end();
                self.note_spikes(sp);
            }
            Point::Step => {
                let sp = session.step_end();
                self.note_spikes(sp);
            }
            Point::End => unreachable!("a run at its end finishes instead"),
        }
        debug_assert_eq!(session.sim.stage(), Stage::Ready);
        loop {
            if stop.requested() {
                return false;
            }
            let end = !session.sim.running();
            if !end {
                let sp = session.step_begin();
                self.note_spikes(sp);
            }
            let mut reasons = self.due_reasons(session);
            if end {
                reasons.push(Reason::End);
                self.pause(session, Point::End, reasons);
                return true;
            }
            if !reasons.is_empty() {
                self.pause(session, Point::Step, reasons);
                return true;
            }
            let sp = session.step_end();
            self.note_spikes(sp);
        }
    }

    /// The scheduled reasons to pause at the current step point (one-shot times are consumed).
    fn due_reasons(&mut self, session: &Session) -> Vec<Reason> {
        let mut reasons = vec![];
        if self.every > 0 && session.sim.step_index().is_multiple_of(self.every) {
            reasons.push(Reason::Every);
        }
        let due = session.sim.t() + 0.5 * session.sim.dt();
        let n_due = self.at.iter().take_while(|&&t| t <= due).count();
        if n_due > 0 {
            self.at.drain(..n_due);
            reasons.push(Reason::At);
        }
        if std::mem::take(&mut self.spike_hit) {
            reasons.push(Reason::Spike);
        }
        reasons
    }

    fn pause(&mut self, session: &Session, point: Point, reasons: Vec<Reason>) {
        self.point = point;
        let values = self.watch.iter().map(|(n, w)| (n.clone(), Self::read(session, n, w))).collect();
        self.pending = proto::SyncBody {
            t: session.sim.t(),
            step: session.sim.step_index(),
            reasons,
            values,
            spikes: self
                .since_sync
                .drain(..)
                .map(|s| proto::SpikeRecord { source: self.sources[s.source as usize].clone(), t: s.t })
                .collect(),
        };
    }
}

/// Serves the controller until the run is over; the last reply is `done`.
pub fn controlled_run(
    mut session: Session,
    control: Control,
    opts: &ControlOptions,
    stop: &Stop,
) -> Result<RunSummary, AppError> {
    let mut lock = Lockstep::new(&session, opts.wait_subscribers);
    // The last request answered and its reply, for retries.
    let mut last: Option<(Incoming, Vec<u8>)> = None;
    let mut idle_since = Instant::now();
    loop {
        let Some(req) = control.recv()? else {
            if stop.requested() {
                return session.finish(proto::EndReason::Signal);
            }
            if let Some(limit) = opts.sync_timeout {
                if idle_since.elapsed() >= limit {
                    match opts.on_timeout {
                        TimeoutPolicy::Wait => {
                            eprintln!("spikebus: no request for {limit:?} at t={}; waiting (--on-timeout wait)", session.sim.t());
                            idle_since = Instant::now();
                        }
                        TimeoutPolicy::Abort => {
                            eprintln!("spikebus: no request for {limit:?} at t={}; ending the run (--on-timeout abort)", session.sim.t());
                            return session.finish(proto::EndReason::Timeout);
                        }
                        TimeoutPolicy::Continue => {
                            eprintln!("spikebus: no request for {limit:?} at t={}; running on to tstop (--on-timeout continue)", session.sim.t());
                            return if lock.run_free(&mut session, stop) {
                                session.finish(proto::EndReason::End)
                            } else {
                                session.finish(proto::EndReason::Signal)
                            };
                        }
                    }
                }
            }
            continue;
        };
        idle_since = Instant::now();
        if let Some((prev, reply)) = &last {
            if *prev == req {
                control.send(reply)?;
                continue;
            }
        }
        let handled = if req.frames > 1 {
            let msg = format!("a request is one frame; this message had {}", req.frames);
            Handled::Reply(error(None, ErrorCode::BadMessage, msg, None))
        } else {
            lock.handle(&mut session, &req.bytes, opts, stop)
        };
        match handled {
            Handled::Reply(reply) => {
                let bytes = proto::encode(&reply);
                control.send(&bytes)?;
                last = Some((req, bytes));
            }
            Handled::Finish(id, reason) => {
                let (t, step) = (session.sim.t(), session.sim.step_index());
                let summary = session.finish(reason)?;
                let done = Reply::Done(proto::DoneReply {
                    id,
                    reason,
                    t,
                    step,
                    published: summary.published,
                    dropped: summary.dropped,
                });
                control.send(&proto::encode(&done))?;
                return Ok(summary);
            }
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! Many thousands of generated requests (garbage, near-misses, valid ones) through the
    //! decoder and the action applier: every request gets a reply, nothing panics, and a
    //! refused request leaves the state hash unchanged.

    use super::*;
    use crate::run::RunOptions;
    use rmpv::Value;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
            &xs[self.below(xs.len())]
        }
    }

    const NAMES: &[&str] = &[
        "ns.interval", "ns.number", "ns.start", "ns.noise", "syn.tau", "syn.e", "nc.weight", "nc.delay", "nc.threshold",
        "soma.gnabar_hh", "soma.diam", "soma.L", "soma.nseg", "soma.v", "soma.m_hh", "syn.g", "dt", "celsius", "tstop",
        "usetable_hh", "v_init", "", ".", "soma.", "soma(0.5).v", "soma(2).v", "nope", "ns.interval.x", "syn", "ns", "nc", "soma",
    ];

    fn number(r: &mut Rng) -> Value {
        match r.below(12) {
            0 => Value::F64(f64::NAN),
            1 => Value::F64(f64::INFINITY),
            2 => Value::F64(f64::NEG_INFINITY),
            3 => Value::F64(-1.0),
            4 => Value::F64(0.0),
            5 => Value::F64(1e300),
            6 => Value::from(r.below(100) as i64 - 50),
            7 => Value::from(u64::MAX),
            8 => Value::String("12".into()),
            9 => Value::Nil,
            _ => Value::F64((r.next() % 100_000) as f64 / 1000.0),
        }
    }

    fn name(r: &mut Rng) -> Value {
        if r.below(10) == 0 {
            number(r)
        } else {
            Value::String((*r.pick(NAMES)).into())
        }
    }

    fn map(fields: Vec<(&str, Value)>) -> Value {
        Value::Map(fields.into_iter().map(|(k, v)| (Value::String(k.into()), v)).collect())
    }

    fn action(r: &mut Rng) -> Value {
        let op = *r.pick(&["set", "event", "schedule", "watch", "stop", "jump", ""]);
        let mut f = vec![("op", Value::String(op.into()))];
        match op {
            "set" => {
                f.push(("name", name(r)));
                f.push(("value", number(r)));
            }
            "event" => {
                f.push(("target", name(r)));
                f.push(("t", number(r)));
                if r.below(2) == 0 {
                    f.push(("weight", number(r)));
                }
            }
            "schedule" => {
                if r.below(2) == 0 {
                    f.push(("every", if r.below(3) == 0 { number(r) } else { Value::from(r.below(50)) }));
                }
                if r.below(3) == 0 {
                    f.push(("add_at", Value::Array((0..r.below(3)).map(|_| number(r)).collect())));
                }
                if r.below(4) == 0 {
                    f.push(("remove_at", Value::Array((0..r.below(2)).map(|_| number(r)).collect())));
                }
                if r.below(3) == 0 {
                    f.push(("on_spike", Value::Array((0..r.below(3)).map(|_| name(r)).collect())));
                }
                if r.below(4) == 0 {
                    f.push(("init", Value::Boolean(r.below(2) == 0)));
                }
            }
            "watch" => {
                f.push(("values", Value::Array((0..r.below(4)).map(|_| name(r)).collect())));
            }
            _ => {}
        }
        if r.below(20) == 0 {
            f.push(("extra", Value::Nil));
        }
        map(f)
    }

    fn request(r: &mut Rng) -> Vec<u8> {
        let mut bytes = vec![];
        match r.below(10) {
            0 => return (0..r.below(40)).map(|_| r.next() as u8).collect(),
            1 => {
                // Deep nesting.
                let mut v = Value::Nil;
                for _ in 0..(5 + r.below(60)) {
                    v = Value::Array(vec![v]);
                }
                v = map(vec![("op", Value::String("continue".into())), ("actions", v)]);
                rmpv::encode::write_value(&mut bytes, &v).unwrap();
                return bytes;
            }
            _ => {}
        }
        let id = if r.below(8) == 0 { number(r) } else { Value::from(r.next() % 1000) };
        let v = match r.below(6) {
            0 => map(vec![("op", Value::String("hello".into())), ("id", id), ("protocol", if r.below(3) == 0 { number(r) } else { Value::from(1) })]),
            1 => map(vec![("op", Value::String("get".into())), ("id", id), ("names", Value::Array((0..r.below(4)).map(|_| name(r)).collect()))]),
            2 => map(vec![("op", Value::String("bogus".into())), ("id", id)]),
            _ => map(vec![("op", Value::String("continue".into())), ("id", id), ("actions", Value::Array((0..r.below(4)).map(|_| action(r)).collect()))]),
        };
        rmpv::encode::write_value(&mut bytes, &v).unwrap();
        if r.below(10) == 0 && !bytes.is_empty() {
            // A near miss: one byte flipped.
            let i = r.below(bytes.len());
            bytes[i] ^= 1 << r.below(8);
        }
        bytes
    }

    fn session(dir: &std::path::Path) -> Session {
        let mut model = spikebus_engine::Model::seed();
        model.set("tstop", 30.0).unwrap();
        let sim = spikebus_engine::Sim::new(model).unwrap();
        let opts = RunOptions { out_dir: dir.to_path_buf(), progress: false, pub_every: 1, pub_batch: 1, pub_signals: None };
        Session::new(sim, &opts, None).unwrap()
    }

    #[test]
    fn generated_requests_never_panic_and_refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ControlOptions { wait_subscribers: 0, max_message: 4096, sync_timeout: None, on_timeout: TimeoutPolicy::Wait };
        let stop = Stop::new();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut refused, mut accepted, mut runs) = (0, 0, 1);
        let mut s = session(dir.path());
        let mut lock = Lockstep::new(&s, 0);
        for _ in 0..30_000 {
            let bytes = request(&mut rng);
            let before = lock.state_hash(&s);
            match lock.handle(&mut s, &bytes, &opts, &stop) {
                Handled::Reply(Reply::Error(e)) => {
                    refused += 1;
                    assert_eq!(before, lock.state_hash(&s), "refused request changed the state: {e:?} for {bytes:?}");
                }
                Handled::Reply(_) => accepted += 1,
                Handled::Finish(..) => {
                    s = session(dir.path());
                    lock = Lockstep::new(&s, 0);
                    runs += 1;
                }
            }
        }
        assert!(refused > 10_000 && accepted > 1_000 && runs > 1, "refused {refused}, accepted {accepted}, runs {runs}");
    }
}
