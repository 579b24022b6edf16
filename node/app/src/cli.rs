//! The command line: `spikebus run`, `spikebus check`, `spikebus params`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spikebus_engine::{parse_model_with, Limits, Model, Sim};
use spikebus_protocol as proto;

use std::io::Write as _;

use crate::bus::{check_endpoint, check_not_in_use, Bus, Credentials, ZmqControl};
use crate::unix::{self, UnixControl};
use crate::lockstep::{controlled_run, ControlOptions, TimeoutPolicy, Watch};
use crate::record::DtClock;
use crate::control_log::{self, ControlLog, LogHeader, LogLimits};
use crate::replay::{replay, ReplayOptions};
use crate::snapshot::{self, LockState, ModelSource};
use crate::signals::Stop;
use crate::error::AppError;
use crate::helics::{self, helics_run};
use crate::run::{free_run, RunOptions, RunSummary, Session};
use crate::traces::TraceFormat;

#[derive(Parser)]
#[command(name = "spikebus", version, about = "NEURON-exact fixed-step simulation, steerable over a message bus")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model to tstop and write DIR/traces.csv (or .npy) and DIR/spikes.csv.
    Run {
        /// Model file (TOML); without it, the built-in seed model (models/seed.toml).
        model: Option<PathBuf>,
        /// Override a parameter, e.g. --set soma.gnabar_hh=0.1 --set tstop=100 (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        sets: Vec<String>,
        /// Record these signals instead of the model's [record] list (comma-separated).
        #[arg(long, value_name = "NAMES", value_delimiter = ',')]
        record: Option<Vec<String>>,
        /// Record at t = 0, DT, 2 DT, ... ms (NEURON's Vector.record(&x, DT)) instead of after
        /// every step; overrides the model's [record] dt.
        #[arg(long, value_name = "DT")]
        record_dt: Option<f64>,
        /// The traces file: csv (traces.csv) or npy (traces.npy, a NumPy float64 array).
        #[arg(long, value_enum, default_value = "csv")]
        format: TraceFormat,
        /// Output directory (created if missing); /dev/null: write no files.
        #[arg(long, value_name = "DIR", default_value = "out")]
        out: PathBuf,
        /// Threads that run the steps (the results are the same, bit for bit, for every
        /// number); at most 256. A model of fewer than 512 nodes steps on one (faster; said
        /// on stderr; SPIKEBUS_PARALLEL_MIN_WORK=N moves the bound, 0: always N threads).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        /// Start from a snapshot file (written by `export`): its model, its state, its sync
        /// point; another node that goes on from there (a fork). No MODEL or --set with it.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["model", "sets"])]
        from_snapshot: Option<PathBuf>,
        #[command(flatten)]
        bus: Box<BusArgs>,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run a session recorded with --control-log again, without a controller: the same
    /// requests at the same sync points, the state hash compared with the log's at every
    /// logged step; writes DIR's files as the session did. Exit 7 naming the first step whose
    /// state differs (a `diverged` run), 0 when the replay agrees to the end.
    Replay {
        /// The control log (JSON Lines, docs/snapshots.md).
        log: PathBuf,
        /// Output directory (created if missing); /dev/null: write no files.
        #[arg(long, value_name = "DIR", default_value = "out")]
        out: PathBuf,
        /// Threads that run the steps (the state, so the replay, does not depend on it).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
        threads: u16,
        /// The snapshot file the recorded node started from (when it was started with
        /// --from-snapshot).
        #[arg(long, value_name = "FILE")]
        from_snapshot: Option<PathBuf>,
    },
    /// Check a model file and print a summary; exit 2 with the problem if it is invalid.
    Check {
        /// The model file (TOML, docs/model-format.md): its sections, point processes, cells,
        /// NetCons and recordings are checked, and a simulation is built from it.
        model: PathBuf,
        /// Then list every segment's geometry: section, x, area (um2), ri (Megohm, to the
        /// parent node), as NEURON's seg.area() and seg.ri().
        #[arg(long)]
        geometry: bool,
    },
    /// Print a model with every object and value written out: populations and connection
    /// rules expanded (names as their copies have them), every default made explicit. The
    /// output is a model file that gives the same run.
    Expand {
        /// Model file (TOML); without it, the built-in seed model (models/seed.toml).
        model: Option<PathBuf>,
        /// Override a parameter first, e.g. --set soma.gnabar_hh=0.1 (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        sets: Vec<String>,
    },
    /// Build a model with its NEURON script and write it as a spikebus model file.
    ///
    /// Runs the tool spikebus_client.from_neuron, which this binary carries, in PYTHON (so
    /// that Python needs NEURON, not spikebus_client). Whatever spikebus cannot run exactly
    /// is listed and nothing is written (exit 2). docs/model-format.md, "From NEURON".
    #[command(name = "from-neuron", disable_help_flag = true)]
    FromNeuron {
        /// The Python that has NEURON (and the script's mechanisms).
        #[arg(long, env = "SPIKEBUS_PYTHON", default_value = "python3")]
        python: PathBuf,
        /// The tool's arguments: SCRIPT [--out MODEL.toml] [--record SIG,...] [-- ARGS]
        /// (`--help` for the tool's own help).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// List the parameters of a model (name, value, unit, writable while running), then its
    /// recordable signals (names for --record, --pub-signals, `watch` and `get`).
    Params {
        /// Model file (TOML); without it, the built-in seed model (models/seed.toml).
        model: Option<PathBuf>,
        /// Override a parameter first and list the values that result, e.g. --set
        /// soma.gnabar_hh=0.1 (repeatable).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        sets: Vec<String>,
    },
}

/// What a run may not exceed: a mistaken or hostile setting gets an error instead of taking
/// the machine (or the node's responsiveness) down.
#[derive(clap::Args)]
struct LimitArgs {
    /// Most steps a run may take: a dt or tstop (in the model, --set, or over the bus) that
    /// would make more is refused.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_steps)]
    max_steps: u64,
    /// Most events delivered in one step; more end the run (reason `limit`).
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_events_per_step)]
    max_events_per_step: u64,
    /// Most events waiting in the queue; more end the run (reason `limit`), and an `event`
    /// request beyond it is refused.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_queue)]
    max_queue: usize,
    /// Most bytes of the traces file; a sample that would pass it ends the run (reason `limit`).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
    max_output: u64,
    /// Most names in a `watch` or `get` request.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_names: usize,
    /// Most snapshots a node holds at once; a `snapshot` beyond it is refused
    /// (`snapshot_limit`).
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_snapshots: usize,
    /// Most bytes of state the held snapshots may take in all; a `snapshot` beyond it is
    /// refused (`snapshot_limit`).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    snapshot_memory: u64,
}

