//! The tagged-JSON view of [`Value`] (PROTOCOL.md section 2).

use crate::{CodecError, Value};

/// Appends the tagged-JSON text of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    todo!()
}

/// The tagged-JSON text of `value`.
pub fn encode(value: &Value) -> String {
    todo!()
}

/// Decodes one JSON document (surrounding white space allowed), containers nested at most
/// `max_depth` counted as the values they stand for.
pub fn decode(bytes: &[u8], max_depth: usize) -> Result<Value, CodecError> {
    todo!()
}
