//! [`StorageError`]: why storage could not do what was asked; nothing was applied (but for
//! [`StorageError::CommitUnknown`], which says so).

use std::sync::Arc;

/// Why storage could not do what was asked. Nothing was applied, but for
/// [`CommitUnknown`](StorageError::CommitUnknown).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// SQLite failed (I/O, disk full, corruption, ...).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// No read connection could be had in time.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// PostgreSQL failed (the connection lost, the server refusing, ...). Shared, so that
    /// every push of a failed batch can be told the same.
    #[error("postgres: {}", with_causes(.0.as_ref()))]
    Postgres(Arc<tokio_postgres::Error>),
    /// Storage is in a passing state in which it cannot answer (no connection could be had
    /// in time, ...), said in words.
    #[error("{0}")]
    Unavailable(String),
    /// The connection to the database was lost while a commit was being made, and whether
    /// it was made could not be learned: it may have been applied. Retrying is safe: a
    /// retried push comes back as conflicts whose `current` is what the first one wrote.
    #[error("the commit's outcome is unknown ({0}): it may have been applied; retrying is safe")]
    CommitUnknown(String),
    /// The writer has stopped (the server is shutting down).
    #[error("the storage writer has stopped")]
    WriterGone,
    /// The database holds data this server cannot read (a newer schema, a bad epoch).
    #[error("database: {0}")]
    Incompatible(String),
    /// A storage task ended without an answer (it panicked): a bug.
    #[error("storage task: {0}")]
    Task(String),
}

/// `e` and each of its causes, `: `-separated: the driver's own words say only what kind of
/// failure it was ("db error", "error connecting to server"); its causes say which.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut shown = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !shown.ends_with(&text) {
            shown.push_str(": ");
            shown.push_str(&text);
        }
        cause = c.source();
    }
    shown
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(e: tokio_postgres::Error) -> StorageError {
        StorageError::Postgres(Arc::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(e: deadpool_postgres::PoolError) -> StorageError {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StorageError::Unavailable(format!("postgres connection pool: {other}")),
        }
    }
}

impl StorageError {
    /// True when the failure is a passing state of the storage (busy, full, I/O, shutting
    /// down) rather than a bug: the client may retry later (503), versus a 500.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Sqlite(e) => super::sqlite::is_transient(e),
            StorageError::Postgres(e) => super::postgres::is_transient(e),
            StorageError::Pool(_)
            | StorageError::Unavailable(_)
            | StorageError::CommitUnknown(_)
            | StorageError::WriterGone => true,
            StorageError::Incompatible(_) | StorageError::Task(_) => false,
        }
    }

    /// True unless the failure leaves open whether something was applied.
    pub fn applied_nothing(&self) -> bool {
        !matches!(self, StorageError::CommitUnknown(_))
    }

    /// The same failure again, for each push of a batch that failed as one.
    pub(crate) fn copy(&self) -> StorageError {
        match self {
            StorageError::Postgres(e) => StorageError::Postgres(e.clone()),
            StorageError::Unavailable(m) => StorageError::Unavailable(m.clone()),
            StorageError::CommitUnknown(m) => StorageError::CommitUnknown(m.clone()),
            StorageError::WriterGone => StorageError::WriterGone,
            StorageError::Sqlite(rusqlite::Error::SqliteFailure(f, msg)) => {
                StorageError::Sqlite(rusqlite::Error::SqliteFailure(*f, msg.clone()))
            }
            other if other.is_transient() => StorageError::Unavailable(other.to_string()),
            other => StorageError::Incompatible(other.to_string()),
        }
    }

    /// A blocking task that did not finish.
    pub(crate) fn task(e: tokio::task::JoinError) -> StorageError {
        StorageError::Task(e.to_string())
    }
}
