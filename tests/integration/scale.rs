//! Scale-out: several `atomsync-server` processes over one PostgreSQL database (the
//! process's throwaway cluster, `tests/support/postgres.rs`), whatever backend the rest of
//! the suite runs on. Native clients on different instances converge live; writers split
//! over two instances give every subscriber on either one each seq once, in order; an
//! instance killed with SIGKILL loses no acknowledged write, and its clients reconnect to the
//! other through a load balancer ([`proxy`]). A database that goes back in time under
//! running instances (a failover to a lagging replica, a data directory put back) gets a new
//! epoch on every instance ([`epoch`]).

mod epoch;
mod proxy;

use std::time::Duration;

use atomsync_client::{Connection, Options, Value};
use atomsync_proto::Encoding;
use serde_json::{Value as Json, json};

use self::proxy::Proxy;
use crate::client::{Client, eventually, in_sync};
use crate::common::TestServer;
use crate::pg;
use crate::ws::{self, http};

/// Two instances on one new PostgreSQL database.
fn two_instances() -> (TestServer, TestServer) {
    let db = pg::cluster().new_database();
    (TestServer::start_on(&db, ""), TestServer::start_on(&db, ""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_clients_on_two_instances_converge_live() {
    let (one, two) = two_instances();
    let (a, b) = (Client::new(), Client::new());
    let (atom_a, atom_b) = (a.atom(&one, "s1-live"), b.atom(&two, "s1-live"));
    in_sync(&atom_a).await;
    in_sync(&atom_b).await;
    assert_eq!(
        atom_a.status().epoch,
        atom_b.status().epoch,
        "one database, one epoch"
    );
    for round in 0..3 {
        atom_a.assoc(format!("a{round}"), round).unwrap();
        eventually("b sees a's write", || {
            atom_b.get(&format!("a{round}")) == Some(Value::from(round))
        })
        .await;
        atom_b.assoc(format!("b{round}"), round).unwrap();
        eventually("a sees b's write", || {
            atom_a.get(&format!("b{round}")) == Some(Value::from(round))
        })
        .await;
    }
    // Streamed, not polled: both stayed on their WebSocket.
    assert_eq!(atom_a.status().connection, Connection::Live);
    assert_eq!(atom_b.status().connection, Connection::Live);
    assert_eq!(atom_a.snapshot(), atom_b.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_writers_over_two_instances_reach_every_subscriber_once_in_order() {
    const WRITERS: usize = 4;
    const PUSHES: usize = 250;
    const TOTAL: u64 = (WRITERS * PUSHES) as u64;
    let (one, two) = two_instances();
    let instances = [&one, &two];
    // Subscribed before the first write, on each instance.
    let mut early = Vec::new();
    for server in instances {
        let mut client = ws::Client::connect(server).await;
        assert_eq!(client.subscribe("race", 0, Encoding::MsgPack).await.seq, 0);
        early.push(client);
    }
    let http = http();
    let (started_tx, mut started) = tokio::sync::mpsc::channel(WRITERS);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let url = instances[writer % 2].url("/sync");
        let (http, started_tx) = (http.clone(), started_tx.clone());
        writers.push(tokio::spawn(async move {
            for push in 0..PUSHES {
                let body = json!({"group": "race", "changes": [
                    {"key": format!("w{writer}:{push}"), "base": 0, "value": push}]});
                let res = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                if push == 20 {
                    let _ = started_tx.send(()).await;
                }
            }
        }));
    }
    for _ in 0..WRITERS {
        started.recv().await.unwrap();
    }
    // Subscribed while the writers push: catch-up races the other instance's commits too.
    let mut late = Vec::new();
    for server in instances {
        let mut client = ws::Client::connect(server).await;
        let caught_up = client.subscribe("race", 0, Encoding::Json).await;
        assert!(
            caught_up.seq < TOTAL,
            "subscribed while writers were pushing"
        );
        late.push((
            client,
            caught_up.docs.iter().map(|d| d.seq).collect::<Vec<_>>(),
        ));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let subscribers = early
        .into_iter()
        .map(|client| (client, Vec::new()))
        .chain(late);
    for (i, (mut client, mut seen)) in subscribers.enumerate() {
        while seen.last().copied().unwrap_or(0) < TOTAL {
            seen.extend(client.changes("race").await.iter().map(|d| d.seq));
        }
        assert_eq!(
            seen,
            (1..=TOTAL).collect::<Vec<_>>(),
            "subscriber {i}: every seq exactly once, in order"
        );
        client.quiet().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instance_loses_no_acknowledged_write_and_its_clients_fail_over() {
    let (mut one, two) = two_instances();
    let balancer = Proxy::start(vec![one.addr, two.addr]).await;
    // A native client behind the balancer (on instance one), one straight on instance two.
    let (a, b) = (Client::new(), Client::new());
    let atom_a = a.atom_with("s3-kill", Options::new(balancer.url("/sync")));
    let atom_b = b.atom(&two, "s3-kill");
    in_sync(&atom_a).await;
    in_sync(&atom_b).await;
    atom_a.assoc("before", 1).unwrap();
    eventually("b sees a's first write", || atom_b.get("before").is_some()).await;

    // A writer pushing to instance one until it dies, keeping every acknowledged answer.
    let http = http();
    let url = one.url("/sync");
    let writer = tokio::spawn(async move {
        let mut acknowledged: Vec<(String, Json)> = Vec::new();
        for i in 0.. {
            let key = format!("w{i}");
            let body =
                json!({"group": "s3-kill", "changes": [{"key": key, "base": 0, "value": i}]});
            let sent = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            let Ok(res) = sent else { break };
            let Ok(answer) = res.json::<Json>().await else {
                break;
            };
            acknowledged.push((key, answer["results"][0].clone()));
        }
        acknowledged
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::block_in_place(|| one.kill());
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() > 5,
        "the writer got going before the kill"
    );

    // Every acknowledged write is on the surviving instance, as it was acknowledged.
    let page = ws::http()
        .get(two.url("/sync?group=s3-kill&since=0&limit=10000"))
        .send()
        .await
        .unwrap()
        .json::<Json>()
        .await
        .unwrap();
    let stored = page["changes"].as_array().unwrap();
    for (key, result) in &acknowledged {
        assert_eq!(result["ok"], true, "{key}: {result}");
        let doc = stored
            .iter()
            .find(|d| d["key"] == key.as_str())
            .unwrap_or_else(|| panic!("acknowledged {key} lost"));
        assert_eq!(
            (&doc["version"], &doc["seq"]),
            (&result["version"], &result["seq"])
        );
    }

    // The client behind the balancer reconnects, to instance two, and syncs both ways.
    atom_a.assoc("after", 2).unwrap();
    eventually("b sees a's write after the fail-over", || {
        atom_b.get("after") == Some(Value::from(2))
    })
    .await;
    atom_b.assoc("from-b", 3).unwrap();
    eventually("a sees b's write after the fail-over", || {
        atom_a.get("from-b") == Some(Value::from(3))
    })
    .await;
    in_sync(&atom_a).await;
    let last = acknowledged.last().unwrap().0.clone();
    eventually("a has every acknowledged write", || {
        atom_a.get(&last).is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_cut_off_from_the_database_reconnect_and_miss_nothing() {
    let (one, two) = two_instances();
    let mut subscriber = ws::Client::connect(&one).await;
    subscriber.subscribe("cut", 0, Encoding::Json).await;
    let http = http();
    ws::http_push(&http, &two, "cut", ws::new_keys(&["a"])).await;
    assert_eq!(subscriber.changes("cut").await[0].seq, 1);
    // Every connection both instances hold to the database: pools and listeners.
    let database = pg::Cluster::database_of(one.db());
    let cut = pg::cluster()
        .psql(
            database,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .unwrap();
    assert!(cut.parse::<u32>().unwrap() >= 4, "{cut} connections cut");
    // Read and pushed at once, before the instances could notice: each goes through (a dead
    // pooled connection is found, and the request goes again on a new one), and the
    // subscriber on the other instance gets both pushes, though its listener was down.
    for server in [&one, &two] {
        let pulled = http
            .get(server.url("/sync?group=cut&since=0"))
            .send()
            .await
            .unwrap();
        assert_eq!(pulled.status(), 200);
    }
    ws::http_push(&http, &two, "cut", ws::new_keys(&["b"])).await;
    ws::http_push(&http, &one, "cut", ws::new_keys(&["c"])).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.extend(subscriber.changes("cut").await.iter().map(|d| d.seq));
    }
    assert_eq!(seen, [2, 3]);
    subscriber.quiet().await;
}
