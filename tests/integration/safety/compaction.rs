//! Tombstone compaction (PROTOCOL.md section 8): a floor per group; a pull or subscribe
//! from below it answers as from 0 with `reset`; pages of a full pull asked with
//! `full=true` never loop; and a client offline across a compaction that removed a delete
//! keeps no deleted key, and keeps its own unsent changes.

use std::time::{Duration, Instant};

use atomsync_client::{Options, Store, Value as CValue, value};
use atomsync_proto::wire::{ClientFrame, PushResult, ServerFrame};
use atomsync_proto::{Encoding, Value};
use serde_json::Value as Json;

use super::{http, pull_all, pull_page, push};
use crate::client::eventually;
use crate::client::no_ws_proxy::NoWsProxy;
use crate::common::TestServer;
use crate::ws::Client as WsClient;

/// Sets `keys` in `group`; their versions.
async fn set(server: &TestServer, group: &str, keys: &[&str]) {
    let changes: Vec<_> = keys
        .iter()
        .map(|k| (*k, 0, Some(Value::from(*k))))
        .collect();
    push(server, group, &changes).await;
}

/// Deletes `key` at version `base`; its seq.
async fn delete(server: &TestServer, group: &str, key: &str, base: u64) -> u64 {
    match &push(server, group, &[(key, base, None)]).await.results[0] {
        PushResult::Accepted { seq, .. } => *seq,
        other => panic!("{other:?}"),
    }
}

