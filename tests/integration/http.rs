//! HTTP end to end (PROTOCOL.md sections 3 to 5): every endpoint, every error code, auth on
//! and off, content negotiation; auth ([`auth`]), restarts and a crash ([`restart`]).

mod auth;
mod restart;

use atomsync_proto::wire::{PullResponse, PushResponse, PushResult};
use atomsync_proto::{Encoding, value};
use reqwest::StatusCode;
use serde_json::{Value as Json, json};

use crate::common::TestServer;

const JSON: &str = "application/json";
const MSGPACK: &str = "application/msgpack";

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// POSTs a JSON body to /sync; returns the status and the JSON answer.
async fn push_json(server: &TestServer, body: &Json) -> (StatusCode, Json) {
    let res = client()
        .post(server.url("/sync"))
        .header("content-type", JSON)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

async fn get_json(server: &TestServer, path: &str) -> (StatusCode, Json) {
    let res = client().get(server.url(path)).send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap())
}

fn assert_error(status: StatusCode, body: &Json, want: StatusCode, code: &str, needle: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"], code, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(needle),
        "message {message:?} lacks {needle:?}"
    );
}

#[tokio::test]
async fn typed_json_push_comes_back_identical_on_pull() {
    let server = TestServer::start();
    let value = json!({"text": "Buy milk", "tags": {"$set": [{"$kw": "groceries"}]},
        "due": {"$inst": "2026-11-24T10:00:00.123456789Z"}, "id": {"$uuid": "550e8400-e29b-41d4-a716-446655440000"},
        "big": 18446744073709551615u64, "neg": -9223372036854775808i64, "f": 1.5, "nan": {"$float": "NaN"},
        "raw": {"$bytes": "AAEC"}, "pairs": {"$map": [[1, "one"], [[2], "list key"]]}, "nil": null});
    let (status, body) = push_json(
        &server,
        &json!({"group": "typed", "changes": [
        {"key": "todo:1", "base": 0, "value": value}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"],
        json!([{"key": "todo:1", "ok": true, "version": 1, "seq": 1}])
    );
    assert_eq!(body["seq"], 1);
    assert_eq!(body["group"], "typed");
    let epoch = body["epoch"].as_str().unwrap().to_owned();

    let (status, pulled) = get_json(&server, "/sync?group=typed").await;
    assert_eq!(status, 200);
    assert_eq!(pulled["epoch"], epoch.as_str());
    assert_eq!(pulled["changes"][0]["value"], value);
    assert_eq!(pulled["changes"][0]["version"], 1);
    assert_eq!(pulled["seq"], 1);
    assert_eq!(pulled["more"], false);
    assert!(pulled.get("reset").is_none());
}

#[tokio::test]
async fn msgpack_both_ways_and_negotiation() {
    let server = TestServer::start();
    let doc = value!({"tags": #{atomsync_proto::kw!("a"), atomsync_proto::kw!("b")}, "n": 7});
    let body = atomsync_proto::wire::PushRequest {
        group: "mp".into(),
        changes: vec![atomsync_proto::wire::Change {
            key: "k".into(),
            base: 0,
            op: atomsync_proto::wire::Op::Set(atomsync_proto::Packed::from_value(&doc)),
        }],
    }
    .encode(Encoding::MsgPack);
    let res = client()
        .post(server.url("/sync"))
        .header("content-type", "application/x-msgpack")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        MSGPACK,
        "answered in the body's encoding"
    );
    let pushed = PushResponse::decode(&res.bytes().await.unwrap(), Encoding::MsgPack).unwrap();
    assert!(matches!(
        pushed.results[0],
        PushResult::Accepted {
            version: 1,
            seq: 1,
            ..
        }
    ));

    // Accept names JSON first: JSON, whatever comes after it.
    let res = client()
        .get(server.url("/sync?group=mp"))
        .header("accept", "application/json;q=0.1, application/msgpack")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], JSON);
    let res = client()
        .get(server.url("/sync?group=mp"))
        .header("accept", "text/html, application/msgpack")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], MSGPACK);
    let pulled = PullResponse::decode(&res.bytes().await.unwrap(), Encoding::MsgPack).unwrap();
    assert_eq!(pulled.changes[0].value.as_ref().unwrap().to_value(), doc);
}

