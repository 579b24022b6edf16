//! The traces file, written by a thread of its own so that formatting, digesting and writing
//! stay off the stepping path. The stepping thread copies each sample's doubles into a block
//! (about 64 KiB) and hands full blocks to the writer over a channel; the writer formats them
//! (CSV) or writes them as they are (`.npy`), digests them, and hands the emptied blocks
//! back. Only `BLOCKS` blocks ever exist: when all are full the stepping thread waits for one
//! (backpressure), so memory stays bounded and the run is never more than `BLOCKS` blocks
//! ahead of the file. A write error or `--max-output` stops the writing at once and raises a
//! flag that the run checks at every pause (`must_end`); `finish` hands over the last block,
//! waits for the writer and says how the file ended.
//!
//! A run that goes back to a snapshot cuts the file back to where it was then: `mark` hands
//! over the samples so far and has the writer note the file's length and digest under the
//! snapshot's id; `truncate` drops the samples not yet handed over and has the writer cut
//! the file back to that mark (`output::Mark`).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use spikebus_protocol as proto;

use crate::error::AppError;
use crate::output::{CsvFile, Mark, NpyFile, Written};
use crate::record::planned_samples;

/// The traces file's format (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// traces.csv: a header, then one row per sample, numbers in shortest round-trip form.
    Csv,
    /// traces.npy: a NumPy float64 array (samples, 1 + signals); column names in manifest.json.
    Npy,
}

impl TraceFormat {
    pub fn file_name(self) -> &'static str {
        match self {
            TraceFormat::Csv => "traces.csv",
            TraceFormat::Npy => "traces.npy",
        }
    }

    /// As `--format` spells it.
    pub fn name(self) -> &'static str {
        match self {
            TraceFormat::Csv => "csv",
            TraceFormat::Npy => "npy",
        }
    }
}

/// Bytes of samples per block (rounded down to whole samples, at least one).
const BLOCK_BYTES: usize = 64 << 10;
/// Blocks in existence: the one being filled, the one being written, the rest waiting.
const BLOCKS: usize = 4;

const WRITING: u8 = 0;
const FAILED: u8 = 1;
const LIMIT: u8 = 2;

struct Shared {
    state: AtomicU8,
    /// `finish` or drop has begun: the writer need not predict the file's length any longer.
    closing: AtomicBool,
    /// Dropped without `finish` (the run never ended): the file stays `.partial`.
    abandoned: AtomicBool,
}

/// What the run will record if nothing changes it (a `.npy` header written for it needs no
/// rewrite at the end).
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub dt: f64,
    pub tstop: f64,
    pub record_dt: Option<f64>,
}

enum Sink {
    Csv(CsvFile),
    Npy(NpyFile),
}

impl Sink {
    fn mark(&mut self) -> Result<Mark, AppError> {
        match self {
            Sink::Csv(f) => f.mark(),
            Sink::Npy(f) => f.mark(),
        }
    }

    fn truncate(&mut self, m: &Mark) -> Result<(), AppError> {
        match self {
            Sink::Csv(f) => f.truncate(m),
            Sink::Npy(f) => f.truncate(m),
        }
    }
}

/// What the stepping thread sends the writer.
enum Msg {
    /// Samples to write.
    Block(Vec<f64>),
    /// Note where the file is, under this id.
    Mark(u64),
    /// Cut the file back to the mark of this id.
    Truncate(u64),
    /// The mark of this id is not needed any more.
    Forget(u64),
}

/// How the writer ended: the file (or why it could not be completed), the limit it met, and
/// when it had handed every sample to the file (before the final flush and sync).
struct Outcome {
    file: Result<Written, AppError>,
    limit: Option<AppError>,
    drained: Instant,
}

/// How the traces file ended (`Traces::finish`).
pub struct Finished {
    /// The file, or the error that left it `.partial`.
    pub file: Result<Written, AppError>,
    /// `--max-output` was reached.
    pub limit: Option<AppError>,
    /// When every sample had been handed to the file (before its final flush and sync).
    pub drained: Instant,
}

