//! The native client (`atomsync-client`) end to end: real client stores in temporary
//! folders against the real server binary. Here the eight flows every Atomsync client must
//! pass; in [`extra`] offline restarts, a merging resolver, an epoch change, live
//! propagation over the WebSocket, the HTTP polling fallback and auth errors. Every test uses its own groups and
//! bounded waits.

mod extra;
mod large;
pub mod no_ws_proxy;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use atomsync_client::{Connection, Options, Store, SyncedAtom, Value, kw, value};

use crate::common::TestServer;

/// How long a test waits for a condition: long enough for a reconnect after a server
/// restart (backoff caps at 5 s) on a loaded machine.
const WAIT: Duration = Duration::from_secs(20);

/// One client application: a store in its own temporary folder.
pub struct Client {
    dir: tempfile::TempDir,
    store: Store,
}

impl Client {
    pub fn new() -> Client {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path().join("client.db")).expect("open store");
        Client { dir, store }
    }

    /// The store file.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("client.db")
    }

    /// The synced atom of `group` on `server`, auth off.
    pub fn atom(&self, server: &TestServer, group: &str) -> SyncedAtom {
        self.atom_with(group, options(server))
    }

    pub fn atom_with(&self, group: &str, options: Options) -> SyncedAtom {
        self.store.synced_atom(group, options).expect("synced atom")
    }

    /// Closes the store and opens its file again: what a process restart does.
    pub async fn restart(self) -> Client {
        self.store.close().await;
        let store = Store::open(self.path()).expect("reopen store");
        Client {
            dir: self.dir,
            store,
        }
    }
}

pub fn options(server: &TestServer) -> Options {
    Options::new(server.url("/sync"))
}

/// Polls `condition` until it holds, failing the test after [`WAIT`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the atom is live over the WebSocket with nothing pending.
pub async fn in_sync(atom: &SyncedAtom) {
    eventually(&format!("{} in sync", atom.group()), || {
        let status = atom.status();
        status.in_sync() && status.connection == Connection::Live
    })
    .await;
}

/// Stops the server without blocking the runtime's other worker.
pub fn stop(server: &mut TestServer) {
    tokio::task::block_in_place(|| {
        server.stop();
    });
}

pub fn restart(server: &mut TestServer) {
    tokio::task::block_in_place(|| server.restart());
}

/// Flow 1: both clients write the same key; they converge on one value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_writing_one_key_converge() {
    let server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let (atom_a, atom_b) = (a.atom(&server, "c1-conv"), b.atom(&server, "c1-conv"));
    atom_a.ready().await;
    atom_b.ready().await;
    for round in 0..5 {
        atom_a
            .assoc("k", value!({"by": "a", "round": round}))
            .unwrap();
        atom_b
            .assoc("k", value!({"by": "b", "round": round}))
            .unwrap();
        eventually("one value on both", || {
            atom_a.status().in_sync()
                && atom_b.status().in_sync()
                && atom_a.get("k") == atom_b.get("k")
        })
        .await;
        let winner = atom_a.get("k").unwrap();
        assert_eq!(winner.get("round"), Some(&Value::from(round)), "{winner}");
    }
}

/// Flow 2: a delete reaches the other client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_propagates() {
    let server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let (atom_a, atom_b) = (a.atom(&server, "c2-delete"), b.atom(&server, "c2-delete"));
    atom_a.assoc("doomed", "soon gone").unwrap();
    atom_a.assoc("kept", 1).unwrap();
    eventually("b has both keys", || atom_b.snapshot().len() == 2).await;
    atom_a.dissoc("doomed").unwrap();
    eventually("b lost the deleted key", || atom_b.get("doomed").is_none()).await;
    assert_eq!(atom_b.get("kept"), Some(Value::from(1)));
    // A re-create continues from the tombstone's version and propagates too.
    atom_b.assoc("doomed", "back").unwrap();
    eventually("a sees the re-create", || {
        atom_a.get("doomed") == Some(Value::from("back"))
    })
    .await;
}

/// Flow 3: an update reaches the other client, with its types intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_propagates_with_its_types() {
    let server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let (atom_a, atom_b) = (a.atom(&server, "c3-update"), b.atom(&server, "c3-update"));
    atom_a
        .assoc("todo:1", value!({"text": "Buy milk", "done": false}))
        .unwrap();
    eventually("b has todo:1", || atom_b.get("todo:1").is_some()).await;
    let uuid = Value::uuid(*b"0123456789abcdef");
    let updated = value!({
        "text": "Buy oat milk",
        "done": true,
        "tags": #{kw!("groceries"), kw!("shop/food")},
        "id": uuid,
        "at": Value::Inst(atomsync_client::Inst::new(1_790_000_000, 123_000_000).unwrap()),
        "blob": Value::bytes(vec![0u8, 255]),
    });
    atom_a.assoc("todo:1", updated.clone()).unwrap();
    eventually("b has the update", || {
        atom_b.get("todo:1") == Some(updated.clone())
    })
    .await;
    let tags = atom_b
        .get("todo:1")
        .and_then(|todo| todo.get("tags").cloned());
    assert!(
        matches!(tags, Some(Value::Set(_))),
        "a set stays a set: {tags:?}"
    );
}

