//! Exact MessagePack bytes and JSON text for one fixture of each type and each size
//! form, computed by hand from the MessagePack spec and PROTOCOL.md, checked byte for
//! byte both ways.

use atomsync_proto::{Inst, Value, json, msgpack};

use super::{MAX_DEPTH, hex, inst};

const UUID: [u8; 16] = [
    0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0x00, 0x00,
];

/// (value, MessagePack hex, JSON text)
fn fixtures() -> Vec<(Value, String, String)> {
    let s = |text: &str| text.to_owned();
    let long_str = "x".repeat(32);
    let mut fixtures = vec![
        (Value::Nil, s("c0"), s("null")),
        (Value::Bool(true), s("c3"), s("true")),
        (Value::Bool(false), s("c2"), s("false")),
        (Value::Int(0), s("00"), s("0")),
        (Value::Int(127), s("7f"), s("127")),
        (Value::Int(128), s("cc 80"), s("128")),
        (Value::Int(255), s("cc ff"), s("255")),
        (Value::Int(256), s("cd 0100"), s("256")),
        (Value::Int(65_536), s("ce 00010000"), s("65536")),
        (
            Value::Int(1 << 32),
            s("cf 0000000100000000"),
            s("4294967296"),
        ),
        (
            Value::Int(i64::MAX),
            s("cf 7fffffffffffffff"),
            s("9223372036854775807"),
        ),
        (
            Value::UInt(u64::MAX),
            s("cf ffffffffffffffff"),
            s("18446744073709551615"),
        ),
        (Value::Int(-1), s("ff"), s("-1")),
        (Value::Int(-32), s("e0"), s("-32")),
        (Value::Int(-33), s("d0 df"), s("-33")),
        (Value::Int(-128), s("d0 80"), s("-128")),
        (Value::Int(-129), s("d1 ff7f"), s("-129")),
        (Value::Int(-32_769), s("d2 ffff7fff"), s("-32769")),
        (
            Value::Int(i64::MIN),
            s("d3 8000000000000000"),
            s("-9223372036854775808"),
        ),
        (Value::Float(1.0), s("cb 3ff0000000000000"), s("1.0")),
        (Value::Float(-0.0), s("cb 8000000000000000"), s("-0.0")),
        (Value::Float(0.1), s("cb 3fb999999999999a"), s("0.1")),
        (Value::Float(1e300), s("cb 7e37e43c8800759c"), s("1e300")),
        (Value::Float(5e-324), s("cb 0000000000000001"), s("5e-324")),
        (
            Value::Float(f64::NAN),
            s("cb 7ff8000000000000"),
            s(r#"{"$float":"NaN"}"#),
        ),
        (
            Value::Float(f64::INFINITY),
            s("cb 7ff0000000000000"),
            s(r#"{"$float":"Infinity"}"#),
        ),
        (
            Value::Float(f64::NEG_INFINITY),
            s("cb fff0000000000000"),
            s(r#"{"$float":"-Infinity"}"#),
        ),
        (Value::from(""), s("a0"), s(r#""""#)),
        (Value::from("hi"), s("a2 6869"), s(r#""hi""#)),
        (
            Value::from("a\"\\\n\u{1}é"),
            s("a7 61225c0a01c3a9"),
            s(r#""a\"\\\n\u0001é""#),
        ),
        (
            Value::from(long_str.as_str()),
            format!("d9 20 {}", "78".repeat(32)),
            format!("\"{long_str}\""),
        ),
        (Value::bytes(vec![]), s("c4 00"), s(r#"{"$bytes":""}"#)),
        (
            Value::bytes(vec![1, 2, 3]),
            s("c4 03 010203"),
            s(r#"{"$bytes":"AQID"}"#),
        ),
        (
            Value::bytes(vec![0xff]),
            s("c4 01 ff"),
            s(r#"{"$bytes":"/w=="}"#),
        ),
        (
            Value::bytes(vec![0xff, 0xfe]),
            s("c4 02 fffe"),
            s(r#"{"$bytes":"//4="}"#),
        ),
        (Value::List(vec![]), s("90"), s("[]")),
        (
            Value::list([Value::Int(1), Value::list([2])]),
            s("92 01 91 02"),
            s("[1,[2]]"),
        ),
        (Value::map([("a", 1)]), s("81 a161 01"), s(r#"{"a":1}"#)),
        (Value::Map(vec![]), s("80"), s("{}")),
        (
            Value::map([(1, "a")]),
            s("81 01 a161"),
            s(r#"{"$map":[[1,"a"]]}"#),
        ),
        (
            Value::map([("$a", 1)]),
            s("81 a22461 01"),
            s(r#"{"$map":[["$a",1]]}"#),
        ),
        (
            Value::map([("$a", 1), ("b", 2)]),
            s("82 a22461 01 a162 02"),
            s(r#"{"$map":[["$a",1],["b",2]]}"#),
        ),
        (
            Value::map([("$a", 1), ("$b", 2)]),
            s("82 a22461 01 a22462 02"),
            s(r#"{"$a":1,"$b":2}"#),
        ),
        (
            inst(0, 0),
            s("d6 ff 00000000"),
            s(r#"{"$inst":"1970-01-01T00:00:00Z"}"#),
        ),
        (
            inst(1_795_514_400, 0),
            s("d6 ff 6b056020"),
            s(r#"{"$inst":"2026-11-24T10:00:00Z"}"#),
        ),
        (
            inst(1_795_514_400, 123_000_000),
            s("d7 ff 1d5353006b056020"),
            s(r#"{"$inst":"2026-11-24T10:00:00.123Z"}"#),
        ),
        (
            inst((1 << 34) - 1, 0),
            s("d7 ff 00000003ffffffff"),
            s(r#"{"$inst":"2514-05-30T01:53:03Z"}"#),
        ),
        (
            inst(-1, 0),
            s("c7 0c ff 00000000 ffffffffffffffff"),
            s(r#"{"$inst":"1969-12-31T23:59:59Z"}"#),
        ),
        (
            Value::Inst(Inst::MIN),
            s("c7 0c ff 00000000 fffffff1886e0900"),
            s(r#"{"$inst":"0001-01-01T00:00:00Z"}"#),
        ),
        (
            Value::Inst(Inst::MAX),
            s("c7 0c ff 3b9ac9ff 0000003afff4417f"),
            s(r#"{"$inst":"9999-12-31T23:59:59.999999999Z"}"#),
        ),
        (
            Value::uuid(UUID),
            s("d8 01 550e8400e29b41d4a716446655440000"),
            s(r#"{"$uuid":"550e8400-e29b-41d4-a716-446655440000"}"#),
        ),
        (Value::kw("a"), s("d4 02 61"), s(r#"{"$kw":"a"}"#)),
        (
            Value::kw("todo"),
            s("d6 02 746f646f"),
            s(r#"{"$kw":"todo"}"#),
        ),
        (
            Value::kw("groceries"),
            s("c7 09 02 67726f636572696573"),
            s(r#"{"$kw":"groceries"}"#),
        ),
        (
            Value::kw("ns/name"),
            s("c7 07 02 6e732f6e616d65"),
            s(r#"{"$kw":"ns/name"}"#),
        ),
        (Value::set::<Value>([]), s("d4 03 90"), s(r#"{"$set":[]}"#)),
        (Value::set([1]), s("d5 03 91 01"), s(r#"{"$set":[1]}"#)),
        (
            Value::set([1, 2, 3]),
            s("d6 03 93 010203"),
            s(r#"{"$set":[1,2,3]}"#),
        ),
        (
            Value::set([Value::kw("a")]),
            s("d6 03 91 d40261"),
            s(r#"{"$set":[{"$kw":"a"}]}"#),
        ),
        (
            Value::set([Value::set([Value::kw("a")])]),
            s("c7 07 03 91 d6039 1d40261"),
            s(r#"{"$set":[{"$set":[{"$kw":"a"}]}]}"#),
        ),
    ];
    // A set whose payload needs the ext 16 form: array16 header (3) + 0..=127 as fixints
    // (128 bytes) + 128..=213 as uint 8 (86 × 2 bytes) = 303 bytes.
    let small: Vec<String> = (0..128).map(|n| format!("{n:02x}")).collect();
    let large: Vec<String> = (128..214).map(|n| format!("cc{n:02x}")).collect();
    fixtures.push((
        Value::set(0..214),
        format!("c8 012f 03 dc00d6 {}{}", small.concat(), large.concat()),
        format!(
            r#"{{"$set":[{}]}}"#,
            (0..214)
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    ));
    fixtures
}

#[test]
fn every_fixture_encodes_to_its_exact_bytes_and_text() {
    for (value, bytes, text) in fixtures() {
        let bytes = hex(&bytes);
        assert_eq!(msgpack::encode(&value), bytes, "msgpack of {value:?}");
        assert_eq!(json::encode(&value), text, "json of {value:?}");
        assert_eq!(value.to_string(), text);
    }
}

#[test]
fn every_fixture_decodes_from_its_bytes_and_text() {
    for (value, bytes, text) in fixtures() {
        let bytes = hex(&bytes);
        assert_eq!(
            msgpack::decode(&bytes, MAX_DEPTH),
            Ok(value.clone()),
            "msgpack {bytes:02x?}"
        );
        assert_eq!(
            json::decode(text.as_bytes(), MAX_DEPTH),
            Ok(value.clone()),
            "json {text}"
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
