//! The native client beyond the eight flows: offline writes across a client restart, a
//! merging resolver, a replaced server database (new epoch), live propagation over the
//! WebSocket, and auth errors that stop retrying.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use atomsync_client::{ClientError, Connection, Options, Value, kw, value};

use super::no_ws_proxy::NoWsProxy;
use super::{Client, eventually, in_sync, options, restart, stop};
use crate::common::TestServer;

/// Writes made offline survive the client's own restart and reach the server when it is
/// back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_writes_survive_a_client_restart_before_the_server_returns() {
    let mut server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let atom_b = b.atom(&server, "x1-offline");
    in_sync(&atom_b).await;
    stop(&mut server);
    let atom_a = a.atom(&server, "x1-offline");
    atom_a.ready().await;
    assert!(!atom_a.status().online());
    assert!(atom_a.status().last_error.is_some());
    atom_a
        .swap(|m| {
            m.insert(
                "todo:1".into(),
                value!({"text": "written offline", "tags": #{kw!("offline")}}),
            );
            m.insert("todo:2".into(), value!({"text": "also offline"}));
        })
        .unwrap();
    atom_a.dissoc("todo:2").unwrap();
    drop(atom_a);
    let a = a.restart().await;
    let atom_a = a.atom(&server, "x1-offline");
    assert_eq!(atom_a.snapshot().len(), 1, "the map came back from disk");
    assert_eq!(
        atom_a.status().pending,
        2,
        "a set and a folded set-then-delete are pending"
    );
    restart(&mut server);
    eventually("b has the offline write", || atom_b.get("todo:1").is_some()).await;
    in_sync(&atom_a).await;
    assert_eq!(*atom_a.snapshot(), *atom_b.snapshot());
}

/// A resolver that merges sets: concurrent offline edits of one document on two clients
/// end as the union on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolver_merges_concurrent_edits() {
    let mut server = TestServer::start();
    let merge_sets =
        |_key: &str, local: Option<&Value>, current: Option<&Value>| -> Option<Value> {
            let items = |value: Option<&Value>| {
                value
                    .and_then(Value::as_set)
                    .map(<[Value]>::to_vec)
                    .unwrap_or_default()
            };
            let mut union = items(current);
            for item in items(local) {
                if !union.contains(&item) {
                    union.push(item);
                }
            }
            Some(Value::Set(union))
        };
    let (a, b) = (Client::new(), Client::new());
    let atom_a = a.atom_with("x2-merge", options(&server).resolver(merge_sets));
    let atom_b = b.atom_with("x2-merge", options(&server).resolver(merge_sets));
    atom_a.assoc("tags", value!(#{kw!("home")})).unwrap();
    eventually("b has the first tags", || atom_b.get("tags").is_some()).await;
    in_sync(&atom_a).await;
    in_sync(&atom_b).await;
    stop(&mut server);
    let add = |tag: &'static str| {
        move |m: &mut atomsync_client::Map| {
            if let Some(Value::Set(items)) = m.get_mut("tags") {
                items.push(Value::kw(tag));
            }
        }
    };
    atom_a.swap(add("work")).unwrap();
    atom_b.swap(add("garden")).unwrap();
    restart(&mut server);
    let expected: BTreeSet<String> = ["home", "work", "garden"].map(String::from).into();
    let tags = |atom: &atomsync_client::SyncedAtom| -> BTreeSet<String> {
        atom.get("tags")
            .and_then(|tags| {
                tags.as_set().map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_kw().map(String::from))
                        .collect()
                })
            })
            .unwrap_or_default()
    };
    eventually("both hold the union", || {
        tags(&atom_a) == expected
            && tags(&atom_b) == expected
            && atom_a.status().in_sync()
            && atom_b.status().in_sync()
    })
    .await;
}

/// The server's database is replaced (a new epoch): the client starts again from 0, drops
/// what the new database does not hold, and keeps and pushes its pending changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_epoch_change_resyncs_and_keeps_pending_changes() {
    let mut server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let atom_a = a.atom(&server, "x3-epoch");
    atom_a
        .swap(|m| {
            m.insert("old:1".into(), Value::from(1));
            m.insert("old:2".into(), Value::from(2));
        })
        .unwrap();
    in_sync(&atom_a).await;
    let first_epoch = atom_a.status().epoch.expect("epoch known");
    stop(&mut server);
    atom_a.assoc("offline", "kept").unwrap();
    // Replace the database: a fresh one gets a new epoch.
    server.replace_database();
    restart(&mut server);
    let atom_b = b.atom(&server, "x3-epoch");
    atom_b.assoc("new", "from b").unwrap();
    eventually("a follows the new database", || {
        let map = atom_a.snapshot();
        map.contains_key("new")
            && map.contains_key("offline")
            && !map.contains_key("old:1")
            && !map.contains_key("old:2")
    })
    .await;
    in_sync(&atom_a).await;
    eventually("b has a's pending change", || {
        atom_b.get("offline") == Some(Value::from("kept"))
    })
    .await;
    let epoch = atom_a.status().epoch.expect("epoch known");
    assert_ne!(epoch, first_epoch);
}

