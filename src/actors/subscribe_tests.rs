//! Subscription at the group actor, against a temporary database: registration, the
//! hand-over point between catch-up and live, commits racing a subscribe, unsubscribe,
//! a subscriber too slow for its queue, and no registration outliving its connection.
//!
//! The property every test leans on: for a subscriber registered at `ack.seq`, storage up to
//! `ack.seq` plus the frames its queue receives hold every seq exactly once.

use std::sync::Arc;
use std::time::Duration;

use atomsync_proto::wire::{Change, Op, ServerFrame};
use atomsync_proto::{Encoding, Packed, Value};
use tokio::sync::{Notify, mpsc};

use super::group::Stream;
use super::{
    LiveFrame, Registry, Subscribe, SubscribeAck, Subscriber, SubscriberCount, Unsubscribe,
};
use crate::storage::testing::TestDb;
use crate::storage::{Committed, PageQuery, Storage};

pub(super) struct Fixture {
    pub(super) db: TestDb,
    pub(super) storage: Storage,
    pub(super) registry: Registry,
}

/// A fresh database on the backend the tests run on (see `storage::testing`).
pub(super) async fn open() -> Fixture {
    let db = TestDb::new();
    let storage = db.open(4).await;
    let registry = Registry::new(storage.clone());
    Fixture {
        db,
        storage,
        registry,
    }
}

/// A connection's side of a subscription: its queue and overflow signal.
pub(super) struct Conn {
    pub(super) subscriber: Subscriber,
    pub(super) frames: mpsc::Receiver<Arc<LiveFrame>>,
    pub(super) overflow: Arc<Notify>,
}

pub(super) fn conn(conn_id: u64, encoding: Encoding, capacity: usize) -> Conn {
    let (queue, frames) = mpsc::channel(capacity);
    let overflow = Arc::new(Notify::new());
    let subscriber = Subscriber {
        conn_id,
        encoding,
        queue,
        overflow: overflow.clone(),
    };
    Conn {
        subscriber,
        frames,
        overflow,
    }
}

pub(super) async fn subscribe(f: &Fixture, group: &str, conn: &Conn) -> SubscribeAck {
    let subscriber = conn.subscriber.clone();
    f.registry
        .get(group)
        .send(Subscribe { subscriber })
        .await
        .unwrap()
}

pub(super) async fn count(f: &Fixture, group: &str) -> usize {
    f.registry.get(group).send(SubscriberCount).await.unwrap()
}

/// Pushes one new key per change; returns the group's seq after it.
pub(super) async fn push(f: &Fixture, group: &str, keys: &[String]) -> u64 {
    let changes = keys
        .iter()
        .map(|key| Change {
            key: key.clone(),
            base: 0,
            op: Op::Set(Packed::from_value(&Value::from(key.as_str()))),
        })
        .collect();
    f.storage.push(group.into(), changes).await.unwrap().seq
}

pub(super) async fn push_one(f: &Fixture, group: &str, key: &str) -> u64 {
    push(f, group, &[key.to_owned()]).await
}

/// The seqs of every document in the frames queued so far, checking each frame's own seq.
pub(super) fn drain(conn: &mut Conn, group: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    while let Ok(frame) = conn.frames.try_recv() {
        assert_eq!(&*frame.group, group);
        assert_eq!(frame.encoding, conn.subscriber.encoding);
        match ServerFrame::decode(&frame.bytes, frame.encoding).unwrap() {
            ServerFrame::Changes {
                group: g,
                changes,
                seq,
            } => {
                assert_eq!(g, group);
                assert_eq!(seq, frame.seq, "the frame's seq is its last document's");
                assert_eq!(changes.last().map(|d| d.seq), Some(seq));
                seqs.extend(changes.iter().map(|d| d.seq));
            }
            other => panic!("expected changes, got {other:?}"),
        }
    }
    seqs
}

/// What catch-up would send: storage from `since` up to the hand-over point.
pub(super) async fn catch_up(f: &Fixture, group: &str, since: u64, upto: u64) -> Vec<u64> {
    let page = f
        .storage
        .pull(
            group.into(),
            PageQuery {
                since,
                upto,
                limit: 100_000,
                full: false,
            },
            usize::MAX,
        )
        .await
        .unwrap();
    assert!(!page.more);
    page.docs.iter().map(|d| d.seq).collect()
}

/// Waits until the actor has streamed every commit whose push was answered: storage hands
/// a commit to the actor's mailbox before its pusher hears the outcome, and the mailbox is
/// in order, so one message through it is enough.
pub(super) async fn settle(f: &Fixture, group: &str) {
    let _ = count(f, group).await;
}

