//! Requests from a controller (REQ) and the node's replies (REP).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Request ids are chosen by the controller and echoed in replies.
pub type RequestId = Option<u64>;

/// A request; `A` is the type of its actions (decoding first reads them as raw values, so
/// that an error can say which action is at fault).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
#[serde(bound(deserialize = "A: Deserialize<'de>", serialize = "A: Serialize"))]
pub enum Request<A = Action> {
    Hello {
        #[serde(default)]
        id: RequestId,
        protocol: u32,
    },
    Get {
        #[serde(default)]
        id: RequestId,
        names: Vec<String>,
    },
    Continue {
        #[serde(default)]
        id: RequestId,
        #[serde(default)]
        actions: Vec<A>,
    },
}

impl<A> Request<A> {
    pub fn id(&self) -> RequestId {
        match self {
            Request::Hello { id, .. } | Request::Get { id, .. } | Request::Continue { id, .. } => *id,
        }
    }
}

/// What a `continue` does before the simulation runs on, in order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    Set {
        name: String,
        value: f64,
    },
    Event {
        target: String,
        t: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        weight: Option<f64>,
    },
    Schedule {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        every: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        add_at: Option<Vec<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remove_at: Option<Vec<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        on_spike: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        init: Option<bool>,
    },
    Watch {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        values: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spikes: Option<bool>,
    },
    Stop {},
}

/// Why the node paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Start,
    Init,
    Every,
    At,
    Spike,
    End,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SpikeRecord {
    pub source: String,
    pub t: f64,
}

