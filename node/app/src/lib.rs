//! spikebus-app: the node around the engine. `cli` parses arguments and dispatches; `run`
//! holds a run's outputs and drives a free run; `lockstep` serves controllers at sync points
//! through a `transport::Transport`; `helics` makes the node a HELICS federate; `bus` is all
//! the ZeroMQ code and `unix` the control channel over a Unix-domain socket; `output` writes
//! files that are never torn, `traces` writes the samples on a thread of its own, `record`
//! says which samples NEURON records; `snapshot` keeps and writes runs' states,
//! `control_log` records what controllers did and `replay` runs it again.

pub mod bus;
pub mod cli;
pub mod control_log;
mod error;
pub mod helics;
pub mod lockstep;
pub mod output;
pub mod record;
pub mod replay;
pub mod run;
pub mod signals;
pub mod snapshot;
pub mod traces;
pub mod transport;
pub mod unix;

pub use error::AppError;
