//! When a run records a sample: after every step (NEURON's `Vector.record(&x)`), or at
//! t = 0, Dt, 2 Dt, ... (NEURON's `Vector.record(&x, Dt)`, `[record] dt`).
//!
//! NEURON 9.0.2 records with a Dt through an event (`VecRecordDt`, nrncvode/netcvode.cpp):
//! finitialize queues it at t = 0; each delivery appends the variable's value (for `&t`, the
//! event's own time) and queues the next at `te + Dt`, so the times are accumulated sums
//! (0.1, 0.2, 0.30000000000000004, ...), not multiples. A fixed step delivers events twice:
//! those due by t_{n+1} at the end of step n+1 (after the step's states and per-step samples)
//! and those due by t_n + dt/2 at the start of step n+1 (before anything moves). Either way
//! the values are those of the state at t_n or t_{n+1}, the step boundary: so a Dt sample is
//! the boundary's sample, taken for every te <= t (at the boundary) and for every
//! te <= t + dt/2 (when the next step begins; none after the last step). Checked against
//! NEURON for Dt = dt/2, dt, 0.03, 0.01, 0.1, 0.3, 1 (tests/golden `recdt_*` variants).
//!
//! One exception: a value that a synaptic event changes (ExpSyn `g`, Exp2Syn `A` and `B`)
//! is recorded after the events delivered before the record event in the same delivery,
//! which a step boundary does not show; such signals cannot be recorded with a Dt
//! (`event_written`).

use std::sync::atomic::{AtomicBool, Ordering};

use spikebus_engine::{SignalRef, Sim};

/// NEURON's record event: the time of the next Dt sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DtClock {
    dt: f64,
    next: f64,
}

impl DtClock {
    pub fn new(dt: f64) -> Self {
        DtClock { dt, next: 0.0 }
    }

    /// Dt and the next record time (what a snapshot file keeps).
    pub fn parts(&self) -> (f64, f64) {
        (self.dt, self.next)
    }

    pub fn from_parts((dt, next): (f64, f64)) -> Self {
        DtClock { dt, next }
    }

    /// finitialize: the next sample is at t = 0.
    pub fn restart(&mut self) {
        self.next = 0.0;
    }

    /// The next record time if it is due by `til`; the clock then moves on by Dt.
    #[inline]
    pub fn take_due(&mut self, til: f64) -> Option<f64> {
        (self.next <= til).then(|| {
            let te = self.next;
            self.next = te + self.dt;
            te
        })
    }
}

/// Whether a synaptic event (NET_RECEIVE) writes the signal: such a value differs between a
/// step boundary and NEURON's Dt record event.
pub fn event_written(sim: &Sim, r: SignalRef) -> bool {
    sim.written_by_events(r)
}

/// The samples of a run from t = 0 to `tstop` with `dt` that nothing changes on the way
/// (NEURON's loop, counted without simulating); None if `cancel` was raised meanwhile.
pub fn planned_samples(dt: f64, tstop: f64, record_dt: Option<f64>, cancel: &AtomicBool) -> Option<u64> {
    let stop = tstop - dt / 2.0;
    let mut clock = record_dt.map(DtClock::new);
    let count = |clock: &mut Option<DtClock>, til: f64, boundary: bool| -> u64 {
        match clock {
            None => u64::from(boundary),
            Some(c) => std::iter::from_fn(|| c.take_due(til)).count() as u64,
        }
    };
    let mut t = 0.0f64;
    let mut n = count(&mut clock, t, true);
    let mut steps = 0u64;
    while t < stop {
        n += count(&mut clock, t + 0.5 * dt, false);
        t += 0.5 * dt;
        t += 0.5 * dt;
        n += count(&mut clock, t, true);
        steps += 1;
        if steps.is_multiple_of(1 << 20) && cancel.load(Ordering::Relaxed) {
            return None;
        }
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_times_are_accumulated_sums() {
        let mut c = DtClock::new(0.1);
        let times: Vec<f64> = std::iter::from_fn(|| c.take_due(0.35)).collect();
        assert_eq!(times, [0.0, 0.1, 0.2, 0.30000000000000004]);
    }

    #[test]
    fn planned_samples_follow_neuron() {
        let no = AtomicBool::new(false);
        // The seed's 500 ms: 20,000 steps; Dt = dt loses the sample at 500 (te = 499.975... +
        // 0.025 passes the last t), Dt = 0.1 gives 5,000 (NEURON's counts).
        assert_eq!(planned_samples(0.025, 500.0, None, &no), Some(20_001));
        assert_eq!(planned_samples(0.025, 500.0, Some(0.025), &no), Some(20_000));
        assert_eq!(planned_samples(0.025, 500.0, Some(0.1), &no), Some(5_000));
        assert_eq!(planned_samples(0.025, 500.0, Some(0.01), &no), Some(50_000));
        assert_eq!(planned_samples(0.025, 500.0, Some(0.0125), &no), Some(40_001));
        assert_eq!(planned_samples(0.025, 500.0, Some(1.0), &no), Some(500));
    }
}