/// What a sync point reports (the reply to `continue`, hello's `pending`, the `sync` topic).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SyncBody {
    pub t: f64,
    pub step: u64,
    pub reasons: Vec<Reason>,
    pub values: BTreeMap<String, f64>,
    pub spikes: Vec<SpikeRecord>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct SyncReport {
    pub id: RequestId,
    #[serde(flatten)]
    pub body: SyncBody,
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
    pub init: bool,
    pub every: u64,
    pub at: Vec<f64>,
    pub on_spike: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WatchState {
    pub values: Vec<String>,
    pub spikes: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct HelloReply {
    pub id: RequestId,
    pub protocol: u32,
    pub node: String,
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
    /// A digest of the node's whole state, 16 hex digits.
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
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct DoneReply {
    pub id: RequestId,
    pub reason: EndReason,
    pub t: f64,
    pub step: u64,
    pub published: u64,
    pub dropped: u64,
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
    TooLarge,
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

/// How deeply a request may nest; real requests need 4 levels, garbage gets an error instead of
/// exhausting the stack.
pub const MAX_DEPTH: usize = 16;

fn bad(message: impl Into<String>, field: Option<String>) -> DecodeError {
    DecodeError { code: ErrorCode::BadMessage, message: message.into(), field }
}

/// serde's error for `T` out of `v`, with the path of the offending field under `prefix`.
fn typed<T: serde::de::DeserializeOwned>(v: rmpv::Value, prefix: &str) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize(v).map_err(|e: serde_path_to_error::Error<rmpv::ext::Error>| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = inner.strip_prefix("error while decoding value: ").unwrap_or(&inner).to_string();
        let field = match (prefix.is_empty(), path.as_str()) {
            (true, "." | "") => None,
            (true, p) => Some(p.to_string()),
            (false, "." | "") => Some(prefix.to_string()),
            (false, p) => Some(format!("{prefix}.{p}")),
        };
        let code = if message.contains("unknown variant") { ErrorCode::UnknownOp } else { ErrorCode::BadMessage };
        DecodeError { code, message, field }
    })
}

/// Decodes a request; the error names the offending field where it can.
pub fn decode_request(bytes: &[u8]) -> Result<Request, DecodeError> {
    // A request is a map: say so plainly for anything else (arrays, scalars, garbage).
    if !matches!(bytes.first(), Some(0x80..=0x8f | 0xde | 0xdf)) {
        return Err(bad("a request is a MessagePack map with an `op` field", None));
    }
    let mut rd = bytes;
    let value = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH).map_err(|e| match e {
        rmpv::decode::Error::DepthLimitExceeded => bad(format!("nested deeper than {MAX_DEPTH} levels"), None),
        e => bad(format!("not valid MessagePack: {e}"), None),
    })?;
    if !rd.is_empty() {
        return Err(bad("extra bytes after the request map", None));
    }
    check_shape(&value)?;
    // The version is checked before the shape, so that a hello of another version (which may
    // carry fields this one does not know) is told about the version, not about a field.
    if let Some(v) = hello_version(&value) {
        if v != u64::from(crate::PROTOCOL_VERSION) {
            return Err(DecodeError {
                code: ErrorCode::ProtocolMismatch,
                message: format!("this node speaks protocol {}, the request asks for {v}", crate::PROTOCOL_VERSION),
                field: Some("protocol".into()),
            });
        }
    }
    Ok(match typed::<Request<rmpv::Value>>(value, "")? {
        Request::Hello { id, protocol } => Request::Hello { id, protocol },
        Request::Get { id, names } => Request::Get { id, names },
        Request::Continue { id, actions } => Request::Continue {
            id,
            actions: actions
                .into_iter()
                .enumerate()
                .map(|(i, a)| typed::<Action>(a, &format!("actions[{i}]")))
                .collect::<Result<_, _>>()?,
        },
    })
}

/// The `protocol` of a `hello` map, if it is one.
fn hello_version(v: &rmpv::Value) -> Option<u64> {
    let map = v.as_map()?;
    let field = |name: &str| map.iter().find(|(k, _)| k.as_str() == Some(name)).map(|(_, v)| v);
    (field("op")?.as_str()? == "hello").then_some(())?;
    field("protocol")?.as_u64()
}

/// The `id` of a request that could not be decoded, when it can still be read (so that the
/// error reply names the request it answers).
pub fn peek_id(bytes: &[u8]) -> RequestId {
    let mut rd = bytes;
    let v = rmpv::decode::read_value_with_max_depth(&mut rd, MAX_DEPTH).ok()?;
    v.as_map()?.iter().find(|(k, _)| k.as_str() == Some("id")).and_then(|(_, v)| v.as_u64())
}

/// The shape serde does not enforce by itself: maps with string keys and a string `op`, for
/// the request and for each action. (serde would otherwise take an integer `op` as a variant
/// index, an array as a struct, an integer key as a field index.)
fn check_shape(v: &rmpv::Value) -> Result<(), DecodeError> {
    fn map_with_op<'a>(v: &'a rmpv::Value, at: &str) -> Result<&'a [(rmpv::Value, rmpv::Value)], DecodeError> {
        let field = |f: &str| if at.is_empty() { f.to_string() } else { format!("{at}.{f}") };
        let whole = (!at.is_empty()).then(|| at.to_string());
        let map = v.as_map().ok_or_else(|| bad("expected a map with an `op` field", whole.clone()))?;
        if let Some((k, _)) = map.iter().find(|(k, _)| !k.is_str()) {
            return Err(bad(format!("map keys are field names (strings), found {k}"), whole));
        }
        match map.iter().find(|(k, _)| k.as_str() == Some("op")) {
            None => Err(bad("missing field `op`", whole)),
            Some((_, op)) if !op.is_str() => Err(bad(format!("`op` is a string, found {op}"), Some(field("op")))),
            Some(_) => Ok(map.as_slice()),
        }
    }
    let map = map_with_op(v, "")?;
    if let Some((_, actions)) = map.iter().find(|(k, _)| k.as_str() == Some("actions")) {
        if let Some(list) = actions.as_array() {
            for (i, a) in list.iter().enumerate() {
                map_with_op(a, &format!("actions[{i}]"))?;
            }
        }
    }
    Ok(())
}
