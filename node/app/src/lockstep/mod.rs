//! The lockstep: the node pauses at sync points and serves requests (protocol version 2,
//! `schemas/README.md`). `Lockstep` owns the control channel (a `Transport`) and the run as
//! it is steered (`steer::Steer`: the session, the sync point, the watch, the snapshots); one
//! loop receives each request, answers it exactly once, and lets the simulation run on when
//! the run's owner says `continue`.
//!
//! - Exactly once: a request with an id is answered once per (client, id, bytes); a resend
//!   gets the kept reply and applies nothing (`clients`). A request without an id is never a
//!   resend.
//! - One owner: the first client to `continue` owns the run; a `continue` from anyone else is
//!   refused (`not_owner`); `hello` with `takeover` hands the run over, announced on stderr
//!   and on the stream. `hello`, `get` and `export` are open to all.
//! - Or several controllers in lockstep (`--controllers A,B,...`): each sync point is a
//!   barrier. A named controller's `continue` is checked alone when it arrives and held
//!   (unanswered); when every named controller's is in, they are checked together in the
//!   `--controllers` order (each after the actions of those before it), applied in that
//!   order, and each gets the report of the next sync point. Nothing depends on the order
//!   the requests arrived in. A controller's later `continue` at the same point replaces its
//!   held one (a controller restarted under its name resumes).
//! - A bad request changes nothing (`actions::check` before anything applies).
//! - After `done` the node lingers, answering resends of the final request, until no peer has
//!   been connected for a whole receive wait (100 ms) or `--linger` has passed.

mod actions;
mod clients;
pub mod steer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use spikebus_engine::{signal, Error as EngineError, SignalRef, Sim};
use spikebus_protocol::{self as proto, Action, ErrorCode, Reply, Request, RequestId};

use crate::error::AppError;
use crate::run::{RunSummary, Session};
use crate::signals::Stop;
use crate::snapshot::{self, hex, FileHeader, LockState, Snapshots};
use crate::transport::{Inbound, Transport};
use actions::{engine_refusal, Refusal};
use clients::Clients;
pub use steer::Steer;
use steer::Outcome;

pub struct ControlOptions {
    /// Most names in a `watch` or `get`.
    pub max_names: usize,
    pub wait_subscribers: usize,
    /// Requests longer than this get a `too_large` error.
    pub max_message: usize,
    /// How long the node waits at a sync point for a request, and what it does then.
    pub sync_timeout: Option<Duration>,
    pub on_timeout: TimeoutPolicy,
    /// How long the node stays up after `done` for a resend of the final request.
    pub linger: Duration,
    /// Most snapshots held at once (`--max-snapshots`).
    pub max_snapshots: usize,
    /// Most bytes of state the snapshots hold in all (`--snapshot-memory`).
    pub snapshot_memory: u64,
    /// Where `export` writes (`--snapshot-dir`); none: `export` is refused.
    pub snapshot_dir: Option<PathBuf>,
    /// `--controllers`: the named controllers of a barrier run, in the order their actions
    /// apply; none: one owner.
    pub controllers: Option<Vec<String>>,
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

/// Where the run is, for a controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// Before initialization.
    Start,
    /// At a sync point inside the run.
    Paused,
    /// At the `end` point: the next `continue` gets `done`.
    End,
}

/// A watched name: a parameter (read from the model) or a signal (read from the arrays).
#[derive(Debug, Clone)]
pub enum Watched {
    Param,
    Signal(SignalRef),
}

/// What sync reports carry (and the stream, for the state hash every `hash_every` steps).
#[derive(Debug, Clone)]
pub struct Watch {
    pub values: Vec<(String, Watched)>,
    pub spikes: bool,
    pub hash: bool,
    pub hash_every: u64,
    pub telemetry: bool,
}

impl Default for Watch {
    fn default() -> Self {
        Watch { values: vec![], spikes: true, hash: false, hash_every: 0, telemetry: false }
    }
}

