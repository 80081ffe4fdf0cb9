//! The tables, the migrations that create them (tracked by `PRAGMA user_version`), and how
//! a file is recognized as an Atomsync database before anything is written to it.
//!
//! - `meta`: the database's epoch; in a copy made by `atomsync-server backup`, the
//!   `backup_of` stamp (see [`super::backup`]).
//! - `counters`: `commits`, bumped by every transaction that accepted a write, so that a
//!   copy of the database that went back in time is told from the one the server served
//!   (see [`crate::storage::lineage`]).
//! - `groups`: one row per group that has been written: its sequence and compaction floor.
//! - `docs`: the latest state of every document, tombstones included (`value` NULL, with
//!   `deleted_at`, when the tombstone was written, in Unix milliseconds), with an index on
//!   `(group_id, seq)` that serves pulls and catch-up in `seq` order, and one on the
//!   tombstones' age that serves compaction.
//!
//! Every Atomsync database carries [`APPLICATION_ID`] (`PRAGMA application_id`), so another
//! application's SQLite file is recognized and left untouched ([`inspect`]).

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::storage::StorageError;

/// `PRAGMA application_id` of every Atomsync database: "ASYN".
pub const APPLICATION_ID: i32 = 0x4153_594E;

/// The migrations in order; `user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[
    "
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
",
    // Compaction needs each tombstone's age; tombstones written before this migration
    // count from it (never removed sooner than the horizon after the upgrade). The commit
    // counter tells a database that went back in time.
    "
    ALTER TABLE docs ADD COLUMN deleted_at INTEGER;
    UPDATE docs SET deleted_at = CAST(unixepoch('subsec') * 1000 AS INTEGER) WHERE value IS NULL;
    CREATE INDEX docs_tombstones ON docs (deleted_at) WHERE value IS NULL;
    CREATE TABLE counters (
        name  TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters (name, value) VALUES ('commits', 0);
",
];

/// The tables of an Atomsync database, whatever its version.
const OUR_TABLES: &[&str] = &["counters", "docs", "groups", "meta"];

/// What a file at the database's path is, found without writing to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// No file, or an empty one (SQLite's empty database): a new database goes there.
    Nothing,
    /// An Atomsync database at schema `version` (possibly older than this server's).
    Atomsync {
        /// Its `user_version`.
        version: usize,
    },
}

/// Looks at the file at `path` without changing it: nothing, an Atomsync database, or an
/// error that says what else it is (not SQLite; another application's database; a newer
/// Atomsync schema).
pub fn inspect(path: &Path) -> Result<Found, StorageError> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => {
            return Err(StorageError::Foreign(format!(
                "{shown}: cannot be read: {e}"
            )));
        }
    };
    if meta.is_dir() {
        return Err(StorageError::Foreign(format!(
            "{shown} is a directory, not a database file"
        )));
    }
    if meta.len() == 0 {
        return Ok(Found::Nothing);
    }
    let mut header = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    if read.is_err() || &header != b"SQLite format 3\0" {
        return Err(StorageError::Foreign(format!(
            "{shown} is not an SQLite database (not an Atomsync database)"
        )));
    }
    // Read-write without create: reading the pragmas and the schema writes nothing, and a
    // read-only connection could not open a WAL database whose `-shm` is missing.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let application_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
             ORDER BY name",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let foreign = |why: String| {
        StorageError::Foreign(format!(
            "{shown} is an SQLite database of another application, not an Atomsync database \
             ({why})"
        ))
    };
    if application_id == APPLICATION_ID {
        if version > MIGRATIONS.len() {
            return Err(StorageError::Incompatible(format!(
                "{shown}: schema version {version} is newer than this server knows ({}); \
                 run a newer atomsync-server",
                MIGRATIONS.len()
            )));
        }
        return Ok(Found::Atomsync { version });
    }
    if application_id != 0 {
        return Err(foreign(format!("application_id {application_id:#x}")));
    }
    if tables.is_empty() && version == 0 {
        return Ok(Found::Nothing);
    }
    // Written before databases carried the application id: the first schema, exactly,
    // with its epoch.
    let first = ["docs", "groups", "meta"];
    if version == 1 && tables == first && has_epoch(&conn) {
        return Ok(Found::Atomsync { version });
    }
    let listed = if tables.is_empty() {
        "no tables".to_owned()
    } else {
        let mut shown: Vec<&str> = tables.iter().map(String::as_str).take(5).collect();
        if tables.len() > 5 {
            shown.push("...");
        }
        format!("tables {}", shown.join(", "))
    };
    let ours = tables.iter().all(|t| OUR_TABLES.contains(&t.as_str()));
    Err(foreign(if ours {
        format!("{listed}, but user_version {version} and no Atomsync application id")
    } else {
        listed
    }))
}

fn has_epoch(conn: &Connection) -> bool {
    conn.query_row("SELECT 1 FROM meta WHERE name = 'epoch'", [], |_| Ok(()))
        .optional()
        .ok()
        .flatten()
        .is_some()
}

