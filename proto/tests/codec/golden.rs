//! Exact MessagePack bytes and JSON text for one fixture of each type and each size
//! form, computed by hand from the MessagePack spec and PROTOCOL.md, checked byte for
//! byte both ways. The fixtures live in `golden.json`, which the browser client's codec
//! test (`client-js/test/codec.test.js`) reads too: both sides check the same bytes.

use atomsync_proto::{Value, json, msgpack};

use super::{MAX_DEPTH, hex, inst};

const UUID: [u8; 16] = [
    0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00, 0x00,
];

/// (value, MessagePack bytes, JSON text) from `golden.json`. The value is the JSON text
/// decoded: the tests below then hold the JSON reader, the MessagePack reader and both
/// writers to the same exact bytes and text.
fn fixtures() -> Vec<(Value, Vec<u8>, String)> {
    let file: serde_json::Value =
        serde_json::from_str(include_str!("golden.json")).expect("golden.json is JSON");
    let list = file["fixtures"].as_array().expect("golden.json: fixtures");
    assert!(list.len() > 50, "golden.json holds {} fixtures", list.len());
    list.iter()
        .map(|fixture| {
            let text = fixture["json"].as_str().expect("fixture.json").to_owned();
            let bytes = hex(fixture["msgpack"].as_str().expect("fixture.msgpack"));
            let value = json::decode(text.as_bytes(), MAX_DEPTH)
                .unwrap_or_else(|e| panic!("golden.json: {text}: {e}"));
            (value, bytes, text)
        })
        .collect()
}

#[test]
fn every_fixture_encodes_to_its_exact_bytes_and_text() {
    for (value, bytes, text) in fixtures() {
        assert_eq!(msgpack::encode(&value), bytes, "msgpack of {value:?}");
        assert_eq!(json::encode(&value), text, "json of {value:?}");
        assert_eq!(value.to_string(), text);
    }
}

#[test]
fn every_fixture_decodes_from_its_bytes_and_text() {
    for (value, bytes, text) in fixtures() {
        assert_eq!(
            msgpack::decode(&bytes, MAX_DEPTH),
            Ok(value.clone()),
            "msgpack {bytes:02x?}"
        );
        let mut transcoded = Vec::new();
        json::transcode_msgpack(&bytes, MAX_DEPTH, &mut transcoded).unwrap();
        assert_eq!(
            String::from_utf8(transcoded).unwrap(),
            text,
            "transcoded {bytes:02x?}"
        );
        assert!(
            msgpack::validate(&bytes, MAX_DEPTH).unwrap(),
            "canonical {bytes:02x?}"
        );
    }
}

#[test]
fn fixtures_cover_every_type_with_the_types_they_name() {
    // The JSON text decides each value's type: a few spot checks that it decodes to the
    // variant the protocol names, so that a reader bug cannot hide behind its writer.
    let values: Vec<Value> = fixtures().into_iter().map(|(value, _, _)| value).collect();
    for want in [
        Value::UInt(u64::MAX),
        Value::Int(i64::MIN),
        Value::Float(1.0),
        Value::Float(-0.0),
        Value::uuid(UUID),
        Value::kw("ns/name"),
        inst(-1, 0),
        Value::set([Value::set([Value::kw("a")])]),
        Value::map([(1, "a")]),
        Value::bytes(vec![0xff, 0xfe]),
    ] {
        assert!(
            values
                .iter()
                .any(|v| v == &want && format!("{v:?}") == format!("{want:?}")),
            "no fixture is {want:?}"
        );
    }
}

#[test]
fn json_reads_every_accepted_spelling() {
    let cases: Vec<(&str, Value)> = vec![
        (" [ 1 , 2 ]\n", Value::list([1, 2])),
        ("1E2", Value::Float(100.0)),
        ("1e-2", Value::Float(0.01)),
        ("-0", Value::Int(0)),
        ("-0.0", Value::Float(-0.0)),
        ("9223372036854775808", Value::UInt(1 << 63)),
        (r#""\u00e9\ud83d\ude00\/""#, Value::from("é😀/")),
        (r#"{"$float":1}"#, Value::Float(1.0)),
        (r#"{"$float":2.5}"#, Value::Float(2.5)),
        (r#"{"$float":"-Infinity"}"#, Value::Float(f64::NEG_INFINITY)),
        (
            r#"{"$uuid":"550E8400-E29B-41D4-A716-446655440000"}"#,
            Value::uuid(UUID),
        ),
        (
            r#"{"$inst":"2026-11-24T15:30:00.123+05:30"}"#,
            inst(1_795_514_400, 123_000_000),
        ),
        (
            r#"{"$map":[[{"$kw":"k"},{"$set":[]}]]}"#,
            Value::map([(Value::kw("k"), Value::set::<Value>([]))]),
        ),
        (r#"{"$a":1,"b":2}"#, Value::map([("$a", 1), ("b", 2)])),
        (
            r#"{"$set":[1],"x":null}"#,
            Value::map([("$set", Value::list([1])), ("x", Value::Nil)]),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(json::decode(text.as_bytes(), MAX_DEPTH), Ok(want), "{text}");
    }
}

#[test]
fn msgpack_reads_non_canonical_forms_and_reports_them() {
    let cases: Vec<(&str, Value)> = vec![
        ("ca 3fc00000", Value::Float(1.5)),
        ("cc 05", Value::Int(5)),
        ("cd 0005", Value::Int(5)),
        ("d0 05", Value::Int(5)),
        ("d3 ffffffffffffffff", Value::Int(-1)),
        ("d9 01 61", Value::from("a")),
        ("c5 0001 ff", Value::bytes(vec![0xff])),
        ("dc 0001 01", Value::list([1])),
        ("de 0001 a161 01", Value::map([("a", 1)])),
        ("c7 01 02 61", Value::kw("a")),
        ("d7 ff 000000006b056020", inst(1_795_514_400, 0)),
        ("c7 0c ff 00000000 000000006b056020", inst(1_795_514_400, 0)),
        ("c7 02 03 91 01", Value::set([1])),
    ];
    for (bytes, want) in cases {
        let bytes = hex(bytes);
        assert_eq!(
            msgpack::decode(&bytes, MAX_DEPTH),
            Ok(want.clone()),
            "{bytes:02x?}"
        );
        assert_eq!(
            msgpack::validate(&bytes, MAX_DEPTH),
            Ok(false),
            "{bytes:02x?}"
        );
        let packed = atomsync_proto::Packed::from_bytes(&bytes, MAX_DEPTH).unwrap();
        assert_eq!(
            packed.as_bytes(),
            msgpack::encode(&want),
            "{bytes:02x?} stored canonical"
        );
    }
}
