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
use std::time::{Duration, Instant};

use atomsync_proto::wire::Change;
use deadpool_postgres::Pool;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::commit::{Applied, Batch, Done, Failure, attempt};
use super::epoch::Epochs;
use super::lock;
use super::streams::Streams;
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

/// What the writers commit with.
pub(super) struct Setup {
    pub(super) pool: Pool,
    pub(super) handle: Handle,
    /// This instance's name in notifications.
    pub(super) instance: String,
    /// The most bytes of conflicting documents one push answers with.
    pub(super) max_answer_bytes: usize,
    pub(super) epochs: Arc<Epochs>,
    pub(super) streams: Arc<Streams>,
    /// Commits flush the WAL before they return (`synchronous_commit` on: durability full).
    pub(super) synced: bool,
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
    /// The epoch served, and the state file.
    epochs: Arc<Epochs>,
    /// Where commits go.
    streams: Arc<Streams>,
    /// Commits flush the WAL before they return (counted in the metrics).
    synced: bool,
    // A std Mutex: held for a lookup or an insert, never across an await.
    state: Mutex<State>,
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
    pub(super) fn new(setup: Setup) -> Writers {
        Writers {
            shared: Arc::new(Shared {
                pool: setup.pool,
                handle: setup.handle,
                instance: setup.instance,
                max_answer_bytes: setup.max_answer_bytes,
                epochs: setup.epochs,
                streams: setup.streams,
                synced: setup.synced,
                state: Mutex::default(),
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
    let started = Instant::now();
    let sink = shared.streams.sink();
    let pushes = changes(&batch);
    let failure = match attempt_fresh(&shared, &group, &pushes).await {
        Ok(done) => {
            count(&shared, started, &batch, &done);
            return deliver(&shared, batch, done, sink.as_ref());
        }
        Err(failure) => failure,
    };
    match failure {
        Failure::Before(e) if batch.len() > 1 && !e.is_transient() => {
            tracing::warn!(group = %group, error = %e, pushes = batch.len(), "a batch failed; committing its pushes one by one");
            for job in batch {
                let alone = [job.changes.as_slice()];
                let started = Instant::now();
                match attempt_fresh(&shared, &group, &alone).await {
                    Ok(done) => {
                        let jobs = vec![job];
                        count(&shared, started, &jobs, &done);
                        deliver(&shared, jobs, done, sink.as_ref())
                    }
                    Err(Failure::Before(e)) => {
                        let _ = job.reply.send(Err(e));
                    }
                    Err(Failure::Stale) => {
                        let _ = job.reply.send(Err(changing()));
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
            if let Some(m) = crate::metrics::get() {
                m.commit_failures.inc();
            }
            tracing::error!(group = %group, error = %e, pushes = batch.len(), "commit failed");
            for job in batch {
                let _ = job.reply.send(Err(e.copy()));
            }
        }
        Failure::Stale => {
            for job in batch {
                let _ = job.reply.send(Err(changing()));
            }
        }
        Failure::Unknown {
            error,
            xid,
            applied,
        } => settled(&shared, &group, batch, error, xid, applied, sink.as_ref()).await,
    }
}

/// Commits `pushes` to `group`, once more on a fresh connection when a pooled one was found
/// dead, and once more after checking the epoch when the batch found it changed (nothing
/// was applied in either case).
async fn attempt_fresh(
    shared: &Shared,
    group: &Arc<str>,
    pushes: &[&[Change]],
) -> Result<Done, Failure> {
    let mut known = shared.known()?;
    let mut attempted = attempt(&shared.pool, &shared.batch(group, pushes, &known)).await;
    if let Err(Failure::Before(e)) = &attempted
        && super::lost_connection(e)
    {
        // A pooled connection the database closed (a restart, a failover, a terminated
        // backend) is found dead only when used. Nothing was applied: once more, on a
        // fresh connection (which the pool's hook checks).
        tracing::info!(group = %group, error = %e, "a pooled connection was lost; trying the batch again");
        known = shared.known()?;
        attempted = attempt(&shared.pool, &shared.batch(group, pushes, &known)).await;
    }
    if let Err(Failure::Stale) = &attempted {
        tracing::info!(group = %group, "the database's epoch changed under a batch; checking it, then trying again");
        let client = super::connect::get(&shared.pool).await?;
        shared.epochs.check(&client).await?;
        drop(client);
        known = shared.known()?;
        attempted = attempt(&shared.pool, &shared.batch(group, pushes, &known)).await;
    }
    attempted
}

/// A batch that found the epoch changed twice in a row.
fn changing() -> StorageError {
    StorageError::Unavailable("the database's epoch is changing; nothing was applied".into())
}

impl Shared {
    /// `pushes` to `group` as one batch of this instance, for the epoch it `known`s.
    fn batch<'a>(
        &'a self,
        group: &'a Arc<str>,
        pushes: &'a [&'a [Change]],
        known: &'a (Arc<str>, i64),
    ) -> Batch<'a> {
        Batch {
            instance: &self.instance,
            group,
            pushes,
            max_answer_bytes: self.max_answer_bytes,
            known,
            flushed: self.epochs.has_lineage(),
        }
    }

    /// The epoch served, which a batch must find.
    fn known(&self) -> Result<(Arc<str>, i64), StorageError> {
        self.epochs
            .known()
            .ok_or_else(|| StorageError::Unavailable("the database is not open yet".into()))
    }
}

/// Each push's changes.
fn changes(batch: &[PushJob]) -> Vec<&[Change]> {
    batch.iter().map(|job| job.changes.as_slice()).collect()
}

/// Counts a commit in the metrics, if they are on. (One settled after a lost connection is
/// not: its time would not be one transaction's, and it is rare.)
fn count(shared: &Shared, started: Instant, batch: &[PushJob], done: &Done) {
    if let Some(m) = crate::metrics::get() {
        let changes = batch.iter().map(|j| j.changes.len()).sum();
        let outcomes = done.applied.iter().filter_map(|a| a.outcome.as_ref().ok());
        m.committed(
            started.elapsed(),
            (batch.len(), changes),
            shared.synced,
            outcomes,
        );
    }
}

/// Records the commit in the state file (if any), hands each committed push to the sink,
/// then answers it. A commit the state file could not record is streamed (it is in the
/// database) but not acknowledged: its pushers hear that its outcome is unknown, and a
/// retry comes back as conflicts carrying what it wrote.
fn deliver(shared: &Shared, batch: Vec<PushJob>, done: Done, sink: Option<&CommitSink>) {
    let recorded = match done.flushed {
        Some(lsn) => shared.epochs.committed(lsn),
        None => Ok(()),
    };
    if let Err(e) = &recorded {
        tracing::error!(error = %e, "a commit could not be recorded in the state file; not acknowledged");
    }
    for (job, Applied { outcome, committed }) in batch.into_iter().zip(done.applied) {
        if let Some(sink) = sink
            && !committed.docs.is_empty()
        {
            sink(committed);
        }
        let outcome = match &recorded {
            Ok(()) => outcome,
            Err(e) => Err(StorageError::CommitUnknown(e.to_string())),
        };
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
            // Its flushed WAL position went with the connection: the state file keeps the
            // one before, which only makes it see less.
            let done = Done {
                applied,
                flushed: None,
            };
            deliver(shared, batch, done, sink)
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
        if let Ok(client) = super::connect::get(pool).await
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