/// Brings an Atomsync database (or a new, empty one) up to date, marks it with
/// [`APPLICATION_ID`], and returns its epoch, creating it with a new database. Call
/// [`inspect`] first: this writes to whatever it is given.
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
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
    }
    let application_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if application_id != APPLICATION_ID {
        conn.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    if let Some(epoch) = epoch(conn)? {
        return Ok(epoch);
    }
    let epoch = crate::storage::new_epoch()?;
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('epoch', ?1)",
        params![epoch],
    )?;
    Ok(epoch)
}

/// The database's epoch, if it has one yet.
pub fn epoch(conn: &Connection) -> Result<Option<String>, StorageError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE name = 'epoch'", [], |r| {
            r.get(0)
        })
        .optional()?)
}

/// How many transactions have accepted a write in this database (0 before any).
pub fn commits(conn: &Connection) -> Result<u64, StorageError> {
    Ok(conn.query_row(
        "SELECT value FROM counters WHERE name = 'commits'",
        [],
        |r| r.get(0),
    )?)
}

/// The `backup_of` stamp of a copy made by `atomsync-server backup`: the epoch it was
/// copied from, and when.
pub fn backup_stamp(conn: &Connection) -> Result<Option<String>, StorageError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE name = 'backup_of'", [], |r| {
            r.get(0)
        })
        .optional()?)
}

/// Gives the database a new epoch, clearing any backup stamp, in one transaction that is
/// synced to disk whatever the durability setting: clients must never see the old epoch
/// again from this database. Returns the new epoch.
pub fn renew_epoch(conn: &Connection) -> Result<String, StorageError> {
    let epoch = crate::storage::new_epoch()?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let tx = conn.unchecked_transaction()?;
    tx.execute(
        "INSERT INTO meta (name, value) VALUES ('epoch', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![epoch],
    )?;
    tx.execute("DELETE FROM meta WHERE name = 'backup_of'", [])?;
    tx.commit()?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    Ok(epoch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn nothing_new_and_ours_are_told_apart() {
        let d = dir();
        let path = d.path().join("a.db");
        assert_eq!(inspect(&path).unwrap(), Found::Nothing);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(inspect(&path).unwrap(), Found::Nothing);
        let conn = Connection::open(&path).unwrap();
        let epoch = migrate(&conn).unwrap();
        assert_eq!(epoch.len(), 32);
        assert_eq!(migrate(&conn).unwrap(), epoch, "the epoch never changes");
        assert_eq!(commits(&conn).unwrap(), 0);
        drop(conn);
        assert_eq!(
            inspect(&path).unwrap(),
            Found::Atomsync {
                version: MIGRATIONS.len()
            }
        );
    }

    #[test]
    fn the_first_schema_is_recognized_and_upgraded_in_place() {
        let d = dir();
        let path = d.path().join("v1.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            "INSERT INTO meta VALUES ('epoch', 'old');
             INSERT INTO groups (name, seq) VALUES ('g', 2);
             INSERT INTO docs VALUES (1, 'a', 1, 1, x'01'), (1, 'b', 2, 2, NULL);",
        )
        .unwrap();
        drop(conn);
        assert_eq!(inspect(&path).unwrap(), Found::Atomsync { version: 1 });
        let conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&conn).unwrap(), "old");
        let aged: i64 = conn
            .query_row(
                "SELECT count(*) FROM docs WHERE value IS NULL AND deleted_at > 0",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(aged, 1, "an old tombstone counts its age from the upgrade");
    }

    #[test]
    fn another_applications_database_and_other_files_are_refused_untouched() {
        let d = dir();
        let text = d.path().join("notes.txt");
        std::fs::write(&text, "hello, not a database").unwrap();
        let e = inspect(&text).unwrap_err().to_string();
        assert!(e.contains("not an SQLite database"), "{e}");

        let other = d.path().join("other.db");
        let conn = Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL);")
            .unwrap();
        drop(conn);
        let before = std::fs::read(&other).unwrap();
        let e = inspect(&other).unwrap_err().to_string();
        assert!(
            e.contains("another application") && e.contains("invoices"),
            "{e}"
        );
        assert_eq!(std::fs::read(&other).unwrap(), before, "untouched");

        let tagged = d.path().join("tagged.db");
        let conn = Connection::open(&tagged).unwrap();
        conn.pragma_update(None, "application_id", 7).unwrap();
        drop(conn);
        let e = inspect(&tagged).unwrap_err().to_string();
        assert!(e.contains("application_id 0x7"), "{e}");
        let e = inspect(d.path()).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let d = dir();
        let path = d.path().join("new.db");
        let conn = Connection::open(&path).unwrap();
        migrate(&conn).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let e = inspect(&path).unwrap_err().to_string();
        assert!(e.contains("newer"), "{e}");
    }

    #[test]
    fn a_renewed_epoch_differs_and_clears_the_backup_stamp() {
        let d = dir();
        let conn = Connection::open(d.path().join("e.db")).unwrap();
        let first = migrate(&conn).unwrap();
        conn.execute("INSERT INTO meta VALUES ('backup_of', 'x')", [])
            .unwrap();
        let second = renew_epoch(&conn).unwrap();
        assert_ne!(first, second);
        assert_eq!(epoch(&conn).unwrap().as_deref(), Some(second.as_str()));
        assert_eq!(backup_stamp(&conn).unwrap(), None);
    }
}
