//! Values that cannot be decoded, or that would decode to two answers (PROTOCOL.md
//! sections 2 and 6): the error frame still names the push it answers, and a repeated
//! map key or set element is a 400 naming its path in every encoding, stored nowhere.

use atomsync_client::{ClientError, Value, value};
use atomsync_proto::wire::ServerFrame;
use atomsync_proto::{Encoding, ErrorCode, msgpack};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::client::Client as NativeClient;
use crate::common::TestServer;
use crate::ws::Client;

/// A MessagePack `push` frame with id 7 in group `todo`, whose one change has the value
/// `value_bytes` spliced in as they are.
fn msgpack_push(value_bytes: &[u8]) -> Vec<u8> {
    let head = Value::map([
        ("type", Value::from("push")),
        ("id", Value::from(7)),
        ("group", Value::from("todo")),
    ]);
    // A 4-entry map: the three above, then `changes`.
    let mut out = vec![0x84];
    out.extend_from_slice(&msgpack::encode(&head)[1..]);
    out.extend_from_slice(&msgpack::encode(&Value::from("changes")));
    out.extend_from_slice(&[0x91, 0x83]);
    for (name, item) in [("key", Value::from("x")), ("base", Value::from(0))] {
        out.extend_from_slice(&msgpack::encode(&Value::from(name)));
        out.extend_from_slice(&msgpack::encode(&item));
    }
    out.extend_from_slice(&msgpack::encode(&Value::from("value")));
    out.extend_from_slice(value_bytes);
    out
}

