//! [`Packed`]: one value held as its canonical MessagePack bytes.
//!
//! The server stores and streams values in this form, so a pull or a fan-out splices the
//! stored bytes into the MessagePack response instead of decoding and re-encoding them.

use crate::{CodecError, Value};

/// The canonical MessagePack encoding of one valid [`Value`]. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed(std::sync::Arc<[u8]>);

impl Packed {
    /// Encodes a value (canonical MessagePack).
    pub fn from_value(value: &Value) -> Packed {
        todo!()
    }
    /// Takes bytes that must hold exactly one valid value no deeper than `max_depth`
    /// (e.g. read back from storage, or sliced from a request).
    pub fn from_bytes(bytes: &[u8], max_depth: usize) -> Result<Packed, CodecError> {
        todo!()
    }
    /// Wraps bytes already known to be one valid, canonical value (as written by this crate).
    pub fn from_trusted(bytes: Vec<u8>) -> Packed {
        todo!()
    }
    /// The MessagePack bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// The encoded size in bytes (what the value size limit measures).
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Never true for a valid value; present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Decodes the value.
    pub fn to_value(&self) -> Value {
        todo!()
    }
}
