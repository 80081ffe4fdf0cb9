//! The local, durable store: one SQLite file per [`Store`](crate::Store) holding, per group,
//! the server's epoch, the cursor, the last server state of every known document
//! (tombstones included) and the pending local changes. Every SQL string of the crate
//! lives in this module and its child `sync`.
//!
//! Two tables keep the server's view and the local one apart: `docs` is what the server
//! last said about each key, `pending` what this client changed on top of it. The value an
//! application sees is the pending one when there is one, else the server's. So a remote
//! change to a key with a pending local change updates `docs` (its version is recorded)
//! without touching what the application sees, and dropping a pending change (the server
//! won a conflict) brings the server's value back.
//!
//! The file runs in WAL mode with `synchronous=FULL`: a local write is on disk before
//! `swap` returns.

mod schema;
mod sync;

use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use atomsync_proto::wire::RESPONSE_MAX_DEPTH;
use atomsync_proto::{Packed, Value};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

pub(crate) use sync::{EpochCheck, Settlement};

use crate::{ClientError, Map};

/// How long a write waits for another connection to the same file (another process or a
/// store being closed) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What a group must do to finish a catch-up, kept durably so that an interrupted
/// catch-up is finished by the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ResetMode {
    /// Nothing: a catch-up only adds changes.
    None = 0,
    /// The server compacted below our cursor: drop the keys a full pull does not return.
    Compaction = 1,
    /// The server's database was replaced: as `Compaction`, then rebase pending changes on
    /// the new versions.
    Epoch = 2,
}

impl ResetMode {
    fn from_sql(raw: i64) -> Result<ResetMode, ClientError> {
        match raw {
            0 => Ok(ResetMode::None),
            1 => Ok(ResetMode::Compaction),
            2 => Ok(ResetMode::Epoch),
            other => Err(ClientError::Corrupt(format!(
                "groups.reset: unknown mode {other}"
            ))),
        }
    }
}

/// A group's sync position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupMeta {
    pub(crate) epoch: Option<String>,
    pub(crate) cursor: u64,
    pub(crate) reset: ResetMode,
}

/// A group as it is loaded when its atom opens.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) meta: GroupMeta,
    pub(crate) visible: Map,
    pub(crate) pending: usize,
}

/// One pending local change, as pushed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingChange {
    pub(crate) key: String,
    /// The server version the change was made on.
    pub(crate) base: u64,
    /// The new value; `None` deletes.
    pub(crate) value: Option<Packed>,
    /// Grows with every local write, so that settling a push can tell whether the key was
    /// written again while the push was on its way.
    pub(crate) rev: u64,
}

/// What an operation changed: the values the application sees for the keys it touched
/// (`None`: absent), and the group's position afterwards.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub(crate) edits: Vec<(String, Option<Value>)>,
    pub(crate) pending: usize,
    pub(crate) cursor: u64,
    pub(crate) epoch: Option<String>,
}

/// The SQLite connection with the next revision number.
struct Inner {
    conn: Connection,
    next_rev: u64,
}

/// The local database of one store.
///
/// A std `Mutex` around one connection, not a pool: every use is one short transaction,
/// from an application thread (`swap`) or a blocking thread of the engine, never held
/// across an `.await`; SQLite serializes writers anyway.
pub(crate) struct LocalDb {
    inner: Mutex<Inner>,
}

