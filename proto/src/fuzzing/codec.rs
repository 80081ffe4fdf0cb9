//! The value codecs' properties: the `msgpack` and `json` fuzz targets, and the checks
//! every accepted value passes, shared with the wire targets.

use std::collections::HashSet;

use crate::{CodecError, Packed, Value};

/// The protocol's default depth limit, which the codec targets decode under.
const MAX_DEPTH: usize = 64;

/// The `msgpack` target: any bytes through every reader of MessagePack.
///
/// `decode`, `validate` (storage reads, `Packed::from_bytes`) and `transcode_msgpack` (JSON
/// pulls of stored values) must refuse the same inputs with the same error; an accepted
/// input passes [`accepted`], and `validate` calls it canonical exactly when it is the
/// value's canonical encoding.
pub fn msgpack(bytes: &[u8]) {
    let decoded = crate::msgpack::decode(bytes, MAX_DEPTH);
    let validated = crate::msgpack::validate(bytes, MAX_DEPTH);
    let mut transcoded = Vec::new();
    let transcode = crate::json::transcode_msgpack(bytes, MAX_DEPTH, &mut transcoded);
    let packed = Packed::from_bytes(bytes, MAX_DEPTH);
    match decoded {
        Err(error) => {
            refused(&error);
            assert_eq!(validated, Err(error.clone()), "validate vs decode");
            assert_eq!(transcode, Err(error.clone()), "transcode vs decode");
            assert_eq!(packed.map(|p| p.len()), Err(error), "Packed vs decode");
        }
        Ok(value) => {
            let (canonical, text) = accepted(&value, MAX_DEPTH);
            assert_eq!(
                validated,
                Ok(canonical == bytes),
                "validate's canonical flag"
            );
            assert_eq!(transcoded, text.as_bytes(), "transcode vs encode");
            let packed = packed.expect("Packed::from_bytes refused what decode took");
            assert_eq!(
                packed.as_bytes(),
                canonical.as_slice(),
                "Packed holds canonical"
            );
            assert_eq!(packed.to_json(), text, "Packed::to_json");
            let (prefix, used) = crate::msgpack::decode_prefix(bytes, MAX_DEPTH)
                .expect("decode_prefix refused what decode took");
            assert_eq!(used, bytes.len(), "decode_prefix's length");
            assert_eq!(crate::msgpack::encode(&prefix), canonical, "decode_prefix");
        }
    }
}

/// The `json` target: any bytes through the tagged-JSON reader. What it accepts is JSON
/// (serde_json parses it too) and passes [`accepted`].
pub fn json(bytes: &[u8]) {
    match crate::json::decode(bytes, MAX_DEPTH) {
        Err(error) => refused(&error),
        Ok(value) => {
            assert!(is_json(bytes), "accepted text that is not JSON");
            accepted(&value, MAX_DEPTH);
        }
    }
}

/// Checks a value some decoder accepted under `max_depth`, and returns its canonical
/// MessagePack bytes and its tagged-JSON text:
/// - it is valid by [`Value::check`] (keywords, instants, depth, no repeats), and by an
///   independent oracle no map repeats a key and no set an element, equal meaning the same
///   canonical bytes (PROTOCOL.md section 2);
/// - its MessagePack encoding decodes (under the same limit) to the same bytes, which the
///   validator calls canonical, and transcodes to exactly its JSON text;
/// - its JSON text is JSON and decodes to the same value, whose text is the same again.
pub(crate) fn accepted(value: &Value, max_depth: usize) -> (Vec<u8>, String) {
    if let Err(error) = value.check(max_depth) {
        panic!("a decoded value fails Value::check: {error}");
    }
    assert!(value.depth() <= max_depth, "depth over the limit");
    assert_no_repeats(value);

    let canonical = crate::msgpack::encode(value);
    let again = crate::msgpack::decode(&canonical, max_depth)
        .unwrap_or_else(|e| panic!("canonical bytes do not decode: {e}"));
    assert_eq!(
        crate::msgpack::encode(&again),
        canonical,
        "msgpack round trip"
    );
    assert_eq!(
        crate::msgpack::validate(&canonical, max_depth),
        Ok(true),
        "the encoder's output is canonical"
    );

    let text = crate::json::encode(value);
    assert!(is_json(text.as_bytes()), "the JSON writer wrote non-JSON");
    let from_text = crate::json::decode(text.as_bytes(), max_depth)
        .unwrap_or_else(|e| panic!("the JSON text does not decode: {e}: {text}"));
    assert_eq!(
        crate::msgpack::encode(&from_text),
        canonical,
        "JSON and MessagePack disagree: {text}"
    );
    assert_eq!(crate::json::encode(&from_text), text, "JSON round trip");
    let mut transcoded = Vec::new();
    crate::json::transcode_msgpack(&canonical, max_depth, &mut transcoded)
        .unwrap_or_else(|e| panic!("canonical bytes do not transcode: {e}"));
    assert_eq!(transcoded, text.as_bytes(), "transcode vs encode");
    (canonical, text)
}

/// The independent check of PROTOCOL.md section 2's rule: by canonical bytes, no map key
/// and no set element repeats, at any depth. (The codecs' own check compares values
/// without encoding them.)
fn assert_no_repeats(value: &Value) {
    match value {
        Value::List(items) => items.iter().for_each(assert_no_repeats),
        Value::Set(items) => {
            assert!(distinct(items.iter()), "a set repeats an element");
            items.iter().for_each(assert_no_repeats);
        }
        Value::Map(pairs) => {
            assert!(
                distinct(pairs.iter().map(|(key, _)| key)),
                "a map repeats a key"
            );
            for (key, item) in pairs {
                assert_no_repeats(key);
                assert_no_repeats(item);
            }
        }
        _ => {}
    }
}

fn distinct<'a>(mut members: impl Iterator<Item = &'a Value>) -> bool {
    let mut seen = HashSet::new();
    members.all(|member| seen.insert(crate::msgpack::encode(member)))
}

/// Whether serde_json parses `bytes` as JSON. Past serde_json's own nesting limit (128,
/// which a `$map` of depth 43 already passes) it cannot say, and the answer is yes.
fn is_json(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        Ok(_) => true,
        Err(error) => error.to_string().starts_with("recursion limit exceeded"),
    }
}

/// A refusal says what is wrong in words; formatting it must not fail.
fn refused(error: &CodecError) {
    let text = error.to_string();
    assert!(!text.is_empty(), "an empty error message");
    if let CodecError::TooDeep { max_depth, .. } = error {
        assert_eq!(*max_depth, MAX_DEPTH, "a depth error names another limit");
    }
}
