//! Snapshots: the whole state of a run kept in the node (`Snapshots`, bounded in number and
//! memory) and written to a file (`write_file`, `read_file`) from which another node starts
//! (`spikebus run --from-snapshot FILE`: a fork).
//!
//! A snapshot holds the simulation's state as words (`Sim::state_words`: every parameter and
//! state variable, the event queue in order, the random streams, the detectors, the sync
//! schedule, t and step), and beside it what the node adds: the sync point and its report,
//! the watch settings, the record clock, where the traces file and spikes.csv stood (so that
//! a restore cuts them back).
//!
//! The file (format 1, docs/snapshots.md): 16 bytes of magic `spikebus-snap\n\0\0`, the
//! format as a little-endian u32, the length H of the header as a little-endian u32, H bytes
//! of JSON (padded with spaces so that what follows starts at a multiple of 8 bytes), then
//! the state's words, little-endian. The header names the binary that wrote the file (its
//! SHA-256), the model (its text and `--set`s, so that the file is enough to start a node)
//! and its structure, the point, and the state's length and XXH64 hash.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spikebus_engine::sim::STATE_FORMAT;
use spikebus_engine::xxh64;
use spikebus_protocol as proto;

use crate::error::AppError;
use crate::lockstep::{Point, Watch};
use crate::record::DtClock;

pub const FILE_MAGIC: &[u8; 16] = b"spikebus-snap\n\0\0";
pub const FILE_FORMAT: u32 = 1;

/// Where a run's model came from: enough to build it again (a fork, a replay).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelSource {
    /// The file's path as given, or `<seed>`.
    pub origin: String,
    /// The model file's text.
    pub text: String,
    /// The command line's `--set NAME=VALUE`, in order.
    pub sets: Vec<String>,
    /// The recorded signals (`--record` or the model's).
    pub record: Vec<String>,
    /// `[record] dt` or `--record-dt`.
    pub record_dt: Option<f64>,
}

/// The SHA-256 of this process's executable, in hex: which binary wrote a snapshot or a log.
pub fn binary_sha256() -> Result<&'static str, AppError> {
    static SHA: OnceLock<Result<String, String>> = OnceLock::new();
    let r = SHA.get_or_init(|| {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's file: {e}"))?;
        let bytes = std::fs::read(&exe).map_err(|e| format!("cannot read {}: {e}", exe.display()))?;
        Ok(format!("{:x}", Sha256::digest(&bytes)))
    });
    r.as_deref().map_err(|e| AppError::Usage(e.clone()))
}

/// Where the traces, spikes and record clock stood when a snapshot was taken.
#[derive(Debug, Clone)]
pub struct RecMark {
    pub spikes: usize,
    pub clock: Option<DtClock>,
    pub at_boundary: bool,
}

/// What the lockstep adds to the simulation's state.
#[derive(Debug, Clone)]
pub struct LockState {
    pub point: Point,
    pub watch: Watch,
    /// The report of the sync point, as it was reached.
    pub pending: proto::SyncBody,
}

/// One snapshot in the node.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: u64,
    pub words: Vec<u64>,
    pub hash: u64,
    pub rec: RecMark,
    pub lock: LockState,
}

impl Snapshot {
    /// The memory it holds, as counted against `--snapshot-memory`.
    pub fn bytes(&self) -> u64 {
        8 * self.words.len() as u64
    }

    pub fn info(&self) -> proto::SnapshotInfo {
        proto::SnapshotInfo {
            id: self.id,
            t: self.lock.pending.t,
            step: self.lock.pending.step,
            bytes: self.bytes(),
            hash: hex(self.hash),
        }
    }
}

/// A hash as 16 lowercase hex digits, as the protocol writes it.
pub fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// The snapshots a node holds: at most `max_count`, at most `max_bytes` of state in all.
#[derive(Debug)]
pub struct Snapshots {
    pub list: Vec<Snapshot>,
    pub next_id: u64,
    pub max_count: usize,
    pub max_bytes: u64,
}

impl Snapshots {
    pub fn new(max_count: usize, max_bytes: u64) -> Self {
        Snapshots { list: vec![], next_id: 0, max_count, max_bytes }
    }

    pub fn get(&self, id: u64) -> Option<&Snapshot> {
        self.list.iter().find(|s| s.id == id)
    }

    pub fn bytes(&self) -> u64 {
        self.list.iter().map(Snapshot::bytes).sum()
    }

    pub fn remove(&mut self, id: u64) -> Option<Snapshot> {
        let i = self.list.iter().position(|s| s.id == id)?;
        Some(self.list.remove(i))
    }
}

/// The file's header (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHeader {
    /// The version of spikebus that wrote it.
    pub spikebus: String,
    /// SHA-256 of the binary that wrote it.
    pub binary: String,
    /// The layout of the state's words (`spikebus_engine::sim::STATE_FORMAT`).
    pub state_format: u32,
    pub model: ModelSource,
    /// `Sim::structure` of the model: what a model must match to take the state.
    pub structure: Vec<String>,
    /// The snapshot's id in the node that took it.
    pub snapshot: u64,
    pub point: PointName,
    /// The sync point's report as it was reached (its `values` are read again when the state
    /// is loaded, so they are left out).
    pub pending: proto::SyncBody,
    pub watch: proto::WatchState,
    /// The `[record] dt` clock: Dt and the next record time.
    pub record_clock: Option<(f64, f64)>,
    pub at_boundary: bool,
    /// The state: its words and their XXH64.
    pub words: u64,
    pub hash: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointName {
    Start,
    Paused,
    End,
}

