//! Threads for the step kernels: `n - 1` workers beside the calling thread, each with a fixed,
//! contiguous share of the tiles, started together for each kernel call (fork-join) and
//! waited for before the call returns. Everything else — events, spike detection order,
//! sampling — stays on the calling thread, so the results are the same for every thread
//! count: each cell's arithmetic does not depend on which thread runs it.
//!
//! Between calls a worker spins briefly (a step of a large network follows the previous one
//! within microseconds), then sleeps on a condition variable (a run paused for a controller
//! must leave the CPUs to it). A share is run by whichever thread claims it first for the
//! call: the calling thread, done with its own, takes the shares of workers that have not
//! woken yet, so that a descheduled or sleeping worker delays nothing.

use std::cell::UnsafeCell;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::cells::Tile;
use super::kernels::{self, Kernels, Work};
use crate::mech::Rates;

/// Spins of a waiting worker before it sleeps (about 20 µs).
const SPINS: u32 = 20_000;

/// One kernel call, as the workers see it.
#[derive(Clone, Copy)]
struct Job {
    tiles: *mut Tile,
    rates: *const Rates,
    work: Work,
    kernels: Kernels,
}

/// A value on a cache line of its own, so that threads writing neighbouring values do not
/// take the line from each other (each such transfer between two vCPUs costs a fraction of a
/// microsecond, and a step of 1,000 cells on two threads is about 5).
#[repr(align(64))]
struct Line<T>(T);

impl<T> std::ops::Deref for Line<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// What a worker reads to start: the epoch and the job beside it, on one cache line.
#[repr(C, align(64))]
struct Call {
    /// The current call, counted from 1; a worker looks at each epoch once.
    epoch: AtomicU64,
    job: UnsafeCell<Job>,
}

struct Shared {
    call: Call,
    /// Per share, the last epoch it was claimed in: a thread runs a share if it raises this
    /// to the current epoch.
    claim: Vec<Line<AtomicU64>>,
    /// Shares finished in the current epoch.
    finished: Line<AtomicUsize>,
    stop: AtomicBool,
    /// Each thread's tiles (index 0 is the calling thread's).
    shares: UnsafeCell<Vec<Range<usize>>>,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    /// A worker's kernel call panicked (the call then panics too).
    panicked: AtomicBool,
}

// SAFETY: `job` and `shares` are written only by the calling thread at the start of a call,
// when every share of the previous call is finished; a worker reads them only after it
// claimed a share of the current call, and a share can be claimed only while its call is
// not finished (the caller waits for every share), so no read overlaps a write.
unsafe impl Sync for Shared {}
unsafe impl Send for Shared {}

pub struct Pool {
    shared: Arc<Shared>,
    /// The calling thread's scratch rows for the shares it runs (`kernels::dispatch`).
    scratch: Vec<f64>,
    workers: Vec<JoinHandle<()>>,
}

impl Shared {
    /// Claims share i for epoch e: true for exactly one thread.
    fn claim(&self, i: usize, e: u64) -> bool {
        self.claim[i].fetch_max(e, AcqRel) < e
    }

    /// Runs share i of the current job.
    ///
    /// # Safety
    /// The caller claimed share i for the current epoch.
    unsafe fn run_share(&self, i: usize, scratch: &mut [f64]) {
        // SAFETY: see `Shared`'s Sync: the job is stable while the share is claimed, and the
        // shares are disjoint ranges of the tiles.
        unsafe {
            let job = *self.call.job.get();
            let r = (&*self.shares.get())[i].clone();
            let tiles = std::slice::from_raw_parts_mut(job.tiles.add(r.start), r.len());
            kernels::dispatch(job.kernels, tiles, job.work, &*job.rates, scratch);
        }
    }
}

