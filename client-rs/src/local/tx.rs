//! [`GroupTx`]: one transaction on one group, and the statements every operation shares
//! (the group's position, what the application sees for a key, storing a server
//! document, dropping a pending change).
//!
//! Statements are prepared once per connection (`prepare_cached`): a change costs its
//! row lookups, not a parse of its SQL. The group's count of pending changes is kept
//! beside the connection and adjusted by the statements that add or drop a pending row,
//! so that no write counts the whole table; it is written back only when the
//! transaction commits.

use atomsync_proto::wire::Doc;
use atomsync_proto::{Packed, Value};
use rusqlite::{CachedStatement, OptionalExtension, Transaction, params};

use super::{Applied, GroupMeta, Received, ResetMode, decode, from_sql_u64, to_sql_u64};
use crate::ClientError;

/// One open transaction on one group.
pub(super) struct GroupTx<'conn> {
    pub(super) tx: Transaction<'conn>,
    pub(super) group: &'conn str,
    /// The next revision number; the connection's counter takes it back on commit.
    pub(super) next_rev: u64,
    /// The group's pending changes, as this transaction leaves them.
    pub(super) pending: usize,
}

/// Counts a group's pending changes: once per group and connection, when it is first used.
pub(super) fn count_pending(tx: &Transaction<'_>, group: &str) -> Result<usize, ClientError> {
    let count: i64 = tx
        .prepare_cached("SELECT COUNT(*) FROM pending WHERE grp = ?1")?
        .query_row([group], |row| row.get(0))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

impl GroupTx<'_> {
    /// A statement of the connection's cache.
    pub(super) fn statement(&self, sql: &str) -> Result<CachedStatement<'_>, ClientError> {
        Ok(self.tx.prepare_cached(sql)?)
    }

    /// The group's position (a group never registered is at the start).
    pub(super) fn meta(&self) -> Result<GroupMeta, ClientError> {
        let row = self
            .statement("SELECT epoch, cursor, reset FROM groups WHERE name = ?1")?
            .query_row([self.group], |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })
            .optional()?;
        match row {
            None => Ok(GroupMeta {
                epoch: None,
                cursor: 0,
                reset: ResetMode::None,
            }),
            Some((epoch, cursor, reset)) => Ok(GroupMeta {
                epoch,
                cursor: from_sql_u64(cursor, "groups.cursor")?,
                reset: ResetMode::from_sql(reset)?,
            }),
        }
    }

    /// The [`Applied`] of an operation that produced `edits`.
    pub(super) fn finish(
        &self,
        edits: Vec<(String, Option<Value>)>,
    ) -> Result<Applied, ClientError> {
        let meta = self.meta()?;
        Ok(Applied {
            edits,
            pending: self.pending,
            cursor: meta.cursor,
            epoch: meta.epoch,
        })
    }

    /// The next revision number.
    pub(super) fn take_rev(&mut self) -> Result<i64, ClientError> {
        let rev = to_sql_u64(self.next_rev)?;
        self.next_rev += 1;
        Ok(rev)
    }

    /// The pending value of `key`: `None` when nothing is pending, `Some(None)` for a
    /// pending delete.
    fn pending_value(&self, key: &str) -> Result<Option<Option<Vec<u8>>>, ClientError> {
        if self.pending == 0 {
            return Ok(None);
        }
        Ok(self
            .statement("SELECT value FROM pending WHERE grp = ?1 AND key = ?2")?
            .query_row([self.group, key], |row| row.get(0))
            .optional()?)
    }

    /// What the application sees for `key`: the pending value when one is pending, else
    /// the server's (`None` for absent, deleted or pending delete).
    pub(super) fn visible(&self, key: &str) -> Result<Option<Value>, ClientError> {
        let bytes = match self.pending_value(key)? {
            Some(bytes) => bytes,
            None => self
                .statement("SELECT value FROM docs WHERE grp = ?1 AND key = ?2")?
                .query_row([self.group, key], |row| row.get(0))
                .optional()?
                .flatten(),
        };
        bytes.map(|bytes| decode(&bytes, key)).transpose()
    }

    /// What the application sees for a document just stored: its own value (`decoded`,
    /// when the frame decoder read it already) unless a pending change of the key hides it
    /// (then that change's value). Spares reading back and decoding twice what the server
    /// sent.
    pub(super) fn visible_after_storing(
        &self,
        doc: &Doc,
        decoded: Option<Value>,
    ) -> Result<Option<Value>, ClientError> {
        match self.pending_value(&doc.key)? {
            Some(bytes) => bytes.map(|bytes| decode(&bytes, &doc.key)).transpose(),
            None => Ok(doc
                .value
                .as_ref()
                .map(|packed| decoded.unwrap_or_else(|| packed.to_value()))),
        }
    }

    /// Stores a server document unless the stored one is newer; a stale one is always
    /// replaced (its version belongs to before a reset). Returns whether it was stored.
    pub(super) fn store_doc(&self, doc: &Doc) -> Result<bool, ClientError> {
        self.doc_writer()?.store(doc)
    }

    /// A [`DocWriter`] for this group, to store a run of documents.
    pub(super) fn doc_writer(&self) -> Result<DocWriter<'_>, ClientError> {
        let mut upsert = self.statement(UPSERT)?;
        upsert.raw_bind_parameter(1, self.group)?;
        Ok(DocWriter {
            group: self.group,
            tx: &self.tx,
            upsert,
            insert_new: None,
        })
    }

    /// The revision of the pending change of `key`, if any.
    pub(super) fn pending_rev(&self, key: &str) -> Result<Option<u64>, ClientError> {
        if self.pending == 0 {
            return Ok(None);
        }
        let rev: Option<i64> = self
            .statement("SELECT rev FROM pending WHERE grp = ?1 AND key = ?2")?
            .query_row([self.group, key], |row| row.get(0))
            .optional()?;
        rev.map(|rev| from_sql_u64(rev, "pending.rev")).transpose()
    }

    /// Drops the pending change of `key`, if any.
    pub(super) fn delete_pending(&mut self, key: &str) -> Result<(), ClientError> {
        let deleted = self
            .statement("DELETE FROM pending WHERE grp = ?1 AND key = ?2")?
            .execute([self.group, key])?;
        self.pending = self.pending.saturating_sub(deleted);
        Ok(())
    }
}

