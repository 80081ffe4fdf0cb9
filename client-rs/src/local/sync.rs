//! What the sync engine writes: remote changes with the cursor, epoch changes and resets,
//! and the outcome of pushes. Each operation is one transaction, so the cursor never runs
//! ahead of the documents it stands for.

use atomsync_proto::Packed;
use atomsync_proto::wire::Doc;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{
    Applied, LocalDb, PendingChange, ResetMode, finish, meta, take_rev, to_sql_u64, visible,
};
use crate::ClientError;

/// What the server's epoch says about the local data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochCheck {
    /// The same database as before.
    Same,
    /// The first answer from this server: the epoch is now recorded.
    First,
    /// Another database: the group was reset (cursor 0, every document stale, pending
    /// changes to be rebased) and must catch up from 0.
    Changed,
}

/// The outcome of one pushed change, as the engine hands it over.
#[derive(Debug)]
pub(crate) enum Settlement {
    /// The server took the change at `version`.
    Accepted { sent: PendingChange, version: u64 },
    /// The server had another version: `current` is its document (`None`: never written),
    /// `resolution` the resolver's answer (`None`: the server wins).
    Conflict {
        sent: PendingChange,
        current: Option<Doc>,
        resolution: Option<Packed>,
    },
    /// The server refused the change outright: it is dropped.
    Rejected { sent: PendingChange },
}

impl LocalDb {
    /// Stores documents from a pull page or a `changes` frame and advances the cursor to
    /// `cursor`, in one transaction. A document older than the one stored is skipped
    /// (pages and frames can overlap with push answers).
    pub(crate) fn apply_remote(
        &self,
        group: &str,
        docs: &[Doc],
        cursor: u64,
    ) -> Result<Applied, ClientError> {
        self.with_tx(|tx, _| {
            let mut edits = Vec::new();
            for doc in docs {
                if store_doc(tx, group, doc)? {
                    edits.push((doc.key.clone(), visible(tx, group, &doc.key)?));
                }
            }
            tx.execute(
                "UPDATE groups SET cursor = MAX(cursor, ?2) WHERE name = ?1",
                params![group, to_sql_u64(cursor)?],
            )?;
            finish(tx, group, edits)
        })
    }

    /// Compares the server's epoch with the recorded one, recording it the first time and
    /// resetting the group when it changed.
    pub(crate) fn check_epoch(
        &self,
        group: &str,
        epoch: &str,
    ) -> Result<(EpochCheck, Applied), ClientError> {
        self.with_tx(|tx, _| {
            let check = match meta(tx, group)?.epoch {
                Some(known) if known == epoch => EpochCheck::Same,
                known => {
                    tx.execute(
                        "UPDATE groups SET epoch = ?2 WHERE name = ?1",
                        [group, epoch],
                    )?;
                    if known.is_none() {
                        EpochCheck::First
                    } else {
                        begin_reset(tx, group, ResetMode::Epoch)?;
                        EpochCheck::Changed
                    }
                }
            };
            Ok((check, finish(tx, group, Vec::new())?))
        })
    }

    /// Starts a reset after compaction: cursor 0, every document stale until the full
    /// catch-up returns it.
    pub(crate) fn begin_compaction_reset(&self, group: &str) -> Result<Applied, ClientError> {
        self.with_tx(|tx, _| {
            begin_reset(tx, group, ResetMode::Compaction)?;
            finish(tx, group, Vec::new())
        })
    }