#[tokio::test]
async fn versions_conflicts_tombstones_and_gapless_seq() {
    let server = TestServer::start();
    let server = &server;
    let push = |changes: Json| {
        let body = json!({"group": "v", "changes": changes});
        async move { push_json(server, &body).await }
    };
    let (_, b) =
        push(json!([{"key": "a", "base": 0, "value": 1}, {"key": "b", "base": 0, "value": 2}]))
            .await;
    assert_eq!(b["seq"], 2);
    // A stale base is a conflict carrying the current document; the rest still applies.
    let (status, b) =
        push(json!([{"key": "a", "base": 0, "value": 10}, {"key": "b", "base": 1, "value": 20}]))
            .await;
    assert_eq!(status, 200);
    assert_eq!(
        b["results"][0],
        json!({"key": "a", "ok": false,
        "current": {"key": "a", "version": 1, "seq": 1, "value": 1}})
    );
    assert_eq!(
        b["results"][1],
        json!({"key": "b", "ok": true, "version": 2, "seq": 3})
    );
    // Never written: current is null.
    let (_, b) = push(json!([{"key": "c", "base": 4, "value": 1}])).await;
    assert_eq!(
        b["results"][0],
        json!({"key": "c", "ok": false, "current": null})
    );
    assert_eq!(b["seq"], 3, "a rejected change takes no seq");
    // Delete, then re-create from the tombstone's version.
    let (_, b) = push(json!([{"key": "a", "base": 1, "deleted": true}])).await;
    assert_eq!(
        b["results"][0],
        json!({"key": "a", "ok": true, "version": 2, "seq": 4})
    );
    let (_, b) = push(json!([{"key": "a", "base": 0, "value": "again"}])).await;
    assert_eq!(
        b["results"][0]["current"],
        json!({"key": "a", "version": 2, "seq": 4, "deleted": true})
    );
    let (_, b) = push(json!([{"key": "a", "base": 2, "value": "again"}])).await;
    assert_eq!(
        b["results"][0],
        json!({"key": "a", "ok": true, "version": 3, "seq": 5})
    );
    // A retried request (response lost) comes back as conflicts showing the first attempt.
    let (_, b) = push(json!([{"key": "a", "base": 2, "value": "again"}])).await;
    assert_eq!(b["results"][0]["current"]["value"], "again");

    let (_, pulled) = get_json(server, "/sync?group=v&since=0").await;
    let seqs: Vec<u64> = pulled["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        vec![3, 5],
        "each document once, at its latest state, by seq"
    );
}

#[tokio::test]
async fn pull_pages_with_since_limit_and_more() {
    let server = TestServer::start();
    let changes: Vec<Json> = (0..25)
        .map(|i| json!({"key": format!("k{i:02}"), "base": 0, "value": i}))
        .collect();
    push_json(&server, &json!({"group": "pages", "changes": changes})).await;
    let mut since = 0;
    let mut seen = Vec::new();
    loop {
        let (status, page) = get_json(
            &server,
            &format!("/sync?group=pages&since={since}&limit=10"),
        )
        .await;
        assert_eq!(status, 200);
        for d in page["changes"].as_array().unwrap() {
            seen.push(d["seq"].as_u64().unwrap());
        }
        since = page["seq"].as_u64().unwrap();
        if page["more"] == false {
            break;
        }
    }
    assert_eq!(seen, (1..=25).collect::<Vec<u64>>());
    // Past the end: no changes, the cursor stays.
    let (_, page) = get_json(&server, "/sync?group=pages&since=25").await;
    assert_eq!(page["changes"], json!([]));
    assert_eq!(page["seq"], 25);
    // limit above 10000 counts as 10000; a never-written group is empty.
    let (status, page) = get_json(&server, "/sync?group=pages&limit=99999").await;
    assert_eq!(status, 200);
    assert_eq!(page["changes"].as_array().unwrap().len(), 25);
    let (_, page) = get_json(&server, "/sync?group=nothing-here&since=7").await;
    assert_eq!(
        (page["seq"].clone(), page["more"].clone()),
        (json!(7), json!(false))
    );
}

