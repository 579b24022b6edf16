//! A run of one model: the simulation with its outputs (traces.csv or traces.npy, spikes.csv,
//! the state stream). `Session` advances the engine from pause to pause and records what
//! NEURON would (`record`), handing the samples to the traces writer thread (`traces`);
//! `free_run` drives it to the end, `lockstep` pauses it at sync points for a controller.
//!
//! At step boundaries a `Session` also hashes the state when asked to: for the stream
//! (`hash` messages every `hash_every` steps), for the control log, and, in a replay, to
//! compare with the log (`Expected`). A snapshot notes where the outputs stood (`mark`); a
//! restore cuts them back there (`rewind`): the files hold the history that leads to where
//! the run ends, without the branches it left.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Instant;

use spikebus_engine::{Pause, SignalRef, Sim, Spike};
use spikebus_protocol as proto;

use crate::bus::Publisher;
use crate::control_log::{self, ControlLog, Entry};
use crate::error::AppError;
use crate::snapshot::{hex, ModelSource, RecMark};
use crate::output::{clear_outputs, create_dir, write_atomic, CsvFile, Written};
use crate::record::{event_written, DtClock};
use crate::signals::Stop;
use crate::traces::{Plan, TraceFormat, Traces};

pub struct RunOptions {
    /// Where traces.csv, spikes.csv and manifest.json go; None: no files (`--out /dev/null`).
    pub out_dir: Option<PathBuf>,
    /// Show a progress bar (only sensible on a terminal).
    pub progress: bool,
    /// State stream: publish every N steps, K samples per message, these signals.
    pub pub_every: u64,
    pub pub_batch: usize,
    pub pub_signals: Option<Vec<String>>,
    /// The command line's --set overrides, for the manifest.
    pub sets: Vec<String>,
    /// Most bytes of the traces file.
    pub max_output: u64,
    /// The traces file's format.
    pub format: TraceFormat,
    /// The model's text and the command line's changes (for snapshot files and the control
    /// log).
    pub source: ModelSource,
}

#[derive(Debug)]
pub struct RunSummary {
    pub reason: proto::EndReason,
    pub steps: u64,
    pub t: f64,
    /// Spike counts per source, in source order.
    pub spikes: Vec<(String, usize)>,
    /// Wall time of initialization, stepping and writing the samples (until the traces writer
    /// has handed the last one to the file), without parsing, file set-up or the final sync.
    pub sim_seconds: f64,
    /// The files written (None: the file could not be completed, or nothing was recorded).
    pub traces_path: Option<PathBuf>,
    pub spikes_path: Option<PathBuf>,
    pub published: u64,
    /// Why outputs could not be written (the reason is then `io_error`).
    pub error: Option<String>,
    /// Time waited for controllers and simulated (the lockstep's exchanges; a free run's
    /// simulation time).
    pub telemetry: proto::Totals,
}

/// Samples of the state stream waiting to be published as one message.
struct StateStream {
    publisher: Publisher,
    every: u64,
    batch: usize,
    names: Vec<String>,
    refs: Vec<SignalRef>,
    step: Vec<u64>,
    t: Vec<f64>,
    values: Vec<Vec<f64>>,
    buf: Vec<u8>,
}

