//! [`StorageError`]: why storage could not do what was asked; nothing was applied (but for
//! [`StorageError::CommitUnknown`], which says so).

use std::path::PathBuf;
use std::sync::Arc;

/// Why storage could not do what was asked. Nothing was applied, but for
/// [`CommitUnknown`](StorageError::CommitUnknown).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// SQLite failed (I/O, corruption, ...).
    #[error("sqlite: {0}")]
    Sqlite(rusqlite::Error),
    /// The disk that holds the database (or its state file) has no room left. Passing:
    /// once room is made, writes succeed again.
    #[error("disk full: the database's disk has no room left ({0})")]
    DiskFull(String),
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
    /// The file at the database's path is no longer the one the server opened (deleted or
    /// replaced while it ran): nothing more is acknowledged until the server restarts.
    #[error(
        "the database file {} was deleted or replaced while the server ran; restart the server",
        .0.display()
    )]
    Lost(PathBuf),
    /// The database is not an Atomsync database (another application's SQLite file, or not
    /// SQLite at all; a PostgreSQL database whose Atomsync tables are not ours): the server
    /// leaves it untouched.
    #[error("{0}")]
    Foreign(String),
    /// The database holds data this server cannot read (a newer schema, a bad epoch).
    // No "database:" of its own: every message names what it is about, and the server's
    // errors already say which database ("database PATH: ...").
    #[error("{0}")]
    Incompatible(String),
    /// The state file that remembers which databases were served from this path could not
    /// be read or written (see `storage::lineage`).
    #[error("state file {}: {message}", .path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// The request's answer would be larger than the server answers (a push whose
    /// conflicts carry too many large current documents): refused whole, 413.
    #[error("{0}")]
    TooLarge(String),
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

impl From<rusqlite::Error> for StorageError {
    /// SQLite's "database or disk is full" becomes [`StorageError::DiskFull`], so that the
    /// answer and the log say so in those words.
    fn from(e: rusqlite::Error) -> StorageError {
        match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
                StorageError::DiskFull(e.to_string())
            }
            _ => StorageError::Sqlite(e),
        }
    }
}

impl From<tokio_postgres::Error> for StorageError {
    /// PostgreSQL's `disk_full` (SQLSTATE 53100) becomes [`StorageError::DiskFull`], as
    /// SQLite's does, so that the answer and the log say so in those words.
    fn from(e: tokio_postgres::Error) -> StorageError {
        if e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL) {
            return StorageError::DiskFull(format!("postgres: {}", with_causes(&e)));
        }
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
    /// down, a database file gone, a connection lost) rather than a bug: the client may
    /// retry later (503), versus a 500.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Sqlite(e) => super::sqlite::is_transient(e),
            StorageError::Postgres(e) => super::postgres::is_transient(e),
            StorageError::Pool(_)
            | StorageError::Unavailable(_)
            | StorageError::CommitUnknown(_)
            | StorageError::WriterGone
            | StorageError::DiskFull(_)
            | StorageError::Lost(_)
            | StorageError::State { .. } => true,
            StorageError::Foreign(_)
            | StorageError::Incompatible(_)
            | StorageError::TooLarge(_)
            | StorageError::Task(_) => false,
        }
    }

    /// True unless the failure leaves open whether something was applied.
    pub fn applied_nothing(&self) -> bool {
        !matches!(self, StorageError::CommitUnknown(_))
    }

    /// An I/O error on the state file at `path`; a full disk says so.
    pub(crate) fn state(path: &std::path::Path, what: &str, e: &std::io::Error) -> StorageError {
        if e.kind() == std::io::ErrorKind::StorageFull {
            return StorageError::DiskFull(format!("{}: {what}: {e}", path.display()));
        }
        StorageError::State {
            path: path.to_owned(),
            message: format!("{what}: {e}"),
        }
    }

    /// A blocking task that did not finish.
    pub(crate) fn task(e: tokio::task::JoinError) -> StorageError {
        StorageError::Task(e.to_string())
    }

    /// The same failure again, for every job of a failed batch (rusqlite errors are not
    /// `Clone`).
    pub(crate) fn copy(&self) -> StorageError {
        match self {
            StorageError::Sqlite(rusqlite::Error::SqliteFailure(f, msg)) => {
                StorageError::Sqlite(rusqlite::Error::SqliteFailure(*f, msg.clone()))
            }
            StorageError::Postgres(e) => StorageError::Postgres(e.clone()),
            StorageError::Unavailable(m) => StorageError::Unavailable(m.clone()),
            StorageError::CommitUnknown(m) => StorageError::CommitUnknown(m.clone()),
            StorageError::DiskFull(m) => StorageError::DiskFull(m.clone()),
            StorageError::WriterGone => StorageError::WriterGone,
            StorageError::Lost(p) => StorageError::Lost(p.clone()),
            StorageError::TooLarge(m) => StorageError::TooLarge(m.clone()),
            StorageError::State { path, message } => StorageError::State {
                path: path.clone(),
                message: message.clone(),
            },
            other if other.is_transient() => StorageError::Unavailable(other.to_string()),
            other => StorageError::Incompatible(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_says_so_and_is_passing() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        let e = StorageError::from(full);
        assert!(matches!(e, StorageError::DiskFull(_)));
        assert!(e.to_string().starts_with("disk full"), "{e}");
        assert!(e.is_transient());
        assert!(e.copy().to_string().starts_with("disk full"));
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let e = StorageError::state(std::path::Path::new("/x/s"), "write", &io);
        assert!(e.to_string().starts_with("disk full"), "{e}");
    }
}