impl Watch {
    /// A parameter or a signal, by name.
    pub fn resolve(sim: &Sim, name: &str) -> Result<Watched, EngineError> {
        if sim.model().resolve(name).is_ok() {
            return Ok(Watched::Param);
        }
        sim.signal(name).map(Watched::Signal).map_err(|_| EngineError::UnknownName {
            what: "parameter or signal",
            name: name.to_string(),
            hint: "see hello's params and signals".into(),
        })
    }

    pub fn read(sim: &Sim, name: &str, w: &Watched) -> f64 {
        match w {
            Watched::Param => sim.get(name).expect("resolved parameter"),
            Watched::Signal(r) => sim.value(*r),
        }
    }

    /// As `hello` and snapshot files write it.
    pub fn state(&self) -> proto::WatchState {
        proto::WatchState {
            values: self.values.iter().map(|(n, _)| n.clone()).collect(),
            spikes: self.spikes,
            hash: self.hash,
            hash_every: self.hash_every,
            telemetry: self.telemetry,
        }
    }

    /// A watch as `state` wrote it, its names resolved in `sim`.
    pub fn from_state(sim: &Sim, s: &proto::WatchState) -> Result<Watch, EngineError> {
        let values = s.values.iter().map(|n| Ok((n.clone(), Watch::resolve(sim, n)?))).collect::<Result<_, EngineError>>()?;
        Ok(Watch { values, spikes: s.spikes, hash: s.hash, hash_every: s.hash_every, telemetry: s.telemetry })
    }
}

/// What a request leads to.
enum Handled {
    Reply(Reply),
    /// The run is over (`end` passed, `stop`, or a signal while running): finish, reply `done`.
    Finish(proto::EndReason),
}

fn error_reply(id: RequestId, r: Refusal) -> Reply {
    Reply::Error(proto::ErrorReply { id, code: r.code, message: r.message, field: r.field })
}

fn error(id: RequestId, code: ErrorCode, message: impl Into<String>, field: Option<&str>) -> Reply {
    Reply::Error(proto::ErrorReply { id, code, message: message.into(), field: field.map(str::to_string) })
}

/// A request to answer when the run ends (with `done`): the message, its client, its id.
type Answer = (Inbound, String, RequestId);

/// A named controller's `continue`, held at the barrier until every one is in.
struct Held {
    msg: Inbound,
    id: RequestId,
    actions: Vec<Action>,
}

/// A request answered with `done`, kept for resends while the node lingers.
struct Last {
    client: String,
    id: Option<u64>,
    bytes: Vec<u8>,
    reply: Vec<u8>,
}

pub struct Lockstep<'a, T: Transport> {
    steer: Steer<'a>,
    transport: T,
    clients: Clients,
    opts: &'a ControlOptions,
    stop: &'a Stop,
    /// Requests served since the transport's connection count was last brought up to date.
    served: u32,
    /// With `--controllers`: each named controller's held `continue`, in their order.
    held: Vec<Option<Held>>,
    /// Sync points released so far (the barrier's timeout counts from the last release).
    released: u64,
}

/// Serves controllers until the run is over; the last reply is `done`. `resume`: the sync
/// point a node started from a snapshot file is at.
pub fn controlled_run<T: Transport>(
    session: Session,
    transport: T,
    opts: &ControlOptions,
    stop: &Stop,
    resume: Option<LockState>,
) -> Result<RunSummary, AppError> {
    let mut lock = Lockstep::new(session, transport, opts, stop);
    if let Some(l) = resume {
        lock.steer.resume_at(l);
    }
    lock.run()
}

impl<'a, T: Transport> Lockstep<'a, T> {
    pub fn new(session: Session, transport: T, opts: &'a ControlOptions, stop: &'a Stop) -> Self {
        let snapshots = Snapshots::new(opts.max_snapshots, opts.snapshot_memory);
        Lockstep {
            steer: Steer::new(session, snapshots, opts.max_names, opts.wait_subscribers, stop),
            transport,
            clients: Clients::default(),
            opts,
            stop,
            served: 0,
            held: opts.controllers.iter().flatten().map(|_| None).collect(),
            released: 0,
        }
    }