impl StateStream {
    fn sample(&mut self, sim: &Sim) {
        if !sim.step_index().is_multiple_of(self.every) {
            return;
        }
        self.step.push(sim.step_index());
        self.t.push(sim.t());
        for (vals, r) in self.values.iter_mut().zip(&self.refs) {
            vals.push(sim.value(*r));
        }
        if self.t.len() >= self.batch {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.t.is_empty() {
            return;
        }
        let seq = self.publisher.next_seq();
        let msg = proto::StateBatch { seq, step: &self.step, t: &self.t, signals: &self.names, values: &self.values };
        self.buf.clear();
        proto::encode_into(&mut self.buf, &msg);
        self.publisher.send(proto::TOPIC_STATE, &self.buf);
        self.step.clear();
        self.t.clear();
        self.values.iter_mut().for_each(Vec::clear);
    }

    fn publish(&mut self, topic: &[u8], msg: &impl serde::Serialize) {
        self.buf.clear();
        proto::encode_into(&mut self.buf, msg);
        self.publisher.send(topic, &self.buf);
    }
}

/// Everything a sample is written to; kept apart from the `Sim` so both can be borrowed.
struct Recorder {
    /// The traces file until it is finished (none when nothing is recorded).
    traces: Option<Traces>,
    /// `[record] dt`: NEURON's record event (none: every step).
    clock: Option<DtClock>,
    refs: Vec<SignalRef>,
    stream: Option<StateStream>,
    error: Option<AppError>,
}

impl Recorder {
    /// The sample at t = 0 and at the end of every step.
    fn sample(&mut self, sim: &Sim) {
        if let Some(traces) = self.traces.as_mut() {
            let refs = &self.refs;
            match self.clock.as_mut() {
                None => traces.push(sim.t(), refs.iter().map(|r| sim.value(*r))),
                Some(clock) => {
                    if sim.step_index() == 0 {
                        clock.restart();
                    }
                    // Record events due by t_n, delivered at the end of the step.
                    while let Some(te) = clock.take_due(sim.t()) {
                        traces.push(te, refs.iter().map(|r| sim.value(*r)));
                    }
                }
            }
        }
        if let Some(s) = self.stream.as_mut() {
            s.sample(sim);
        }
    }

