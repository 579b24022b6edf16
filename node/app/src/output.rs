//! Output files. Every number is written in the shortest form that parses back to the same
//! f64 (ryu), so a trace read from disk is bit for bit the simulated one. Files are written
//! under a temporary name in the same directory and renamed when complete, so a reader never
//! sees a torn file.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::AppError;

/// A CSV file being written: `name.partial` until `finish` renames it to `name`.
pub struct CsvFile {
    tmp: PathBuf,
    path: PathBuf,
    out: BufWriter<File>,
    num: ryu::Buffer,
}

impl CsvFile {
    pub fn create(path: &Path, header: &[&str]) -> Result<Self, AppError> {
        let tmp = path.with_extension("csv.partial");
        let file = File::create(&tmp).map_err(|source| AppError::Write { path: tmp.clone(), source })?;
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

    /// Flushes, syncs and renames to the final name.
    pub fn finish(mut self) -> Result<PathBuf, AppError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| AppError::Write { path, source }
        };
        self.out.flush().map_err(err(&self.tmp))?;
        self.out.get_ref().sync_all().map_err(err(&self.tmp))?;
        fs::rename(&self.tmp, &self.path).map_err(err(&self.path))?;
        Ok(self.path)
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
