//! One batch's transaction: lock the group's row, read the keys, version-check, write,
//! notify, commit, in two round trips to the database.
//!
//! 1. `BEGIN`, the lock on the group's row (`SELECT ... FOR UPDATE`, which also reads the
//!    group's `seq`, the transaction's id, and the database's epoch and table oid, which
//!    must be those this server serves: else the batch is rolled back, the epoch checked
//!    again (`epoch`) and the batch tried anew) and the read of every key the batch touches
//!    go out together (tokio-postgres pipelines requests sent before their answers come).
//!    The server runs them in order, and in `READ COMMITTED` each statement sees what was
//!    committed when it starts: the read starts once the lock is granted, so it sees the
//!    commit of whoever held the lock before. Another instance writing the group waits at the
//!    lock until this transaction ends; that wait is what keeps a group's `seq`s gapless and
//!    unique and its version checks exact across instances. A new group's row is created
//!    first, then locked and read again.
//! 2. The pushes are version-checked in order, in memory (a later push of the batch sees
//!    what an earlier one wrote). A push whose conflicts would answer with more than the
//!    answer limit of current documents fails alone ([`StorageError::TooLarge`]), applying
//!    nothing; the others of the batch go on.
//! 3. One statement writes the final state of each key written, the group's new seq and
//!    `pg_notify('atomsync_commits', '<instance> <seq> <group>')`; `COMMIT` goes with it.
//!    If the write fails, the server turns that `COMMIT` into a rollback. With a state file,
//!    the WAL position flushed after the commit is read in the same round trip, for the
//!    server's lineage record.
//!
//! A failure before the commit applied nothing, and the connection goes back to the pool
//! with no transaction open. A connection lost while the commit was in flight leaves its
//! outcome unknown: the caller asks the database about the transaction's id.

use std::collections::HashMap;
use std::sync::Arc;

use atomsync_proto::Packed;
use atomsync_proto::wire::{Change, Doc, Op, PushResult};
use deadpool_postgres::{Client, Pool};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::read::doc_from_row;
use super::{clamp, unsigned};
use crate::storage::{Committed, PushOutcome, StorageError};

/// Locks the group's row and reads its id, its seq, this transaction's id, the database's
/// epoch and the oid of `atomsync_groups` (which a restore with `--clean` changes).
const LOCK_GROUP: &str = "
    SELECT id, seq, txid_current(), (SELECT value FROM atomsync_meta WHERE name = 'epoch'),
           'atomsync_groups'::regclass::oid::int8
    FROM atomsync_groups WHERE name = $1 FOR UPDATE";

/// The WAL position flushed to disk, read after a commit: at or past the commit's own
/// record when the commit waited for its flush.
const FLUSHED: &str = "SELECT (pg_current_wal_flush_lsn() - '0/0')::int8";

/// Creates a group's row; a concurrent creation by another instance is waited for, then left.
const CREATE_GROUP: &str =
    "INSERT INTO atomsync_groups (name, seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING";

/// The current state of the keys `$2` of the group named `$1`.
const CURRENT: &str = "SELECT key, version, seq, value FROM atomsync_docs
     WHERE group_id = (SELECT id FROM atomsync_groups WHERE name = $1) AND key = ANY($2)";

/// The channel commits are notified on.
pub(super) const CHANNEL: &str = "atomsync_commits";

/// Writes the final state of each key (`$2..$5`: keys, versions, seqs, values or NULL;
/// a tombstone records when it was written, for compaction), the group's seq (`$6`) and
/// the notification (`$8` on channel `$7`), in one statement.
const WRITE: &str = "
    WITH written AS (
        INSERT INTO atomsync_docs (group_id, key, version, seq, value, deleted_at)
        SELECT $1::int8, key, version, seq, value, CASE WHEN value IS NULL THEN now() END
        FROM unnest($2::bytea[], $3::int8[], $4::int8[], $5::bytea[])
             AS w (key, version, seq, value)
        ON CONFLICT (group_id, key) DO UPDATE
        SET version = excluded.version, seq = excluded.seq, value = excluded.value,
            deleted_at = excluded.deleted_at
    ), bumped AS (
        UPDATE atomsync_groups SET seq = $6::int8 WHERE id = $1::int8
    )
    SELECT pg_notify($7::text, $8::text)";

/// What one push did, computed inside the transaction, known durable once it commits; or
/// why it applied nothing (its answer would be too large).
pub(super) struct Applied {
    pub(super) outcome: Result<PushOutcome, StorageError>,
    pub(super) committed: Committed,
}

/// What a conflict adds to an answer besides its current document's key and value (as on
/// SQLite).
const CONFLICT_OVERHEAD: usize = 64;

/// A batch's commit: what each push did, and the WAL position flushed after it (when asked).
pub(super) struct Done {
    pub(super) applied: Vec<Applied>,
    pub(super) flushed: Option<u64>,
}