#[tokio::test]
async fn bad_requests_say_what_and_where_and_apply_nothing() {
    let server = TestServer::start_with("max_value_bytes = 64\nmax_depth = 4\nmax_changes = 3\n");
    let cases: Vec<(Json, StatusCode, &str, &str)> = vec![
        (
            json!({"group": "bad group", "changes": []}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "group",
        ),
        (
            json!({"group": "g"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes",
        ),
        (
            json!({"group": "g", "changes": {}}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes",
        ),
        (
            json!({"group": "g", "changes": [{"key": "ok", "base": 0, "value": 1}, {"key": "", "base": 0, "value": 1}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes[1].key",
        ),
        (
            json!({"group": "g", "changes": [{"key": "x".repeat(1025), "base": 0, "value": 1}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes[0].key",
        ),
        (
            json!({"group": "g", "changes": [{"key": "a", "base": -1, "value": 1}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes[0].base",
        ),
        (
            json!({"group": "g", "changes": [{"key": "a", "base": 1.5, "value": 1}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes[0].base",
        ),
        (
            json!({"group": "g", "changes": [{"key": "a", "base": 0, "value": 1, "deleted": true}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes[0]",
        ),
        (
            json!({"group": "g", "changes": [{"key": "a", "base": 0}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes[0]",
        ),
        (
            json!({"group": "g", "changes": [{"key": "a", "base": 0, "value": 1}, {"key": "a", "base": 0, "value": 2}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes[1].key",
        ),
        (
            json!({"group": "g", "changes": [{"key": "a", "base": 0, "value": [[[[[1]]]]]}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "changes[0].value",
        ),
        (
            json!({"group": "g", "changes": [{"key": "a", "base": 0, "value": {"$nope": 1}}]}),
            StatusCode::BAD_REQUEST,
            "bad_request",
            "$nope",
        ),
        (
            json!({"group": "g", "changes": [{"key": "a", "base": 0, "value": "x".repeat(100)}]}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "changes[0].value",
        ),
        (
            json!({"group": "g", "changes": [
            {"key": "a", "base": 0, "value": 1}, {"key": "b", "base": 0, "value": 1},
            {"key": "c", "base": 0, "value": 1}, {"key": "d", "base": 0, "value": 1}]}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "changes",
        ),
    ];
    for (body, status, code, needle) in cases {
        let (got, answer) = push_json(&server, &body).await;
        assert_error(got, &answer, status, code, needle);
    }
    // Undecodable bodies.
    for (ct, body) in [
        (JSON, &b"{\"group\": "[..]),
        (JSON, b"[1,2]"),
        (MSGPACK, b"\xc1"),
        (MSGPACK, b"\x92\x01"),
    ] {
        let res = client()
            .post(server.url("/sync"))
            .header("content-type", ct)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        let status = res.status();
        let answer: Json = if ct == JSON {
            res.json().await.unwrap()
        } else {
            let v = atomsync_proto::msgpack::decode(&res.bytes().await.unwrap(), 8).unwrap();
            serde_json::from_str(&atomsync_proto::json::encode(&v)).unwrap()
        };
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "bad_request", "");
    }
    // Nothing of any refused request was applied.
    let (_, page) = get_json(&server, "/sync?group=g").await;
    assert_eq!(page["changes"], json!([]));
    assert_eq!(page["seq"], 0);
}

#[tokio::test]
async fn deep_and_huge_input_is_refused_and_the_server_lives() {
    let server = TestServer::start_with("max_body_bytes = 1000000\n");
    let deep = format!(
        "{{\"group\":\"g\",\"changes\":[{{\"key\":\"a\",\"base\":0,\"value\":{}1{}}}]}}",
        "[".repeat(600_000),
        "]".repeat(600_000)
    );
    let res = client()
        .post(server.url("/sync"))
        .header("content-type", JSON)
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let deep = format!(
        "{{\"group\":\"g\",\"changes\":[{{\"key\":\"a\",\"base\":0,\"value\":{}1{}}}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, body) = push_json(&server, &Json::Null).await;
    assert_eq!(status, 400, "a body that is not a map: {body}");
    let res = client()
        .post(server.url("/sync"))
        .header("content-type", JSON)
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let mp = [vec![0x91u8; 300_000], vec![0x01]].concat();
    let res = client()
        .post(server.url("/sync"))
        .header("content-type", MSGPACK)
        .body(mp)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // A map header that claims 2^32 entries must not allocate them.
    let res = client()
        .post(server.url("/sync"))
        .header("content-type", MSGPACK)
        .body(vec![0xdf, 0xff, 0xff, 0xff, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let (status, _) = get_json(&server, "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn routing_content_type_size_and_pull_parameters() {
    let server = TestServer::start_with("max_body_bytes = 100\n");
    let (s, b) = get_json(&server, "/nope").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found", "/nope");
    let res = client().put(server.url("/sync")).send().await.unwrap();
    assert_eq!(res.headers()["allow"], "GET, POST");
    let (s, b) = (res.status(), res.json::<Json>().await.unwrap());
    assert_error(
        s,
        &b,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "PUT",
    );
    for ct in [None, Some("text/plain")] {
        let mut req = client().post(server.url("/sync")).body("{}");
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let res = req.send().await.unwrap();
        let (s, b) = (res.status(), res.json::<Json>().await.unwrap());
        assert_error(
            s,
            &b,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type",
        );
    }
    let big = json!({"group": "g", "changes": [{"key": "a", "base": 0, "value": "x".repeat(200)}]});
    let (s, b) = push_json(&server, &big).await;
    assert_error(
        s,
        &b,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "body",
    );
    for (query, needle) in [
        ("", "group"),
        ("?group=a%20b", "group"),
        ("?group=g&since=-1", "since"),
        ("?group=g&since=x", "since"),
        ("?group=g&limit=0", "limit"),
        ("?group=g&limit=1.5", "limit"),
    ] {
        let (s, b) = get_json(&server, &format!("/sync{query}")).await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "bad_request", needle);
    }
    let res = client()
        .get(server.url("/healthz"))
        .header("accept", MSGPACK)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v = atomsync_proto::msgpack::decode(&res.bytes().await.unwrap(), 4).unwrap();
    assert_eq!(v, value!({"status": "ok"}));
}

#[tokio::test]
async fn pulls_are_gzipped_for_clients_that_ask() {
    let server = TestServer::start();
    let changes: Vec<Json> = (0..50)
        .map(|i| json!({"key": format!("k{i}"), "base": 0, "value": "the same words again and again"}))
        .collect();
    push_json(&server, &json!({"group": "gz", "changes": changes})).await;
    let res = client()
        .get(server.url("/sync?group=gz"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let plain = client()
        .get(server.url("/sync?group=gz"))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
}