/// Flow 4: the map survives dropping the store and opening it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_persists_across_client_restarts() {
    let server = TestServer::start();
    let client = Client::new();
    let atom = client.atom(&server, "c4-persist");
    atom.swap(|m| {
        for i in 0..10 {
            m.insert(format!("doc:{i}"), value!({"n": i, "tags": #{kw!("t")}}));
        }
    })
    .unwrap();
    in_sync(&atom).await;
    // The push's answer settles the ten changes; the cursor moves when their echo (a
    // `changes` frame, in no set order with the answer) is stored. Ten changes into a new
    // group: seq 10.
    eventually("the echo of the ten changes stored", || {
        atom.status().cursor == 10
    })
    .await;
    let before = atom.snapshot();
    let cursor = atom.status().cursor;
    drop(atom);
    let client = client.restart().await;
    let atom = client.atom(&server, "c4-persist");
    // Loaded from disk, before any sync.
    assert_eq!(*atom.snapshot(), *before);
    assert_eq!(atom.status().cursor, cursor);
    in_sync(&atom).await;
    assert_eq!(*atom.snapshot(), *before);
}

/// Flow 5: a fresh client pulls everything the server has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_client_pulls_everything() {
    let server = TestServer::start();
    let writer = Client::new();
    let atom = writer.atom(&server, "c5-fresh");
    atom.swap(|m| {
        for i in 0..30 {
            m.insert(format!("doc:{i}"), Value::from(i));
        }
    })
    .unwrap();
    atom.dissoc("doc:7").unwrap();
    in_sync(&atom).await;
    let fresh = Client::new();
    let copy = fresh.atom(&server, "c5-fresh");
    copy.ready().await;
    assert!(copy.status().online(), "{:?}", copy.status());
    assert_eq!(*copy.snapshot(), *atom.snapshot());
    assert_eq!(copy.snapshot().len(), 29);
}

/// Flow 6: 50 documents written at once sync both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_50_syncs_both_ways() {
    let server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let (atom_a, atom_b) = (a.atom(&server, "c6-batch"), b.atom(&server, "c6-batch"));
    atom_a.ready().await;
    atom_b.ready().await;
    atom_a
        .swap(|m| {
            for i in 0..50 {
                m.insert(format!("a:{i}"), value!({"from": "a", "i": i}));
            }
        })
        .unwrap();
    atom_b
        .swap(|m| {
            for i in 0..50 {
                m.insert(format!("b:{i}"), value!({"from": "b", "i": i}));
            }
        })
        .unwrap();
    eventually("100 documents on both", || {
        atom_a.snapshot().len() == 100 && atom_b.snapshot().len() == 100
    })
    .await;
    in_sync(&atom_a).await;
    in_sync(&atom_b).await;
    assert_eq!(*atom_a.snapshot(), *atom_b.snapshot());
}

/// Flow 7: changes written while the server is down arrive once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_changes_survive_a_server_restart() {
    let mut server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let (atom_a, atom_b) = (a.atom(&server, "c7-restart"), b.atom(&server, "c7-restart"));
    in_sync(&atom_a).await;
    in_sync(&atom_b).await;
    stop(&mut server);
    eventually("a offline", || !atom_a.status().online()).await;
    for i in 0..5 {
        atom_a.assoc(format!("offline:{i}"), i).unwrap();
    }
    assert_eq!(atom_a.status().pending, 5);
    assert_eq!(atom_a.snapshot().len(), 5, "local writes apply at once");
    restart(&mut server);
    eventually("b has the offline writes", || atom_b.snapshot().len() == 5).await;
    in_sync(&atom_a).await;
    assert_eq!(*atom_a.snapshot(), *atom_b.snapshot());
}

/// Flow 8: groups are isolated, also when they share a store and a connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_are_isolated() {
    let server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let (one_a, two_a) = (a.atom(&server, "c8-one"), a.atom(&server, "c8-two"));
    let (one_b, two_b) = (b.atom(&server, "c8-one"), b.atom(&server, "c8-two"));
    one_a.assoc("shared-key", "in one").unwrap();
    two_b.assoc("shared-key", "in two").unwrap();
    two_b.assoc("only-two", true).unwrap();
    eventually("each group converged", || {
        one_b.get("shared-key") == Some(Value::from("in one"))
            && two_a.get("shared-key") == Some(Value::from("in two"))
            && two_a.get("only-two").is_some()
    })
    .await;
    for atom in [&one_a, &one_b, &two_a, &two_b] {
        in_sync(atom).await;
    }
    assert_eq!(one_a.snapshot().len(), 1);
    assert_eq!(one_b.snapshot().len(), 1);
    assert_eq!(two_a.snapshot().len(), 2);
    assert_eq!(one_a.get("shared-key"), Some(Value::from("in one")));
    assert_eq!(two_b.get("shared-key"), Some(Value::from("in two")));
}