/// Documents stored by one statement of a [`DocWriter`]: a first sync stores 100,000
/// documents, and one statement per row spent a third of its SQLite time starting and
/// ending statements. 64 rows of 3 parameters stay far below SQLite's limit of 32,766.
pub(super) const ROWS_PER_STATEMENT: usize = 64;

/// The upsert of one server document of a group (`?1`): the version check is its
/// `WHERE`, so an older copy changes no row, and a stale one (from before a reset) is
/// always replaced.
const UPSERT: &str = "INSERT INTO docs (grp, key, version, value, stale) VALUES (?1, ?2, ?3, ?4, 0)
     ON CONFLICT (grp, key) DO UPDATE
     SET version = excluded.version, value = excluded.value, stale = 0
     WHERE docs.stale = 1 OR excluded.version > docs.version";

/// The insert of [`ROWS_PER_STATEMENT`] documents of a group (`?1`) whose keys it does not
/// hold yet; a key it holds is left as it is. `OR IGNORE` rather than an upsert: a
/// statement of many rows that may stop half-way (as an upsert may, on a `NOT NULL`)
/// makes SQLite copy every page it touches into a statement journal first, which cost as
/// much as the statements it saves.
fn insert_new_sql() -> String {
    let values: Vec<String> = (0..ROWS_PER_STATEMENT)
        .map(|row| {
            let first = 2 + 3 * row;
            format!("(?1, ?{first}, ?{}, ?{}, 0)", first + 1, first + 2)
        })
        .collect();
    format!(
        "INSERT OR IGNORE INTO docs (grp, key, version, value, stale) VALUES {}",
        values.join(", ")
    )
}

