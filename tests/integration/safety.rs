//! Data safety end to end (issue 11, PROTOCOL.md sections 1, 4 and 8), against the real
//! server binary: a database that goes back in time gets a new epoch ([`epoch`]); a deleted
//! database answers 503 and another application's file is left alone ([`lost`]); pages and
//! frames are bounded in bytes and both transports sync large documents ([`pages`]); idle
//! group actors are reclaimed ([`idle`]); tombstone compaction with its floor, reset and
//! full paging, and clients that keep no deleted key ([`compaction`]).

mod compaction;
pub mod epoch;
mod idle;
mod lost;
mod pages;

use atomsync_proto::wire::{Change, Doc, Op, PullResponse, PushRequest, PushResponse};
use atomsync_proto::{Encoding, Packed, Value};
use reqwest::StatusCode;

use crate::common::TestServer;

pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A push of `changes` (key, base, value or `None` to delete) in MessagePack; the status
/// and the raw answer.
pub async fn push_raw(
    server: &TestServer,
    group: &str,
    changes: &[(&str, u64, Option<Value>)],
) -> (StatusCode, Vec<u8>) {
    let request = PushRequest {
        group: group.into(),
        changes: changes
            .iter()
            .map(|(key, base, value)| Change {
                key: (*key).into(),
                base: *base,
                op: match value {
                    Some(v) => Op::Set(Packed::from_value(v)),
                    None => Op::Delete,
                },
            })
            .collect(),
    };
    let res = http()
        .post(server.url("/sync"))
        .header("content-type", Encoding::MsgPack.content_type())
        .body(request.encode(Encoding::MsgPack))
        .send()
        .await
        .unwrap();
    (res.status(), res.bytes().await.unwrap().to_vec())
}

/// A push that must succeed.
pub async fn push(
    server: &TestServer,
    group: &str,
    changes: &[(&str, u64, Option<Value>)],
) -> PushResponse {
    let (status, body) = push_raw(server, group, changes).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    PushResponse::decode(&body, Encoding::MsgPack).unwrap()
}

/// One pull page (`query` after `group=G&`), in `encoding`; the page and its body's size.
pub async fn pull_page(
    server: &TestServer,
    group: &str,
    query: &str,
    encoding: Encoding,
) -> (PullResponse, usize) {
    let res = http()
        .get(server.url(&format!("/sync?group={group}&{query}")))
        .header("accept", encoding.content_type())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.unwrap();
    (PullResponse::decode(&body, encoding).unwrap(), body.len())
}

/// Every document after `since`, paged as a client does (`full=true` after a first page
/// from 0 or reset); the last page.
pub async fn pull_all(server: &TestServer, group: &str, since: u64) -> (Vec<Doc>, PullResponse) {
    let mut docs = Vec::new();
    let mut cursor = since;
    let mut full = false;
    for _ in 0..10_000 {
        let query = format!("since={cursor}&limit=1000&full={full}");
        let (page, _) = pull_page(server, group, &query, Encoding::MsgPack).await;
        full |= cursor == 0 || page.reset;
        docs.extend(page.changes.iter().cloned());
        cursor = page.seq;
        if !page.more {
            return (docs, page);
        }
    }
    panic!("paging {group} never ended");
}

/// A value of about `bytes` bytes.
pub fn blob(bytes: usize, seed: u8) -> Value {
    Value::Bytes(vec![seed; bytes])
}
