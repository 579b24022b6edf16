//! A free run: initialize, step to tstop, record every sample of the model's signals into
//! `traces.csv` and every spike into `spikes.csv`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use spikebus_engine::{Sim, Spike};

use crate::error::AppError;
use crate::output::{create_dir, CsvFile};

pub struct RunOptions {
    pub out_dir: PathBuf,
    /// Show a progress bar (only sensible on a terminal).
    pub progress: bool,
}

#[derive(Debug)]
pub struct RunSummary {
    pub steps: u64,
    pub t: f64,
    /// Spike counts per source, in source order.
    pub spikes: Vec<(String, usize)>,
    /// Wall time of initialization and stepping, without parsing or file set-up.
    pub sim_seconds: f64,
    pub traces_path: PathBuf,
    pub spikes_path: PathBuf,
    /// True when `stop` ended the run before tstop.
    pub stopped: bool,
}

/// Runs `sim` from initialization to tstop (or until `stop` is raised, checked every step).
pub fn free_run(mut sim: Sim, opts: &RunOptions, stop: &AtomicBool) -> Result<RunSummary, AppError> {
    create_dir(&opts.out_dir)?;
    let names = sim.model().record.clone();
    let refs = names.iter().map(|n| sim.signal(n)).collect::<Result<Vec<_>, _>>()?;
    let mut header = vec!["t"];
    header.extend(names.iter().map(String::as_str));
    let mut traces = CsvFile::create(&opts.out_dir.join("traces.csv"), &header)?;

    let bar = if opts.progress {
        let bar = indicatif::ProgressBar::new(sim.planned_steps());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  t={msg} ms  {elapsed}<{eta}")
                .expect("valid template"),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };

    let mut write_error: Option<AppError> = None;
    let mut sample = |s: &Sim| {
        if write_error.is_none() {
            let row = std::iter::once(s.t()).chain(refs.iter().map(|r| s.value(*r)));
            if let Err(e) = traces.row(None, row) {
                write_error = Some(e);
            }
        }
    };
    let mut spikes: Vec<Spike> = Vec::with_capacity(1024);
    let started = Instant::now();
    sim.initialize(&mut sample);
    let mut stopped = false;
    while sim.running() {
        if stop.load(Ordering::Relaxed) {
            stopped = true;
            break;
        }
        sim.step(&mut sample);
        sim.take_spikes(&mut spikes);
        if sim.step_index() % 1024 == 0 {
            bar.set_position(sim.step_index());
            bar.set_message(format!("{:.1}", sim.t()));
        }
    }
    let sim_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e);
    }
    let traces_path = traces.finish()?;

    // Spikes are found in step order; a stable sort puts them in time order across sources.
    spikes.sort_by(|a, b| a.t.total_cmp(&b.t));
    let sources = sim.source_names();
    let mut file = CsvFile::create(&opts.out_dir.join("spikes.csv"), &["source", "t"])?;
    let mut counts = vec![0usize; sources.len()];
    for s in &spikes {
        counts[s.source as usize] += 1;
        file.row(Some(sources[s.source as usize]), [s.t])?;
    }
    let spikes_path = file.finish()?;
    Ok(RunSummary {
        steps: sim.step_index(),
        t: sim.t(),
        spikes: sources.iter().map(|s| s.to_string()).zip(counts).collect(),
        sim_seconds,
        traces_path,
        spikes_path,
        stopped,
    })
}
