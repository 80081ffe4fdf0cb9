//! Storage: where every group's documents live, behind one interface, and the only place
//! where a database is spoken to (no SQL, no driver type outside this module).
//!
//! [`Storage`] is all the rest of the server sees: the push path, the group actors, HTTP
//! and WebSocket call it without knowing which database engine is underneath. Two backends:
//!
//! - [`sqlite`] (the default): one file in WAL mode; reads on a pool of read connections,
//!   on the blocking pool; every write on one writer thread that commits whatever is
//!   queued, from every group, in one transaction, a savepoint per push (group commit: one
//!   fsync for many requests, and never `SQLITE_BUSY` between groups).
//! - [`postgres`]: one database shared by any number of server instances; pooled async
//!   connections on a runtime of its own; per group one transaction at a time, which locks
//!   the group's row (the instances serialize there) and `NOTIFY`s its commit; a listening
//!   connection hears the other instances' commits.
//!
//! ## The interface
//!
//! - **Writes.** [`Storage::push`] hands a validated push to the backend *when it is
//!   called* and returns a [`PushTicket`], a future that resolves once the push is durable:
//!   nothing is acknowledged before. Handing over at call time is what keeps a WebSocket
//!   connection's pipelined pushes in the order they came. The backend serializes each
//!   group's version checks and `seq`s (SQLite: its single writer thread; PostgreSQL: a
//!   lock on the group's row, held by one transaction of one instance at a time).
//! - **Commits.** Once durable, every push that accepted a change is handed as a
//!   [`Committed`] to the [`CommitSink`] (the group actors' registry), each group's in `seq`
//!   order, before the pusher hears its outcome. A `Committed` whose documents do not start
//!   right after the last seq its group actor streamed, or that carries none (another
//!   writer's commit, known only by its `seq`), tells the actor to read the documents it
//!   misses from storage: the actor never relies on seeing every commit itself. A backend
//!   that can miss other writers' notices (PostgreSQL, while its listening connection is
//!   down) asks for the [`StreamedGroups`] and sends each a notice with its current seq.
//! - **Reads.** [`pull`](Storage::pull) and [`pull_then`](Storage::pull_then) (a page in
//!   `seq` order, one consistent snapshot), [`group_seq`](Storage::group_seq),
//!   [`health`](Storage::health); the [`epoch`](Storage::epoch) is known from opening.
//!
//! ## Why an enum of backends, with async reads and ticketed writes
//!
//! The PostgreSQL drivers that fit an async server (tokio-postgres, pooled by
//! deadpool-postgres) are asynchronous: a query is a future, and no thread waits for it. An
//! interface of blocking calls (hand out a connection; `fn pull(..) -> PullPage`) would put
//! such a backend on blocking threads, one per query in flight. So every read here is an
//! `async fn` and a write is a submission that returns a future; SQLite's blocking calls
//! become futures inside its backend (the blocking pool for reads, the writer thread for
//! writes), where they belong.
//!
//! The backends are an `enum`, not a `dyn` trait: the set is closed (the server ships them
//! all), an enum dispatches statically with no boxed future per call (an `async fn` in a
//! trait cannot be called through `dyn` without boxing every future), and the push path's
//! futures keep their concrete types. A backend is a module with the same methods, one
//! variant of `Backend` and one arm per method below.

pub mod browse;
mod error;
pub mod postgres;
#[cfg(test)]
mod push_tests;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod testing;
mod ticket;

use std::path::Path;
use std::sync::Arc;

use atomsync_proto::wire::{Change, Doc, PushResult};

pub use browse::{GroupStats, KeyPage, KeyRange};
pub use error::StorageError;
pub use ticket::PushTicket;

use crate::config::{Database, Durability, ServerConfig};

/// What a push did: one result per change, and the group's seq after it.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    /// One result per change, in request order.
    pub results: Vec<PushResult>,
    /// The group's sequence right after this push.
    pub seq: u64,
}

/// A durable commit of one group, handed to the [`CommitSink`] for streaming.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The group.
    pub group: Arc<str>,
    /// The accepted documents, ascending by seq: they took the group's seqs
    /// `seq - docs.len() + 1 ..= seq`, with no gap. Empty for a commit known only by its seq
    /// (another writer's): the documents are read from storage.
    pub docs: Vec<Doc>,
    /// The group's sequence after this commit.
    pub seq: u64,
}

