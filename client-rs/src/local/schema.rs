//! The local schema and its version (`PRAGMA user_version`), created on first open.

use rusqlite::{Connection, TransactionBehavior};

use crate::ClientError;

/// The schema this client writes. A file with a higher version was written by a newer
/// client and is refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS groups (
    name   TEXT PRIMARY KEY,
    epoch  TEXT,                        -- NULL until the server first answers
    cursor INTEGER NOT NULL DEFAULT 0,  -- highest seq stored locally
    reset  INTEGER NOT NULL DEFAULT 0   -- a ResetMode the next completed catch-up finishes
) WITHOUT ROWID;

-- The server's state of every known document.
CREATE TABLE IF NOT EXISTS docs (
    grp     TEXT NOT NULL,
    key     TEXT NOT NULL,
    version INTEGER NOT NULL,
    value   BLOB,                       -- MessagePack; NULL for a tombstone
    stale   INTEGER NOT NULL DEFAULT 0, -- 1 until a reset's full catch-up returns it again
    PRIMARY KEY (grp, key)
) WITHOUT ROWID;

-- Local changes the server has not accepted yet, one per key (folded).
CREATE TABLE IF NOT EXISTS pending (
    grp   TEXT NOT NULL,
    key   TEXT NOT NULL,
    base  INTEGER NOT NULL,             -- the server version the change was made on
    value BLOB,                         -- MessagePack; NULL deletes
    rev   INTEGER NOT NULL,             -- grows with every local write
    PRIMARY KEY (grp, key)
) WITHOUT ROWID;

-- Pushes take the oldest pending changes first: without this, every batch sorts them all.
-- Added without a version change: a file of an older client gains it on open, and an older
-- client keeps it up to date without knowing it.
CREATE INDEX IF NOT EXISTS pending_by_rev ON pending (grp, rev);
";

/// Creates the tables of a new file, checks the version of an existing one. One
/// transaction: one fsync, not one per statement, when an application opens a new store.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), ClientError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(ClientError::Corrupt(format!(
            "schema version {version} was written by a newer client (this one reads up to {SCHEMA_VERSION})"
        )));
    }
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    Ok(())
}