    /// A step begins from the boundary where `sim` is: record events due by t_n + dt/2 are
    /// delivered first, with the boundary's values.
    fn step_begins(&mut self, sim: &Sim) {
        if let (Some(traces), Some(clock)) = (self.traces.as_mut(), self.clock.as_mut()) {
            while let Some(te) = clock.take_due(sim.t() + 0.5 * sim.dt()) {
                traces.push(te, self.refs.iter().map(|r| sim.value(*r)));
            }
        }
    }
}

/// What a replay expects at step boundaries: the logged state hashes, in order.
#[derive(Debug, Default)]
pub struct Expected {
    /// The steps whose hash was logged are the multiples of this.
    pub every: u64,
    /// The logged hashes up to the next sync point (the replay refills it at each).
    pub queue: VecDeque<control_log::Boundary>,
    /// The last step whose hash matched, and its t.
    pub last_match: Option<(u64, f64)>,
    /// Hashes compared so far.
    pub checked: u64,
}

pub struct Session {
    pub sim: Sim,
    rec: Recorder,
    /// The stream carries the state hash every N steps (0: never).
    pub hash_every: u64,
    /// The control log (`--control-log`), which gets the state hash at step boundaries too.
    pub log: Option<ControlLog>,
    /// A replay's logged hashes, compared at step boundaries.
    pub expect: Option<Expected>,
    /// How a replay diverged, if it did.
    pub diverged: Option<String>,
    /// Restores so far (for the manifest).
    restores: u64,
    /// The lockstep's telemetry totals, for `done` (none in a free run).
    pub telemetry: Option<proto::Totals>,
    pub source: ModelSource,
    /// The hash of the snapshot this run started from (`--from-snapshot`).
    pub from_snapshot: Option<String>,
    /// Every spike so far (for spikes.csv) and the ones found by the last stage.
    spikes: Vec<Spike>,
    fresh: Vec<Spike>,
    sources: Vec<String>,
    out_dir: Option<PathBuf>,
    sets: Vec<String>,
    bar: indicatif::ProgressBar,
    /// The step from which the bar moves next (every 1,024 steps; a window of steps may
    /// pass over a multiple).
    bar_next: u64,
    started: Option<Instant>,
    /// The last pause was a step boundary (the next `advance` begins a step).
    at_boundary: bool,
    /// The traces file's columns: `t`, then the recorded signals.
    columns: Vec<String>,
}

impl Session {
    /// A run's outputs: the files are created now (so that an unwritable --out fails before
    /// anything is bound); the state stream is attached with `attach_stream`.
    pub fn new(sim: Sim, opts: &RunOptions) -> Result<Session, AppError> {
        let names = sim.model().record.clone();
        let refs = names.iter().map(|n| sim.signal(n)).collect::<Result<Vec<_>, _>>()?;
        if let Some(names) = &opts.pub_signals {
            for n in names {
                sim.signal(n)?;
            }
        }
        let record_dt = sim.model().record_dt;
        if let Some(d) = record_dt {
            if let Some((name, _)) = names.iter().zip(&refs).find(|(_, r)| event_written(&sim, **r)) {
                return Err(AppError::Usage(format!(
                    "record dt {d}: `{name}` cannot be recorded with a Dt: NEURON's Vector.record(&x, Dt) \
                     reads it after the synaptic events delivered just before, which a step boundary \
                     does not show; record it every step or leave it out"
                )));
            }
            let samples = sim.tstop() / d;
            if samples > sim.limits().max_steps as f64 {
                return Err(AppError::Usage(format!(
                    "record dt {d}: {samples} samples to tstop, more than --max-steps {}",
                    sim.limits().max_steps
                )));
            }
        }
        let stream = None;
        let mut columns = vec!["t".to_string()];
        columns.extend(names.iter().cloned());
        let traces = match &opts.out_dir {
            Some(dir) => {
                create_dir(dir)?;
                clear_outputs(dir)?;
                // Nothing recorded, no traces file.
                if names.is_empty() {
                    None
                } else {
                    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
                    let plan = Plan { dt: sim.dt(), tstop: sim.tstop(), record_dt };
                    Some(Traces::start(&dir.join(opts.format.file_name()), opts.format, &header, opts.max_output, plan)?)
                }
            }
            None => None,
        };
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
        let sources = sim.source_names().iter().map(|s| s.to_string()).collect();
        Ok(Session {
            sim,
            rec: Recorder { traces, clock: record_dt.map(DtClock::new), refs, stream, error: None },
            hash_every: 0,
            log: None,
            expect: None,
            diverged: None,
            restores: 0,
            telemetry: None,
            source: opts.source.clone(),
            from_snapshot: None,
            spikes: Vec::with_capacity(1024),
            fresh: Vec::with_capacity(64),
            sources,
            out_dir: opts.out_dir.clone(),
            sets: opts.sets.clone(),
            bar,
            bar_next: 0,
            started: None,
            at_boundary: false,
            columns,
        })
    }

    /// Publishes the run's state stream on `publisher` (`opts` as given to `new`).
    pub fn attach_stream(&mut self, publisher: Publisher, opts: &RunOptions) -> Result<(), AppError> {
        let sim = &self.sim;
        let names = opts.pub_signals.clone().unwrap_or_else(|| sim.model().record.clone());
        let refs = names.iter().map(|n| sim.signal(n)).collect::<Result<Vec<_>, _>>()?;
        let batch = opts.pub_batch.max(1);
        self.rec.stream = Some(StateStream {
            publisher,
            every: opts.pub_every.max(1),
            batch,
            values: vec![Vec::with_capacity(batch); names.len()],
            names,
            refs,
            step: Vec::with_capacity(batch),
            t: Vec::with_capacity(batch),
            buf: Vec::with_capacity(256),
        });
        Ok(())
    }

    /// Whether anything this run writes reads the mechanisms' current outputs (ina, a
    /// synapse's i, ...) between steps: a recorded or published one, or a state hash (the
    /// stream's, the control log's, a replay's), which covers them.
    fn reads_outputs(&self) -> bool {
        let stream = self.rec.stream.as_ref().map_or(&[][..], |s| &s.refs[..]);
        let hashes = (self.hash_every > 0 && self.rec.stream.is_some()) || self.log.is_some() || self.expect.is_some();
        hashes || self.rec.refs.iter().chain(stream).any(|&r| self.sim.is_current_output(r))
    }