/// Why a batch's transaction did not commit.
pub(super) enum Failure {
    /// Before the commit, or refused by it: nothing was applied.
    Before(StorageError),
    /// The database's epoch (or its tables) is not the one this server serves: nothing was
    /// applied; check the epoch and try again.
    Stale,
    /// The connection was lost while the commit was in flight: it may have been made.
    Unknown {
        error: StorageError,
        /// The transaction's id, for `txid_status`.
        xid: i64,
        /// What the pushes did, if it was.
        applied: Vec<Applied>,
    },
}

impl<E: Into<StorageError>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Before(e.into())
    }
}

/// How a batch is committed: who commits it, and how large a push's answer may be.
pub(super) struct Batch<'a> {
    /// Names this server in the notification.
    pub(super) instance: &'a str,
    pub(super) group: &'a Arc<str>,
    /// Each push's changes.
    pub(super) pushes: &'a [&'a [Change]],
    /// The most bytes of conflicting documents one push answers with.
    pub(super) max_answer_bytes: usize,
    /// The epoch this server serves and the oid of `atomsync_groups` it knows.
    pub(super) known: &'a (Arc<str>, i64),
    /// Read the WAL position flushed after the commit (for the state file).
    pub(super) flushed: bool,
}

/// Applies the batch's pushes to its group in one transaction and commits it.
pub(super) async fn attempt(pool: &Pool, batch: &Batch<'_>) -> Result<Done, Failure> {
    let client = super::connect::get(pool).await?;
    let result = transact(&client, batch).await;
    if matches!(result, Err(Failure::Before(_) | Failure::Stale))
        && !client.is_closed()
        && client.batch_execute("ROLLBACK").await.is_err()
    {
        // A connection that cannot even roll back must not go back to the pool.
        drop(deadpool_postgres::Object::take(client));
    }
    result
}

