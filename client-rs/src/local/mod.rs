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
//! `swap` returns. Only documents the server sent are committed without waiting for the
//! disk (they come with the cursor, so a power cut loses both and the next sync fetches
//! them again), and checkpointed in bulk; see `Commit`. They are stored 64 rows per
//! statement (`tx::DocWriter`).

mod schema;
mod sync;
mod tx;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use atomsync_proto::wire::{Doc, RESPONSE_MAX_DEPTH};
use atomsync_proto::{Packed, Value};
use rusqlite::{Connection, TransactionBehavior, params};

pub(crate) use sync::{EpochCheck, Settlement};
use tx::GroupTx;

use crate::{ClientError, Map};

/// How long a write waits for another connection to the same file (another process or a
/// store being closed) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection: room for every statement of the crate.
const STATEMENT_CACHE: usize = 64;

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

/// A document the server sent, with its value as a [`Value`] when the frame decoder
/// already read it (`ServerFrame::decode_with_values`); otherwise it is decoded from the
/// document's bytes when the application is to see it.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) doc: Doc,
    /// `doc.value` decoded, if it was; `None` for a tombstone too.
    pub(crate) value: Option<Value>,
}

impl From<Doc> for Received {
    fn from(doc: Doc) -> Received {
        Received { doc, value: None }
    }
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

/// The SQLite connection with what it keeps beside the file.
struct Inner {
    conn: Connection,
    next_rev: u64,
    /// Pending changes per group, counted once per group and then kept by every
    /// statement that adds or drops one (see [`GroupTx`]).
    pending: HashMap<String, usize>,
    /// The connection's `synchronous` setting now (`Durable` or `Relaxed`).
    synchronous: Commit,
}

/// How a transaction's commit reaches the disk.
///
/// The file is in WAL mode, where a commit is atomic either way and the WAL is written in
/// order: an fsync makes every commit before it durable too. What differs is whether the
/// commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// `synchronous=FULL`: on disk before it returns. Everything the application wrote
    /// (it is told a write is done only once it would survive a power cut), every push
    /// outcome and reset (so that an acknowledged push is not pushed again, and a
    /// swept key does not come back).
    Durable,
    /// `synchronous=NORMAL`: in the WAL, on disk at the next durable commit or
    /// checkpoint. Only for documents the server sent: they go with the cursor in one
    /// transaction, so a power cut loses both together and the next sync fetches them
    /// again. An fsync per `changes` frame would otherwise bound a client to a few
    /// hundred frames a second on an ordinary disk, far below what a server commits.
    Relaxed,
    /// A transaction that writes nothing: deferred (it takes no write lock), and the
    /// setting in force stays, so that reads between the engine's commits do not switch
    /// it back and forth.
    Read,
}

/// WAL pages (of 4 KiB) after which a durable commit checkpoints: SQLite's default.
const DURABLE_CHECKPOINT_PAGES: i64 = 1000;

/// WAL pages after which a relaxed commit checkpoints: 32 MiB. A checkpoint copies the WAL
/// into the file and, even with `synchronous=NORMAL`, waits for two fsyncs; at SQLite's
/// default a first sync of 100,000 documents (about 20 MiB written) would checkpoint five
/// times, each time waiting for the disk while the documents it streams queue up. At this
/// threshold documents the server sent are copied in bulk, a page written by several
/// batches once, and the next durable commit (the end of the catch-up at the latest)
/// checkpoints at the default threshold again. The WAL file is cut back to
/// [`WAL_SIZE_LIMIT`] once a checkpoint has emptied it.
const RELAXED_CHECKPOINT_PAGES: i64 = 8192;

/// The size the WAL file is truncated to after a checkpoint emptied it.
const WAL_SIZE_LIMIT: i64 = 4 << 20;

impl Commit {
    /// Makes the commits that follow on `conn` behave as `self` says.
    fn set(self, conn: &Connection) -> Result<(), ClientError> {
        let (synchronous, checkpoint) = match self {
            Commit::Durable => ("FULL", DURABLE_CHECKPOINT_PAGES),
            Commit::Relaxed => ("NORMAL", RELAXED_CHECKPOINT_PAGES),
            Commit::Read => return Ok(()),
        };
        conn.pragma_update(None, "synchronous", synchronous)?;
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint)?;
        Ok(())
    }
}

/// The local database of one store.
///
/// A std `Mutex` around one connection, not a pool: every use is one short transaction,
/// from an application thread (`swap`) or a blocking thread of the engine, never held
/// across an `.await`; SQLite serializes writers anyway. The counters beside the
/// connection assume, as the revision numbers always did, that one process writes the
/// file at a time.
pub(crate) struct LocalDb {
    inner: Mutex<Inner>,
}

