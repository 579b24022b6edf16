//! The command line: `spikebus run`, `spikebus check`, `spikebus params`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use clap::{Parser, Subcommand};
use spikebus_engine::{parse_model, Model, Sim};

use crate::error::AppError;
use crate::run::{free_run, RunOptions};

#[derive(Parser)]
#[command(name = "spikebus", version, about = "NEURON-exact fixed-step simulation, steerable over a message bus")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model to tstop and write DIR/traces.csv and DIR/spikes.csv.
    Run {
        /// Model file (TOML); without it, the built-in seed model (models/seed.toml).
        model: Option<PathBuf>,
        /// Override a parameter, e.g. --set soma.gnabar_hh=0.1 --set tstop=100 (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        sets: Vec<String>,
        /// Record these signals instead of the model's [record] list (comma-separated).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        record: Option<Vec<String>>,
        /// Output directory (created if missing).
        #[arg(long, value_name = "DIR", default_value = "out")]
        out: PathBuf,
    },
    /// Check a model file and print a summary; exit 2 with the problem if it is invalid.
    Check {
        model: PathBuf,
    },
    /// List the parameters of a model (name, unit, value, writable while running).
    Params {
        model: Option<PathBuf>,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        sets: Vec<String>,
    },
}

/// Loads a model file, or the built-in seed model, and applies `--set` overrides in order.
pub fn load_model(path: Option<&Path>, sets: &[String]) -> Result<Model, AppError> {
    let mut model = match path {
        None => Model::seed(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| AppError::ReadModel { path: p.to_path_buf(), source })?;
            parse_model(&text, &p.display().to_string())?
        }
    };
    for s in sets {
        let (name, value) = parse_set(s)?;
        model.set(name, value)?;
    }
    Ok(model)
}

/// `NAME=VALUE` to its parts.
pub fn parse_set(s: &str) -> Result<(&str, f64), AppError> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| AppError::Usage(format!("--set {s}: expected NAME=VALUE, e.g. --set soma.gnabar_hh=0.1")))?;
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| AppError::Usage(format!("--set {s}: `{value}` is not a number")))?;
    Ok((name.trim(), v))
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spikebus: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn dispatch(command: Command) -> Result<(), AppError> {
    match command {
        Command::Run { model, sets, record, out } => {
            let mut model = load_model(model.as_deref(), &sets)?;
            if let Some(names) = record {
                model.record = names.into_iter().filter(|n| !n.is_empty()).collect();
            }
            let sim = Sim::new(model)?;
            let progress = std::io::stderr().is_terminal();
            let stop = AtomicBool::new(false);
            let summary = free_run(sim, &RunOptions { out_dir: out, progress }, &stop)?;
            let counts: Vec<String> = summary.spikes.iter().map(|(s, n)| format!("{s} {n}")).collect();
            println!(
                "spikebus: {} steps to t={} in {:.3} s; spikes: {}; wrote {} and {}",
                summary.steps,
                summary.t,
                summary.sim_seconds,
                if counts.is_empty() { "none".to_string() } else { counts.join(", ") },
                summary.traces_path.display(),
                summary.spikes_path.display()
            );
            Ok(())
        }
        Command::Check { model } => {
            let m = load_model(Some(&model), &[])?;
            Sim::new(m.clone())?;
            println!(
                "{}: ok ({} sections, {} point processes, {} artificial cells, {} NetCons, {} recorded signals)",
                model.display(),
                m.sections.len(),
                m.points.len(),
                m.cells.len(),
                m.netcons.len(),
                m.record.len()
            );
            Ok(())
        }
        Command::Params { model, sets } => {
            let m = load_model(model.as_deref(), &sets)?;
            let mut buf = ryu::Buffer::new();
            println!("{:<24} {:>22} {:<8} {}", "name", "value", "unit", "at run time");
            for p in m.params() {
                let v = crate::output::format_f64(&mut buf, p.value).to_string();
                let rt = if p.runtime { "writable" } else { "model only" };
                println!("{:<24} {:>22} {:<8} {}", p.name, v, p.unit, rt);
            }
            Ok(())
        }
    }
}