#[actix_rt::test]
async fn registration_answers_the_hand_over_point() {
    let f = open().await;
    let a = conn(1, Encoding::Json, 16);
    assert_eq!(subscribe(&f, "fresh", &a).await, SubscribeAck { seq: 0 });
    assert_eq!(count(&f, "fresh").await, 1);

    for key in ["x", "y", "z"] {
        push_one(&f, "written", key).await;
    }
    settle(&f, "written").await;
    let b = conn(2, Encoding::MsgPack, 16);
    assert_eq!(subscribe(&f, "written", &b).await.seq, 3);

    // A new actor (a restarted server) reads its starting point from storage.
    let restarted = Registry::new(f.db.open(1).await);
    let subscriber = conn(3, Encoding::Json, 16).subscriber;
    let ack = restarted
        .get("written")
        .send(Subscribe { subscriber })
        .await
        .unwrap();
    assert_eq!(ack.seq, 3);
}

#[actix_rt::test]
async fn catch_up_to_the_ack_then_live_frames_hand_over_exactly() {
    let f = open().await;
    for key in ["a", "b", "c"] {
        push_one(&f, "g", key).await;
    }
    settle(&f, "g").await;
    let mut sub = conn(1, Encoding::Json, 64);
    let ack = subscribe(&f, "g", &sub).await;
    assert_eq!(ack.seq, 3);
    push(&f, "g", &["d".into(), "e".into()]).await;
    push_one(&f, "g", "f").await;
    settle(&f, "g").await;
    assert_eq!(catch_up(&f, "g", 0, ack.seq).await, vec![1, 2, 3]);
    assert_eq!(
        drain(&mut sub, "g"),
        vec![4, 5, 6],
        "one frame per commit, in order"
    );
    // A conflict commits nothing and streams nothing.
    let conflict = Change {
        key: "a".into(),
        base: 0,
        op: Op::Delete,
    };
    f.storage.push("g".into(), vec![conflict]).await.unwrap();
    settle(&f, "g").await;
    assert!(drain(&mut sub, "g").is_empty());
}

#[actix_rt::test]
async fn commits_racing_subscribes_are_each_seen_exactly_once() {
    const WRITERS: usize = 4;
    const PUSHES: usize = 60;
    let f = Arc::new(open().await);
    let (started_tx, mut started) = mpsc::channel(WRITERS);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (f, started_tx) = (f.clone(), started_tx.clone());
        writers.push(actix_rt::spawn(async move {
            for i in 0..PUSHES {
                // One or two changes per push: commits of different sizes.
                let keys: Vec<String> = (0..1 + i % 2)
                    .map(|k| format!("w{writer}-{i}-{k}"))
                    .collect();
                push(&f, "race", &keys).await;
                if i == 5 {
                    let _ = started_tx.send(()).await;
                }
            }
        }));
    }
    // Subscribers arrive while the writers run (each well under way, on any backend), each
    // at a different point.
    for _ in 0..WRITERS {
        started.recv().await.unwrap();
    }
    let mut subs = Vec::new();
    for conn_id in 0..8u64 {
        tokio::time::sleep(Duration::from_millis(3 * conn_id)).await;
        let sub = conn(
            conn_id,
            if conn_id % 2 == 0 {
                Encoding::Json
            } else {
                Encoding::MsgPack
            },
            10_000,
        );
        let ack = subscribe(&f, "race", &sub).await;
        subs.push((sub, ack));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    settle(&f, "race").await;
    let total = (WRITERS * PUSHES * 3 / 2) as u64;
    let acks: Vec<u64> = subs.iter().map(|(_, ack)| ack.seq).collect();
    assert!(
        acks.iter().any(|&seq| seq > 0 && seq < total),
        "some subscribe raced the writers: {acks:?}"
    );
    for (mut sub, ack) in subs {
        let mut seen = catch_up(&f, "race", 0, ack.seq).await;
        assert!(seen.iter().all(|&seq| seq <= ack.seq));
        let live = drain(&mut sub, "race");
        assert!(
            live.iter().all(|&seq| seq > ack.seq),
            "nothing live at or below the ack {}",
            ack.seq
        );
        seen.extend(live);
        assert_eq!(seen, (1..=total).collect::<Vec<_>>(), "ack {}", ack.seq);
    }
}

