//! Development timing of the traces writer alone (no simulation): 1.6 million rows of t and a
//! voltage-like signal through `CsvFile::rows` (formatting, digest, file), and the formatting
//! alone (`Numbers::push`; and with ryu, which wrote these files before), in ns per row. The writer thread must keep up with the stepping
//! thread, which makes a one-cell row every ~75 ns.
//!
//!     cargo run --release -p spikebus-app --example csvbench [-- OUT.csv]

use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| std::env::temp_dir().join("csvbench.csv").to_string_lossy().into_owned());
    let n = 1_600_000usize;
    let mut values = Vec::with_capacity(2 * n);
    let mut t = 0.0f64;
    for i in 0..n {
        values.push(t);
        values.push(-65.0 + 30.0 * (i as f64 * 0.001).sin() + 1e-9 * i as f64);
        t = (t + 0.0125) + 0.0125;
    }
    let mut f = spikebus_app::output::CsvFile::create(std::path::Path::new(&path), &["t", "soma.v"]).unwrap();
    let t0 = Instant::now();
    for block in values.chunks(8192) {
        f.rows(block, 2, u64::MAX).unwrap();
    }
    let rows = t0.elapsed().as_secs_f64();
    let written = f.finish().unwrap();
    let mut num = spikebus_app::output::Numbers::new();
    let mut text = Vec::with_capacity(1 << 20);
    let t0 = Instant::now();
    for row in values.chunks(2) {
        for &x in row {
            num.push(&mut text, x);
            text.push(b',');
        }
        if text.len() > 1 << 19 {
            text.clear();
        }
    }
    let push = t0.elapsed().as_secs_f64();
    // The same numbers through ryu, which wrote these files before (a dev-dependency).
    let mut ryu = ryu::Buffer::new();
    text.clear();
    let t0 = Instant::now();
    for row in values.chunks(2) {
        for &x in row {
            let s = ryu.format_finite(x);
            text.extend_from_slice(s.strip_suffix(".0").unwrap_or(s).as_bytes());
            text.push(b',');
        }
        if text.len() > 1 << 19 {
            text.clear();
        }
    }
    let ryu_push = t0.elapsed().as_secs_f64();
    std::fs::remove_file(&written.path).ok();
    let per = |s: f64| s * 1e9 / n as f64;
    println!(
        "CsvFile::rows {:.1} ns/row ({} bytes); formatting alone {:.1} ns/row (with ryu: {:.1})",
        per(rows),
        written.bytes,
        per(push),
        per(ryu_push)
    );
}
