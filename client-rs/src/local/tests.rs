//! The local store without a server: folding, persistence, settling, resets.

use atomsync_proto::wire::Doc;
use atomsync_proto::{Packed, Value};

use super::{EpochCheck, LocalDb, PendingChange, ResetMode, Settlement};

const G: &str = "g";

fn packed(value: impl Into<Value>) -> Packed {
    Packed::from_value(&value.into())
}

fn set(key: &str, value: impl Into<Value>) -> (String, Option<Packed>) {
    (key.to_owned(), Some(packed(value)))
}

fn doc(key: &str, version: u64, seq: u64, value: Option<i64>) -> Doc {
    Doc {
        key: key.to_owned(),
        version,
        seq,
        value: value.map(packed),
    }
}

fn open() -> (tempfile::TempDir, LocalDb) {
    let dir = tempfile::tempdir().unwrap();
    let db = LocalDb::open(&dir.path().join("store.db")).unwrap();
    db.load(G).unwrap();
    (dir, db)
}

fn all_pending(db: &LocalDb) -> Vec<PendingChange> {
    db.pending_batch(G, 1000, usize::MAX).unwrap()
}

#[test]
fn local_writes_fold_per_key_keeping_the_first_base() {
    let (_dir, db) = open();
    db.apply_remote(G, vec![doc("a", 3, 1, Some(1))], 1)
        .unwrap();
    db.write_local(G, &[set("a", 10)]).unwrap();
    db.apply_remote(G, vec![doc("a", 4, 2, Some(2))], 2)
        .unwrap();
    let applied = db.write_local(G, &[set("a", 11), set("b", 1)]).unwrap();
    assert_eq!(applied.pending, 2);
    let pending = all_pending(&db);
    let a = pending.iter().find(|change| change.key == "a").unwrap();
    // Made on version 3; the remote version 4 arrived after: the fold keeps 3, so the
    // push conflicts and the resolver sees the remote change.
    assert_eq!((a.base, a.value.clone()), (3, Some(packed(11))));
    let b = pending.iter().find(|change| change.key == "b").unwrap();
    assert_eq!(b.base, 0);
    assert!(a.rev != b.rev);
}

#[test]
fn map_and_pending_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let db = LocalDb::open(&path).unwrap();
        db.load(G).unwrap();
        db.apply_remote(
            G,
            vec![doc("server", 1, 1, Some(7)), doc("gone", 2, 2, None)],
            2,
        )
        .unwrap();
        db.write_local(G, &[set("local", "x"), ("server".to_owned(), None)])
            .unwrap();
        db.check_epoch(G, "e1").unwrap();
    }
    let db = LocalDb::open(&path).unwrap();
    let loaded = db.load(G).unwrap();
    assert_eq!(loaded.pending, 2);
    assert_eq!(loaded.meta.cursor, 2);
    assert_eq!(loaded.meta.epoch.as_deref(), Some("e1"));
    // "server" has a pending delete, "gone" is a tombstone: only "local" is visible.
    assert_eq!(loaded.visible.keys().collect::<Vec<_>>(), ["local"]);
    // Revision numbers keep growing across opens.
    let before = all_pending(&db)
        .iter()
        .map(|change| change.rev)
        .max()
        .unwrap();
    db.write_local(G, &[set("local", "y")]).unwrap();
    assert!(
        all_pending(&db)
            .iter()
            .all(|change| change.key != "local" || change.rev > before)
    );
}

#[test]
fn a_remote_change_never_overwrites_a_pending_key() {
    let (_dir, db) = open();
    db.write_local(G, &[set("k", "mine")]).unwrap();
    let applied = db
        .apply_remote(
            G,
            vec![doc("k", 1, 5, Some(1)), doc("other", 1, 6, Some(2))],
            6,
        )
        .unwrap();
    assert_eq!(applied.cursor, 6);
    let edits: Vec<_> = applied
        .edits
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert!(edits.contains(&("k", Some(Value::from("mine")))));
    assert!(edits.contains(&("other", Some(Value::from(2)))));
    // An older copy of a document is ignored, and the cursor never goes back.
    let applied = db
        .apply_remote(G, vec![doc("other", 0, 3, Some(9))], 3)
        .unwrap();
    assert!(applied.edits.is_empty());
    assert_eq!(applied.cursor, 6);
}

#[test]
fn an_accepted_push_settles_only_what_was_sent() {
    let (_dir, db) = open();
    db.write_local(G, &[set("a", 1), set("b", 1)]).unwrap();
    let sent = all_pending(&db);
    db.write_local(G, &[set("b", 2)]).unwrap(); // b written again while in flight
    let settlements: Vec<Settlement> = sent
        .into_iter()
        .map(|sent| Settlement::Accepted { sent, version: 1 })
        .collect();
    let applied = db.settle(G, &settlements).unwrap();
    assert_eq!(applied.pending, 1);
    let left = all_pending(&db);
    assert_eq!(
        (left[0].key.as_str(), left[0].base, left[0].value.clone()),
        ("b", 1, Some(packed(2)))
    );
    assert_eq!(db.load(G).unwrap().visible.get("b"), Some(&Value::from(2)));
}