    /// What a free run samples at every step, if that is all it does at a step boundary: no
    /// stream, record clock (`[record] dt`), state hashes or replay. None: it needs every
    /// boundary.
    fn window_signals(&self) -> Option<Vec<SignalRef>> {
        let hashes = self.hash_every > 0 || self.log.is_some() || self.expect.is_some();
        if hashes || self.rec.stream.is_some() || self.rec.clock.is_some() {
            return None;
        }
        Some(self.rec.refs.clone())
    }

    pub fn source_name(&self, i: u32) -> &str {
        &self.sources[i as usize]
    }

    /// Waits for observers, then announces the run on the state stream.
    pub fn announce(&mut self, wait_subscribers: usize, stop: &Stop) -> Result<(), AppError> {
        let Some(stream) = self.rec.stream.as_mut() else { return Ok(()) };
        stream.publisher.wait_subscribers(wait_subscribers, stop.flag())?;
        let msg = proto::Started {
            seq: stream.publisher.next_seq(),
            model: self.sim.model().origin.clone(),
            dt: self.sim.dt(),
            tstop: self.sim.tstop(),
            signals: stream.names.clone(),
            sources: self.sources.clone(),
        };
        stream.publish(proto::TOPIC_STARTED, &msg);
        Ok(())
    }

    /// Runs the engine to its next pause (`Sim::advance`), recording samples; returns the
    /// pause and the spikes found on the way (also published on the stream).
    pub fn advance(&mut self) -> (Pause, &[Spike]) {
        self.started.get_or_insert_with(Instant::now);
        let (sim, rec) = (&mut self.sim, &mut self.rec);
        if self.at_boundary && sim.running() {
            rec.step_begins(sim);
        }
        let pause = sim.advance(&mut |s: &Sim| rec.sample(s));
        self.at_boundary = matches!(pause, Pause::Boundary(_));
        self.collect_spikes();
        if self.at_boundary {
            // After the spikes are taken: the state as the sync report there sees it.
            self.on_boundary();
            let n = self.sim.step_index();
            if n >= self.bar_next {
                self.bar.set_position(n);
                self.bar.set_message(format!("{:.1}", self.sim.t()));
                self.bar_next = n - n % 1024 + 1024;
            }
        }
        (pause, &self.fresh)
    }

    /// At a step boundary: the state hash, where the stream, the log or a replay wants it.
    fn on_boundary(&mut self) {
        let step = self.sim.step_index();
        let due = |every: u64| every > 0 && step.is_multiple_of(every);
        let stream = due(self.hash_every) && self.rec.stream.is_some();
        let log = self.log.as_ref().is_some_and(|l| due(l.every));
        let check = self.diverged.is_none() && self.expect.as_ref().is_some_and(|e| due(e.every));
        if !(stream || log || check) {
            return;
        }
        let (h, t) = (hex(self.sim.state_hash()), self.sim.t());
        if stream {
            let s = self.rec.stream.as_mut().expect("checked");
            s.flush();
            let msg = proto::HashPub { seq: s.publisher.next_seq(), step, t, hash: h.clone() };
            s.publish(proto::TOPIC_HASH, &msg);
        }
        if log {
            let l = self.log.as_mut().expect("checked");
            l.write(&Entry::Boundary(control_log::Boundary { step, t, hash: h.clone() }));
        }
        if check {
            let e = self.expect.as_mut().expect("checked");
            e.checked += 1;
            let since = match e.last_match {
                Some((s, t)) => format!("it was the same at step {s} (t={t})"),
                None => "no earlier step was compared".into(),
            };
            match e.queue.pop_front() {
                Some(b) if b.step == step && b.hash == h => e.last_match = Some((step, t)),
                Some(b) if b.step == step => {
                    self.diverged = Some(format!(
                        "the replay diverges at step {step} (t={t}): its state hash is {h}, the log's {}; {since}",
                        b.hash
                    ))
                }
                Some(b) => {
                    self.diverged = Some(format!(
                        "the replay diverges at step {step} (t={t}): the log's next state is step {} (t={}); {since}",
                        b.step, b.t
                    ))
                }
                None => {
                    self.diverged = Some(format!(
                        "the replay diverges at step {step} (t={t}): the log has no state here (the run reached its \
                         next sync point sooner); {since}"
                    ))
                }
            }
        }
    }

