//! The engine's one error type. Every variant carries what a user needs to act on it: the
//! file and line of a bad model key, the name of a parameter and what it allows.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum Error {
    /// The model file is not valid TOML.
    #[error("{origin}:{line}:{col}: {msg}")]
    Syntax {
        origin: String,
        line: usize,
        col: usize,
        msg: String,
    },

    /// A key of the model file has a value the engine cannot use.
    #[error("{origin}:{line}: key `{key}`: {msg}")]
    Model {
        origin: String,
        line: usize,
        key: String,
        msg: String,
    },

    /// A parameter or signal name that the model does not have.
    #[error("unknown {what} `{name}`{}", hint_suffix(.hint))]
    UnknownName {
        what: &'static str,
        name: String,
        hint: String,
    },

    /// A value outside what a parameter allows.
    #[error("parameter `{name}`: {value} is not allowed: {allowed}")]
    InvalidValue {
        name: String,
        value: f64,
        allowed: String,
    },

    /// A parameter that exists but cannot be written now.
    #[error("parameter `{name}` cannot be set now: {reason}")]
    NotWritable { name: String, reason: String },

    /// An event injected at a time the simulation has already passed.
    #[error("event for `{target}` at t={te} is in the past (t is {t}): events need te >= t")]
    EventInPast { target: String, te: f64, t: f64 },

    /// A sync time whose event (at `te`, see `sim::cvode_event_time`) would be in the past.
    #[error("sync time {at} has passed: its event (at {te}) would be before t={t}")]
    SyncInPast { at: f64, te: f64, t: f64 },

    /// A dt and tstop that make a run longer than the node allows.
    #[error("a run with dt={dt:e} ms and tstop={tstop} ms from t={t} takes {steps:e} steps, more than {max} (--max-steps)")]
    TooLong { dt: f64, tstop: f64, t: f64, steps: f64, max: u64 },

    /// `remove_at` of a time that is not scheduled.
    #[error("no sync is scheduled at {at}")]
    NotScheduled { at: f64 },

    /// Something that cannot be done at the point where the simulation is.
    #[error("{what} cannot be queued now: {reason}")]
    NotNow { what: &'static str, reason: String },

    /// A saved state (a snapshot's words) that does not fit this simulation or is damaged.
    #[error("the saved state does not fit: {0}")]
    State(String),

    /// An event injected into something that has no NET_RECEIVE.
    #[error("`{target}` cannot receive events: {reason}")]
    NotATarget { target: String, reason: String },
}

fn hint_suffix(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!(": {hint}")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
