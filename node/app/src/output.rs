//! Output files. Every number is written in the shortest form that parses back to the same
//! f64 (`Numbers`), so a trace read from disk is bit for bit the simulated one; `.npy` holds
//! the doubles themselves. Files are written under a temporary name in the same directory and
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

/// Bytes of text a `CsvFile` collects before it hands them to the file (one write, one
/// digest update).
const CSV_CHUNK: usize = 128 << 10;

/// A CSV file being written: `name.partial` until `finish` renames it to `name`.
pub struct CsvFile {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<Digesting<File>>,
    num: Numbers,
    /// Bytes handed to the file so far (those in `text` included).
    written: u64,
    /// Rows formatted and not yet handed to the file: formatted in place here, so that a row
    /// costs no copy and no call of the writer (a one-cell run makes a row every 75 ns).
    text: Vec<u8>,
}

impl CsvFile {
    pub fn create(path: &Path, header: &[&str]) -> Result<Self, AppError> {
        let (tmp, out) = create_partial(path)?;
        let mut text = Vec::with_capacity(CSV_CHUNK + 4096);
        text.extend_from_slice(header.join(",").as_bytes());
        text.push(b'\n');
        Ok(CsvFile { tmp, path: path.to_path_buf(), out, num: Numbers::new(), written: text.len() as u64, text })
    }

    /// Hands the text so far to the file once there is a chunk of it (`all`: whatever there
    /// is).
    fn hand_over(&mut self, all: bool) -> Result<(), AppError> {
        if self.text.len() >= CSV_CHUNK || (all && !self.text.is_empty()) {
            let r = self.out.write_all(&self.text);
            self.text.clear();
            // The error's path is made only on error.
            r.map_err(|source| AppError::Write { path: self.tmp.clone(), source })?;
        }
        Ok(())
    }

    /// One row: an optional leading text field, then numbers.
    pub fn row(&mut self, label: Option<&str>, values: impl IntoIterator<Item = f64>) -> Result<(), AppError> {
        let start = self.text.len();
        if let Some(l) = label {
            self.text.extend_from_slice(l.as_bytes());
            self.text.push(b',');
        }
        for v in values {
            self.num.push(&mut self.text, v);
            self.text.push(b',');
        }
        if self.text.len() > start {
            self.text.pop();
        }
        self.text.push(b'\n');
        self.written += (self.text.len() - start) as u64;
        self.hand_over(false)
    }

    /// Rows of numbers, `width` per row, as long as the file stays within `max_bytes`; false
    /// when a row did not fit (it and the rest are not written).
    pub fn rows(&mut self, values: &[f64], width: usize, max_bytes: u64) -> Result<bool, AppError> {
        for row in values.chunks_exact(width) {
            let start = self.text.len();
            for &v in row {
                self.num.push(&mut self.text, v);
                self.text.push(b',');
            }
            *self.text.last_mut().expect("a row has a value") = b'\n';
            let len = (self.text.len() - start) as u64;
            if self.written + len > max_bytes {
                self.text.truncate(start);
                return Ok(false);
            }
            self.written += len;
            self.hand_over(false)?;
        }
        Ok(true)
    }

    /// Flushes, syncs and renames to the final name.
    pub fn finish(mut self) -> Result<Written, AppError> {
        self.hand_over(true)?;
        complete(&self.tmp, self.path, self.out)
    }

    /// Where the file is now (flushed).
    pub fn mark(&mut self) -> Result<Mark, AppError> {
        self.hand_over(true)?;
        mark_of(&mut self.out, 0).map_err(write_error(&self.tmp))
    }

