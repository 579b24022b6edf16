//! Stopping on signals: the first SIGINT or SIGTERM asks the run to stop at the next step
//! boundary (files are written, `done` is published, the exit status is 128 + the signal); a
//! second one ends the process at once. signal-hook rather than ctrlc: the exit status needs
//! to know which signal arrived, which ctrlc's handler is not told. A lifeline (`--lifeline
//! FD`) stops the run as one SIGTERM does when the process that started the node is gone.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::error::AppError;

#[derive(Clone, Default)]
pub struct Stop {
    requested: Arc<AtomicBool>,
    signal: Arc<AtomicUsize>,
}

impl Stop {
    /// A stop flag with no signal handlers (raise it with `request`).
    pub fn new() -> Self {
        Stop::default()
    }

    /// Installs the handlers for SIGINT and SIGTERM.
    pub fn install() -> Result<Self, AppError> {
        let stop = Stop::new();
        for sig in [SIGINT, SIGTERM] {
            let err = |e: std::io::Error| AppError::Usage(format!("cannot install a handler for signal {sig}: {e}"));
            // Registered first, so it sees the flag as it was before this signal: only a
            // second signal finds it raised and exits at once.
            signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, Arc::clone(&stop.requested)).map_err(err)?;
            signal_hook::flag::register_usize(sig, Arc::clone(&stop.signal), sig as usize).map_err(err)?;
            signal_hook::flag::register(sig, Arc::clone(&stop.requested)).map_err(err)?;
        }
        Ok(stop)
    }

    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
    }

    #[inline]
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }

    pub fn flag(&self) -> &AtomicBool {
        &self.requested
    }

    /// The flag itself, to share (the engine checks it inside long event deliveries).
    pub fn shared_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.requested)
    }

    /// The signal that asked to stop, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s as i32),
        }
    }
}

/// Watches `fd`, the read end of a pipe whose write end the starting process holds: at end of
/// file (that process is gone, however it ended; nothing else writes) this process gets one
/// SIGTERM, so the run stops exactly as on a signal. A parent-death signal (PR_SET_PDEATHSIG)
/// would not do: it comes again each time the orphan is handed to another of the dying
/// parent's threads, and a second signal exits at once, writing nothing.
#[cfg(unix)]
pub fn watch_lifeline(fd: i32) -> Result<(), AppError> {
    use std::io::Read;
    use std::os::fd::FromRawFd;

    // Descriptors 0 to 2 are stdin, stdout and stderr: never a lifeline.
    let bad = |why: String| AppError::Usage(format!("--lifeline {fd}: {why}"));
    if fd <= 2 {
        return Err(bad("expected the descriptor of a pipe's read end, above 2".into()));
    }
    // SAFETY: the descriptor is handed over by the starting process for this use only;
    // fstat tells whether it is open before anything reads it.
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    if let Err(e) = file.metadata() {
        std::mem::forget(file); // not ours to close: it is not open
        return Err(bad(format!("not an open descriptor ({e})")));
    }
    std::thread::Builder::new()
        .name("lifeline".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = signal_hook::low_level::raise(SIGTERM);
        })
        .map_err(|e| bad(format!("cannot start its thread: {e}")))?;
    Ok(())
}
