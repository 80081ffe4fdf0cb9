//! The single writer: one thread, one connection, every push of every group.
//!
//! Jobs arrive on a channel straight from the push path ([`crate::push`]), in the order the
//! HTTP handlers and WebSocket sessions submit them. The thread takes the first job, then
//! every job already queued behind it (up to [`MAX_BATCH`]), and version-checks and writes
//! them all in one transaction: one fsync acknowledges many requests (group commit), and
//! two groups never contend for SQLite's write lock. Being the only writer, the thread is
//! also what serializes each group's version checks and `seq`s. Each job runs in a
//! savepoint, so a job that fails leaves the others of its batch intact.
//!
//! Only after the commit succeeds does a job learn its outcome (so nothing is acknowledged
//! before it is durable), and the commit sink (the group actors' registry) receive the
//! committed documents to stream, job by job in commit order, before the outcomes go out.
//! Between the commit and those, two checks: the file at the database's path is still the
//! one written (else nothing of the batch is acknowledged or streamed: [`StorageError::Lost`]),
//! and the lineage state file has recorded the database's new commit count (see
//! [`crate::storage::lineage`]).
//!
//! Compaction jobs run here too, a short transaction at a time, queued behind the pushes
//! (see `compact`).

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use atomsync_proto::wire::Change;
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::apply::{GroupRow, apply_in_savepoint};
pub use super::apply::{SELECT_DOC, UPSERT_DOC};
use super::compact;
use super::identity::FileIdentity;
use crate::storage::lineage::Lineage;
use crate::storage::ticket::Reply;
use crate::storage::{CommitSink, Committed, Compacted, PushOutcome, PushTicket, StorageError};

/// Counts a transaction that accepted a write (see [`crate::storage::lineage`]).
const BUMP_COMMITS: &str =
    "UPDATE counters SET value = value + 1 WHERE name = 'commits' RETURNING value";

/// The most jobs committed in one transaction: bounds the latency one large batch adds.
const MAX_BATCH: usize = 512;

/// Groups whose row the writer keeps in memory. A server with millions of groups touches
/// each now and then: past this many, the cache starts again, and a group's next push
/// reads its row (one indexed lookup).
const MAX_CACHED_GROUPS: usize = 10_000;

/// What the writer thread starts with.
pub(super) struct Setup {
    /// The connection, set up for writing.
    pub(super) conn: Connection,
    /// The state file to tell of every commit, if any.
    pub(super) lineage: Option<Lineage>,
    /// The database file as opened.
    pub(super) identity: Arc<FileIdentity>,
    /// The database's commit count at start.
    pub(super) commits: u64,
    /// The most bytes of conflicting documents one push answers with.
    pub(super) max_answer_bytes: usize,
    /// The database's epoch, which every outcome names.
    pub(super) epoch: Arc<str>,
}

/// One push to apply.
pub(super) struct PushJob {
    pub(super) group: Arc<str>,
    pub(super) changes: Vec<Change>,
    /// Where the outcome goes once durable.
    reply: Reply,
}

enum Job {
    Push(PushJob),
    /// From now on, commits go to this sink.
    Sink(CommitSink),
    /// Remove tombstones written before `before_ms` (Unix milliseconds), a transaction at a
    /// time; `done` counts what was removed so far.
    Compact {
        before_ms: i64,
        done: Compacted,
        reply: oneshot::Sender<Result<Compacted, StorageError>>,
    },
    /// Runs on the writer's connection (tests: to make SQLite's disk look full).
    #[cfg(test)]
    OnConnection(Box<dyn FnOnce(&Connection) + Send>),
    Shutdown,
}

/// A handle on the writer thread. Cheap to clone; every clone feeds the same thread.
#[derive(Clone)]
pub(crate) struct Writer {
    inner: Arc<WriterInner>,
}

