//! The raw-SQLite baselines: what SQLite itself can do, in this process, on the server's
//! exact schema (`atomsync::storage::sqlite::schema::migrate`) and pragmas (WAL, `synchronous`
//! FULL or NORMAL), with the same version-checked writes the server's writer does: read
//! the key's current row, compare the base, upsert, advance the group's seq, commit.
//!
//! There is no HTTP, no codec, no actor, no savepoint: the gap between these numbers and
//! the server's is what the server adds.

use std::path::Path;
use std::time::{Duration, Instant};

use atomsync::storage::sqlite::writer::{SELECT_DOC, UPSERT_DOC};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::data::RawChange;
use crate::error::{BenchError, Result};
use crate::server::Durability;

/// What a bounded phase got done.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// Items (changes, documents) processed.
    pub items: u64,
    /// Wall time from the first to the last.
    pub elapsed: Duration,
}

impl Done {
    /// Items per second.
    pub fn rate(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A database written the way the server's writer writes.
pub struct RawDb {
    conn: Connection,
    group_id: i64,
    seq: u64,
}

impl RawDb {
    /// Creates (or opens) a database at `path` with the server's schema, writing to a new
    /// group `group`.
    pub fn create(path: &Path, durability: Durability, group: &str) -> Result<RawDb> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;",
            durability.pragma()
        ))?;
        atomsync::storage::sqlite::schema::migrate(&conn)
            .map_err(|e| BenchError::Setup(format!("creating the server's schema: {e}")))?;
        let mut db = RawDb {
            conn,
            group_id: 0,
            seq: 0,
        };
        db.start_group(group)?;
        Ok(db)
    }

    /// Writes to a new group `group` from now on (each repetition gets its own, as the
    /// server's workloads do, so that every write is a first write).
    pub fn start_group(&mut self, group: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO groups (name, seq) VALUES (?1, 0)",
            params![group],
        )?;
        self.group_id = self.conn.last_insert_rowid();
        self.seq = 0;
        Ok(())
    }

    /// Writes `changes` in transactions of `per_tx`, until all are written or `deadline`.
    pub fn write(
        &mut self,
        changes: &[RawChange],
        per_tx: usize,
        deadline: Instant,
    ) -> Result<Done> {
        let start = Instant::now();
        let mut items = 0;
        for chunk in changes.chunks(per_tx.max(1)) {
            if Instant::now() >= deadline {
                break;
            }
            self.write_tx(chunk)?;
            items += chunk.len() as u64;
        }
        Ok(Done {
            items,
            elapsed: start.elapsed(),
        })
    }

    /// One transaction: each change version-checked, the accepted ones written.
    fn write_tx(&mut self, changes: &[RawChange]) -> Result<u64> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut accepted = 0;
        {
            let mut current = tx.prepare_cached(SELECT_DOC)?;
            let mut upsert = tx.prepare_cached(UPSERT_DOC)?;
            for change in changes {
                let row = current
                    .query_row(params![self.group_id, change.key], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, u64>(1)?,
                            r.get::<_, u64>(2)?,
                            r.get::<_, Option<Vec<u8>>>(3)?,
                        ))
                    })
                    .optional()?;
                let version = row.as_ref().map_or(0, |r| r.1);
                if change.base != version {
                    continue;
                }
                self.seq += 1;
                accepted += 1;
                upsert.execute(params![
                    self.group_id,
                    change.key,
                    version + 1,
                    self.seq,
                    change.value.as_bytes()
                ])?;
            }
            if accepted > 0 {
                tx.prepare_cached("UPDATE groups SET seq = ?2 WHERE id = ?1")?
                    .execute(params![self.group_id, self.seq])?;
            }
        }
        tx.commit()?;
        Ok(accepted)
    }
}

/// Reads every document of `group` in the server's database at `db` (read-only, beside the
/// running server), from seq 0 in pages of `page`, each page in its own read transaction,
/// every row materialized: what a catch-up reads, without HTTP or encoding.
pub fn read_all(db: &Path, group: &str, page: usize, deadline: Instant) -> Result<Done> {
    let mut conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let start = Instant::now();
    let mut since: u64 = 0;
    let mut items = 0;
    loop {
        let tx = conn.transaction()?;
        let group_id: i64 = tx
            .prepare_cached("SELECT id FROM groups WHERE name = ?1")?
            .query_row(params![group], |r| r.get(0))
            .optional()?
            .ok_or_else(|| {
                BenchError::Setup(format!("group {group} is not in {}", db.display()))
            })?;
        let mut rows = Vec::with_capacity(page);
        {
            let mut stmt = tx.prepare_cached(
                "SELECT key, version, seq, value FROM docs
                 WHERE group_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let mut cursor = stmt.query(params![group_id, since, page as u64])?;
            while let Some(r) = cursor.next()? {
                rows.push((
                    r.get::<_, String>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, u64>(2)?,
                    r.get::<_, Option<Vec<u8>>>(3)?,
                ));
            }
        }
        tx.finish()?;
        items += rows.len() as u64;
        match rows.last() {
            Some(last) if rows.len() == page && Instant::now() < deadline => since = last.2,
            _ => break,
        }
    }
    Ok(Done {
        items,
        elapsed: start.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data;

    #[test]
    fn writes_are_version_checked_and_read_back_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.db");
        let mut db = RawDb::create(&path, Durability::Normal, "g").unwrap();
        let far = Instant::now() + Duration::from_secs(60);
        let done = db
            .write(&data::changes("k", 0..250, |_| 0), 100, far)
            .unwrap();
        assert_eq!(done.items, 250);
        // Half stale: only the 125 with the right base are written.
        let accepted = db.write_tx(&data::changes("k", 0..250, |i| i % 2)).unwrap();
        assert_eq!(accepted, 125);
        assert_eq!(db.seq, 375);
        let read = read_all(&path, "g", 100, far).unwrap();
        assert_eq!(read.items, 250);
    }
}