impl Committed {
    /// The group's sequence before this commit's documents: they come right after it.
    pub fn after(&self) -> u64 {
        self.seq.saturating_sub(self.docs.len() as u64)
    }
}

/// Where commits go once durable: called once per commit that accepted a change, each
/// group's in `seq` order, before the pusher hears its outcome (so streaming starts at
/// once). It runs on a backend's own thread or task, between commits: it must only hand the
/// commit on, never block.
pub type CommitSink = Arc<dyn Fn(Committed) + Send + Sync>;

/// The groups whose commits the sink streams (those with a group actor). A backend that may
/// have missed other writers' commits (PostgreSQL, after its listening connection was
/// down) calls it and sends each group a notice with its current seq. It must not block.
pub type StreamedGroups = Arc<dyn Fn() -> Vec<Arc<str>> + Send + Sync>;

/// One page of a pull or a catch-up.
#[derive(Debug, Clone, PartialEq)]
pub struct PullPage {
    /// Documents with `since < seq <= upto`, ascending by seq, at most `limit`.
    pub docs: Vec<Doc>,
    /// The cursor after this page: the last doc's seq, or `since` (0 after a reset).
    pub seq: u64,
    /// More documents remain after `seq` (up to `upto`).
    pub more: bool,
    /// `since` was below the floor, so the page starts from 0.
    pub reset: bool,
}

/// The opened database, whichever engine it is. Cheap to clone; every clone is the same
/// database, writer and pool.
#[derive(Clone)]
pub struct Storage {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct("Storage");
        match &self.backend {
            Backend::Sqlite(db) => s.field("sqlite", &db.path()),
            Backend::Postgres(db) => s.field("postgres", &db.shown()),
        };
        s.field("epoch", &self.epoch()).finish()
    }
}

impl Storage {
    /// Opens the database `server` names (an SQLite file, created when missing; or a
    /// PostgreSQL database, which must exist), migrates it, and starts what writes to it.
    /// The epoch is created with the database and never changes after.
    pub async fn open(server: &ServerConfig) -> Result<Storage, StorageError> {
        let (durability, pool_size) = (server.durability, server.pool_size);
        match server.database() {
            Database::Sqlite(path) => {
                let path = path.to_owned();
                tokio::task::spawn_blocking(move || {
                    Storage::open_sqlite(&path, durability, pool_size)
                })
                .await
                .map_err(StorageError::task)?
            }
            Database::Postgres(url) => {
                Storage::open_postgres(url, durability, pool_size, server.max_body_bytes).await
            }
        }
    }

    /// Connects to the PostgreSQL database at `url` (which must exist) with `pool_size`
    /// pooled connections and one listening connection, migrates it, and starts listening
    /// for other instances' commits. A pull's page holds about `page_bytes` of keys and
    /// values at most (at least one document).
    pub async fn open_postgres(
        url: &str,
        durability: Durability,
        pool_size: u32,
        page_bytes: usize,
    ) -> Result<Storage, StorageError> {
        Ok(Storage {
            backend: Backend::Postgres(
                postgres::Postgres::open(url, durability, pool_size, page_bytes).await?,
            ),
        })
    }

    /// Opens (creating when missing) the SQLite database at `path` with `pool_size` read
    /// connections, migrates it and starts its writer thread. Blocking.
    pub fn open_sqlite(
        path: &Path,
        durability: Durability,
        pool_size: u32,
    ) -> Result<Storage, StorageError> {
        Ok(Storage {
            backend: Backend::Sqlite(sqlite::Sqlite::open(path, durability, pool_size)?),
        })
    }

    /// The database's epoch.
    pub fn epoch(&self) -> &str {
        match &self.backend {
            Backend::Sqlite(db) => db.epoch(),
            Backend::Postgres(db) => db.epoch(),
        }
    }

    /// The shared epoch, cheap to clone into responses.
    pub fn epoch_arc(&self) -> Arc<str> {
        match &self.backend {
            Backend::Sqlite(db) => db.epoch().clone(),
            Backend::Postgres(db) => db.epoch().clone(),
        }
    }

    /// Sends every later commit to `sink`, replacing the sink before, if any.
    pub fn set_commit_sink(&self, sink: CommitSink) {
        match &self.backend {
            Backend::Sqlite(db) => db.set_commit_sink(sink),
            Backend::Postgres(db) => db.set_commit_sink(sink),
        }
    }

