//! The actions of a `continue`: every one is checked before any is applied (a refused request
//! changes nothing), then they are applied in order.

use spikebus_engine::{Error as EngineError, Sim};
use spikebus_protocol::{self as proto, Action, ErrorCode};

use super::{Point, Watch};

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
        EngineError::Syntax { .. } | EngineError::Model { .. } => ErrorCode::BadMessage,
    };
    Refusal { code, message: e.to_string(), field: Some(field) }
}

/// Checks every action of a request at `point`, in order, without applying any.
pub fn check(sim: &Sim, point: Point, sources: &[String], max_names: usize, actions: &[Action]) -> Result<(), Refusal> {
    // Scheduled times as the earlier actions of this request leave them (for remove_at).
    let mut at = sim.pending_at();
    for (i, a) in actions.iter().enumerate() {
        let field = |f: &str| format!("actions[{i}].{f}");
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
                    if !sources.contains(s) {
                        let msg = format!("unknown spike source `{s}`; sources are {}", sources.join(", "));
                        return Err(refuse(ErrorCode::UnknownName, msg, field(&format!("on_spike[{k}]"))));
                    }
                }
            }
            Action::Watch(w) => {
                let n = w.values.as_ref().map_or(0, Vec::len);
                if n > max_names {
                    let msg = format!("{n} names; a sync report carries at most {max_names} (--max-names)");
                    return Err(refuse(ErrorCode::TooLarge, msg, field("values")));
                }
                for (k, name) in w.values.iter().flatten().enumerate() {
                    Watch::resolve(sim, name).map_err(|e| engine_refusal(e, field(&format!("values[{k}]"))))?;
                }
            }
            Action::Stop(_) => {}
        }
    }
    Ok(())
}

/// Applies a checked action; true for `stop`.
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
        }
        Action::Stop(proto::Stop {}) => return true,
    }
    false
}