#[actix_rt::test]
async fn each_encoding_is_encoded_once_and_shared() {
    let f = open().await;
    let mut json_a = conn(1, Encoding::Json, 8);
    let mut json_b = conn(2, Encoding::Json, 8);
    let mut packed = conn(3, Encoding::MsgPack, 8);
    for c in [&json_a, &json_b, &packed] {
        subscribe(&f, "shared", c).await;
    }
    push_one(&f, "shared", "k").await;
    settle(&f, "shared").await;
    let (a, b, m) = (
        json_a.frames.try_recv().unwrap(),
        json_b.frames.try_recv().unwrap(),
        packed.frames.try_recv().unwrap(),
    );
    assert_eq!(
        a.bytes.as_ptr(),
        b.bytes.as_ptr(),
        "the same bytes, not a copy"
    );
    assert_ne!(a.bytes.as_ptr(), m.bytes.as_ptr());
    assert!(a.bytes.starts_with(b"{"));
    assert_eq!(
        ServerFrame::decode(&m.bytes, Encoding::MsgPack).unwrap(),
        ServerFrame::decode(&a.bytes, Encoding::Json).unwrap()
    );
}

#[actix_rt::test]
async fn unsubscribe_and_resubscribe() {
    let f = open().await;
    let mut sub = conn(7, Encoding::Json, 64);
    subscribe(&f, "g", &sub).await;
    // Subscribing again replaces the registration rather than adding one.
    subscribe(&f, "g", &sub).await;
    assert_eq!(count(&f, "g").await, 1);
    push_one(&f, "g", "a").await;
    settle(&f, "g").await;
    assert_eq!(drain(&mut sub, "g"), vec![1], "one registration, one frame");

    f.registry
        .get("g")
        .send(Unsubscribe { conn_id: 7 })
        .await
        .unwrap();
    assert_eq!(count(&f, "g").await, 0);
    push_one(&f, "g", "b").await;
    settle(&f, "g").await;
    assert!(drain(&mut sub, "g").is_empty(), "nothing after unsubscribe");
    // Unsubscribing what is not subscribed is harmless.
    f.registry
        .get("g")
        .send(Unsubscribe { conn_id: 99 })
        .await
        .unwrap();

    let ack = subscribe(&f, "g", &sub).await;
    assert_eq!(ack.seq, 2);
    push_one(&f, "g", "c").await;
    settle(&f, "g").await;
    assert_eq!(drain(&mut sub, "g"), vec![3]);
}

#[actix_rt::test]
async fn a_full_queue_drops_only_the_slow_subscriber_and_signals_it() {
    let f = open().await;
    let slow = conn(1, Encoding::Json, 2);
    let mut fast = conn(2, Encoding::Json, 64);
    subscribe(&f, "busy", &slow).await;
    subscribe(&f, "busy", &fast).await;
    for i in 0..5 {
        push_one(&f, "busy", &format!("k{i}")).await;
    }
    settle(&f, "busy").await;
    tokio::time::timeout(Duration::from_secs(5), slow.overflow.notified())
        .await
        .expect("overflow signalled");
    assert_eq!(count(&f, "busy").await, 1, "the slow one is unregistered");
    assert!(
        tokio::time::timeout(Duration::from_millis(10), fast.overflow.notified())
            .await
            .is_err()
    );
    assert_eq!(
        drain(&mut fast, "busy"),
        vec![1, 2, 3, 4, 5],
        "the fast one lost nothing"
    );
}

#[actix_rt::test]
async fn no_registration_outlives_its_connection() {
    let f = open().await;
    let mut conns = Vec::new();
    for conn_id in 0..10 {
        let c = conn(conn_id, Encoding::MsgPack, 4);
        subscribe(&f, "leak", &c).await;
        subscribe(&f, "other", &c).await;
        conns.push(c);
    }
    assert_eq!(count(&f, "leak").await, 10);
    // Half unsubscribe as a session does when it ends ...
    for conn_id in 0..5 {
        f.registry
            .get("leak")
            .send(Unsubscribe { conn_id })
            .await
            .unwrap();
        f.registry
            .get("other")
            .send(Unsubscribe { conn_id })
            .await
            .unwrap();
    }
    assert_eq!(count(&f, "leak").await, 5);
    // ... and the rest just vanish: the next commit finds their queues closed.
    drop(conns);
    push_one(&f, "leak", "k").await;
    push_one(&f, "other", "k").await;
    settle(&f, "leak").await;
    settle(&f, "other").await;
    assert_eq!(count(&f, "leak").await, 0);
    assert_eq!(count(&f, "other").await, 0);
}

#[actix_rt::test]
async fn pushes_start_no_actor() {
    let f = open().await;
    for key in ["a", "b"] {
        push_one(&f, "unwatched", key).await;
    }
    assert!(f.registry.is_empty(), "only a subscription starts an actor");
    let sub = conn(1, Encoding::Json, 8);
    assert_eq!(subscribe(&f, "unwatched", &sub).await.seq, 2);
    assert_eq!(f.registry.len(), 1);
}

