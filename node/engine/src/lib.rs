//! spikebus-engine: a pure, deterministic re-implementation of NEURON's fixed-step simulation
//! for the models spikebus supports (sections with hh and pas, ExpSyn, Exp2Syn, IClamp,
//! NetStim, VecStim, NetCon), reproducing NEURON 9.0.2 bit for bit. No I/O happens here: a
//! model arrives as text, results leave through callbacks and buffers.
//!
//! - `model`: the description of what is simulated (and `parse`: model files);
//! - `morphology`: 3-d points and their geometry, SWC files imported as NEURON's Import3d does;
//! - `signal`: names of recordable variables;
//! - `sim`: execution, split at the points where a controller may pause it;
//! - `exp`: libm's `exp`, bit for bit, over whole slices;
//! - `xxh64`: the digest of the state hash.

pub mod error;
pub mod mech;
pub mod exp;
pub mod expr;
pub mod model;
pub mod morphology;
pub mod parse;
pub mod population;
pub mod signal;
pub mod write;
pub mod sim;
pub mod xxh64;

pub use error::{Error, Result};
pub use model::Model;
pub use parse::{parse_model, parse_model_with};
pub use sim::{Boundary, Kernels, LimitHit, Limits, Pause, SignalRef, Sim, Spike, Stops};
