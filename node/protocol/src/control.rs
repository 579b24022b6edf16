//! Requests from a controller and the node's replies (the control channel).
//!
//! Decoding reads the `op` of the request (and of each action) first, then deserializes the
//! rest of the map into that op's struct, so that a field of the wrong type is reported with
//! its exact path (`actions[0].every`, `protocol`, `id`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Request ids are chosen by the controller and echoed in replies.
pub type RequestId = Option<u64>;

/// The longest `client` name.
pub const MAX_CLIENT_LEN: usize = 64;

/// `hello`: who are you, where are we; with `takeover`, make the sender the run's owner.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    #[serde(default)]
    pub id: RequestId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub protocol: u32,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub takeover: bool,
}

/// `get`: read parameters and signals now.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Get {
    #[serde(default)]
    pub id: RequestId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub names: Vec<String>,
}

/// `continue`: apply actions, then run to the next sync point.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Continue {
    #[serde(default)]
    pub id: RequestId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Decoded one by one by `decode_request`, so that an error can name the action.
    #[serde(default, skip_deserializing)]
    pub actions: Vec<Action>,
}

/// `export`: write a stored snapshot to a file (a fork: `spikebus run --from-snapshot FILE`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    #[serde(default)]
    pub id: RequestId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The snapshot's id (from a report's `snapshots`).
    pub snapshot: u64,
    /// A file name (no directory) in the node's snapshot directory.
    pub file: String,
}

/// A request, tagged by `op`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Hello(Hello),
    Get(Get),
    Continue(Continue),
    Export(Export),
}

impl Request {
    pub fn id(&self) -> RequestId {
        match self {
            Request::Hello(r) => r.id,
            Request::Get(r) => r.id,
            Request::Continue(r) => r.id,
            Request::Export(r) => r.id,
        }
    }

    pub fn client(&self) -> Option<&str> {
        match self {
            Request::Hello(r) => r.client.as_deref(),
            Request::Get(r) => r.client.as_deref(),
            Request::Continue(r) => r.client.as_deref(),
            Request::Export(r) => r.client.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Set {
    pub name: String,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub target: String,
    pub t: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// Changes to the sync schedule; absent fields keep their value.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// A step-boundary sync at steps that are multiples of N (0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// An extra_scatter_gather sync in the steps from t_n with n a multiple of N (0: off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scatter_gather: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_at: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_at: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_spike: Option<Vec<String>>,
    /// FInitializeHandler types (0 to 3) to sync at (any other count is refused by the
    /// node as `invalid_value`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<Vec<u64>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Watch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spikes: Option<bool>,
    /// Reports carry the state hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<bool>,
    /// The stream carries the state hash every N steps (topic `hash`; 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_every: Option<u64>,
    /// Reports carry the exchange's telemetry (wait and simulate times).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {}

/// `snapshot`: keep the whole state of the run, here, under a new id (in the report's
/// `snapshots`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {}

/// `restore`: go back to a snapshot (the last action of its request).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Restore {
    pub id: u64,
}

/// `discard`: forget a snapshot (its memory is freed).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Discard {
    pub id: u64,
}

/// What a `continue` does before the simulation runs on, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Action {
    Set(Set),
    Event(Event),
    Schedule(Schedule),
    Watch(Watch),
    Stop(Stop),
    Snapshot(Snapshot),
    Restore(Restore),
    Discard(Discard),
}

/// Why the node paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Start,
    #[serde(rename = "init_3")]
    Init3,
    #[serde(rename = "init_0")]
    Init0,
    #[serde(rename = "init_1")]
    Init1,
    #[serde(rename = "init_2")]
    Init2,
    Spike,
    ScatterGather,
    At,
    Every,
    End,
}