    /// Notes where the outputs are (for a snapshot `id`): the traces file's writer marks its
    /// length and digest.
    pub fn mark(&mut self, id: u64) -> RecMark {
        if let Some(t) = self.rec.traces.as_mut() {
            t.mark(id);
        }
        RecMark { spikes: self.spikes.len(), clock: self.rec.clock, at_boundary: self.at_boundary }
    }

    /// Cuts the outputs back to the mark of snapshot `id`, and publishes the jump.
    pub fn rewind(&mut self, id: u64, m: &RecMark) {
        if let Some(t) = self.rec.traces.as_mut() {
            t.truncate(id);
        }
        self.spikes.truncate(m.spikes);
        self.rec.clock = m.clock;
        self.at_boundary = m.at_boundary;
        self.restores += 1;
        let (t, step) = (self.sim.now(), self.sim.step_index());
        if let Some(stream) = self.rec.stream.as_mut() {
            stream.flush();
            let msg = proto::RestorePub { seq: stream.publisher.next_seq(), snapshot: id, t, step };
            stream.publish(proto::TOPIC_RESTORE, &msg);
        }
    }

    /// The mark of snapshot `id` is not needed any more.
    pub fn forget_mark(&mut self, id: u64) {
        if let Some(t) = self.rec.traces.as_mut() {
            t.forget(id);
        }
    }

    /// The record clock (`[record] dt`) and whether the last pause was a step boundary: what
    /// a snapshot file keeps of the recorder.
    pub fn recorder_state(&self) -> (Option<DtClock>, bool) {
        (self.rec.clock, self.at_boundary)
    }

    /// Sets what `recorder_state` gave (a node started from a snapshot file).
    pub fn set_recorder_state(&mut self, clock: Option<DtClock>, at_boundary: bool) {
        if self.rec.clock.is_some() {
            self.rec.clock = clock;
        }
        self.at_boundary = at_boundary;
    }

    /// Moves the engine's new spikes into the record and onto the stream; returns them.
    fn collect_spikes(&mut self) -> &[Spike] {
        self.fresh.clear();
        self.sim.take_spikes(&mut self.fresh);
        if let Some(stream) = self.rec.stream.as_mut() {
            for s in &self.fresh {
                let msg = proto::SpikePub { seq: stream.publisher.next_seq(), source: &self.sources[s.source as usize], t: s.t };
                stream.publish(proto::TOPIC_SPIKE, &msg);
            }
        }
        self.spikes.extend_from_slice(&self.fresh);
        &self.fresh
    }

    /// Publishes a sync report on the stream (like state, never waiting for a subscriber:
    /// a stuck one must not slow the lockstep down).
    pub fn publish_sync(&mut self, body: &proto::SyncBody) {
        if let Some(stream) = self.rec.stream.as_mut() {
            stream.flush();
            let msg = proto::SyncPub { seq: stream.publisher.next_seq(), body };
            stream.publish(proto::TOPIC_SYNC, &msg);
        }
    }

    /// Messages published so far on the state stream.
    pub fn published(&self) -> u64 {
        self.rec.stream.as_ref().map_or(0, |s| s.publisher.published)
    }

