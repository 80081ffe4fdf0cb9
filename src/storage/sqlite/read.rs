//! Reads: pulls, catch-up pages and health, each in one read transaction on a pooled
//! connection, so a page is a consistent snapshot even while the writer commits.

use atomsync_proto::Packed;
use atomsync_proto::wire::Doc;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::storage::{PullPage, StorageError};

/// A group as stored: its row id, sequence and compaction floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredGroup {
    /// Row id in `groups`.
    pub id: i64,
    /// The seq of the group's latest accepted write.
    pub seq: u64,
    /// The highest seq among removed tombstones (0: none removed).
    pub floor: u64,
}

/// Reads the group's row, if the group has ever been written.
pub fn group(conn: &Connection, name: &str) -> Result<Option<StoredGroup>, StorageError> {
    Ok(conn
        .prepare_cached("SELECT id, seq, floor FROM groups WHERE name = ?1")?
        .query_row(params![name], |r| {
            Ok(StoredGroup {
                id: r.get(0)?,
                seq: r.get(1)?,
                floor: r.get(2)?,
            })
        })
        .optional()?)
}

/// The group's current sequence (0 for a group never written).
pub fn group_seq(conn: &Connection, name: &str) -> Result<u64, StorageError> {
    Ok(group(conn, name)?.map_or(0, |g| g.seq))
}

/// Documents of `name` with `since < seq <= upto`, at most `limit`, in one snapshot.
/// A `since` below the group's floor reads from 0 and says `reset`.
pub fn pull(
    conn: &mut Connection,
    name: &str,
    since: u64,
    limit: usize,
    upto: u64,
) -> Result<PullPage, StorageError> {
    let tx = conn.transaction()?;
    let Some(g) = group(&tx, name)? else {
        return Ok(PullPage {
            docs: Vec::new(),
            seq: since,
            more: false,
            reset: false,
        });
    };
    let reset = since > 0 && since < g.floor;
    let since = if reset { 0 } else { since };
    // SQLite integers are i64: a cursor beyond that cannot exist, so clamp rather than fail.
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let fetch = limit.saturating_add(1);
    let mut docs = Vec::with_capacity(limit.min(10_000) + 1);
    {
        let mut stmt = tx.prepare_cached(
            "SELECT key, version, seq, value FROM docs
             WHERE group_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
        )?;
        let mut rows = stmt.query(params![
            g.id,
            clamp(since),
            clamp(upto),
            clamp(fetch as u64)
        ])?;
        while let Some(row) = rows.next()? {
            docs.push(doc_from_row(row)?);
        }
    }
    tx.finish()?;
    let more = docs.len() > limit;
    docs.truncate(limit);
    let seq = docs.last().map_or(since, |d| d.seq);
    Ok(PullPage {
        docs,
        seq,
        more,
        reset,
    })
}

/// A `docs` row (`key, version, seq, value`) as a wire document.
pub(super) fn doc_from_row(row: &Row<'_>) -> rusqlite::Result<Doc> {
    let value: Option<Vec<u8>> = row.get(3)?;
    Ok(Doc {
        key: row.get(0)?,
        version: row.get(1)?,
        seq: row.get(2)?,
        // The writer stores only bytes it encoded itself from a validated value.
        value: value.map(Packed::from_trusted),
    })
}

/// Answers when the database can be read.
pub fn health(conn: &Connection) -> Result<(), StorageError> {
    conn.query_row("SELECT count(*) FROM meta", [], |r| r.get::<_, i64>(0))?;
    Ok(())
}
