//! Epochs on a shared database, against the throwaway cluster: a database whose history
//! mark says it is not the one the epoch was given to gets a new epoch on the next
//! connection, every instance serves it, and subscriptions end; a restore with `--clean`
//! under running instances is noticed by the next commit, which goes through under the new
//! epoch. (PostgreSQL's real failovers and restores, with the server binary:
//! `tests/integration/scale/epoch.rs`.)

use std::sync::Arc;
use std::time::Duration;

use atomsync_proto::Encoding;
use atomsync_proto::wire::PushResult;
use tokio::sync::{Notify, mpsc};

use super::tests::{instances, set};
use crate::actors::{LiveFrame, Registry, Subscribe, Subscriber};
use crate::storage::Storage;
use crate::storage::testing::cluster;

/// Waits (at most 10 s) until `storage` serves an epoch other than `old`; that epoch.
async fn renewed(storage: &Storage, old: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while storage.epoch() == old {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still serving the old epoch"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    storage.epoch().to_owned()
}

/// Pushes one new key; the accepted seq and the epoch the answer names.
async fn push_new(storage: &Storage, key: &str) -> (u64, String) {
    let outcome = storage
        .push("g".into(), vec![set(key, 0, 1)])
        .await
        .unwrap();
    let PushResult::Accepted { seq, .. } = outcome.results[0] else {
        panic!("{:?}", outcome.results)
    };
    (seq, outcome.epoch.to_string())
}

/// A subscriber of `g` on `registry`: its overflow signal, notified when it must resume, and
/// its queue's receiving end (which must live, or the subscriber is dropped).
async fn subscriber(registry: &Registry) -> (Arc<Notify>, mpsc::Receiver<Arc<LiveFrame>>) {
    let (queue, frames) = mpsc::channel(64);
    let overflow = Arc::new(Notify::new());
    let subscriber = Subscriber {
        conn_id: 1,
        encoding: Encoding::MsgPack,
        queue,
        overflow: overflow.clone(),
    };
    registry
        .get("g")
        .send(Subscribe { subscriber })
        .await
        .unwrap();
    (overflow, frames)
}

/// The data came back with a mark of another history (as after a point-in-time recovery
/// or a failover, whose timeline differs): the next connection renews the epoch, the other
/// instance serves the new one too (told by NOTIFY), and its subscriptions end.
#[actix_rt::test]
async fn a_database_from_another_history_gets_a_new_epoch_everywhere() {
    let (db, s) = instances(2).await;
    let registry = Registry::new(s[0].clone());
    let (resume, _frames) = subscriber(&registry).await;
    let old = s[0].epoch().to_owned();
    assert_eq!(push_new(&s[1], "a").await, (1, old.clone()));
    let database = cluster::Cluster::database_of(db.postgres_url().unwrap());
    let c = cluster::cluster();
    c.psql(
        database,
        "UPDATE atomsync_meta SET value = '1/00000001/1/1' WHERE name = 'history';
         SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND application_name NOT LIKE '% listener';",
    )
    .unwrap();
    // The commit's connection was cut: a fresh one is checked before the batch runs.
    let (seq, epoch) = push_new(&s[1], "b").await;
    assert_ne!(epoch, old, "the answer names the new epoch");
    assert_eq!(seq, 2);
    assert_eq!(s[1].epoch(), epoch);
    assert_eq!(renewed(&s[0], &old).await, epoch, "the other instance too");
    tokio::time::timeout(Duration::from_secs(10), resume.notified())
        .await
        .expect("the subscription ends, so that its client learns the new epoch");
    let mark = c
        .psql(
            database,
            "SELECT value FROM atomsync_meta WHERE name = 'history'",
        )
        .unwrap();
    assert_ne!(mark, "1/00000001/1/1", "the current mark is recorded");
    // Settled: a restart keeps it.
    assert_eq!(db.open(1).await.epoch(), epoch);
}

/// `pg_restore --clean` of an earlier dump under running instances: the next commit finds
/// the tables made anew, the epoch is renewed, and the commit goes through under it; the
/// seqs the restored data hands out again are never named with the old epoch.
#[actix_rt::test]
async fn a_restore_with_clean_under_running_instances_is_noticed_by_the_next_commit() {
    let (db, s) = instances(2).await;
    let old = s[0].epoch().to_owned();
    for key in ["k0", "k1", "k2"] {
        push_new(&s[0], key).await;
    }
    let database = cluster::Cluster::database_of(db.postgres_url().unwrap());
    let c = cluster::cluster();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("g.dump");
    let dump = dump.to_str().unwrap();
    c.tool("pg_dump", &["-Fc", "-f", dump, database]).unwrap();
    for key in ["k3", "k4", "k5"] {
        assert_eq!(push_new(&s[0], key).await.1, old);
    }
    c.tool("pg_restore", &["--clean", "-d", database, dump])
        .unwrap();
    let (seq, epoch) = push_new(&s[1], "x3").await;
    assert_eq!(seq, 4, "the restored data hands seq 4 out again...");
    assert_ne!(epoch, old, "...under a new epoch");
    assert_eq!(renewed(&s[0], &old).await, epoch);
    let (seq, again) = push_new(&s[0], "x4").await;
    assert_eq!((seq, again), (5, epoch));
}