impl Reason {
    /// The reason of an FInitializeHandler type.
    pub fn init(kind: u8) -> Reason {
        match kind {
            0 => Reason::Init0,
            1 => Reason::Init1,
            2 => Reason::Init2,
            _ => Reason::Init3,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SpikeRecord {
    pub source: String,
    pub t: f64,
}

/// What a sync point reports (the reply to `continue`, hello's `pending`, the `sync` topic).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SyncBody {
    /// NEURON's h.t where the callback this point stands for runs.
    pub t: f64,
    pub step: u64,
    pub reasons: Vec<Reason>,
    /// The scheduled `at` times this point answers (empty unless `reasons` has `at`).
    pub at: Vec<f64>,
    /// The spike this point answers (null unless `reasons` has `spike`).
    pub spike: Option<SpikeRecord>,
    pub values: BTreeMap<String, f64>,
    pub spikes: Vec<SpikeRecord>,
    /// The state hash here (when watched: `watch.hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// How the exchange that led here went (when watched: `watch.telemetry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telemetry: Option<Telemetry>,
}

/// The wall time of one exchange, in seconds: how long the node waited at the previous sync
/// point for its controllers' `continue`, and how long it then took to get here (the actions,
/// the simulation, recording).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Telemetry {
    pub wait: f64,
    pub sim: f64,
}

/// A run's telemetry in `done`: the sums over its exchanges (seconds), and their number.
#[derive(Debug, Clone, Copy, PartialEq, Default, Deserialize, Serialize)]
pub struct Totals {
    pub wait: f64,
    pub sim: f64,
    pub exchanges: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SyncReport {
    pub id: RequestId,
    #[serde(flatten)]
    pub body: SyncBody,
    /// The snapshots this request's actions took, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<u64>,
    /// The snapshot this request restored (the report is then the restored point's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored: Option<u64>,
}

/// A stored snapshot, as `hello` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SnapshotInfo {
    pub id: u64,
    pub t: f64,
    pub step: u64,
    /// Bytes of memory it holds.
    pub bytes: u64,
    /// The state hash it holds.
    pub hash: String,
}

/// A controller of a `--controllers` run, as `hello` lists it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ControllerState {
    pub name: String,
    /// Its `continue` for the pending sync point has arrived.
    pub arrived: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ParamEntry {
    pub name: String,
    pub unit: String,
    pub writable: bool,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ScheduleState {
    pub init: Vec<u8>,
    pub every: u64,
    pub scatter_gather: u64,
    pub at: Vec<f64>,
    pub on_spike: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WatchState {
    pub values: Vec<String>,
    pub spikes: bool,
    #[serde(default)]
    pub hash: bool,
    #[serde(default)]
    pub hash_every: u64,
    #[serde(default)]
    pub telemetry: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct HelloReply {
    pub id: RequestId,
    pub protocol: u32,
    pub node: String,
    /// The name the node knows the sender by (its `client`, or one made from its connection).
    pub client: String,
    /// The client that owns the run (null until a first `continue`).
    pub owner: Option<String>,
    pub model: String,
    pub dt: f64,
    pub tstop: f64,
    pub t: f64,
    pub step: u64,
    pub params: Vec<ParamEntry>,
    pub signals: Vec<String>,
    pub sources: Vec<String>,
    pub targets: Vec<String>,
    pub schedule: ScheduleState,
    pub watch: WatchState,
    pub pending: Pending,
    /// The snapshots the node holds, oldest first (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotInfo>,
    /// With `--controllers`: each controller, in the order their actions apply (absent
    /// otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controllers: Option<Vec<ControllerState>>,
}

/// hello's `pending`: a sync report with its `op`, as the reply to a `continue` carries it.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Pending {
    Sync(SyncReport),
}

impl Pending {
    pub fn report(&self) -> &SyncReport {
        let Pending::Sync(r) = self;
        r
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ValuesReply {
    pub id: RequestId,
    pub t: f64,
    pub step: u64,
    pub values: BTreeMap<String, f64>,
    /// The state hash (XXH64 of the simulation's state), 16 hex digits.
    pub hash: String,
}

/// The reply to `export`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ExportedReply {
    pub id: RequestId,
    pub snapshot: u64,
    /// Where the file is, on the node's machine.
    pub path: String,
    pub bytes: u64,
    /// The snapshot's state hash.
    pub hash: String,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    End,
    Stop,
    Signal,
    Timeout,
    /// An output file could not be written (`error` says which and why).
    IoError,
    /// The run went past one of the node's limits (`error` says which).
    Limit,
    /// A replay (`spikebus replay`) reached a state other than the logged one (`error` says
    /// where).
    Diverged,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DoneReply {
    pub id: RequestId,
    pub reason: EndReason,
    pub t: f64,
    pub step: u64,
    /// State-stream messages published (handed to ZeroMQ for every subscriber).
    pub published: u64,
    /// What could not be written (null unless `reason` is `io_error`).
    pub error: Option<String>,
    /// The run's exchanges: time waited for controllers, time simulated.
    pub telemetry: Totals,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadMessage,
    UnknownOp,
    ProtocolMismatch,
    UnknownName,
    InvalidValue,
    NotWritable,
    EventInPast,
    WrongState,
    NotOwner,
    TooLarge,
    /// A `restore`, `discard` or `export` of a snapshot the node does not hold.
    UnknownSnapshot,
    /// A `snapshot` beyond `--max-snapshots` or `--snapshot-memory`.
    SnapshotLimit,
    /// The node could not write a file a request asked for (`export`).
    IoError,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ErrorReply {
    pub id: RequestId,
    pub code: ErrorCode,
    pub message: String,
    /// The offending field (`actions[0].value`); absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Reply {
    Hello(Box<HelloReply>),
    Values(ValuesReply),
    Sync(SyncReport),
    Exported(ExportedReply),
    Done(DoneReply),
    Error(ErrorReply),
}

/// A request that could not be decoded: already in the shape of an error reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
}

/// How deeply a request may nest: real requests need 4 levels (request map, actions array,
/// action map, a list in it); garbage gets an error instead of exhausting the stack. A request
/// nested exactly this deep is still read; one level deeper is refused.
pub const MAX_DEPTH: usize = 16;

fn bad(message: impl Into<String>, field: Option<String>) -> DecodeError {
    DecodeError { code: ErrorCode::BadMessage, message: message.into(), field }
}

/// `prefix.path`, or whichever of them is not empty.
fn join(prefix: &str, path: &str) -> Option<String> {
    match (prefix.is_empty(), path.is_empty()) {
        (true, true) => None,
        (true, false) => Some(path.to_string()),
        (false, true) => Some(prefix.to_string()),
        (false, false) => Some(format!("{prefix}.{path}")),
    }
}

/// serde's error for `T` out of the map `v`, with the path of the offending field under
/// `prefix`.
fn typed<T: serde::de::DeserializeOwned>(v: rmpv::Value, prefix: &str) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(v).map_err(|e: serde_path_to_error::Error<rmpv::ext::Error>| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = inner.strip_prefix("error while decoding value: ").unwrap_or(&inner).to_string();
        let path = if path == "." { String::new() } else { path };
        // A missing field is named (serde reports it at the map that lacks it).
        let path = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            Some(name) => if path.is_empty() { name.to_string() } else { format!("{path}.{name}") },
            None => path,
        };
        DecodeError { code: ErrorCode::BadMessage, message, field: join(prefix, &path) }
    })
}

/// The map `v` split into its `op` and its other fields; `at` names it in errors.
fn split_op(v: rmpv::Value, at: &str) -> Result<(String, rmpv::Value), DecodeError> {
    let whole = (!at.is_empty()).then(|| at.to_string());
    let rmpv::Value::Map(entries) = v else {
        return Err(bad("expected a map with an `op` field", whole));
    };
    if let Some((k, _)) = entries.iter().find(|(k, _)| !k.is_str()) {
        return Err(bad(format!("map keys are field names (strings), found {k}"), whole));
    }
    let mut op = None;
    let mut rest = Vec::with_capacity(entries.len());
    for (k, val) in entries {
        if k.as_str() == Some("op") {
            op = Some(val);
        } else {
            rest.push((k, val));
        }
    }
    match op {
        None => Err(bad("missing field `op`", Some(join(at, "op").expect("op")))),
        Some(rmpv::Value::String(s)) if s.as_str().is_some() => {
            Ok((s.into_str().expect("checked utf-8"), rmpv::Value::Map(rest)))
        }
        Some(other) => Err(bad(format!("`op` is a string, found {other}"), join(at, "op"))),
    }
}

fn unknown_op(op: &str, at: &str, known: &str) -> DecodeError {
    DecodeError {
        code: ErrorCode::UnknownOp,
        message: format!("unknown op `{op}`; expected one of {known}"),
        field: join(at, "op"),
    }
}

/// Decodes a request; the error names the offending field where it can.
pub fn decode_request(bytes: &[u8]) -> Result<Request, DecodeError> {
    // A request is a map: say so plainly for anything else (arrays, scalars, garbage).
    if !matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
        return Err(bad("a request is a MessagePack map with an `op` field", None));
    }
    match nesting(bytes) {
        Some(d) if d > MAX_DEPTH => return Err(bad(format!("nested deeper than {MAX_DEPTH} levels ({d})"), None)),
        Some(_) => {}
        None => return Err(bad("not valid MessagePack (truncated or a reserved byte)", None)),
    }
    let mut rd = bytes;
    // The depth is checked above; rmpv's own limit (which counts differently for maps and
    // arrays) only has to let every request of MAX_DEPTH levels through.
    let value = rmpv::decode::read_value_with_max_depth(&mut rd, 4 * MAX_DEPTH)
        .map_err(|e| bad(format!("not valid MessagePack: {e}"), None))?;
    if !rd.is_empty() {
        return Err(bad("extra bytes after the request map", None));
    }
    let (op, fields) = split_op(value, "")?;
    let req = match op.as_str() {
        "hello" => {
            // The version is checked before the other fields, so that a hello of another
            // version (which may carry fields this one does not know) is told about the version.
            if let Some(v) = fields.as_map().and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("protocol"))) {
                if let Some(v) = v.1.as_u64() {
                    if v != u64::from(crate::PROTOCOL_VERSION) {
                        return Err(DecodeError {
                            code: ErrorCode::ProtocolMismatch,
                            message: format!(
                                "this node speaks protocol {}, the request asks for {v}",
                                crate::PROTOCOL_VERSION
                            ),
                            field: Some("protocol".into()),
                        });
                    }
                }
            }
            Request::Hello(typed(fields, "")?)
        }
        "get" => Request::Get(typed(fields, "")?),
        "export" => Request::Export(typed(fields, "")?),
        "continue" => {
            let mut fields = fields;
            let actions = take_field(&mut fields, "actions");
            let mut req: Continue = typed(fields, "")?;
            if let Some(list) = actions {
                let rmpv::Value::Array(list) = list else {
                    return Err(bad(format!("`actions` is a list of action maps, found {list}"), Some("actions".into())));
                };
                req.actions =
                    list.into_iter().enumerate().map(|(i, a)| decode_action(a, &format!("actions[{i}]"))).collect::<Result<_, _>>()?;
            }
            Request::Continue(req)
        }
        other => return Err(unknown_op(other, "", "hello, get, continue, export")),
    };
    if let Some(c) = req.client() {
        if !valid_client(c) {
            return Err(bad(
                format!(
                    "`client` is a name of 1 to {MAX_CLIENT_LEN} bytes without control characters, not beginning with `peer-`"
                ),
                Some("client".into()),
            ));
        }
    }
    if let Request::Export(e) = &req {
        if !valid_file_name(&e.file) {
            return Err(bad(
                "`file` is a file name of 1 to 64 letters, digits, `.`, `_` or `-`, not beginning with `.` (no directory)",
                Some("file".into()),
            ));
        }
    }
    Ok(req)
}