#[derive(clap::Args)]
struct BusArgs {
    /// Be steered by a controller: bind the control socket here (tcp://127.0.0.1:PORT, PORT 0
    /// for any free port, ipc:///PATH, or unix:///PATH: the same protocol in length-prefixed
    /// frames over a plain Unix-domain socket, the fastest on one machine) and wait for it
    /// before initialization.
    #[arg(long, value_name = "ENDPOINT")]
    control: Option<String>,
    /// Several controllers in lockstep: each sync point waits for a `continue` from every
    /// named controller (its requests' `client`), applies their actions in this order and
    /// answers each (comma-separated names). Without it the first controller to continue
    /// owns the run.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', requires = "control")]
    controllers: Option<Vec<String>>,
    /// Record every applied request, with the sync point it applied at and the state hash
    /// there, and the state hash at step boundaries, in FILE (JSON Lines), for `spikebus
    /// replay FILE`. Needs --control.
    #[arg(long, value_name = "FILE", requires = "control")]
    control_log: Option<PathBuf>,
    /// With --control-log: log the state hash at every step boundary whose step is a multiple
    /// of N (1: every step, so a replay names the exact first step that differs; a larger N
    /// costs less on large models).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    log_hash_every: u64,
    /// Where `export` writes snapshot files (created if missing); without it `export` is
    /// refused.
    #[arg(long, value_name = "DIR")]
    snapshot_dir: Option<PathBuf>,
    /// Be a HELICS federate, configured by this JSON file (docs/helics.md): sync points are
    /// HELICS time steps, values and spikes go out as publications and messages, inputs come
    /// back as parameters and events. Needs libhelics (`pip install helics`) at run time.
    #[arg(long, value_name = "CONFIG", conflicts_with = "control")]
    helics: Option<PathBuf>,
    /// Publish the state stream on a PUB socket here.
    #[arg(long = "pub", value_name = "ENDPOINT")]
    pub_endpoint: Option<String>,
    /// Publish a state sample every N steps.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub_every: u64,
    /// Samples per state message.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub_batch: u64,
    /// Signals in the state stream (comma-separated; default: the recorded ones).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub_signals: Option<Vec<String>>,
    /// Messages queued per subscriber; beyond it that subscriber loses messages (gaps in seq).
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(i32).range(0..))]
    pub_hwm: i32,
    /// Before starting, wait until N subscribers have subscribed to the state stream.
    #[arg(long, value_name = "N", default_value_t = 0)]
    wait_subscribers: usize,
    /// Largest control message accepted, in bytes; larger ones get a `too_large` error.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    max_message: usize,
    /// Allow binding tcp addresses other than loopback (needs --auth-file).
    #[arg(long)]
    allow_remote: bool,
    /// Require PLAIN credentials (lines `user:password`) from every controller and subscriber.
    #[arg(long, value_name = "FILE")]
    auth_file: Option<PathBuf>,
    /// Seconds to wait at a sync point for a controller's request before --on-timeout applies.
    #[arg(long, value_name = "SECONDS")]
    sync_timeout: Option<f64>,
    /// What to do when --sync-timeout passes without a request.
    #[arg(long, value_enum, default_value = "wait")]
    on_timeout: TimeoutPolicy,
    /// After `done`, stay up this many seconds (at most) to answer a resend of the final
    /// request; the node exits sooner once no controller is connected.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    linger: f64,
    /// Stop as on SIGTERM (once) when file descriptor FD, the read end of a pipe, reaches end
    /// of file: when the process holding its write end, the one that started the node, is
    /// gone, however it ended (the Python client's Node passes one).
    #[arg(long, value_name = "FD")]
    lifeline: Option<i32>,
}

