//! What the admin API reads about groups: their names in pages, and each one's sequence,
//! floor and document counts. Read-only, on pooled read connections.
//!
//! Counts are computed when asked, not kept: one pass over the group's rows in the `docs`
//! table (about 0.15 s per million documents, warm), which is why a page of groups is
//! bounded by the caller. Keeping running counts would cost every push an update.

use rusqlite::{Connection, params};

use crate::storage::StorageError;
use crate::storage::browse::GroupStats;

/// One page of groups: names after `after` (exclusive), ascending in byte order, at most
/// `limit`; and whether more follow. In one read transaction, so the page is consistent.
pub fn groups(
    conn: &mut Connection,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<GroupStats>, bool), StorageError> {
    let tx = conn.transaction()?;
    let mut rows: Vec<(i64, GroupStats)> = Vec::with_capacity(limit.min(1000) + 1);
    {
        // `name > ''` is every group (names are never empty), so one statement serves the
        // first page and the later ones, walking the UNIQUE index on `name`.
        let mut stmt = tx.prepare_cached(
            "SELECT id, name, seq, floor FROM groups WHERE name > ?1 ORDER BY name LIMIT ?2",
        )?;
        let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
        let mut found = stmt.query(params![after.unwrap_or(""), fetch])?;
        while let Some(row) = found.next()? {
            rows.push((
                row.get(0)?,
                GroupStats {
                    name: row.get(1)?,
                    seq: row.get(2)?,
                    floor: row.get(3)?,
                    documents: 0,
                    tombstones: 0,
                },
            ));
        }
    }
    let more = rows.len() > limit;
    rows.truncate(limit);
    let mut page = Vec::with_capacity(rows.len());
    for (id, mut stats) in rows {
        (stats.documents, stats.tombstones) = counts(&tx, id)?;
        page.push(stats);
    }
    tx.finish()?;
    Ok((page, more))
}

/// One group's summary; `None` when the group has never been written.
pub fn group(conn: &mut Connection, name: &str) -> Result<Option<GroupStats>, StorageError> {
    let tx = conn.transaction()?;
    let Some(stored) = super::read::group(&tx, name)? else {
        return Ok(None);
    };
    let (documents, tombstones) = counts(&tx, stored.id)?;
    tx.finish()?;
    Ok(Some(GroupStats {
        name: name.to_owned(),
        seq: stored.seq,
        floor: stored.floor,
        documents,
        tombstones,
    }))
}

/// (live documents, tombstones) of the group with row id `id`.
fn counts(conn: &Connection, id: i64) -> Result<(u64, u64), StorageError> {
    let (rows, live): (u64, u64) = conn
        .prepare_cached("SELECT count(*), count(value) FROM docs WHERE group_id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok((live, rows.saturating_sub(live)))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::storage::sqlite::Sqlite;

    /// A database with groups written straight into its tables: `(group, key, value)` where
    /// a `None` value is a tombstone. Returns the directory that holds it and the file's path.
    pub(crate) fn fixture(
        rows: &[(&str, &str, Option<&[u8]>)],
    ) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        // Opened once to create and migrate the file, then closed: tests read it directly.
        drop(
            Sqlite::open(&crate::storage::OpenOptions::without_lineage(
                &path,
                Durability::Normal,
                2,
            ))
            .unwrap(),
        );
        let conn = Connection::open(&path).unwrap();
        for (group, key, value) in rows {
            conn.execute(
                "INSERT INTO groups (name, seq) VALUES (?1, 0) ON CONFLICT (name) DO NOTHING",
                params![group],
            )
            .unwrap();
            conn.execute(
                "UPDATE groups SET seq = seq + 1 WHERE name = ?1",
                params![group],
            )
            .unwrap();
            // A one-byte msgpack value (a positive fixint) stands for any stored value.
            conn.execute(
                "INSERT INTO docs (group_id, key, version, seq, value)
                 SELECT id, ?2, 1, seq, ?3 FROM groups WHERE name = ?1",
                params![group, key, value],
            )
            .unwrap();
        }
        (dir, path)
    }

    #[test]
    fn groups_page_by_name_with_counts() {
        let one: &[u8] = &[1];
        let (_dir, path) = fixture(&[
            ("b", "k1", Some(one)),
            ("b", "k2", None),
            ("a", "k1", Some(one)),
            ("c", "k1", None),
        ]);
        let mut conn = Connection::open(&path).unwrap();
        let (page, more) = groups(&mut conn, None, 2).unwrap();
        assert!(more);
        let names: Vec<_> = page.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(
            (page[1].seq, page[1].documents, page[1].tombstones),
            (2, 1, 1)
        );
        let (page, more) = groups(&mut conn, Some("b"), 2).unwrap();
        assert!(!more);
        assert_eq!(page.len(), 1);
        assert_eq!(
            (page[0].name.as_str(), page[0].documents, page[0].tombstones),
            ("c", 0, 1)
        );
        let (page, more) = groups(&mut conn, Some("c"), 2).unwrap();
        assert!(page.is_empty() && !more);
    }

    #[test]
    fn one_group_or_none() {
        let one: &[u8] = &[1];
        let (_dir, path) = fixture(&[("todo", "a", Some(one)), ("todo", "b", Some(one))]);
        let mut conn = Connection::open(&path).unwrap();
        let stats = group(&mut conn, "todo").unwrap().unwrap();
        assert_eq!(
            (stats.seq, stats.floor, stats.documents, stats.tombstones),
            (2, 0, 2, 0)
        );
        assert_eq!(group(&mut conn, "nope").unwrap(), None);
    }
}
