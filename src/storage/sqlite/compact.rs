//! Tombstone compaction (PROTOCOL.md section 8): removing tombstones written before a
//! time, and raising each group's floor to the highest seq removed, so that a client whose
//! cursor is below it pulls the group again from 0 instead of missing a delete.
//!
//! Runs on the writer thread, one short transaction of at most [`STEP_TOMBSTONES`] at a
//! time, each queued behind the pushes that arrived meanwhile: a compaction of millions of
//! tombstones never holds the writer for long. The partial index on the tombstones' age
//! finds them without reading live documents.

use std::collections::HashMap;

use rusqlite::{Transaction, params};

use crate::storage::StorageError;

/// Tombstones removed in one transaction.
pub(super) const STEP_TOMBSTONES: usize = 5000;

/// What one step removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Step {
    /// Tombstones removed.
    pub(super) removed: u64,
    /// Groups whose floor rose.
    pub(super) groups: u64,
    /// More tombstones old enough remain.
    pub(super) more: bool,
}

/// Removes up to [`STEP_TOMBSTONES`] tombstones written before `before_ms` (Unix
/// milliseconds) inside `tx`, raising their groups' floors.
pub(super) fn step(tx: &Transaction<'_>, before_ms: i64) -> Result<Step, StorageError> {
    let mut found: Vec<(i64, String, u64)> = Vec::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT group_id, key, seq FROM docs
             WHERE value IS NULL AND deleted_at < ?1 LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![before_ms, (STEP_TOMBSTONES + 1) as i64])?;
        while let Some(row) = rows.next()? {
            found.push((row.get(0)?, row.get(1)?, row.get(2)?));
        }
    }
    let more = found.len() > STEP_TOMBSTONES;
    found.truncate(STEP_TOMBSTONES);
    let mut floors: HashMap<i64, u64> = HashMap::new();
    {
        let mut delete = tx.prepare_cached(
            "DELETE FROM docs WHERE group_id = ?1 AND key = ?2 AND value IS NULL",
        )?;
        for (group_id, key, seq) in &found {
            delete.execute(params![group_id, key])?;
            let floor = floors.entry(*group_id).or_default();
            *floor = (*floor).max(*seq);
        }
    }
    let mut raise = tx.prepare_cached("UPDATE groups SET floor = MAX(floor, ?2) WHERE id = ?1")?;
    for (group_id, floor) in &floors {
        raise.execute(params![group_id, floor])?;
    }
    Ok(Step {
        removed: found.len() as u64,
        groups: floors.len() as u64,
        more,
    })
}
