//! Output files. Every number is written in the shortest form that parses back to the same
//! f64 (ryu), so a trace read from disk is bit for bit the simulated one; `.npy` holds the
//! doubles themselves. Files are written under a temporary name in the same directory and
//! renamed when complete, so a reader never sees a torn file; their SHA-256 is computed as
//! they are written, for the run's manifest.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
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
#[derive(Clone)]
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

/// `name.partial`: where a file is written until it is complete.
fn partial(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

fn write_error(path: &Path) -> impl FnOnce(std::io::Error) -> AppError {
    let path = path.to_path_buf();
    move |source| AppError::Write { path, source }
}

/// Creates `name.partial`, digesting what is written to it.
fn create_partial(path: &Path) -> Result<(PathBuf, BufWriter<Digesting<File>>), AppError> {
    let tmp = partial(path);
    // Readable too: a `.npy` file whose header changed is read back for its digest.
    let file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&tmp).map_err(write_error(&tmp))?;
    Ok((tmp, BufWriter::with_capacity(1 << 16, Digesting { inner: file, sha: Sha256::new(), bytes: 0 })))
}

/// Flushes, syncs and renames `tmp` to `path`; the file's digest is `sha`.
fn complete(tmp: &Path, path: PathBuf, out: BufWriter<Digesting<File>>) -> Result<Written, AppError> {
    let file = out.into_inner().map_err(|e| AppError::Write { path: tmp.to_path_buf(), source: e.into_error() })?;
    file.inner.sync_all().map_err(write_error(tmp))?;
    fs::rename(tmp, &path).map_err(write_error(&path))?;
    Ok(Written { path, bytes: file.bytes, sha256: format!("{:x}", file.sha.finalize()) })
}

/// Where a file being written was: its length, the digest of those bytes, and the rows
/// written (`Mark`s let a run that goes back to a snapshot cut its file back: `truncate`).
#[derive(Clone)]
pub struct Mark {
    bytes: u64,
    sha: Sha256,
    rows: u64,
}

/// Flushes `out` and notes where the file is.
fn mark_of(out: &mut BufWriter<Digesting<File>>, rows: u64) -> std::io::Result<Mark> {
    out.flush()?;
    let d = out.get_ref();
    Ok(Mark { bytes: d.bytes, sha: d.sha.clone(), rows })
}

/// Cuts the file back to `m` (what was written after it is gone, digest included).
fn truncate_to(out: &mut BufWriter<Digesting<File>>, m: &Mark) -> std::io::Result<()> {
    out.flush()?;
    let d = out.get_mut();
    d.inner.set_len(m.bytes)?;
    d.inner.seek(SeekFrom::Start(m.bytes))?;
    d.bytes = m.bytes;
    d.sha = m.sha.clone();
    Ok(())
}

/// A CSV file being written: `name.partial` until `finish` renames it to `name`.
pub struct CsvFile {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<Digesting<File>>,
    num: ryu::Buffer,
    /// Bytes handed to the file so far (buffered ones included).
    written: u64,
    line: Vec<u8>,
}

impl CsvFile {
    pub fn create(path: &Path, header: &[&str]) -> Result<Self, AppError> {
        let (tmp, out) = create_partial(path)?;
        let mut f = CsvFile { tmp, path: path.to_path_buf(), out, num: ryu::Buffer::new(), written: 0, line: vec![] };
        let line = header.join(",");
        f.write_raw(line.as_bytes())?;
        f.write_raw(b"\n")?;
        Ok(f)
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), AppError> {
        self.written += bytes.len() as u64;
        // The error's path is made only on error: this runs for every row.
        self.out.write_all(bytes).map_err(|source| AppError::Write { path: self.tmp.clone(), source })
    }

    /// One row: an optional leading text field, then numbers.
    pub fn row(&mut self, label: Option<&str>, values: impl IntoIterator<Item = f64>) -> Result<(), AppError> {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        if let Some(l) = label {
            line.extend_from_slice(l.as_bytes());
            line.push(b',');
        }
        for v in values {
            line.extend_from_slice(format_f64(&mut self.num, v).as_bytes());
            line.push(b',');
        }
        line.pop();
        line.push(b'\n');
        let r = self.write_raw(&line);
        self.line = line;
        r
    }

    /// Rows of numbers, `width` per row, as long as the file stays within `max_bytes`; false
    /// when a row did not fit (it and the rest are not written).
    pub fn rows(&mut self, values: &[f64], width: usize, max_bytes: u64) -> Result<bool, AppError> {
        let mut line = std::mem::take(&mut self.line);
        let mut fits = true;
        for row in values.chunks_exact(width) {
            line.clear();
            for &v in row {
                line.extend_from_slice(format_f64(&mut self.num, v).as_bytes());
                line.push(b',');
            }
            *line.last_mut().expect("a row has a value") = b'\n';
            if self.written + line.len() as u64 > max_bytes {
                fits = false;
                break;
            }
            if let Err(e) = self.write_raw(&line) {
                self.line = line;
                return Err(e);
            }
        }
        self.line = line;
        Ok(fits)
    }

    /// Flushes, syncs and renames to the final name.
    pub fn finish(self) -> Result<Written, AppError> {
        complete(&self.tmp, self.path, self.out)
    }