    /// Announces a takeover of the run on the stream.
    pub fn publish_owner(&mut self, client: &str, previous: Option<&str>) {
        let (t, step) = (self.sim.now(), self.sim.step_index());
        if let Some(stream) = self.rec.stream.as_mut() {
            stream.flush();
            let msg = proto::OwnerPub {
                seq: stream.publisher.next_seq(),
                client: client.to_string(),
                previous: previous.map(str::to_string),
                t,
                step,
            };
            stream.publish(proto::TOPIC_OWNER, &msg);
        }
    }

    /// Why the run must end now, if it must: an output could not be written (what follows
    /// could not be recorded) or went past its limit.
    pub fn must_end(&self) -> Option<proto::EndReason> {
        if self.diverged.is_some() {
            return Some(proto::EndReason::Diverged);
        }
        self.rec.error.as_ref().map(end_reason).or_else(|| self.rec.traces.as_ref()?.must_end())
    }

    /// Ends the run because something outside it failed (a HELICS federation): the run is
    /// written up to here with reason `stop`, and the manifest's `error` says what failed.
    pub fn fail(&mut self, e: AppError) {
        self.rec.error.get_or_insert(e);
    }

    /// Ends the run at a limit the engine met.
    pub fn limit(&mut self, hit: spikebus_engine::LimitHit) {
        self.rec.error.get_or_insert(AppError::Limit(hit.to_string()));
    }

    /// Writes the files and the manifest (last), publishes `done`, and says how the run went.
    /// A file that cannot be written ends the run with reason `io_error`: what could be
    /// written stays (`traces.csv.partial` if the traces could not be completed), the manifest
    /// says which, and the error is in the summary.
    pub fn finish(mut self, reason: proto::EndReason) -> RunSummary {
        self.bar.finish_and_clear();
        if let Some(stream) = self.rec.stream.as_mut() {
            stream.flush();
        }
        let mut error = self.rec.error.take();
        let published = self.published();
        // After a write error the traces stay `.partial`; after a limit they are whole.
        let mut traces = None;
        let mut drained = Instant::now();
        let traces_expected = self.rec.traces.is_some();
        if let Some(file) = self.rec.traces.take() {
            let finished = file.finish();
            if let Some(limit) = finished.limit {
                error.get_or_insert(limit);
            }
            traces = finished.file.map_err(|e| error = Some(e)).ok();
            drained = finished.drained;
        }
        // The run's time includes writing every sample (not the file's final sync).
        let sim_seconds = self.started.map_or(0.0, |s| drained.saturating_duration_since(s).as_secs_f64());
        // Spikes are found in step order; a stable sort puts them in time order across sources.
        self.spikes.sort_by(|a, b| a.t.total_cmp(&b.t));
        let mut counts = vec![0usize; self.sources.len()];
        for s in &self.spikes {
            counts[s.source as usize] += 1;
        }
        let spikes = match &self.out_dir {
            Some(dir) => self.write_spikes(dir).map_err(|e| error = error.take().or(Some(e))).ok(),
            None => None,
        };
        let mut reason = error.as_ref().map_or(reason, end_reason);
        if let Some(d) = self.diverged.take() {
            reason = proto::EndReason::Diverged;
            error.get_or_insert(AppError::Diverged(d));
        }
        if let Some(log) = self.log.as_mut() {
            log.flush();
            if let Some(e) = log.error.take() {
                eprintln!("spikebus: {e}");
            }
        }
        let (t, steps) = (self.sim.t(), self.sim.step_index());
        let files: Vec<&Written> = [&traces, &spikes].into_iter().flatten().collect();
        let complete = files.len() == 1 + usize::from(traces_expected);
        if let Some(dir) = &self.out_dir {
            if let Err(e) = self.write_manifest(dir, reason, complete, t, steps, &files, error.as_ref()) {
                error.get_or_insert(e);
            }
        }
        let error = error.map(|e| e.to_string());
        if let Some(e) = &error {
            eprintln!("spikebus: {e}");
        }
        let telemetry = self.telemetry.unwrap_or(proto::Totals { wait: 0.0, sim: sim_seconds, exchanges: 0 });
        if let Some(stream) = self.rec.stream.as_mut() {
            let msg = proto::DonePub {
                seq: stream.publisher.next_seq(),
                reason,
                t,
                step: steps,
                published,
                error: error.clone(),
                telemetry,
            };
            stream.publish(proto::TOPIC_DONE, &msg);
        }
        RunSummary {
            reason,
            steps,
            t,
            spikes: self.sources.iter().cloned().zip(counts).collect(),
            sim_seconds,
            traces_path: traces.map(|w| w.path),
            spikes_path: spikes.map(|w| w.path),
            published,
            error,
            telemetry,
        }
    }

