//! Push tests against a temporary database, through [`Storage`] as the push path drives
//! it: version checks, seqs, conflicts, concurrent requests, the commit sink, a failing
//! request, closing, a restart. They run on the backend `storage::testing` chooses; the
//! failing request plants a trigger in whichever it is.

use std::sync::{Arc, Mutex};

use atomsync_proto::wire::{Change, Op, PushResult};
use atomsync_proto::{Packed, Value};

use super::testing::TestDb;
use super::{Committed, PageQuery, PushOutcome, Storage, StorageError};

struct Fixture {
    db: TestDb,
    storage: Storage,
}

async fn open() -> Fixture {
    let db = TestDb::new();
    let storage = db.open(2).await;
    Fixture { db, storage }
}

fn set(key: &str, base: u64, value: impl Into<Value>) -> Change {
    Change {
        key: key.into(),
        base,
        op: Op::Set(Packed::from_value(&value.into())),
    }
}

fn delete(key: &str, base: u64) -> Change {
    Change {
        key: key.into(),
        base,
        op: Op::Delete,
    }
}

async fn push(f: &Fixture, group: &str, changes: Vec<Change>) -> Result<PushOutcome, StorageError> {
    f.storage.push(group.into(), changes).await
}

fn accepted(r: &PushResult) -> (u64, u64) {
    match r {
        PushResult::Accepted { version, seq, .. } => (*version, *seq),
        other => panic!("expected accepted, got {other:?}"),
    }
}

#[actix_rt::test]
async fn accept_then_conflict_carries_current() {
    let f = open().await;
    let r = push(&f, "g", vec![set("a", 0, 1)]).await.unwrap();
    assert_eq!(accepted(&r.results[0]), (1, 1));
    let r = push(&f, "g", vec![set("a", 0, 2)]).await.unwrap();
    let PushResult::Conflict {
        current: Some(doc), ..
    } = &r.results[0]
    else {
        panic!("{r:?}")
    };
    assert_eq!((doc.version, doc.seq), (1, 1));
    assert_eq!(doc.value.as_ref().unwrap().to_value(), Value::from(1));
    assert_eq!(r.seq, 1, "a conflict takes no seq");
    let r = push(&f, "g", vec![set("never", 3, 2)]).await.unwrap();
    assert!(matches!(
        &r.results[0],
        PushResult::Conflict { current: None, .. }
    ));
}

#[actix_rt::test]
async fn delete_then_recreate_from_the_tombstone() {
    let f = open().await;
    push(&f, "g", vec![set("a", 0, 1)]).await.unwrap();
    let r = push(&f, "g", vec![delete("a", 1)]).await.unwrap();
    assert_eq!(accepted(&r.results[0]), (2, 2));
    let r = push(&f, "g", vec![set("a", 0, 1)]).await.unwrap();
    let PushResult::Conflict {
        current: Some(doc), ..
    } = &r.results[0]
    else {
        panic!("{r:?}")
    };
    assert!(doc.value.is_none(), "the tombstone is current");
    let r = push(&f, "g", vec![set("a", 2, "back")]).await.unwrap();
    assert_eq!(accepted(&r.results[0]), (3, 3));
}

#[actix_rt::test]
async fn mixed_batch_keeps_request_order_and_a_gapless_seq() {
    let f = open().await;
    push(&f, "g", vec![set("a", 0, 1), set("b", 0, 1)])
        .await
        .unwrap();
    let r = push(
        &f,
        "g",
        vec![
            set("c", 0, 1),
            set("a", 7, 2),
            delete("b", 1),
            set("d", 1, 1),
        ],
    )
    .await
    .unwrap();
    assert_eq!(accepted(&r.results[0]), (1, 3));
    assert!(matches!(r.results[1], PushResult::Conflict { .. }));
    assert_eq!(accepted(&r.results[2]), (2, 4));
    assert!(matches!(r.results[3], PushResult::Conflict { .. }));
    assert_eq!(r.seq, 4);
    // Another group has its own sequence.
    let r = push(&f, "other", vec![set("a", 0, 1)]).await.unwrap();
    assert_eq!(accepted(&r.results[0]), (1, 1));
}