impl LocalDb {
    /// Opens (creating when missing) the store at `path`.
    pub(crate) fn open(path: &Path) -> Result<LocalDb, ClientError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // WAL lets readers of other processes (a second copy of an app) coexist with the
        // writer; FULL makes every commit durable before it returns.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&conn)?;
        let next_rev: i64 =
            conn.query_row("SELECT COALESCE(MAX(rev), 0) + 1 FROM pending", [], |row| {
                row.get(0)
            })?;
        let next_rev = from_sql_u64(next_rev, "pending.rev")?;
        Ok(LocalDb {
            inner: Mutex::new(Inner { conn, next_rev }),
        })
    }

    /// Runs `op` in one immediate transaction and commits it; any error rolls it back.
    fn with_tx<T>(
        &self,
        op: impl FnOnce(&Transaction<'_>, &mut u64) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        // A panic cannot leave the connection half-written (the transaction rolls back on
        // drop), so a poisoned lock is safe to take over.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { conn, next_rev } = &mut *inner;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = op(&tx, next_rev)?;
        tx.commit()?;
        Ok(out)
    }

    /// Loads a group (registering it when new): its position, the map the application
    /// sees, the number of pending changes.
    pub(crate) fn load(&self, group: &str) -> Result<Loaded, ClientError> {
        self.with_tx(|tx, _| {
            tx.execute("INSERT OR IGNORE INTO groups (name) VALUES (?1)", [group])?;
            let mut visible = Map::new();
            let mut from_docs = tx.prepare(
                "SELECT key, value FROM docs WHERE grp = ?1 AND value IS NOT NULL
                 AND key NOT IN (SELECT key FROM pending WHERE grp = ?1)",
            )?;
            let mut from_pending =
                tx.prepare("SELECT key, value FROM pending WHERE grp = ?1 AND value IS NOT NULL")?;
            for statement in [&mut from_docs, &mut from_pending] {
                let mut rows = statement.query([group])?;
                while let Some(row) = rows.next()? {
                    let key: String = row.get(0)?;
                    let bytes: Vec<u8> = row.get(1)?;
                    let value = decode(&bytes, &key)?;
                    visible.insert(key, value);
                }
            }
            Ok(Loaded {
                meta: meta(tx, group)?,
                visible,
                pending: pending_count(tx, group)?,
            })
        })
    }

    /// The group's position.
    pub(crate) fn meta(&self, group: &str) -> Result<GroupMeta, ClientError> {
        self.with_tx(|tx, _| meta(tx, group))
    }

    /// Records local edits as pending changes, folded per key: a key already pending keeps
    /// its base (the version the first unsent edit was made on) and takes the new value.
    pub(crate) fn write_local(
        &self,
        group: &str,
        edits: &[(String, Option<Packed>)],
    ) -> Result<Applied, ClientError> {
        self.with_tx(|tx, next_rev| {
            for (key, value) in edits {
                let rev = take_rev(next_rev)?;
                let value = value.as_ref().map(Packed::as_bytes);
                let updated = tx.execute(
                    "UPDATE pending SET value = ?3, rev = ?4 WHERE grp = ?1 AND key = ?2",
                    params![group, key, value, rev],
                )?;
                if updated == 0 {
                    tx.execute(
                        "INSERT INTO pending (grp, key, base, value, rev) VALUES (?1, ?2,
                         COALESCE((SELECT version FROM docs WHERE grp = ?1 AND key = ?2), 0), ?3, ?4)",
                        params![group, key, value, rev],
                    )?;
                }
            }
            // The edits are the caller's own map: nothing to report back.
            finish(tx, group, Vec::new())
        })
    }

    /// The oldest pending changes of a group: at most `max_changes`, and no more than
    /// `max_bytes` of values (but always one when any is pending).
    pub(crate) fn pending_batch(
        &self,
        group: &str,
        max_changes: usize,
        max_bytes: usize,
    ) -> Result<Vec<PendingChange>, ClientError> {
        self.with_tx(|tx, _| {
            let limit = i64::try_from(max_changes).unwrap_or(i64::MAX);
            let mut statement = tx.prepare(
                "SELECT key, base, value, rev FROM pending WHERE grp = ?1 ORDER BY rev LIMIT ?2",
            )?;
            let mut rows = statement.query(params![group, limit])?;
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                let value = row
                    .get::<_, Option<Vec<u8>>>(2)?
                    .map(|raw| packed(&raw, &key))
                    .transpose()?;
                bytes = bytes.saturating_add(key.len() + value.as_ref().map_or(0, Packed::len));
                if bytes > max_bytes && !batch.is_empty() {
                    break;
                }
                batch.push(PendingChange {
                    base: from_sql_u64(row.get(1)?, "pending.base")?,
                    rev: from_sql_u64(row.get(3)?, "pending.rev")?,
                    key,
                    value,
                });
            }
            Ok(batch)
        })
    }
}