    /// Where the file is now (flushed).
    pub fn mark(&mut self) -> Result<Mark, AppError> {
        mark_of(&mut self.out, 0).map_err(write_error(&self.tmp))
    }

    /// Back to `m`: the rows written since are gone.
    pub fn truncate(&mut self, m: &Mark) -> Result<(), AppError> {
        truncate_to(&mut self.out, m).map_err(write_error(&self.tmp))?;
        self.written = m.bytes;
        Ok(())
    }
}

/// The `.npy` header's length: magic, version, header length and a dict padded to a fixed
/// size, so that the shape can be written again at the end, whatever its digits. A multiple
/// of 64, as NumPy aligns its data.
pub const NPY_HEADER: usize = 128;

/// The `.npy` header (format version 1.0) of a C-order little-endian float64 array.
pub fn npy_header(rows: u64, columns: usize) -> [u8; NPY_HEADER] {
    let dict = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {columns}), }}");
    let mut h = [b' '; NPY_HEADER];
    h[..6].copy_from_slice(b"\x93NUMPY");
    h[6] = 1;
    h[7] = 0;
    h[8..10].copy_from_slice(&((NPY_HEADER - 10) as u16).to_le_bytes());
    assert!(10 + dict.len() < NPY_HEADER, "the npy header fits: {dict}");
    h[10..10 + dict.len()].copy_from_slice(dict.as_bytes());
    h[NPY_HEADER - 1] = b'\n';
    h
}

/// A NumPy `.npy` file of float64 rows (C order, little-endian), written as `name.partial`
/// until `finish` renames it. Its header holds the number of rows, known only at the end:
/// `begin` writes the header of the rows expected, and `finish` rewrites it (and reads the
/// file back for its SHA-256) only when the run recorded another number of rows.
pub struct NpyFile {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<Digesting<File>>,
    columns: usize,
    rows: u64,
    /// The rows the header written by `begin` says.
    header_rows: u64,
    bytes: Vec<u8>,
}

impl NpyFile {
    /// Creates `name.partial` (nothing written yet).
    pub fn create(path: &Path, columns: usize) -> Result<Self, AppError> {
        let (tmp, out) = create_partial(path)?;
        Ok(NpyFile { tmp, path: path.to_path_buf(), out, columns, rows: 0, header_rows: 0, bytes: vec![] })
    }

    /// Writes the header for `expected` rows (0 when unknown).
    pub fn begin(&mut self, expected: Option<u64>) -> Result<(), AppError> {
        self.header_rows = expected.unwrap_or(0);
        let header = npy_header(self.header_rows, self.columns);
        self.out.write_all(&header).map_err(write_error(&self.tmp))
    }

    /// Bytes of the file with the rows so far.
    fn len(&self) -> u64 {
        NPY_HEADER as u64 + self.rows * self.columns as u64 * 8
    }

    /// Rows of `columns` values, as long as the file stays within `max_bytes`; false when a
    /// row did not fit (it and the rest are not written).
    pub fn rows(&mut self, values: &[f64], max_bytes: u64) -> Result<bool, AppError> {
        let row_bytes = self.columns as u64 * 8;
        let room = max_bytes.saturating_sub(self.len()) / row_bytes;
        let n = (values.len() / self.columns).min(usize::try_from(room).unwrap_or(usize::MAX));
        self.bytes.clear();
        for v in &values[..n * self.columns] {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.out.write_all(&self.bytes).map_err(|source| AppError::Write { path: self.tmp.clone(), source })?;
        self.rows += n as u64;
        Ok(n * self.columns == values.len())
    }

    /// Where the file is now (flushed).
    pub fn mark(&mut self) -> Result<Mark, AppError> {
        mark_of(&mut self.out, self.rows).map_err(write_error(&self.tmp))
    }

    /// Back to `m`: the rows written since are gone.
    pub fn truncate(&mut self, m: &Mark) -> Result<(), AppError> {
        truncate_to(&mut self.out, m).map_err(write_error(&self.tmp))?;
        self.rows = m.rows;
        Ok(())
    }

    /// Flushes, syncs and renames to the final name, with the header's shape made right.
    pub fn finish(self) -> Result<Written, AppError> {
        if self.rows == self.header_rows {
            return complete(&self.tmp, self.path, self.out);
        }
        let tmp = self.tmp;
        let err = |source| AppError::Write { path: tmp.clone(), source };
        let mut file = self.out.into_inner().map_err(|e| AppError::Write { path: tmp.clone(), source: e.into_error() })?.inner;
        file.seek(SeekFrom::Start(0)).map_err(err)?;
        file.write_all(&npy_header(self.rows, self.columns)).map_err(err)?;
        file.sync_all().map_err(err)?;
        // The header changed after the digest began: digest the file again, as it is on disk.
        file.seek(SeekFrom::Start(0)).map_err(err)?;
        let (mut sha, mut bytes, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 20]);
        loop {
            let n = file.read(&mut buf).map_err(err)?;
            if n == 0 {
                break;
            }
            sha.update(&buf[..n]);
            bytes += n as u64;
        }
        fs::rename(&tmp, &self.path).map_err(write_error(&self.path))?;
        Ok(Written { path: self.path, bytes, sha256: format!("{:x}", sha.finalize()) })
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
pub const OUTPUTS: [&str; 4] = ["manifest.json", "traces.csv", "traces.npy", "spikes.csv"];

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