#[test]
fn conflicts_let_the_server_win_or_push_the_resolution() {
    let (_dir, db) = open();
    db.write_local(G, &[set("lose", 1), set("merge", 1)])
        .unwrap();
    let mut sent = all_pending(&db).into_iter();
    let (first, second) = (sent.next().unwrap(), sent.next().unwrap());
    let (lose, merge) = if first.key == "lose" {
        (first, second)
    } else {
        (second, first)
    };
    let applied = db
        .settle(
            G,
            &[
                Settlement::Conflict {
                    sent: lose,
                    current: Some(doc("lose", 4, 9, Some(40))),
                    resolution: None,
                },
                Settlement::Conflict {
                    sent: merge,
                    current: Some(doc("merge", 2, 10, Some(20))),
                    resolution: Some(packed(21)),
                },
            ],
        )
        .unwrap();
    assert_eq!(applied.pending, 1);
    let left = all_pending(&db);
    assert_eq!(
        (left[0].key.as_str(), left[0].base, left[0].value.clone()),
        ("merge", 2, Some(packed(21)))
    );
    let visible = db.load(G).unwrap().visible;
    assert_eq!(visible.get("lose"), Some(&Value::from(40)));
    assert_eq!(visible.get("merge"), Some(&Value::from(21)));
}

#[test]
fn a_rejected_change_goes_back_to_the_server_value() {
    let (_dir, db) = open();
    db.apply_remote(G, vec![doc("k", 1, 1, Some(1))], 1)
        .unwrap();
    db.write_local(G, &[set("k", 2)]).unwrap();
    let sent = all_pending(&db).remove(0);
    let applied = db.settle(G, &[Settlement::Rejected { sent }]).unwrap();
    assert_eq!(applied.pending, 0);
    assert_eq!(applied.edits, vec![("k".to_owned(), Some(Value::from(1)))]);
}

#[test]
fn a_compaction_reset_drops_what_the_full_pull_did_not_return() {
    let (_dir, db) = open();
    db.apply_remote(
        G,
        vec![
            doc("keep", 1, 1, Some(1)),
            doc("drop", 1, 2, Some(2)),
            doc("mine", 1, 3, Some(3)),
        ],
        3,
    )
    .unwrap();
    db.write_local(G, &[set("mine", 30)]).unwrap();
    db.begin_compaction_reset(G).unwrap();
    assert_eq!(db.meta(G).unwrap().cursor, 0);
    db.apply_remote(G, vec![doc("keep", 1, 1, Some(1))], 5)
        .unwrap();
    let applied = db.finish_catch_up(G).unwrap();
    let mut edits = applied.edits;
    edits.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        edits,
        vec![
            ("drop".to_owned(), None),
            ("mine".to_owned(), Some(Value::from(30)))
        ]
    );
    assert_eq!(db.meta(G).unwrap().reset, ResetMode::None);
    assert_eq!(applied.pending, 1);
}

#[test]
fn an_epoch_change_restarts_and_rebases_pending_changes() {
    let (_dir, db) = open();
    assert_eq!(db.check_epoch(G, "old").unwrap().0, EpochCheck::First);
    db.apply_remote(G, vec![doc("a", 7, 7, Some(1)), doc("b", 8, 8, Some(2))], 8)
        .unwrap();
    db.write_local(G, &[set("a", 10), set("new", 1)]).unwrap();
    assert_eq!(db.check_epoch(G, "old").unwrap().0, EpochCheck::Same);
    let (check, applied) = db.check_epoch(G, "fresh").unwrap();
    assert_eq!(
        (check, applied.cursor, applied.epoch.as_deref()),
        (EpochCheck::Changed, 0, Some("fresh"))
    );
    // The new database has "a" at version 2 and no "b".
    db.apply_remote(G, vec![doc("a", 2, 1, Some(5))], 1)
        .unwrap();
    let applied = db.finish_catch_up(G).unwrap();
    assert!(applied.edits.contains(&("b".to_owned(), None)));
    let pending = all_pending(&db);
    let base = |key: &str| {
        pending
            .iter()
            .find(|change| change.key == key)
            .map(|change| change.base)
    };
    assert_eq!((base("a"), base("new")), (Some(2), Some(0)));
    assert_eq!(db.load(G).unwrap().visible.get("a"), Some(&Value::from(10)));
}

#[test]
fn batches_respect_count_and_bytes() {
    let (_dir, db) = open();
    let edits: Vec<_> = (0..10)
        .map(|i| set(&format!("k{i}"), "x".repeat(100)))
        .collect();
    db.write_local(G, &edits).unwrap();
    assert_eq!(db.pending_batch(G, 3, usize::MAX).unwrap().len(), 3);
    assert_eq!(db.pending_batch(G, 100, 250).unwrap().len(), 2);
    assert_eq!(db.pending_batch(G, 100, 1).unwrap().len(), 1);
}

