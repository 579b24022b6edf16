//! The app's error type and the exit code each kind of failure maps to.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AppError {
    /// The model (file, `--set`, recordings) is not usable: a start-up error.
    #[error("{0}")]
    Model(#[from] spikebus_engine::Error),

    #[error("cannot read model file {path}: {source}")]
    ReadModel { path: PathBuf, source: std::io::Error },

    /// A command-line value that clap cannot check by itself.
    #[error("{0}")]
    Usage(String),

    /// A socket could not be bound or used.
    #[error("{0}")]
    Bus(String),

    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },

    /// HELICS could not be loaded or joined (a start-up error), or the federation failed
    /// mid-run (the run ends there, its outputs written).
    #[error("HELICS: {0}")]
    Helics(String),

    /// A run went past one of the node's limits (what, and the option that sets it).
    #[error("the run was ended: {0}")]
    Limit(String),

    /// A replay reached another state than the one its log holds (where, and how).
    #[error("{0}")]
    Diverged(String),
}

impl AppError {
    /// 2 for anything wrong before the run starts (bad model, bad arguments), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Model(_) | AppError::ReadModel { .. } | AppError::Usage(_) | AppError::Bus(_) | AppError::Helics(_) => 2,
            AppError::Write { .. } | AppError::Limit(_) | AppError::Diverged(_) => 1,
        }
    }
}