/// Live propagation: a change reaches the other client over the WebSocket, without
/// polling, well within a second on loopback. The measured figures are printed, for
/// writes spaced out (each change alone on the wire) and back to back (where TCP's
/// delayed acknowledgements can hold a small frame back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_arrive_over_the_websocket() {
    let server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let (atom_a, atom_b) = (a.atom(&server, "x4-live"), b.atom(&server, "x4-live"));
    in_sync(&atom_a).await;
    in_sync(&atom_b).await;
    let mut changes = atom_b.subscribe();
    let mut next = 0;
    for (pattern, gap) in [
        ("spaced 100 ms", Duration::from_millis(100)),
        ("back to back", Duration::ZERO),
    ] {
        let mut latencies = Vec::new();
        for _ in 0..20 {
            tokio::time::sleep(gap).await;
            next += 1;
            let started = Instant::now();
            atom_a.assoc("live", next).unwrap();
            let arrived = changes.wait_for(|map| map.get("live") == Some(&Value::from(next)));
            tokio::time::timeout(Duration::from_secs(5), arrived)
                .await
                .expect("the change arrived")
                .expect("the atom is open");
            latencies.push(started.elapsed());
        }
        latencies.sort();
        let (median, max) = (
            latencies[latencies.len() / 2],
            latencies[latencies.len() - 1],
        );
        println!(
            "live propagation over loopback, 20 writes {pattern}: median {median:?}, max {max:?}"
        );
        assert!(max < Duration::from_secs(1), "a change took {max:?}");
    }
    // Live, not polling.
    assert_eq!(atom_b.status().connection, Connection::Live);
}

/// A server reachable over HTTP but not over the WebSocket: the client polls, and
/// changes still flow both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_websocket_the_client_polls_over_http() {
    let server = TestServer::start();
    let proxy = NoWsProxy::start(server.addr);
    let (a, b) = (Client::new(), Client::new());
    let polling = a.atom_with("x6-poll", Options::new(proxy.url()));
    let live = b.atom(&server, "x6-poll");
    polling.ready().await;
    assert_eq!(
        polling.status().connection,
        Connection::Polling,
        "{:?}",
        polling.status()
    );
    polling.assoc("from-polling", 1).unwrap();
    live.assoc("from-live", 2).unwrap();
    eventually("both changes on both clients", || {
        polling.snapshot().len() == 2 && live.snapshot().len() == 2
    })
    .await;
    polling.dissoc("from-live").unwrap();
    eventually("the polling client's delete arrives", || {
        live.get("from-live").is_none()
    })
    .await;
    polling.sync_now().await.expect("sync_now over HTTP");
    assert!(polling.status().in_sync());
    assert_eq!(polling.status().connection, Connection::Polling);
}

/// A refused token or group shows in the status and stops retrying; new options resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_errors_surface_and_stop_retrying() {
    let server =
        TestServer::start_with("[users.alice]\ntoken = \"alice-token\"\ngroups = [\"x5-mine\"]\n");
    let client = Client::new();
    let wrong = client.atom_with("x5-mine", options(&server).token("wrong"));
    wrong.ready().await;
    let status = wrong.status();
    assert!(status.is_auth_error(), "{status:?}");
    assert!(
        matches!(
            status.last_error.as_deref(),
            Some(ClientError::Unauthorized(_))
        ),
        "{status:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        wrong.status().failures,
        status.failures,
        "no retries after a 401"
    );
    // sync_now tries again and reports the same refusal.
    let again = wrong.sync_now().await;
    assert!(
        matches!(
            again.as_ref().err().map(|e| &**e),
            Some(ClientError::Unauthorized(_))
        ),
        "{again:?}"
    );

    // A group outside alice's set: 403 for that group only.
    let alice = Options::new(server.url("/sync")).token("alice-token");
    let other = client.atom_with("x5-other", alice.clone());
    other.ready().await;
    assert!(
        matches!(
            other.status().last_error.as_deref(),
            Some(ClientError::Forbidden(_))
        ),
        "{:?}",
        other.status()
    );

    // The right token resumes the first group, pending change and all.
    wrong.assoc("k", 1).unwrap();
    wrong.set_options(alice).unwrap();
    in_sync(&wrong).await;
    assert!(!other.status().online());
}