fn assert_names_the_push(frame: ServerFrame, what: &str) -> String {
    match frame {
        ServerFrame::Error { id, group, error } => {
            assert_eq!(id, Some(Value::from(7)), "{what}: {error:?}");
            assert_eq!(group.as_deref(), Some("todo"), "{what}: {error:?}");
            assert_eq!(error.code, ErrorCode::BadRequest, "{what}");
            error.message
        }
        other => panic!("{what}: expected an error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn error_frames_keep_id_and_group_when_a_value_fails_to_decode() {
    let server = TestServer::start();
    let mut ws = Client::connect(&server).await;
    for bad in [
        r#"{"$uuid":"zzz"}"#,
        "NaN",
        "1e400",
        r#"{"$inst":"2026-02-30T00:00:00Z"}"#,
    ] {
        let text = format!(
            r#"{{"type":"push","id":7,"group":"todo","changes":[{{"key":"x","base":0,"value":{bad}}}]}}"#
        );
        ws.send_raw(Message::text(text)).await;
        let (encoding, frame) = ws.next().await;
        assert_eq!(encoding, Encoding::Json);
        assert_names_the_push(frame, bad);
    }
    let late_nanos = (1_000_000_000u64 << 34 | 5).to_be_bytes();
    let mut bad_inst = vec![0xd7, 0xff];
    bad_inst.extend_from_slice(&late_nanos);
    for (what, bad) in [
        ("a 3-byte uuid", vec![0xc7, 3, 1, 1, 2, 3]),
        ("timestamp nanos of 1e9", bad_inst),
    ] {
        ws.send_raw(Message::binary(msgpack_push(&bad))).await;
        let (encoding, frame) = ws.next().await;
        assert_eq!(encoding, Encoding::MsgPack);
        let message = assert_names_the_push(frame, what);
        assert!(message.contains("changes[0].value"), "{what}: {message}");
    }
    // The connection stays open and nothing was stored.
    let pulled = crate::ws::http()
        .get(server.url("/sync?group=todo"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(pulled["changes"], json!([]));
}

#[tokio::test]
async fn a_repeated_key_or_element_is_refused_in_every_encoding() {
    let server = TestServer::start();
    let http = crate::ws::http();
    let push_json = |value: serde_json::Value| {
        let body = json!({"group": "dups", "changes": [
            {"key": "ok", "base": 0, "value": 1},
            {"key": "bad", "base": 0, "value": value}]});
        http.post(server.url("/sync"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    for (value, path) in [
        (
            json!({"$map": [["a", 1], ["a", 2]]}),
            "changes[1].value.a: duplicate map key",
        ),
        (
            json!({"$map": [[[1], 1], [[1], 2]]}),
            "changes[1].value{key 1}: duplicate map key",
        ),
        (
            json!({"tags": {"$set": [{"$kw": "x"}, {"$kw": "x"}]}}),
            "changes[1].value.tags[1]: duplicate set element",
        ),
    ] {
        let res = push_json(value.clone()).await.unwrap();
        assert_eq!(res.status(), 400, "{value}");
        let body: serde_json::Value = res.json().await.unwrap();
        let message = body["message"].as_str().unwrap();
        assert!(message.contains(path), "{value}: {message}");
    }
    // A JSON object naming a member twice (serde_json would keep the last: written by hand).
    let text = r#"{"group":"dups","changes":[{"key":"bad","base":0,"value":{"a":1,"a":2}}]}"#;
    let res = http
        .post(server.url("/sync"))
        .header("content-type", "application/json")
        .body(text)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("changes[0].value.a: duplicate map key"),
        "{body}"
    );
    // MessagePack: a map with a repeated key, a set with a repeated element.
    for (bad, path) in [
        (
            vec![0x82, 0xa1, b'a', 1, 0xa1, b'a', 2],
            "changes[0].value.a: duplicate map key",
        ),
        (
            vec![0xc7, 3, 3, 0x92, 1, 1],
            "changes[0].value[1]: duplicate set element",
        ),
    ] {
        let mut body = msgpack::encode(&Value::map([("group", Value::from("dups"))]));
        body[0] = 0x82;
        body.extend_from_slice(&msgpack::encode(&Value::from("changes")));
        body.extend_from_slice(&[0x91, 0x83]);
        body.extend_from_slice(&msgpack::encode(&value!({"key": "bad", "base": 0}))[1..]);
        body.extend_from_slice(&msgpack::encode(&Value::from("value")));
        body.extend_from_slice(&bad);
        let res = http
            .post(server.url("/sync"))
            .header("content-type", "application/msgpack")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let answer: serde_json::Value = res.json().await.unwrap();
        assert!(
            answer["message"].as_str().unwrap().contains(path),
            "{answer}"
        );
    }
    // The same over a WebSocket frame, which keeps its id and group.
    let mut ws = Client::connect(&server).await;
    ws.send_raw(Message::binary(msgpack_push(&[0xc7, 3, 3, 0x92, 1, 1])))
        .await;
    let message = assert_names_the_push(ws.next().await.1, "set");
    assert!(
        message.contains("changes[0].value[1]: duplicate set element"),
        "{message}"
    );
    // A request that fails applied nothing: not even its valid first change.
    let pulled: serde_json::Value = http
        .get(server.url("/sync?group=dups"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pulled["changes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_native_client_never_writes_a_value_with_a_repeat() {
    let server = TestServer::start();
    let client = NativeClient::new();
    let atom = client.atom(&server, "client-dups");
    atom.ready().await;
    let repeated_set = Value::set([1, 2, 1]);
    let repeated_key = Value::map([
        (Value::from(1), Value::Nil),
        (Value::from(1u64), Value::Nil),
    ]);
    for bad in [repeated_set, repeated_key] {
        let err = atom
            .swap(|m| {
                m.insert("fine".into(), value!("fine"));
                m.insert("bad".into(), value!({"inner": bad.clone()}));
            })
            .unwrap_err();
        assert!(
            matches!(&err, ClientError::InvalidValue { key, reason } if key == "bad" && reason.contains("inner")),
            "{err}"
        );
        assert!(atom.snapshot().is_empty(), "a refused swap writes nothing");
        assert_eq!(atom.status().pending, 0);
    }
}
