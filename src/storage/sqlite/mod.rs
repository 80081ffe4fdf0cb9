//! The SQLite backend: one database file in WAL mode, a pool of readers, one writer thread.
//!
//! - [`schema`]: the tables and their migrations (`PRAGMA user_version`), and how a file is
//!   recognized as an Atomsync database before anything is written to it.
//! - `read`: pulls, catch-up pages and health checks, on pooled read connections.
//! - `apply`: one push applied inside the writer's transaction (version checks, seqs).
//! - [`writer`]: the single writer thread that version-checks and commits every push, and
//!   removes old tombstones (`compact`).
//! - `identity`: whether the file at the path is still the one opened.
//! - [`backup`]: consistent copies of a live database, and restoring one (the
//!   `atomsync-server backup` and `restore` commands).
//! - `admin`, `docs`: what operators' tools read (groups with counts, documents by key).
//!
//! In WAL mode readers never wait for the writer and the writer never waits for readers.
//! All writes go through *one* connection on *one* thread: SQLite allows one writer at a
//! time anyway, and a single writer means groups never fight over the write lock (no
//! `SQLITE_BUSY`), while the pushes that queue up behind a commit are batched into the next
//! transaction (group commit: one fsync for many requests). SQLite's calls block, so they
//! never run on an event loop: reads run on the blocking pool (`spawn_blocking`) with a
//! pooled connection, writes on the writer thread, and both answer through futures.

mod admin;
mod apply;
pub mod backup;
mod compact;
mod docs;
mod identity;
mod read;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use atomsync_proto::wire::Change;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use self::identity::FileIdentity;
use self::writer::Writer;
use super::browse::{GroupStats, KeyPage, KeyRange};
use super::lineage::{Lineage, Verdict};
use super::{
    CommitSink, Compacted, OpenOptions, PageEnd, PageQuery, PageSink, PushTicket, StorageError,
};
use crate::config::Durability;

/// A pool of read connections.
type Pool = r2d2::Pool<SqliteConnectionManager>;

/// How long a connection waits on a lock before it reports busy. Only a backup tool or
/// another process could hold it: within the server, the writer is alone.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a read waits for a pooled connection before it reports the pool exhausted.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// The opened database: its path, epoch, read pool and writer. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Sqlite {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    epoch: Arc<str>,
    pool: Pool,
    writer: Writer,
    identity: Arc<FileIdentity>,
}

