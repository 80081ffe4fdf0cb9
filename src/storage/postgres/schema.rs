//! The tables, and the migrations that create them (tracked in `atomsync_meta`).
//!
//! - `atomsync_meta`: the schema version, the database's epoch and its history mark (see
//!   `epoch`).
//! - `atomsync_groups`: one row per group that has been written: its sequence and
//!   compaction floor. A push locks its group's row for the length of its transaction:
//!   that lock is what orders two instances' writes to one group.
//! - `atomsync_docs`: the latest state of every document, tombstones included (`value`
//!   NULL, and `deleted_at`, when the tombstone was written, for compaction), with an index
//!   on `(group_id, seq)` that serves pulls and catch-up in `seq` order and a partial one on
//!   the tombstones' age that finds what compaction removes without reading live documents.
//!
//! Keys are `bytea`, not `text`: a key is any UTF-8 string, NUL included, which `text`
//! refuses, and `bytea` compares bytewise, which is the key order the admin API promises
//! (a `text` column would sort by the database's collation). Group names, restricted to
//! ASCII, are `text` in the "C" collation, for the same byte order.
//!
//! Migrations run in one transaction holding an advisory lock, so that instances started
//! together wait for the first to finish instead of racing it; the epoch and its history
//! mark are inserted once, and read by every instance (`epoch`).
//!
//! Tables named like ours that are not ours (no `atomsync_meta` saying which schema, or one
//! of another shape) are another application's, or damaged: the server refuses to start
//! ([`StorageError::Foreign`]) and leaves them untouched. Other tables in the database are
//! none of its business.

use deadpool_postgres::Client;

use crate::storage::StorageError;

/// The advisory lock that serializes migrations: "atomsync" in ASCII, as a big-endian i64.
const MIGRATION_LOCK: i64 = 0x61746f6d73796e63;

/// The oldest PostgreSQL this backend runs on (`server_version_num`): `txid_status`, which
/// settles a commit whose answer was lost, needs 10; 12 is the oldest we test against.
const OLDEST_SERVER: i32 = 120000;

/// The migrations in order; `schema` in `atomsync_meta` counts how many have run.
const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE atomsync_groups (
        id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name  TEXT COLLATE \"C\" NOT NULL UNIQUE,
        seq   BIGINT NOT NULL,
        floor BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE atomsync_docs (
        group_id BIGINT NOT NULL REFERENCES atomsync_groups (id),
        key      BYTEA NOT NULL,
        version  BIGINT NOT NULL,
        seq      BIGINT NOT NULL,
        value    BYTEA,
        PRIMARY KEY (group_id, key)
    );
    CREATE UNIQUE INDEX atomsync_docs_by_seq ON atomsync_docs (group_id, seq);
",
    "
    ALTER TABLE atomsync_docs ADD COLUMN deleted_at TIMESTAMPTZ;
    UPDATE atomsync_docs SET deleted_at = now() WHERE value IS NULL;
    CREATE INDEX atomsync_docs_tombstones ON atomsync_docs (deleted_at) WHERE value IS NULL;
",
];

/// Checks the server's version and that the database holds no one else's tables under our
/// names, brings the schema up to date, and creates the epoch and its history mark with a
/// new database.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StorageError> {
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    if version < OLDEST_SERVER {
        return Err(StorageError::Incompatible(format!(
            "PostgreSQL {version} is older than the oldest this server runs on ({OLDEST_SERVER})"
        )));
    }
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    inspect(&tx).await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS atomsync_meta (
             name  TEXT PRIMARY KEY,
             value TEXT NOT NULL
         )",
    )
    .await?;
    let done: usize = match tx
        .query_opt("SELECT value FROM atomsync_meta WHERE name = 'schema'", &[])
        .await?
    {
        Some(row) => row.get::<_, String>(0).parse().map_err(|_| {
            StorageError::Incompatible(
                "atomsync_meta holds a schema version that is not a number".into(),
            )
        })?,
        None => 0,
    };
    if done > MIGRATIONS.len() {
        return Err(StorageError::Incompatible(format!(
            "schema version {done} is newer than this server knows ({})",
            MIGRATIONS.len()
        )));
    }
    for sql in &MIGRATIONS[done..] {
        tx.batch_execute(sql).await?;
    }
    tx.execute(
        "INSERT INTO atomsync_meta (name, value) VALUES ('schema', $1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&MIGRATIONS.len().to_string()],
    )
    .await?;
    tx.execute(
        "INSERT INTO atomsync_meta (name, value) VALUES ('epoch', $1) ON CONFLICT (name) DO NOTHING",
        &[&crate::storage::new_epoch()?],
    )
    .await?;
    // A database of the first schema had no mark: the one it has now is adopted.
    tx.execute(
        &format!(
            "INSERT INTO atomsync_meta (name, value) SELECT 'history', {}
             ON CONFLICT (name) DO NOTHING",
            super::epoch::MARK
        ),
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Our tables, found in the schema they are made in (the first of the `search_path`).
const OURS: &str = "
    SELECT c.relname::text FROM pg_class c
    WHERE c.relnamespace = current_schema()::regnamespace
      AND c.relname IN ('atomsync_meta', 'atomsync_groups', 'atomsync_docs')";

/// Refuses tables named like ours that are not ours.
async fn inspect(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StorageError> {
    let found: Vec<String> = tx
        .query(OURS, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    let foreign = |why: String| {
        StorageError::Foreign(format!(
            "the database holds {} but {why}: not Atomsync's tables, or damaged ones; Atomsync \
             leaves them untouched: give it a database of its own",
            found.join(", ")
        ))
    };
    if !found.iter().any(|t| t == "atomsync_meta") {
        return Err(foreign("no atomsync_meta".into()));
    }
    let columns: Vec<String> = tx
        .query(
            "SELECT attname::text FROM pg_attribute
             WHERE attrelid = 'atomsync_meta'::regclass AND attnum > 0 AND NOT attisdropped
             ORDER BY attnum",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if columns != ["name", "value"] {
        return Err(foreign(format!(
            "its atomsync_meta has the columns ({})",
            columns.join(", ")
        )));
    }
    let schema = tx
        .query_opt("SELECT value FROM atomsync_meta WHERE name = 'schema'", &[])
        .await?;
    if schema.is_none() {
        return Err(foreign("its atomsync_meta names no schema version".into()));
    }
    Ok(())
}

/// Logs a warning when the database acknowledges commits before they are on disk, which
/// `durability = "full"` promises they are.
pub(super) async fn warn_when_commits_are_not_durable(client: &Client) {
    let settings = client
        .query_one(
            "SELECT current_setting('synchronous_commit'), current_setting('fsync')",
            &[],
        )
        .await;
    if let Ok(row) = settings {
        let (commit, fsync): (String, String) = (row.get(0), row.get(1));
        if commit == "off" || fsync == "off" {
            tracing::warn!(
                synchronous_commit = commit,
                fsync,
                "durability is \"full\" but PostgreSQL may acknowledge a commit before it is on disk"
            );
        }
    }
}
