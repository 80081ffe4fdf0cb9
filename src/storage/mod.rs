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
//! - **Reads.** [`pull_into`](Storage::pull_into) (a page in `seq` order, one consistent
//!   snapshot, each document handed to a [`PageSink`] as it is read, so that a page is
//!   encoded as it is read and bounded in bytes) and [`pull`](Storage::pull) (the same,
//!   collected), [`group_seq`](Storage::group_seq), [`health`](Storage::health); the
//!   [`epoch`](Storage::epoch) is known from opening.
//! - **Compaction** (PROTOCOL.md section 8). [`compact`](Storage::compact) removes the
//!   tombstones written before a time and raises each group's floor to the highest seq it
//!   removed; a read from below the floor (and not `full`) starts again from 0 (`reset`).
//! - **Safety at open** (PROTOCOL.md section 1). Opening refuses a database that is not an
//!   Atomsync database, leaving it untouched, and gives a database that went back in time
//!   a new epoch before anything is served. SQLite: the [`lineage`] state file (also the
//!   lock against a second server); while the server runs, a database file deleted or
//!   replaced at its path makes every request fail with [`StorageError::Lost`] (503) until
//!   a restart. PostgreSQL: see its module, "Epochs".
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
//!

pub mod browse;
mod error;
pub mod lineage;
mod page;
pub mod postgres;
#[cfg(test)]
mod push_tests;
pub mod sqlite;
#[cfg(test)]
pub(crate) mod testing;
mod ticket;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use atomsync_proto::wire::{Change, Doc, PushResult};

pub use browse::{GroupStats, KeyPage, KeyRange};
pub use error::StorageError;
use page::Collect;
pub use page::{PageEnd, PageQuery, PageSink, PullPage};
pub use ticket::PushTicket;

use crate::config::{Database, Durability, ServerConfig};

/// What a push did: one result per change, and the group's seq after it, under which epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    /// One result per change, in request order.
    pub results: Vec<PushResult>,
    /// The group's sequence right after this push.
    pub seq: u64,
    /// The database's epoch the push was committed under (on PostgreSQL, read inside its
    /// transaction): the answer names it, so that its seqs are never named with another.
    pub epoch: Arc<str>,
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
    /// Not a commit but word that the database's epoch changed (it went back in time, and
    /// this server or another gave it a new epoch): `seq` is the group's sequence under the
    /// new epoch and `docs` is empty. Every subscription of the group must end (1013), so
    /// that its client subscribes again and learns the new epoch; the actor streams from
    /// `seq` on.
    pub epoch_changed: bool,
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

/// What a compaction removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Tombstones removed.
    pub tombstones: u64,
    /// Groups whose floor rose.
    pub groups: u64,
}

/// How to open a database.
#[derive(Clone)]
pub struct OpenOptions {
    /// The SQLite database file, or a PostgreSQL URL (see [`OpenOptions::database`]).
    pub db: PathBuf,
    /// How hard a commit is pushed to disk before it is acknowledged.
    pub durability: Durability,
    /// Connections: SQLite's read connections; PostgreSQL's pooled connections (reads and
    /// writes; one more listens).
    pub pool_size: u32,
    /// The [`lineage`] state file. SQLite: also the lock that keeps a second server or an
    /// offline command away; `None` only for tests and tools that open a database beside
    /// a running server. PostgreSQL: this instance's own record of how far it saw the
    /// shared database (optional; see the backend's "Epochs").
    pub state_file: Option<PathBuf>,
    /// The most bytes of conflicting documents (`current`) one push answers with: a push
    /// whose conflicts would carry more is refused whole (413), applying nothing.
    pub max_answer_bytes: usize,
}

impl std::fmt::Debug for OpenOptions {
    // Hand-written so that a PostgreSQL password in `db` never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOptions")
            .field("db", &self.database().redacted())
            .field("durability", &self.durability)
            .field("pool_size", &self.pool_size)
            .field("state_file", &self.state_file)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .finish()
    }
}

impl OpenOptions {
    /// The options of the server's config: its database, its state file (SQLite: by
    /// default beside the database; PostgreSQL: only when configured), its body limit as
    /// the bound of an answer.
    pub fn from_config(server: &ServerConfig) -> OpenOptions {
        let state_file = match server.database() {
            Database::Sqlite(db) => Some(
                server
                    .state_file
                    .clone()
                    .unwrap_or_else(|| lineage::Lineage::default_path(db)),
            ),
            Database::Postgres(_) => server.state_file.clone(),
        };
        OpenOptions {
            db: server.db.clone(),
            durability: server.durability,
            pool_size: server.pool_size,
            state_file,
            max_answer_bytes: server.max_body_bytes,
        }
    }

