//! `spikebus run --helics CONFIG`: the node as a HELICS combination federate (docs/helics.md).
//!
//! Time: sync point k sits at a NEURON callback position (`scatter_gather` or `every`, every
//! N steps: `config`), at step n_k, and is HELICS time n_k × `step_ns`. The node, paused at
//! sync point k (granted time n_k), publishes its values there, then requests the time of
//! the next sync point and, once granted, applies every input update and event message that
//! arrived, *at sync point k* (where NEURON would run the callback that sets them), and only
//! then simulates on: it never computes past a time HELICS has not granted. The federate is
//! uninterruptible (granted exactly the times it requests). An answer to sync point k is
//! published at a time strictly between the two sync times (a federate half a step behind,
//! e.g.): HELICS grants the node its next time only after such a value has been delivered.
//! HELICS's `wait_for_current_time_update` flag would make answers at exactly the next sync
//! time deterministic too, but with endpoints in the federation HELICS 3.6.1 deadlocks on
//! it (measured: docs/helics.md), so the node does not set it.
//!
//! A refused input (a value the parameter does not allow, an event in the past, a message
//! that is not an event) changes nothing and is named on stderr; the run goes on.

pub mod config;
mod ffi;

use std::ffi::CString;

use spikebus_engine::{Pause, Sim, Spike};
use spikebus_protocol as proto;

use crate::error::AppError;
use crate::lockstep::Watch;
use crate::run::{RunSummary, Session};
use crate::signals::Stop;
pub use config::Config;
use config::{EventTime, InputAction, SyncPoint, Value};
use ffi::{Endpoint, Federate, Input, Publication};
pub use ffi::Helics;

/// An event message (the `events` endpoint): the protocol's `event` action as JSON.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EventMessage {
    target: String,
    t: f64,
    #[serde(default)]
    weight: Option<f64>,
}

/// The federate and its interfaces, in the config's order.
struct Federation {
    helics: Helics,
    fed: Federate,
    publications: Vec<Publication>,
    inputs: Vec<Input>,
    spikes: Option<(Endpoint, CString)>,
    events: Option<Endpoint>,
}

/// Loads libhelics (a start-up error, naming what to install, when it cannot be found).
pub fn load(cfg: &Config) -> Result<Helics, AppError> {
    Helics::load(cfg.library.as_deref()).map_err(AppError::Helics)
}

/// Creates the federate and its interfaces (its core connects to the broker) and enters
/// executing mode, which waits for every federate of the federation: the federate is then at
/// HELICS time 0.
pub fn join(helics: Helics, cfg: &Config, stop: &Stop) -> Result<Joined, AppError> {
    let fail = AppError::Helics;
    let spec = ffi::FederateSpec {
        name: &cfg.federate,
        core_type: &cfg.core_type,
        core_init: &cfg.core_init,
        broker: cfg.broker.as_deref(),
        flags: &[ffi::HELICS_FLAG_UNINTERRUPTIBLE, ffi::HELICS_FLAG_TERMINATE_ON_ERROR],
        log_level: cfg.log_level,
    };
    let fed = helics.federate(&spec).map_err(fail)?;
    let publications = cfg.publications.iter().map(|p| fed.publication(&p.key)).collect::<Result<_, _>>().map_err(fail)?;
    let inputs = cfg.inputs.iter().map(|i| fed.subscription(&i.key)).collect::<Result<_, _>>().map_err(fail)?;
    let spike_ep = cfg.spikes.as_ref().map(|s| fed.endpoint(&s.endpoint)).transpose().map_err(fail)?;
    // One endpoint may both send spikes and receive events.
    let events = match (&cfg.events_endpoint, &cfg.spikes, spike_ep) {
        (Some(e), Some(s), Some(ep)) if *e == s.endpoint => Some(ep),
        (Some(e), ..) => Some(fed.endpoint(e).map_err(fail)?),
        (None, ..) => None,
    };
    let spikes = match (spike_ep, &cfg.spikes) {
        (Some(ep), Some(s)) => {
            let dst = CString::new(s.destination.as_str()).map_err(|_| fail("spikes.destination has a NUL byte".into()))?;
            Some((ep, dst))
        }
        _ => None,
    };
    if stop.requested() {
        return Err(AppError::Helics("interrupted before the federation started".into()));
    }
    fed.enter_executing_mode().map_err(fail)?;
    Ok(Joined(Federation { helics, fed, publications, inputs, spikes, events }))
}

/// A federate in executing mode (HELICS time 0), ready to run.
pub struct Joined(Federation);

/// Runs the simulation as the federate: see the module's doc.
pub fn helics_run(mut session: Session, cfg: &Config, joined: Joined, wait_subscribers: usize, stop: &Stop) -> Result<RunSummary, AppError> {
    let Joined(fed) = joined;
    {
        let stops = session.sim.stops_mut();
        match cfg.sync {
            SyncPoint::ScatterGather => stops.scatter_gather = cfg.steps,
            SyncPoint::Every => stops.every = cfg.steps,
        }
    }
    let result = run(&mut session, cfg, &fed, wait_subscribers, stop);
    let reason = match result {
        Ok(reason) => reason,
        Err(e) => {
            // The federation cannot go on: tell it, keep what was simulated.
            fed.fed.global_error(&e);
            session.fail(AppError::Helics(e));
            proto::EndReason::Stop
        }
    };
    let _ = fed.fed.disconnect();
    let Federation { helics, fed, .. } = fed;
    drop(fed);
    helics.close();
    Ok(session.finish(reason))
}