    /// The barrier's controllers, if this is a `--controllers` run.
    fn barrier(&self) -> Option<&'a [String]> {
        self.opts.controllers.as_deref()
    }

    /// Serves requests until the run is over, replies `done`, lingers, and says how the run went.
    pub fn run(mut self) -> Result<RunSummary, AppError> {
        let (reason, answers) = self.serve()?;
        self.steer.log_end(reason);
        let telemetry = self.steer.close();
        let Lockstep { steer, mut transport, opts, stop, .. } = self;
        let session = steer.session;
        let (t, step) = (session.sim.now(), session.sim.step_index());
        let summary = session.finish(reason);
        let mut lasts = vec![];
        for (msg, client, id) in answers {
            let done = Reply::Done(proto::DoneReply {
                id,
                reason: summary.reason,
                t,
                step,
                published: summary.published,
                error: summary.error.clone(),
                telemetry,
            });
            let reply = proto::encode(&done);
            transport.send(&msg.peer, &reply)?;
            lasts.push(Last { client, id, bytes: msg.bytes, reply });
        }
        if !lasts.is_empty() {
            linger(&mut transport, &lasts, opts.linger, stop)?;
        }
        Ok(summary)
    }

    /// The request loop; returns how the run ended and the request to answer with `done`
    /// (none when the run ended while no request was being served).
    #[allow(clippy::type_complexity)]
    fn serve(&mut self) -> Result<(proto::EndReason, Vec<Answer>), AppError> {
        let mut idle_since = Instant::now();
        loop {
            let Some(msg) = self.transport.recv()? else {
                if self.stop.requested() {
                    return Ok((proto::EndReason::Signal, self.take_held()));
                }
                let _ = self.transport.connected();
                self.served = 0;
                if let Some(limit) = self.opts.sync_timeout {
                    if idle_since.elapsed() >= limit {
                        let at = self.steer.session.sim.now();
                        let what = match self.barrier() {
                            Some(names) => {
                                let missing: Vec<&str> = names
                                    .iter()
                                    .zip(&self.held)
                                    .filter(|(_, h)| h.is_none())
                                    .map(|(n, _)| n.as_str())
                                    .collect();
                                format!("no `continue` from {} for {limit:?}", missing.join(", "))
                            }
                            None => format!("no request for {limit:?}"),
                        };
                        match self.opts.on_timeout {
                            TimeoutPolicy::Wait => {
                                eprintln!("spikebus: {what} at t={at}; waiting (--on-timeout wait)");
                                idle_since = Instant::now();
                            }
                            TimeoutPolicy::Abort => {
                                eprintln!("spikebus: {what} at t={at}; ending the run (--on-timeout abort)");
                                return Ok((proto::EndReason::Timeout, self.take_held()));
                            }
                            TimeoutPolicy::Continue => {
                                eprintln!("spikebus: {what} at t={at}; running on to tstop (--on-timeout continue)");
                                // The controllers that did send: their actions, in order.
                                let (by, answers) = self.accepted_in_order()?;
                                return Ok((self.steer.run_free(by), answers));
                            }
                        }
                    }
                }
                continue;
            };
            // One owner: any request shows a controller is there. A barrier: its timeout
            // counts from the last release (a missing controller is missing however busy
            // the others are).
            if self.barrier().is_none() {
                idle_since = Instant::now();
            }
            // Keep the connection count current under a steady stream of requests too.
            self.served += 1;
            if self.served >= 64 {
                let _ = self.transport.connected();
                self.served = 0;
            }
            let released = self.released;
            let ended = self.serve_one(&msg)?;
            if self.released != released {
                idle_since = Instant::now();
            }
            if let Some(end) = ended {
                return Ok(end);
            }
        }
    }

    /// Answers one request (from the kept replies if it is a resend); returns the run's end
    /// when the request finishes it (the caller replies `done`).
    fn serve_one(&mut self, msg: &Inbound) -> Result<Option<(proto::EndReason, Vec<Answer>)>, AppError> {
        if msg.bytes.len() > self.opts.max_message {
            let text = format!(
                "the message has {} bytes; this node accepts at most {} (--max-message)",
                msg.bytes.len(),
                self.opts.max_message
            );
            self.send_fresh(msg, &msg.peer.name(), None, error(None, ErrorCode::TooLarge, text, None))?;
            return Ok(None);
        }
        let decoded = proto::decode_request(&msg.bytes);
        let (client, id) = match &decoded {
            Ok(r) => (r.client().map_or_else(|| msg.peer.name(), str::to_string), r.id()),
            Err(_) => {
                let (c, id) = proto::peek_client_and_id(&msg.bytes);
                (c.filter(|c| proto::valid_client(c)).unwrap_or_else(|| msg.peer.name()), id)
            }
        };
        // Only what moved the run is kept for resends: a resend of anything else (a read, a
        // refusal) is served afresh, which applies nothing either.
        let moves = matches!(decoded, Ok(Request::Continue(_)));
        if let (true, Some(id)) = (moves, id) {
            if let Some(reply) = self.clients.replied(&client, id, &msg.bytes) {
                let reply = reply.to_vec();
                self.transport.send(&msg.peer, &reply)?;
                return Ok(None);
            }
        }
        let handled = if msg.frames != 1 {
            let text = format!("a request is one frame; this message had {}", msg.frames);
            Handled::Reply(error(id, ErrorCode::BadMessage, text, None))
        } else {
            match decoded {
                Ok(Request::Continue(c)) if self.barrier().is_some() => return self.arrive(msg, client, c),
                Ok(Request::Hello(h)) if h.takeover && self.barrier().is_some() => {
                    let text = "this run is steered by --controllers: there is no owner to take over from";
                    Handled::Reply(error(h.id, ErrorCode::WrongState, text, Some("takeover")))
                }
                Ok(req) => self.handle(&client, req),
                Err(e) => Handled::Reply(error(id, e.code, e.message, e.field.as_deref())),
            }
        };
        match handled {
            Handled::Reply(reply) => {
                let keep = moves && matches!(reply, Reply::Sync(_));
                self.send_fresh(msg, &client, id.filter(|_| keep), reply)?;
                Ok(None)
            }
            Handled::Finish(reason) => Ok(Some((reason, vec![(msg.clone(), client, id)]))),
        }
    }

    /// A named controller's `continue` at the barrier: checked alone and held; when every
    /// controller's is in, the sync point is released.
    fn arrive(&mut self, msg: &Inbound, client: String, c: proto::Continue) -> Result<Option<(proto::EndReason, Vec<Answer>)>, AppError> {
        let names = self.barrier().expect("a barrier run");
        let Some(i) = names.iter().position(|n| *n == client) else {
            let text = format!(
                "this run is steered by --controllers {}: `{client}` is not one of them (it may read: hello, get)",
                names.join(",")
            );
            self.send_fresh(msg, &client, None, error(c.id, ErrorCode::NotOwner, text, None))?;
            return Ok(None);
        };
        if let Err(r) = self.steer.check(&[], &c.actions) {
            self.send_fresh(msg, &client, None, error_reply(c.id, r))?;
            return Ok(None);
        }
        self.held[i] = Some(Held { msg: msg.clone(), id: c.id, actions: c.actions });
        if self.held.iter().any(Option::is_none) {
            return Ok(None);
        }
        // Every controller is in: checked together in the fixed order; one refused given the
        // actions before it gets its error and is waited for again (the others stay held).
        let mut prior: Vec<Action> = vec![];
        let mut refused = false;
        for i in 0..self.held.len() {
            let h = self.held[i].as_ref().expect("all held");
            match self.steer.check(&prior, &h.actions) {
                Ok(()) => prior.extend(h.actions.iter().cloned()),
                Err(r) => {
                    let h = self.held[i].take().expect("held");
                    let name = names[i].clone();
                    self.send_fresh(&h.msg, &name, None, error_reply(h.id, r))?;
                    refused = true;
                }
            }
        }
        if refused {
            return Ok(None);
        }
        let (by, answers) = self.accepted_in_order()?;
        self.released += 1;
        match self.steer.apply(by) {
            Outcome::Finish(reason) => Ok(Some((reason, answers))),
            Outcome::Sync { snapshots, restored } => {
                for (msg, client, id) in answers {
                    let reply = Reply::Sync(proto::SyncReport {
                        id,
                        body: self.steer.pending.clone(),
                        snapshots: snapshots.clone(),
                        restored,
                    });
                    self.send_fresh(&msg, &client, id, reply)?;
                }
                Ok(None)
            }
        }
    }

    /// The held requests, taken, in the controllers' order, with their actions (each checked
    /// after those before it; one refused so is answered with its error and left out).
    fn accepted_in_order(&mut self) -> Result<(Vec<(String, Vec<Action>)>, Vec<Answer>), AppError> {
        let names = self.barrier().unwrap_or_default();
        let mut by: Vec<(String, Vec<Action>)> = vec![];
        let mut answers = vec![];
        let mut prior: Vec<Action> = vec![];
        for i in 0..self.held.len() {
            let Some(h) = self.held[i].take() else { continue };
            let name = names[i].clone();
            if let Err(r) = self.steer.check(&prior, &h.actions) {
                self.send_fresh(&h.msg, &name, None, error_reply(h.id, r))?;
                continue;
            }
            prior.extend(h.actions.iter().cloned());
            by.push((name.clone(), h.actions));
            answers.push((h.msg, name, h.id));
        }
        Ok((by, answers))
    }

    /// The held requests (to answer with `done`), taken.
    fn take_held(&mut self) -> Vec<Answer> {
        let names = self.barrier().unwrap_or_default();
        let held = std::mem::take(&mut self.held);
        self.held = held.iter().map(|_| None).collect();
        held.into_iter().zip(names).filter_map(|(h, n)| h.map(|h| (h.msg, n.clone(), h.id))).collect()
    }

    /// Sends a reply, and keeps it for resends when `keep_as` is the request's id.
    fn send_fresh(&mut self, msg: &Inbound, client: &str, keep_as: RequestId, reply: Reply) -> Result<(), AppError> {
        let bytes = proto::encode(&reply);
        self.transport.send(&msg.peer, &bytes)?;
        if let Some(id) = keep_as {
            self.clients.remember(client, id, &msg.bytes, &bytes);
        }
        Ok(())
    }

    /// The dispatch of a decoded request.
    fn handle(&mut self, client: &str, req: Request) -> Handled {
        match req {
            // decode_request has refused any other protocol version.
            Request::Hello(h) => {
                if h.takeover && self.clients.owner() != Some(client) {
                    let previous = self.clients.set_owner(client);
                    let sim = &self.steer.session.sim;
                    eprintln!(
                        "spikebus: controller `{client}` took over the run from {} at t={} (step {})",
                        previous.as_deref().map_or_else(|| "no owner".to_string(), |p| format!("`{p}`")),
                        sim.now(),
                        sim.step_index()
                    );
                    self.steer.session.publish_owner(client, previous.as_deref());
                }
                Handled::Reply(self.hello(client, h.id))
            }
            Request::Get(g) => Handled::Reply(self.get(g.id, &g.names)),
            Request::Export(e) => Handled::Reply(self.export(&e)),
            Request::Continue(c) => {
                if let Some(owner) = self.clients.owner().filter(|o| *o != client) {
                    let text = format!(
                        "`{owner}` owns this run; `{client}` may read (hello, get) or take over (hello with takeover: true)"
                    );
                    return Handled::Reply(error(c.id, ErrorCode::NotOwner, text, None));
                }
                if let Err(r) = self.steer.check(&[], &c.actions) {
                    return Handled::Reply(error_reply(c.id, r));
                }
                // The first accepted continue claims the run (a refused one changes nothing).
                if self.clients.owner().is_none() {
                    self.clients.set_owner(client);
                }
                match self.steer.apply(vec![(client.to_string(), c.actions)]) {
                    Outcome::Finish(reason) => Handled::Finish(reason),
                    Outcome::Sync { snapshots, restored } => Handled::Reply(Reply::Sync(proto::SyncReport {
                        id: c.id,
                        body: self.steer.pending.clone(),
                        snapshots,
                        restored,
                    })),
                }
            }
        }
    }

    fn hello(&self, client: &str, id: RequestId) -> Reply {
        let steer = &self.steer;
        let sim = &steer.session.sim;
        let model = sim.model();
        let stops = sim.stops();
        let sources = &steer.sources;
        Reply::Hello(Box::new(proto::HelloReply {
            id,
            protocol: proto::PROTOCOL_VERSION,
            node: format!("spikebus {}", env!("CARGO_PKG_VERSION")),
            client: client.to_string(),
            owner: self.clients.owner().map(str::to_string),
            model: model.origin.clone(),
            dt: sim.dt(),
            tstop: sim.tstop(),
            t: steer.pending.t,
            step: steer.pending.step,
            params: model
                .params()
                .into_iter()
                .map(|p| proto::ParamEntry { name: p.name, unit: p.unit.to_string(), writable: p.runtime, value: p.value })
                .collect(),
            signals: signal::names(model),
            sources: sources.clone(),
            targets: sim.targets().iter().map(|s| s.to_string()).collect(),
            schedule: proto::ScheduleState {
                init: (0..4u8).filter(|&k| stops.init[k as usize]).collect(),
                every: stops.every,
                scatter_gather: stops.scatter_gather,
                at: sim.pending_at(),
                on_spike: sources.iter().zip(&stops.on_spike).filter(|(_, on)| **on).map(|(s, _)| s.clone()).collect(),
            },
            watch: steer.watch.state(),
            pending: proto::Pending::Sync(proto::SyncReport {
                id: None,
                body: steer.pending.clone(),
                snapshots: vec![],
                restored: None,
            }),
            snapshots: steer.snapshots.list.iter().map(snapshot::Snapshot::info).collect(),
            controllers: self.barrier().map(|names| {
                names
                    .iter()
                    .zip(&self.held)
                    .map(|(n, h)| proto::ControllerState { name: n.clone(), arrived: h.is_some() })
                    .collect()
            }),
        }))
    }

    fn get(&self, id: RequestId, names: &[String]) -> Reply {
        if names.len() > self.opts.max_names {
            let text = format!("{} names; this node reads at most {} at once (--max-names)", names.len(), self.opts.max_names);
            return error(id, ErrorCode::TooLarge, text, Some("names"));
        }
        let sim = &self.steer.session.sim;
        let mut values = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            match Watch::resolve(sim, name) {
                Ok(w) => {
                    values.insert(name.clone(), Watch::read(sim, name, &w));
                }
                Err(e) => return error_reply(id, engine_refusal(e, format!("names[{i}]"))),
            }
        }
        Reply::Values(proto::ValuesReply {
            id,
            t: self.steer.pending.t,
            step: self.steer.pending.step,
            values,
            hash: self.steer.hash(),
        })
    }

    /// `export`: writes a held snapshot to a file in `--snapshot-dir`.
    fn export(&self, e: &proto::Export) -> Reply {
        let Some(dir) = &self.opts.snapshot_dir else {
            let text = "this node writes no snapshot files: start it with --snapshot-dir DIR";
            return error(e.id, ErrorCode::WrongState, text, None);
        };
        let Some(snap) = self.steer.snapshots.get(e.snapshot) else {
            let ids: Vec<String> = self.steer.snapshots.list.iter().map(|s| s.id.to_string()).collect();
            let holds = if ids.is_empty() { "it holds none".to_string() } else { format!("it holds {}", ids.join(", ")) };
            let text = format!("snapshot {} is not held by this node; {holds}", e.snapshot);
            return error(e.id, ErrorCode::UnknownSnapshot, text, Some("snapshot"));
        };
        // The file name was checked by the decoder (`proto::valid_file_name`).
        let binary = match snapshot::binary_sha256() {
            Ok(b) => b.to_string(),
            Err(err) => return error(e.id, ErrorCode::IoError, err.to_string(), None),
        };
        let session = &self.steer.session;
        let mut pending = snap.lock.pending.clone();
        pending.values.clear();
        pending.telemetry = None;
        let header = FileHeader {
            spikebus: env!("CARGO_PKG_VERSION").to_string(),
            binary,
            state_format: spikebus_engine::sim::STATE_FORMAT,
            model: session.source.clone(),
            structure: session.sim.structure(),
            snapshot: snap.id,
            point: snap.lock.point.into(),
            pending,
            watch: snap.lock.watch.state(),
            record_clock: snap.rec.clock.map(|c| c.parts()),
            at_boundary: snap.rec.at_boundary,
            words: snap.words.len() as u64,
            hash: hex(snap.hash),
        };
        let path = dir.join(&e.file);
        match snapshot::write_file(&path, &header, &snap.words) {
            Ok(bytes) => Reply::Exported(proto::ExportedReply {
                id: e.id,
                snapshot: snap.id,
                path: path.display().to_string(),
                bytes,
                hash: hex(snap.hash),
            }),
            Err(err) => error(e.id, ErrorCode::IoError, err.to_string(), Some("file")),
        }
    }
}

