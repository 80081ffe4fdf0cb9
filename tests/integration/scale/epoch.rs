//! A PostgreSQL database that goes back in time under running servers gets a new epoch on
//! every one of them before they serve it further (PROTOCOL.md section 1), with clusters of
//! the test's own (`tests/support/postgres.rs`):
//!
//! - a failover to a replica that lags (a base backup taken before the last writes,
//!   promoted once the primary is gone): a new timeline, seen by both servers, whose
//!   subscriptions end so that their clients learn the new epoch;
//! - a data directory put back by hand (same timeline, same oids): seen by a server whose
//!   state file recorded a later WAL position than the database holds.
//!
//! In each, the writes that the older database hands seqs out for again are named with
//! the new epoch only: no (epoch, group, seq) names two writes.

use std::time::{Duration, Instant};

use atomsync_proto::wire::{PushResponse, PushResult};
use atomsync_proto::{Encoding, Value};

use crate::common::TestServer;
use crate::pg::{Cluster, Settings, free_port};
use crate::safety::epoch::{Seen, put};
use crate::safety::push_raw;
use crate::ws;

/// Creates `keys` in `g` through `server`, trying again while it answers 503 (it is
/// reconnecting to the database); the answer.
async fn put_through(server: &TestServer, keys: &[&str]) -> PushResponse {
    let changes: Vec<_> = keys
        .iter()
        .map(|k| (*k, 0, Some(Value::from(*k))))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = push_raw(server, "g", &changes).await;
        if status == 200 {
            return PushResponse::decode(&body, Encoding::MsgPack).unwrap();
        }
        assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
        assert!(Instant::now() < deadline, "still 503: {}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn seqs(answer: &PushResponse) -> Vec<u64> {
    answer
        .results
        .iter()
        .map(|r| match r {
            PushResult::Accepted { seq, .. } => *seq,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// A new database on `cluster`; its name.
fn database(cluster: &Cluster) -> String {
    Cluster::database_of(&cluster.new_database()).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_lagging_replica_gets_a_new_epoch_on_every_instance() {
    let primary = Cluster::start(&Settings::testing()).unwrap();
    let standby_port = free_port().unwrap();
    let name = database(&primary);
    // Both hosts, as a deployment lists them: whichever takes writes is used.
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{standby_port}/{name}\
         ?target_session_attrs=read-write",
        primary.port()
    );
    let (one, two) = (
        TestServer::start_on(&url, ""),
        TestServer::start_on(&url, ""),
    );
    let mut seen = Seen::default();
    assert_eq!(put(&one, "g", &["k0", "k1", "k2"]).await, [1, 2, 3]);
    // The replica's copy stops here: what follows is acknowledged but never reaches it.
    let standby = primary.standby(standby_port, &Settings::testing()).unwrap();
    assert_eq!(put(&two, "g", &["k3", "k4", "k5"]).await, [4, 5, 6]);
    let before = seen.pull(&one, "g").await;
    let mut subscriber = ws::Client::connect(&one).await;
    assert_eq!(subscriber.subscribe("g", 6, Encoding::MsgPack).await.seq, 6);

    // The failover: the primary is lost, the replica promoted.
    standby.promote().unwrap();
    drop(primary);

    let answer = put_through(&two, &["x3", "x4", "x5"]).await;
    assert_eq!(
        seqs(&answer),
        [4, 5, 6],
        "the replica hands 4..6 out again..."
    );
    assert_ne!(answer.epoch, before, "...under a new epoch");
    for server in [&one, &two] {
        let deadline = Instant::now() + Duration::from_secs(15);
        while seen.pull(server, "g").await != answer.epoch {
            assert!(Instant::now() < deadline, "{}", server.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // One document, on the instance that did not write it: named with the new epoch too.
    let doc: serde_json::Value = reqwest::Client::new()
        .get(one.url("/sync/doc?group=g&key=x3"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["epoch"], *answer.epoch, "{doc}");
    assert_eq!(doc["doc"]["seq"], 4, "{doc}");
    let (_, close) = subscriber.until_close().await;
    let code = close.map(|c| u16::from(c.code));
    assert_eq!(
        code,
        Some(1013),
        "the subscription ends: its client learns the epoch"
    );
    let logs = one.log() + &two.log();
    assert!(
        logs.contains("gets a new epoch") && logs.contains("timeline"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_put_back_by_hand_is_seen_by_a_server_with_a_state_file() {
    // Commits on disk when acknowledged, as in production: the state file's record is
    // then never ahead of what survives a restart.
    let mut cluster = Cluster::start(&Settings::durable()).unwrap();
    let url = format!("{}/{}", cluster.base, database(&cluster));
    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("instance.state");
    let server = TestServer::start_durable_on(&url, &format!("state_file = {state_file:?}"));
    let mut seen = Seen::default();
    assert_eq!(put(&server, "g", &["k0", "k1", "k2"]).await, [1, 2, 3]);
    let data = cluster.data_dir().unwrap().to_owned();
    let copy = data.with_file_name("copy");
    cluster.stop_server();
    copy_dir(&data, &copy);
    cluster.start_server().unwrap();
    assert_eq!(
        seqs(&put_through(&server, &["k3", "k4", "k5"]).await),
        [4, 5, 6]
    );
    let before = seen.pull(&server, "g").await;

    cluster.stop_server();
    std::fs::remove_dir_all(&data).unwrap();
    copy_dir(&copy, &data);
    cluster.start_server().unwrap();
    let answer = put_through(&server, &["x3", "x4", "x5"]).await;
    assert_eq!(seqs(&answer), [4, 5, 6]);
    assert_ne!(answer.epoch, before);
    assert_eq!(seen.pull(&server, "g").await, answer.epoch);
    assert!(
        server.log().contains("went back in time"),
        "{}",
        server.log()
    );
}

/// `cp -a`: owner and modes kept, as PostgreSQL wants its data folder.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}
