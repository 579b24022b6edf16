//! The spikebus wire protocol, version 2 (the contract is `schemas/README.md` and the JSON
//! Schemas beside it). Every message is a MessagePack map with named fields; requests and
//! replies are tagged by `op`. This crate only defines and (de)serializes messages: it does not
//! touch sockets or the simulation.

mod control;
mod stream;

pub use control::*;
pub use stream::*;

/// The protocol version this crate speaks (`hello.protocol`).
pub const PROTOCOL_VERSION: u32 = 2;

/// Encodes a message as a MessagePack map with named fields, appending to `buf`.
pub fn encode_into<T: serde::Serialize>(buf: &mut Vec<u8>, msg: &T) {
    rmp_serde::encode::write_named(buf, msg).expect("writing MessagePack to a Vec cannot fail");
}

pub fn encode<T: serde::Serialize>(msg: &T) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    encode_into(&mut v, msg);
    v
}