    fn write_spikes(&self, dir: &Path) -> Result<Written, AppError> {
        let mut file = CsvFile::create(&dir.join("spikes.csv"), &["source", "t"])?;
        for s in &self.spikes {
            file.row(Some(&self.sources[s.source as usize]), [s.t])?;
        }
        file.finish()
    }

    /// manifest.json, written last and atomically: a run's outputs are complete and its own
    /// exactly when the manifest is there and every file's SHA-256 matches it.
    #[allow(clippy::too_many_arguments)]
    fn write_manifest(
        &self,
        dir: &Path,
        reason: proto::EndReason,
        complete: bool,
        t: f64,
        steps: u64,
        files: &[&Written],
        error: Option<&AppError>,
    ) -> Result<(), AppError> {
        let file = |w: &Written| {
            let name = w.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut entry = serde_json::json!({"bytes": w.bytes, "sha256": w.sha256});
            if name.starts_with("traces.") {
                entry["columns"] = serde_json::json!(self.columns);
            }
            (name, entry)
        };
        let manifest = serde_json::json!({
            "spikebus": env!("CARGO_PKG_VERSION"),
            "complete": complete,
            "reason": reason,
            "error": error.map(|e| e.to_string()),
            "model": self.sim.model().origin,
            "set": self.sets,
            "t": t,
            "steps": steps,
            "restores": self.restores,
            "from_snapshot": self.from_snapshot,
            "files": files.iter().map(|w| file(w)).collect::<serde_json::Map<_, _>>(),
        });
        let text = serde_json::to_string_pretty(&manifest).expect("a JSON value serializes");
        write_atomic(&dir.join("manifest.json"), text.as_bytes())
    }
}

/// Runs from initialization to tstop without pausing (or until `stop` is raised, checked at
/// every step boundary, or an output cannot be written).
pub fn free_run(mut session: Session, wait_subscribers: usize, stop: &Stop) -> Result<RunSummary, AppError> {
    // Nobody pauses a free run to read the state: outputs nothing here reads are skipped.
    let read = session.reads_outputs();
    session.sim.set_outputs_read(read);
    // Nothing here looks at a boundary but the recorder: the engine may run several steps
    // per `advance` (windows).
    if let Some(sampled) = session.window_signals() {
        session.sim.set_windows(Some(&sampled));
    }
    session.announce(wait_subscribers, stop)?;
    loop {
        match session.advance().0 {
            Pause::Boundary(b) if b.end => return Ok(session.finish(proto::EndReason::End)),
            Pause::Interrupted => return Ok(session.finish(proto::EndReason::Signal)),
            Pause::Limit(hit) => {
                session.limit(hit);
                return Ok(session.finish(proto::EndReason::Limit));
            }
            Pause::Boundary(_) => {
                if stop.requested() {
                    return Ok(session.finish(proto::EndReason::Signal));
                }
                if let Some(reason) = session.must_end() {
                    return Ok(session.finish(reason));
                }
            }
            _ => {}
        }
    }
}

/// The end of a run that met `e`.
fn end_reason(e: &AppError) -> proto::EndReason {
    match e {
        AppError::Limit(_) => proto::EndReason::Limit,
        AppError::Diverged(_) => proto::EndReason::Diverged,
        AppError::Helics(_) => proto::EndReason::Stop,
        _ => proto::EndReason::IoError,
    }
}
