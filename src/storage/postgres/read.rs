//! Reads: pulls and catch-up pages, a group's seq, documents by key, the admin API's
//! counts, health. A read of more than one statement runs in a `REPEATABLE READ READ ONLY`
//! transaction, so it sees one snapshot while other instances commit.
//!
//! Reads are bounded in bytes by the database itself: a running sum of `octet_length`
//! (which reads a stored value's length without loading the value) marks the rows that
//! fit, and only those carry their value back. A pull reads its page in such chunks,
//! handing each document to the page's sink (which encodes it and says when the page is
//! full) before reading the next chunk; pages in key order are bounded the same way. So a
//! request never loads much more than one page, whatever `limit` asks and however large
//! the documents are.

use std::sync::{Arc, LazyLock};

use atomsync_proto::Packed;
use atomsync_proto::wire::Doc;
use deadpool_postgres::{Client, Transaction};
use tokio_postgres::{IsolationLevel, Row};

use super::{clamp, unsigned};
use crate::storage::browse::{GroupStats, KeyPage, KeyRange};
use crate::storage::{PageEnd, PageQuery, PageSink, StorageError};

/// A group as stored: its row id, sequence and compaction floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct StoredGroup {
    pub(super) id: i64,
    pub(super) seq: u64,
    pub(super) floor: u64,
}

/// Reads the group's row, if the group has ever been written.
pub(super) async fn group(
    tx: &Transaction<'_>,
    name: &str,
) -> Result<Option<StoredGroup>, StorageError> {
    let stmt = tx.prepare_cached(SELECT_GROUP).await?;
    match tx.query_opt(&stmt, &[&name]).await? {
        Some(row) => Ok(Some(StoredGroup {
            id: row.get(0),
            seq: unsigned(row.get(1), "seq")?,
            floor: unsigned(row.get(2), "floor")?,
        })),
        None => Ok(None),
    }
}

const SELECT_GROUP: &str = "SELECT id, seq, floor FROM atomsync_groups WHERE name = $1";

/// The database's epoch, and the group's row if it has been written, in one snapshot.
const EPOCH_AND_GROUP: &str = "
    SELECT m.value, g.id, g.seq, g.floor
    FROM atomsync_meta m LEFT JOIN atomsync_groups g ON g.name = $1
    WHERE m.name = 'epoch'";

/// The group's current sequence (0 for a group never written).
pub(super) async fn group_seq(client: &Client, name: &str) -> Result<u64, StorageError> {
    let stmt = client.prepare_cached(SELECT_GROUP).await?;
    match client.query_opt(&stmt, &[&name]).await? {
        Some(row) => unsigned(row.get(1), "seq"),
        None => Ok(0),
    }
}

/// A page of `atomsync_docs` in `order`, of the rows `filter` keeps, with a running byte
/// count: `limit` and `bytes` (SQL expressions) bound it. A row is `kept` while within both
/// (the first row always is); the row after the last kept one comes back without its value,
/// only to say that more remain (it is the second row, or the first whose bytes before it
/// fit the budget). Rows are `key, version, seq, value, kept`.
fn paged(filter: &str, order: &str, limit: &str, bytes: &str) -> String {
    let size = "octet_length(key) + coalesce(octet_length(value), 0)";
    format!(
        "SELECT key, version, seq, CASE WHEN kept THEN value END, kept FROM (
             SELECT key, version, seq, value, before, n,
                    n <= {limit} AND (n = 1 OR before + size <= {bytes}) AS kept
             FROM (
                 SELECT key, version, seq, value, {size} AS size,
                        row_number() OVER w AS n,
                        sum({size}) OVER w - ({size}) AS before
                 FROM atomsync_docs
                 WHERE {filter}
                 WINDOW w AS (ORDER BY {order} ROWS UNBOUNDED PRECEDING)
                 ORDER BY {order}
                 LIMIT {limit} + 1
             ) counted
         ) page
         WHERE kept OR before <= {bytes} OR n = 2
         ORDER BY {order}"
    )
}

/// A chunk in `seq` order: group `$1`, `$2 < seq <= $3`, at most `$4` rows and `$5` bytes.
static PULL: LazyLock<String> = LazyLock::new(|| {
    paged(
        "group_id = $1::int8 AND seq > $2::int8 AND seq <= $3::int8",
        "seq",
        "$4::int8",
        "$5::int8",
    )
});

/// The most bytes of keys and values one round trip of a page reads (at least one
/// document): a page is read a chunk at a time, each handed to the sink before the next is
/// read, so a request holds one chunk beside the page the sink builds.
const CHUNK_BYTES: i64 = 1 << 20;