/// The position of `group` (a group never registered is at the start).
fn meta(tx: &Transaction<'_>, group: &str) -> Result<GroupMeta, ClientError> {
    let row = tx
        .query_row(
            "SELECT epoch, cursor, reset FROM groups WHERE name = ?1",
            [group],
            |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()?;
    match row {
        None => Ok(GroupMeta {
            epoch: None,
            cursor: 0,
            reset: ResetMode::None,
        }),
        Some((epoch, cursor, reset)) => Ok(GroupMeta {
            epoch,
            cursor: from_sql_u64(cursor, "groups.cursor")?,
            reset: ResetMode::from_sql(reset)?,
        }),
    }
}

fn pending_count(tx: &Transaction<'_>, group: &str) -> Result<usize, ClientError> {
    let count: i64 = tx.query_row(
        "SELECT COUNT(*) FROM pending WHERE grp = ?1",
        [group],
        |row| row.get(0),
    )?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// The [`Applied`] of an operation that produced `edits`.
fn finish(
    tx: &Transaction<'_>,
    group: &str,
    edits: Vec<(String, Option<Value>)>,
) -> Result<Applied, ClientError> {
    let meta = meta(tx, group)?;
    Ok(Applied {
        edits,
        pending: pending_count(tx, group)?,
        cursor: meta.cursor,
        epoch: meta.epoch,
    })
}

/// What the application sees for `key`: the pending value when one is pending, else the
/// server's (`None` for absent, deleted or pending delete).
fn visible(tx: &Transaction<'_>, group: &str, key: &str) -> Result<Option<Value>, ClientError> {
    let pending: Option<Option<Vec<u8>>> = tx
        .query_row(
            "SELECT value FROM pending WHERE grp = ?1 AND key = ?2",
            [group, key],
            |row| row.get(0),
        )
        .optional()?;
    let bytes = match pending {
        Some(bytes) => bytes,
        None => tx
            .query_row(
                "SELECT value FROM docs WHERE grp = ?1 AND key = ?2",
                [group, key],
                |row| row.get(0),
            )
            .optional()?
            .flatten(),
    };
    bytes.map(|bytes| decode(&bytes, key)).transpose()
}

/// The next revision number.
fn take_rev(next_rev: &mut u64) -> Result<i64, ClientError> {
    let rev = to_sql_u64(*next_rev)?;
    *next_rev += 1;
    Ok(rev)
}

/// Stored value bytes, checked (the file may have been damaged or edited).
fn packed(bytes: &[u8], key: &str) -> Result<Packed, ClientError> {
    Packed::from_bytes(bytes, RESPONSE_MAX_DEPTH).map_err(|e| {
        ClientError::Corrupt(format!("the stored value of {key:?} does not decode: {e}"))
    })
}

fn decode(bytes: &[u8], key: &str) -> Result<Value, ClientError> {
    packed(bytes, key).map(|packed| packed.to_value())
}

/// A protocol number as SQLite stores it (i64). Versions and sequence numbers above
/// `i64::MAX` cannot come from a real server.
fn to_sql_u64(number: u64) -> Result<i64, ClientError> {
    i64::try_from(number)
        .map_err(|_| ClientError::Protocol(format!("number {number} is beyond 2^63")))
}

fn from_sql_u64(number: i64, column: &str) -> Result<u64, ClientError> {
    u64::try_from(number)
        .map_err(|_| ClientError::Corrupt(format!("{column}: negative number {number}")))
}

#[cfg(test)]
mod tests;