/// The most samples one state message may carry.
const MAX_PUB_BATCH: u64 = 1_000_000;
/// The longest --sync-timeout, in seconds (a week).
const MAX_SYNC_TIMEOUT: f64 = 7.0 * 24.0 * 3600.0;

impl BusArgs {
    /// The lockstep's options, checked.
    fn control_options(&self) -> Result<ControlOptions, AppError> {
        let sync_timeout = match self.sync_timeout {
            Some(s) if !(s.is_finite() && s > 0.0 && s <= MAX_SYNC_TIMEOUT) => {
                let s = crate::output::format_f64(s);
                return Err(AppError::Usage(format!(
                    "--sync-timeout {s}: expected a number of seconds > 0 and at most {MAX_SYNC_TIMEOUT}"
                )));
            }
            s => s.map(std::time::Duration::from_secs_f64),
        };
        if !(self.linger.is_finite() && (0.0..=3600.0).contains(&self.linger)) {
            let s = crate::output::format_f64(self.linger);
            return Err(AppError::Usage(format!("--linger {s}: expected seconds from 0 to 3600")));
        }
        if !(16..=1 << 30).contains(&self.max_message) {
            return Err(AppError::Usage(format!("--max-message {}: expected 16 to 1073741824 bytes", self.max_message)));
        }
        Ok(ControlOptions {
            max_names: 10_000,
            wait_subscribers: self.wait_subscribers,
            max_message: self.max_message,
            sync_timeout,
            on_timeout: self.on_timeout,
            linger: std::time::Duration::from_secs_f64(self.linger),
            max_snapshots: 64,
            snapshot_memory: 1 << 30,
            snapshot_dir: self.snapshot_dir.clone(),
            controllers: self.controllers()?,
        })
    }

