//! Malformed input of every kind the contract names is an error that says what and
//! where, never a panic; deep and lying input is refused quickly.

use std::time::{Duration, Instant};

use atomsync_proto::{CodecError, Packed, json, msgpack};

use super::{MAX_DEPTH, hex};

fn invalid(path: &str, reason_part: &str, got: Result<atomsync_proto::Value, CodecError>) {
    match got {
        Err(CodecError::Invalid { path: p, reason }) => {
            assert_eq!(p, path, "path of {reason:?}");
            assert!(
                reason.contains(reason_part),
                "{reason:?} lacks {reason_part:?}"
            );
        }
        other => panic!("expected Invalid at {path:?} ({reason_part}), got {other:?}"),
    }
}

fn mp(bytes: &str) -> Result<atomsync_proto::Value, CodecError> {
    let bytes = hex(bytes);
    let decoded = msgpack::decode(&bytes, MAX_DEPTH);
    // The three readers of MessagePack agree on every input.
    assert_eq!(
        msgpack::validate(&bytes, MAX_DEPTH).err(),
        decoded.clone().err()
    );
    assert_eq!(
        json::transcode_msgpack(&bytes, MAX_DEPTH, &mut Vec::new()).err(),
        decoded.clone().err()
    );
    assert_eq!(
        Packed::from_bytes(&bytes, MAX_DEPTH).err(),
        decoded.clone().err()
    );
    decoded
}

fn js(text: &str) -> Result<atomsync_proto::Value, CodecError> {
    json::decode(text.as_bytes(), MAX_DEPTH)
}

#[test]
fn msgpack_truncated_input_is_incomplete() {
    for bytes in [
        "",
        "92 01",
        "a3 6162",
        "cd 01",
        "cb 3ff0",
        "d6 ff 0000",
        "c7 0c ff 00",
        "dc 00",
        "81 a161",
    ] {
        assert!(
            matches!(mp(bytes), Err(CodecError::Incomplete { .. })),
            "{bytes}"
        );
    }
    assert_eq!(
        mp("92 01"),
        Err(CodecError::Incomplete { path: "[1]".into() })
    );
    assert_eq!(
        mp("81 a161"),
        Err(CodecError::Incomplete { path: "a".into() })
    );
}

#[test]
fn msgpack_invalid_input_names_the_rule_and_the_place() {
    invalid("", "reserved byte 0xc1", mp("c1"));
    invalid("[1]", "reserved byte 0xc1", mp("92 01 c1"));
    invalid("", "unknown extension type 5", mp("d4 05 00"));
    invalid("", "unknown extension type -2", mp("d4 fe 00"));
    invalid("", "uuid payload of 1 bytes", mp("d4 01 00"));
    invalid(
        "",
        "uuid payload of 17 bytes",
        mp(&format!("c7 11 01 {}", "00".repeat(17))),
    );
    invalid(
        "",
        "timestamp payload of 5 bytes",
        mp("c7 05 ff 0000000000"),
    );
    invalid(
        "",
        "not below 1000000000",
        mp("c7 0c ff 3b9aca00 0000000000000000"),
    );
    invalid("", "not below 1000000000", mp("d7 ff ee6b2800 00000000"));
    invalid(
        "",
        "outside years 0001 to 9999",
        mp("c7 0c ff 00000000 fffffff1886e08ff"),
    );
    invalid(
        "",
        "outside years 0001 to 9999",
        mp("c7 0c ff 00000000 0000003afff44180"),
    );
    invalid("", "string is not valid UTF-8", mp("a1 ff"));
    invalid("", "keyword is not valid UTF-8", mp("d4 02 ff"));
    invalid("", "invalid keyword", mp("d4 02 2f"));
    invalid("", "invalid keyword", mp("c7 00 02"));
    invalid("", "invalid keyword", mp("c7 03 02 612062"));
    invalid("", "invalid keyword", mp("d5 02 612f"));
    invalid("", "set payload must be one array", mp("d4 03 01"));
    invalid("", "set payload must be one array", mp("c7 00 03"));
    invalid("", "set payload must be one array", mp("d5 03 8000"));
    invalid(
        "",
        "set payload holds bytes after its array",
        mp("d5 03 90 90"),
    );
    invalid(
        "[0]",
        "extension payload ends in the middle",
        mp("d4 03 91 01"),
    );
    invalid("", "1 bytes after the value", mp("c0 c0"));
    // Paths through maps: a string key, a non-string key, a key itself.
    invalid(
        "tags[1]",
        "invalid keyword",
        mp("81 a4 74616773 92 01 d4 02 2f"),
    );
    invalid("{0}", "invalid keyword", mp("81 01 d4 02 2f"));
    invalid("{key 0}", "invalid keyword", mp("81 d4 02 2f 01"));
    invalid("[0][1]", "invalid keyword", mp("c7 06 03 91 92 01 d4022f"));
}

