//! Decoding and validating what clients send, against PROTOCOL.md sections 3, 4 and 6:
//! every validation error with its code and path, the order errors are answered in,
//! frame errors that keep `id` and `group`, and bodies built to crash a decoder.

use atomsync_proto::wire::{
    Change, ClientFrame, FrameError, Op, PullResponse, PushRequest, ServerFrame, UncheckedPush,
};
use atomsync_proto::{Encoding, ErrorCode, Limits, Packed, Value, WireError, kw, msgpack, value};

fn limits() -> Limits {
    Limits::default()
}

fn packed(value: Value) -> Packed {
    Packed::from_value(&value)
}

/// Decodes and validates a JSON push body.
fn push_json(body: &str) -> Result<PushRequest, WireError> {
    UncheckedPush::decode(body.as_bytes(), Encoding::Json, &limits())?.validate(&limits())
}

fn assert_error(result: Result<impl std::fmt::Debug, WireError>, code: ErrorCode, message: &str) {
    let error = result.expect_err("expected an error");
    assert_eq!((error.code, error.message.as_str()), (code, message));
}

// ---- validation: every error with its code and path ----

#[test]
fn shape_errors() {
    let bad = ErrorCode::BadRequest;
    assert_error(
        push_json(r#"{"changes":[]}"#),
        bad,
        "group: must be a string",
    );
    assert_error(
        push_json(r#"{"group":5,"changes":[]}"#),
        bad,
        "group: must be a string",
    );
    assert_error(
        push_json(r#"{"group":"a b","changes":[]}"#),
        bad,
        "group: must be 1..128 characters from A-Z a-z 0-9 _ - . :",
    );
    assert_error(
        push_json(r#"{"group":"g"}"#),
        bad,
        "changes: must be a list",
    );
    assert_error(
        push_json(r#"{"group":"g","changes":{"$set":[]}}"#),
        bad,
        "changes: must be a list",
    );
    assert_error(push_json(r#"[1]"#), bad, "body: must be a map");
    assert_error(
        push_json(r#"{"$map":[[1,2]]}"#),
        bad,
        "body: must be a map with string keys",
    );
    // A member given twice is a repeated map key, refused the same way in both encodings.
    assert_error(
        push_json(r#"{"group":"g","group":"h","changes":[]}"#),
        bad,
        "body: group: duplicate map key (the key of entry 0 again)",
    );
    let twice = Value::Map(vec![
        (value!("group"), value!("g")),
        (value!("changes"), value!([])),
        (value!("group"), value!("h")),
    ]);
    assert_error(
        UncheckedPush::decode(&msgpack::encode(&twice), Encoding::MsgPack, &limits()),
        bad,
        "body: group: duplicate map key (the key of entry 0 again)",
    );
    let undecodable = push_json(r#"{"group":"g","#).unwrap_err();
    assert_eq!(undecodable.code, bad);
    assert!(
        undecodable.message.starts_with("body: "),
        "{}",
        undecodable.message
    );
    let undecodable = UncheckedPush::decode(&[0xc1], Encoding::MsgPack, &limits()).unwrap_err();
    assert!(
        undecodable.message.starts_with("body: "),
        "{}",
        undecodable.message
    );
    // Unknown members are ignored, at the top and in a change.
    let request =
        push_json(r#"{"v":2,"group":"g","changes":[{"key":"a","base":0,"value":1,"note":"x"}]}"#)
            .unwrap();
    assert_eq!(
        request.changes,
        vec![Change {
            key: "a".into(),
            base: 0,
            op: Op::Set(packed(value!(1)))
        }]
    );
}

/// A push whose change number 3 is `change` (three good ones come first).
fn third(change: &str) -> Result<PushRequest, WireError> {
    push_json(&format!(
        r#"{{"group":"g","changes":[{{"key":"a","base":0,"value":1}},{{"key":"b","base":1,"deleted":true}},{{"key":"c","base":2,"value":null}},{change}]}}"#
    ))
}

#[test]
fn change_errors() {
    let bad = ErrorCode::BadRequest;
    assert_error(third("7"), bad, "changes[3]: must be a map");
    assert_error(
        third(r#"{"base":0,"value":1}"#),
        bad,
        "changes[3].key: must be a string",
    );
    assert_error(
        third(r#"{"key":"","base":0,"value":1}"#),
        bad,
        "changes[3].key: must be 1..1024 bytes",
    );
    let long = "k".repeat(1025);
    assert_error(
        third(&format!(r#"{{"key":"{long}","base":0,"value":1}}"#)),
        bad,
        "changes[3].key: must be 1..1024 bytes",
    );
    for base in [r#","base":1.0"#, r#","base":-1"#, "", r#","base":"1""#] {
        let change = format!(r#"{{"key":"d"{base},"value":1}}"#);
        assert_error(
            third(&change),
            bad,
            "changes[3].base: must be an integer >= 0",
        );
    }
    let both = "changes[3]: must have either value or deleted: true, not both";
    assert_error(
        third(r#"{"key":"d","base":0,"value":1,"deleted":true}"#),
        bad,
        both,
    );
    assert_error(third(r#"{"key":"d","base":0}"#), bad, both);
    assert_error(third(r#"{"key":"d","base":0,"deleted":false}"#), bad, both);
    assert_error(
        third(r#"{"key":"d","base":0,"deleted":1}"#),
        bad,
        "changes[3].deleted: must be true or false",
    );
    // `deleted: false` beside a value is a plain set.
    let request =
        third(r#"{"key":"d","base":18446744073709551615,"value":2,"deleted":false}"#).unwrap();
    let last = request.changes.last().unwrap();
    assert_eq!(
        (last.base, &last.op),
        (u64::MAX, &Op::Set(packed(value!(2))))
    );
}

#[test]
fn repeated_key() {
    let changes: Vec<String> = ["x", "y", "a", "z", "w", "a", "a"]
        .iter()
        .map(|key| format!(r#"{{"key":"{key}","base":0,"deleted":true}}"#))
        .collect();
    let body = format!(r#"{{"group":"g","changes":[{}]}}"#, changes.join(","));
    assert_error(
        push_json(&body),
        ErrorCode::BadRequest,
        r#"changes[5].key: "a" repeats changes[2].key"#,
    );
}

fn nested(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn value_limits() {
    let at_limit = format!(r#"{{"key":"d","base":0,"value":{}}}"#, nested(64));
    assert!(third(&at_limit).is_ok());
    let too_deep = format!(r#"{{"key":"d","base":0,"value":{}}}"#, nested(65));
    assert_error(
        third(&too_deep),
        ErrorCode::BadRequest,
        "changes[3].value: nesting deeper than 64",
    );
    // JSON tag wrappers count as the value they stand for.
    let sets = format!(
        r#"{{"key":"d","base":0,"value":{}1{}}}"#,
        r#"{"$set":["#.repeat(65),
        "]}".repeat(65)
    );
    assert_error(
        third(&sets),
        ErrorCode::BadRequest,
        "changes[3].value: nesting deeper than 64",
    );

    // A body that nests too deep outside any value: named as the body, in one short line.
    let body = "[".repeat(100_000);
    let refused = UncheckedPush::decode(body.as_bytes(), Encoding::Json, &limits())
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        refused.message,
        "body: nesting deeper than a message's shape allows (values nest at most 64 levels)"
    );

    // 5 bytes of bin 32 header + 1048572 bytes = one byte over 1 MiB.
    let big = |len: usize| {
        let body = value!({"group": "g", "changes": [{"key": "a", "base": 0, "value": Value::Bytes(vec![7; len])}]});
        UncheckedPush::decode(&msgpack::encode(&body), Encoding::MsgPack, &limits())?
            .validate(&limits())
    };
    assert!(big(1_048_571).is_ok());
    assert_error(
        big(1_048_572),
        ErrorCode::PayloadTooLarge,
        "changes[0].value: 1048577 bytes, over the limit of 1048576",
    );
}

#[test]
fn change_count_comes_first() {
    let small = Limits {
        max_changes: 3,
        ..Limits::default()
    };
    // Four changes, the first of them invalid: the count is answered, not the key.
    let body = r#"{"group":"g","changes":[{"key":"","base":0},1,2,3]}"#;
    let push = UncheckedPush::decode(body.as_bytes(), Encoding::Json, &small).unwrap();
    assert_error(
        push.validate(&small),
        ErrorCode::PayloadTooLarge,
        "changes: 4 changes, over the limit of 3",
    );

    let change = value!({"key": "", "base": 0, "deleted": true});
    let body = value!({"group": "g", "changes": Value::List(vec![change; 10_001])});
    let push =
        UncheckedPush::decode(&msgpack::encode(&body), Encoding::MsgPack, &limits()).unwrap();
    assert_error(
        push.validate(&limits()),
        ErrorCode::PayloadTooLarge,
        "changes: 10001 changes, over the limit of 10000",
    );
}

#[test]
fn first_error_in_request_order() {
    // A repeat at change 2 comes before a bad base at change 3.
    let body = r#"{"group":"g","changes":[{"key":"a","base":0,"deleted":true},{"key":"b","base":0,"deleted":true},{"key":"a","base":0,"deleted":true},{"key":"c","base":-1,"deleted":true}]}"#;
    assert_error(
        push_json(body),
        ErrorCode::BadRequest,
        r#"changes[2].key: "a" repeats changes[0].key"#,
    );
}

// ---- frames ----

fn frame_error(json: &str) -> FrameError {
    ClientFrame::decode(json.as_bytes(), Encoding::Json, &limits()).unwrap_err()
}

#[test]
fn frame_errors_keep_id_and_group() {
    let error = frame_error(r#"{"type":"push","id":7,"group":"g","changes":5}"#);
    assert_eq!(error.id, Some(value!(7)));
    assert_eq!(error.group.as_deref(), Some("g"));
    assert_eq!(error.error.message, "changes: must be a list");

    let error = frame_error(r#"{"type":"bogus","id":"a-1","group":"g"}"#);
    assert_eq!(
        (error.id, error.group.as_deref()),
        (Some(value!("a-1")), Some("g"))
    );
    assert_eq!(
        error.error,
        WireError::bad_request(r#"type: unknown frame type "bogus""#)
    );

    let error = frame_error(r#"{"id":[1],"group":5}"#);
    assert_eq!((error.id, error.group), (None, None));
    assert_eq!(error.error.message, "type: must be a string");

    let error = frame_error(r#"{"type":"subscribe","id":{"$kw":"s"},"group":"no way"}"#);
    assert_eq!(
        (error.id, error.group.as_deref()),
        (Some(kw!("s")), Some("no way"))
    );
    assert_eq!(
        error.error.message,
        "group: must be 1..128 characters from A-Z a-z 0-9 _ - . :"
    );

    let error = frame_error(r#"{"type":"push","group":"g","changes":[]}"#);
    assert_eq!(error.error.message, "id: must be present");

    let error = frame_error("[");
    assert_eq!(
        (error.id, error.group, error.error.code),
        (None, None, ErrorCode::BadRequest)
    );
    assert!(
        error.error.message.starts_with("frame: "),
        "{}",
        error.error.message
    );

    // A push frame's changes are shape-checked only; validation comes after permission.
    let frame = ClientFrame::decode(
        br#"{"type":"push","id":1,"group":"g","changes":[{"key":""}]}"#,
        Encoding::Json,
        &limits(),
    );
    let Ok(ClientFrame::Push { push, .. }) = frame else {
        panic!("not a push: {frame:?}")
    };
    assert_error(
        push.validate(&limits()),
        ErrorCode::BadRequest,
        "changes[0].key: must be 1..1024 bytes",
    );
}

// ---- hostile input ----

#[test]
fn depth_bombs_are_refused() {
    let deep = 1_000_000;
    let bombs: Vec<(Encoding, Vec<u8>)> = vec![
        (Encoding::Json, nested(deep).into_bytes()),
        (
            Encoding::Json,
            format!(
                r#"{{"group":"g","changes":[{{"key":"a","base":0,"value":{}}}]}}"#,
                nested(deep)
            )
            .into_bytes(),
        ),
        (Encoding::Json, r#"{"$set":"#.repeat(deep).into_bytes()),
        (Encoding::MsgPack, vec![0x91; deep]),
        (
            Encoding::MsgPack,
            [&[0x81, 0xa1, b'a'][..]].repeat(deep).concat(),
        ),
    ];
    for (encoding, body) in bombs {
        let error = UncheckedPush::decode(&body, encoding, &limits()).unwrap_err();
        assert_eq!(error.code, ErrorCode::BadRequest, "{}", error.message);
        let error = ClientFrame::decode(&body, encoding, &limits()).unwrap_err();
        assert_eq!(
            error.error.code,
            ErrorCode::BadRequest,
            "{}",
            error.error.message
        );
        assert!(PullResponse::decode(&body, encoding).is_err());
        assert!(ServerFrame::decode(&body, encoding).is_err());
    }
}
