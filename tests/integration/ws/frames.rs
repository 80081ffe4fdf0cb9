//! What a client can get wrong: undecodable or unknown frames, bad and forbidden groups,
//! frames over the size limit, and the token at the upgrade.

use atomsync_proto::wire::ServerFrame;
use atomsync_proto::{Encoding, ErrorCode, Value};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tokio_tungstenite::tungstenite::{self, Message};

use super::Client;
use crate::common::TestServer;

const USERS: &str = "[users.alice]\ntoken = \"alice-token\"\ngroups = [\"todo\"]\n";

/// The parts of an error frame.
fn error(frame: ServerFrame) -> (Option<Value>, Option<String>, ErrorCode, String) {
    match frame {
        ServerFrame::Error { id, group, error } => (id, group, error.code, error.message),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_frames_get_error_frames_and_the_socket_stays_open() {
    let server = TestServer::start();
    let mut ws = Client::connect(&server).await;

    ws.send_raw(Message::text("{not json")).await;
    let (id, group, code, message) = error(ws.frame().await);
    assert_eq!((id, group, code), (None, None, ErrorCode::BadRequest));
    assert!(message.starts_with("frame"), "{message}");

    ws.send_raw(Message::binary(vec![0x93, 0xc1])).await;
    let (encoding, frame) = ws.next().await;
    assert_eq!(encoding, Encoding::MsgPack);
    assert_eq!(error(frame).2, ErrorCode::BadRequest);

    ws.send_json(json!([1, 2])).await;
    assert_eq!(error(ws.frame().await).2, ErrorCode::BadRequest);

    ws.send_json(json!({"type": "dance", "id": 3, "group": "g"}))
        .await;
    let (id, group, code, message) = error(ws.frame().await);
    assert_eq!(
        (id, group.as_deref(), code),
        (Some(Value::from(3)), Some("g"), ErrorCode::BadRequest)
    );
    assert!(message.contains("dance"), "{message}");

    ws.send_json(json!({"type": "subscribe", "group": "no spaces!", "since": 0}))
        .await;
    let (_, group, code, message) = error(ws.frame().await);
    assert_eq!(
        (group.as_deref(), code),
        (Some("no spaces!"), ErrorCode::BadRequest)
    );
    assert!(message.starts_with("group"), "{message}");

    ws.send_json(json!({"type": "subscribe", "group": "g", "since": -1}))
        .await;
    let (_, group, _, message) = error(ws.frame().await);
    assert_eq!(group.as_deref(), Some("g"));
    assert!(message.starts_with("since"), "{message}");

    ws.send_json(json!({"type": "push", "id": "p1", "group": "g", "changes": [{"key": "", "base": 0, "value": 1}]})).await;
    let (id, group, code, message) = error(ws.frame().await);
    assert_eq!(
        (id, group.as_deref(), code),
        (Some(Value::from("p1")), Some("g"), ErrorCode::BadRequest)
    );
    assert!(message.starts_with("changes[0].key"), "{message}");

    ws.send_json(json!({"type": "push", "group": "g", "changes": []}))
        .await;
    let (_, group, _, message) = error(ws.frame().await);
    assert_eq!(group.as_deref(), Some("g"));
    assert!(message.starts_with("id"), "{message}");

    // Text that is not UTF-8, sent as a raw frame past the client's own checks.
    ws.send_raw(Message::Frame(Frame::message(
        vec![b'{', 0xff, b'}'],
        OpCode::Data(Data::Text),
        true,
    )))
    .await;
    let (_, _, code, message) = error(ws.frame().await);
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(message.contains("UTF-8"), "{message}");

    // After all that, the connection works.
    let caught_up = ws.subscribe("g", 0, Encoding::Json).await;
    assert_eq!(caught_up.seq, 0);
    ws.send_json(json!({"type": "push", "id": 1, "group": "g", "changes": [{"key": "k", "base": 0, "value": 1}]})).await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(match ws.frame().await {
            ServerFrame::Pushed { .. } => "pushed",
            ServerFrame::Changes { .. } => "changes",
            other => panic!("{other:?}"),
        });
    }
    got.sort();
    assert_eq!(got, ["changes", "pushed"]);
}

#[tokio::test]
async fn a_forbidden_group_is_an_error_frame_naming_it() {
    let server = TestServer::start_with(USERS);
    let mut ws = Client::connect_to(&server.ws_url("/sync/ws?token=alice-token"))
        .await
        .unwrap();
    ws.send_json(json!({"type": "subscribe", "group": "secret", "since": 0}))
        .await;
    let (id, group, code, _) = error(ws.frame().await);
    assert_eq!(
        (id, group.as_deref(), code),
        (None, Some("secret"), ErrorCode::Forbidden)
    );
    ws.send_json(json!({"type": "push", "id": 9, "group": "secret", "changes": [{"key": "k", "base": 0, "value": 1}]}))
        .await;
    let (id, group, code, _) = error(ws.frame().await);
    assert_eq!(
        (id, group.as_deref(), code),
        (Some(Value::from(9)), Some("secret"), ErrorCode::Forbidden)
    );
    // Permission comes before validating the changes, as over HTTP.
    ws.send_json(json!({"type": "push", "id": 10, "group": "secret", "changes": [{"key": ""}]}))
        .await;
    assert_eq!(error(ws.frame().await).2, ErrorCode::Forbidden);
    // Still open, and the user's own group works.
    assert_eq!(ws.subscribe("todo", 0, Encoding::Json).await.seq, 0);
}

/// A masked client frame header (mask key 0) declaring `len` bytes.
fn frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&[0; 4]);
    out
}

