//! The tables, and the migrations that create them (tracked by `PRAGMA user_version`).
//!
//! - `meta`: the database's epoch.
//! - `groups`: one row per group that has been written: its sequence and compaction floor.
//! - `docs`: the latest state of every document, tombstones included (`value` NULL), with
//!   an index on `(group_id, seq)` that serves pulls and catch-up in `seq` order.

use rusqlite::{Connection, OptionalExtension, params};

use crate::storage::StorageError;

/// The migrations in order; `user_version` counts how many have run.
const MIGRATIONS: &[&str] = &["
    CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE groups (
        id    INTEGER PRIMARY KEY,
        name  TEXT NOT NULL UNIQUE,
        seq   INTEGER NOT NULL,
        floor INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE docs (
        group_id INTEGER NOT NULL REFERENCES groups(id),
        key      TEXT NOT NULL,
        version  INTEGER NOT NULL,
        seq      INTEGER NOT NULL,
        value    BLOB,
        PRIMARY KEY (group_id, key)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX docs_by_seq ON docs (group_id, seq);
"];

/// Brings the schema up to date and returns the epoch, creating it with a new database.
pub fn migrate(conn: &Connection) -> Result<String, StorageError> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > MIGRATIONS.len() {
        return Err(StorageError::Incompatible(format!(
            "schema version {version} is newer than this server knows ({})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    let existing: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE name = 'epoch'", [], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(epoch) = existing {
        return Ok(epoch);
    }
    let epoch = crate::storage::new_epoch()?;
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('epoch', ?1)",
        params![epoch],
    )?;
    Ok(epoch)
}
