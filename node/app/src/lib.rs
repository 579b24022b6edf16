//! spikebus-app: the node around the engine. `cli` parses arguments and dispatches; `run`
//! holds a run's outputs and drives a free run; `control` is the lockstep loop with a
//! controller; `bus` is all the socket code; `output` writes files that are never torn.

pub mod bus;
pub mod cli;
pub mod control;
mod error;
pub mod output;
pub mod run;
pub mod signals;

pub use error::AppError;
