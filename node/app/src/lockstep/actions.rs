//! The actions of a `continue`: every one is checked before any is applied (a refused request
//! changes nothing), then they are applied in order. With `--controllers`, a controller's
//! actions are checked as they would apply after those of the controllers before it in the
//! order (`prior`).

use spikebus_engine::sim::EVENT_WORDS;
use spikebus_engine::{Error as EngineError, Sim};
use spikebus_protocol::{self as proto, Action, ErrorCode};

use super::{Point, Watch};
use crate::snapshot::Snapshots;

/// A refusal: the error code, what is wrong, the field at fault.
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
}

fn refuse(code: ErrorCode, message: impl Into<String>, field: String) -> Refusal {
    Refusal { code, message: message.into(), field: Some(field) }
}

/// An engine error as a protocol error at `field`.
pub fn engine_refusal(e: EngineError, field: String) -> Refusal {
    let code = match e {
        EngineError::UnknownName { .. } | EngineError::NotATarget { .. } => ErrorCode::UnknownName,
        EngineError::InvalidValue { .. } | EngineError::NotScheduled { .. } | EngineError::TooLong { .. } => {
            ErrorCode::InvalidValue
        }
        EngineError::NotWritable { .. } => ErrorCode::NotWritable,
        EngineError::EventInPast { .. } | EngineError::SyncInPast { .. } => ErrorCode::EventInPast,
        EngineError::NotNow { .. } => ErrorCode::WrongState,
        EngineError::Syntax { .. } | EngineError::Model { .. } | EngineError::State(_) => ErrorCode::BadMessage,
    };
    Refusal { code, message: e.to_string(), field: Some(field) }
}

/// What checking a request needs to know.
pub struct Ctx<'a> {
    pub sim: &'a Sim,
    pub point: Point,
    pub sources: &'a [String],
    pub max_names: usize,
    pub snapshots: &'a Snapshots,
}

/// Checks every action of a request at `cx.point`, in order, without applying any, as they
/// would apply after `prior` (with `--controllers`, the actions of the controllers before this
/// one, already accepted).
pub fn check(cx: &Ctx, prior: &[Action], actions: &[Action]) -> Result<(), Refusal> {
    let sim = cx.sim;
    let point = cx.point;
    // Scheduled times as the earlier actions of this request leave them (for remove_at).
    let mut at = sim.pending_at();
    // Snapshots as the earlier actions leave them: ids taken (predicted), ids discarded, the
    // words each new one may hold (the state's now, plus what earlier actions add to it).
    let mut taken: Vec<u64> = vec![];
    let mut discarded: Vec<u64> = vec![];
    let mut base_words: Option<usize> = None;
    let mut extra_words = 0usize;
    let mut restored = false;
    let n_prior = prior.len();
    let total = n_prior + actions.len();
    for (k, a) in prior.iter().chain(actions).enumerate() {
        let mine = k >= n_prior;
        let i = k.saturating_sub(n_prior);
        let field = |f: &str| format!("actions[{i}].{f}");
        let whole = || format!("actions[{i}]");
        if restored && mine {
            return Err(refuse(
                ErrorCode::WrongState,
                "a controller earlier in the order (--controllers) restores a snapshot here: its `restore` ends the \
                 actions at this sync point; send no actions, or send them at the restored point",
                whole(),
            ));
        }
        let r: Result<(), Refusal> = (|| {
            match a {
                Action::Set(s) => {
                    sim.check_set(&s.name, s.value).map_err(|e| {
                        let f = match e {
                            EngineError::UnknownName { .. } | EngineError::NotWritable { .. } => "name",
                            _ => "value",
                        };
                        engine_refusal(e, field(f))
                    })?;
                }
                Action::Event(ev) => {
                    if matches!(point, Point::Start | Point::End) {
                        let why = if point == Point::Start {
                            "initialization discards queued events: schedule an `init_0` (or later) sync and send events there"
                        } else {
                            "the run has ended"
                        };
                        return Err(refuse(ErrorCode::WrongState, format!("no events now: {why}"), field("t")));
                    }
                    sim.check_inject(&ev.target, ev.t, ev.weight).map_err(|e| {
                        let f = match e {
                            EngineError::UnknownName { .. } | EngineError::NotATarget { .. } => "target",
                            EngineError::InvalidValue { ref name, .. } if name.ends_with("weight") => "weight",
                            _ => "t",
                        };
                        engine_refusal(e, field(f))
                    })?;
                    extra_words += EVENT_WORDS;
                }
                Action::Schedule(s) => {
                    for (k, &kind) in s.init.iter().flatten().enumerate() {
                        if kind > 3 {
                            let msg = format!("FInitializeHandler types are 0, 1, 2 and 3, not {kind}");
                            return Err(refuse(ErrorCode::InvalidValue, msg, field(&format!("init[{k}]"))));
                        }
                    }
                    for (k, &t) in s.add_at.iter().flatten().enumerate() {
                        let f = field(&format!("add_at[{k}]"));
                        if point == Point::End {
                            return Err(refuse(ErrorCode::WrongState, "the run has ended", f));
                        }
                        sim.check_at(t).map_err(|e| engine_refusal(e, f))?;
                        at.push(t);
                        extra_words += 3 + EVENT_WORDS;
                    }
                    for (k, t) in s.remove_at.iter().flatten().enumerate() {
                        match at.iter().position(|x| x.to_bits() == t.to_bits()) {
                            Some(p) => {
                                at.remove(p);
                            }
                            None => {
                                let msg = format!("no sync is scheduled at {t}");
                                return Err(refuse(ErrorCode::InvalidValue, msg, field(&format!("remove_at[{k}]"))));
                            }
                        }
                    }
                    for (k, s) in s.on_spike.iter().flatten().enumerate() {
                        if !cx.sources.contains(s) {
                            let msg = format!("unknown spike source `{s}`; sources are {}", cx.sources.join(", "));
                            return Err(refuse(ErrorCode::UnknownName, msg, field(&format!("on_spike[{k}]"))));
                        }
                    }
                }
                Action::Watch(w) => {
                    let n = w.values.as_ref().map_or(0, Vec::len);
                    if n > cx.max_names {
                        let msg = format!("{n} names; a sync report carries at most {} (--max-names)", cx.max_names);
                        return Err(refuse(ErrorCode::TooLarge, msg, field("values")));
                    }
                    for (k, name) in w.values.iter().flatten().enumerate() {
                        Watch::resolve(sim, name).map_err(|e| engine_refusal(e, field(&format!("values[{k}]"))))?;
                    }
                }
                Action::Stop(_) => {}
                Action::Snapshot(_) => {
                    let snaps = cx.snapshots;
                    let live = snaps.list.len() - discarded.len() + taken.len();
                    if live >= snaps.max_count {
                        let msg = format!(
                            "the node holds {live} snapshots, its most (--max-snapshots {}): discard one first",
                            snaps.max_count
                        );
                        return Err(refuse(ErrorCode::SnapshotLimit, msg, whole()));
                    }
                    let words = *base_words.get_or_insert_with(|| sim.state_words().len());
                    let each = 8 * (words + extra_words) as u64;
                    let gone: u64 = discarded.iter().filter_map(|&id| snaps.get(id)).map(|s| s.bytes()).sum();
                    let held = snaps.bytes() - gone + each * taken.len() as u64;
                    if held + each > snaps.max_bytes {
                        let msg = format!(
                            "a snapshot of this state holds {each} bytes; with the {held} bytes held that passes \
                             --snapshot-memory {}: discard one first",
                            snaps.max_bytes
                        );
                        return Err(refuse(ErrorCode::SnapshotLimit, msg, whole()));
                    }
                    taken.push(snaps.next_id + taken.len() as u64);
                }
                Action::Restore(r) => {
                    known(cx.snapshots, &taken, &discarded, r.id, field("id"))?;
                    if mine && k + 1 != total {
                        let msg = "`restore` must be the last action of its request: the run goes back to the \
                                   snapshot, and the reply is the report of that sync point";
                        return Err(refuse(ErrorCode::InvalidValue, msg, whole()));
                    }
                    restored = true;
                }
                Action::Discard(d) => {
                    known(cx.snapshots, &taken, &discarded, d.id, field("id"))?;
                    discarded.push(d.id);
                }
            }
            Ok(())
        })();
        // The earlier controllers' actions were accepted already: only this one's can fail.
        if mine {
            r?;
        }
    }
    Ok(())
}