impl Pool {
    /// A pool for `threads` threads in all (the caller and `threads - 1` workers).
    /// `scratch_len`: the rows each thread needs (`Cells::scratch_len`).
    pub fn new(threads: usize, scratch_len: usize) -> Pool {
        let shared = Arc::new(Shared {
            call: Call {
                epoch: AtomicU64::new(0),
                job: UnsafeCell::new(Job {
                    tiles: std::ptr::null_mut(),
                    rates: std::ptr::null(),
                    work: Work::States { t: 0.0, dt: 0.0 },
                    kernels: Kernels::Portable,
                }),
            },
            claim: (0..threads).map(|_| Line(AtomicU64::new(0))).collect(),
            finished: Line(AtomicUsize::new(0)),
            stop: AtomicBool::new(false),
            shares: UnsafeCell::new(vec![0..0; threads]),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            panicked: AtomicBool::new(false),
        });
        let workers = (1..threads)
            .map(|w| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("spikebus-step-{w}"))
                    .spawn(move || worker(&s, w, scratch_len))
                    .expect("a step thread starts")
            })
            .collect();
        Pool { shared, workers, scratch: vec![0.0; scratch_len] }
    }

    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `work` over all tiles, each share (one range of tiles per thread, covering them)
    /// on the thread that claims it first.
    pub fn run(&mut self, tiles: &mut [Tile], shares: &[Range<usize>], work: Work, rates: &Rates, k: Kernels) {
        // SAFETY: `tiles` is borrowed for the whole call, which waits for every share.
        unsafe { self.start(tiles.as_mut_ptr(), tiles.len(), shares, work, rates, k) };
        let s = &*self.shared;
        let e = s.call.epoch.load(Relaxed);
        if s.claim(0, e) {
            // SAFETY: claimed just now.
            unsafe { s.run_share(0, &mut self.scratch) };
            s.finished.fetch_add(1, Release);
        }
        self.join();
    }

    /// Starts `work` on the workers' shares and claims the calling thread's (share 0), which
    /// the caller then works on itself and ends with `own_done`, before `join`.
    ///
    /// # Safety
    /// `tiles` points to `len` tiles that nothing but this call touches until `join`
    /// returns, except share 0's, which the caller may use.
    pub unsafe fn start_others(&mut self, tiles: *mut Tile, len: usize, shares: &[Range<usize>], work: Work, rates: &Rates, k: Kernels) {
        // SAFETY: as the caller promised.
        unsafe { self.start(tiles, len, shares, work, rates, k) };
        let s = &*self.shared;
        let claimed = s.claim(0, s.call.epoch.load(Relaxed));
        debug_assert!(claimed, "only the calling thread claims share 0 of its own call");
    }

    /// The calling thread is done with share 0 (after `start_others`).
    pub fn own_done(&mut self) {
        self.shared.finished.fetch_add(1, Release);
    }

    /// # Safety
    /// As `start_others`.
    unsafe fn start(&mut self, tiles: *mut Tile, len: usize, shares: &[Range<usize>], work: Work, rates: &Rates, k: Kernels) {
        let s = &*self.shared;
        let n = self.threads();
        assert_eq!(shares.len(), n);
        assert!(shares.iter().all(|r| r.end <= len), "shares within the tiles");
        // SAFETY: every share of the previous epoch finished (we waited), so no worker holds
        // a claim and none reads these.
        unsafe {
            *s.call.job.get() = Job { tiles, rates, work, kernels: k };
            let mine = &mut *s.shares.get();
            // Written only when they change (they do not from step to step): a write would
            // take the line from the workers' caches at every call.
            if mine[..] != shares[..] {
                mine.clear();
                mine.extend_from_slice(shares);
            }
        }
        s.finished.store(0, Relaxed);
        let e = s.call.epoch.load(Relaxed) + 1;
        s.call.epoch.store(e, SeqCst);
        if s.sleepers.load(SeqCst) > 0 {
            let _guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.wake.notify_all();
        }
    }

    /// Runs the shares no worker has claimed yet, then waits for every share of the call.
    pub fn join(&mut self) {
        let s = &*self.shared;
        let n = self.threads();
        let e = s.call.epoch.load(Relaxed);
        for i in 1..n {
            if s.claim(i, e) {
                // SAFETY: claimed just now.
                unsafe { s.run_share(i, &mut self.scratch) };
                s.finished.fetch_add(1, Release);
            }
        }
        let mut spins = 0u32;
        while s.finished.load(Acquire) < n {
            spins += 1;
            if spins < 1000 {
                std::hint::spin_loop();
            } else {
                // A worker holding a share is not running: let it.
                std::thread::yield_now();
            }
        }
        assert!(!s.panicked.load(Relaxed), "a step thread panicked");
    }
}

fn worker(s: &Shared, me: usize, scratch_len: usize) {
    let mut scratch = vec![0.0; scratch_len];
    let mut seen = 0u64;
    loop {
        let mut spins = 0;
        let e = loop {
            let e = s.call.epoch.load(Acquire);
            if e != seen || s.stop.load(Relaxed) {
                break e;
            }
            spins += 1;
            if spins < SPINS {
                std::hint::spin_loop();
                continue;
            }
            let mut guard = s.lock.lock().unwrap_or_else(|e| e.into_inner());
            s.sleepers.fetch_add(1, SeqCst);
            while s.call.epoch.load(SeqCst) == seen && !s.stop.load(SeqCst) {
                guard = s.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            s.sleepers.fetch_sub(1, SeqCst);
            drop(guard);
            spins = 0;
        };
        if s.stop.load(Acquire) {
            return;
        }
        seen = e;
        if s.claim(me, e) {
            // SAFETY: claimed just now.
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe { s.run_share(me, &mut scratch) }));
            if ok.is_err() {
                s.panicked.store(true, Relaxed);
            }
            s.finished.fetch_add(1, Release);
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Contiguous shares of the tiles for `threads` threads, of about equal work (nodes times
/// lanes).
pub fn shares(tiles: &[Tile], threads: usize) -> Vec<Range<usize>> {
    let cost: Vec<usize> = tiles.iter().map(|t| t.template.nnode as usize * t.lanes).collect();
    let total: usize = cost.iter().sum();
    let mut out = Vec::with_capacity(threads);
    let (mut start, mut acc) = (0, 0);
    for k in 1..=threads {
        let goal = total * k / threads;
        let mut end = start;
        while end < tiles.len() && (acc + cost[end] / 2 <= goal || k == threads) {
            acc += cost[end];
            end += 1;
        }
        out.push(start..end);
        start = end;
    }
    out
}