#[tokio::test]
async fn a_frame_declaring_more_than_the_limit_closes_with_1009_unread() {
    let server = TestServer::start_with("max_body_bytes = 65536\n");
    // Only the header of a 1 GiB frame is sent: the server refuses it from the header.
    let mut ws = Client::connect(&server).await;
    ws.write_raw(&frame_header(true, 2, 1 << 30)).await;
    let (frames, close) = ws.until_close().await;
    assert!(frames.is_empty());
    let close = close.expect("a close frame");
    assert_eq!(close.code, CloseCode::Size, "{close:?}");

    // A fragmented message counts all its fragments: 40 KiB + a fragment declaring 30 KiB.
    let mut ws = Client::connect(&server).await;
    let mut first = frame_header(false, 1, 40 << 10);
    first.extend(std::iter::repeat_n(b' ', 40 << 10));
    ws.write_raw(&first).await;
    ws.write_raw(&frame_header(true, 0, 30 << 10)).await;
    let (_, close) = ws.until_close().await;
    assert_eq!(close.expect("a close frame").code, CloseCode::Size);

    // Just under the limit is a frame like any other (here, not a valid message).
    let mut ws = Client::connect(&server).await;
    ws.send_raw(Message::binary(vec![0xc1; 65536])).await;
    assert_eq!(error(ws.frame().await).2, ErrorCode::BadRequest);
}

#[tokio::test]
async fn bytes_that_are_not_websocket_framing_close_with_1002() {
    let server = TestServer::start();
    let mut ws = Client::connect(&server).await;
    // A client frame must be masked.
    ws.write_raw(&[0x81, 0x02, b'h', b'i']).await;
    let (_, close) = ws.until_close().await;
    assert_eq!(close.expect("a close frame").code, CloseCode::Protocol);
}

#[tokio::test]
async fn the_token_is_checked_at_the_upgrade() {
    let server = TestServer::start_with(USERS);
    let url = server.ws_url("/sync/ws");
    let refused = |result: Result<Client, tungstenite::Error>| match result {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body = response.body().clone().unwrap_or_default();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["error"], "unauthorized", "{body}");
        }
        Err(other) => panic!("expected 401, got {other}"),
        Ok(_) => panic!("expected 401, the upgrade succeeded"),
    };
    refused(Client::connect_to(&url).await);
    refused(Client::connect_to(&format!("{url}?token=wrong")).await);
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    refused(
        tokio_tungstenite::connect_async(request)
            .await
            .map(|(socket, _)| Client::from_socket(socket)),
    );

    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer alice-token".parse().unwrap());
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        Client::from_socket(socket)
            .subscribe("todo", 0, Encoding::Json)
            .await
            .seq,
        0
    );
    let mut by_query = Client::connect_to(&format!("{url}?token=alice-token"))
        .await
        .unwrap();
    assert_eq!(
        by_query.subscribe("todo", 0, Encoding::MsgPack).await.seq,
        0
    );
}