    /// Which database `db` names: a PostgreSQL URL, or an SQLite file.
    pub fn database(&self) -> Database<'_> {
        Database::of(&self.db)
    }

    /// The database at `db` with the default settings and no state file.
    pub fn without_lineage(db: &Path, durability: Durability, pool_size: u32) -> OpenOptions {
        let defaults = ServerConfig::default();
        OpenOptions {
            db: db.to_owned(),
            durability,
            pool_size,
            state_file: None,
            max_answer_bytes: defaults.max_body_bytes,
        }
    }
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
    /// PostgreSQL database, which must exist), migrates it, and starts what writes to it,
    /// as [`Storage::open_options`] says.
    pub async fn open(server: &ServerConfig) -> Result<Storage, StorageError> {
        Storage::open_options(OpenOptions::from_config(server)).await
    }

    /// Opens the database `options` names: an SQLite file as [`Storage::open_with`] says (on
    /// the blocking pool), or a PostgreSQL database (which must exist): connects, migrates,
    /// settles the epoch (see the backend's "Epochs") and starts listening for the other
    /// instances' commits.
    pub async fn open_options(options: OpenOptions) -> Result<Storage, StorageError> {
        match options.database() {
            Database::Sqlite(_) => {
                tokio::task::spawn_blocking(move || Storage::open_with(&options))
                    .await
                    .map_err(StorageError::task)?
            }
            Database::Postgres(url) => Ok(Storage {
                backend: Backend::Postgres(postgres::Postgres::open(url, &options).await?),
            }),
        }
    }

    /// Opens the SQLite database (created when missing) and starts what writes to it.
    /// Blocking; a PostgreSQL URL is refused ([`StorageError::Incompatible`]: it opens with
    /// [`Storage::open_options`]).
    ///
    /// Refuses ([`StorageError::Foreign`]) a file that is not an Atomsync database, before
    /// writing anything to it. With a state file: fails when another process holds it, and
    /// gives a database that went back in time (or a backup copy put in place by hand) a
    /// new epoch, durably, before returning (see [`lineage`]). The epoch never changes after.
    pub fn open_with(options: &OpenOptions) -> Result<Storage, StorageError> {
        if let Database::Postgres(url) = options.database() {
            return Err(StorageError::Incompatible(format!(
                "{} is a PostgreSQL database: it opens with Storage::open_options",
                Database::Postgres(url).redacted()
            )));
        }
        Ok(Storage {
            backend: Backend::Sqlite(sqlite::Sqlite::open(options)?),
        })
    }

    /// Opens the SQLite database at `path` with `pool_size` read connections and no state
    /// file (see [`OpenOptions::without_lineage`]). Blocking.
    pub fn open_sqlite(
        path: &Path,
        durability: Durability,
        pool_size: u32,
    ) -> Result<Storage, StorageError> {
        Storage::open_with(&OpenOptions::without_lineage(path, durability, pool_size))
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
            Backend::Postgres(db) => db.epoch_arc(),
        }
    }

    /// Runs `f` on the SQLite writer's connection, between batches (tests only; false on
    /// PostgreSQL, which has no such connection).
    #[cfg(test)]
    pub(crate) fn on_writer_connection(
        &self,
        f: impl FnOnce(&rusqlite::Connection) + Send + 'static,
    ) -> bool {
        match &self.backend {
            Backend::Sqlite(db) => {
                db.on_writer_connection(f);
                true
            }
            Backend::Postgres(_) => false,
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
    /// A push whose conflicts would answer with more than the options' `max_answer_bytes`
    /// of current documents fails whole with [`StorageError::TooLarge`].
    pub fn push(&self, group: Arc<str>, changes: Vec<Change>) -> PushTicket {
        match &self.backend {
            Backend::Sqlite(db) => db.push(group, changes),
            Backend::Postgres(db) => db.push(group, changes),
        }
    }

    /// One page of `group` as `query` says, in one consistent snapshot, each document
    /// handed to `sink` as it is read; gives the sink back with how the page ended. A
    /// `since` below the group's floor (unless `full`) reads from 0 and says `reset`. A
    /// group never written has an empty page.
    pub async fn pull_into<S: PageSink>(
        &self,
        group: Arc<str>,
        query: PageQuery,
        sink: S,
    ) -> Result<(S, PageEnd), StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.pull_into(group, query, sink).await,
            Backend::Postgres(db) => db.pull_into(group, query, sink).await,
        }
    }

    /// [`pull_into`](Storage::pull_into), collected: at least one document when one
    /// remains, then as many as fit in about `max_bytes` of keys and values.
    pub async fn pull(
        &self,
        group: Arc<str>,
        query: PageQuery,
        max_bytes: usize,
    ) -> Result<PullPage, StorageError> {
        let (collected, end) = self
            .pull_into(group, query, Collect::new(max_bytes))
            .await?;
        Ok(PullPage {
            docs: collected.docs,
            seq: end.seq,
            more: end.more,
            reset: end.reset,
            floor: end.floor,
        })
    }

    /// The group's current sequence (0 for a group never written).
    pub async fn group_seq(&self, group: Arc<str>) -> Result<u64, StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.group_seq(group).await,
            Backend::Postgres(db) => db.group_seq(group).await,
        }
    }

    /// Removes every tombstone written before `before`, raising each group's floor to the
    /// highest seq it removed. Runs in short transactions between pushes, so writes go on
    /// meanwhile.
    pub async fn compact(&self, before: SystemTime) -> Result<Compacted, StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.compact(before).await,
            Backend::Postgres(db) => db.compact(before).await,
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
        Ok(self.doc_at(group, key).await?.0)
    }

    /// [`doc`](Storage::doc), with the epoch it was read under (on PostgreSQL, in the same
    /// snapshot): what an answer names its seq with.
    pub async fn doc_at(
        &self,
        group: Arc<str>,
        key: String,
    ) -> Result<(Option<Doc>, Arc<str>), StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.doc_at(group, key).await,
            Backend::Postgres(db) => db.doc_at(group, key).await,
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

    /// Answers when the database can be read, its writer runs, and the file at its path
    /// is still the one it opened ([`StorageError::Lost`] otherwise).
    pub async fn health(&self) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Sqlite(db) => db.health().await,
            Backend::Postgres(db) => db.health().await,
        }
    }

    /// Commits what was handed over so far, then stops writing: later pushes fail with
    /// [`StorageError::WriterGone`]. Syncs and releases the state file. Reads keep working
    /// until the last clone is dropped.
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
