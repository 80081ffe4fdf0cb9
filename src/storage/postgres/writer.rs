//! The writers: per group, one transaction at a time; the pushes that queue up behind it
//! are committed together in the next one (group commit per group). Groups commit side by
//! side on pooled connections, so a group waiting on another instance holds up no other.
//!
//! A batch's transaction:
//!
//! 1. locks the group's row (`SELECT ... FOR UPDATE`, creating the row first for a new
//!    group). Another instance writing the group waits here until this commit is done, then
//!    reads the seq it left: that row lock is what keeps every group's `seq`s gapless and
//!    unique and its version checks exact across instances. The same statement reads the
//!    transaction's id, to settle a commit whose answer is lost (below);
//! 2. reads the current state of every key the batch touches, in one statement, then
//!    version-checks the pushes in order in memory (a later push of the batch sees what an
//!    earlier one wrote);
//! 3. writes the final state of each key written, the group's new seq, and
//!    `pg_notify('atomsync_commits', '<instance> <seq> <group>')`, in one statement;
//! 4. commits. Only then does each push hear its outcome, after its commit went to the
//!    commit sink, in `seq` order. The notification reaches the other instances once the
//!    commit is visible to them.
//!
//! A batch that fails before its commit applied nothing; if one of several pushes made it
//! fail (not the connection), each push is tried again alone, so that one bad push does not
//! fail the others. When the connection is lost *during* the commit, nobody knows whether
//! it happened: `txid_status` on another connection settles it, and the pushes hear either
//! their outcome or that nothing was applied. Only when the database cannot be asked at all
//! do they hear [`StorageError::CommitUnknown`] (a retry is safe: it comes back as
//! conflicts if the commit was made).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomsync_proto::wire::{Change, Doc, Op, PushResult};
use deadpool_postgres::{Pool, Transaction};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::read::doc_from_row;
use super::{clamp, lock, unsigned};
use crate::storage::ticket::Reply;
use crate::storage::{CommitSink, Committed, PushOutcome, PushTicket, StorageError};

/// The channel commits are notified on.
pub(super) const CHANNEL: &str = "atomsync_commits";

/// The most pushes committed in one transaction: bounds the latency one batch adds.
const MAX_BATCH: usize = 512;

/// The most changes in one transaction (a batch takes at least one push, whatever its size).
const MAX_BATCH_CHANGES: usize = 10_000;

/// How long a commit whose answer was lost is asked after, before the pushes hear that its
/// outcome is unknown.
const SETTLE_FOR: Duration = Duration::from_secs(10);

/// Locks the group's row and reads its id, its seq, and this transaction's id.
const LOCK_GROUP: &str =
    "SELECT id, seq, txid_current() FROM atomsync_groups WHERE name = $1 FOR UPDATE";

/// Creates a group's row; a concurrent creation by another instance is waited for, then left.
const CREATE_GROUP: &str =
    "INSERT INTO atomsync_groups (name, seq) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING";

/// The current state of the keys `$2` of group `$1`.
const CURRENT: &str = "SELECT key, version, seq, value FROM atomsync_docs
     WHERE group_id = $1 AND key = ANY($2)";

/// Writes the final state of each key (`$2..$5`: keys, versions, seqs, values or NULL),
/// the group's seq (`$6`) and the notification (`$7`), in one statement.
const WRITE: &str = "
    WITH written AS (
        INSERT INTO atomsync_docs (group_id, key, version, seq, value)
        SELECT $1::int8, * FROM unnest($2::bytea[], $3::int8[], $4::int8[], $5::bytea[])
        ON CONFLICT (group_id, key) DO UPDATE
        SET version = excluded.version, seq = excluded.seq, value = excluded.value
    ), bumped AS (
        UPDATE atomsync_groups SET seq = $6::int8 WHERE id = $1::int8
    )
    SELECT pg_notify('atomsync_commits', $7::text)";

/// One push to apply.
struct PushJob {
    changes: Vec<Change>,
    /// Where the outcome goes once durable.
    reply: Reply,
}

/// The per-group queues and what they commit with. Cheap to clone.
#[derive(Clone)]
pub(super) struct Writers {
    shared: Arc<Shared>,
}

