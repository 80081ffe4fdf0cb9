//! Tombstone compaction (PROTOCOL.md section 8): removing tombstones written before a time,
//! and raising each group's floor to the highest seq removed, so that a client whose cursor
//! is below it pulls the group again from 0 instead of missing a delete.
//!
//! A step reads up to [`STEP_TOMBSTONES`] old tombstones (the partial index on their age
//! finds them without reading live documents), then each of their groups in a transaction
//! of its own that locks the group's row (`FOR UPDATE`), as a push's does: a push to the
//! group waits, or is waited for, so the floor never passes a seq a writer is handing out,
//! and a tombstone written again meanwhile (a re-created key) is left alone. Pushes to other
//! groups go on.
//!
//! Instances that compact on the same schedule do not repeat each other's work: a
//! compaction runs while holding an advisory lock, and one that finds it held leaves the
//! work to the instance that holds it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use deadpool_postgres::{Client, Pool};
use tokio_postgres::types::ToSql;

use crate::storage::{Compacted, StorageError};

/// Tombstones read in one step.
const STEP_TOMBSTONES: i64 = 5000;

/// The advisory lock one compacting instance holds: "atomsync" + 1, as the migrations'
/// lock is "atomsync".
const COMPACTION_LOCK: i64 = 0x61746f6d73796e64;

/// Old tombstones, by group id, a step at a time.
const FIND: &str = "SELECT group_id, key FROM atomsync_docs
     WHERE value IS NULL AND deleted_at < $1 LIMIT $2";

/// Locks a group's row, as a push does.
const LOCK: &str = "SELECT seq FROM atomsync_groups WHERE id = $1 FOR UPDATE";

/// Removes the group's (`$1`) tombstones among keys `$2` still older than `$3`, and raises
/// its floor to the highest seq removed; answers how many were removed.
const REMOVE: &str = "
    WITH gone AS (
        DELETE FROM atomsync_docs
        WHERE group_id = $1 AND key = ANY($2) AND value IS NULL AND deleted_at < $3
        RETURNING seq
    )
    UPDATE atomsync_groups SET floor = GREATEST(floor, (SELECT max(seq) FROM gone))
    WHERE id = $1
    RETURNING (SELECT count(*) FROM gone)";

/// Removes every tombstone written before `before`, group by group; answers what was
/// removed (nothing when another instance is compacting).
pub(super) async fn compact(pool: &Pool, before: SystemTime) -> Result<Compacted, StorageError> {
    let client = super::connect::get(pool).await?;
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&COMPACTION_LOCK])
        .await?
        .get(0);
    if !locked {
        tracing::info!("another instance is compacting this database; leaving it the work");
        return Ok(Compacted::default());
    }
    let done = steps(&client, before).await;
    let unlocked = client
        .query_one("SELECT pg_advisory_unlock($1)", &[&COMPACTION_LOCK])
        .await;
    if unlocked.is_err() {
        // A connection that may still hold the lock must not go back to the pool.
        drop(deadpool_postgres::Object::take(client));
    }
    done
}

async fn steps(client: &Client, before: SystemTime) -> Result<Compacted, StorageError> {
    let mut done = Compacted::default();
    // A group compacted over several steps counts once.
    let mut raised = BTreeSet::new();
    let (find, lock, remove) = futures_util::try_join!(
        client.prepare_cached(FIND),
        client.prepare_cached(LOCK),
        client.prepare_cached(REMOVE),
    )?;
    loop {
        let rows = client.query(&find, &[&before, &STEP_TOMBSTONES]).await?;
        let found = rows.len() as i64;
        let mut groups: BTreeMap<i64, Vec<Vec<u8>>> = BTreeMap::new();
        for row in &rows {
            groups.entry(row.get(0)).or_default().push(row.get(1));
        }
        drop(rows);
        for (group_id, keys) in &groups {
            let removed = remove_in_group(client, (&lock, &remove), *group_id, keys, before).await;
            let removed = match removed {
                Ok(n) => n,
                Err(e) => {
                    if !client.is_closed() {
                        let _ = client.batch_execute("ROLLBACK").await;
                    }
                    return Err(e);
                }
            };
            done.tombstones += removed;
            if removed > 0 {
                raised.insert(*group_id);
            }
        }
        if found < STEP_TOMBSTONES {
            done.groups = raised.len() as u64;
            return Ok(done);
        }
    }
}

/// One group's transaction, in one round trip: lock its row, remove, raise the floor,
/// commit.
async fn remove_in_group(
    client: &Client,
    (lock, remove): (&tokio_postgres::Statement, &tokio_postgres::Statement),
    group_id: i64,
    keys: &[Vec<u8>],
    before: SystemTime,
) -> Result<u64, StorageError> {
    let by_id: &[&(dyn ToSql + Sync)] = &[&group_id];
    let removing: &[&(dyn ToSql + Sync)] = &[&group_id, &keys, &before];
    let (_, _, removed, _) = futures_util::try_join!(
        client.batch_execute("BEGIN"),
        client.query_opt(lock, by_id),
        client.query_opt(remove, removing),
        client.batch_execute("COMMIT"),
    )?;
    Ok(removed.map_or(0, |row| row.get::<_, i64>(0).max(0) as u64))
}