/// Concurrent requests are serialized: each request's accepted changes take consecutive
/// seqs, and together they cover 1..N with no gap, however the writer batched them.
#[actix_rt::test]
async fn concurrent_requests_each_commit_as_one_unit() {
    let f = open().await;
    let pushes = (0..40).map(|r| {
        let changes = (0..5).map(|i| set(&format!("r{r}-{i}"), 0, i)).collect();
        push(&f, "g", changes)
    });
    let responses = futures_util::future::join_all(pushes).await;
    let mut all = Vec::new();
    for response in responses {
        let seqs: Vec<u64> = response
            .unwrap()
            .results
            .iter()
            .map(|r| accepted(r).1)
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "one request, consecutive seqs: {seqs:?}"
        );
        all.extend(seqs);
    }
    all.sort();
    assert_eq!(all, (1..=200).collect::<Vec<u64>>());
}

/// A request that fails in storage applies nothing, and does not harm the requests
/// committed beside it in the same batch.
#[actix_rt::test]
async fn a_failed_request_applies_nothing() {
    let f = open().await;
    plant_trigger(&f.db);
    let (bad, good) = futures_util::join!(
        push(&f, "g", vec![set("x", 0, 1), set("boom", 0, 1)]),
        push(&f, "g", vec![set("y", 0, 1)]),
    );
    assert!(bad.is_err());
    assert_eq!(accepted(&good.unwrap().results[0]).0, 1);
    let page = f
        .storage
        .pull("g".into(), PageQuery::after(0, 100), usize::MAX)
        .await
        .unwrap();
    let keys: Vec<&str> = page.docs.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["y"]);
    assert_eq!(page.docs[0].seq, 1, "the failed request took no seq");
    // The writer carries on.
    let r = push(&f, "g", vec![set("x", 0, 1)]).await.unwrap();
    assert_eq!(accepted(&r.results[0]), (1, 2));
}

/// A trigger that fails any write of the key `boom`.
fn plant_trigger(db: &TestDb) {
    if let Some(path) = db.sqlite_path() {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON docs WHEN NEW.key = 'boom'
             BEGIN SELECT RAISE(ABORT, 'boom'); END;",
        )
        .unwrap();
    }
    if let Some(url) = db.postgres_url() {
        let cluster = super::testing::cluster::cluster();
        let database = super::testing::cluster::Cluster::database_of(url);
        cluster
            .psql(
                database,
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN IF NEW.key = 'boom'::bytea THEN RAISE EXCEPTION 'boom'; END IF;
                 RETURN NEW; END $$;
                 CREATE TRIGGER boom BEFORE INSERT OR UPDATE ON atomsync_docs
                 FOR EACH ROW EXECUTE FUNCTION boom();",
            )
            .unwrap();
    }
}

#[actix_rt::test]
async fn restart_keeps_seq_and_epoch() {
    let f = open().await;
    push(&f, "g", vec![set("a", 0, 1), set("b", 0, 1)])
        .await
        .unwrap();
    let epoch = f.storage.epoch().to_owned();
    let Fixture { db, storage } = f;
    storage.close().await;
    drop(storage);
    let storage = db.open(2).await;
    assert_eq!(storage.epoch(), epoch);
    assert_eq!(storage.group_seq("g".into()).await.unwrap(), 2);
    let r = storage
        .push("g".into(), vec![set("c", 0, 1)])
        .await
        .unwrap();
    assert_eq!(accepted(&r.results[0]), (1, 3));
}

