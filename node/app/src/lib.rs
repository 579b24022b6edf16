//! spikebus-app: the command line around the engine. `cli` parses arguments and dispatches,
//! `run` drives a free run, `output` writes traces and spikes without ever leaving a torn file.

pub mod cli;
mod error;
pub mod output;
pub mod run;

pub use error::AppError;
