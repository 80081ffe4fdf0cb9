//! The writers: per group, one transaction at a time; the pushes that queue up behind it
//! are committed together in the next one (group commit per group). Groups commit side by
//! side on pooled connections, so a group waiting on another instance holds up no other.
//!
//! A batch is one transaction (`commit`): it locks the group's row, which is what orders
//! two instances' writes to one group, version-checks, writes, notifies and commits. Only
//! then does each push hear its outcome, after its commit went to the commit sink, in `seq`
//! order.
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

use atomsync_proto::wire::Change;
use deadpool_postgres::Pool;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::commit::{Applied, Batch, Failure, attempt};
use super::lock;
use crate::storage::ticket::Reply;
use crate::storage::{CommitSink, PushTicket, StorageError};

/// The most pushes committed in one transaction: bounds the latency one batch adds.
const MAX_BATCH: usize = 512;

/// The most changes in one transaction (a batch takes at least one push, whatever its size).
const MAX_BATCH_CHANGES: usize = 10_000;

/// How long a commit whose answer was lost is asked after, before the pushes hear that its
/// outcome is unknown.
const SETTLE_FOR: Duration = Duration::from_secs(10);

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
    /// The most bytes of conflicting documents one push answers with.
    max_answer_bytes: usize,
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
    pub(super) fn new(
        pool: Pool,
        handle: Handle,
        instance: String,
        max_answer_bytes: usize,
    ) -> Writers {
        Writers {
            shared: Arc::new(Shared {
                pool,
                handle,
                instance,
                max_answer_bytes,
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

async fn commit(shared: Arc<Shared>, group: Arc<str>, batch: Vec<PushJob>) {
    let sink = lock(&shared.sink).clone();
    let pushes = changes(&batch);
    let whole = shared.batch(&group, &pushes);
    let mut attempted = attempt(&shared.pool, &whole).await;
    if let Err(Failure::Before(e)) = &attempted
        && super::lost_connection(e)
    {
        // A pooled connection the database closed (a restart, a failover, a terminated
        // backend) is found dead only when used. Nothing was applied: once more, on a
        // fresh connection.
        tracing::info!(group = %group, error = %e, "a pooled connection was lost; trying the batch again");
        attempted = attempt(&shared.pool, &whole).await;
    }
    let failure = match attempted {
        Ok(applied) => return deliver(batch, applied, sink.as_ref()),
        Err(failure) => failure,
    };
    match failure {
        Failure::Before(e) if batch.len() > 1 && !e.is_transient() => {
            tracing::warn!(group = %group, error = %e, pushes = batch.len(), "a batch failed; committing its pushes one by one");
            for job in batch {
                let alone = [job.changes.as_slice()];
                match attempt(&shared.pool, &shared.batch(&group, &alone)).await {
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

impl Shared {
    /// `pushes` to `group` as one batch of this instance.
    fn batch<'a>(&'a self, group: &'a Arc<str>, pushes: &'a [&'a [Change]]) -> Batch<'a> {
        Batch {
            instance: &self.instance,
            group,
            pushes,
            max_answer_bytes: self.max_answer_bytes,
        }
    }
}

/// Each push's changes.
fn changes(batch: &[PushJob]) -> Vec<&[Change]> {
    batch.iter().map(|job| job.changes.as_slice()).collect()
}

/// Hands each committed push to the sink, then answers it.
fn deliver(batch: Vec<PushJob>, applied: Vec<Applied>, sink: Option<&CommitSink>) {
    for (job, Applied { outcome, committed }) in batch.into_iter().zip(applied) {
        if let Some(sink) = sink
            && !committed.docs.is_empty()
        {
            sink(committed);
        }
        let _ = job.reply.send(outcome);
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