/// The stepping thread's side of the traces file.
pub struct Traces {
    block: Vec<f64>,
    /// Doubles per block: a whole number of samples.
    block_len: usize,
    made: usize,
    full: Option<Sender<Msg>>,
    free: Receiver<Vec<f64>>,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<Outcome>>,
    path: std::path::PathBuf,
}

impl Traces {
    /// Creates the file (an error here is a start-up error) and starts its writer.
    pub fn start(path: &Path, format: TraceFormat, columns: &[&str], max_bytes: u64, plan: Plan) -> Result<Traces, AppError> {
        let width = columns.len();
        let sink = match format {
            TraceFormat::Csv => Sink::Csv(CsvFile::create(path, columns)?),
            TraceFormat::Npy => Sink::Npy(NpyFile::create(path, width)?),
        };
        let shared = Arc::new(Shared { state: AtomicU8::new(WRITING), closing: AtomicBool::new(false), abandoned: AtomicBool::new(false) });
        let (full_tx, full_rx) = mpsc::channel::<Msg>();
        let (free_tx, free_rx) = mpsc::channel::<Vec<f64>>();
        let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let sh = shared.clone();
        let writer = std::thread::Builder::new()
            .name("traces".into())
            .spawn(move || write(sink, width, max_bytes, plan, &name, &full_rx, &free_tx, &sh))
            .map_err(|source| AppError::Write { path: path.to_path_buf(), source })?;
        let block_len = (BLOCK_BYTES / 8 / width).max(1) * width;
        Ok(Traces {
            block: Vec::with_capacity(block_len),
            block_len,
            made: 1,
            full: Some(full_tx),
            free: free_rx,
            shared,
            writer: Some(writer),
            path: path.to_path_buf(),
        })
    }

    /// Records one sample: its time, then the values (as many as there are signals).
    #[inline]
    pub fn push(&mut self, t: f64, values: impl Iterator<Item = f64>) {
        self.block.push(t);
        self.block.extend(values);
        if self.block.len() >= self.block_len {
            self.hand_over();
        }
    }

    /// Sends the full block to the writer and takes an empty one: a returned block, a new one
    /// while fewer than `BLOCKS` exist, or else the next one the writer returns (waiting).
    fn hand_over(&mut self) {
        let Some(tx) = &self.full else {
            // The writer is gone: nothing more can be written (the run ends at its next pause).
            self.block.clear();
            return;
        };
        let next = match self.free.try_recv() {
            Ok(b) => Some(b),
            Err(_) if self.made < BLOCKS => {
                self.made += 1;
                Some(Vec::with_capacity(self.block_len))
            }
            Err(_) => self.free.recv().ok(),
        };
        let sent = match next {
            Some(next) => tx.send(Msg::Block(std::mem::replace(&mut self.block, next))).is_ok(),
            None => false,
        };
        if !sent {
            // Only a writer that panicked stops taking blocks.
            self.shared.state.store(FAILED, Ordering::Release);
            self.full = None;
            self.block.clear();
        }
    }

    /// Notes where the file is after the samples so far, under `id` (a snapshot's).
    pub fn mark(&mut self, id: u64) {
        if !self.block.is_empty() {
            self.hand_over();
        }
        self.send(Msg::Mark(id));
    }

    /// Cuts the file back to the mark `id`: the samples recorded since are gone.
    pub fn truncate(&mut self, id: u64) {
        self.block.clear();
        self.send(Msg::Truncate(id));
    }

    /// The mark `id` will not be truncated to.
    pub fn forget(&mut self, id: u64) {
        self.send(Msg::Forget(id));
    }

    fn send(&mut self, msg: Msg) {
        if let Some(tx) = &self.full {
            if tx.send(msg).is_err() {
                self.shared.state.store(FAILED, Ordering::Release);
                self.full = None;
            }
        }
    }

