//! Who may reach the server and do what (PROTOCOL.md section 5): foreign pages and DNS
//! rebinding are refused, read-only grants read and never write, hashed tokens work,
//! and a reload takes grants away from open connections at once.

use std::io::Write;
use std::time::{Duration, Instant};

use atomsync_proto::wire::ServerFrame;
use atomsync_proto::{Encoding, ErrorCode};
use serde_json::json;

use super::raw::{connect, read_response, ws_handshake};
use crate::common::TestServer;
use crate::ws::{Client, http, new_keys};

/// `POST /sync` as the user of `token` (none: no header); the status and the JSON answer.
async fn http_push(
    server: &TestServer,
    group: &str,
    changes: serde_json::Value,
    token: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = http()
        .post(server.url("/sync"))
        .header("content-type", "application/json")
        .body(json!({"group": group, "changes": changes}).to_string());
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let res = request.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

/// The status line of a WebSocket handshake sent with `headers`.
fn handshake_status(server: &TestServer, query: &str, headers: &str) -> String {
    let mut stream = connect(server.addr);
    let head = ws_handshake(&mut stream, server.addr, query, headers);
    head.lines().next().unwrap_or_default().to_owned()
}

#[test]
fn a_page_of_a_foreign_origin_cannot_open_a_websocket() {
    for users in ["", "[users.a]\ntoken = \"t\"\ngroups = [\"*\"]\n"] {
        let server = TestServer::start_with(&format!(
            "allowed_origins = [\"https://app.example\"]\n{users}"
        ));
        let query = if users.is_empty() { "" } else { "?token=t" };
        let own = format!("Origin: http://{}\r\n", server.addr);
        let listed = "Origin: https://app.example\r\n";
        for (headers, wanted) in [
            ("", "101"),
            (own.as_str(), "101"),
            (listed, "101"),
            ("Origin: https://evil.example\r\n", "403"),
            ("Origin: http://127.0.0.1:1\r\n", "403"),
            ("Origin: null\r\n", "403"),
            ("Origin: http://app.example\r\n", "403"),
        ] {
            let status = handshake_status(&server, query, headers);
            assert!(
                status.contains(wanted),
                "auth {:?}, {headers:?}: {status}",
                !users.is_empty()
            );
        }
    }
}

#[test]
fn on_a_loopback_bind_a_foreign_host_is_refused() {
    let server = TestServer::start();
    for (host, wanted) in [
        (server.addr.to_string(), "200"),
        (format!("localhost:{}", server.addr.port()), "200"),
        ("evil.example".to_owned(), "403"),
        (format!("rebind.evil.example:{}", server.addr.port()), "403"),
    ] {
        let mut stream = connect(server.addr);
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let answer = read_response(&mut stream);
        assert!(
            answer.lines().next().unwrap().contains(wanted),
            "{host}: {answer}"
        );
        if wanted == "403" {
            assert!(
                answer.contains("forbidden") && answer.contains("loopback"),
                "{answer}"
            );
        }
    }
}

const VIEWER: &str = "[users.viewer]\ntoken = \"v\"\ngroups = [\"ro-todo\"]\nread = [\"ro-reports\"]\n\
                      [users.writer]\ntoken = \"w\"\ngroups = [\"*\"]\n";

#[tokio::test]
async fn a_read_grant_pulls_and_subscribes_but_never_pushes() {
    let server = TestServer::start_with(VIEWER);
    let as_user = |token: &str| format!("Bearer {token}");
    // Something to read, written by a user who may.
    let res = http_push(&server, "ro-reports", new_keys(&["r1"]), Some("w")).await;
    assert_eq!(res.0, 200);
    let pulled = http()
        .get(server.url("/sync?group=ro-reports"))
        .header("authorization", as_user("v"))
        .send()
        .await
        .unwrap();
    assert_eq!(pulled.status(), 200);
    let (status, body) = http_push(&server, "ro-reports", new_keys(&["r2"]), Some("v")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden");
    assert!(
        body["message"].as_str().unwrap().contains("may only read"),
        "{body}"
    );
    let (status, _) = http_push(&server, "ro-todo", new_keys(&["t1"]), Some("v")).await;
    assert_eq!(status, 200);

    let mut ws = Client::connect_to(&server.ws_url("/sync/ws?token=v"))
        .await
        .unwrap();
    let caught = ws.subscribe("ro-reports", 0, Encoding::Json).await;
    assert!(format!("{caught:?}").contains("seq: 1"), "{caught:?}");
    ws.send_json(json!({"type": "push", "id": 1, "group": "ro-reports",
        "changes": [{"key": "r3", "base": 0, "value": 1}]}))
        .await;
    match ws.frame().await {
        ServerFrame::Error { id, group, error } => {
            assert_eq!(error.code, ErrorCode::Forbidden);
            assert_eq!(group.as_deref(), Some("ro-reports"));
            assert_eq!(id, Some(1.into()));
        }
        other => panic!("expected forbidden, got {other:?}"),
    }
    // The connection stays open and its other grants work.
    ws.send_json(json!({"type": "push", "id": 2, "group": "ro-todo",
        "changes": [{"key": "t2", "base": 0, "value": 1}]}))
        .await;
    assert!(matches!(ws.frame().await, ServerFrame::Pushed { .. }));
    let pulled: serde_json::Value = http()
        .get(server.url("/sync?group=ro-reports"))
        .header("authorization", as_user("w"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pulled["seq"], 1, "the refused pushes wrote nothing");
}

#[tokio::test]
async fn a_hashed_token_is_accepted_and_never_logged() {
    use sha2::{Digest, Sha256};
    let real: String = Sha256::digest(b"s3cret-token")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let server = TestServer::start_with(&format!(
        "[users.h]\ntoken_sha256 = \"{real}\"\ngroups = [\"hashed\"]\n"
    ));
    let (status, body) = http_push(&server, "hashed", new_keys(&["k"]), Some("s3cret-token")).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = http_push(&server, "hashed", new_keys(&["k2"]), Some(&real)).await;
    assert_eq!(status, 401, "the digest is not a token");
    let (status, _) = http_push(&server, "hashed", new_keys(&["k3"]), Some("s3cret-tokeN")).await;
    assert_eq!(status, 401);
    let log = server.log();
    assert!(!log.contains("s3cret") && !log.contains(&real), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_revokes_tokens_and_grants_on_open_connections() {
    let before = "[users.a]\ntoken = \"ta\"\ngroups = [\"rv-1\", \"rv-2\"]\n\
                  [users.b]\ntoken = \"tb\"\ngroups = [\"rv-1\"]\n";
    let after = "[users.a]\ntoken = \"ta\"\ngroups = [\"rv-1\"]\n";
    let mut server = TestServer::start_with(before);
    let mut a = Client::connect_to(&server.ws_url("/sync/ws?token=ta"))
        .await
        .unwrap();
    a.subscribe("rv-1", 0, Encoding::Json).await;
    a.subscribe("rv-2", 0, Encoding::MsgPack).await;
    let mut b = Client::connect_to(&server.ws_url("/sync/ws?token=tb"))
        .await
        .unwrap();
    b.subscribe("rv-1", 0, Encoding::Json).await;

    let start = Instant::now();
    server.reload_with(after);
    // a loses rv-2: a `forbidden` error frame for that group, in its encoding.
    let (encoding, frame) = a.next().await;
    let revoked_after = start.elapsed();
    assert_eq!(encoding, Encoding::MsgPack);
    match frame {
        ServerFrame::Error { group, error, .. } => {
            assert_eq!(error.code, ErrorCode::Forbidden);
            assert_eq!(group.as_deref(), Some("rv-2"));
        }
        other => panic!("expected forbidden for rv-2, got {other:?}"),
    }
    // b's token is gone: its connection is closed with 1008.
    let (_, close) = b.until_close().await;
    let closed_after = start.elapsed();
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1008));
    assert!(revoked_after < Duration::from_secs(1), "{revoked_after:?}");
    assert!(closed_after < Duration::from_secs(1), "{closed_after:?}");
    // a still gets rv-1's changes, and rv-2's no more.
    http_push(&server, "rv-2", new_keys(&["gone"]), Some("ta")).await;
    let (status, _) = http_push(&server, "rv-1", new_keys(&["still"]), Some("ta")).await;
    assert_eq!(status, 200);
    let docs = a.changes("rv-1").await;
    assert_eq!(docs[0].key, "still");

    // An invalid file is refused and the rules in force stay.
    server.reload_with("[users.a]\ntoken = \"ta\"\ngroups = [\"bad group\"]\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log().contains("config reload refused") {
        assert!(Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = http_push(&server, "rv-1", new_keys(&["after-bad"]), Some("ta")).await;
    assert_eq!(status, 200);
    let (status, _) = http_push(&server, "rv-1", new_keys(&["b"]), Some("tb")).await;
    assert_eq!(status, 401);
}
