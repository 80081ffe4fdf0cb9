//! What the sync engine writes: remote changes with the cursor, epoch changes and resets,
//! and the outcome of pushes. Each operation is one transaction, so the cursor never runs
//! ahead of the documents it stands for.

use atomsync_proto::Packed;
use atomsync_proto::wire::Doc;
use rusqlite::params;

use super::tx::{GroupTx, ROWS_PER_STATEMENT};
use super::{Applied, Commit, LocalDb, PendingChange, Received, ResetMode, to_sql_u64};
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
    /// Stores documents from pull pages or `changes` frames (several frames at once when
    /// they arrive together) and advances the cursor to `cursor`, in one transaction. A
    /// document older than the one stored is skipped (pages and frames can overlap with
    /// push answers).
    pub(crate) fn apply_remote<D: Into<Received>>(
        &self,
        group: &str,
        docs: impl IntoIterator<Item = D>,
        cursor: u64,
    ) -> Result<Applied, ClientError> {
        self.with_group(group, Commit::Relaxed, |g| {
            let mut docs = docs.into_iter().map(Into::into);
            let mut edits = Vec::with_capacity(docs.size_hint().0);
            let mut writer = g.doc_writer()?;
            let mut run = Vec::with_capacity(ROWS_PER_STATEMENT);
            loop {
                run.extend(docs.by_ref().take(ROWS_PER_STATEMENT));
                if run.is_empty() {
                    break;
                }
                let stored = writer.store_run(&run)?;
                for (Received { doc, value }, stored) in run.drain(..).zip(stored) {
                    if stored {
                        let value = g.visible_after_storing(&doc, value)?;
                        edits.push((doc.key, value));
                    }
                }
            }
            drop(writer);
            g.statement("UPDATE groups SET cursor = MAX(cursor, ?2) WHERE name = ?1")?
                .execute(params![group, to_sql_u64(cursor)?])?;
            g.finish(edits)
        })
    }

    /// Compares the server's epoch with the recorded one, recording it the first time and
    /// resetting the group when it changed.
    pub(crate) fn check_epoch(
        &self,
        group: &str,
        epoch: &str,
    ) -> Result<(EpochCheck, Applied), ClientError> {
        self.with_group(group, Commit::Durable, |g| {
            let check = match g.meta()?.epoch {
                Some(known) if known == epoch => EpochCheck::Same,
                known => {
                    g.statement("UPDATE groups SET epoch = ?2 WHERE name = ?1")?
                        .execute([group, epoch])?;
                    if known.is_none() {
                        EpochCheck::First
                    } else {
                        begin_reset(g, ResetMode::Epoch)?;
                        EpochCheck::Changed
                    }
                }
            };
            Ok((check, g.finish(Vec::new())?))
        })
    }

    /// Starts a reset after compaction: cursor 0, every document stale until the full
    /// catch-up returns it.
    pub(crate) fn begin_compaction_reset(&self, group: &str) -> Result<Applied, ClientError> {
        self.with_group(group, Commit::Durable, |g| {
            begin_reset(g, ResetMode::Compaction)?;
            g.finish(Vec::new())
        })
    }

    /// Ends a complete catch-up: after a reset, drops the documents it did not return
    /// (what the application sees changes only for keys without a pending change) and,
    /// after an epoch change, rebases pending changes on the new database's versions so
    /// that they are kept rather than lost to conflicts with numbers of the old one.
    pub(crate) fn finish_catch_up(&self, group: &str) -> Result<Applied, ClientError> {
        self.with_group(group, Commit::Durable, |g| {
            let mode = g.meta()?.reset;
            if mode == ResetMode::None {
                return g.finish(Vec::new());
            }
            let stale: Vec<String> = g
                .statement("SELECT key FROM docs WHERE grp = ?1 AND stale = 1")?
                .query_map([group], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            g.statement("DELETE FROM docs WHERE grp = ?1 AND stale = 1")?
                .execute([group])?;
            let mut edits = Vec::with_capacity(stale.len());
            for key in stale {
                let value = g.visible(&key)?;
                edits.push((key, value));
            }
            if mode == ResetMode::Epoch {
                g.statement(
                    "UPDATE pending SET base = COALESCE(
                         (SELECT version FROM docs WHERE docs.grp = pending.grp AND docs.key = pending.key), 0)
                     WHERE grp = ?1",
                )?
                .execute([group])?;
            }
            g.statement("UPDATE groups SET reset = 0 WHERE name = ?1")?
                .execute([group])?;
            g.finish(edits)
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
        self.with_group(group, Commit::Durable, |g| {
            let mut edits = Vec::with_capacity(settlements.len());
            for settlement in settlements {
                let sent = match settlement {
                    Settlement::Accepted { sent, .. }
                    | Settlement::Conflict { sent, .. }
                    | Settlement::Rejected { sent } => sent,
                };
                let unchanged = g.pending_rev(&sent.key)? == Some(sent.rev);
                match settlement {
                    Settlement::Accepted { sent, version } => {
                        let doc = Doc { key: sent.key.clone(), version: *version, seq: 0, value: sent.value.clone() };
                        g.store_doc(&doc)?;
                        if unchanged {
                            g.delete_pending(&sent.key)?;
                        } else {
                            g.statement("UPDATE pending SET base = ?3 WHERE grp = ?1 AND key = ?2")?
                                .execute(params![group, sent.key, to_sql_u64(*version)?])?;
                        }
                    }
                    Settlement::Conflict { sent, current, resolution } => {
                        if let Some(current) = current {
                            g.store_doc(current)?;
                        }
                        if unchanged {
                            match resolution {
                                None => g.delete_pending(&sent.key)?,
                                Some(value) => {
                                    let base = current.as_ref().map_or(0, |doc| doc.version);
                                    let rev = g.take_rev()?;
                                    g.statement(
                                        "UPDATE pending SET value = ?3, base = ?4, rev = ?5 WHERE grp = ?1 AND key = ?2",
                                    )?
                                    .execute(params![
                                        group,
                                        sent.key,
                                        value.as_bytes(),
                                        to_sql_u64(base)?,
                                        rev
                                    ])?;
                                }
                            }
                        }
                    }
                    Settlement::Rejected { sent } => {
                        if unchanged {
                            g.delete_pending(&sent.key)?;
                        }
                    }
                }
                edits.push((sent.key.clone(), g.visible(&sent.key)?));
            }
            g.finish(edits)
        })
    }
}

/// Marks every document of the group stale and restarts its cursor; the mode only grows
/// (an epoch change pending stays one when a compaction reset comes on top).
fn begin_reset(g: &GroupTx<'_>, mode: ResetMode) -> Result<(), ClientError> {
    g.statement("UPDATE docs SET stale = 1 WHERE grp = ?1")?
        .execute([g.group])?;
    g.statement("UPDATE groups SET cursor = 0, reset = MAX(reset, ?2) WHERE name = ?1")?
        .execute(params![g.group, mode as i64])?;
    Ok(())
}
