//! [`StorageError`]: why storage could not do what was asked; nothing was applied.

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

impl StorageError {
    /// True when the failure is a passing state of the storage (busy, full, I/O, shutting
    /// down) rather than a bug: the client may retry later (503), versus a 500.
    pub fn is_transient(&self) -> bool {
        match self {
            StorageError::Sqlite(e) => super::sqlite::is_transient(e),
            StorageError::Pool(_) | StorageError::WriterGone => true,
            StorageError::Incompatible(_) | StorageError::Task(_) => false,
        }
    }

    /// A blocking task that did not finish.
    pub(crate) fn task(e: tokio::task::JoinError) -> StorageError {
        StorageError::Task(e.to_string())
    }
}
