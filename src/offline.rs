//! The commands that work on the database file rather than serve it:
//! `atomsync-server backup` (while the server serves), `restore` and `compact` (while it
//! is stopped: both take the state file's lock, which a running server holds).
//!
//! On PostgreSQL, `backup` and `restore` refuse and name PostgreSQL's own tools
//! (`pg_dump`, `pg_basebackup`, point-in-time recovery), which copy a live database
//! consistently and restore it better than a copy through the server could; a database put
//! back by them gets a new epoch when the servers next connect (see the PostgreSQL
//! backend's "Epochs"). `compact` works on PostgreSQL while the servers run: it locks each
//! group's row as a push does, so it needs no server stopped.
//!
//! Each returns a report that the binary prints; progress goes to a callback, which the
//! binary turns into a progress bar on a terminal.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::ServerError;
use crate::config::{Config, Database};
use crate::storage::lineage::Lineage;
use crate::storage::sqlite::backup::{self, BackupReport, RestoreReport};
use crate::storage::{Compacted, OpenOptions, Storage, StorageError};

fn storage_error(config: &Config, source: StorageError) -> ServerError {
    ServerError::Storage {
        path: config.server.database().redacted().into(),
        source,
    }
}

/// Refuses `command` on a PostgreSQL database, naming the tool to use instead.
fn sqlite_only(config: &Config, command: &str, instead: &str) -> Result<(), ServerError> {
    match config.server.database() {
        Database::Sqlite(_) => Ok(()),
        Database::Postgres(_) => Err(storage_error(
            config,
            StorageError::Incompatible(format!(
                "`atomsync-server {command}` copies SQLite files; this database is PostgreSQL: \
                 {instead} (README, Scaling out: backups)"
            )),
        )),
    }
}

/// Copies the database of `config` to `out`, consistently, while a server may serve it.
/// `progress(done, total)` in bytes.
pub fn backup(
    config: &Config,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupReport, ServerError> {
    sqlite_only(
        config,
        "backup",
        "use pg_dump (a consistent copy of the live database) or pg_basebackup with WAL \
         archiving (point-in-time recovery)",
    )?;
    backup::backup(&config.server.db, out, progress).map_err(|e| storage_error(config, e))
}

/// Installs the backup `from` as the database of `config`, with a new epoch. Fails when a
/// server runs on it. `progress(done, total)` in pages.
pub fn restore(
    config: &Config,
    from: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport, ServerError> {
    sqlite_only(
        config,
        "restore",
        "use pg_restore, or restore a base backup; the servers give the restored database a \
         new epoch when they next connect",
    )?;
    let options = OpenOptions::from_config(&config.server);
    let state = options
        .state_file
        .as_deref()
        .unwrap_or(options.db.as_path());
    let mut lineage = Lineage::open(state).map_err(|e| storage_error(config, e))?;
    backup::restore(from, &config.server.db, &mut lineage, progress)
        .map_err(|e| storage_error(config, e))
}

/// Removes the tombstones of the database of `config` written more than `older_than` ago,
/// once. On SQLite, fails when a server runs on it (it opens the database as a server
/// would); on PostgreSQL, runs beside the servers.
pub async fn compact(config: &Config, older_than: Duration) -> Result<Compacted, ServerError> {
    let storage = Storage::open(&config.server)
        .await
        .map_err(|e| storage_error(config, e))?;
    let before = SystemTime::now()
        .checked_sub(older_than)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let done = storage.compact(before).await;
    storage.close().await;
    done.map_err(|e| storage_error(config, e))
}