/// After `done`: answers a resend of the final request with the same `done` and anything
/// else with `wrong_state`, until no peer has been connected for a whole receive wait,
/// `linger` has passed or a signal came. (The wait lets a controller that lost the reply
/// replace its connection, closing the old one before the new one is in, and resend.)
fn linger<T: Transport>(transport: &mut T, lasts: &[Last], linger: Duration, stop: &Stop) -> Result<(), AppError> {
    let deadline = Instant::now() + linger;
    let mut nobody = false;
    while Instant::now() < deadline && !stop.requested() {
        if transport.connected() == Some(0) {
            if nobody {
                break;
            }
            nobody = true;
        } else {
            nobody = false;
        }
        let Some(msg) = transport.recv()? else { continue };
        let (client, id) = proto::peek_client_and_id(&msg.bytes);
        let client = client.filter(|c| proto::valid_client(c)).unwrap_or_else(|| msg.peer.name());
        let resent =
            lasts.iter().find(|last| last.id.is_some() && id == last.id && client == last.client && msg.bytes == last.bytes);
        let reply = if let Some(last) = resent {
            last.reply.clone()
        } else {
            proto::encode(&error(id, ErrorCode::WrongState, "the run has ended; this node is exiting", None))
        };
        transport.send(&msg.peer, &reply)?;
    }
    Ok(())
}

