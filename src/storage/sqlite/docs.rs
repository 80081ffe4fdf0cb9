//! Documents by key: one document (`GET /sync/doc`), and a group's documents in key order
//! (the admin API's browsing), each read in one transaction on a pooled read connection.

use atomsync_proto::wire::Doc;
use rusqlite::{Connection, OptionalExtension, params};

use super::read::doc_from_row;
use crate::storage::StorageError;
use crate::storage::browse::{KeyPage, KeyRange};

/// The document `key` of group `group` at its latest state (a tombstone has no value);
/// `None` when it was never written.
pub fn doc(conn: &Connection, group: &str, key: &str) -> Result<Option<Doc>, StorageError> {
    Ok(conn
        .prepare_cached(
            "SELECT d.key, d.version, d.seq, d.value FROM docs d JOIN groups g ON g.id = d.group_id
             WHERE g.name = ?1 AND d.key = ?2",
        )?
        .query_row(params![group, key], doc_from_row)
        .optional()?)
}

/// Documents of `group` in key order, as `range` says, in one snapshot; `None` when the
/// group has never been written.
pub fn by_key(
    conn: &mut Connection,
    group: &str,
    range: &KeyRange,
) -> Result<Option<KeyPage>, StorageError> {
    let tx = conn.transaction()?;
    let Some(stored) = super::read::group(&tx, group)? else {
        return Ok(None);
    };
    // Keys with a prefix form one contiguous run in byte order (SQLite compares TEXT with
    // memcmp): start at the later of `after` and the prefix, stop at the first key past it.
    let prefix = range.prefix.as_str();
    let start = match range.after.as_deref() {
        Some(after) if after >= prefix => after,
        _ => prefix,
    };
    let inclusive = range.after.as_deref().is_none_or(|after| after < prefix);
    let sql = match (inclusive, range.tombstones) {
        (true, true) => {
            "SELECT key, version, seq, value FROM docs WHERE group_id = ?1 AND key >= ?2 ORDER BY key"
        }
        (false, true) => {
            "SELECT key, version, seq, value FROM docs WHERE group_id = ?1 AND key > ?2 ORDER BY key"
        }
        (true, false) => {
            "SELECT key, version, seq, value FROM docs
             WHERE group_id = ?1 AND key >= ?2 AND value IS NOT NULL ORDER BY key"
        }
        (false, false) => {
            "SELECT key, version, seq, value FROM docs
             WHERE group_id = ?1 AND key > ?2 AND value IS NOT NULL ORDER BY key"
        }
    };
    let mut docs = Vec::new();
    let mut bytes = 0usize;
    let mut more = false;
    {
        let mut stmt = tx.prepare_cached(sql)?;
        let mut rows = stmt.query(params![stored.id, start])?;
        while let Some(row) = rows.next()? {
            let doc = doc_from_row(row)?;
            if !doc.key.starts_with(prefix) {
                break;
            }
            let size = doc.key.len() + doc.value.as_ref().map_or(0, |v| v.len());
            if docs.len() >= range.limit || (!docs.is_empty() && bytes + size > range.max_bytes) {
                more = true;
                break;
            }
            bytes += size;
            docs.push(doc);
        }
    }
    tx.finish()?;
    Ok(Some(KeyPage { docs, more }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::sqlite::admin::tests::fixture;

    fn range(after: Option<&str>, prefix: &str, tombstones: bool, limit: usize) -> KeyRange {
        KeyRange {
            after: after.map(str::to_owned),
            prefix: prefix.to_owned(),
            tombstones,
            limit,
            max_bytes: usize::MAX,
        }
    }

    fn keys(page: &KeyPage) -> Vec<&str> {
        page.docs.iter().map(|d| d.key.as_str()).collect()
    }

    #[test]
    fn one_document_tombstone_or_none() {
        let one: &[u8] = &[1];
        let (_dir, path) = fixture(&[
            ("g", "a", Some(one)),
            ("g", "b", None),
            ("h", "c", Some(one)),
        ]);
        let conn = Connection::open(&path).unwrap();
        let a = doc(&conn, "g", "a").unwrap().unwrap();
        assert_eq!((a.version, a.seq, a.value.unwrap().as_bytes()), (1, 1, one));
        assert_eq!(doc(&conn, "g", "b").unwrap().unwrap().value, None);
        assert_eq!(doc(&conn, "g", "c").unwrap(), None, "another group's key");
        assert_eq!(doc(&conn, "nope", "a").unwrap(), None);
    }

    #[test]
    fn pages_in_key_order_with_prefix_and_tombstones() {
        let one: &[u8] = &[1];
        let (_dir, path) = fixture(&[
            ("g", "todo:2", Some(one)),
            ("g", "note:1", Some(one)),
            ("g", "todo:1", None),
            ("g", "todo:3", Some(one)),
            ("g", "tod", Some(one)),
            ("g", "zzz", Some(one)),
        ]);
        let mut conn = Connection::open(&path).unwrap();
        let all = by_key(&mut conn, "g", &range(None, "", true, 10))
            .unwrap()
            .unwrap();
        assert_eq!(
            keys(&all),
            ["note:1", "tod", "todo:1", "todo:2", "todo:3", "zzz"]
        );
        assert!(!all.more);
        let live = by_key(&mut conn, "g", &range(None, "todo:", false, 1))
            .unwrap()
            .unwrap();
        assert_eq!((keys(&live), live.more), (vec!["todo:2"], true));
        let next = by_key(&mut conn, "g", &range(Some("todo:2"), "todo:", false, 1))
            .unwrap()
            .unwrap();
        assert_eq!((keys(&next), next.more), (vec!["todo:3"], false));
        // `after` before the prefix starts at the prefix; after the run, nothing.
        let early = by_key(&mut conn, "g", &range(Some("a"), "todo:", true, 10))
            .unwrap()
            .unwrap();
        assert_eq!(keys(&early), ["todo:1", "todo:2", "todo:3"]);
        let late = by_key(&mut conn, "g", &range(Some("u"), "todo:", true, 10))
            .unwrap()
            .unwrap();
        assert!(late.docs.is_empty() && !late.more);
        assert_eq!(
            by_key(&mut conn, "nope", &range(None, "", true, 10)).unwrap(),
            None
        );
    }

    #[test]
    fn a_page_stops_at_its_byte_budget_but_never_empty() {
        let big = vec![7u8; 100];
        let (_dir, path) = fixture(&[("g", "a", Some(&big)), ("g", "b", Some(&big))]);
        let mut conn = Connection::open(&path).unwrap();
        let mut r = range(None, "", true, 10);
        r.max_bytes = 50;
        let page = by_key(&mut conn, "g", &r).unwrap().unwrap();
        assert_eq!((keys(&page), page.more), (vec!["a"], true));
    }
}
