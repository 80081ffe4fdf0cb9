//! The SQLite backend: one database file in WAL mode, a pool of readers, one writer thread.
//!
//! - [`schema`]: the tables and their migrations (`PRAGMA user_version`).
//! - `read`: pulls, catch-up pages and health checks, on pooled read connections.
//! - [`writer`]: the single writer thread that version-checks and commits every push.
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
mod docs;
mod read;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use atomsync_proto::wire::Change;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

use self::writer::Writer;
use super::browse::{GroupStats, KeyPage, KeyRange};
use super::{CommitSink, PullPage, PushTicket, StorageError};
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
}

impl Sqlite {
    /// Opens (creating when missing) the database at `path`, migrates it, builds the read
    /// pool and starts the writer thread. Blocking.
    pub(crate) fn open(
        path: &Path,
        durability: Durability,
        pool_size: u32,
    ) -> Result<Sqlite, StorageError> {
        let conn = Connection::open(path)?;
        prepare_connection(&conn, durability)?;
        let epoch = schema::migrate(&conn)?;
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
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(POOL_TIMEOUT)
            .build(manager)?;
        // The connection that migrated becomes the writer's: it is set up for writing.
        let writer = Writer::start(conn)?;
        Ok(Sqlite {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                epoch: epoch.into(),
                pool,
                writer,
            }),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn epoch(&self) -> &Arc<str> {
        &self.inner.epoch
    }

    pub(crate) fn set_commit_sink(&self, sink: CommitSink) {
        self.inner.writer.set_commit_sink(sink);
    }

    pub(crate) fn push(&self, group: Arc<str>, changes: Vec<Change>) -> PushTicket {
        self.inner.writer.push(group, changes)
    }

    pub(crate) async fn pull_then<T, F>(
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
        self.read(move |conn| Ok(then(read::pull(conn, &group, since, limit, upto)?)))
            .await
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

    pub(crate) async fn doc(
        &self,
        group: Arc<str>,
        key: String,
    ) -> Result<Option<atomsync_proto::wire::Doc>, StorageError> {
        self.read(move |conn| docs::doc(conn, &group, &key)).await
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
        let pool = self.inner.pool.clone();
        tokio::task::spawn_blocking(move || {
            let waited = std::time::Instant::now();
            let conn = pool.get();
            if let Some(m) = crate::metrics::get() {
                m.pool_wait_seconds
                    .observe(crate::metrics::seconds(waited.elapsed()));
                if conn.is_err() {
                    m.pool_timeouts.inc();
                }
            }
            read(&mut *conn?)
        })
        .await
        .map_err(StorageError::task)?
    }
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