/// A file name for `export`: 1 to 64 characters of letters, digits, `.`, `_`, `-`, not
/// beginning with `.` (no directories: the node writes only into its snapshot directory).
pub fn valid_file_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A `client` name: 1 to `MAX_CLIENT_LEN` bytes, no control characters, not beginning with
/// `peer-` (the names the node gives unnamed clients, which a client must not borrow).
pub fn valid_client(c: &str) -> bool {
    !c.is_empty() && c.len() <= MAX_CLIENT_LEN && !c.chars().any(char::is_control) && !c.starts_with("peer-")
}

/// Removes field `name` from a map value and returns it.
fn take_field(map: &mut rmpv::Value, name: &str) -> Option<rmpv::Value> {
    let rmpv::Value::Map(entries) = map else { return None };
    let i = entries.iter().position(|(k, _)| k.as_str() == Some(name))?;
    Some(entries.remove(i).1)
}

fn decode_action(v: rmpv::Value, at: &str) -> Result<Action, DecodeError> {
    let (op, fields) = split_op(v, at)?;
    Ok(match op.as_str() {
        "set" => Action::Set(typed(fields, at)?),
        "event" => Action::Event(typed(fields, at)?),
        "schedule" => Action::Schedule(typed(fields, at)?),
        "watch" => Action::Watch(typed(fields, at)?),
        "stop" => Action::Stop(typed(fields, at)?),
        "snapshot" => Action::Snapshot(typed(fields, at)?),
        "restore" => Action::Restore(typed(fields, at)?),
        "discard" => Action::Discard(typed(fields, at)?),
        other => return Err(unknown_op(other, at, "set, event, schedule, watch, stop, snapshot, restore, discard")),
    })
}

