//! The commands that work on the database file rather than serve it:
//! `atomsync-server backup` (while the server serves), `restore` and `compact` (while it
//! is stopped: both take the state file's lock, which a running server holds).
//!
//! Each returns a report that the binary prints; progress goes to a callback, which the
//! binary turns into a progress bar on a terminal.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::ServerError;
use crate::config::Config;
use crate::storage::lineage::Lineage;
use crate::storage::sqlite::backup::{self, BackupReport, RestoreReport};
use crate::storage::{Compacted, OpenOptions, Storage, StorageError};

fn storage_error(config: &Config, source: StorageError) -> ServerError {
    ServerError::Storage {
        path: config.server.db.clone(),
        source,
    }
}

/// Copies the database of `config` to `out`, consistently, while a server may serve it.
/// `progress(done, total)` in bytes.
pub fn backup(
    config: &Config,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupReport, ServerError> {
    backup::backup(&config.server.db, out, progress).map_err(|e| storage_error(config, e))
}

/// Installs the backup `from` as the database of `config`, with a new epoch. Fails when a
/// server runs on it. `progress(done, total)` in pages.
pub fn restore(
    config: &Config,
    from: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport, ServerError> {
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
/// once. Fails when a server runs on it (it opens the database as a server would).
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
