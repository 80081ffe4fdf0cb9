//! Idle group actors: one with no subscriber for the idle timeout stops and leaves the
//! registry, and the next subscription starts a fresh one, with no change lost, repeated or
//! reordered across the stop (issue 11, fault 4: a server of many groups grew forever).

use std::sync::Arc;
use std::time::Duration;

use atomsync_proto::Encoding;

use super::subscribe_tests::{Fixture, catch_up, conn, drain, push_one, settle};
use super::{Registry, Unsubscribe};
use crate::storage::testing::TestDb;

/// A fresh database on the backend the tests run on, whose actors stop after `idle`.
async fn open_idle(idle: Duration) -> Fixture {
    let db = TestDb::new();
    let storage = db.open(4).await;
    let registry = Registry::with_idle_timeout(storage.clone(), idle);
    Fixture {
        db,
        storage,
        registry,
    }
}

async fn until_no_actor(f: &Fixture) {
    for _ in 0..200 {
        if f.registry.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{} actors still running", f.registry.len());
}

#[actix_rt::test]
async fn an_idle_actor_stops_and_a_fresh_one_resumes_exactly() {
    let f = open_idle(Duration::from_millis(40)).await;
    let mut sub = conn(1, Encoding::Json, 64);
    let (addr, ack) = f
        .registry
        .subscribe("g", sub.subscriber.clone())
        .await
        .unwrap();
    assert_eq!(ack.seq, 0);
    for key in ["a", "b", "c"] {
        push_one(&f, "g", key).await;
    }
    settle(&f, "g").await;
    assert_eq!(drain(&mut sub, "g"), vec![1, 2, 3]);
    // A subscriber keeps its actor however long it stays.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(f.registry.len(), 1);
    addr.send(Unsubscribe { conn_id: 1 }).await.unwrap();
    until_no_actor(&f).await;

    // Commits with no actor are in storage; the fresh actor starts from them.
    push_one(&f, "g", "d").await;
    push_one(&f, "g", "e").await;
    let (_, ack) = f
        .registry
        .subscribe("g", sub.subscriber.clone())
        .await
        .unwrap();
    assert_eq!(ack.seq, 5);
    assert_eq!(catch_up(&f, "g", 3, ack.seq).await, vec![4, 5]);
    push_one(&f, "g", "f").await;
    settle(&f, "g").await;
    assert_eq!(drain(&mut sub, "g"), vec![6]);
    assert_eq!(f.registry.len(), 1);
}

#[actix_rt::test]
async fn many_groups_touched_once_leave_no_actor_behind() {
    let f = open_idle(Duration::from_millis(20)).await;
    let sub = conn(1, Encoding::MsgPack, 4);
    for i in 0..300 {
        let group = format!("user-{i}");
        let (addr, _) = f
            .registry
            .subscribe(&group, sub.subscriber.clone())
            .await
            .unwrap();
        addr.send(Unsubscribe { conn_id: 1 }).await.unwrap();
    }
    until_no_actor(&f).await;
}

/// A subscriber comes and goes while a writer commits without pause, and the actor stops
/// between its visits (an idle timeout of 1 ms): stitched together, its catch-ups and live
/// frames hold every seq once, in order.
#[actix_rt::test]
async fn churn_across_stopping_actors_loses_and_repeats_nothing() {
    const PUSHES: usize = 300;
    let f = Arc::new(open_idle(Duration::from_millis(1)).await);
    let writer = {
        let f = f.clone();
        actix_rt::spawn(async move {
            for i in 0..PUSHES {
                push_one(&f, "churn", &format!("k{i}")).await;
                if i % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        })
    };
    let mut seen: Vec<u64> = Vec::new();
    let mut restarts = 0;
    let mut conn_id = 0;
    while seen.len() < PUSHES {
        conn_id += 1;
        let mut sub = conn(conn_id, Encoding::Json, 10_000);
        let cursor = seen.last().copied().unwrap_or(0);
        let (addr, ack) = f
            .registry
            .subscribe("churn", sub.subscriber.clone())
            .await
            .unwrap();
        seen.extend(catch_up(&f, "churn", cursor, ack.seq).await);
        tokio::time::sleep(Duration::from_millis(2)).await;
        addr.send(Unsubscribe { conn_id }).await.unwrap();
        let live = drain(&mut sub, "churn");
        assert!(
            live.iter().all(|&s| s > ack.seq),
            "ack {}: {live:?}",
            ack.seq
        );
        seen.extend(live);
        tokio::time::sleep(Duration::from_millis(3)).await;
        if f.registry.is_empty() {
            restarts += 1;
        }
    }
    writer.await.unwrap();
    assert_eq!(seen, (1..=PUSHES as u64).collect::<Vec<_>>());
    assert!(restarts > 0, "the actor never stopped between visits");
}