/// The sync loop; how the run ended, or why the federation failed.
fn run(session: &mut Session, cfg: &Config, fed: &Federation, wait_subscribers: usize, stop: &Stop) -> Result<proto::EndReason, String> {
    session.announce(wait_subscribers, stop).map_err(|e| e.to_string())?;
    // dt and tstop cannot change (config::FIXED), so the end point's step is known.
    let last = session.sim.planned_steps();
    let mut sent: Vec<Spike> = Vec::with_capacity(16);
    let mut buf = Vec::with_capacity(64);
    loop {
        if stop.requested() {
            return Ok(proto::EndReason::Signal);
        }
        let (pause, spikes) = session.advance();
        sent.clear();
        sent.extend_from_slice(spikes);
        send_spikes(session, cfg, fed, &sent, &mut buf)?;
        let end = match pause {
            Pause::Interrupted => return Ok(proto::EndReason::Signal),
            Pause::Limit(hit) => {
                session.limit(hit);
                return Ok(proto::EndReason::Limit);
            }
            Pause::ScatterGather => false,
            Pause::Boundary(b) if b.every || b.end => b.end,
            _ => continue,
        };
        if let Some(reason) = session.must_end() {
            return Ok(reason);
        }
        publish(&session.sim, cfg, fed, end)?;
        if end {
            return Ok(proto::EndReason::End);
        }
        let n = session.sim.step_index();
        let next = (n + cfg.steps).min(last);
        let want = cfg.time_of(next);
        let granted = fed.fed.request_time(want)?;
        if granted >= ffi::HELICS_TIME_MAXTIME {
            return Err("the federation ended (HELICS granted its maximum time)".into());
        }
        if granted < want * (1.0 - 1e-12) {
            return Err(format!("HELICS granted time {granted} s before the requested {want} s"));
        }
        if stop.requested() {
            return Ok(proto::EndReason::Signal);
        }
        apply_inputs(&mut session.sim, cfg, fed)?;
    }
}

/// Publishes every configured value, read at the sync point.
fn publish(sim: &Sim, cfg: &Config, fed: &Federation, end: bool) -> Result<(), String> {
    for (p, h) in cfg.publications.iter().zip(&fed.publications) {
        let v = match &p.value {
            Value::T => sim.now(),
            Value::Step => sim.step_index() as f64,
            Value::End => f64::from(u8::from(end)),
            Value::Named(name, w) => Watch::read(sim, name, w),
        };
        fed.fed.publish(h, v)?;
    }
    Ok(())
}

/// Sends each new spike of a selected source to the spike destination:
/// `{"source": NAME, "t": T}` (JSON; T NEURON's spike time, ms, exact).
fn send_spikes(session: &Session, cfg: &Config, fed: &Federation, spikes: &[Spike], buf: &mut Vec<u8>) -> Result<(), String> {
    let (Some(s), Some((ep, dst))) = (&cfg.spikes, &fed.spikes) else { return Ok(()) };
    for sp in spikes.iter().filter(|sp| s.sources[sp.source as usize]) {
        buf.clear();
        let msg = serde_json::json!({"source": session.source_name(sp.source), "t": sp.t});
        serde_json::to_writer(&mut *buf, &msg).expect("a JSON value serializes");
        fed.fed.send(*ep, dst, buf)?;
    }
    Ok(())
}

/// Applies, at the pending sync point, the inputs updated since the last grant (in the
/// config's order) and then the event messages (in arrival order). Refusals change nothing
/// and are named on stderr.
fn apply_inputs(sim: &mut Sim, cfg: &Config, fed: &Federation) -> Result<(), String> {
    for (inp, h) in cfg.inputs.iter().zip(&fed.inputs) {
        let Some(v) = fed.fed.updated(h)? else { continue };
        let refused = match &inp.action {
            InputAction::Set(name) => sim.check_set(name, v).map(|_| sim.set(name, v).expect("checked")).err(),
            InputAction::Event { target, weight, time } => {
                let te = match time {
                    EventTime::Absolute => v,
                    EventTime::Delay => sim.now() + v,
                };
                sim.inject(target, te, *weight).err()
            }
        };
        if let Some(e) = refused {
            eprintln!("spikebus: HELICS input `{}` = {v} at t={} refused (nothing changed): {e}", inp.key, sim.now());
        }
    }
    if let Some(ep) = fed.events {
        while let Some(m) = fed.fed.receive(ep) {
            let refused = match serde_json::from_slice::<EventMessage>(&m.bytes) {
                Ok(ev) => sim.inject(&ev.target, ev.t, ev.weight).err().map(|e| e.to_string()),
                Err(e) => Some(format!("not an event message ({{\"target\": NAME, \"t\": MS, \"weight\": W}}): {e}")),
            };
            if let Some(e) = refused {
                eprintln!(
                    "spikebus: HELICS event message from `{}` (time {} s) at t={} refused (nothing changed): {e}",
                    m.source,
                    m.time,
                    sim.now()
                );
            }
        }
    }
    Ok(())
}
