//! Storage: the SQLite database behind every group, and the only place SQL is written.
//!
//! - [`schema`]: the tables and their migrations (`PRAGMA user_version`).
//! - [`read`]: pulls, catch-up pages and health checks, on pooled read connections.
//! - [`writer`]: the single writer thread that version-checks and commits every push.
//!
//! The database runs in WAL mode, so readers never wait for the writer and the writer never
//! waits for readers. All writes go through *one* connection on *one* thread: SQLite allows
//! one writer at a time anyway, and a single writer means group actors never fight over the
//! write lock (no `SQLITE_BUSY`), while batching the pushes that queue up behind a commit into
//! the next transaction (group commit: one fsync for many requests).

#[cfg(test)]
mod push_tests;
pub mod sqlite;

pub use sqlite::{read, schema, writer};

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::config::Durability;

pub use read::{PullPage, StoredGroup};
pub use writer::{CommitSink, Committed, PushOutcome, Writer};

/// A pool of read connections.
pub type Pool = r2d2::Pool<SqliteConnectionManager>;

/// Why storage could not do what was asked. Nothing was applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// SQLite failed (I/O, disk full, corruption, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No read connection could be had in time.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// The writer thread has stopped (the server is shutting down).
    #[error("the storage writer has stopped")]
    WriterGone,
    /// The database holds data this server cannot read (a newer schema, a bad epoch).
    #[error("database: {0}")]
    Incompatible(String),
}

impl StorageError {
    /// True when the failure is a passing state of the storage (busy, full, I/O, shutting
    /// down) rather than a bug: the client may retry later (503), versus a 500.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            StorageError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::DiskFull
                    | C::SystemIoFailure
                    | C::CannotOpen
                    | C::ReadOnly
                    | C::OutOfMemory
            ),
            StorageError::Pool(_) | StorageError::WriterGone => true,
            _ => false,
        }
    }
}

/// A push handed to storage: resolves with its outcome once the push is durable, or with
/// why nothing of it was applied. Dropping the ticket does not withdraw the push.
#[derive(Debug)]
#[must_use = "the ticket is the only way to learn a push's outcome"]
pub struct PushTicket(Ticket);

#[derive(Debug)]
enum Ticket {
    Queued(oneshot::Receiver<Result<PushOutcome, StorageError>>),
    Failed(Option<StorageError>),
}

impl PushTicket {
    /// A push whose outcome will arrive on `outcome`.
    pub(crate) fn queued(outcome: oneshot::Receiver<Result<PushOutcome, StorageError>>) -> Self {
        PushTicket(Ticket::Queued(outcome))
    }

    /// A push refused before anything was applied.
    pub(crate) fn failed(error: StorageError) -> Self {
        PushTicket(Ticket::Failed(Some(error)))
    }
}

impl Future for PushTicket {
    type Output = Result<PushOutcome, StorageError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            // A dropped reply: the writer stopped without answering, so nothing was applied.
            Ticket::Queued(outcome) => Pin::new(outcome)
                .poll(cx)
                .map(|answer| answer.unwrap_or(Err(StorageError::WriterGone))),
            Ticket::Failed(error) => {
                Poll::Ready(Err(error.take().unwrap_or(StorageError::WriterGone)))
            }
        }
    }
}

/// The opened database: its path, epoch, and read pool.
#[derive(Clone)]
pub struct Storage {
    path: PathBuf,
    epoch: std::sync::Arc<str>,
    durability: Durability,
    pool: Pool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("path", &self.path)
            .field("epoch", &self.epoch)
            .finish()
    }
}

/// How long a connection waits on a lock before it reports busy. Only a backup tool or
/// another process could hold it: within the server, the writer is alone.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The settings every connection gets, reader or writer.
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

impl Storage {
    /// Opens (creating when missing) the database at `path`, migrates it, and builds the
    /// read pool. The epoch is created with the database and never changes after.
    pub fn open(
        path: &Path,
        durability: Durability,
        pool_size: u32,
    ) -> Result<Storage, StorageError> {
        let conn = Connection::open(path)?;
        prepare_connection(&conn, durability)?;
        let epoch = schema::migrate(&conn)?;
        drop(conn);
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
            .connection_timeout(Duration::from_secs(5))
            .build(manager)?;
        Ok(Storage {
            path: path.to_owned(),
            epoch: epoch.into(),
            durability,
            pool,
        })
    }

    /// The database's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The shared epoch, cheap to clone into responses.
    pub fn epoch_arc(&self) -> std::sync::Arc<str> {
        self.epoch.clone()
    }

    /// Starts the single writer thread on its own connection.
    pub fn start_writer(&self) -> Result<Writer, StorageError> {
        let conn = Connection::open(&self.path)?;
        prepare_connection(&conn, self.durability)?;
        Writer::start(conn)
    }

    /// A read connection from the pool. Blocking: call from a blocking thread.
    pub fn reader(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, StorageError> {
        Ok(self.pool.get()?)
    }
}