#[cfg(test)]
mod fuzz {
    //! Many thousands of generated requests (garbage, near-misses, valid ones) through the
    //! decoder and the action applier: every request gets a reply, nothing panics, and a
    //! refused request leaves the state hash unchanged.

    use super::*;
    use crate::bus::{Bus, ZmqControl};
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
        "ns.id1", "Random123_globalindex",
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
        let op = *r.pick(&["set", "event", "schedule", "watch", "stop", "jump", "", "snapshot", "restore", "discard"]);
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
                    f.push(("scatter_gather", if r.below(3) == 0 { number(r) } else { Value::from(r.below(50)) }));
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
                    let n = r.below(4);
                    let kinds: Vec<Value> =
                        (0..n).map(|_| if r.below(6) == 0 { number(r) } else { Value::from(r.below(5)) }).collect();
                    f.push(("init", if r.below(8) == 0 { Value::Boolean(true) } else { Value::Array(kinds) }));
                }
            }
            "watch" => {
                f.push(("values", Value::Array((0..r.below(4)).map(|_| name(r)).collect())));
                if r.below(3) == 0 {
                    f.push(("hash", Value::Boolean(r.below(2) == 0)));
                }
            }
            "restore" | "discard" => {
                f.push(("id", if r.below(6) == 0 { number(r) } else { Value::from(r.below(5)) }));
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
            0 => map(vec![
                ("op", Value::String("hello".into())),
                ("id", id),
                ("protocol", if r.below(3) == 0 { number(r) } else { Value::from(2) }),
                ("takeover", Value::Boolean(r.below(2) == 0)),
            ]),
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
        model.set("soma.threshold", 0.0).unwrap();
        let sim = spikebus_engine::Sim::new(model).unwrap();
        let opts = RunOptions {
            out_dir: Some(dir.to_path_buf()),
            progress: false,
            pub_every: 1,
            pub_batch: 1,
            pub_signals: None,
            sets: vec![],
            max_output: u64::MAX,
            format: crate::traces::TraceFormat::Csv,
            source: crate::snapshot::ModelSource::default(),
        };
        Session::new(sim, &opts).unwrap()
    }

    /// A real control socket (never used here: requests go straight to `handle`).
    fn transport(bus: &Bus, dir: &std::path::Path, k: usize) -> ZmqControl {
        bus.control(&format!("ipc://{}", dir.join(format!("ctl{k}")).display()), 4096).unwrap()
    }

    /// What a refused request must leave as it was: the simulation's state, the point, the
    /// watch and the snapshots held.
    fn observed<T: Transport>(lock: &Lockstep<T>) -> String {
        let s = &lock.steer;
        let ids: Vec<u64> = s.snapshots.list.iter().map(|x| x.id).collect();
        format!("{} {:?} {:?} {ids:?} {}", s.hash(), s.point, s.watch.state(), s.snapshots.next_id)
    }

    #[test]
    fn generated_requests_never_panic_and_refusals_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let opts = ControlOptions {
            wait_subscribers: 0,
            max_message: 4096,
            sync_timeout: None,
            on_timeout: TimeoutPolicy::Wait,
            linger: Duration::ZERO,
            max_names: 100,
            max_snapshots: 3,
            snapshot_memory: 1 << 20,
            snapshot_dir: None,
            controllers: None,
        };
        let stop = Stop::new();
        let bus = Bus::new(false, None).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut refused, mut accepted, mut runs) = (0, 0, 1);
        let mut lock = Lockstep::new(session(dir.path()), transport(&bus, dir.path(), 0), &opts, &stop);
        for _ in 0..30_000 {
            let bytes = request(&mut rng);
            let before = observed(&lock);
            let handled = match proto::decode_request(&bytes) {
                Ok(req) => lock.handle("fuzz", req),
                Err(e) => Handled::Reply(error(None, e.code, e.message, e.field.as_deref())),
            };
            match handled {
                Handled::Reply(Reply::Error(e)) => {
                    refused += 1;
                    assert_eq!(before, observed(&lock), "refused request changed the state: {e:?} for {bytes:?}");
                }
                Handled::Reply(_) => accepted += 1,
                Handled::Finish(..) => {
                    runs += 1;
                    lock = Lockstep::new(session(dir.path()), transport(&bus, dir.path(), runs), &opts, &stop);
                }
            }
        }
        assert!(refused > 10_000 && accepted > 1_000 && runs > 1, "refused {refused}, accepted {accepted}, runs {runs}");
    }
}
