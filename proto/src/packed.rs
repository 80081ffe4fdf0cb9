//! [`Packed`]: one value held as its canonical MessagePack bytes.
//!
//! The server stores and streams values in this form, so a pull or a fan-out splices the
//! stored bytes into the MessagePack response instead of decoding and re-encoding them.

use crate::{CodecError, Value, json, msgpack};

/// The depth bound used when reading held bytes back. They were checked against the
/// caller's limit when they came in; this bound keeps bytes wrongly passed to
/// [`Packed::from_trusted`] from recursing without end, and is low enough for the
/// recursive readers to stay well inside a 2 MiB thread stack even in a debug build
/// (about 3.5 KiB per level there, 0.7 KiB optimized).
const TRUSTED_DEPTH: usize = 256;

/// The canonical MessagePack encoding of one valid [`Value`]. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed(std::sync::Arc<[u8]>);

impl Packed {
    /// Encodes a value (canonical MessagePack).
    pub fn from_value(value: &Value) -> Packed {
        Packed(msgpack::encode(value).into())
    }
    /// Takes bytes that must hold exactly one valid value no deeper than `max_depth`
    /// (e.g. read back from storage, or sliced from a request).
    ///
    /// Valid but non-canonical input (a float 32, a longer length form than needed) is
    /// re-encoded, so the bytes held are always the canonical encoding; canonical input,
    /// the usual case, is checked without building the value and kept as it is.
    /// `max_depth` is capped at 256, the depth up to which held bytes are read back.
    pub fn from_bytes(bytes: &[u8], max_depth: usize) -> Result<Packed, CodecError> {
        let max_depth = max_depth.min(TRUSTED_DEPTH);
        if msgpack::validate(bytes, max_depth)? {
            Ok(Packed(bytes.into()))
        } else {
            Ok(Packed::from_value(&msgpack::decode(bytes, max_depth)?))
        }
    }
    /// Encodes a value through `scratch`, a buffer reused across values, so that the
    /// held bytes take one exact allocation instead of a growing one plus a copy.
    pub(crate) fn from_value_in(value: &Value, scratch: &mut Vec<u8>) -> Packed {
        scratch.clear();
        msgpack::encode_into(value, scratch);
        Packed(scratch.as_slice().into())
    }
    /// Copies bytes the caller has just checked to be one valid, canonical value.
    pub(crate) fn from_checked(bytes: &[u8]) -> Packed {
        Packed(bytes.into())
    }
    /// Wraps bytes already known to be one valid, canonical value (as written by this crate).
    /// Nothing is checked: bytes that are not one valid value make [`Packed::to_value`]
    /// return nil and [`Packed::write_json`] write `null`.
    pub fn from_trusted(bytes: Vec<u8>) -> Packed {
        Packed(bytes.into())
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
    ///
    /// The bytes were validated (or trusted) when the `Packed` was made, so decoding
    /// cannot fail; if [`Packed::from_trusted`] was handed bad bytes anyway, this returns
    /// nil rather than panic.
    pub fn to_value(&self) -> Value {
        msgpack::decode(&self.0, TRUSTED_DEPTH).unwrap_or(Value::Nil)
    }

    /// Appends the tagged JSON of the value to `out`, transcoded straight from the
    /// MessagePack bytes (no [`Value`] is built): how the server answers JSON pulls from
    /// stored values. Bad bytes from [`Packed::from_trusted`] write `null`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let start = out.len();
        if json::transcode_msgpack(&self.0, TRUSTED_DEPTH, out).is_err() {
            out.truncate(start);
            out.extend_from_slice(b"null");
        }
    }

    /// The tagged JSON of the value.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(self.len() * 2);
        self.write_json(&mut out);
        // The transcoder writes only UTF-8.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_trusted_bytes_read_as_nil_not_a_panic() {
        for bytes in [vec![], vec![0xc1], vec![0x92, 0x01], vec![0x91; 5000]] {
            let packed = Packed::from_trusted(bytes);
            assert_eq!(packed.to_value(), Value::Nil);
            let mut out = b"[".to_vec();
            packed.write_json(&mut out);
            assert_eq!(out, b"[null");
        }
    }

    #[test]
    fn from_bytes_keeps_canonical_input_and_fixes_the_rest() {
        let canonical = msgpack::encode(&Value::list([1.5]));
        let float32 = [0x91, 0xca, 0x3f, 0xc0, 0x00, 0x00];
        assert_eq!(
            Packed::from_bytes(&canonical, 64).map(|p| p.as_bytes().to_vec()),
            Ok(canonical.clone())
        );
        assert_eq!(
            Packed::from_bytes(&float32, 64).map(|p| p.as_bytes().to_vec()),
            Ok(canonical)
        );
        assert!(Packed::from_bytes(&[0x91, 0x91, 0x01], 1).is_err());
        assert_eq!(Packed::from_value(&Value::Nil).len(), 1);
    }
}
