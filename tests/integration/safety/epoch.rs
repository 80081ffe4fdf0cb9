//! A database that goes back in time gets a new epoch before it is served (PROTOCOL.md
//! section 1), however it went back: an online copy put back by hand, after a clean stop
//! or a SIGKILL; a copy made by `atomsync-server backup` moved in on a machine with no
//! state file; `atomsync-server restore`. In every case no (epoch, group, seq) names two
//! different writes.

use std::collections::HashMap;
use std::path::Path;

use atomsync_proto::Value;

use super::{pull_all, push};
use crate::common::{TestServer, sqlite_only};

/// (epoch, seq) → key of every document a client pulled: two different keys for one pair
/// is the fault this file guards against.
#[derive(Default)]
pub struct Seen(HashMap<(String, u64), String>);

impl Seen {
    /// Pulls all of `group` from `server`, checking every (epoch, seq); the epoch.
    pub async fn pull(&mut self, server: &TestServer, group: &str) -> String {
        let (docs, last) = pull_all(server, group, 0).await;
        for doc in docs {
            let key = (last.epoch.clone(), doc.seq);
            if let Some(before) = self.0.insert(key.clone(), doc.key.clone()) {
                assert_eq!(before, doc.key, "{key:?} names two writes");
            }
        }
        last.epoch
    }
}

/// Creates `keys` in `group`; their seqs.
pub async fn put(server: &TestServer, group: &str, keys: &[&str]) -> Vec<u64> {
    let changes: Vec<_> = keys
        .iter()
        .map(|k| (*k, 0, Some(Value::from(*k))))
        .collect();
    push(server, group, &changes)
        .await
        .results
        .iter()
        .map(|r| match r {
            atomsync_proto::wire::PushResult::Accepted { seq, .. } => *seq,
            other => panic!("{other:?}"),
        })
        .collect()
}

/// SQLite's online backup of the live database, as the report made it.
fn online_copy(db: &Path, out: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.backup(rusqlite::MAIN_DB, out, None).unwrap();
}

/// Puts `copy` at the database's path, as an operator would by hand, WAL files removed.
fn put_back(server: &TestServer, copy: &Path) {
    let db = server.db_path();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::copy(copy, &db).unwrap();
}

/// Fault 1 of issue 11, step by step, after a clean stop and after a SIGKILL.
#[tokio::test]
async fn a_copy_put_back_by_hand_gets_a_new_epoch_and_no_seq_names_two_writes() {
    if sqlite_only("copies the SQLite file by hand; PostgreSQL's restores are in scale::epoch") {
        return;
    }
    for kill in [false, true] {
        let mut server = TestServer::start();
        let mut seen = Seen::default();
        assert_eq!(put(&server, "g", &["k0", "k1", "k2"]).await, [1, 2, 3]);
        let copy = server.dir().join("copy.db");
        online_copy(&server.db_path(), &copy);
        assert_eq!(put(&server, "g", &["k3", "k4", "k5"]).await, [4, 5, 6]);
        let before = seen.pull(&server, "g").await;
        if kill {
            server.kill();
        } else {
            server.stop();
        }
        put_back(&server, &copy);
        server.restart();
        assert_eq!(put(&server, "g", &["x3", "x4", "x5"]).await, [4, 5, 6]);
        let after = seen.pull(&server, "g").await;
        assert_ne!(
            before, after,
            "kill: {kill}: the same epoch names k3 and x3"
        );
        assert!(
            server.log().contains("new epoch") && server.log().contains("went back in time"),
            "{}",
            server.log()
        );
        // A restart on the database as it is now keeps its epoch.
        server.stop();
        server.restart();
        assert_eq!(seen.pull(&server, "g").await, after);
    }
}

/// A copy made by `atomsync-server backup` is stamped: moved in by hand, even where no
/// state file knows the database (another machine), it gets a new epoch.
#[tokio::test]
async fn a_backup_moved_in_by_hand_gets_a_new_epoch_even_without_a_state_file() {
    if sqlite_only(
        "`atomsync-server backup` copies SQLite files (it refuses PostgreSQL: scale::epoch)",
    ) {
        return;
    }
    let mut server = TestServer::start();
    let mut seen = Seen::default();
    put(&server, "g", &["a", "b"]).await;
    let copy = server.dir().join("nightly.db");
    let out = server.command(&["backup", "--out", copy.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("backed up") && said.contains("2 documents"),
        "{said}"
    );
    let before = seen.pull(&server, "g").await;
    server.stop();
    std::fs::remove_file(server.dir().join("atomsync.db.state")).unwrap();
    put_back(&server, &copy);
    server.restart();
    assert_eq!(put(&server, "g", &["c"]).await, [3]);
    let after = seen.pull(&server, "g").await;
    assert_ne!(before, after);
    assert!(
        server.log().contains("atomsync-server backup"),
        "{}",
        server.log()
    );
}

/// `restore` refuses while the server runs, then installs the backup with a new epoch and
/// says so; the replaced database is kept.
#[tokio::test]
async fn restore_installs_a_backup_with_a_new_epoch_and_says_so() {
    if sqlite_only(
        "`atomsync-server restore` installs SQLite files (it refuses PostgreSQL: scale::epoch)",
    ) {
        return;
    }
    let mut server = TestServer::start();
    let mut seen = Seen::default();
    put(&server, "g", &["k0", "k1", "k2"]).await;
    let copy = server.dir().join("b.db");
    assert!(
        server
            .command(&["backup", "--out", copy.to_str().unwrap()])
            .status
            .success()
    );
    put(&server, "g", &["k3", "k4", "k5"]).await;
    let before = seen.pull(&server, "g").await;

    let refused = server.command(&["restore", "--from", copy.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(err.contains("stop it first"), "{err}");

    server.stop();
    let done = server.command(&["restore", "--from", copy.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&done.stdout);
    assert!(
        done.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        said.contains("new epoch") && said.contains("kept as"),
        "{said}"
    );
    assert!(server.dir().join("atomsync.db.before-restore").exists());
    server.restart();
    assert_eq!(put(&server, "g", &["x3", "x4", "x5"]).await, [4, 5, 6]);
    let after = seen.pull(&server, "g").await;
    assert_ne!(before, after);
    assert!(
        said.contains(&after),
        "the epoch it printed is the one served: {said}"
    );
    assert!(
        !server.log().contains("went back in time"),
        "restore already renewed it"
    );
}

/// The state file is the server's lock: a second server on the same database stops.
#[tokio::test]
async fn a_second_server_on_the_same_database_is_refused() {
    if sqlite_only(
        "the state file locks an SQLite file; several servers share one PostgreSQL by design",
    ) {
        return;
    }
    let server = TestServer::start();
    let config = server.dir().join("second.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndb = {:?}\n",
            server.db_path().display().to_string()
        ),
    )
    .unwrap();
    let out = crate::common::run_server_binary(&config, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("held by another process"), "{err}");
}