/// A commit made while the actor started reaches it after its starting read, which already
/// saw it: catch-up covers it, so the actor must not stream it again.
#[actix_rt::test]
async fn a_commit_the_starting_read_saw_is_not_streamed_again() {
    let f = open().await;
    for key in ["a", "b", "c"] {
        push_one(&f, "g", key).await;
    }
    let mut sub = conn(1, Encoding::Json, 16);
    assert_eq!(subscribe(&f, "g", &sub).await.seq, 3);
    let query = PageQuery {
        since: 1,
        upto: 3,
        limit: 10,
        full: false,
    };
    let docs = f
        .storage
        .pull("g".into(), query, usize::MAX)
        .await
        .unwrap()
        .docs;
    let addr = f.registry.get("g");
    let late = |docs: Vec<atomsync_proto::wire::Doc>, seq| {
        Stream(Committed {
            group: "g".into(),
            docs,
            seq,
            epoch_changed: false,
        })
    };
    addr.send(late(docs[1..].to_vec(), 3)).await.unwrap();
    assert!(drain(&mut sub, "g").is_empty(), "seq 3 was covered");
    // A commit the read saw in part keeps only the rest (not possible on SQLite, where a
    // read sees a commit whole; the actor does not rely on it).
    let mut partly = docs.clone();
    let mut fourth = docs[1].clone();
    fourth.seq = 4;
    fourth.key = "d".into();
    partly.push(fourth);
    addr.send(late(partly, 4)).await.unwrap();
    assert_eq!(drain(&mut sub, "g"), vec![4]);
}

/// Commits made by another writer (as another instance on a shared database would) reach
/// the actor only as notices, or not at all before a later commit: the actor reads what it
/// missed from storage, so subscribers still see every seq once, in order. A gap too large
/// for one read makes every subscriber resume from its cursor instead.
#[actix_rt::test]
async fn commits_by_another_writer_are_read_from_storage_in_order() {
    let f = open().await;
    for key in ["a", "b", "c"] {
        push_one(&f, "g", key).await;
    }
    let mut sub = conn(1, Encoding::MsgPack, 16);
    assert_eq!(subscribe(&f, "g", &sub).await.seq, 3);
    let addr = f.registry.get("g");
    let other = f.db.open(1).await;
    let notice = |seq| {
        Stream(Committed {
            group: "g".into(),
            docs: Vec::new(),
            seq,
            epoch_changed: false,
        })
    };

    // A notice that the group reached seq 5.
    let keys: Vec<String> = vec!["d".into(), "e".into()];
    let other_push = |keys: &[String]| {
        let changes = keys
            .iter()
            .map(|key| Change {
                key: key.clone(),
                base: 0,
                op: Op::Set(Packed::from_value(&Value::from(key.as_str()))),
            })
            .collect();
        other.push("g".into(), changes)
    };
    assert_eq!(other_push(&keys).await.unwrap().seq, 5);
    addr.send(notice(5)).await.unwrap();
    // The read holds the mailbox: a message sent after the notice is answered after it.
    count(&f, "g").await;
    assert_eq!(drain(&mut sub, "g"), vec![4, 5]);
    addr.send(notice(5)).await.unwrap();
    count(&f, "g").await;
    assert!(
        drain(&mut sub, "g").is_empty(),
        "a repeated notice sends nothing"
    );

    // A commit with its documents whose predecessor (seq 6) was never announced.
    let forward = addr.clone();
    other.set_commit_sink(Arc::new(move |c: Committed| {
        if c.seq == 7 {
            forward.do_send(Stream(c));
        }
    }));
    other_push(&["f".into()]).await.unwrap();
    other_push(&["h".into()]).await.unwrap();
    settle(&f, "g").await;
    assert_eq!(drain(&mut sub, "g"), vec![6, 7]);

    // More than one read's worth behind: the subscriber resumes from its cursor.
    let many: Vec<String> = (0..super::group::GAP_DOCS + 1)
        .map(|i| format!("m{i}"))
        .collect();
    let seq = other_push(&many).await.unwrap().seq;
    let forward = addr.clone();
    other.set_commit_sink(Arc::new(move |c: Committed| forward.do_send(Stream(c))));
    other_push(&["last".into()]).await.unwrap();
    settle(&f, "g").await;
    tokio::time::timeout(Duration::from_secs(5), sub.overflow.notified())
        .await
        .expect("told to resume");
    assert_eq!(count(&f, "g").await, 0);
    let again = conn(2, Encoding::Json, 16);
    assert_eq!(subscribe(&f, "g", &again).await.seq, seq + 1);
}
