//! The canonical MessagePack codec of [`Value`] (PROTOCOL.md section 2).

use crate::{CodecError, Value};

/// Appends the canonical encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    todo!()
}

/// The canonical encoding of `value`.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Decodes exactly one value that fills `bytes`, containers nested at most `max_depth`.
pub fn decode(bytes: &[u8], max_depth: usize) -> Result<Value, CodecError> {
    todo!()
}