async fn transact(client: &Client, batch: &Batch<'_>) -> Result<Done, Failure> {
    let Batch {
        instance,
        group,
        pushes,
        max_answer_bytes,
        known,
        flushed,
    } = *batch;
    let mut keys: Vec<&[u8]> = pushes
        .iter()
        .flat_map(|changes| changes.iter().map(|c| c.key.as_bytes()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (lock, current) = futures_util::try_join!(
        client.prepare_cached(LOCK_GROUP),
        client.prepare_cached(CURRENT)
    )?;
    let name: &str = group;
    let (by_name, by_keys): (&[&(dyn ToSql + Sync)], &[&(dyn ToSql + Sync)]) =
        (&[&name], &[&name, &keys]);
    let (_, locked, mut rows) = futures_util::try_join!(
        client.batch_execute("BEGIN"),
        client.query_opt(&lock, by_name),
        client.query(&current, by_keys),
    )?;
    let locked = match locked {
        Some(row) => row,
        None => {
            let create = client.prepare_cached(CREATE_GROUP).await?;
            client.execute(&create, &[&name]).await?;
            // Read again under the lock: another instance may have created the group,
            // and written to it, since the first read.
            let (locked, again) = futures_util::try_join!(
                client.query_one(&lock, by_name),
                client.query(&current, by_keys),
            )?;
            rows = again;
            locked
        }
    };
    let (group_id, seq, xid): (i64, u64, i64) = (
        locked.get(0),
        unsigned(locked.get(1), "seq")?,
        locked.get(2),
    );
    let (epoch, groups_oid): (Option<&str>, i64) = (locked.get(3), locked.get(4));
    if epoch != Some(&*known.0) || groups_oid != known.1 {
        return Err(Failure::Stale);
    }
    let (applied, writes) = check(group, seq, pushes, &rows, max_answer_bytes, &known.0)?;
    let last = applied.last().map_or(seq, |a| a.committed.seq);
    let mut lsn = None;
    let committed = if last == seq {
        // Only conflicts: nothing to write (the group's row may be new).
        client.batch_execute("COMMIT").await
    } else {
        let write = client.prepare_cached(WRITE).await?;
        let notice = format!("{instance} {last} {group}");
        let keys: Vec<&[u8]> = writes.keys.iter().map(|k| k.as_bytes()).collect();
        let values: Vec<Option<&[u8]>> = (writes.values.iter())
            .map(|v| v.as_ref().map(Packed::as_bytes))
            .collect();
        let params: [&(dyn ToSql + Sync); 8] = [
            &group_id,
            &keys,
            &writes.versions,
            &writes.seqs,
            &values,
            &clamp(last),
            &CHANNEL,
            &notice,
        ];
        let after = async {
            match flushed {
                true => client.query_one(FLUSHED, &[]).await.map(Some),
                false => Ok(None),
            }
        };
        futures_util::try_join!(
            client.query_one(&write, &params),
            client.batch_execute("COMMIT"),
            after,
        )
        .map(|(_, _, flushed)| lsn = flushed.map(|row| row.get::<_, i64>(0)))
    };
    match committed.map_err(StorageError::from) {
        Ok(()) => Ok(Done {
            applied,
            flushed: lsn.map(|n| n.max(0) as u64),
        }),
        // The connection went (even with a word from the server, such as "terminating
        // connection"): the commit may have been made just before.
        Err(e) if super::lost_connection(&e) => Err(Failure::Unknown {
            error: e,
            xid,
            applied,
        }),
        // Otherwise the server answered: the write or the commit was refused, so nothing
        // was made.
        Err(e) => Err(Failure::Before(e)),
    }
}

/// The final state of every key written by a batch, as the arrays `WRITE` takes.
#[derive(Default)]
struct Writes {
    keys: Vec<String>,
    versions: Vec<i64>,
    seqs: Vec<i64>,
    values: Vec<Option<Packed>>,
}

/// Version-checks every change of `pushes` in order against the keys' current state
/// (`rows` as stored, then as earlier changes of the batch left them): each is accepted
/// iff its base is the key's current version. A push with several conflicts whose current
/// documents pass `max_answer_bytes` fails whole ([`StorageError::TooLarge`]) and applies
/// nothing; one conflict is always answered, whatever its size. Returns each push's
/// outcome and what to write.
fn check(
    group: &Arc<str>,
    mut seq: u64,
    pushes: &[&[Change]],
    rows: &[Row],
    max_answer_bytes: usize,
    epoch: &Arc<str>,
) -> Result<(Vec<Applied>, Writes), StorageError> {
    let mut current: HashMap<String, Doc> = HashMap::with_capacity(rows.len());
    for row in rows {
        let doc = doc_from_row(row)?;
        current.insert(doc.key.clone(), doc);
    }
    let mut written: Vec<String> = Vec::new();
    let mut applied = Vec::with_capacity(pushes.len());
    for changes in pushes {
        // A push's keys are distinct (validation refuses a repeated one), so its conflicts
        // depend only on the state before it: refused whole before anything is applied.
        if let Err(e) = answer_fits(changes, &current, max_answer_bytes) {
            applied.push(Applied {
                outcome: Err(e),
                committed: Committed {
                    group: group.clone(),
                    docs: Vec::new(),
                    seq,
                    epoch_changed: false,
                },
            });
            continue;
        }
        let mut results = Vec::with_capacity(changes.len());
        let mut docs = Vec::new();
        for change in changes.iter() {
            let version = current.get(&change.key).map_or(0, |d| d.version);
            if change.base != version {
                results.push(PushResult::Conflict {
                    key: change.key.clone(),
                    current: current.get(&change.key).cloned(),
                });
                continue;
            }
            seq += 1;
            let doc = Doc {
                key: change.key.clone(),
                version: version + 1,
                seq,
                value: match &change.op {
                    Op::Set(value) => Some(value.clone()),
                    Op::Delete => None,
                },
            };
            results.push(PushResult::Accepted {
                key: doc.key.clone(),
                version: doc.version,
                seq,
            });
            current.insert(doc.key.clone(), doc.clone());
            written.push(doc.key.clone());
            docs.push(doc);
        }
        applied.push(Applied {
            outcome: Ok(PushOutcome {
                results,
                seq,
                epoch: epoch.clone(),
            }),
            committed: Committed {
                group: group.clone(),
                docs,
                seq,
                epoch_changed: false,
            },
        });
    }
    written.sort_unstable();
    written.dedup();
    let mut writes = Writes::default();
    for key in written {
        let doc = &current[&key];
        writes.versions.push(clamp(doc.version));
        writes.seqs.push(clamp(doc.seq));
        writes.values.push(doc.value.clone());
        writes.keys.push(key);
    }
    Ok((applied, writes))
}

/// Fails when the conflicts of `changes` against `current` would answer with more than
/// `max_answer_bytes` of current documents (past the first conflict, which always fits).
fn answer_fits(
    changes: &[Change],
    current: &HashMap<String, Doc>,
    max_answer_bytes: usize,
) -> Result<(), StorageError> {
    let mut answer_bytes = 0usize;
    let mut conflicts = 0usize;
    for (index, change) in changes.iter().enumerate() {
        let existing = current.get(&change.key);
        if change.base == existing.map_or(0, |d| d.version) {
            continue;
        }
        answer_bytes += CONFLICT_OVERHEAD
            + existing.map_or(0, |d| d.key.len() + d.value.as_ref().map_or(0, |v| v.len()));
        conflicts += 1;
        if answer_bytes > max_answer_bytes && conflicts > 1 {
            return Err(StorageError::TooLarge(format!(
                "changes[{index}]: the conflicting documents this push would answer with pass \
                 the {max_answer_bytes}-byte limit of an answer; nothing was applied; push \
                 fewer changes at a time"
            )));
        }
    }
    Ok(())
}