    /// `--controllers`, checked: 1 to 64 distinct client names.
    fn controllers(&self) -> Result<Option<Vec<String>>, AppError> {
        let Some(names) = &self.controllers else { return Ok(None) };
        if names.is_empty() || names.len() > 64 {
            return Err(AppError::Usage(format!("--controllers: 1 to 64 names, not {}", names.len())));
        }
        for (i, n) in names.iter().enumerate() {
            if !proto::valid_client(n) {
                return Err(AppError::Usage(format!(
                    "--controllers: `{n}` is not a client name (1 to 64 bytes without control characters, not beginning with `peer-`)"
                )));
            }
            if names[..i].contains(n) {
                return Err(AppError::Usage(format!("--controllers: `{n}` is named twice")));
            }
        }
        Ok(Some(names.clone()))
    }

    /// The endpoints, each valid, and not one socket's twice.
    fn check_endpoints(&self) -> Result<(), AppError> {
        let auth = self.auth_file.is_some();
        let control_path = match self.control.as_deref() {
            Some(c) => match unix::endpoint_path(c)? {
                Some(path) => {
                    if auth {
                        return Err(AppError::Usage(format!(
                            "--control {c}: a unix:// control channel has no authentication (the socket file's \
                             permissions decide who may connect); --auth-file needs a tcp:// or ipc:// control endpoint"
                        )));
                    }
                    unix::check_path_free(&path, c)?;
                    Some(path)
                }
                None => {
                    let ep = check_endpoint(c, self.allow_remote, auth)?;
                    check_not_in_use(&ep, c)?;
                    ep.ipc_path
                }
            },
            None => None,
        };
        if let Some(p) = &self.pub_endpoint {
            let ep = check_endpoint(p, self.allow_remote, auth)?;
            check_not_in_use(&ep, p)?;
            // Port 0 binds a fresh port each time: the same text is two endpoints.
            let same = match (&control_path, &ep.ipc_path) {
                (Some(a), Some(b)) => a == b,
                _ => self.control.as_deref() == Some(p.as_str()) && !p.ends_with(":0"),
            };
            if same {
                let c = self.control.as_deref().unwrap_or_default();
                let both = if c == p { format!("both {c}") } else { format!("{c} and {p}, the same path") };
                return Err(AppError::Usage(format!("--control and --pub are {both}: each needs its own endpoint")));
            }
        }
        Ok(())
    }
}

/// The control channel, over one transport or the other (the lockstep is compiled for each).
enum Control {
    Zmq(ZmqControl),
    Unix(UnixControl),
}

impl Control {
    fn endpoint(&self) -> &str {
        match self {
            Control::Zmq(c) => &c.endpoint,
            Control::Unix(c) => &c.endpoint,
        }
    }
}

/// spikebus_client/from_neuron.py, carried in the binary: `spikebus from-neuron` runs it in
/// the user's NEURON Python, which need not have spikebus_client installed.
const FROM_NEURON: &str = include_str!("../../../examples-py/spikebus_client/from_neuron.py");

/// `spikebus from-neuron`: the tool's exit code (0 written, 2 refused or a bad script).
fn from_neuron(python: &Path, args: &[String]) -> Result<u8, AppError> {
    let status = std::process::Command::new(python)
        .arg("-c")
        .arg(FROM_NEURON)
        .args(args)
        .status()
        .map_err(|e| AppError::Usage(format!("cannot run {} (--python, $SPIKEBUS_PYTHON): {e}", python.display())))?;
    Ok(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1)))
}

