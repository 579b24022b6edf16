//! spikebus's integration tests: one test binary, a module per area.

mod bus;
mod cli;
mod golden;
mod node;
mod reliability;