/// Stores server documents of one group: the statements held across the run, the group
/// bound once (a lookup in the statement cache hashes the SQL text, and each binding
/// copies its text).
pub(super) struct DocWriter<'conn> {
    group: &'conn str,
    tx: &'conn Transaction<'conn>,
    /// One row, version-checked.
    upsert: CachedStatement<'conn>,
    /// [`ROWS_PER_STATEMENT`] new rows, prepared on first use.
    insert_new: Option<CachedStatement<'conn>>,
}

impl DocWriter<'_> {
    /// Stores `doc` unless the stored copy is newer (see [`GroupTx::store_doc`]).
    pub(super) fn store(&mut self, doc: &Doc) -> Result<bool, ClientError> {
        bind_doc(&mut self.upsert, 0, doc)?;
        Ok(self.upsert.raw_execute()? > 0)
    }

    /// Stores up to [`ROWS_PER_STATEMENT`] documents in order, each unless the stored copy
    /// is newer, and tells for each whether it is to be seen: stored, or equal to what is
    /// stored. A key written twice in the run counts for its last stored version only.
    pub(super) fn store_run(&mut self, run: &[Received]) -> Result<Vec<bool>, ClientError> {
        let docs = || run.iter().map(|received| &received.doc);
        if run.len() != ROWS_PER_STATEMENT {
            // A short run (the end of a batch, a live change): one row at a time.
            return docs().map(|doc| self.store(doc)).collect();
        }
        let insert = match &mut self.insert_new {
            Some(insert) => insert,
            None => {
                let mut insert = self.tx.prepare_cached(&insert_new_sql())?;
                insert.raw_bind_parameter(1, self.group)?;
                self.insert_new.insert(insert)
            }
        };
        for (row, doc) in docs().enumerate() {
            bind_doc(insert, row, doc)?;
        }
        // As many rows inserted as documents: every key was new and each holds its
        // document, the usual case (a first sync).
        if insert.raw_execute()? == run.len() {
            return Ok(vec![true; run.len()]);
        }
        // Some keys were held already (or came twice): the others are in; these get the
        // version-checked upsert, a no-op for the rows just inserted. Which ones were
        // stored no longer shows: a document is to be seen when its row holds it now (of
        // one key stored twice, the later one; an equal copy changes nothing seen).
        for doc in docs() {
            self.store(doc)?;
        }
        docs().map(|doc| self.holds(doc)).collect()
    }

    /// Whether the group's row of `doc.key` holds `doc` (its version and value).
    fn holds(&self, doc: &Doc) -> Result<bool, ClientError> {
        let row: Option<(i64, Option<Vec<u8>>)> = self
            .tx
            .prepare_cached("SELECT version, value FROM docs WHERE grp = ?1 AND key = ?2")?
            .query_row(params![self.group, doc.key], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        Ok(row.is_some_and(|(version, value)| {
            to_sql_u64(doc.version).is_ok_and(|wanted| wanted == version)
                && value.as_deref() == doc.value.as_ref().map(Packed::as_bytes)
        }))
    }
}

/// Binds `doc` to row `row` of [`UPSERT`] (row 0) or [`insert_new_sql`].
fn bind_doc(statement: &mut CachedStatement<'_>, row: usize, doc: &Doc) -> Result<(), ClientError> {
    let first = 2 + 3 * row;
    statement.raw_bind_parameter(first, doc.key.as_str())?;
    statement.raw_bind_parameter(first + 1, to_sql_u64(doc.version)?)?;
    statement.raw_bind_parameter(first + 2, doc.value.as_ref().map(Packed::as_bytes))?;
    Ok(())
}