/// `atomsync-server compact --older-than 0s` with the server stopped (SQLite) or running
/// (PostgreSQL, where compaction locks each group's row as a push does, beside the
/// servers); what it printed.
fn compact_now(server: &mut TestServer) -> String {
    let on_sqlite = !server.on_postgres();
    if on_sqlite {
        server.stop();
    }
    let out = server.command(&["compact", "--older-than", "0s"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if on_sqlite {
        server.restart();
    }
    said
}

#[tokio::test]
async fn a_pull_below_the_floor_is_a_full_pull_with_reset_and_full_paging_ends() {
    let mut server = TestServer::start();
    set(&server, "g", &["a", "b", "c", "d", "e"]).await; // seq 1..5
    let floor = delete(&server, "g", "b", 1).await; // seq 6
    delete(&server, "g", "d", 1).await; // seq 7
    if !server.on_postgres() {
        let refused = server.command(&["compact", "--older-than", "0s"]);
        assert!(!refused.status.success(), "the server runs");
    }
    let said = compact_now(&mut server);
    assert!(said.contains("removed 2 tombstones"), "{said}");

    // From below the floor: answered from 0, with reset and the floor.
    let (page, _) = pull_page(&server, "g", "since=3", Encoding::Json).await;
    assert!(page.reset);
    assert_eq!(page.floor, floor + 1);
    let keys: Vec<&str> = page.changes.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["a", "c", "e"], "no trace of b and d");
    // At or above it: as usual, with the floor.
    let (page, _) = pull_page(&server, "g", "since=7", Encoding::Json).await;
    assert!(!page.reset && page.changes.is_empty() && page.floor == 7);

    // A fresh client paging with limit=2: later pages with full=true end...
    let (mut since, mut seen, mut pages) = (0, Vec::new(), 0);
    loop {
        let query = format!("since={since}&limit=2&full={}", since > 0);
        let (page, _) = pull_page(&server, "g", &query, Encoding::MsgPack).await;
        assert!(!page.reset);
        seen.extend(page.changes.iter().map(|d| d.key.clone()));
        since = page.seq;
        pages += 1;
        assert!(pages < 10, "paging loops");
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, ["a", "c", "e"]);
    // ... where without it the second page would go back to 0.
    let (page, _) = pull_page(&server, "g", "since=1&limit=2", Encoding::MsgPack).await;
    assert!(page.reset);
}

#[tokio::test]
async fn subscriptions_below_the_floor_reset_and_a_full_catch_up_spans_pages() {
    let mut server = TestServer::start();
    let keys: Vec<String> = (0..1500).map(|i| format!("k{i:04}")).collect();
    let borrowed: Vec<_> = keys
        .iter()
        .map(|k| (k.as_str(), 0, Some(Value::from(1))))
        .collect();
    push(&server, "many", &borrowed).await; // seq 1..1500
    delete(&server, "many", "k1499", 1).await; // seq 1501
    compact_now(&mut server);
    let mut ws = WsClient::connect(&server).await;
    for (since, reset) in [(0, false), (700, true)] {
        let frame = ClientFrame::Subscribe {
            group: "many".into(),
            since,
        };
        ws.send(&frame, Encoding::MsgPack).await;
        let mut docs = 0;
        loop {
            match ws.frame().await {
                ServerFrame::Changes { changes, .. } => docs += changes.len(),
                ServerFrame::Subscribed {
                    seq,
                    reset: r,
                    floor,
                    ..
                } => {
                    assert_eq!((seq, r, floor, docs), (1498 + 1, reset, 1501, 1499));
                    break;
                }
                other => panic!("since {since}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn compaction_runs_on_a_schedule_when_configured() {
    let server = TestServer::start_with(
        "[compaction]\ntombstones_older_than = \"0s\"\nevery = \"1s\"\n[admin]\ntoken = \"root\"\n",
    );
    set(&server, "s", &["a", "b"]).await;
    delete(&server, "s", "a", 1).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let res = http()
            .get(server.url("/admin/groups/s"))
            .bearer_auth("root")
            .send()
            .await
            .unwrap();
        let body: Json = res.json().await.unwrap();
        if body["floor"] == 3 && body["tombstones"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never compacted: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.log().contains("compaction removed old tombstones"));
}

/// A native client offline across a compaction that removed a delete: when it returns it
/// drops the deleted key (never pushing it back) and keeps its own unsent change; over the
/// WebSocket and over HTTP. And a fresh client pages a compacted group to its end.
#[tokio::test]
async fn a_native_client_offline_across_a_compaction_resurrects_nothing() {
    let mut server = TestServer::start();
    let proxy = NoWsProxy::start(server.addr);
    for (round, transport) in ["websocket", "http"].iter().enumerate() {
        let group = format!("offline-{round}");
        let filler: Vec<String> = (0..2500).map(|i| format!("f{i:04}")).collect();
        let mut keys: Vec<&str> = vec!["keep", "gone", "mine"];
        keys.extend(filler.iter().map(String::as_str));
        set(&server, &group, &keys).await;
        let url = match *transport {
            "http" => proxy.url(),
            _ => server.url("/sync"),
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let store = Store::open(&path).unwrap();
        let atom = store.synced_atom(&group, Options::new(&url)).unwrap();
        eventually("first sync", || atom.snapshot().len() == keys.len()).await;
        store.close().await;

        // Offline: another client deletes `gone` (and more, so the floor passes the
        // client's cursor), then the tombstones are compacted away.
        delete(&server, &group, "gone", 1).await;
        delete(&server, &group, "f0000", 1).await;
        compact_now(&mut server);
        let store = Store::open(&path).unwrap();
        let atom = store.synced_atom(&group, Options::new(&url)).unwrap();
        atom.swap(|m| {
            m.insert("mine".into(), value!("offline edit"));
        })
        .unwrap();
        eventually(&format!("{transport}: the deleted keys dropped"), || {
            let snap = atom.snapshot();
            !snap.contains_key("gone")
                && !snap.contains_key("f0000")
                && snap.len() == keys.len() - 2
        })
        .await;
        eventually("the offline edit pushed", || atom.status().in_sync()).await;
        let snap = atom.snapshot();
        assert_eq!(snap.get("mine"), Some(&CValue::from("offline edit")));
        let (docs, _) = pull_all(&server, &group, 0).await;
        assert!(
            docs.iter().all(|d| d.key != "gone"),
            "resurrected on the server"
        );
        store.close().await;

        // A fresh client pages the compacted group (three pages of 1000) to its end.
        let fresh_dir = tempfile::tempdir().unwrap();
        let fresh = Store::open(fresh_dir.path().join("f.db")).unwrap();
        let atom = fresh.synced_atom(&group, Options::new(&url)).unwrap();
        eventually(&format!("{transport}: a fresh client syncs"), || {
            atom.snapshot().len() == keys.len() - 2
        })
        .await;
        fresh.close().await;
    }
}