#[test]
fn damaged_values_are_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    LocalDb::open(&path).unwrap().load(G).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO docs (grp, key, version, value) VALUES ('g', 'bad', 1, x'c1')",
        [],
    )
    .unwrap();
    drop(conn);
    let error = LocalDb::open(&path).unwrap().load(G).unwrap_err();
    assert!(matches!(error, crate::ClientError::Corrupt(_)), "{error}");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        LocalDb::open(&path),
        Err(crate::ClientError::Corrupt(_))
    ));
}

/// Every row of the group's `docs` table: key, version, value, stale.
fn docs_rows(db: &LocalDb) -> Vec<(String, i64, Option<Vec<u8>>, i64)> {
    let inner = db.inner.lock().unwrap();
    let mut statement = inner
        .conn
        .prepare("SELECT key, version, value, stale FROM docs WHERE grp = ?1 ORDER BY key")
        .unwrap();
    statement
        .query_map([G], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A store holding what a run of documents can meet: newer and older stored copies,
/// stale rows (a reset under way), tombstones, and pending local changes.
fn store_to_meet_runs() -> (tempfile::TempDir, LocalDb) {
    let (dir, db) = open();
    let held: Vec<Doc> = (0..40)
        .map(|i| {
            doc(
                &format!("k{i:03}"),
                5,
                i + 1,
                (i % 7 != 0).then_some(i as i64),
            )
        })
        .collect();
    db.apply_remote(G, held, 40).unwrap();
    db.write_local(G, &[set("k001", "mine"), set("k100", "mine too")])
        .unwrap();
    (dir, db)
}

/// What a run of documents meets: new keys, keys stored at version 5 sent again older
/// (3), equal (5) and newer (6), deletes, and one key twice in the same run and another
/// in two runs; 3 runs of 64 and a short one.
fn runs_of_documents() -> Vec<Doc> {
    let mut docs = Vec::new();
    for i in 0..200u64 {
        let (key, version) = match i {
            0..40 => (format!("k{i:03}"), [3, 5, 6][i as usize % 3]),
            _ => (format!("k{i:03}"), 1),
        };
        docs.push(doc(
            &key,
            version,
            100 + i,
            (i % 11 != 0).then_some(1000 + i as i64),
        ));
    }
    docs.insert(70, doc("k150", 2, 0, Some(-1)));
    docs.insert(75, doc("k150", 3, 0, Some(-2)));
    docs.insert(10, doc("k199", 7, 0, Some(-3)));
    for (seq, doc) in docs.iter_mut().enumerate() {
        doc.seq = seq as u64 + 100;
    }
    docs
}

/// Applies `edits` in order to `map`, as the atom does.
fn replay(map: &mut crate::Map, edits: Vec<(String, Option<Value>)>) {
    for (key, value) in edits {
        match value {
            Some(value) => map.insert(key, value),
            None => map.remove(&key),
        };
    }
}

#[test]
fn documents_stored_in_runs_end_as_stored_one_by_one() {
    for reset in [false, true] {
        let (_dirs, dbs): (Vec<_>, Vec<_>) = (0..2).map(|_| store_to_meet_runs()).unzip();
        if reset {
            for db in &dbs {
                db.begin_compaction_reset(G).unwrap();
            }
        }
        let mut maps: Vec<crate::Map> = dbs.iter().map(|db| db.load(G).unwrap().visible).collect();
        let docs = runs_of_documents();
        let cursor = docs.len() as u64 + 100;
        // Together: runs of 64 rows per statement. One by one: a row per statement.
        replay(
            &mut maps[0],
            dbs[0].apply_remote(G, docs.clone(), cursor).unwrap().edits,
        );
        for doc in docs {
            let seq = doc.seq;
            replay(
                &mut maps[1],
                dbs[1].apply_remote(G, vec![doc], seq).unwrap().edits,
            );
        }
        assert_eq!(docs_rows(&dbs[0]), docs_rows(&dbs[1]), "reset: {reset}");
        assert_eq!(maps[0], maps[1], "reset: {reset}");
        for (db, map) in dbs.iter().zip(&maps) {
            assert_eq!(&db.load(G).unwrap().visible, map, "reset: {reset}");
        }
        assert_eq!(maps[0].get("k001"), Some(&Value::from("mine")));
        // Sent at versions 2 and 3 in one run, then 1 in a later one: 3 stays.
        assert_eq!(maps[0].get("k150"), Some(&Value::from(-2)));
    }
}

#[test]
fn a_first_sync_in_runs_keeps_pending_changes_visible() {
    let (_dir, db) = open();
    db.write_local(G, &[set("k005", "offline edit")]).unwrap();
    let docs: Vec<Doc> = (0..130u64)
        .map(|i| doc(&format!("k{i:03}"), 1, i + 1, Some(i as i64)))
        .collect();
    let mut map = db.load(G).unwrap().visible;
    let applied = db.apply_remote(G, docs, 130).unwrap();
    assert_eq!(applied.edits.len(), 130);
    replay(&mut map, applied.edits);
    assert_eq!(map.len(), 130);
    assert_eq!(map.get("k005"), Some(&Value::from("offline edit")));
    assert_eq!(map.get("k129"), Some(&Value::from(129)));
    assert_eq!(map, db.load(G).unwrap().visible);
    assert_eq!(all_pending(&db)[0].base, 0);
}