#[test]
fn msgpack_lying_lengths_do_not_allocate() {
    let started = Instant::now();
    for header in [
        "dd ffffffff",
        "df ffffffff",
        "db ffffffff",
        "c6 ffffffff",
        "c9 ffffffff 02",
        "c9 ffffffff 03 90",
    ] {
        let mut bytes = hex(header);
        bytes.extend_from_slice(&[0x01; 8]);
        assert!(msgpack::decode(&bytes, MAX_DEPTH).is_err(), "{header}");
    }
    // A fixarray inside an array claiming 2^32 - 1 items: still refused quickly.
    let mut bytes = hex("dd ffffffff");
    bytes.extend(std::iter::repeat_n(0x90, 1000));
    assert_eq!(
        msgpack::decode(&bytes, MAX_DEPTH),
        Err(CodecError::Incomplete {
            path: "[1000]".into()
        })
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn msgpack_depth_is_bounded() {
    let nested = |depth: usize| {
        let mut bytes = vec![0x91; depth];
        bytes.push(0x01);
        bytes
    };
    assert!(msgpack::decode(&nested(64), 64).is_ok());
    let path = "[0]".repeat(64);
    assert_eq!(
        msgpack::decode(&nested(65), 64),
        Err(CodecError::TooDeep {
            path,
            max_depth: 64
        })
    );
    assert_eq!(
        msgpack::validate(&nested(65), 64).map_err(|e| e.path().len()),
        Err(3 * 64)
    );
    let started = Instant::now();
    assert!(matches!(
        msgpack::decode(&nested(100_000), 64),
        Err(CodecError::TooDeep { .. })
    ));
    // Sets nest through their extension payloads: `#{#{...}}` 100,000 deep.
    let mut sets = Vec::new();
    for _ in 0..100_000 {
        sets.extend_from_slice(&hex("c9 00000000 03 91"));
    }
    assert!(matches!(
        msgpack::decode(&sets, 64),
        Err(CodecError::TooDeep { .. }) | Err(CodecError::Invalid { .. })
    ));
    // Maps count once per level whether the depth is in the key or the value.
    let mut keys = vec![0x81; 65];
    keys.extend_from_slice(&[0x01, 0x01]);
    assert!(matches!(
        msgpack::decode(&keys, 64),
        Err(CodecError::TooDeep { .. })
    ));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn json_syntax_errors() {
    for text in [
        "",
        " ",
        "[1,",
        "[1",
        "{\"a\":",
        "{\"a\"",
        "\"abc",
        "tru",
        "nul",
        "-",
        "1.",
        "1e",
        "\"\\u00",
        "\"\\ud800",
    ] {
        assert!(
            matches!(js(text), Err(CodecError::Incomplete { .. })),
            "{text:?}: {:?}",
            js(text)
        );
    }
    invalid("", "expected ',' or ']'", js("[1 2]"));
    invalid("", "unexpected text after the value", js("01"));
    invalid("", "unexpected text after the value", js("[1]x"));
    invalid("", "expected a value", js("nulx"));
    invalid("", "expected a value", js("+1"));
    invalid("[1]", "expected a value", js("[1,]"));
    invalid("", "expected a member name", js("{1:2}"));
    invalid("", "expected ':'", js("{\"a\" 1}"));
    invalid("", "expected a digit", js("1.e5"));
    invalid("", "invalid escape", js("\"\\x\""));
    invalid("", "unpaired surrogate", js("\"\\ud800x\""));
    invalid("", "unpaired surrogate", js("\"\\udc00\""));
    invalid("", "control character", js("\"a\u{1}\""));
    invalid("", "not valid UTF-8", json::decode(b"\"\xff\"", MAX_DEPTH));
    invalid(
        "",
        "expected a value",
        json::decode(b"\xef\xbb\xbf1", MAX_DEPTH),
    );
}

#[test]
fn json_out_of_range_numbers() {
    invalid(
        "",
        "integer 18446744073709551616 out of range",
        js("18446744073709551616"),
    );
    invalid(
        "",
        "integer -9223372036854775809 out of range",
        js("-9223372036854775809"),
    );
    invalid("[0]", "float 1e400 out of range", js("[1e400]"));
}

#[test]
fn json_tag_errors_name_the_tag_and_the_place() {
    invalid("a", "duplicate map key", js(r#"{"a":1,"a":2}"#));
    invalid("x.b", "duplicate map key", js(r#"{"x":{"b":1,"b":2}}"#));
    invalid("", "unknown tag \"$foo\"", js(r#"{"$foo":1}"#));
    invalid("", "unknown tag \"$\"", js(r#"{"$":1}"#));
    invalid("", "invalid keyword", js(r#"{"$kw":""}"#));
    invalid("", "invalid keyword", js(r#"{"$kw":"a b"}"#));
    invalid("", "invalid keyword", js(r#"{"$kw":"/a"}"#));
    invalid("", "invalid keyword", js(r#"{"$kw":"a/"}"#));
    invalid("", "$kw payload must be a string", js(r#"{"$kw":1}"#));
    invalid(
        "",
        "$bytes payload must be standard base64",
        js(r#"{"$bytes":"AQI"}"#),
    );
    invalid(
        "",
        "$bytes payload must be standard base64",
        js(r#"{"$bytes":"AQI-"}"#),
    );
    invalid(
        "",
        "$uuid payload must be a hyphenated UUID",
        js(r#"{"$uuid":"550e8400e29b41d4a716446655440000"}"#),
    );
    invalid(
        "",
        "$uuid payload must be a hyphenated UUID",
        js(r#"{"$uuid":"550e8400-e29b-41d4-a716-44665544000g"}"#),
    );
    invalid("", "instant", js(r#"{"$inst":"0000-01-01T00:00:00Z"}"#));
    invalid("", "instant", js(r#"{"$inst":"10000-01-01T00:00:00Z"}"#));
    invalid("", "$inst payload must be a string", js(r#"{"$inst":1}"#));
    invalid(
        "[0]",
        "$map payload must be an array of [key, value] arrays",
        js(r#"{"$map":[[1]]}"#),
    );
    invalid(
        "[1]",
        "$map payload must be an array of [key, value] arrays",
        js(r#"{"$map":[[1,2],3]}"#),
    );
    invalid("", "$map payload must be an array", js(r#"{"$map":{}}"#));
    invalid(
        "",
        "$set payload must be an array",
        js(r#"{"$set":{"$set":[]}}"#),
    );
    invalid("", "$float payload must be", js(r#"{"$float":"nan"}"#));
    invalid(
        "",
        "$float payload must be",
        js(r#"{"$float":{"$float":1.0}}"#),
    );
    invalid("", "$float payload must be", js(r#"{"$float":null}"#));
    // Errors inside a tag's payload are placed in the value the tag stands for.
    invalid("[1]", "invalid keyword", js(r#"{"$set":[1,{"$kw":""}]}"#));
    invalid("a[1]", "invalid keyword", js(r#"{"a":[1,{"$kw":""}]}"#));
    // The reader learns that `{"$set": ..., "b": 1}` is a plain map only after its first
    // member, so an error inside that member is placed as if in a tag: at `[0]`.
    invalid(
        "[0]",
        "invalid keyword",
        js(r#"{"$set":[{"$kw":""}],"b":1}"#),
    );
    invalid(
        "b[0]",
        "invalid keyword",
        js(r#"{"$set":[],"b":[{"$kw":""}]}"#),
    );
}

#[test]
fn json_depth_is_bounded() {
    let lists = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    assert!(js(&lists(64)).is_ok());
    let path = "[0]".repeat(64);
    assert_eq!(
        js(&lists(65)),
        Err(CodecError::TooDeep {
            path,
            max_depth: 64
        })
    );
    // Tags count as the value they stand for: 64 sets and 64 `$map`s are depth 64.
    let sets = |depth: usize| format!("{}1{}", r#"{"$set":["#.repeat(depth), "]}".repeat(depth));
    assert!(js(&sets(64)).is_ok());
    assert!(matches!(js(&sets(65)), Err(CodecError::TooDeep { .. })));
    let maps = |depth: usize| {
        format!(
            "{}1{}",
            r#"{"$map":[[1,"#.repeat(depth),
            "]]}".repeat(depth)
        )
    };
    assert_eq!(js(&maps(64)).map(|v| v.depth()), Ok(64));
    assert!(matches!(js(&maps(65)), Err(CodecError::TooDeep { .. })));
    let started = Instant::now();
    for opener in ["[", "{\"a\":", r#"{"$set":["#, r#"{"$map":[["#] {
        let bomb = opener.repeat(100_000);
        assert!(
            matches!(js(&bomb), Err(CodecError::TooDeep { .. })),
            "{opener}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// One value, one answer (PROTOCOL.md section 2): a repeated map key or set element is
/// refused in every encoding, at the place it repeats; equal means the same canonical
/// MessagePack encoding.
#[test]
fn repeated_keys_and_elements_are_refused_in_every_encoding() {
    let key = "duplicate map key (the key of entry 0 again)";
    let element = "duplicate set element (equal to [0])";
    // A string key: the MessagePack map, the `$map` list and the JSON object agree.
    invalid("a", key, mp("82 a161 01 a161 02"));
    invalid("a", key, js(r#"{"$map":[["a",1],["a",2]]}"#));
    invalid("a", key, js(r#"{"a":1,"a":2}"#));
    // Any key: 1 as a fixint and as a uint 8 (not canonical) are the same integer.
    invalid("{key 1}", key, mp("82 01 c0 cc01 c0"));
    invalid("{key 1}", key, js(r#"{"$map":[[1,null],[1,null]]}"#));
    invalid(
        "[2].x{key 1}",
        key,
        js(r#"[0,1,{"x":{"$map":[[[1],2],[[1],3]]}}]"#),
    );
    // Sets, nested anywhere; every NaN is the one NaN.
    invalid("[1]", element, mp("c7 03 03 92 01 01"));
    invalid("[1]", element, js(r#"{"$set":[1,1]}"#));
    invalid(
        "tags[1]",
        element,
        js(r#"{"tags":{"$set":[{"$float":"NaN"},{"$float":"NaN"}]},"n":1}"#),
    );
    invalid(
        "[1]",
        element,
        js(
            r#"{"$set":[{"$uuid":"550e8400-e29b-41d4-a716-446655440000"},{"$uuid":"550E8400-E29B-41D4-A716-446655440000"}]}"#,
        ),
    );
    // Different encodings are different values: 1 and 1.0, 0.0 and -0.0, "a" and :a.
    for distinct in [
        r#"{"$set":[1,1.0]}"#,
        r#"{"$set":[0.0,-0.0]}"#,
        r#"{"$set":["a",{"$kw":"a"}]}"#,
        r#"{"$map":[[[1,2],1],[[2,1],2]]}"#,
    ] {
        js(distinct).unwrap();
    }
    // A value built in code is held to the same rule before it is sent.
    let built = atomsync_proto::Value::set([1, 2, 1]);
    let err = built.check(MAX_DEPTH).unwrap_err();
    assert_eq!(err.to_string(), "[2]: duplicate set element (equal to [0])");
}