struct Shared {
    pool: Pool,
    handle: Handle,
    /// This instance's name in notifications, so that its listener skips its own commits.
    instance: String,
    // std Mutexes: held for a lookup or an insert, never across an await.
    state: Mutex<State>,
    sink: Mutex<Option<CommitSink>>,
    /// Woken when the last queue empties (what `close` waits for).
    idle: Notify,
}

#[derive(Default)]
struct State {
    /// A group is here while its flusher runs: pushes queue behind the batch in flight.
    queues: HashMap<Arc<str>, VecDeque<PushJob>>,
    closed: bool,
}

impl Writers {
    pub(super) fn new(pool: Pool, handle: Handle, instance: String) -> Writers {
        Writers {
            shared: Arc::new(Shared {
                pool,
                handle,
                instance,
                state: Mutex::default(),
                sink: Mutex::default(),
                idle: Notify::new(),
            }),
        }
    }

    /// Queues a push of validated `changes` to `group`; the ticket resolves once it is
    /// committed and durable.
    pub(super) fn push(&self, group: Arc<str>, changes: Vec<Change>) -> PushTicket {
        let (ticket, reply) = PushTicket::new();
        let job = PushJob { changes, reply };
        let mut state = lock(&self.shared.state);
        if state.closed {
            return PushTicket::failed(StorageError::WriterGone);
        }
        match state.queues.entry(group) {
            Entry::Occupied(mut queue) => queue.get_mut().push_back(job),
            Entry::Vacant(slot) => {
                let group = slot.key().clone();
                slot.insert(VecDeque::from([job]));
                self.shared.handle.spawn(flush(self.shared.clone(), group));
            }
        }
        ticket
    }

    pub(super) fn set_commit_sink(&self, sink: CommitSink) {
        *lock(&self.shared.sink) = Some(sink);
    }

    pub(super) fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed
    }

    /// Refuses pushes from now on and waits until every queued one is committed.
    pub(super) async fn close(&self) {
        lock(&self.shared.state).closed = true;
        loop {
            let idle = self.shared.idle.notified();
            if lock(&self.shared.state).queues.is_empty() {
                return;
            }
            idle.await;
        }
    }
}

/// Commits `group`'s queue, batch after batch, until it is empty.
async fn flush(shared: Arc<Shared>, group: Arc<str>) {
    loop {
        let batch = {
            let mut state = lock(&shared.state);
            let Some(queue) = state.queues.get_mut(&group) else {
                return;
            };
            if queue.is_empty() {
                state.queues.remove(&group);
                if state.queues.is_empty() {
                    shared.idle.notify_waiters();
                }
                return;
            }
            take_batch(queue)
        };
        // A task of its own: should it panic, its pushes hear that nothing was applied (their
        // replies are dropped) and the group's queue goes on.
        let commit = shared
            .handle
            .spawn(commit(shared.clone(), group.clone(), batch));
        if let Err(e) = commit.await {
            tracing::error!(group = %group, error = %e, "a commit task failed");
        }
    }
}

/// The first job of `queue` and those behind it, up to the batch's bounds.
fn take_batch(queue: &mut VecDeque<PushJob>) -> Vec<PushJob> {
    let mut batch = Vec::new();
    let mut changes = 0;
    while let Some(job) = queue.front() {
        if !batch.is_empty()
            && (batch.len() == MAX_BATCH || changes + job.changes.len() > MAX_BATCH_CHANGES)
        {
            break;
        }
        changes += job.changes.len();
        batch.extend(queue.pop_front());
    }
    batch
}

/// What one push did, computed inside the transaction, known durable once it commits.
struct Applied {
    outcome: PushOutcome,
    committed: Committed,
}

