//! The control log (`--control-log FILE`): every request the node applied, with the sync
//! point it was applied at and the state hash there, and the state hash at step boundaries,
//! so that `spikebus replay FILE` can run the session again without a controller and show
//! that it reaches the same states (and writes the same files), or name the first step where
//! it does not.
//!
//! JSON Lines (docs/snapshots.md has every field): a header line, then one line per entry,
//! in the order things happened:
//!
//! ```text
//! {"spikebus_control_log":1,"spikebus":"0.1.0","binary":"<sha256>","state_format":1,"model":{...},...}
//! {"boundary":{"step":0,"t":0.0,"hash":"8f0c…"}}
//! {"apply":{"t":0.0,"step":0,"reasons":["every"],"hash":"8f0c…","by":[{"client":"a","actions":[...]}]}}
//! {"free":{...}}           the --on-timeout continue policy: schedule dropped, run to the end
//! {"end":{"reason":"signal","pauses":17}}
//! ```
//!
//! Numbers are written in the shortest form that reads back as the same double.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use spikebus_protocol as proto;

use crate::error::AppError;
use crate::snapshot::ModelSource;

pub const LOG_FORMAT: u32 = 1;

/// The first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogHeader {
    pub spikebus_control_log: u32,
    pub spikebus: String,
    pub binary: String,
    pub state_format: u32,
    pub model: ModelSource,
    /// `csv` or `npy`.
    pub format: String,
    pub max_output: u64,
    pub limits: LogLimits,
    /// `--controllers`, in the order their actions apply (null: one owner).
    pub controllers: Option<Vec<String>>,
    /// The state hash is logged at every step boundary whose step is a multiple of this.
    pub every: u64,
    /// The node started from a snapshot file: the state it started from, and its hash. A
    /// replay needs that file (`spikebus replay LOG --from-snapshot FILE`).
    pub from_snapshot: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLimits {
    pub max_steps: u64,
    pub max_events_per_step: u64,
    pub max_queue: usize,
    pub max_names: usize,
    pub max_snapshots: usize,
    pub snapshot_memory: u64,
}

/// The state hash at a step boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boundary {
    pub step: u64,
    pub t: f64,
    pub hash: String,
}

/// One controller's actions at a sync point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct By {
    pub client: String,
    /// The actions as the protocol writes them (`{"op": "set", ...}`).
    pub actions: Vec<serde_json::Value>,
}

/// Requests applied at a sync point: the point, the state hash there before they applied,
/// each controller's actions in the order applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applied {
    pub t: f64,
    pub step: u64,
    pub reasons: Vec<proto::Reason>,
    pub hash: String,
    pub by: Vec<By>,
}

/// How a run ended that no request ended (a signal, a write error, a limit, a timeout abort):
/// the reason, and how many pauses it had run through since the last sync point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ended {
    pub reason: proto::EndReason,
    pub pauses: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Entry {
    Boundary(Boundary),
    Apply(Applied),
    Free(Applied),
    End(Ended),
}

/// The log being written.
pub struct ControlLog {
    out: BufWriter<File>,
    path: PathBuf,
    pub every: u64,
    /// The first write error (the run goes on; the log is then incomplete, said at the end).
    pub error: Option<String>,
    line: Vec<u8>,
}

impl ControlLog {
    /// Creates the file and writes the header (an error here is a start-up error).
    pub fn create(path: &Path, header: &LogHeader) -> Result<ControlLog, AppError> {
        let f = File::create(path).map_err(|source| AppError::Write { path: path.to_path_buf(), source })?;
        let mut log = ControlLog { out: BufWriter::new(f), path: path.to_path_buf(), every: header.every, error: None, line: vec![] };
        let mut line = serde_json::to_vec(header).expect("a header serializes");
        line.push(b'\n');
        log.out.write_all(&line).map_err(|source| AppError::Write { path: path.to_path_buf(), source })?;
        log.flush();
        if let Some(e) = log.error.take() {
            return Err(AppError::Usage(e));
        }
        Ok(log)
    }

    pub fn write(&mut self, e: &Entry) {
        if self.error.is_some() {
            return;
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, e).expect("an entry serializes");
        self.line.push(b'\n');
        if let Err(err) = self.out.write_all(&self.line) {
            self.error = Some(format!("cannot write the control log {}: {err}", self.path.display()));
        }
    }

    /// Hands what is buffered to the file (at every sync point: a log cut short by a crash
    /// still holds every sync point that was reached).
    pub fn flush(&mut self) {
        if self.error.is_none() {
            if let Err(err) = self.out.flush() {
                self.error = Some(format!("cannot write the control log {}: {err}", self.path.display()));
            }
        }
    }
}

impl Drop for ControlLog {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// A log read back: its header and entries.
pub struct Log {
    pub header: LogHeader,
    pub entries: Vec<Entry>,
}

/// Reads a control log (every line checked, the line number named on error).
pub fn read(path: &Path) -> Result<Log, AppError> {
    let bad = |line: usize, why: String| AppError::Usage(format!("{}:{line}: {why}", path.display()));
    let f = File::open(path).map_err(|e| AppError::Usage(format!("cannot read the control log {}: {e}", path.display())))?;
    let mut lines = BufReader::new(f).lines();
    let first = lines.next().ok_or_else(|| bad(1, "empty: not a spikebus control log".into()))?.map_err(|e| bad(1, e.to_string()))?;
    let probe: serde_json::Value = serde_json::from_str(&first).map_err(|e| bad(1, format!("not a spikebus control log: {e}")))?;
    match probe.get("spikebus_control_log").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(LOG_FORMAT) => {}
        Some(v) => return Err(bad(1, format!("control log format {v}; this spikebus reads format {LOG_FORMAT}"))),
        None => return Err(bad(1, "not a spikebus control log (no `spikebus_control_log` field)".into())),
    }
    let header: LogHeader = serde_json::from_value(probe).map_err(|e| bad(1, format!("a bad header: {e}")))?;
    let mut entries = vec![];
    for (i, line) in lines.enumerate() {
        let line = line.map_err(|e| bad(i + 2, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        entries.push(serde_json::from_str(&line).map_err(|e| bad(i + 2, format!("a bad entry: {e}")))?);
    }
    Ok(Log { header, entries })
}

/// Actions as the log writes them.
pub fn actions_to_json(actions: &[proto::Action]) -> Vec<serde_json::Value> {
    actions.iter().map(|a| serde_json::to_value(a).expect("an action serializes")).collect()
}

/// Actions read back, through the protocol's own decoder (so that they are checked as a
/// request's are).
pub fn actions_from_json(actions: &[serde_json::Value]) -> Result<Vec<proto::Action>, String> {
    let req = serde_json::json!({"op": "continue", "actions": actions});
    let bytes = rmp_serde::to_vec_named(&req).map_err(|e| e.to_string())?;
    match proto::decode_request(&bytes) {
        Ok(proto::Request::Continue(c)) => Ok(c.actions),
        Ok(_) => Err("not a list of actions".into()),
        Err(e) => Err(format!("{e} ({})", e.field.as_deref().unwrap_or_default())),
    }
}