/// `check --geometry`: a line per segment, `section x area ri parent` (numbers that parse
/// back to the same doubles; parent: the section's connection, `SEC(x)` or `-` for a root).
fn print_geometry(sim: &mut Sim) {
    let mut text = String::from("section\tx\tarea\tri\tparent\n");
    for s in 0..sim.model().sections.len() {
        let spec = &sim.model().sections[s];
        let name = spec.name.clone();
        let parent = match &spec.parent {
            Some(p) => format!("{}({})", p.section, crate::output::format_f64(p.x)),
            None => "-".to_string(),
        };
        let geometry = sim.segment_geometry(s);
        let nseg = geometry.len() as f64;
        for (j, (area, ri)) in geometry.into_iter().enumerate() {
            let x = crate::output::format_f64((j as f64 + 0.5) / nseg);
            let a = crate::output::format_f64(area);
            let r = crate::output::format_f64(ri);
            text += &format!("{name}\t{x}\t{a}\t{r}\t{parent}\n");
        }
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Loads a model file, or the built-in seed model, and applies `--set` overrides in order.
/// Files the model refers to (`[morphology] swc`) are read relative to its directory.
pub fn load_model(path: Option<&Path>, sets: &[String]) -> Result<Model, AppError> {
    load_model_source(path, sets).map(|(m, _)| m)
}

/// `load_model`, and where the model came from (its text and the `--set`s), for snapshot
/// files and control logs.
pub fn load_model_source(path: Option<&Path>, sets: &[String]) -> Result<(Model, ModelSource), AppError> {
    let (origin, text) = match path {
        None => ("<seed>".to_string(), spikebus_engine::model::SEED_TOML.to_string()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| AppError::ReadModel { path: p.to_path_buf(), source })?;
            (p.display().to_string(), text)
        }
    };
    let source = ModelSource { origin, text, sets: sets.to_vec(), record: vec![], record_dt: None };
    Ok((model_of(&source)?, source))
}

/// The model a `ModelSource` describes. Files the model names (morphologies) are read from
/// beside its origin, as when it was first loaded: a snapshot file or a control log carries
/// the model's own text, not those files.
pub fn model_of(source: &ModelSource) -> Result<Model, AppError> {
    let dir = Path::new(&source.origin).parent().unwrap_or(Path::new(""));
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let mut model = parse_model_with(&source.text, &source.origin, &read)?;
    for s in &source.sets {
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
    let name = name.trim();
    let v: f64 = value
        .trim()
        .parse()
        .map_err(|_| AppError::Usage(format!("--set {s}: `{value}` is not a number")))?;
    Ok((name, v))
}

/// `--out /dev/null`: the run writes no files (a run watched only on the bus).
fn writes_no_files(out: &Path) -> bool {
    out == Path::new("/dev/null")
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("spikebus: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn print_summary(s: &RunSummary, writes_files: bool) {
    let total: usize = s.spikes.iter().map(|(_, n)| n).sum();
    let spikes = if s.spikes.len() <= 8 {
        s.spikes.iter().map(|(s, n)| format!("{s} {n}")).collect::<Vec<_>>().join(", ")
    } else {
        format!("{total} from {} sources", s.spikes.len())
    };
    let wrote: Vec<String> = [&s.traces_path, &s.spikes_path].into_iter().flatten().map(|p| p.display().to_string()).collect();
    let stream = if s.published > 0 { format!("; published {} stream messages", s.published) } else { String::new() };
    println!(
        "spikebus: {} steps to t={} in {:.6} s; spikes: {}; wrote {}{stream}",
        s.steps,
        s.t,
        s.sim_seconds,
        if s.spikes.is_empty() { "none".to_string() } else { spikes },
        if !writes_files {
            "no files (--out /dev/null)".to_string()
        } else if wrote.is_empty() {
            "no complete file".to_string()
        } else {
            wrote.join(" and ")
        }
    );
}

/// Runs a command; the exit status on success (0, or 128 + signal, 3 for a timeout abort, 4
/// when an output could not be written).
fn dispatch(command: Command) -> Result<u8, AppError> {
    match command {
        Command::Run { model, sets, record, record_dt, format, out, threads, from_snapshot, bus, limits } => {
            let snap = from_snapshot.as_deref().map(snapshot::read_file).transpose()?;
            let (mut model, mut source) = match &snap {
                Some((h, _)) => {
                    // The snapshot's recording, unless this command line says otherwise.
                    let mut m = model_of(&h.model)?;
                    m.record = h.model.record.clone();
                    m.record_dt = h.model.record_dt;
                    (m, h.model.clone())
                }
                None => load_model_source(model.as_deref(), &sets)?,
            };
            let sets: Vec<String> = source.sets.clone();
            if let Some(names) = record {
                model.record = names.into_iter().filter(|n| !n.is_empty()).collect();
            }
            if let Some(d) = record_dt {
                // Vector.record's bounds for Dt.
                if !(1e-9..=1e10).contains(&d) {
                    let d = crate::output::format_f64(d);
                    return Err(AppError::Usage(format!("--record-dt {d}: expected 1e-9 to 1e10 ms")));
                }
                model.record_dt = Some(d);
            }
            source.record = model.record.clone();
            source.record_dt = model.record_dt;
            let mut sim = sim_with_threads(model, usize::from(threads))?;
            sim.set_limits(Limits {
                max_steps: limits.max_steps,
                max_events_per_step: limits.max_events_per_step,
                max_queue: limits.max_queue,
            })?;
            if let (Some((h, words)), Some(file)) = (&snap, &from_snapshot) {
                snapshot::load_into(&mut sim, h, words, file)?;
            }
            // Every option is checked before anything is written or bound.
            let mut copts = bus.control_options()?;
            copts.max_names = limits.max_names;
            if limits.max_snapshots == 0 {
                return Err(AppError::Usage("--max-snapshots 0: expected at least 1".into()));
            }
            copts.max_snapshots = limits.max_snapshots;
            copts.snapshot_memory = limits.snapshot_memory;
            if let Some(dir) = &copts.snapshot_dir {
                crate::output::create_dir(dir)?;
            }
            bus.check_endpoints()?;
            if bus.pub_batch > MAX_PUB_BATCH {
                return Err(AppError::Usage(format!("--pub-batch {}: at most {MAX_PUB_BATCH} samples per message", bus.pub_batch)));
            }
            let opts = RunOptions {
                out_dir: (!writes_no_files(&out)).then_some(out),
                progress: std::io::stderr().is_terminal() && bus.control.is_none() && bus.helics.is_none(),
                pub_every: bus.pub_every,
                pub_batch: bus.pub_batch as usize,
                pub_signals: bus.pub_signals.clone(),
                sets: sets.clone(),
                max_output: limits.max_output,
                format,
                source,
            };
            // Output files are made before anything is bound: an --out that cannot be
            // written is a start-up error.
            let helics_cfg = bus.helics.as_deref().map(|p| helics::Config::load(p, &sim).map_err(AppError::Usage)).transpose()?;
            let helics_lib = helics_cfg.as_ref().map(helics::load).transpose()?;
            let mut session = Session::new(sim, &opts).map_err(|e| AppError::Usage(e.to_string()))?;
            let stop = Stop::install()?;
            if let Some(fd) = bus.lifeline {
                crate::signals::watch_lifeline(fd)?;
            }
            session.sim.set_interrupt(stop.shared_flag());
            let creds = bus.auth_file.as_deref().map(Credentials::load).transpose()?;
            let net = Bus::new(bus.allow_remote, creds)?;
            let control = match bus.control.as_deref() {
                Some(ep) if ep.starts_with("unix://") => Some(Control::Unix(UnixControl::bind(ep, bus.max_message)?)),
                Some(ep) => Some(Control::Zmq(net.control(ep, bus.max_message)?)),
                None => None,
            };
            let publisher = bus.pub_endpoint.as_deref().map(|ep| net.publisher(ep, bus.pub_hwm)).transpose()?;
            if control.is_some() || publisher.is_some() {
                let mut line = String::from("spikebus: listening");
                if let Some(c) = &control {
                    line += &format!(" control={}", c.endpoint());
                }
                if let Some(p) = &publisher {
                    line += &format!(" pub={}", p.endpoint);
                }
                println!("{line}");
                let _ = std::io::stdout().flush();
            }
            if let Some(p) = publisher {
                session.attach_stream(p, &opts)?;
            }
            let resume = match &snap {
                Some((h, _)) => {
                    session.set_recorder_state(h.record_clock.map(DtClock::from_parts), h.at_boundary);
                    session.from_snapshot = Some(h.hash.clone());
                    let watch = Watch::from_state(&session.sim, &h.watch)?;
                    Some(LockState { point: h.point.into(), watch, pending: h.pending.clone() })
                }
                None => None,
            };
            if let Some(path) = &bus.control_log {
                let header = LogHeader {
                    spikebus_control_log: control_log::LOG_FORMAT,
                    spikebus: env!("CARGO_PKG_VERSION").to_string(),
                    binary: snapshot::binary_sha256()?.to_string(),
                    state_format: spikebus_engine::sim::STATE_FORMAT,
                    model: opts.source.clone(),
                    format: opts.format.name().to_string(),
                    max_output: opts.max_output,
                    limits: LogLimits {
                        max_steps: limits.max_steps,
                        max_events_per_step: limits.max_events_per_step,
                        max_queue: limits.max_queue,
                        max_names: limits.max_names,
                        max_snapshots: limits.max_snapshots,
                        snapshot_memory: limits.snapshot_memory,
                    },
                    controllers: copts.controllers.clone(),
                    every: bus.log_hash_every,
                    from_snapshot: session.from_snapshot.clone(),
                };
                session.log = Some(ControlLog::create(path, &header)?);
            }
            let summary = match (control, helics_cfg, helics_lib) {
                (Some(Control::Zmq(c)), ..) => controlled_run(session, c, &copts, &stop, resume)?,
                (Some(Control::Unix(c)), ..) => controlled_run(session, c, &copts, &stop, resume)?,
                (None, Some(cfg), Some(lib)) => {
                    let about = format!("HELICS {} ({})", lib.version, lib.path.display());
                    let joined = helics::join(lib, &cfg, &stop)?;
                    println!("spikebus: HELICS federate `{}` executing with {about}", cfg.federate);
                    let _ = std::io::stdout().flush();
                    helics_run(session, &cfg, joined, bus.wait_subscribers, &stop)?
                }
                _ => free_run(session, bus.wait_subscribers, &stop)?,
            };
            print_summary(&summary, opts.out_dir.is_some());
            Ok(match summary.reason {
                // A HELICS federation that failed mid-run (the manifest's error says how).
                proto::EndReason::Stop if summary.error.is_some() => 6,
                proto::EndReason::End | proto::EndReason::Stop => 0,
                proto::EndReason::Signal => 128 + stop.signal().unwrap_or(2) as u8,
                proto::EndReason::Timeout => 3,
                proto::EndReason::IoError => 4,
                proto::EndReason::Limit => 5,
                proto::EndReason::Diverged => 7,
            })
        }
        Command::Replay { log, out, threads, from_snapshot } => {
            let stop = Stop::install()?;
            let opts = ReplayOptions {
                log: &log,
                out_dir: (!writes_no_files(&out)).then_some(out),
                threads: usize::from(threads),
                from_snapshot: from_snapshot.as_deref(),
            };
            let summary = replay(&opts, &stop)?;
            print_summary(&summary, opts.out_dir.is_some());
            Ok(match summary.reason {
                proto::EndReason::Diverged => 7,
                proto::EndReason::End | proto::EndReason::Stop => 0,
                proto::EndReason::Signal => 128 + stop.signal().unwrap_or(2) as u8,
                proto::EndReason::Timeout => 3,
                proto::EndReason::IoError => 4,
                proto::EndReason::Limit => 5,
            })
        }
        Command::Check { model, geometry } => {
            let m = load_model(Some(&model), &[])?;
            let mut sim = Sim::new(m.clone())?;
            // Plays are counted only where there are some (older models' summaries unchanged).
            let plays = if m.plays.is_empty() { String::new() } else { format!(", {} plays", m.plays.len()) };
            println!(
                "{}: ok ({} sections, {} point processes, {} artificial cells, {} NetCons{plays}, {} recorded signals)",
                model.display(),
                m.sections.len(),
                m.points.len(),
                m.cells.len(),
                m.netcons.len(),
                m.record.len()
            );
            if geometry {
                print_geometry(&mut sim);
            }
            Ok(0)
        }
        Command::FromNeuron { python, args } => from_neuron(&python, &args),
        Command::Expand { model, sets } => {
            let m = load_model(model.as_deref(), &sets)?;
            let text = spikebus_engine::write::write_model(&m);
            // A closed pipe (`spikebus expand | head`) ends the output quietly.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            Ok(0)
        }
        Command::Params { model, sets } => {
            let m = load_model(model.as_deref(), &sets)?;
            let mut text = format!("{:<24} {:>22} {:<8} at run time\n", "name", "value", "unit");
            for p in m.params() {
                let v = crate::output::format_f64(p.value);
                let rt = match (p.read_only, p.runtime) {
                    (true, _) => "read-only (3-d points)",
                    (false, true) => "writable",
                    (false, false) => "model only",
                };
                text += &format!("{:<24} {:>22} {:<8} {}\n", p.name, v, p.unit, rt);
            }
            if !m.plays.is_empty() {
                text += "\nplays (Vector.play: the run writes these parameters; a set holds until the next value):\n";
                for p in &m.plays {
                    let mode = if p.continuous { "continuous" } else { "discrete" };
                    let when = match p.dt {
                        Some(dt) => format!("every {} ms", crate::output::format_f64(dt)),
                        None => "at their times".to_string(),
                    };
                    text += &format!("{:<24} {:<22} {mode}, {} values {when}\n", p.name, p.target, p.values.len());
                }
            }
            text += "\nsignals (recordable: --record, --pub-signals, watch, get; SEC(x).VAR too, 0 <= x <= 1):\n";
            for name in spikebus_engine::signal::names(&m) {
                text += &format!("{name}\n");
            }
            // A closed pipe (`spikebus params | head`) ends the listing quietly.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            Ok(0)
        }
    }
}

/// The environment variable that sets the least step work for which `--threads` is used
/// (`spikebus_engine::sim::PARALLEL_MIN_WORK`; 0: always).
pub const PARALLEL_MIN_WORK_ENV: &str = "SPIKEBUS_PARALLEL_MIN_WORK";

/// A simulation of `model` on `threads` threads, the least work for threads from
/// `SPIKEBUS_PARALLEL_MIN_WORK` if set; says on stderr when the model is too small for them
/// (it then steps on one: the same results, sooner).
pub fn sim_with_threads(model: spikebus_engine::Model, threads: usize) -> Result<Sim, AppError> {
    let mut min_work = spikebus_engine::sim::PARALLEL_MIN_WORK;
    if let Some(v) = std::env::var_os(PARALLEL_MIN_WORK_ENV) {
        min_work = v.to_str().and_then(|v| v.trim().parse::<usize>().ok()).ok_or_else(|| {
            AppError::Usage(format!("{PARALLEL_MIN_WORK_ENV}={}: expected a whole number (0: always use --threads)", v.to_string_lossy()))
        })?;
    }
    let sim = Sim::with_threads_from(model, threads, min_work)?;
    if threads > 1 && sim.step_threads() == 1 {
        let why = if sim.step_work() < sim.parallel_min_work() {
            format!(
                "its {} nodes are fewer than the {} from which more threads are faster (set {PARALLEL_MIN_WORK_ENV}=0 to use them anyway)",
                sim.step_work(),
                sim.parallel_min_work()
            )
        } else {
            "its cells fill one tile (a thread steps whole tiles of like cells)".to_string()
        };
        eprintln!("spikebus: --threads {threads}: this model steps on one thread, the same results sooner: {why}");
    }
    Ok(sim)
}