/// The sink hears every commit that accepted a change, each group's in seq order, with its
/// documents, before the pusher hears its outcome; conflicts commit nothing and are not heard.
#[actix_rt::test]
async fn the_sink_hears_each_commit_in_order_before_its_pusher() {
    let f = open().await;
    let heard: Arc<Mutex<Vec<Committed>>> = Arc::default();
    let sink = heard.clone();
    f.storage
        .set_commit_sink(Arc::new(move |c| sink.lock().unwrap().push(c)));
    let pushes = (0..20).map(|i| {
        push(
            &f,
            if i % 2 == 0 { "a" } else { "b" },
            vec![set(&format!("k{i}"), 0, i)],
        )
    });
    for outcome in futures_util::future::join_all(pushes).await {
        let outcome = outcome.unwrap();
        let group_heard = heard.lock().unwrap().iter().any(|c| c.seq == outcome.seq);
        assert!(group_heard, "heard before the pusher");
    }
    push(&f, "a", vec![set("k0", 0, 9)]).await.unwrap(); // a conflict
    let heard = heard.lock().unwrap();
    assert_eq!(heard.len(), 20);
    for group in ["a", "b"] {
        let commits: Vec<&Committed> = heard.iter().filter(|c| &*c.group == group).collect();
        for (i, c) in commits.iter().enumerate() {
            assert_eq!((c.after(), c.seq), (i as u64, i as u64 + 1), "{group}");
            assert_eq!(c.docs[0].seq, c.seq);
        }
    }
}

#[actix_rt::test]
async fn a_closed_storage_refuses_pushes_and_fails_health() {
    let f = open().await;
    f.storage.health().await.unwrap();
    push(&f, "g", vec![set("a", 0, 1)]).await.unwrap();
    f.storage.close().await;
    assert!(matches!(
        push(&f, "g", vec![set("b", 0, 1)]).await,
        Err(StorageError::WriterGone)
    ));
    assert!(f.storage.health().await.is_err());
    // Reads go on: what was acknowledged is there.
    let page = f
        .storage
        .pull("g".into(), PageQuery::after(0, 10), usize::MAX)
        .await
        .unwrap();
    assert_eq!(page.docs.len(), 1);
}

/// A full disk is said in those words, as a 503 that applied nothing; once there is room,
/// pushes go through again. SQLite: the database at its page limit, which SQLite reports
/// exactly as a full disk; PostgreSQL: a trigger that fails as a full disk does
/// (SQLSTATE 53100).
#[actix_rt::test]
async fn a_full_disk_is_a_503_that_says_disk_full_and_applies_nothing() {
    let f = open().await;
    let small = Change {
        key: "a".into(),
        base: 0,
        op: Op::Set(Packed::from_value(&Value::from(1))),
    };
    f.storage.push("g".into(), vec![small]).await.unwrap();
    disk_full(&f, true);
    let big = Change {
        key: "b".into(),
        base: 0,
        op: Op::Set(Packed::from_value(&Value::Bytes(vec![7; 512 << 10]))),
    };
    let error = f
        .storage
        .push("g".into(), vec![big.clone()])
        .await
        .unwrap_err();
    assert!(matches!(error, StorageError::DiskFull(_)), "{error}");
    let wire = crate::error::RequestError::from(error).to_wire();
    assert_eq!(wire.code, atomsync_proto::ErrorCode::Unavailable);
    assert!(
        wire.message.starts_with("storage: disk full"),
        "{}",
        wire.message
    );
    assert_eq!(
        f.storage.group_seq("g".into()).await.unwrap(),
        1,
        "nothing applied"
    );
    disk_full(&f, false);
    assert_eq!(f.storage.push("g".into(), vec![big]).await.unwrap().seq, 2);
}

/// Makes the database's disk look full (`full`), or have room again.
fn disk_full(f: &Fixture, full: bool) {
    if let Some(url) = f.db.postgres_url() {
        let database = super::testing::cluster::Cluster::database_of(url);
        let sql = if full {
            "CREATE FUNCTION full_disk() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'
             USING ERRCODE = 'disk_full'; END $$;
             CREATE TRIGGER full_disk BEFORE INSERT OR UPDATE ON atomsync_docs
             FOR EACH ROW EXECUTE FUNCTION full_disk();"
        } else {
            "DROP TRIGGER full_disk ON atomsync_docs; DROP FUNCTION full_disk();"
        };
        super::testing::cluster::cluster()
            .psql(database, sql)
            .unwrap();
        return;
    }
    f.storage.on_writer_connection(move |conn| {
        let pages: i64 = if full {
            conn.query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap()
        } else {
            1_000_000_000
        };
        conn.pragma_update(None, "max_page_count", pages).unwrap();
    });
}
