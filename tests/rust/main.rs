//! spikebus's integration tests: one test binary, a module per area.

mod bus;
mod cli;
mod golden;
mod node;
mod recording;
mod redteam;
mod reliability;
mod replay;
mod snapshot;
mod unix;

/// The binary under test: this build's, or `$SPIKEBUS_BIN` (to run the suite against another
/// build, e.g. to show that a red-team test fails on an older one).
pub fn bin() -> std::path::PathBuf {
    std::env::var_os("SPIKEBUS_BIN").map_or_else(|| env!("CARGO_BIN_EXE_spikebus").into(), Into::into)
}
