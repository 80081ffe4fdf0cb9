//! # atomsync-proto: the wire contract in code
//!
//! The one crate that the server and every Rust client share. It holds nothing heavier
//! than the contract of `PROTOCOL.md`:
//!
//! - [`value`](mod@value): [`Value`], the typed value (keywords, sets, UUIDs, instants, bytes, big
//!   integers, maps with any keys) and the `value!`/`kw!` macros.
//! - [`msgpack`]: the canonical MessagePack codec (extensions -1, 1, 2, 3), depth-bounded.
//! - [`json`]: the tagged-JSON view (`$kw`, `$set`, `$inst`, ...), depth-bounded.
//! - [`packed`]: [`Packed`], one value held as its validated MessagePack bytes, the form
//!   values are stored and streamed in.
//! - [`wire`]: the request, response and WebSocket messages, their two encodings, and
//!   the validation that turns a body into a typed request with errors that say where.
//! - [`serde_value`]: conversion between [`Value`] and any serde type (`to_value`,
//!   `from_value`), so that applications keep their own structs.
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

pub mod error;
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
mod macros;
pub mod msgpack;
pub mod packed;
pub mod serde_value;
pub mod value;
pub mod wire;

pub use error::{CodecError, ErrorCode, WireError};
pub use packed::Packed;
pub use serde_value::{from_value, to_value};
pub use value::{Inst, Value};
pub use wire::{Encoding, Limits};