/// Why a batch's transaction did not commit.
enum Failure {
    /// Before the commit, or refused by it: nothing was applied.
    Before(StorageError),
    /// The connection was lost during the commit: it may have been made.
    Unknown {
        error: StorageError,
        xid: i64,
        applied: Vec<Applied>,
    },
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Failure {
        Failure::Before(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Before(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Failure {
        Failure::Before(e.into())
    }
}

async fn commit(shared: Arc<Shared>, group: Arc<str>, batch: Vec<PushJob>) {
    let sink = lock(&shared.sink).clone();
    let failure = match attempt(&shared, &group, &batch).await {
        Ok(applied) => return deliver(batch, applied, sink.as_ref()),
        Err(failure) => failure,
    };
    match failure {
        Failure::Before(e) if batch.len() > 1 && !e.is_transient() => {
            tracing::warn!(group = %group, error = %e, pushes = batch.len(), "a batch failed; committing its pushes one by one");
            for job in batch {
                match attempt(&shared, &group, std::slice::from_ref(&job)).await {
                    Ok(applied) => deliver(vec![job], applied, sink.as_ref()),
                    Err(Failure::Before(e)) => {
                        let _ = job.reply.send(Err(e));
                    }
                    Err(Failure::Unknown {
                        error,
                        xid,
                        applied,
                    }) => {
                        settled(
                            &shared,
                            &group,
                            vec![job],
                            error,
                            xid,
                            applied,
                            sink.as_ref(),
                        )
                        .await
                    }
                }
            }
        }
        Failure::Before(e) => {
            tracing::error!(group = %group, error = %e, pushes = batch.len(), "commit failed");
            for job in batch {
                let _ = job.reply.send(Err(e.copy()));
            }
        }
        Failure::Unknown {
            error,
            xid,
            applied,
        } => settled(&shared, &group, batch, error, xid, applied, sink.as_ref()).await,
    }
}

/// Hands each committed push to the sink, then answers it.
fn deliver(batch: Vec<PushJob>, applied: Vec<Applied>, sink: Option<&CommitSink>) {
    for (job, Applied { outcome, committed }) in batch.into_iter().zip(applied) {
        if let Some(sink) = sink
            && !committed.docs.is_empty()
        {
            sink(committed);
        }
        let _ = job.reply.send(Ok(outcome));
    }
}

/// Learns whether the commit of transaction `xid` was made, and answers the batch.
async fn settled(
    shared: &Shared,
    group: &str,
    batch: Vec<PushJob>,
    error: StorageError,
    xid: i64,
    applied: Vec<Applied>,
    sink: Option<&CommitSink>,
) {
    match settle(&shared.pool, xid).await {
        Some(true) => {
            tracing::warn!(group, error = %error, "the connection was lost while committing; the commit was made");
            deliver(batch, applied, sink)
        }
        Some(false) => {
            for job in batch {
                let _ = job.reply.send(Err(error.copy()));
            }
        }
        None => {
            // The group's actors learn the truth from the listener's periodic re-read.
            tracing::error!(group, error = %error, "the connection was lost while committing, and whether the commit was made is unknown");
            for job in batch {
                let _ = job
                    .reply
                    .send(Err(StorageError::CommitUnknown(error.to_string())));
            }
        }
    }
}

/// Whether transaction `xid` committed (`Some(true)`), aborted (`Some(false)`), or is
/// unknown: the database could not be asked in time.
pub(super) async fn settle(pool: &Pool, xid: i64) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + SETTLE_FOR;
    while tokio::time::Instant::now() < deadline {
        if let Ok(client) = pool.get().await
            && let Ok(row) = client.query_one("SELECT txid_status($1)", &[&xid]).await
        {
            match row.get::<_, Option<String>>(0).as_deref() {
                Some("committed") => return Some(true),
                Some("aborted") => return Some(false),
                // The old backend is still finishing the commit: ask again.
                Some(_) => {}
                // Too old to be known any more (it cannot be: it was ours a moment ago).
                None => return None,
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// One transaction for `jobs`: lock, read, check, write, commit.
async fn attempt(
    shared: &Shared,
    group: &Arc<str>,
    jobs: &[PushJob],
) -> Result<Vec<Applied>, Failure> {
    let mut client = shared.pool.get().await?;
    let tx = client.transaction().await?;
    let (group_id, seq, xid) = lock_group(&tx, group).await?;
    let (applied, writes) = check(&tx, group, group_id, seq, jobs).await?;
    if let Some(last) = applied.last()
        && last.outcome.seq != seq
    {
        let notice = format!("{} {} {}", shared.instance, last.outcome.seq, group);
        let keys: Vec<&[u8]> = writes.keys.iter().map(|k| k.as_bytes()).collect();
        let values: Vec<Option<&[u8]>> = (writes.values.iter())
            .map(|v| v.as_ref().map(|v| v.as_bytes()))
            .collect();
        let stmt = tx.prepare_cached(WRITE).await?;
        tx.query_one(
            &stmt,
            &[
                &group_id,
                &keys,
                &writes.versions,
                &writes.seqs,
                &values,
                &clamp(last.outcome.seq),
                &notice,
            ],
        )
        .await?;
    }
    match tx.commit().await {
        Ok(()) => Ok(applied),
        // The server answered: the commit was refused, so nothing of it was made.
        Err(e) if e.as_db_error().is_some() => Err(Failure::Before(e.into())),
        Err(e) => Err(Failure::Unknown {
            error: e.into(),
            xid,
            applied,
        }),
    }
}

/// Locks the group's row, creating it when new: its id, its seq, and the transaction's id.
async fn lock_group(tx: &Transaction<'_>, group: &str) -> Result<(i64, u64, i64), StorageError> {
    let stmt = tx.prepare_cached(LOCK_GROUP).await?;
    let row = match tx.query_opt(&stmt, &[&group]).await? {
        Some(row) => row,
        None => {
            let create = tx.prepare_cached(CREATE_GROUP).await?;
            tx.execute(&create, &[&group]).await?;
            tx.query_one(&stmt, &[&group]).await?
        }
    };
    Ok((row.get(0), unsigned(row.get(1), "seq")?, row.get(2)))
}

/// The final state of every key written by a batch, as the arrays `WRITE` takes.
#[derive(Default)]
struct Writes {
    keys: Vec<String>,
    versions: Vec<i64>,
    seqs: Vec<i64>,
    values: Vec<Option<atomsync_proto::Packed>>,
}

/// Version-checks every change of `jobs` in order against the keys' current state (as
/// stored, then as earlier changes of the batch left them): each is accepted iff its base
/// is the key's current version. Returns each push's outcome and what to write.
async fn check(
    tx: &Transaction<'_>,
    group: &Arc<str>,
    group_id: i64,
    mut seq: u64,
    jobs: &[PushJob],
) -> Result<(Vec<Applied>, Writes), StorageError> {
    let mut keys: Vec<&[u8]> = jobs
        .iter()
        .flat_map(|job| job.changes.iter().map(|c| c.key.as_bytes()))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let stmt = tx.prepare_cached(CURRENT).await?;
    let mut current: HashMap<String, Doc> = HashMap::with_capacity(keys.len());
    for row in tx.query(&stmt, &[&group_id, &keys]).await? {
        let doc = doc_from_row(&row)?;
        current.insert(doc.key.clone(), doc);
    }
    let mut written: Vec<String> = Vec::new();
    let mut applied = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut results = Vec::with_capacity(job.changes.len());
        let mut docs = Vec::new();
        for change in &job.changes {
            let version = current.get(&change.key).map_or(0, |d| d.version);
            if change.base != version {
                results.push(PushResult::Conflict {
                    key: change.key.clone(),
                    current: current.get(&change.key).cloned(),
                });
                continue;
            }
            seq += 1;
            let doc = Doc {
                key: change.key.clone(),
                version: version + 1,
                seq,
                value: match &change.op {
                    Op::Set(value) => Some(value.clone()),
                    Op::Delete => None,
                },
            };
            results.push(PushResult::Accepted {
                key: doc.key.clone(),
                version: doc.version,
                seq,
            });
            current.insert(doc.key.clone(), doc.clone());
            written.push(doc.key.clone());
            docs.push(doc);
        }
        applied.push(Applied {
            outcome: PushOutcome { results, seq },
            committed: Committed {
                group: group.clone(),
                docs,
                seq,
            },
        });
    }
    written.sort_unstable();
    written.dedup();
    let mut writes = Writes::default();
    for key in written {
        let doc = &current[&key];
        writes.versions.push(clamp(doc.version));
        writes.seqs.push(clamp(doc.seq));
        writes.values.push(doc.value.clone());
        writes.keys.push(key);
    }
    Ok((applied, writes))
}
