//! spikebus's integration tests: one test binary, a module per area.

mod cli;
mod golden;
