//! What only PostgreSQL has, against a throwaway cluster (`storage::testing`): two
//! instances on one database (ordering, no lost update, notices, the actors streaming the
//! other's commits), a lost listening connection, a lost commit answer settled, pages
//! bounded in bytes, keys in byte order with any character, instances migrating at once.
//! The backend-agnostic tests (`push_tests`, the actors', the sessions') also run here when
//! `ATOMSYNC_TEST_BACKEND=postgres`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomsync_proto::wire::{Change, Op, PushResult, ServerFrame};
use atomsync_proto::{Encoding, Packed, Value};
use tokio::sync::{Notify, mpsc};

use crate::actors::{Registry, Subscribe, Subscriber};
use crate::storage::testing::{Backend, TestDb, cluster};
use crate::storage::{Committed, KeyRange, OpenOptions, PageQuery, Storage};

pub(super) fn set(key: &str, base: u64, value: impl Into<Value>) -> Change {
    Change {
        key: key.into(),
        base,
        op: Op::Set(Packed::from_value(&value.into())),
    }
}

/// A PostgreSQL database and `n` instances (storages) on it.
pub(super) async fn instances(n: usize) -> (TestDb, Vec<Storage>) {
    let db = TestDb::on(Backend::Postgres);
    let mut storages = Vec::new();
    for _ in 0..n {
        storages.push(db.open(4).await);
    }
    (db, storages)
}

/// A commit sink that keeps what it hears.
fn recorder(storage: &Storage) -> Arc<Mutex<Vec<Committed>>> {
    let heard: Arc<Mutex<Vec<Committed>>> = Arc::default();
    let sink = heard.clone();
    storage.set_commit_sink(Arc::new(move |c| sink.lock().unwrap().push(c)));
    heard
}