/// A page of `name` as `query` says, in one snapshot, each document handed to `sink` as
/// it is read until it refuses one; `offered` counts the documents it took. A `since`
/// below the group's floor (unless `full`) reads from 0 and says `reset`. The page ends
/// with the epoch of its snapshot.
pub(super) async fn pull_into<S: PageSink>(
    client: &mut Client,
    name: &str,
    query: &PageQuery,
    sink: &mut S,
    offered: &mut usize,
) -> Result<PageEnd, StorageError> {
    let tx = snapshot(client).await?;
    let stmt = tx.prepare_cached(EPOCH_AND_GROUP).await?;
    let row = tx.query_one(&stmt, &[&name]).await?;
    let epoch: Arc<str> = row.get::<_, &str>(0).into();
    let Some(id) = row.get::<_, Option<i64>>(1) else {
        return Ok(PageEnd {
            seq: query.since,
            more: false,
            reset: false,
            floor: 0,
            epoch,
        });
    };
    let g = StoredGroup {
        id,
        seq: unsigned(row.get(2), "seq")?,
        floor: unsigned(row.get(3), "floor")?,
    };
    let reset = !query.full && query.since > 0 && query.since < g.floor;
    let mut seq = if reset { 0 } else { query.since };
    let stmt = tx.prepare_cached(&PULL).await?;
    let mut taken = 0usize;
    let more = 'page: loop {
        let want = query.limit.saturating_sub(taken);
        let rows = tx
            .query(
                &stmt,
                &[
                    &g.id,
                    &clamp(seq),
                    &clamp(query.upto),
                    &clamp(want as u64),
                    &CHUNK_BYTES,
                ],
            )
            .await?;
        let (docs, beyond) = kept_docs(&rows)?;
        drop(rows);
        for doc in docs {
            let doc_seq = doc.seq;
            if !sink.offer(doc) {
                break 'page true;
            }
            *offered += 1;
            taken += 1;
            seq = doc_seq;
        }
        if !beyond {
            break false;
        }
        if taken >= query.limit {
            break true;
        }
    };
    tx.commit().await?;
    Ok(PageEnd {
        seq,
        more,
        reset,
        floor: g.floor,
        epoch,
    })
}

/// The kept rows of a page as documents, and whether a row past them came back.
fn kept_docs(rows: &[Row]) -> Result<(Vec<Doc>, bool), StorageError> {
    let mut docs = Vec::with_capacity(rows.len());
    let mut more = false;
    for row in rows {
        if row.get::<_, bool>(4) {
            docs.push(doc_from_row(row)?);
        } else {
            more = true;
        }
    }
    Ok((docs, more))
}

/// A row `key, version, seq, value` as a wire document.
pub(super) fn doc_from_row(row: &Row) -> Result<Doc, StorageError> {
    let key: Vec<u8> = row.get(0);
    let value: Option<Vec<u8>> = row.get(3);
    Ok(Doc {
        key: String::from_utf8(key).map_err(|_| {
            StorageError::Incompatible("a key in atomsync_docs is not UTF-8".into())
        })?,
        version: unsigned(row.get(1), "version")?,
        seq: unsigned(row.get(2), "seq")?,
        // The writer stores only bytes it encoded itself from a validated value.
        value: value.map(Packed::from_trusted),
    })
}

/// A read-only transaction that sees one snapshot for all its statements.
async fn snapshot(client: &mut Client) -> Result<Transaction<'_>, StorageError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// The document `key` of `group` at its latest state (`None` when never written), and
/// the epoch in the same snapshot: the answer names its seq with it.
pub(super) async fn doc(
    client: &Client,
    group: &str,
    key: &str,
) -> Result<(Option<Doc>, Arc<str>), StorageError> {
    let stmt = client
        .prepare_cached(
            "SELECT d.key, d.version, d.seq, d.value, m.value
             FROM atomsync_meta m
             LEFT JOIN atomsync_groups g ON g.name = $1
             LEFT JOIN atomsync_docs d ON d.group_id = g.id AND d.key = $2
             WHERE m.name = 'epoch'",
        )
        .await?;
    let row = client.query_one(&stmt, &[&group, &key.as_bytes()]).await?;
    let epoch: Arc<str> = row.get::<_, &str>(4).into();
    let doc = match row.get::<_, Option<&[u8]>>(0) {
        Some(_) => Some(doc_from_row(&row)?),
        None => None,
    };
    Ok((doc, epoch))
}

