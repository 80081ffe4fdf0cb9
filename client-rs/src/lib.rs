//! # atomsync-client: the offline-first synced atom for native Rust apps
//!
//! A map of typed documents per *group* that reads and writes locally at memory speed,
//! survives restarts and network loss, and converges with every other client through an
//! Atomsync server (the contract: `PROTOCOL.md`).
//!
//! ```no_run
//! use atomsync_client::{Options, Store, kw, value};
//!
//! # async fn demo() -> Result<(), atomsync_client::ClientError> {
//! let store = Store::open("my-app.db")?;
//! let todos = store.synced_atom("todo", Options::new("http://localhost:8090/sync").token("abc123"))?;
//! todos.ready().await;
//! todos.swap(|m| {
//!     m.insert("todo:1".into(), value!({"text": "Buy milk", "tags": #{kw!("groceries")}}));
//! })?;
//! let snapshot = todos.snapshot();
//! let _guard = todos.watch(|_old, new| println!("{} todos", new.len()));
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! - [`Store`] (`store`): the local SQLite file, the atoms opened on it, the engine.
//! - [`SyncedAtom`] (`atom`): the application's handle: snapshot, swap, watch, status.
//! - `group`: one group's shared state: the map (a persistent [`Map`], so that a change
//!   costs O(log n), not a copy of the group), the status, the write lock that orders
//!   local and remote changes across memory and disk.
//! - `local`: the SQLite schema and every SQL statement: documents as the server last
//!   sent them, pending local changes folded per key, epoch and cursor.
//! - `engine`: the background task: one connection per server URL and token, live over
//!   the WebSocket, HTTP polling as the fallback, reconnecting with backoff.
//! - `watchers`: callbacks and their in-order delivery.
//! - [`Options`], [`Status`], [`ClientError`].
//!
//! ## How a write travels
//!
//! 1. `swap` computes the new map, writes the changed keys as pending changes in one
//!    SQLite transaction, publishes the map, runs watchers and wakes the engine.
//! 2. The engine pushes pending changes folded per key, each with `base` = the server
//!    version it was made on. An accepted change records its new version; a conflict
//!    takes the server's value unless the [`Resolver`] answers a value to push instead.
//! 3. Remote changes (WebSocket `changes` frames, or pull pages) are stored with the
//!    cursor in one transaction, on a blocking thread while the socket is read on; frames
//!    that arrive meanwhile are stored together, as one new map (so a watcher may get
//!    several changes in one call). A key with a pending change keeps its local value
//!    until that change is settled.
#![forbid(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms)]

mod atom;
mod engine;
mod error;
mod group;
mod local;
mod options;
mod status;
mod store;
mod tls;
mod watchers;

pub use atom::SyncedAtom;
pub use atomsync_proto::serde_value::SerdeError;
pub use atomsync_proto::{Inst, Value, from_value, kw, to_value, value};
pub use error::ClientError;
/// One difference between two versions of a [`Map`], as `old.diff(&new)` yields them:
/// what a watcher needs to know what changed, found in O(changes × log n) because the
/// versions share every node the change did not touch.
pub use imbl::ordmap::DiffItem;
pub use options::{Options, Resolver};
pub use status::{Connection, Status};
pub use store::Store;
pub use tls::RootCertificate;
pub use watchers::WatchGuard;

/// The map a synced atom holds: document key to value, in key order.
///
/// A persistent (immutable, structurally shared) ordered map, [`imbl::OrdMap`]: a
/// B-tree whose nodes are shared between versions, in the manner of Clojure's maps.
/// Cloning it is O(1), changing one key of a copy copies only the path to that key
/// (O(log n)), and the differences between two versions are found by skipping the
/// subtrees they share. So a `swap` of one key costs the same on a map of ten
/// documents and on one of a million, and every version handed to a watcher or kept by
/// [`SyncedAtom::snapshot`] stays valid for free.
///
/// Its API is `BTreeMap`'s for the common calls (`get`, `insert`, `remove`, `len`,
/// `iter`, `keys`, `values`, `contains_key`, `range`, `entry`, `get_mut`, `extend`,
/// `FromIterator`, equality); see [`imbl::OrdMap`] for the rest (`update`, `without`,
/// `union`, `diff`, ...).
pub type Map = imbl::OrdMap<String, Value>;