/// Waits (at most 10 s) until `done` holds for what `heard` holds.
async fn until(heard: &Mutex<Vec<Committed>>, done: impl Fn(&[Committed]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&heard.lock().unwrap()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not heard in time: {:?}",
            heard.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two instances pushing to one group at once, on the same keys and on keys of their own:
/// the group's seqs are 1..N with no gap and no reuse, each key's accepted writes took
/// versions 1, 2, 3... with none lost, and every pusher's outcome is what was stored.
#[actix_rt::test]
async fn two_instances_writing_one_group_serialize_on_its_row() {
    let (_db, s) = instances(2).await;
    let rounds = 30;
    let pushes = (0..rounds).flat_map(|round| {
        s.iter().enumerate().map(move |(i, storage)| {
            let storage = storage.clone();
            async move {
                // A shared key written blind (base = what this instance guesses) and a key
                // of its own: conflicts and accepted writes interleave across instances.
                let guess = storage
                    .doc("g".into(), "shared".into())
                    .await
                    .unwrap()
                    .map_or(0, |d| d.version);
                let changes = vec![
                    set("shared", guess, i as i64),
                    set(&format!("own-{i}-{round}"), 0, 1),
                ];
                storage.push("g".into(), changes).await.unwrap()
            }
        })
    });
    let outcomes = futures_util::future::join_all(pushes).await;
    let mut seqs = Vec::new();
    let mut shared_versions = Vec::new();
    for outcome in &outcomes {
        for result in &outcome.results {
            if let PushResult::Accepted { key, version, seq } = result {
                seqs.push(*seq);
                if key == "shared" {
                    shared_versions.push(*version);
                }
            }
        }
    }
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gapless, unique"
    );
    shared_versions.sort_unstable();
    assert_eq!(
        shared_versions,
        (1..=shared_versions.len() as u64).collect::<Vec<_>>(),
        "every accepted write of the shared key took the next version"
    );
    let stored = s[0]
        .doc("g".into(), "shared".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.version,
        shared_versions.len() as u64,
        "no lost update"
    );
    assert_eq!(s[1].group_seq("g".into()).await.unwrap(), seqs.len() as u64);
}

/// An instance hears the other's commits as notices (no documents, the group's seq), and
/// its own only from its writers, with their documents.
#[actix_rt::test]
async fn the_other_instances_commits_arrive_as_notices() {
    let (_db, s) = instances(2).await;
    let heard = recorder(&s[0]);
    s[0].push("g".into(), vec![set("a", 0, 1)]).await.unwrap();
    s[1].push("g".into(), vec![set("b", 0, 1), set("c", 0, 1)])
        .await
        .unwrap();
    s[1].push("h".into(), vec![set("b", 0, 1)]).await.unwrap();
    until(&heard, |h| h.len() == 3).await;
    let heard = heard.lock().unwrap();
    assert_eq!(
        (&*heard[0].group, heard[0].seq, heard[0].docs.len()),
        ("g", 1, 1)
    );
    let notices: Vec<(&str, u64, usize)> = heard[1..]
        .iter()
        .map(|c| (&*c.group, c.seq, c.docs.len()))
        .collect();
    assert!(
        notices.contains(&("g", 3, 0)) && notices.contains(&("h", 1, 0)),
        "{notices:?}"
    );
}

/// After its listening connection is cut, an instance re-reads the seq of every group it
/// streams and sends each a notice, so a commit made while it was deaf is not missed.
#[actix_rt::test]
async fn a_cut_listener_reconnects_and_sends_a_notice_per_streamed_group() {
    let (db, s) = instances(2).await;
    let heard = recorder(&s[0]);
    s[0].set_streamed_groups(Arc::new(|| vec!["g".into()]));
    s[1].push("g".into(), vec![set("a", 0, 1)]).await.unwrap();
    until(&heard, |h| h.iter().any(|c| c.seq == 1)).await;
    heard.lock().unwrap().clear();
    let database = cluster::Cluster::database_of(db.postgres_url().unwrap());
    let cut = cluster::cluster()
        .psql(
            database,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name LIKE '% listener'",
        )
        .unwrap();
    assert_eq!(cut, "2", "both instances' listeners");
    s[1].push("g".into(), vec![set("b", 0, 1)]).await.unwrap();
    until(&heard, |h| {
        h.iter()
            .any(|c| &*c.group == "g" && c.seq == 2 && c.docs.is_empty())
    })
    .await;
}

/// Each instance's actors stream the other instance's commits to their subscribers, in
/// seq order, each once, whichever instance wrote them.
#[actix_rt::test]
async fn subscribers_on_one_instance_see_the_others_commits_in_order() {
    let (_db, s) = instances(2).await;
    let registries: Vec<Registry> = s.iter().map(|s| Registry::new(s.clone())).collect();
    let mut queues = Vec::new();
    for (i, registry) in registries.iter().enumerate() {
        let (queue, frames) = mpsc::channel(1024);
        let subscriber = Subscriber {
            conn_id: i as u64,
            encoding: Encoding::MsgPack,
            queue,
            overflow: Arc::new(Notify::new()),
        };
        let ack = registry
            .get("g")
            .send(Subscribe { subscriber })
            .await
            .unwrap();
        assert_eq!(ack.seq, 0);
        queues.push(frames);
    }
    let writes = (0..40).map(|i| {
        let storage = s[i % 2].clone();
        async move {
            storage
                .push("g".into(), vec![set(&format!("k{i}"), 0, i as i64)])
                .await
                .unwrap()
        }
    });
    futures_util::future::join_all(writes).await;
    for frames in &mut queues {
        let mut seqs = Vec::new();
        while seqs.len() < 40 {
            let frame = tokio::time::timeout(Duration::from_secs(10), frames.recv())
                .await
                .expect("every commit streamed in time")
                .unwrap();
            let ServerFrame::Changes { changes, .. } =
                ServerFrame::decode(&frame.bytes, frame.encoding).unwrap()
            else {
                panic!("not a changes frame")
            };
            seqs.extend(changes.iter().map(|d| d.seq));
        }
        assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
    }
}

/// A commit whose answer was lost is settled by asking the database about its transaction.
#[actix_rt::test]
async fn a_lost_commit_answer_is_settled_by_the_transaction_id() {
    let (db, _s) = instances(1).await;
    let database = cluster::Cluster::database_of(db.postgres_url().unwrap());
    let c = cluster::cluster();
    let committed: i64 = c
        .psql(database, "BEGIN; SELECT txid_current(); COMMIT;")
        .unwrap()
        .parse()
        .unwrap();
    let aborted: i64 = c
        .psql(database, "BEGIN; SELECT txid_current(); ROLLBACK;")
        .unwrap()
        .parse()
        .unwrap();
    let pool = db_pool(db.postgres_url().unwrap());
    assert_eq!(super::writer::settle(&pool, committed).await, Some(true));
    assert_eq!(super::writer::settle(&pool, aborted).await, Some(false));
}

fn db_pool(url: &str) -> deadpool_postgres::Pool {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    deadpool_postgres::Pool::builder(manager)
        .max_size(1)
        .build()
        .unwrap()
}

/// A pull's page stops where its sink says it is full (with at least one document) and says
/// more remain; documents larger than a round trip's chunk come a chunk at a time, all of
/// them; a page in key order stops at its byte budget too.
#[actix_rt::test]
async fn pages_are_bounded_in_bytes() {
    let (_db, s) = instances(1).await;
    let storage = &s[0];
    let big = |i: i64| Value::Bytes(vec![i as u8; 1000]);
    let changes = (0..5).map(|i| set(&format!("k{i}"), 0, big(i))).collect();
    storage.push("g".into(), changes).await.unwrap();
    let page = storage
        .pull("g".into(), PageQuery::after(0, 100), 2500)
        .await
        .unwrap();
    assert_eq!((page.docs.len(), page.seq, page.more), (2, 2, true));
    let page = storage
        .pull("g".into(), PageQuery::after(4, 100), 2500)
        .await
        .unwrap();
    assert_eq!((page.docs.len(), page.seq, page.more), (1, 5, false));
    let page = storage
        .pull("g".into(), PageQuery::after(0, 1), usize::MAX)
        .await
        .unwrap();
    assert_eq!(
        (page.docs.len(), page.more),
        (1, true),
        "the count bounds too"
    );
    let upto = PageQuery {
        upto: 3,
        ..PageQuery::after(0, 100)
    };
    let page = storage.pull("g".into(), upto, 10).await.unwrap();
    assert_eq!(
        (page.docs.len(), page.more),
        (1, true),
        "never empty while docs remain"
    );
    let range = KeyRange {
        after: None,
        prefix: "k".into(),
        tombstones: true,
        limit: 100,
        max_bytes: 2500,
    };
    let page = storage
        .docs_by_key("g".into(), range)
        .await
        .unwrap()
        .unwrap();
    let keys: Vec<&str> = page.docs.iter().map(|d| d.key.as_str()).collect();
    assert_eq!((keys, page.more), (vec!["k0", "k1"], true));

    // Three documents of 600 KiB: each round trip reads one (a chunk is 1 MiB), and the
    // page goes on to the next until its sink or its end.
    let large = (0..3)
        .map(|i| set(&format!("large{i}"), 0, Value::Bytes(vec![1; 600 << 10])))
        .collect();
    storage.push("h".into(), large).await.unwrap();
    let page = storage
        .pull("h".into(), PageQuery::after(0, 100), usize::MAX)
        .await
        .unwrap();
    assert_eq!((page.docs.len(), page.seq, page.more), (3, 3, false));
    let page = storage
        .pull("h".into(), PageQuery::after(0, 2), usize::MAX)
        .await
        .unwrap();
    assert_eq!((page.docs.len(), page.seq, page.more), (2, 2, true));
}

/// Keys are any UTF-8 (NUL too) and come back in byte order, as on SQLite; group names
/// list in byte order; counts see tombstones.
#[actix_rt::test]
async fn keys_of_any_character_in_byte_order() {
    let (_db, s) = instances(1).await;
    let s = &s[0];
    let keys = ["z", "é", "a\0b", "A", "a"];
    let changes = keys.iter().map(|k| set(k, 0, 1)).collect();
    s.push("g".into(), changes).await.unwrap();
    s.push(
        "g".into(),
        vec![Change {
            key: "A".into(),
            base: 1,
            op: Op::Delete,
        }],
    )
    .await
    .unwrap();
    s.push("B".into(), vec![set("k", 0, 1)]).await.unwrap();
    let range = KeyRange {
        after: None,
        prefix: String::new(),
        tombstones: false,
        limit: 100,
        max_bytes: usize::MAX,
    };
    let page = s.docs_by_key("g".into(), range).await.unwrap().unwrap();
    let listed: Vec<&str> = page.docs.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(listed, ["a", "a\0b", "z", "é"]);
    let doc = s.doc("g".into(), "a\0b".into()).await.unwrap().unwrap();
    assert_eq!(doc.seq, 3);
    let (groups, more) = s.groups(None, 10).await.unwrap();
    let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!((names, more), (vec!["B", "g"], false));
    let g = s.group_stats("g".into()).await.unwrap().unwrap();
    assert_eq!((g.seq, g.documents, g.tombstones), (6, 4, 1));
}

/// Instances started at once on a new database migrate it once and share one epoch.
#[actix_rt::test]
async fn instances_starting_together_migrate_once_and_share_the_epoch() {
    let db = TestDb::on(Backend::Postgres);
    let opened = futures_util::future::join_all((0..3).map(|_| db.open(1))).await;
    let epoch = opened[0].epoch().to_owned();
    assert!(opened.iter().all(|s| s.epoch() == epoch));
    assert_eq!(db.open(1).await.epoch(), epoch, "and keep it");
}

/// A database taken away under a running instance makes its pushes, pulls and health
/// answer "unavailable" (503, nothing applied), never "internal" (500).
#[actix_rt::test]
async fn a_database_taken_away_is_unavailable_not_a_bug() {
    let (db, s) = instances(1).await;
    s[0].push("g".into(), vec![set("a", 0, 1)]).await.unwrap();
    let database = cluster::Cluster::database_of(db.postgres_url().unwrap());
    cluster::cluster()
        .psql(
            "postgres",
            &format!("DROP DATABASE {database} WITH (FORCE)"),
        )
        .unwrap();
    let pushed = s[0].push("g".into(), vec![set("b", 0, 1)]).await;
    let e = pushed.expect_err("the database is gone");
    assert!(e.is_transient() && e.applied_nothing(), "{e}");
    let e = s[0]
        .pull("g".into(), PageQuery::after(0, 10), usize::MAX)
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(s[0].health().await.unwrap_err().is_transient());
}

/// A database that cannot be reached at start-up is an error that says where, with no
/// password, and a passing one (the server exits and is restarted), never a panic.
#[actix_rt::test]
async fn an_unreachable_database_is_an_error_not_a_panic() {
    let url = "postgres://atomsync:s3cret@127.0.0.1:1/nowhere";
    let options = OpenOptions::without_lineage(url.as_ref(), crate::config::Durability::Full, 2);
    let e = Storage::open_options(options)
        .await
        .expect_err("nothing listens on port 1");
    assert!(e.is_transient(), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}