/// A snapshot id the request may use: held (and not discarded earlier in the request), or
/// taken earlier in it.
fn known(snaps: &Snapshots, taken: &[u64], discarded: &[u64], id: u64, field: String) -> Result<(), Refusal> {
    let held = snaps.get(id).is_some() || taken.contains(&id);
    if held && !discarded.contains(&id) {
        return Ok(());
    }
    let ids: Vec<String> = snaps.list.iter().map(|s| s.id.to_string()).filter(|s| *s != id.to_string()).collect();
    let holds = if ids.is_empty() { "it holds none".to_string() } else { format!("it holds {}", ids.join(", ")) };
    let what = if discarded.contains(&id) { "discarded earlier in this request" } else { "not held by this node" };
    Err(refuse(ErrorCode::UnknownSnapshot, format!("snapshot {id} is {what}; {holds}"), field))
}

/// Applies a checked action; true for `stop`. (Snapshots are the lockstep's: `Steer`.)
pub fn apply(sim: &mut Sim, watch: &mut Watch, sources: &[String], a: Action) -> bool {
    match a {
        Action::Set(s) => sim.set(&s.name, s.value).expect("checked"),
        Action::Event(e) => sim.inject(&e.target, e.t, e.weight).expect("checked"),
        Action::Schedule(s) => {
            let stops = sim.stops_mut();
            if let Some(n) = s.every {
                stops.every = n;
            }
            if let Some(n) = s.scatter_gather {
                stops.scatter_gather = n;
            }
            if let Some(list) = &s.on_spike {
                stops.on_spike = sources.iter().map(|s| list.contains(s)).collect();
            }
            if let Some(kinds) = &s.init {
                stops.init = std::array::from_fn(|k| kinds.contains(&(k as u64)));
            }
            for t in s.add_at.unwrap_or_default() {
                sim.add_at(t).expect("checked");
            }
            for t in s.remove_at.unwrap_or_default() {
                sim.remove_at(t).expect("checked");
            }
        }
        Action::Watch(w) => {
            if let Some(names) = w.values {
                watch.values = names
                    .into_iter()
                    .map(|n| {
                        let r = Watch::resolve(sim, &n).expect("checked");
                        (n, r)
                    })
                    .collect();
            }
            if let Some(s) = w.spikes {
                watch.spikes = s;
            }
            if let Some(h) = w.hash {
                watch.hash = h;
            }
            if let Some(n) = w.hash_every {
                watch.hash_every = n;
            }
            if let Some(t) = w.telemetry {
                watch.telemetry = t;
            }
        }
        Action::Stop(proto::Stop {}) => return true,
        Action::Snapshot(_) | Action::Restore(_) | Action::Discard(_) => unreachable!("the lockstep's own actions"),
    }
    false
}