/// A page in key order: group `$1`, from key `$2` (inclusive when `$3`) to `$4` (the first
/// key past the prefix; none: NULL), tombstones when `$5`, at most `$6` rows and `$7` bytes.
static BY_KEY: LazyLock<String> = LazyLock::new(|| {
    paged(
        "group_id = $1::int8 AND (key > $2 OR ($3::bool AND key = $2))
         AND ($4::bytea IS NULL OR key < $4) AND ($5::bool OR value IS NOT NULL)",
        "key",
        "$6::int8",
        "$7::int8",
    )
});

/// Documents of `group` in key order, as `range` says, in one snapshot; `None` when the
/// group has never been written.
pub(super) async fn docs_by_key(
    client: &mut Client,
    group_name: &str,
    range: &KeyRange,
) -> Result<Option<KeyPage>, StorageError> {
    let tx = snapshot(client).await?;
    let Some(stored) = group(&tx, group_name).await? else {
        return Ok(None);
    };
    // Keys with a prefix form one contiguous run in byte order: from the later of `after`
    // and the prefix, up to the first key past every key that starts with the prefix.
    let prefix = range.prefix.as_bytes();
    let (start, inclusive) = match range.after.as_deref() {
        Some(after) if after.as_bytes() >= prefix => (after.as_bytes(), false),
        _ => (prefix, true),
    };
    let end = prefix_end(prefix);
    let stmt = tx.prepare_cached(&BY_KEY).await?;
    let rows = tx
        .query(
            &stmt,
            &[
                &stored.id,
                &start,
                &inclusive,
                &end.as_deref(),
                &range.tombstones,
                &clamp(range.limit as u64),
                &clamp(range.max_bytes as u64),
            ],
        )
        .await?;
    tx.commit().await?;
    let (docs, more) = kept_docs(&rows)?;
    Ok(Some(KeyPage { docs, more }))
}

/// The least byte string greater than every string that starts with `prefix`; `None`
/// when there is none (an empty prefix, or one of 0xFF bytes only).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The admin API's page of groups, each with its counts, in one statement (so one
/// snapshot): names after `$1`, at most `$2`.
const GROUPS: &str = "
    SELECT g.name, g.seq, g.floor, c.total, c.live
    FROM (SELECT id, name, seq, floor FROM atomsync_groups
          WHERE name > $1 ORDER BY name LIMIT $2) g
    CROSS JOIN LATERAL (SELECT count(*) AS total, count(value) AS live
                        FROM atomsync_docs WHERE group_id = g.id) c
    ORDER BY g.name";

/// One page of groups: names after `after`, ascending in byte order, at most `limit`,
/// each with its counts; and whether more follow.
pub(super) async fn groups(
    client: &Client,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<GroupStats>, bool), StorageError> {
    let stmt = client.prepare_cached(GROUPS).await?;
    let fetch = clamp(limit as u64).saturating_add(1);
    let rows = client.query(&stmt, &[&after.unwrap_or(""), &fetch]).await?;
    let more = rows.len() > limit;
    let page = rows
        .iter()
        .take(limit)
        .map(stats_from_row)
        .collect::<Result<_, _>>()?;
    Ok((page, more))
}

/// One group's summary; `None` when it has never been written.
pub(super) async fn group_stats(
    client: &Client,
    name: &str,
) -> Result<Option<GroupStats>, StorageError> {
    let stmt = client
        .prepare_cached(
            "SELECT g.name, g.seq, g.floor, c.total, c.live FROM atomsync_groups g
             CROSS JOIN LATERAL (SELECT count(*) AS total, count(value) AS live
                                 FROM atomsync_docs WHERE group_id = g.id) c
             WHERE g.name = $1",
        )
        .await?;
    match client.query_opt(&stmt, &[&name]).await? {
        Some(row) => Ok(Some(stats_from_row(&row)?)),
        None => Ok(None),
    }
}

/// A row `name, seq, floor, total, live` as a group's summary.
fn stats_from_row(row: &Row) -> Result<GroupStats, StorageError> {
    let (total, live) = (
        unsigned(row.get(3), "count")?,
        unsigned(row.get(4), "count")?,
    );
    Ok(GroupStats {
        name: row.get(0),
        seq: unsigned(row.get(1), "seq")?,
        floor: unsigned(row.get(2), "floor")?,
        documents: live,
        tombstones: total.saturating_sub(live),
    })
}

/// Answers when the database can be read.
pub(super) async fn health(client: &Client) -> Result<(), StorageError> {
    client.simple_query("SELECT 1").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn the_end_of_a_prefix_run() {
        assert_eq!(prefix_end(b"todo:"), Some(b"todo;".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