    /// Why the run must end now, if it must: the file could not be written, or reached
    /// `--max-output`.
    #[inline]
    pub fn must_end(&self) -> Option<proto::EndReason> {
        match self.shared.state.load(Ordering::Acquire) {
            WRITING => None,
            LIMIT => Some(proto::EndReason::Limit),
            _ => Some(proto::EndReason::IoError),
        }
    }

    /// Hands over what is left, waits for the writer, and says how the file ended.
    pub fn finish(mut self) -> Finished {
        self.shared.closing.store(true, Ordering::Relaxed);
        let last = std::mem::take(&mut self.block);
        if let Some(tx) = self.full.take() {
            if !last.is_empty() {
                let _ = tx.send(Msg::Block(last));
            }
        }
        let writer = self.writer.take().expect("the writer runs until finish");
        match writer.join() {
            Ok(o) => Finished { file: o.file, limit: o.limit, drained: o.drained },
            Err(_) => {
                let source = std::io::Error::other("the traces writer thread panicked");
                Finished { file: Err(AppError::Write { path: self.path.clone(), source }), limit: None, drained: Instant::now() }
            }
        }
    }
}

impl Drop for Traces {
    /// A run that never finished (a start-up error after the file was made): the writer stops
    /// and the file stays `.partial`, as after a crash.
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take() {
            self.shared.abandoned.store(true, Ordering::Relaxed);
            self.shared.closing.store(true, Ordering::Relaxed);
            self.full.take();
            let _ = writer.join();
        }
    }
}