    /// Ends a complete catch-up: after a reset, drops the documents it did not return
    /// (what the application sees changes only for keys without a pending change) and,
    /// after an epoch change, rebases pending changes on the new database's versions so
    /// that they are kept rather than lost to conflicts with numbers of the old one.
    pub(crate) fn finish_catch_up(&self, group: &str) -> Result<Applied, ClientError> {
        self.with_tx(|tx, _| {
            let mode = meta(tx, group)?.reset;
            if mode == ResetMode::None {
                return finish(tx, group, Vec::new());
            }
            let stale: Vec<String> = {
                let mut statement = tx.prepare("SELECT key FROM docs WHERE grp = ?1 AND stale = 1")?;
                statement.query_map([group], |row| row.get(0))?.collect::<Result<_, _>>()?
            };
            tx.execute("DELETE FROM docs WHERE grp = ?1 AND stale = 1", [group])?;
            let mut edits = Vec::with_capacity(stale.len());
            for key in stale {
                let value = visible(tx, group, &key)?;
                edits.push((key, value));
            }
            if mode == ResetMode::Epoch {
                tx.execute(
                    "UPDATE pending SET base = COALESCE(
                         (SELECT version FROM docs WHERE docs.grp = pending.grp AND docs.key = pending.key), 0)
                     WHERE grp = ?1",
                    [group],
                )?;
            }
            tx.execute("UPDATE groups SET reset = 0 WHERE name = ?1", [group])?;
            finish(tx, group, edits)
        })
    }

    /// Records the outcome of a push. Only a pending change still as it was sent is
    /// settled: one written again meanwhile stays pending (after an accept, on top of the
    /// new version; after a conflict, to meet the conflict again with its newer value).
    pub(crate) fn settle(
        &self,
        group: &str,
        settlements: &[Settlement],
    ) -> Result<Applied, ClientError> {
        self.with_tx(|tx, next_rev| {
            let mut edits = Vec::with_capacity(settlements.len());
            for settlement in settlements {
                let sent = match settlement {
                    Settlement::Accepted { sent, .. }
                    | Settlement::Conflict { sent, .. }
                    | Settlement::Rejected { sent } => sent,
                };
                let unchanged = pending_rev(tx, group, &sent.key)? == Some(sent.rev);
                match settlement {
                    Settlement::Accepted { sent, version } => {
                        let doc = Doc { key: sent.key.clone(), version: *version, seq: 0, value: sent.value.clone() };
                        store_doc(tx, group, &doc)?;
                        if unchanged {
                            delete_pending(tx, group, &sent.key)?;
                        } else {
                            tx.execute(
                                "UPDATE pending SET base = ?3 WHERE grp = ?1 AND key = ?2",
                                params![group, sent.key, to_sql_u64(*version)?],
                            )?;
                        }
                    }
                    Settlement::Conflict { sent, current, resolution } => {
                        if let Some(current) = current {
                            store_doc(tx, group, current)?;
                        }
                        if unchanged {
                            match resolution {
                                None => delete_pending(tx, group, &sent.key)?,
                                Some(value) => {
                                    let base = current.as_ref().map_or(0, |doc| doc.version);
                                    tx.execute(
                                        "UPDATE pending SET value = ?3, base = ?4, rev = ?5 WHERE grp = ?1 AND key = ?2",
                                        params![
                                            group,
                                            sent.key,
                                            value.as_bytes(),
                                            to_sql_u64(base)?,
                                            take_rev(next_rev)?
                                        ],
                                    )?;
                                }
                            }
                        }
                    }
                    Settlement::Rejected { sent } => {
                        if unchanged {
                            delete_pending(tx, group, &sent.key)?;
                        }
                    }
                }
                edits.push((sent.key.clone(), visible(tx, group, &sent.key)?));
            }
            finish(tx, group, edits)
        })
    }
}

/// Marks every document of the group stale and restarts its cursor; the mode only grows
/// (an epoch change pending stays one when a compaction reset comes on top).
fn begin_reset(tx: &Transaction<'_>, group: &str, mode: ResetMode) -> Result<(), ClientError> {
    tx.execute("UPDATE docs SET stale = 1 WHERE grp = ?1", [group])?;
    tx.execute(
        "UPDATE groups SET cursor = 0, reset = MAX(reset, ?2) WHERE name = ?1",
        params![group, mode as i64],
    )?;
    Ok(())
}

/// Stores a server document unless the stored one is newer; a stale one is always
/// replaced (its version belongs to before a reset). Returns whether it was stored.
fn store_doc(tx: &Transaction<'_>, group: &str, doc: &Doc) -> Result<bool, ClientError> {
    let stored: Option<(i64, bool)> = tx
        .query_row(
            "SELECT version, stale FROM docs WHERE grp = ?1 AND key = ?2",
            [group, &doc.key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let version = to_sql_u64(doc.version)?;
    let newer = stored.is_none_or(|(stored_version, stale)| stale || version > stored_version);
    if newer {
        tx.execute(
            "INSERT OR REPLACE INTO docs (grp, key, version, value, stale) VALUES (?1, ?2, ?3, ?4, 0)",
            params![group, doc.key, version, doc.value.as_ref().map(Packed::as_bytes)],
        )?;
    }
    Ok(newer)
}

fn pending_rev(tx: &Transaction<'_>, group: &str, key: &str) -> Result<Option<u64>, ClientError> {
    let rev: Option<i64> = tx
        .query_row(
            "SELECT rev FROM pending WHERE grp = ?1 AND key = ?2",
            [group, key],
            |row| row.get(0),
        )
        .optional()?;
    rev.map(|rev| super::from_sql_u64(rev, "pending.rev"))
        .transpose()
}

fn delete_pending(tx: &Transaction<'_>, group: &str, key: &str) -> Result<(), ClientError> {
    tx.execute(
        "DELETE FROM pending WHERE grp = ?1 AND key = ?2",
        [group, key],
    )?;
    Ok(())
}
