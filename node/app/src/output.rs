//! Output files. Every number is written in the shortest form that parses back to the same
//! f64 (ryu), so a trace read from disk is bit for bit the simulated one. Files are written
//! under a temporary name in the same directory and renamed when complete, so a reader never
//! sees a torn file; their SHA-256 is computed as they are written, for the run's manifest.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::AppError;

/// A file written completely: where, how long, its SHA-256 (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// A writer that digests what goes through it.
struct Digesting<W> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A CSV file being written: `name.partial` until `finish` renames it to `name`.
pub struct CsvFile {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<Digesting<File>>,
    num: ryu::Buffer,
}

impl CsvFile {
    pub fn create(path: &Path, header: &[&str]) -> Result<Self, AppError> {
        let tmp = path.with_extension("csv.partial");
        let file = File::create(&tmp).map_err(|source| AppError::Write { path: tmp.clone(), source })?;
        let file = Digesting { inner: file, sha: Sha256::new(), bytes: 0 };
        let mut f = CsvFile { tmp, path: path.to_path_buf(), out: BufWriter::with_capacity(1 << 16, file), num: ryu::Buffer::new() };
        let line = header.join(",");
        f.write_raw(line.as_bytes())?;
        f.write_raw(b"\n")?;
        Ok(f)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), AppError> {
        self.out.write_all(bytes).map_err(|source| AppError::Write { path: self.tmp.clone(), source })
    }

    /// One row: an optional leading text field, then numbers.
    pub fn row(&mut self, label: Option<&str>, values: impl IntoIterator<Item = f64>) -> Result<(), AppError> {
        let mut first = true;
        if let Some(l) = label {
            self.write_raw(l.as_bytes())?;
            first = false;
        }
        for v in values {
            if !first {
                self.write_raw(b",")?;
            }
            first = false;
            let s = format_f64(&mut self.num, v);
            self.out.write_all(s.as_bytes()).map_err(|source| AppError::Write { path: self.tmp.clone(), source })?;
        }
        self.write_raw(b"\n")
    }

    /// Bytes written so far (those still in the buffer not counted).
    pub fn bytes(&self) -> u64 {
        self.out.get_ref().bytes
    }

    /// Flushes, syncs and renames to the final name.
    pub fn finish(mut self) -> Result<Written, AppError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AppError::Write { path, source }
        };
        self.out.flush().map_err(err(&self.tmp))?;
        let file = self.out.into_inner().map_err(|e| AppError::Write { path: self.tmp.clone(), source: e.into_error() })?;
        file.inner.sync_all().map_err(err(&self.tmp))?;
        fs::rename(&self.tmp, &self.path).map_err(err(&self.path))?;
        Ok(Written { path: self.path, bytes: file.bytes, sha256: format!("{:x}", file.sha.finalize()) })
    }
}

/// Shortest round-trip text of a double (`-65`, `0.1`, `3.850000000100021`, `NaN`).
pub fn format_f64(buf: &mut ryu::Buffer, v: f64) -> &str {
    if v.is_finite() {
        let s = buf.format_finite(v);
        s.strip_suffix(".0").unwrap_or(s)
    } else if v.is_nan() {
        "NaN"
    } else if v > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

pub fn create_dir(dir: &Path) -> Result<(), AppError> {
    fs::create_dir_all(dir).map_err(|source| AppError::Write { path: dir.to_path_buf(), source })
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), AppError> {
    let tmp = path.with_extension("json.partial");
    let err = |p: &Path| {
        let p = p.to_path_buf();
        move |source| AppError::Write { path: p, source }
    };
    let mut f = File::create(&tmp).map_err(err(&tmp))?;
    f.write_all(bytes).map_err(err(&tmp))?;
    f.sync_all().map_err(err(&tmp))?;
    fs::rename(&tmp, path).map_err(err(path))
}

/// The outputs of a run in `dir`, removed before a new run writes there, so that files of an
/// earlier run never stand beside this one's.
pub const OUTPUTS: [&str; 3] = ["manifest.json", "traces.csv", "spikes.csv"];

/// Removes an earlier run's outputs (and their `.partial` leftovers) from `dir`.
pub fn clear_outputs(dir: &Path) -> Result<(), AppError> {
    for name in OUTPUTS {
        let path = dir.join(name);
        let partial = dir.join(format!("{name}.partial"));
        for p in [partial, path] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(AppError::Write { path: p, source }),
            }
        }
    }
    Ok(())
}
