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

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use atomsync_proto::wire::{Change, Doc, Op, PushResult};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::read::doc_from_row;
use crate::storage::ticket::Reply;
use crate::storage::{CommitSink, Committed, PushOutcome, PushTicket, StorageError};

/// Reads a document's current state (`?1` group id, `?2` key), for the version check.
/// Public so that the benchmark's raw-SQLite baseline runs exactly the writer's statements.
pub const SELECT_DOC: &str =
    "SELECT key, version, seq, value FROM docs WHERE group_id = ?1 AND key = ?2";

/// Writes an accepted change (`?1` group id, `?2` key, `?3` version, `?4` seq, `?5` value
/// or NULL for a tombstone), creating the row or replacing its state.
pub const UPSERT_DOC: &str = "INSERT INTO docs (group_id, key, version, seq, value)
     VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (group_id, key) DO UPDATE
     SET version = excluded.version, seq = excluded.seq, value = excluded.value";

/// The most jobs committed in one transaction: bounds the latency one large batch adds.
const MAX_BATCH: usize = 512;

/// One push to apply.
struct PushJob {
    group: Arc<str>,
    changes: Vec<Change>,
    /// Where the outcome goes once durable.
    reply: Reply,
}

enum Job {
    Push(PushJob),
    /// From now on, commits go to this sink.
    Sink(CommitSink),
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
    pub(super) fn start(conn: Connection) -> Result<Writer, StorageError> {
        // FULL (2) or EXTRA (3) fsync the WAL at every commit; NORMAL only at checkpoints.
        let synchronous: i64 = conn.pragma_query_value(None, "synchronous", |row| row.get(0))?;
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("atomsync-writer".into())
            .spawn(move || {
                WriterThread {
                    conn,
                    groups: HashMap::new(),
                    sink: None,
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

/// A group as the writer knows it. The writer is the only one to change `groups.seq`, so
/// once read, its copy stays authoritative for as long as its transactions commit.
#[derive(Debug, Clone, Copy)]
struct GroupRow {
    id: i64,
    seq: u64,
}

struct WriterThread {
    conn: Connection,
    groups: HashMap<Arc<str>, GroupRow>,
    sink: Option<CommitSink>,
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
            let Ok(first) = queue.recv() else { break };
            let mut batch = Vec::new();
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Push(job) => batch.push(job),
                    Job::Sink(sink) => self.sink = Some(sink),
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
        }
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)") {
            tracing::warn!(error = %e, "checkpoint at shutdown failed; the WAL is replayed on next start");
        }
        tracing::debug!("storage writer stopped");
    }

    fn commit_batch(&mut self, batch: Vec<PushJob>) {
        let started = Instant::now();
        let (pushes, changes) = (batch.len(), batch.iter().map(|j| j.changes.len()).sum());
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
                    let _ = job.reply.send(Err(copy_error(&e)));
                }
                return;
            }
        };
        if let Some(m) = crate::metrics::get() {
            self.count(m, started, pushes, changes, &applied);
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

    /// Counts a durable commit: its time, size and fsync, and its changes by outcome.
    fn count(
        &self,
        m: &crate::metrics::Metrics,
        started: Instant,
        pushes: usize,
        changes: usize,
        applied: &[Applied],
    ) {
        m.commit_seconds
            .observe(crate::metrics::seconds(started.elapsed()));
        m.commit_pushes.observe(pushes as f64);
        m.commit_changes.observe(changes as f64);
        if self.fsync_per_commit {
            m.fsyncs.inc();
        }
        let (mut accepted, mut conflicts) = (0, 0);
        for outcome in applied.iter().filter_map(|a| a.result.as_ref().ok()) {
            for result in &outcome.0.results {
                match result {
                    PushResult::Accepted { .. } => accepted += 1,
                    PushResult::Conflict { .. } => conflicts += 1,
                }
            }
        }
        m.changes_accepted.inc_by(accepted);
        m.changes_conflict.inc_by(conflicts);
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
        let mut applied = Vec::with_capacity(batch.len());
        for job in batch {
            let before = self.groups.get(&job.group).copied();
            let result = apply_in_savepoint(&tx, &mut self.groups, &job);
            if result.is_err() {
                match before {
                    Some(row) => self.groups.insert(job.group.clone(), row),
                    None => self.groups.remove(&job.group),
                };
            }
            applied.push(Applied { job, result });
        }
        match tx.commit() {
            Ok(()) => Ok(applied),
            Err(e) => Err((applied.into_iter().map(|a| a.job).collect(), e.into())),
        }
    }
}

fn apply_in_savepoint(
    tx: &Transaction<'_>,
    groups: &mut HashMap<Arc<str>, GroupRow>,
    job: &PushJob,
) -> Result<(PushOutcome, Committed), StorageError> {
    // Cached like the writes: parsing these anew for every push was a measurable share of
    // a single-change push's time on the writer.
    let run = |sql: &str| tx.prepare_cached(sql).and_then(|mut s| s.execute([]));
    run("SAVEPOINT job")?;
    match apply_push(tx, groups, job) {
        Ok(done) => {
            run("RELEASE job")?;
            Ok(done)
        }
        Err(e) => {
            run("ROLLBACK TO job")?;
            run("RELEASE job")?;
            Err(e)
        }
    }
}

/// Version-checks and writes one push: each change is accepted iff its base equals the
/// key's current version (0 when never written).
fn apply_push(
    tx: &Transaction<'_>,
    groups: &mut HashMap<Arc<str>, GroupRow>,
    job: &PushJob,
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
    for change in &job.changes {
        let existing = current
            .query_row(params![group.id, change.key], doc_from_row)
            .optional()?;
        let version = existing.as_ref().map_or(0, |d| d.version);
        if change.base != version {
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
        },
        Committed {
            group: job.group.clone(),
            docs,
            seq: group.seq,
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

/// The same failure for every job of a failed batch (rusqlite errors are not `Clone`).
fn copy_error(e: &StorageError) -> StorageError {
    match e {
        StorageError::Sqlite(rusqlite::Error::SqliteFailure(f, msg)) => {
            StorageError::Sqlite(rusqlite::Error::SqliteFailure(*f, msg.clone()))
        }
        StorageError::WriterGone => StorageError::WriterGone,
        other => StorageError::Incompatible(other.to_string()),
    }
}
