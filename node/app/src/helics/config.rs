//! The `--helics CONFIG` file (JSON, docs/helics.md): who the federate is, where the broker
//! is, which NEURON callback position is the HELICS time step, and how values, spikes and
//! events map to HELICS publications, inputs and endpoints. Everything is checked against the
//! model before HELICS is touched: a bad config is a start-up error naming the key at fault.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use spikebus_engine::Sim;

use crate::lockstep::{Watch, Watched};

/// The NEURON callback position that is the federate's time step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyncPoint {
    /// `CVode.extra_scatter_gather`: inside the step, v updated, states not yet.
    #[default]
    ScatterGather,
    /// The step boundary (code after `fadvance()` in stdrun's `advance()`).
    Every,
}

/// How an event input's value gives the event's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EventTime {
    /// The value is the event's time, ms (NEURON's `NetCon.event(te)`).
    #[default]
    Absolute,
    /// The value is a delay, ms, after the sync point's `t`.
    Delay,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    federate: String,
    #[serde(default = "default_core_type")]
    core_type: String,
    #[serde(default)]
    broker: Option<String>,
    #[serde(default)]
    core_init: String,
    #[serde(default)]
    library: Option<PathBuf>,
    #[serde(default)]
    sync: SyncPoint,
    #[serde(default = "one")]
    steps: u64,
    #[serde(default = "default_time_scale")]
    time_scale: f64,
    #[serde(default)]
    log_level: Option<i32>,
    #[serde(default)]
    publications: Vec<RawPublication>,
    #[serde(default)]
    inputs: Vec<RawInput>,
    #[serde(default)]
    spikes: Option<RawSpikes>,
    #[serde(default)]
    events: Option<RawEvents>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublication {
    key: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    key: String,
    #[serde(default)]
    set: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    weight: Option<f64>,
    #[serde(default)]
    time: Option<EventTime>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpikes {
    endpoint: String,
    destination: String,
    #[serde(default)]
    sources: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    endpoint: String,
}

fn default_core_type() -> String {
    "zmq".into()
}
fn one() -> u64 {
    1
}
fn default_time_scale() -> f64 {
    1e-3
}

/// A value the node publishes at each sync point.
#[derive(Debug, Clone)]
pub enum Value {
    /// NEURON's `h.t` at the sync point.
    T,
    /// The sync point's step index n.
    Step,
    /// 1 at the `end` point, 0 before.
    End,
    /// A parameter or signal, by name.
    Named(String, Watched),
}

#[derive(Debug, Clone)]
pub struct Publication {
    pub key: String,
    pub value: Value,
}

/// What an input's new value does at the sync point.
#[derive(Debug, Clone)]
pub enum InputAction {
    /// `set NAME = value`.
    Set(String),
    /// `NetCon.event` to `target` (weight as in the protocol's `event` action) at the value's
    /// time.
    Event { target: String, weight: Option<f64>, time: EventTime },
}

#[derive(Debug, Clone)]
pub struct Input {
    pub key: String,
    pub action: InputAction,
}

#[derive(Debug, Clone)]
pub struct Spikes {
    pub endpoint: String,
    pub destination: String,
    /// Per source (in the simulation's source order): whether its spikes are sent.
    pub sources: Vec<bool>,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub federate: String,
    pub core_type: String,
    pub broker: Option<String>,
    pub core_init: String,
    pub library: Option<PathBuf>,
    pub sync: SyncPoint,
    pub steps: u64,
    /// HELICS time of one step, in nanoseconds (HELICS's time resolution).
    pub step_ns: u64,
    pub log_level: Option<i32>,
    pub publications: Vec<Publication>,
    pub inputs: Vec<Input>,
    pub spikes: Option<Spikes>,
    pub events_endpoint: Option<String>,
}

/// Names an input may not set: the time mapping is built on them.
const FIXED: &[&str] = &["dt", "tstop"];

impl Config {
    /// Reads and checks `path` against the simulation `sim` (before it runs).
    pub fn load(path: &Path, sim: &Sim) -> Result<Config, String> {
        let shown = path.display();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read the HELICS config {shown}: {e}"))?;
        let raw: RawConfig = serde_json::from_str(&text).map_err(|e| format!("{shown}: {e}"))?;
        Config::check(raw, sim).map_err(|(key, msg)| format!("{shown}: key `{key}`: {msg}"))
    }

    fn check(raw: RawConfig, sim: &Sim) -> Result<Config, (String, String)> {
        let bad = |key: &str, msg: String| Err((key.to_string(), msg));
        let name_ok = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_control());
        if !name_ok(&raw.federate) {
            return bad("federate", "expected a non-empty name without control characters".into());
        }
        if raw.core_type.is_empty() {
            return bad("core_type", "expected a HELICS core type, e.g. zmq, tcp, ipc".into());
        }
        if raw.steps == 0 {
            return bad("steps", "expected an integer >= 1 (sync every N steps)".into());
        }
        if !(raw.time_scale.is_finite() && raw.time_scale > 0.0) {
            return bad("time_scale", format!("expected a number > 0 (HELICS seconds per ms), found {}", raw.time_scale));
        }
        let step_ns = (sim.dt() * raw.time_scale * 1e9).round();
        if !(1.0..=1e15).contains(&step_ns) {
            return bad(
                "time_scale",
                format!(
                    "one step (dt = {} ms) is {} ns of HELICS time; HELICS counts whole nanoseconds: expected 1 ns to 1e15 ns",
                    sim.dt(),
                    sim.dt() * raw.time_scale * 1e9
                ),
            );
        }
        let mut keys = std::collections::HashSet::new();
        let mut publications = vec![];
        for (i, p) in raw.publications.into_iter().enumerate() {
            let at = |f: &str| format!("publications[{i}].{f}");
            if !name_ok(&p.key) {
                return bad(&at("key"), "expected a non-empty publication key".into());
            }
            if !keys.insert(p.key.clone()) {
                return bad(&at("key"), format!("`{}` is published twice", p.key));
            }
            let value = match p.value.as_str() {
                "t" => Value::T,
                "step" => Value::Step,
                "end" => Value::End,
                name => Value::Named(name.to_string(), Watch::resolve(sim, name).map_err(|e| (at("value"), e.to_string()))?),
            };
            publications.push(Publication { key: p.key, value });
        }
        let targets = sim.targets();
        let mut inputs = vec![];
        for (i, inp) in raw.inputs.into_iter().enumerate() {
            let at = |f: &str| format!("inputs[{i}].{f}");
            if !name_ok(&inp.key) {
                return bad(&at("key"), "expected the key of a publication to subscribe to".into());
            }
            let action = match (inp.set, inp.event) {
                (Some(name), None) => {
                    if inp.weight.is_some() || inp.time.is_some() {
                        return bad(&at("weight"), "`weight` and `time` belong to an `event` input".into());
                    }
                    if FIXED.contains(&name.as_str()) {
                        return bad(&at("set"), format!("`{name}` cannot be driven by HELICS: the time mapping is built on it"));
                    }
                    let current = sim.get(&name).map_err(|e| (at("set"), e.to_string()))?;
                    sim.check_set(&name, current).map_err(|e| (at("set"), e.to_string()))?;
                    InputAction::Set(name)
                }
                (None, Some(target)) => {
                    if !targets.contains(&target.as_str()) {
                        return bad(&at("event"), format!("unknown event target `{target}`; targets are {}", targets.join(", ")));
                    }
                    if let Some(w) = inp.weight.filter(|w| !w.is_finite()) {
                        return bad(&at("weight"), format!("expected a finite number, found {w}"));
                    }
                    InputAction::Event { target, weight: inp.weight, time: inp.time.unwrap_or_default() }
                }
                _ => return bad(&format!("inputs[{i}]"), "expected exactly one of `set` (a parameter) and `event` (a target)".into()),
            };
            inputs.push(Input { key: inp.key, action });
        }
        let names: Vec<String> = sim.source_names().iter().map(|s| s.to_string()).collect();
        let spikes = match raw.spikes {
            None => None,
            Some(s) => {
                if !name_ok(&s.endpoint) {
                    return bad("spikes.endpoint", "expected a non-empty endpoint name".into());
                }
                if !name_ok(&s.destination) {
                    return bad("spikes.destination", "expected the name of the endpoint that receives the spikes".into());
                }
                let sources = match s.sources {
                    None => vec![true; names.len()],
                    Some(list) => {
                        for (k, src) in list.iter().enumerate() {
                            if !names.contains(src) {
                                return bad(
                                    &format!("spikes.sources[{k}]"),
                                    format!("unknown spike source `{src}`; sources are {}", names.join(", ")),
                                );
                            }
                        }
                        names.iter().map(|n| list.contains(n)).collect()
                    }
                };
                Some(Spikes { endpoint: s.endpoint, destination: s.destination, sources })
            }
        };
        let events_endpoint = match raw.events {
            None => None,
            Some(e) if !name_ok(&e.endpoint) => return bad("events.endpoint", "expected a non-empty endpoint name".into()),
            Some(e) => Some(e.endpoint),
        };
        if let Some(level) = raw.log_level.filter(|l| !(-1..=11).contains(l)) {
            return bad("log_level", format!("expected a HELICS log level from -1 (none) to 11, found {level}"));
        }
        Ok(Config {
            federate: raw.federate,
            core_type: raw.core_type,
            broker: raw.broker.filter(|b| !b.is_empty()),
            core_init: raw.core_init,
            library: raw.library,
            sync: raw.sync,
            steps: raw.steps,
            step_ns: step_ns as u64,
            log_level: raw.log_level,
            publications,
            inputs,
            spikes,
            events_endpoint,
        })
    }

    /// HELICS time (seconds) of the sync point at step `n`: n whole steps of `step_ns`.
    pub fn time_of(&self, n: u64) -> f64 {
        (n as f64 * self.step_ns as f64) / 1e9
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> Sim {
        Sim::new(spikebus_engine::Model::seed()).unwrap()
    }

    fn check(json: &str) -> Result<Config, String> {
        let raw: RawConfig = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Config::check(raw, &sim()).map_err(|(k, m)| format!("{k}: {m}"))
    }

    #[test]
    fn a_full_config_is_read() {
        let c = check(
            r#"{"federate": "neuron", "broker": "tcp://127.0.0.1:23404", "steps": 2, "sync": "every",
                "publications": [{"key": "n/t", "value": "t"}, {"key": "n/v", "value": "soma.v"},
                                 {"key": "n/i", "value": "ns.interval"}, {"key": "n/end", "value": "end"}],
                "inputs": [{"key": "c/i", "set": "ns.interval"},
                           {"key": "c/e", "event": "syn", "weight": 0.01, "time": "delay"}],
                "spikes": {"endpoint": "n/spikes", "destination": "c/spikes", "sources": ["soma"]},
                "events": {"endpoint": "n/events"}}"#,
        )
        .unwrap();
        assert_eq!(c.step_ns, 25_000);
        assert_eq!(c.time_of(4), 100e-6);
        assert_eq!(c.sync, SyncPoint::Every);
        assert_eq!(c.spikes.unwrap().sources, vec![true, false]);
        assert!(matches!(c.inputs[1].action, InputAction::Event { time: EventTime::Delay, .. }));
    }

    #[test]
    fn bad_configs_name_the_key() {
        for (json, want) in [
            (r#"{"federate": ""}"#, "federate:"),
            (r#"{"federate": "n", "steps": 0}"#, "steps:"),
            (r#"{"federate": "n", "time_scale": 1e-12}"#, "time_scale:"),
            (r#"{"federate": "n", "publications": [{"key": "a", "value": "soma.vv"}]}"#, "publications[0].value:"),
            (r#"{"federate": "n", "publications": [{"key": "a", "value": "t"}, {"key": "a", "value": "step"}]}"#, "publications[1].key:"),
            (r#"{"federate": "n", "inputs": [{"key": "a", "set": "soma.nseg"}]}"#, "inputs[0].set:"),
            (r#"{"federate": "n", "inputs": [{"key": "a", "set": "dt"}]}"#, "inputs[0].set:"),
            (r#"{"federate": "n", "inputs": [{"key": "a", "event": "nope"}]}"#, "inputs[0].event:"),
            (r#"{"federate": "n", "inputs": [{"key": "a"}]}"#, "inputs[0]:"),
            (r#"{"federate": "n", "inputs": [{"key": "a", "set": "ns.interval", "weight": 1}]}"#, "inputs[0].weight:"),
            (r#"{"federate": "n", "spikes": {"endpoint": "s", "destination": "d", "sources": ["x"]}}"#, "spikes.sources[0]:"),
            (r#"{"federate": "n", "log_level": 99}"#, "log_level:"),
        ] {
            let e = check(json).unwrap_err();
            assert!(e.starts_with(want), "{json}: {e}");
        }
        let e = check(r#"{"federate": "n", "period": 1}"#).unwrap_err();
        assert!(e.contains("unknown field `period`"), "{e}");
    }
}