struct WriterInner {
    jobs: Sender<Job>,
    // A std Mutex: it is taken once, at shutdown, never on a hot path or across an await.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub(super) fn start(setup: Setup) -> Result<Writer, StorageError> {
        // FULL (2) or EXTRA (3) fsync the WAL at every commit; NORMAL only at checkpoints.
        let synchronous: i64 = setup
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))?;
        let (jobs, queue) = mpsc::channel();
        let requeue = jobs.clone();
        let thread = std::thread::Builder::new()
            .name("atomsync-writer".into())
            .spawn(move || {
                WriterThread {
                    conn: setup.conn,
                    groups: HashMap::new(),
                    sink: None,
                    lineage: setup.lineage,
                    identity: setup.identity,
                    commits: setup.commits,
                    max_answer_bytes: setup.max_answer_bytes,
                    epoch: setup.epoch,
                    requeue,
                    fsync_per_commit: synchronous >= 2,
                }
                .run(queue)
            })
            .map_err(|e| {
                StorageError::Incompatible(format!("cannot start the writer thread: {e}"))
            })?;
        Ok(Writer {
            inner: Arc::new(WriterInner {
                jobs,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Queues a push of validated `changes` to `group`; the ticket resolves with its outcome
    /// once it is committed and durable.
    pub(super) fn push(&self, group: Arc<str>, changes: Vec<Change>) -> PushTicket {
        let (ticket, reply) = PushTicket::new();
        let job = Job::Push(PushJob {
            group,
            changes,
            reply,
        });
        match self.inner.jobs.send(job) {
            Ok(()) => ticket,
            Err(_) => PushTicket::failed(StorageError::WriterGone),
        }
    }

    /// Removes every tombstone written before `before`, in short transactions queued
    /// behind the pushes; resolves with what was removed.
    pub(super) async fn compact(&self, before: SystemTime) -> Result<Compacted, StorageError> {
        let before_ms = before
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let (reply, done) = oneshot::channel();
        let job = Job::Compact {
            before_ms,
            done: Compacted::default(),
            reply,
        };
        self.inner
            .jobs
            .send(job)
            .map_err(|_| StorageError::WriterGone)?;
        done.await.unwrap_or(Err(StorageError::WriterGone))
    }

    /// Runs `f` on the writer's connection, between batches (tests only).
    #[cfg(test)]
    pub(super) fn on_connection(&self, f: impl FnOnce(&Connection) + Send + 'static) {
        let _ = self.inner.jobs.send(Job::OnConnection(Box::new(f)));
    }

    /// Sends every later commit to `sink` (replacing the one before, if any).
    pub(super) fn set_commit_sink(&self, sink: CommitSink) {
        // Only fails once the thread has stopped, when no commit is left to hand on.
        let _ = self.inner.jobs.send(Job::Sink(sink));
    }

    /// True while the writer thread runs.
    pub(super) fn is_alive(&self) -> bool {
        self.inner
            .thread
            .lock()
            .map(|t| t.as_ref().is_some_and(|h| !h.is_finished()))
            .unwrap_or(false)
    }

    /// Commits every job queued so far, closes the connection and joins the thread. Jobs
    /// submitted afterwards fail with [`StorageError::WriterGone`]. Blocking.
    pub(super) fn shutdown(&self) {
        let _ = self.inner.jobs.send(Job::Shutdown);
        let handle = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle
            && handle.join().is_err()
        {
            tracing::error!("the storage writer thread panicked");
        }
    }
}

struct WriterThread {
    conn: Connection,
    groups: HashMap<Arc<str>, GroupRow>,
    sink: Option<CommitSink>,
    lineage: Option<Lineage>,
    identity: Arc<FileIdentity>,
    /// The database's commit count, as last committed.
    commits: u64,
    max_answer_bytes: usize,
    epoch: Arc<str>,
    /// Puts a compaction's next step behind the pushes queued meanwhile.
    requeue: Sender<Job>,
    /// Each commit fsyncs the WAL (durability full): counted as such in the metrics.
    fsync_per_commit: bool,
}

/// A job applied inside the open transaction, waiting for the commit.
struct Applied {
    job: PushJob,
    result: Result<(PushOutcome, Committed), StorageError>,
}

impl WriterThread {
    fn run(mut self, queue: Receiver<Job>) {
        let mut stopping = false;
        while !stopping {
            let first = match self.lineage.as_ref().and_then(Lineage::sync_due) {
                // Idle with the state file's last counts unsynced: sync them when due.
                Some(due) => {
                    match queue.recv_timeout(due.saturating_duration_since(Instant::now())) {
                        Ok(job) => job,
                        Err(RecvTimeoutError::Timeout) => {
                            self.sync_lineage();
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                None => match queue.recv() {
                    Ok(job) => job,
                    Err(_) => break,
                },
            };
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Push(job) => batch.push(job),
                    Job::Sink(sink) => self.sink = Some(sink),
                    Job::Compact {
                        before_ms,
                        done,
                        reply,
                    } => {
                        // Pushes read before it go first; its own step, then the rest.
                        if !batch.is_empty() {
                            self.commit_batch(std::mem::take(&mut batch));
                        }
                        self.compact_step(before_ms, done, reply);
                    }
                    #[cfg(test)]
                    Job::OnConnection(f) => f(&self.conn),
                    Job::Shutdown => {
                        stopping = true;
                        break;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = queue.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit_batch(batch);
            }
            if self
                .lineage
                .as_ref()
                .and_then(Lineage::sync_due)
                .is_some_and(|due| due <= Instant::now())
            {
                self.sync_lineage();
            }
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "checkpoint at shutdown failed; the WAL is replayed on next start");
        }
        self.sync_lineage();
        tracing::debug!("storage writer stopped");
    }

    fn sync_lineage(&mut self) {
        if let Some(lineage) = &mut self.lineage {
            lineage.sync();
        }
    }

    /// One transaction of a compaction; queues the next one behind the pushes waiting, or
    /// answers once nothing is left.
    fn compact_step(
        &mut self,
        before_ms: i64,
        mut done: Compacted,
        reply: oneshot::Sender<Result<Compacted, StorageError>>,
    ) {
        let step = self.identity.check().and_then(|()| {
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let step = compact::step(&tx, before_ms)?;
            tx.commit()?;
            self.identity.check()?;
            Ok(step)
        });
        match step {
            Ok(step) => {
                done.tombstones += step.removed;
                done.groups += step.groups;
                if step.more {
                    let next = Job::Compact {
                        before_ms,
                        done,
                        reply,
                    };
                    if let Err(mpsc::SendError(Job::Compact { reply, done, .. })) =
                        self.requeue.send(next)
                    {
                        let _ = reply.send(Ok(done));
                    }
                } else {
                    let _ = reply.send(Ok(done));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "compaction failed");
                let _ = reply.send(Err(e));
            }
        }
    }

    fn commit_batch(&mut self, batch: Vec<PushJob>) {
        if let Err(e) = self.identity.check() {
            for job in batch {
                let _ = job.reply.send(Err(e.copy()));
            }
            return;
        }
        let started = Instant::now();
        let changes = batch.iter().map(|j| j.changes.len()).sum();
        let applied = match self.apply_batch(batch) {
            Ok(applied) => applied,
            Err((jobs, e)) => {
                if let Some(m) = crate::metrics::get() {
                    m.commit_failures.inc();
                }
                // Nothing of this batch is durable: every job hears so, and the cached
                // group rows may describe rolled-back writes.
                self.groups.clear();
                tracing::error!(error = %e, jobs = jobs.len(), "commit failed");
                for job in jobs {
                    let _ = job.reply.send(Err(e.copy()));
                }
                return;
            }
        };
        // Durable, but not yet acknowledged: only if the file is still the database at its
        // path, and the state file knows the new count.
        let recorded = self
            .identity
            .check()
            .and_then(|()| match &mut self.lineage {
                Some(lineage) => lineage.committed(self.commits),
                None => Ok(()),
            });
        if let Err(e) = recorded {
            if !matches!(e, StorageError::Lost(_)) {
                tracing::error!(error = %e, "a commit could not be recorded in the state file; not acknowledged");
            }
            for Applied { job, .. } in applied {
                let _ = job.reply.send(Err(e.copy()));
            }
            return;
        }
        if let Some(m) = crate::metrics::get() {
            let outcomes = applied.iter().filter_map(|a| a.result.as_ref().ok());
            m.committed(
                started.elapsed(),
                (applied.len(), changes),
                self.fsync_per_commit,
                outcomes.map(|(outcome, _)| outcome),
            );
        }
        for Applied { job, result } in applied {
            match result {
                Ok((outcome, committed)) => {
                    if let Some(sink) = &self.sink
                        && !committed.docs.is_empty()
                    {
                        sink(committed);
                    }
                    let _ = job.reply.send(Ok(outcome));
                }
                Err(e) => {
                    let _ = job.reply.send(Err(e));
                }
            }
        }
    }

    /// Applies every job in one transaction and commits it. On a failed commit, gives the
    /// jobs back with the error.
    #[allow(clippy::type_complexity)]
    fn apply_batch(
        &mut self,
        batch: Vec<PushJob>,
    ) -> Result<Vec<Applied>, (Vec<PushJob>, StorageError)> {
        let tx = match self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => return Err((batch, e.into())),
        };
        if self.groups.len() >= MAX_CACHED_GROUPS {
            self.groups.clear();
        }
        let mut applied = Vec::with_capacity(batch.len());
        let mut wrote = false;
        for job in batch {
            let before = self.groups.get(&job.group).copied();
            let result = apply_in_savepoint(&tx, &mut self.groups, &job, self.max_answer_bytes)
                .map(|(mut outcome, committed)| {
                    outcome.epoch = self.epoch.clone();
                    (outcome, committed)
                });
            match &result {
                Ok((_, committed)) => wrote |= !committed.docs.is_empty(),
                Err(_) => {
                    match before {
                        Some(row) => self.groups.insert(job.group.clone(), row),
                        None => self.groups.remove(&job.group),
                    };
                }
            }
            // SQLite rolled the whole transaction back (a full disk, say): nothing of the
            // batch is there any more, and every job hears why.
            if let Err(e) = &result
                && tx.is_autocommit()
            {
                let e = e.copy();
                applied.push(Applied { job, result });
                return Err((applied.into_iter().map(|a| a.job).collect(), e));
            }
            applied.push(Applied { job, result });
        }
        let mut commits = self.commits;
        if wrote {
            match tx
                .prepare_cached(BUMP_COMMITS)
                .and_then(|mut s| s.query_row([], |r| r.get::<_, u64>(0)))
            {
                Ok(n) => commits = n,
                Err(e) => return Err((applied.into_iter().map(|a| a.job).collect(), e.into())),
            }
        }
        match tx.commit() {
            Ok(()) => {
                self.commits = commits;
                Ok(applied)
            }
            Err(e) => Err((applied.into_iter().map(|a| a.job).collect(), e.into())),
        }
    }
}
