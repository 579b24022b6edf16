//! `spikebus replay LOG`: a session recorded with `--control-log` run again without a
//! controller. The model comes from the log's header; the requests are applied through the
//! same `Steer` the lockstep uses, at the sync points they were applied at; the state hash is
//! compared with the log's at every logged step boundary and at every sync point before its
//! requests apply. The first difference ends the replay (reason `diverged`, exit 7) naming
//! the step; a replay that agrees to the end writes the session's files again, bit for bit.

use std::collections::VecDeque;
use std::path::Path;

use spikebus_engine::Limits;
use spikebus_protocol::{self as proto, Action};

use crate::control_log::{self, Applied, Entry, Log};
use crate::error::AppError;
use crate::lockstep::steer::Outcome;
use crate::lockstep::{Steer, Watch};
use crate::record::DtClock;
use crate::run::{Expected, RunOptions, RunSummary, Session};
use crate::signals::Stop;
use crate::snapshot::{self, LockState, Snapshots};
use crate::traces::TraceFormat;

/// What the command line gives a replay.
pub struct ReplayOptions<'a> {
    pub log: &'a Path,
    pub out_dir: Option<std::path::PathBuf>,
    pub threads: usize,
    /// The snapshot file the logged node started from (when it did).
    pub from_snapshot: Option<&'a Path>,
}

/// Runs the replay; the run's summary (reason `diverged` when it diverged).
pub fn replay(opts: &ReplayOptions, stop: &Stop) -> Result<RunSummary, AppError> {
    let Log { header, entries } = control_log::read(opts.log)?;
    let bad = |why: String| AppError::Usage(format!("replay {}: {why}", opts.log.display()));
    if header.state_format != spikebus_engine::sim::STATE_FORMAT {
        return Err(bad(format!(
            "the log's states have layout {}; this spikebus has layout {}",
            header.state_format,
            spikebus_engine::sim::STATE_FORMAT
        )));
    }
    let mut model = crate::cli::model_of(&header.model)?;
    model.record = header.model.record.clone();
    model.record_dt = header.model.record_dt;
    let mut sim = crate::cli::sim_with_threads(model, opts.threads)?;
    let l = header.limits;
    sim.set_limits(Limits { max_steps: l.max_steps, max_events_per_step: l.max_events_per_step, max_queue: l.max_queue })?;
    let start = match (&header.from_snapshot, opts.from_snapshot) {
        (None, None) => None,
        (Some(h), Some(file)) => {
            let (fh, words) = snapshot::read_file(file)?;
            if fh.hash != *h {
                return Err(bad(format!("the session started from a snapshot of hash {h}; {} holds {}", file.display(), fh.hash)));
            }
            snapshot::load_into(&mut sim, &fh, &words, file)?;
            Some(fh)
        }
        (Some(h), None) => {
            return Err(bad(format!("the session started from a snapshot file (hash {h}): give it with --from-snapshot FILE")))
        }
        (None, Some(_)) => return Err(bad("the session did not start from a snapshot: no --from-snapshot".into())),
    };
    let format = match header.format.as_str() {
        "csv" => TraceFormat::Csv,
        "npy" => TraceFormat::Npy,
        f => return Err(bad(format!("unknown traces format `{f}`"))),
    };
    let run_opts = RunOptions {
        out_dir: opts.out_dir.clone(),
        progress: false,
        pub_every: 1,
        pub_batch: 1,
        pub_signals: None,
        sets: header.model.sets.clone(),
        max_output: header.max_output,
        format,
        source: header.model.clone(),
    };
    let mut session = Session::new(sim, &run_opts).map_err(|e| AppError::Usage(e.to_string()))?;
    session.sim.set_interrupt(stop.shared_flag());
    let boundaries: VecDeque<control_log::Boundary> =
        entries.iter().filter_map(|e| if let Entry::Boundary(b) = e { Some(b.clone()) } else { None }).collect();
    session.expect = Some(Expected { every: header.every, queue: boundaries, last_match: None, checked: 0 });
    let resume = match &start {
        Some(fh) => {
            session.set_recorder_state(fh.record_clock.map(DtClock::from_parts), fh.at_boundary);
            session.from_snapshot = Some(fh.hash.clone());
            let watch = Watch::from_state(&session.sim, &fh.watch)?;
            Some(LockState { point: fh.point.into(), watch, pending: fh.pending.clone() })
        }
        None => None,
    };
    let snapshots = Snapshots::new(l.max_snapshots, l.snapshot_memory);
    let mut steer = Steer::new(session, snapshots, l.max_names, 0, stop);
    if let Some(r) = resume {
        steer.resume_at(r);
    }
    let reason = drive(&mut steer, &entries);
    steer.close();
    let checked = steer.session.expect.as_ref().map_or(0, |e| e.checked);
    let applied = entries.iter().filter(|e| matches!(e, Entry::Apply(_) | Entry::Free(_))).count();
    println!("spikebus: replay of {}: {checked} state hashes compared, {applied} logged sync points", opts.log.display());
    let summary = steer.session.finish(reason);
    Ok(summary)
}