impl From<Point> for PointName {
    fn from(p: Point) -> Self {
        match p {
            Point::Start => PointName::Start,
            Point::Paused => PointName::Paused,
            Point::End => PointName::End,
        }
    }
}

impl From<PointName> for Point {
    fn from(p: PointName) -> Self {
        match p {
            PointName::Start => Point::Start,
            PointName::Paused => Point::Paused,
            PointName::End => Point::End,
        }
    }
}

/// Writes a snapshot file at `path` (atomically: a temporary file, then renamed); its length.
pub fn write_file(path: &Path, header: &FileHeader, words: &[u64]) -> Result<u64, AppError> {
    let mut json = serde_json::to_vec(header).expect("a header serializes");
    // Pad so that the words start at a multiple of 8 bytes.
    while (FILE_MAGIC.len() + 8 + json.len()) % 8 != 0 {
        json.push(b' ');
    }
    let mut bytes = Vec::with_capacity(24 + json.len() + 8 * words.len());
    bytes.extend_from_slice(FILE_MAGIC);
    bytes.extend_from_slice(&FILE_FORMAT.to_le_bytes());
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    for w in words {
        bytes.extend_from_slice(&w.to_le_bytes());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| AppError::Write { path: p, source }
    };
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(err(&tmp))?;
        f.write_all(&bytes).map_err(err(&tmp))?;
        f.sync_all().map_err(err(&tmp))?;
        std::fs::rename(&tmp, path).map_err(err(path))
    })();
    if written.is_err() {
        // No half-written file left behind.
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| bytes.len() as u64)
}

/// Reads a snapshot file: its header and its state, checked (magic, format, length, hash).
pub fn read_file(path: &Path) -> Result<(FileHeader, Vec<u64>), AppError> {
    let bad = |why: String| AppError::Usage(format!("--from-snapshot {}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
    if bytes.len() < 24 || &bytes[..16] != FILE_MAGIC {
        return Err(bad("not a spikebus snapshot file (it does not begin with `spikebus-snap`)".into()));
    }
    let format = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    if format != FILE_FORMAT {
        return Err(bad(format!("snapshot file format {format}; this spikebus reads format {FILE_FORMAT}")));
    }
    let hlen = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes")) as usize;
    let body = &bytes[24..];
    if hlen > body.len() {
        return Err(bad("the file is cut short (in its header)".into()));
    }
    let header: FileHeader =
        serde_json::from_slice(&body[..hlen]).map_err(|e| bad(format!("its header is not a snapshot header: {e}")))?;
    let rest = &body[hlen..];
    if rest.len() as u64 != 8 * header.words {
        return Err(bad(format!("the header says {} words of state, the file holds {} bytes of it", header.words, rest.len())));
    }
    let words: Vec<u64> = rest.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let h = hex(xxh64::of_words(&words));
    if h != header.hash {
        return Err(bad(format!("the state's hash is {h}, the header says {}: the file is damaged", header.hash)));
    }
    if header.state_format != STATE_FORMAT {
        return Err(bad(format!(
            "its state has layout {}; this spikebus reads layout {STATE_FORMAT}",
            header.state_format
        )));
    }
    Ok((header, words))
}

/// The first difference between two structures (`Sim::structure`), said plainly.
pub fn structure_difference(snapshot: &[String], here: &[String]) -> Option<String> {
    for (i, (a, b)) in snapshot.iter().zip(here).enumerate() {
        if a != b {
            return Some(format!("object {}: the snapshot's model has `{a}`, this one `{b}`", i + 1));
        }
    }
    match snapshot.len().cmp(&here.len()) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(format!(
            "the snapshot's model has {} objects, this one {} (the first missing here: `{}`)",
            snapshot.len(),
            here.len(),
            snapshot[here.len()]
        )),
        std::cmp::Ordering::Less => Some(format!(
            "the snapshot's model has {} objects, this one {} (the first extra here: `{}`)",
            snapshot.len(),
            here.len(),
            here[snapshot.len()]
        )),
    }
}

/// Puts `sim` (built from the file's model) in the file's state, after checking that the
/// model has the snapshot's structure.
pub fn load_into(sim: &mut spikebus_engine::Sim, h: &FileHeader, words: &[u64], file: &Path) -> Result<(), AppError> {
    let bad = |why: String| AppError::Usage(format!("--from-snapshot {}: {why}", file.display()));
    if let Some(d) = structure_difference(&h.structure, &sim.structure()) {
        return Err(bad(d));
    }
    sim.read_state(words).map_err(|e| bad(e.to_string()))?;
    let got = hex(sim.state_hash());
    if got != h.hash {
        return Err(bad(format!("the state read back hashes to {got}, the file's to {}", h.hash)));
    }
    Ok(())
}