    /// Back to `m`: the rows written since are gone.
    pub fn truncate(&mut self, m: &Mark) -> Result<(), AppError> {
        self.text.clear();
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

/// The shortest text that parses back to the same double: `-65`, `0.1`,
/// `3.850000000100021`, `1e-7`, `1.5e21`, `NaN`, `inf`. The digits are zmij's (the
/// shortest, correctly rounded; on a trace's numbers 33 ns per row of t and v against ryu's
/// 42, `examples/csvbench.rs`: formatting is half the writer thread's work, and a one-cell
/// run makes a row every 75 ns); the notation is the one these files have always had, ryu's (an exponent without
/// `+`, an integer without `.0`): `numbers_read_as_ryu_wrote_them` checks it against ryu.
pub struct Numbers(zmij::Buffer);

impl Default for Numbers {
    fn default() -> Self {
        Numbers::new()
    }
}

impl Numbers {
    pub fn new() -> Numbers {
        Numbers(zmij::Buffer::new())
    }

    /// Appends the text of `v` to `out`.
    #[inline]
    pub fn push(&mut self, out: &mut Vec<u8>, v: f64) {
        if !v.is_finite() {
            out.extend_from_slice(if v.is_nan() { b"NaN" } else if v > 0.0 { b"inf" } else { b"-inf" });
            return;
        }
        let s = self.0.format_finite(v).as_bytes();
        let s = s.strip_suffix(b".0").unwrap_or(s);
        // zmij writes a positive exponent with a sign (`1e+21`), ryu without: a `+` can only
        // be among the last five bytes (`e+308`), and only those are searched (a search of
        // the whole text took as long as the formatting).
        let tail = s.len().saturating_sub(5);
        match s[tail..].iter().position(|&c| c == b'+').map(|p| tail + p) {
            None => out.extend_from_slice(s),
            Some(p) => {
                out.extend_from_slice(&s[..p]);
                out.extend_from_slice(&s[p + 1..]);
            }
        }
    }
}

/// The text of one double (see `Numbers`).
pub fn format_f64(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    Numbers::new().push(&mut out, v);
    String::from_utf8(out).expect("a number's text is ASCII")
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

#[cfg(test)]
mod tests {
    use super::{format_f64, Numbers};

    /// The text ryu gave, which these files were written with before zmij.
    fn ryu_text(v: f64) -> String {
        if !v.is_finite() {
            return (if v.is_nan() { "NaN" } else if v > 0.0 { "inf" } else { "-inf" }).to_string();
        }
        let mut b = ryu::Buffer::new();
        let s = b.format_finite(v);
        s.strip_suffix(".0").unwrap_or(s).to_string()
    }

    /// Every notation (integers, decimals, both exponent signs, subnormals, the extremes,
    /// signed zeros) at every power of ten and one unit in the last place around it, random
    /// bit patterns, and numbers like a trace's: the same text as ryu's, and each parses back
    /// to the same double.
    #[test]
    fn numbers_read_as_ryu_wrote_them() {
        let mut num = Numbers::new();
        let mut out = Vec::new();
        let mut check = |v: f64| {
            out.clear();
            num.push(&mut out, v);
            let got = std::str::from_utf8(&out).unwrap();
            assert_eq!(got, ryu_text(v), "{v:e}");
            if v.is_finite() {
                assert_eq!(got.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{got}");
            }
        };
        for v in [0.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, f64::MIN_POSITIVE, 5e-324, f64::MAX, f64::MIN] {
            check(v);
        }
        for k in -324..=308 {
            for m in ["1", "1.5", "2.5", "9.999999999999999", "1.2345678901234567"] {
                let x: f64 = format!("{m}e{k}").parse().unwrap();
                for v in [x, f64::from_bits(x.to_bits() + 1), f64::from_bits(x.to_bits().saturating_sub(1))] {
                    check(v);
                    check(-v);
                }
            }
        }
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..2_000_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            check(f64::from_bits(s));
        }
        let mut t = 0.0f64;
        for i in 0..200_000 {
            check(t);
            check(-65.0 + i as f64 * 1.1e-4);
            t = (t + 0.0125) + 0.0125;
        }
        assert_eq!(format_f64(-65.0), "-65");
        assert_eq!(format_f64(1e21), "1e21");
    }
}
