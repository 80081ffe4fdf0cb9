//! Not API: the properties that the fuzz targets in `fuzz/` check, one function per target,
//! so that the fuzzers and the replay of their corpora run the very same checks.
//!
//! Compiled only for the fuzz build (cargo-fuzz passes `--cfg fuzzing` to every crate it
//! builds) and for this crate's own tests, which replay the committed corpora
//! (`fuzz/corpus/<target>/`) on stable, so CI keeps every input the fuzzers kept green.
//! An ordinary build does not contain this module, so it widens nothing that users see;
//! being inside the crate, it can also hold the envelope scanner to the full decoder,
//! which is not public.
//!
//! Each function takes the fuzzer's bytes and panics when a property fails. A decoder may
//! refuse any input, but never panics or hangs, and what it accepts obeys PROTOCOL.md
//! sections 2, 4 and 6: every reader of MessagePack agrees on what is valid, a decoded
//! value re-encodes canonically and decodes back to the same bytes in both encodings, no
//! accepted map repeats a key and no set an element, and a refused frame still names its
//! `id` and `group`.

mod codec;
mod server;
mod wire;

#[cfg(test)]
mod replay;

pub use codec::{json, msgpack};
pub use server::server_message;
pub use wire::{client_frame, push};
