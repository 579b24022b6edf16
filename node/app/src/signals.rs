//! Stopping on signals: the first SIGINT or SIGTERM asks the run to stop at the next step
//! boundary (files are written, `done` is published, the exit status is 128 + the signal); a
//! second one ends the process at once. signal-hook rather than ctrlc: the exit status needs
//! to know which signal arrived, which ctrlc's handler is not told.

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
