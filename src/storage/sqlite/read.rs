//! Reads: pulls, catch-up pages and health, each in one read transaction on a pooled
//! connection, so a page is a consistent snapshot even while the writer commits.

use std::sync::Arc;

use atomsync_proto::Packed;
use atomsync_proto::wire::Doc;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::storage::{PageEnd, PageQuery, StorageError};

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

/// A page of `name` as `query` says, in one snapshot, each document handed to `offer` as
/// it is read until it refuses one. A `since` below the group's floor (unless `full`)
/// reads from 0 and says `reset`.
pub fn pull_into(
    conn: &mut Connection,
    name: &str,
    query: &PageQuery,
    epoch: &Arc<str>,
    offer: &mut dyn FnMut(Doc) -> bool,
) -> Result<PageEnd, StorageError> {
    let tx = conn.transaction()?;
    let Some(g) = group(&tx, name)? else {
        return Ok(PageEnd {
            seq: query.since,
            more: false,
            reset: false,
            floor: 0,
            epoch: epoch.clone(),
        });
    };
    let reset = !query.full && query.since > 0 && query.since < g.floor;
    let since = if reset { 0 } else { query.since };
    // SQLite integers are i64: a cursor beyond that cannot exist, so clamp rather than fail.
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut seq = since;
    let mut taken = 0usize;
    let mut more = false;
    {
        let mut stmt = tx.prepare_cached(
            "SELECT key, version, seq, value FROM docs
             WHERE group_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4",
        )?;
        let fetch = query.limit.saturating_add(1) as u64;
        let mut rows = stmt.query(params![g.id, clamp(since), clamp(query.upto), clamp(fetch)])?;
        while let Some(row) = rows.next()? {
            let doc = doc_from_row(row)?;
            let doc_seq = doc.seq;
            if taken >= query.limit || !offer(doc) {
                more = true;
                break;
            }
            taken += 1;
            seq = doc_seq;
        }
    }
    tx.finish()?;
    Ok(PageEnd {
        seq,
        more,
        reset,
        floor: g.floor,
        epoch: epoch.clone(),
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
