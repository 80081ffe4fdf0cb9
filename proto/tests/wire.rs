//! The wire messages against PROTOCOL.md: golden JSON text of every server message, both
//! encodings of every message round-tripped and checked against each other, names and
//! content types. Validation errors are in `wire_validation.rs`.

use atomsync_proto::wire::{
    Change, ClientFrame, Doc, Op, PullResponse, PushRequest, PushResponse, PushResult, ServerFrame,
    UncheckedPush, check_group, check_key, decode_error, encode_changes, encode_error,
    encode_value,
};
use atomsync_proto::{
    Encoding, ErrorCode, Limits, Packed, Value, WireError, json, kw, msgpack, value,
};

const BOTH: [Encoding; 2] = [Encoding::MsgPack, Encoding::Json];

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

fn packed(value: Value) -> Packed {
    Packed::from_value(&value)
}

fn doc(key: &str, version: u64, seq: u64, value: Option<Value>) -> Doc {
    Doc {
        key: key.into(),
        version,
        seq,
        value: value.map(packed),
    }
}

fn sample_docs() -> Vec<Doc> {
    vec![
        doc(
            "item:1",
            2,
            7,
            Some(value!({"text": "Buy \"milk\"", "tags": #{kw!("home")}})),
        ),
        doc("item:2", 3, 9, None),
    ]
}

fn sample_push_response() -> PushResponse {
    PushResponse {
        group: "team.a".into(),
        epoch: "e1".into(),
        results: vec![
            PushResult::Accepted {
                key: "a".into(),
                version: 1,
                seq: 10,
            },
            PushResult::Conflict {
                key: "b".into(),
                current: Some(doc("b", 4, 8, Some(value!(5)))),
            },
            PushResult::Conflict {
                key: "c".into(),
                current: None,
            },
        ],
        seq: 10,
    }
}

fn limits() -> Limits {
    Limits::default()
}

fn assert_error(result: Result<impl std::fmt::Debug, WireError>, code: ErrorCode, message: &str) {
    let error = result.expect_err("expected an error");
    assert_eq!((error.code, error.message.as_str()), (code, message));
}

/// The MessagePack form of a message must be exactly the canonical encoding of the value
/// its JSON form stands for: same fields, same order, same integer widths.
fn assert_same_message(msgpack_bytes: &[u8], json_bytes: &[u8]) {
    let from_json = json::decode(json_bytes, 200).unwrap();
    assert_eq!(
        msgpack_bytes,
        msgpack::encode(&from_json).as_slice(),
        "{}",
        text(json_bytes)
    );
}

// ---- golden JSON of every server message ----

#[test]
fn pull_response_json() {
    let mut response = PullResponse {
        group: "g".into(),
        epoch: "e1".into(),
        changes: sample_docs(),
        seq: 9,
        more: false,
        reset: false,
        floor: 0,
    };
    let docs = r#"[{"key":"item:1","version":2,"seq":7,"value":{"text":"Buy \"milk\"","tags":{"$set":[{"$kw":"home"}]}}},{"key":"item:2","version":3,"seq":9,"deleted":true}]"#;
    assert_eq!(
        text(&response.encode(Encoding::Json)),
        format!(r#"{{"group":"g","epoch":"e1","changes":{docs},"seq":9,"more":false}}"#)
    );
    response.reset = true;
    response.more = true;
    assert_eq!(
        text(&response.encode(Encoding::Json)),
        format!(
            r#"{{"group":"g","epoch":"e1","changes":{docs},"seq":9,"more":true,"reset":true}}"#
        )
    );
    response.changes.clear();
    assert_eq!(
        text(&response.encode(Encoding::Json)),
        r#"{"group":"g","epoch":"e1","changes":[],"seq":9,"more":true,"reset":true}"#
    );
    response.floor = 4;
    assert_eq!(
        text(&response.encode(Encoding::Json)),
        r#"{"group":"g","epoch":"e1","changes":[],"seq":9,"more":true,"reset":true,"floor":4}"#
    );
    assert_eq!(
        PullResponse::decode(&response.encode(Encoding::MsgPack), Encoding::MsgPack).unwrap(),
        response
    );
}

#[test]
fn push_response_json() {
    assert_eq!(
        text(&sample_push_response().encode(Encoding::Json)),
        concat!(
            r#"{"group":"team.a","epoch":"e1","results":["#,
            r#"{"key":"a","ok":true,"version":1,"seq":10},"#,
            r#"{"key":"b","ok":false,"current":{"key":"b","version":4,"seq":8,"value":5}},"#,
            r#"{"key":"c","ok":false,"current":null}"#,
            r#"],"seq":10}"#
        )
    );
}

#[test]
fn server_frames_json() {
    let frames = [
        (
            ServerFrame::Changes {
                group: "g".into(),
                changes: vec![doc("k", 1, 18446744073709551615, None)],
                seq: 5,
            },
            r#"{"type":"changes","group":"g","changes":[{"key":"k","version":1,"seq":18446744073709551615,"deleted":true}],"seq":5}"#,
        ),
        (
            ServerFrame::Subscribed {
                group: "g".into(),
                epoch: "e".into(),
                seq: 0,
                reset: false,
                floor: 0,
            },
            r#"{"type":"subscribed","group":"g","epoch":"e","seq":0}"#,
        ),
        (
            ServerFrame::Subscribed {
                group: "g".into(),
                epoch: "e".into(),
                seq: 3,
                reset: true,
                floor: 2,
            },
            r#"{"type":"subscribed","group":"g","epoch":"e","seq":3,"reset":true,"floor":2}"#,
        ),
        (
            ServerFrame::Unsubscribed { group: "g".into() },
            r#"{"type":"unsubscribed","group":"g"}"#,
        ),
        (
            ServerFrame::Pushed {
                id: value!("p-1"),
                response: PushResponse {
                    group: "g".into(),
                    epoch: "e".into(),
                    results: vec![PushResult::Accepted {
                        key: "a".into(),
                        version: 2,
                        seq: 4,
                    }],
                    seq: 4,
                },
            },
            r#"{"type":"pushed","id":"p-1","group":"g","epoch":"e","results":[{"key":"a","ok":true,"version":2,"seq":4}],"seq":4}"#,
        ),
        (
            ServerFrame::Error {
                id: Some(value!(7)),
                group: Some("g".into()),
                error: WireError::new(ErrorCode::Forbidden, "group: not allowed"),
            },
            r#"{"type":"error","id":7,"group":"g","error":"forbidden","message":"group: not allowed"}"#,
        ),
        (
            ServerFrame::Error {
                id: None,
                group: None,
                error: WireError::bad_request("frame: bad"),
            },
            r#"{"type":"error","error":"bad_request","message":"frame: bad"}"#,
        ),
    ];
    for (frame, golden) in frames {
        assert_eq!(text(&frame.encode(Encoding::Json)), golden);
        assert_same_message(&frame.encode(Encoding::MsgPack), golden.as_bytes());
        for encoding in BOTH {
            assert_eq!(
                ServerFrame::decode(&frame.encode(encoding), encoding).unwrap(),
                frame
            );
        }
    }
}

#[test]
fn changes_helper_matches_frame() {
    let frame = ServerFrame::Changes {
        group: "g".into(),
        changes: sample_docs(),
        seq: 9,
    };
    for encoding in BOTH {
        assert_eq!(
            encode_changes("g", &sample_docs(), 9, encoding),
            frame.encode(encoding)
        );
    }
}

#[test]
fn error_body() {
    let error = WireError::too_large("changes: 10001 changes, over the limit of 10000");
    let golden = r#"{"error":"payload_too_large","message":"changes: 10001 changes, over the limit of 10000"}"#;
    assert_eq!(text(&encode_error(&error, Encoding::Json)), golden);
    assert_same_message(&encode_error(&error, Encoding::MsgPack), golden.as_bytes());
    for encoding in BOTH {
        assert_eq!(
            decode_error(&encode_error(&error, encoding), encoding).unwrap(),
            error
        );
    }
    assert_error(
        decode_error(br#"{"error":"nope","message":"m"}"#, Encoding::Json),
        ErrorCode::BadRequest,
        r#"error: unknown error code "nope""#,
    );
}

#[test]
fn value_body() {
    let status = value!({"status": "ok"});
    assert_eq!(
        text(&encode_value(&status, Encoding::Json)),
        r#"{"status":"ok"}"#
    );
    assert_eq!(
        encode_value(&status, Encoding::MsgPack),
        msgpack::encode(&status)
    );
}

// ---- round trips ----

#[test]
fn responses_round_trip() {
    let pull = PullResponse {
        group: "g".into(),
        epoch: "e".into(),
        changes: sample_docs(),
        seq: u64::MAX,
        more: true,
        reset: true,
        floor: 7,
    };
    let push = sample_push_response();
    for encoding in BOTH {
        assert_eq!(
            PullResponse::decode(&pull.encode(encoding), encoding).unwrap(),
            pull
        );
        assert_eq!(
            PushResponse::decode(&push.encode(encoding), encoding).unwrap(),
            push
        );
    }
    assert_same_message(
        &pull.encode(Encoding::MsgPack),
        &pull.encode(Encoding::Json),
    );
    assert_same_message(
        &push.encode(Encoding::MsgPack),
        &push.encode(Encoding::Json),
    );
}

fn sample_request() -> PushRequest {
    PushRequest {
        group: "g:1".into(),
        changes: vec![
            Change {
                key: "a".into(),
                base: 0,
                op: Op::Set(packed(value!({"n": [1, 2.5, null], 7: #{kw!("x")}}))),
            },
            Change {
                key: "b".into(),
                base: u64::MAX,
                op: Op::Delete,
            },
        ],
    }
}

#[test]
fn push_request_round_trips() {
    let request = sample_request();
    for encoding in BOTH {
        let body = request.encode(encoding);
        let decoded = UncheckedPush::decode(&body, encoding, &limits()).unwrap();
        assert_eq!(decoded, request.to_unchecked());
        assert_eq!(decoded.validate(&limits()).unwrap(), request);
    }
    assert_same_message(
        &request.encode(Encoding::MsgPack),
        &request.encode(Encoding::Json),
    );
}

#[test]
fn client_frames_round_trip() {
    let frames = [
        ClientFrame::Subscribe {
            group: "g".into(),
            since: 42,
        },
        ClientFrame::Unsubscribe { group: "g".into() },
        ClientFrame::Push {
            id: value!(3),
            push: sample_request().to_unchecked(),
        },
    ];
    for frame in frames {
        for encoding in BOTH {
            assert_eq!(
                ClientFrame::decode(&frame.encode(encoding), encoding, &limits()).unwrap(),
                frame
            );
        }
        assert_same_message(
            &frame.encode(Encoding::MsgPack),
            &frame.encode(Encoding::Json),
        );
    }
    let pushed = ClientFrame::decode(
        &ClientFrame::Push {
            id: value!("x"),
            push: sample_request().to_unchecked(),
        }
        .encode(Encoding::MsgPack),
        Encoding::MsgPack,
        &limits(),
    );
    let Ok(ClientFrame::Push { push, .. }) = pushed else {
        panic!("not a push: {pushed:?}")
    };
    assert_eq!(push.validate(&limits()).unwrap(), sample_request());
}

#[test]
fn subscribe_since_defaults_to_zero() {
    let frame = ClientFrame::decode(
        br#"{"type":"subscribe","group":"g"}"#,
        Encoding::Json,
        &limits(),
    )
    .unwrap();
    assert_eq!(
        frame,
        ClientFrame::Subscribe {
            group: "g".into(),
            since: 0
        }
    );
    let error = ClientFrame::decode(
        br#"{"type":"subscribe","group":"g","since":-1}"#,
        Encoding::Json,
        &limits(),
    )
    .unwrap_err();
    assert_eq!(error.error.message, "since: must be an integer >= 0");
}

// ---- names and content types ----

#[test]
fn names() {
    assert!(check_group("Team_1-a.b:c").is_ok());
    assert!(check_group(&"g".repeat(128)).is_ok());
    for bad in ["", "a b", "é", "a/b", &"g".repeat(129)] {
        assert_eq!(
            check_group(bad).unwrap_err(),
            "must be 1..128 characters from A-Z a-z 0-9 _ - . :"
        );
    }
    assert!(check_key("é").is_ok());
    assert!(check_key(&"k".repeat(1024)).is_ok());
    assert_eq!(check_key("").unwrap_err(), "must be 1..1024 bytes");
    assert_eq!(
        check_key(&"é".repeat(513)).unwrap_err(),
        "must be 1..1024 bytes"
    );
}

#[test]
fn content_types() {
    use Encoding::{Json, MsgPack};
    assert_eq!(
        Encoding::from_content_type("application/msgpack"),
        Some(MsgPack)
    );
    assert_eq!(
        Encoding::from_content_type("Application/X-MsgPack"),
        Some(MsgPack)
    );
    assert_eq!(
        Encoding::from_content_type(" application/json ; charset=utf-8"),
        Some(Json)
    );
    assert_eq!(Encoding::from_content_type("text/plain"), None);
    assert_eq!(Encoding::from_content_type(""), None);
    assert_eq!(
        Encoding::from_accept("text/html, application/msgpack;q=0.1, application/json"),
        Some(MsgPack)
    );
    assert_eq!(
        Encoding::from_accept("application/json;q=0.1,application/msgpack"),
        Some(Json)
    );
    assert_eq!(Encoding::from_accept("*/*"), None);
    assert_eq!(Encoding::from_accept("application/*"), None);
    assert_eq!(Json.content_type(), "application/json");
    assert_eq!(MsgPack.content_type(), "application/msgpack");
}

// ---- hostile input ----

#[test]
fn truncated_messages_are_errors() {
    let pull = PullResponse {
        group: "g".into(),
        epoch: "e".into(),
        changes: sample_docs(),
        seq: 9,
        more: false,
        reset: false,
        floor: 0,
    };
    for encoding in BOTH {
        let bytes = pull.encode(encoding);
        for end in 0..bytes.len() {
            assert!(
                PullResponse::decode(&bytes[..end], encoding).is_err(),
                "{encoding:?} cut at {end}"
            );
        }
    }
}