impl LocalDb {
    /// Opens (creating when missing) the store at `path`.
    pub(crate) fn open(path: &Path) -> Result<LocalDb, ClientError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // Setting up a new file (WAL mode, the schema) needs no fsync of its own: lost to
        // a power cut, it is done again on the next open, and the first durable commit
        // syncs it. An application opening its store for the first time waits for none.
        let synchronous = Commit::Relaxed;
        synchronous.set(&conn)?;
        // WAL lets readers of other processes (a second copy of an app) coexist with the
        // writer. Each transaction then sets `synchronous` as its `Commit` says.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        // Every statement of the crate stays prepared (there are about 25).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        schema::migrate(&mut conn)?;
        let next_rev: i64 =
            conn.query_row("SELECT COALESCE(MAX(rev), 0) + 1 FROM pending", [], |row| {
                row.get(0)
            })?;
        let next_rev = from_sql_u64(next_rev, "pending.rev")?;
        Ok(LocalDb {
            inner: Mutex::new(Inner {
                conn,
                next_rev,
                pending: HashMap::new(),
                synchronous,
            }),
        })
    }

    /// Runs `op` in one immediate transaction on `group` and commits it as `commit` says;
    /// any error rolls it back, and with it what `op` did to the counters.
    fn with_group<T>(
        &self,
        group: &str,
        commit: Commit,
        op: impl FnOnce(&mut GroupTx<'_>) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        // A panic cannot leave the connection half-written (the transaction rolls back on
        // drop), so a poisoned lock is safe to take over.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner {
            conn,
            next_rev,
            pending,
            synchronous,
        } = &mut *inner;
        if commit != Commit::Read && *synchronous != commit {
            // Outside any transaction: it applies to the commits that follow.
            commit.set(conn)?;
            *synchronous = commit;
        }
        let behavior = match commit {
            Commit::Read => TransactionBehavior::Deferred,
            Commit::Durable | Commit::Relaxed => TransactionBehavior::Immediate,
        };
        let tx = conn.transaction_with_behavior(behavior)?;
        let count = match pending.get(group) {
            Some(count) => *count,
            None => tx::count_pending(&tx, group)?,
        };
        let mut group_tx = GroupTx {
            tx,
            group,
            next_rev: *next_rev,
            pending: count,
        };
        let out = op(&mut group_tx)?;
        let GroupTx {
            tx,
            next_rev: rev_after,
            pending: count_after,
            ..
        } = group_tx;
        tx.commit()?;
        *next_rev = rev_after;
        match pending.get_mut(group) {
            Some(count) => *count = count_after,
            None => {
                pending.insert(group.to_owned(), count_after);
            }
        }
        Ok(out)
    }

    /// Loads a group (registering it when new): its position, the map the application
    /// sees, the number of pending changes.
    pub(crate) fn load(&self, group: &str) -> Result<Loaded, ClientError> {
        // Registering the group again after a power cut costs nothing: no fsync here.
        self.with_group(group, Commit::Relaxed, |g| {
            g.statement("INSERT OR IGNORE INTO groups (name) VALUES (?1)")?
                .execute([group])?;
            let mut visible = Map::new();
            for sql in [
                "SELECT key, value FROM docs WHERE grp = ?1 AND value IS NOT NULL
                 AND key NOT IN (SELECT key FROM pending WHERE grp = ?1)",
                "SELECT key, value FROM pending WHERE grp = ?1 AND value IS NOT NULL",
            ] {
                let mut statement = g.statement(sql)?;
                let mut rows = statement.query([group])?;
                while let Some(row) = rows.next()? {
                    let key: String = row.get(0)?;
                    let value = decode(blob(row, 1)?.unwrap_or_default(), &key)?;
                    visible.insert(key, value);
                }
            }
            Ok(Loaded {
                meta: g.meta()?,
                visible,
                pending: g.pending,
            })
        })
    }

    /// The group's position.
    pub(crate) fn meta(&self, group: &str) -> Result<GroupMeta, ClientError> {
        self.with_group(group, Commit::Read, |g| g.meta())
    }

    /// Records local edits as pending changes, folded per key: a key already pending keeps
    /// its base (the version the first unsent edit was made on) and takes the new value.
    pub(crate) fn write_local(
        &self,
        group: &str,
        edits: &[(String, Option<Packed>)],
    ) -> Result<Applied, ClientError> {
        self.with_group(group, Commit::Durable, |g| {
            for (key, value) in edits {
                let rev = g.take_rev()?;
                let value = value.as_ref().map(Packed::as_bytes);
                let updated = g
                    .statement("UPDATE pending SET value = ?3, rev = ?4 WHERE grp = ?1 AND key = ?2")?
                    .execute(params![group, key, value, rev])?;
                if updated == 0 {
                    g.statement(
                        "INSERT INTO pending (grp, key, base, value, rev) VALUES (?1, ?2,
                         COALESCE((SELECT version FROM docs WHERE grp = ?1 AND key = ?2), 0), ?3, ?4)",
                    )?
                    .execute(params![group, key, value, rev])?;
                    g.pending += 1;
                }
            }
            // The edits are the caller's own map: nothing to report back.
            g.finish(Vec::new())
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
        self.with_group(group, Commit::Read, |g| {
            if g.pending == 0 {
                return Ok(Vec::new());
            }
            let limit = i64::try_from(max_changes).unwrap_or(i64::MAX);
            let mut statement = g.statement(
                "SELECT key, base, value, rev FROM pending WHERE grp = ?1 ORDER BY rev LIMIT ?2",
            )?;
            let mut rows = statement.query(params![group, limit])?;
            let mut batch = Vec::new();
            let mut bytes = 0usize;
            while let Some(row) = rows.next()? {
                let key: String = row.get(0)?;
                let value = blob(row, 2)?.map(|raw| packed(raw, &key)).transpose()?;
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

/// Stored value bytes, checked (the file may have been damaged or edited).
fn packed(bytes: &[u8], key: &str) -> Result<Packed, ClientError> {
    Packed::from_bytes(bytes, RESPONSE_MAX_DEPTH).map_err(|e| {
        ClientError::Corrupt(format!("the stored value of {key:?} does not decode: {e}"))
    })
}

/// A BLOB column read in place (`None` for NULL).
fn blob<'row>(
    row: &'row rusqlite::Row<'_>,
    column: usize,
) -> Result<Option<&'row [u8]>, ClientError> {
    row.get_ref(column)?
        .as_blob_or_null()
        .map_err(|e| ClientError::Corrupt(format!("column {column}: {e}")))
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