impl Sqlite {
    /// Opens (creating when missing) the database `options` names, after checking that it
    /// is an Atomsync database (leaving any other file untouched); locks its state file
    /// and renews the epoch of a database that went back in time; migrates it, builds the
    /// read pool and starts the writer thread. Blocking.
    pub(crate) fn open(options: &OpenOptions) -> Result<Sqlite, StorageError> {
        let path = options.db.as_path();
        // Nothing is created, not even the state file, beside what is not ours.
        schema::inspect(path).map_err(|e| match e {
            StorageError::Foreign(why) => StorageError::Foreign(format!(
                "{why}; Atomsync leaves it untouched: point the config's db at another path"
            )),
            e => e,
        })?;
        // Then the lock: a second server must not even migrate a database in use.
        let mut lineage = options
            .state_file
            .as_deref()
            .map(Lineage::open)
            .transpose()?;
        let conn = Connection::open(path)?;
        prepare_connection(&conn, options.durability)?;
        let epoch: Arc<str> = settle_epoch(&conn, path, lineage.as_mut())?.into();
        let commits = schema::commits(&conn)?;
        let identity = Arc::new(FileIdentity::of(path)?);
        let manager = SqliteConnectionManager::file(path)
            .with_flags(
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .with_init(move |c| {
                c.busy_timeout(BUSY_TIMEOUT)?;
                Ok(())
            });
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size)
            .min_idle(Some(1))
            .connection_timeout(POOL_TIMEOUT)
            .build(manager)?;
        // The connection that migrated becomes the writer's: it is set up for writing.
        let writer = Writer::start(writer::Setup {
            conn,
            lineage,
            identity: identity.clone(),
            commits,
            max_answer_bytes: options.max_answer_bytes,
            epoch: epoch.clone(),
        })?;
        Ok(Sqlite {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                epoch,
                pool,
                writer,
                identity,
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn epoch(&self) -> &Arc<str> {
        &self.inner.epoch
    }

    /// Runs `f` on the writer's connection, between batches (tests only).
    #[cfg(test)]
    pub(crate) fn on_writer_connection(&self, f: impl FnOnce(&Connection) + Send + 'static) {
        self.inner.writer.on_connection(f);
    }

    pub(crate) fn set_commit_sink(&self, sink: CommitSink) {
        self.inner.writer.set_commit_sink(sink);
    }

    pub(crate) fn push(&self, group: Arc<str>, changes: Vec<Change>) -> PushTicket {
        self.inner.writer.push(group, changes)
    }

    pub(crate) async fn pull_into<S: PageSink>(
        &self,
        group: Arc<str>,
        query: PageQuery,
        mut sink: S,
    ) -> Result<(S, PageEnd), StorageError> {
        let epoch = self.inner.epoch.clone();
        self.read(move |conn| {
            let end = read::pull_into(conn, &group, &query, &epoch, &mut |doc| sink.offer(doc))?;
            Ok((sink, end))
        })
        .await
    }

    pub(crate) async fn compact(&self, before: SystemTime) -> Result<Compacted, StorageError> {
        self.inner.identity.still_there()?;
        self.inner.writer.compact(before).await
    }

    pub(crate) async fn group_seq(&self, group: Arc<str>) -> Result<u64, StorageError> {
        self.read(move |conn| read::group_seq(conn, &group)).await
    }

    pub(crate) async fn groups(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<GroupStats>, bool), StorageError> {
        self.read(move |conn| admin::groups(conn, after.as_deref(), limit))
            .await
    }

    pub(crate) async fn group_stats(
        &self,
        group: Arc<str>,
    ) -> Result<Option<GroupStats>, StorageError> {
        self.read(move |conn| admin::group(conn, &group)).await
    }

    pub(crate) async fn doc_at(
        &self,
        group: Arc<str>,
        key: String,
    ) -> Result<(Option<atomsync_proto::wire::Doc>, Arc<str>), StorageError> {
        // The epoch changes only when the server opens the database.
        let epoch = self.inner.epoch.clone();
        self.read(move |conn| Ok((docs::doc(conn, &group, &key)?, epoch)))
            .await
    }

    pub(crate) async fn docs_by_key(
        &self,
        group: Arc<str>,
        range: KeyRange,
    ) -> Result<Option<KeyPage>, StorageError> {
        self.read(move |conn| docs::by_key(conn, &group, &range))
            .await
    }

    pub(crate) async fn health(&self) -> Result<(), StorageError> {
        self.inner.identity.check()?;
        self.read(|conn| read::health(conn)).await?;
        if !self.inner.writer.is_alive() {
            return Err(StorageError::WriterGone);
        }
        Ok(())
    }

    pub(crate) async fn close(&self) {
        let inner = self.inner.clone();
        // Joins the writer thread, which may be finishing a batch: off the event loop.
        if let Err(e) = tokio::task::spawn_blocking(move || inner.writer.shutdown()).await {
            tracing::error!(error = %e, "stopping the storage writer failed");
        }
    }

    /// Runs `read` on a pooled connection, on the blocking pool.
    async fn read<T, F>(&self, read: F) -> Result<T, StorageError>
    where
        F: FnOnce(&mut Connection) -> Result<T, StorageError> + Send + 'static,
        T: Send + 'static,
    {
        // A database found lost answers nothing more: what it holds is gone at the restart.
        self.inner.identity.still_there()?;
        let pool = self.inner.pool.clone();
        tokio::task::spawn_blocking(move || {
            let waited = std::time::Instant::now();
            let conn = pool.get();
            if let Some(m) = crate::metrics::get() {
                m.pool_wait(waited, &conn);
            }
            read(&mut *conn?)
        })
        .await
        .map_err(StorageError::task)?
    }
}

/// The database's epoch, renewed (durably, and said loudly) when the state file, or a
/// backup stamp, says the database may have gone back in time; then recorded as served.
fn settle_epoch(
    conn: &Connection,
    path: &Path,
    lineage: Option<&mut Lineage>,
) -> Result<String, StorageError> {
    let epoch = schema::migrate(conn)?;
    let commits = schema::commits(conn)?;
    let stamp = schema::backup_stamp(conn)?;
    let verdict = match &lineage {
        Some(lineage) => lineage.judge(&epoch, commits, stamp.as_deref()),
        None => match stamp {
            Some(stamp) => Verdict::NewEpoch(format!(
                "it is a copy made by `atomsync-server backup` ({stamp}) put in place by hand"
            )),
            None => Verdict::Same,
        },
    };
    let epoch = match verdict {
        Verdict::Same => epoch,
        Verdict::Adopt(why) => {
            tracing::info!(db = %path.display(), epoch, "serving {why}");
            epoch
        }
        Verdict::NewEpoch(why) => {
            let renewed = schema::renew_epoch(conn)?;
            tracing::warn!(
                db = %path.display(),
                old_epoch = epoch,
                epoch = renewed,
                "the database gets a new epoch before it is served: {why}; every client \
                 syncs it again from 0, so no (epoch, group, seq) names two writes"
            );
            renewed
        }
    };
    if let Some(lineage) = lineage {
        lineage.start(&epoch, commits)?;
    }
    Ok(epoch)
}

/// The settings every writing connection gets.
fn prepare_connection(conn: &Connection, durability: Durability) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;"
    ))
}

/// True when SQLite's failure is a passing state (busy, full, I/O) rather than a bug.
pub(super) fn is_transient(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        rusqlite::Error::SqliteFailure(e, _) => matches!(
            e.code,
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::DiskFull
                | C::SystemIoFailure
                | C::CannotOpen
                | C::ReadOnly
                | C::OutOfMemory
        ),
        _ => false,
    }
}