/// Applies the logged requests in order; how the run ended.
fn drive(steer: &mut Steer, entries: &[Entry]) -> proto::EndReason {
    for (i, e) in entries.iter().enumerate() {
        let line = i + 2;
        match e {
            Entry::Boundary(_) => {}
            Entry::Apply(a) | Entry::Free(a) => {
                if let Err(why) = at_point(steer, a) {
                    steer.session.diverged = Some(format!("line {line}: {why}"));
                    return proto::EndReason::Diverged;
                }
                let by = match requests(a) {
                    Ok(by) => by,
                    Err(why) => {
                        steer.session.diverged = Some(format!("line {line}: {why}"));
                        return proto::EndReason::Diverged;
                    }
                };
                if matches!(e, Entry::Free(_)) {
                    return steer.run_free(by);
                }
                // A run that ended before its next sync point (a signal, a write error): the
                // actions, then as many pauses as the log counts.
                let ended_between = entries[i + 1..]
                    .iter()
                    .find(|e| !matches!(e, Entry::Boundary(_)))
                    .and_then(|e| if let Entry::End(end) = e { Some(end.pauses) } else { None })
                    .filter(|&n| n > 0);
                if let Some(n) = ended_between {
                    if let Err(Outcome::Finish(reason)) = steer.act(by) {
                        return reason;
                    }
                    let reason = entries[i + 1..].iter().find_map(|e| if let Entry::End(end) = e { Some(end.reason) } else { None });
                    return steer.run_pauses(n).unwrap_or(reason.expect("found above"));
                }
                if let Outcome::Finish(reason) = steer.apply(by) {
                    return reason;
                }
            }
            Entry::End(end) => {
                // The session ended without a request ending it (a signal, a limit, a
                // timeout, a write error): the same number of pauses after the last sync point.
                return steer.run_pauses(end.pauses).unwrap_or(end.reason);
            }
        }
    }
    // A log cut short (the node was killed): the replay stops where it stops.
    proto::EndReason::Signal
}

/// Whether the replay is at the sync point the log applied `a` at, in the same state.
fn at_point(steer: &Steer, a: &Applied) -> Result<(), String> {
    let p = &steer.pending;
    if p.step != a.step || p.t.to_bits() != a.t.to_bits() || p.reasons != a.reasons {
        return Err(format!(
            "the replay diverges at step {} (t={}): it paused for {:?} where the log paused at step {} (t={}) for {:?}",
            p.step, p.t, p.reasons, a.step, a.t, a.reasons
        ));
    }
    let h = steer.hash();
    if h != a.hash {
        return Err(format!(
            "the replay diverges at step {} (t={}), at a sync point: its state hash is {h}, the log's {}",
            p.step, p.t, a.hash
        ));
    }
    Ok(())
}

/// The requests of a logged sync point, decoded and checked as the node checked them.
fn requests(a: &Applied) -> Result<Vec<(String, Vec<Action>)>, String> {
    let mut by: Vec<(String, Vec<Action>)> = vec![];
    for b in &a.by {
        by.push((b.client.clone(), control_log::actions_from_json(&b.actions)?));
    }
    Ok(by)
}