/// How deeply the first MessagePack value of `bytes` nests containers (a scalar is 0, a map of
/// scalars 1), read without recursion and without building it; None if it is not complete
/// MessagePack. Reading stops as soon as the depth passes `MAX_DEPTH`.
pub fn nesting(bytes: &[u8]) -> Option<usize> {
    // Items still to read in each open container.
    let mut open: Vec<u64> = Vec::with_capacity(MAX_DEPTH + 1);
    let mut deepest = 0;
    let mut i = 0usize;
    let be = |at: usize, n: usize| -> Option<u64> {
        let b = bytes.get(at..at + n)?;
        Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    };
    loop {
        let m = *bytes.get(i)?;
        i += 1;
        // (bytes of payload to skip, items of a container opened here)
        let (skip, items): (u64, Option<u64>) = match m {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, None),
            0x80..=0x8f => (0, Some(2 * u64::from(m & 0x0f))),
            0x90..=0x9f => (0, Some(u64::from(m & 0x0f))),
            0xa0..=0xbf => (u64::from(m & 0x1f), None),
            0xc4 | 0xd9 => (1 + be(i, 1)?, None),
            0xc5 | 0xda => (2 + be(i, 2)?, None),
            0xc6 | 0xdb => (4 + be(i, 4)?, None),
            0xc7 => (2 + be(i, 1)?, None),
            0xc8 => (3 + be(i, 2)?, None),
            0xc9 => (5 + be(i, 4)?, None),
            0xca | 0xce | 0xd2 => (4, None),
            0xcb | 0xcf | 0xd3 => (8, None),
            0xcc | 0xd0 => (1, None),
            0xcd | 0xd1 => (2, None),
            0xd4 => (2, None),
            0xd5 => (3, None),
            0xd6 => (5, None),
            0xd7 => (9, None),
            0xd8 => (17, None),
            0xdc => (2, Some(be(i, 2)?)),
            0xdd => (4, Some(be(i, 4)?)),
            0xde => (2, Some(2 * be(i, 2)?)),
            0xdf => (4, Some(2 * be(i, 4)?)),
            0xc1 => return None,
        };
        i = i.checked_add(usize::try_from(skip).ok()?)?;
        if i > bytes.len() {
            return None;
        }
        match items {
            Some(n) if n > 0 => {
                open.push(n);
                deepest = deepest.max(open.len());
                if deepest > MAX_DEPTH {
                    return Some(deepest);
                }
                continue;
            }
            // An empty container counts as a level too.
            Some(_) => deepest = deepest.max(open.len() + 1),
            None => {}
        }
        // One item done: close every container it completes.
        loop {
            let Some(last) = open.last_mut() else { return Some(deepest) };
            *last -= 1;
            if *last > 0 {
                break;
            }
            open.pop();
        }
    }
}

/// The top-level map of a request, if it is one (for `peek_id` and `peek_client`).
fn peek_map(bytes: &[u8]) -> Option<Vec<(rmpv::Value, rmpv::Value)>> {
    if nesting(bytes)? > MAX_DEPTH {
        return None;
    }
    let mut rd = bytes;
    match rmpv::decode::read_value_with_max_depth(&mut rd, 4 * MAX_DEPTH).ok()? {
        rmpv::Value::Map(m) => Some(m),
        _ => None,
    }
}

/// The `id` of a request that could not be decoded, when it can still be read (so that the
/// error reply names the request it answers).
pub fn peek_id(bytes: &[u8]) -> RequestId {
    peek_map(bytes)?.iter().find(|(k, _)| k.as_str() == Some("id")).and_then(|(_, v)| v.as_u64())
}

/// The `client` and `id` of a request, read without decoding the rest (for resends).
pub fn peek_client_and_id(bytes: &[u8]) -> (Option<String>, RequestId) {
    let Some(map) = peek_map(bytes) else { return (None, None) };
    let field = |name: &str| map.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v);
    let client = field("client").and_then(|v| v.as_str()).map(str::to_string);
    (client, field("id").and_then(rmpv::Value::as_u64))
}
