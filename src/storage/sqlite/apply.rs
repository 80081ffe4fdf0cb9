//! Applying one push inside the writer's open transaction: the version check of each
//! change against the key's current version, the group's next seqs, the writes, and the
//! push's answer (bounded in bytes), all under a savepoint of its own so that a push that
//! fails applies nothing while the rest of its batch commits.

use std::collections::HashMap;
use std::sync::Arc;

use atomsync_proto::wire::{Doc, Op, PushResult};
use rusqlite::{OptionalExtension, Transaction, params};

use super::read::doc_from_row;
use super::writer::PushJob;
use crate::storage::{Committed, PushOutcome, StorageError};

/// Reads a document's current state (`?1` group id, `?2` key), for the version check.
/// Public so that the benchmark's raw-SQLite baseline runs exactly the writer's statements.
pub const SELECT_DOC: &str =
    "SELECT key, version, seq, value FROM docs WHERE group_id = ?1 AND key = ?2";

/// Writes an accepted change (`?1` group id, `?2` key, `?3` version, `?4` seq, `?5` value
/// or NULL for a tombstone), creating the row or replacing its state. A tombstone records
/// when it was written (`deleted_at`, Unix milliseconds), for compaction.
pub const UPSERT_DOC: &str = "INSERT INTO docs (group_id, key, version, seq, value, deleted_at)
     VALUES (?1, ?2, ?3, ?4, ?5,
             CASE WHEN ?5 IS NULL THEN CAST(unixepoch('subsec') * 1000 AS INTEGER) END)
     ON CONFLICT (group_id, key) DO UPDATE
     SET version = excluded.version, seq = excluded.seq, value = excluded.value,
         deleted_at = excluded.deleted_at";

/// What a conflict adds to an answer besides its current document's key and value.
const CONFLICT_OVERHEAD: usize = 64;

/// A group as the writer knows it. The writer is the only one to change `groups.seq`, so
/// once read, its copy stays authoritative for as long as its transactions commit.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupRow {
    pub(super) id: i64,
    pub(super) seq: u64,
}

pub(super) fn apply_in_savepoint(
    tx: &Transaction<'_>,
    groups: &mut HashMap<Arc<str>, GroupRow>,
    job: &PushJob,
    max_answer_bytes: usize,
) -> Result<(PushOutcome, Committed), StorageError> {
    // Cached like the writes: parsing these anew for every push was a measurable share of
    // a single-change push's time on the writer.
    let run = |sql: &str| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
    run("SAVEPOINT job")?;
    match apply_push(tx, groups, job, max_answer_bytes) {
        Ok(done) => {
            run("RELEASE job")?;
            Ok(done)
        }
        Err(e) => {
            // SQLite rolls the whole transaction back by itself on some errors (a full
            // disk, out of memory): then there is no savepoint left to roll back to, and
            // the original error is the one to tell.
            if !tx.is_autocommit() {
                run("ROLLBACK TO job")?;
                run("RELEASE job")?;
            }
            Err(e)
        }
    }
}

/// Version-checks and writes one push: each change is accepted iff its base equals the
/// key's current version (0 when never written). A push with several conflicts that would
/// answer with more than `max_answer_bytes` of current documents fails
/// ([`StorageError::TooLarge`]): its answer could not be sent whole, and it must apply
/// nothing (the client pushes fewer changes at a time; one is always answered).
fn apply_push(
    tx: &Transaction<'_>,
    groups: &mut HashMap<Arc<str>, GroupRow>,
    job: &PushJob,
    max_answer_bytes: usize,
) -> Result<(PushOutcome, Committed), StorageError> {
    let mut group = match groups.get(&job.group) {
        Some(row) => *row,
        None => load_or_create_group(tx, &job.group)?,
    };
    let start_seq = group.seq;
    let mut results = Vec::with_capacity(job.changes.len());
    let mut docs = Vec::new();
    let mut current = tx.prepare_cached(SELECT_DOC)?;
    let mut upsert = tx.prepare_cached(UPSERT_DOC)?;
    let mut answer_bytes = 0usize;
    let mut conflicts = 0usize;
    for (index, change) in job.changes.iter().enumerate() {
        let existing = current
            .query_row(params![group.id, change.key], doc_from_row)
            .optional()?;
        let version = existing.as_ref().map_or(0, |d| d.version);
        if change.base != version {
            answer_bytes += CONFLICT_OVERHEAD
                + existing
                    .as_ref()
                    .map_or(0, |d| d.key.len() + d.value.as_ref().map_or(0, |v| v.len()));
            conflicts += 1;
            // One conflict is always answered, whatever its size, so that a push of one
            // change always gets through (as a page always holds one document).
            if answer_bytes > max_answer_bytes && conflicts > 1 {
                return Err(StorageError::TooLarge(format!(
                    "changes[{index}]: the conflicting documents this push would answer with \
                     pass the {max_answer_bytes}-byte limit of an answer; nothing was \
                     applied; push fewer changes at a time"
                )));
            }
            results.push(PushResult::Conflict {
                key: change.key.clone(),
                current: existing,
            });
            continue;
        }
        group.seq += 1;
        let doc = Doc {
            key: change.key.clone(),
            version: version + 1,
            seq: group.seq,
            value: match &change.op {
                Op::Set(value) => Some(value.clone()),
                Op::Delete => None,
            },
        };
        upsert.execute(params![
            group.id,
            doc.key,
            doc.version,
            doc.seq,
            doc.value.as_ref().map(|v| v.as_bytes())
        ])?;
        results.push(PushResult::Accepted {
            key: doc.key.clone(),
            version: doc.version,
            seq: doc.seq,
        });
        docs.push(doc);
    }
    if group.seq != start_seq {
        tx.prepare_cached("UPDATE groups SET seq = ?2 WHERE id = ?1")?
            .execute(params![group.id, group.seq])?;
    }
    groups.insert(job.group.clone(), group);
    Ok((
        PushOutcome {
            results,
            seq: group.seq,
            // Named by the caller, which knows the epoch.
            epoch: Arc::from(""),
        },
        Committed {
            group: job.group.clone(),
            docs,
            seq: group.seq,
            epoch_changed: false,
        },
    ))
}

fn load_or_create_group(tx: &Transaction<'_>, name: &str) -> Result<GroupRow, StorageError> {
    if let Some(g) = super::read::group(tx, name)? {
        return Ok(GroupRow {
            id: g.id,
            seq: g.seq,
        });
    }
    tx.prepare_cached("INSERT INTO groups (name, seq) VALUES (?1, 0)")?
        .execute(params![name])?;
    Ok(GroupRow {
        id: tx.last_insert_rowid(),
        seq: 0,
    })
}