/// The writer thread: blocks in, rows out, until the stepping side closes the channel.
#[allow(clippy::too_many_arguments)]
fn write(
    mut sink: Sink,
    width: usize,
    max_bytes: u64,
    plan: Plan,
    name: &str,
    full: &Receiver<Msg>,
    free: &Sender<Vec<f64>>,
    shared: &Shared,
) -> Outcome {
    let mut failed = None;
    let mut limit = None;
    let mut marks: std::collections::HashMap<u64, Mark> = std::collections::HashMap::new();
    if let Sink::Npy(f) = &mut sink {
        // Counted here, off the stepping thread, while the first blocks fill.
        let expected = planned_samples(plan.dt, plan.tstop, plan.record_dt, &shared.closing);
        if let Err(e) = f.begin(expected) {
            shared.state.store(FAILED, Ordering::Release);
            failed = Some(e);
        }
    }
    for msg in full {
        let mut block = match msg {
            Msg::Block(b) => b,
            Msg::Mark(id) => {
                if failed.is_none() && limit.is_none() {
                    match sink.mark() {
                        Ok(m) => {
                            marks.insert(id, m);
                        }
                        Err(e) => {
                            failed = Some(e);
                            shared.state.store(FAILED, Ordering::Release);
                        }
                    }
                }
                continue;
            }
            Msg::Truncate(id) => {
                if let (None, None, Some(m)) = (&failed, &limit, marks.get(&id)) {
                    if let Err(e) = sink.truncate(m) {
                        failed = Some(e);
                        shared.state.store(FAILED, Ordering::Release);
                    }
                }
                continue;
            }
            Msg::Forget(id) => {
                marks.remove(&id);
                continue;
            }
        };
        if failed.is_none() && limit.is_none() {
            let written = match &mut sink {
                Sink::Csv(f) => f.rows(&block, width, max_bytes),
                Sink::Npy(f) => f.rows(&block, max_bytes),
            };
            match written {
                Ok(true) => {}
                Ok(false) => {
                    limit = Some(AppError::Limit(format!("{name} would pass {max_bytes} bytes (--max-output)")));
                    shared.state.store(LIMIT, Ordering::Release);
                }
                Err(e) => {
                    failed = Some(e);
                    shared.state.store(FAILED, Ordering::Release);
                }
            }
        }
        block.clear();
        let _ = free.send(block);
    }
    let drained = Instant::now();
    let file = match failed {
        Some(e) => Err(e),
        // Nobody waits for this answer; what matters is that the file is not completed.
        None if shared.abandoned.load(Ordering::Relaxed) => Err(AppError::Usage("the run never ended".into())),
        None => match sink {
            Sink::Csv(f) => f.finish(),
            Sink::Npy(f) => f.finish(),
        },
    };
    Outcome { file, limit, drained }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many blocks through a real writer: the file holds every sample, in order, and no more
    /// than `BLOCKS` blocks were ever made.
    #[test]
    fn every_sample_is_written_through_a_bounded_pool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.npy");
        let plan = Plan { dt: 0.025, tstop: 1.0, record_dt: None };
        let mut traces = Traces::start(&path, TraceFormat::Npy, &["t", "a", "b"], u64::MAX, plan).unwrap();
        let n = 50 * traces.block_len / 3 + 7;
        for i in 0..n {
            let x = i as f64;
            traces.push(x, [x + 0.5, -x].into_iter());
            assert!(traces.made <= BLOCKS);
        }
        assert_eq!(traces.must_end(), None);
        let finished = traces.finish();
        let written = finished.file.unwrap();
        assert!(finished.limit.is_none());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(written.bytes, bytes.len() as u64);
        assert_eq!(&bytes[..crate::output::NPY_HEADER], &crate::output::npy_header(n as u64, 3));
        let values: Vec<f64> = bytes[crate::output::NPY_HEADER..].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        let want: Vec<f64> = (0..n).flat_map(|i| [i as f64, i as f64 + 0.5, -(i as f64)]).collect();
        assert_eq!(values, want);
    }

    /// A mark, more samples (over several blocks), a truncation back to the mark, other
    /// samples: the file holds the samples before the mark, then the others, and its digest
    /// and length are those of the file on disk. Both formats.
    #[test]
    fn truncating_to_a_mark_forgets_what_came_after() {
        use sha2::{Digest, Sha256};
        for format in [TraceFormat::Csv, TraceFormat::Npy] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(format.file_name());
            let plan = Plan { dt: 0.025, tstop: 1.0, record_dt: None };
            let mut traces = Traces::start(&path, format, &["t", "a"], u64::MAX, plan).unwrap();
            let many = 3 * traces.block_len;
            for i in 0..100 {
                traces.push(i as f64, [0.5].into_iter());
            }
            traces.mark(7);
            for i in 0..many {
                traces.push(-(i as f64), [1.5].into_iter());
            }
            traces.mark(8);
            traces.truncate(7);
            for i in 100..150 {
                traces.push(i as f64, [0.5].into_iter());
            }
            traces.forget(8);
            let written = traces.finish().file.unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(written.bytes, bytes.len() as u64);
            assert_eq!(written.sha256, format!("{:x}", Sha256::digest(&bytes)));
            let rows: Vec<(f64, f64)> = match format {
                TraceFormat::Csv => String::from_utf8(bytes).unwrap().lines().skip(1).map(|l| {
                    let (a, b) = l.split_once(',').unwrap();
                    (a.parse().unwrap(), b.parse().unwrap())
                }).collect(),
                TraceFormat::Npy => {
                    assert_eq!(&bytes[..crate::output::NPY_HEADER], &crate::output::npy_header(150, 2));
                    bytes[crate::output::NPY_HEADER..].chunks_exact(16).map(|c| {
                        (f64::from_le_bytes(c[..8].try_into().unwrap()), f64::from_le_bytes(c[8..].try_into().unwrap()))
                    }).collect()
                }
            };
            let want: Vec<(f64, f64)> = (0..150).map(|i| (i as f64, 0.5)).collect();
            assert_eq!(rows, want, "{format:?}");
        }
    }

    /// Dropped without `finish` (a start-up error after the file was made): the file stays
    /// `.partial`.
    #[test]
    fn an_unfinished_run_leaves_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("traces.csv");
        let plan = Plan { dt: 0.025, tstop: 1.0, record_dt: None };
        let mut traces = Traces::start(&path, TraceFormat::Csv, &["t"], u64::MAX, plan).unwrap();
        traces.push(0.0, std::iter::empty());
        drop(traces);
        assert!(!path.exists());
        assert!(dir.path().join("traces.csv.partial").exists());
    }
}