    /// Tells the backend which groups the sink streams, for when it must re-read their
    /// seqs (see [`StreamedGroups`]); replaces the one before, if any.
    pub fn set_streamed_groups(&self, groups: StreamedGroups) {
        match &self.backend {
            // One writer hands over every commit: nothing is ever missed.
            Backend::Sqlite(_) => drop(groups),
            Backend::Postgres(db) => db.set_streamed_groups(groups),
        }
    }

    /// Hands a validated push of `changes` to `group` to the backend now; the ticket
    /// resolves with its outcome once it is durable. Each change is accepted iff its base
    /// is the key's current version (0 when never written); a failed push applied nothing.
    pub fn push(&self, group: Arc<str>, changes: Vec<Change>) -> PushTicket {
        match &self.backend {
            Backend::Sqlite(db) => db.push(group, changes),
            Backend::Postgres(db) => db.push(group, changes),
        }
    }

    /// Documents of `group` with `since < seq <= upto`, ascending by seq, at most `limit`,
    /// in one consistent snapshot. A `since` below the group's floor reads from 0 and says
    /// `reset`. A group never written has an empty page.
    pub async fn pull(
        &self,
        group: Arc<str>,
        since: u64,
        limit: usize,
        upto: u64,
    ) -> Result<PullPage, StorageError> {
        self.pull_then(group, since, limit, upto, |page| page).await
    }

    /// [`pull`](Storage::pull), then `then` on the page where it was read (for SQLite, the
    /// blocking thread), so that heavy work on a page, such as encoding it, stays off the
    /// event loop.
    pub async fn pull_then<T, F>(
        &self,
        group: Arc<str>,
        since: u64,
        limit: usize,
        upto: u64,
        then: F,
    ) -> Result<T, StorageError>
    where
        F: FnOnce(PullPage) -> T + Send + 'static,
        T: Send + 'static,
    {
        match &self.backend {
            Backend::Sqlite(db) => db.pull_then(group, since, limit, upto, then).await,
            Backend::Postgres(db) => db.pull_then(group, since, limit, upto, then).await,
        }
    }

    /// The group's current sequence (0 for a group never written).
    pub async fn group_seq(&self, group: Arc<str>) -> Result<u64, StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.group_seq(group).await,
            Backend::Postgres(db) => db.group_seq(group).await,
        }
    }

    /// One page of groups for operators: names after `after` (exclusive), ascending in
    /// byte order, at most `limit`, each with its counts; and whether more follow. One
    /// consistent snapshot.
    pub async fn groups(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<GroupStats>, bool), StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.groups(after, limit).await,
            Backend::Postgres(db) => db.groups(after, limit).await,
        }
    }

    /// One group's summary; `None` when it has never been written.
    pub async fn group_stats(&self, group: Arc<str>) -> Result<Option<GroupStats>, StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.group_stats(group).await,
            Backend::Postgres(db) => db.group_stats(group).await,
        }
    }

    /// The document `key` of `group` at its latest state (a tombstone has no value);
    /// `None` when it was never written.
    pub async fn doc(&self, group: Arc<str>, key: String) -> Result<Option<Doc>, StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.doc(group, key).await,
            Backend::Postgres(db) => db.doc(group, key).await,
        }
    }

    /// Documents of `group` in key order, as `range` says, in one snapshot; `None` when
    /// the group has never been written.
    pub async fn docs_by_key(
        &self,
        group: Arc<str>,
        range: KeyRange,
    ) -> Result<Option<KeyPage>, StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.docs_by_key(group, range).await,
            Backend::Postgres(db) => db.docs_by_key(group, range).await,
        }
    }

    /// Answers when the database can be read and its writer runs.
    pub async fn health(&self) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.health().await,
            Backend::Postgres(db) => db.health().await,
        }
    }

    /// Commits what was handed over so far, then stops writing: later pushes fail with
    /// [`StorageError::WriterGone`]. Reads keep working until the last clone is dropped.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(db) => db.close().await,
            Backend::Postgres(db) => db.close().await,
        }
    }
}

/// 128 random bits, hex: a new epoch, unique per database, so that a restored or replaced
/// database is noticed.
pub(crate) fn new_epoch() -> Result<String, StorageError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| StorageError::Incompatible(format!("no randomness for the epoch: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
