//! The PostgreSQL backend: one database shared by any number of server instances.
//!
//! - [`schema`]: the tables (prefixed `atomsync_`) and their migrations, run at start-up
//!   under an advisory lock so that instances starting together migrate once, refusing
//!   tables of ours that are not ours; the epoch lives in `atomsync_meta`, so every
//!   instance reports the same one.
//! - `connect`: the sessions' settings, the backend's runtime, and the pool, whose every
//!   new connection has the epoch checked before use.
//! - `epoch`: the database's epoch and history mark, checked on every new connection and
//!   in every commit, renewed when the database went back in time (a point-in-time
//!   recovery, a failover, a restore), with an optional state file of this instance.
//! - `streams`: the commit sink and the streamed groups, shared by writers, listener and
//!   epoch checks.
//! - `writer`: per group, one transaction at a time, the pushes queued behind it joining the
//!   next (group commit).
//! - `commit`: one such transaction, in two round trips: it locks the group's row
//!   (`FOR UPDATE`), which holds its `seq`, so two instances writing one group serialize
//!   there; version-checks; writes; `NOTIFY`s the commit.
//! - `listen`: one dedicated connection that `LISTEN`s for the other instances' commits and
//!   hands each to the commit sink as a notice (a `Committed` with no documents); after a
//!   reconnect, and every 10 s, a notice per streamed group with its current seq.
//! - `read`: pulls, catch-up pages, documents by key, the admin API's counts; each read
//!   bounded in bytes by the database (a window sum), a page handed to its sink a chunk
//!   at a time, so no more than about one page is ever held for one request.
//! - `compact`: removing old tombstones, each group's under its row lock, raising its
//!   floor (PROTOCOL.md section 8).
//!
//! ## Why tokio-postgres, pooled by deadpool-postgres
//!
//! tokio-postgres is the asynchronous driver: a query is a future and no thread waits on
//! it, which fits [`Storage`](super::Storage)'s async reads and ticketed writes, and it
//! pipelines, speaks `LISTEN`/`NOTIFY` and takes multi-host URLs with
//! `target_session_attrs=read-write` for failover. deadpool-postgres pools it with two small
//! crates (deadpool, deadpool-runtime) and nothing else, and keeps a prepared-statement
//! cache per connection.
//! r2d2_postgres would wrap the blocking `postgres` crate, which runs a runtime inside each
//! call and needs a blocking thread per query in flight: the cost the async interface is
//! there to avoid. bb8-postgres does what deadpool does with more dependencies.
//!
//! Connections are made without TLS (`NoTls`) for now: a database reached over an
//! untrusted network needs a private network or a Unix socket (`?host=/run/postgresql`).
//!
//! ## Its own runtime
//!
//! A tokio-postgres connection is a task that owns the socket. Sockets belong to the
//! runtime that created them, and actix's arbiters are single-threaded runtimes that stop
//! with the HTTP server, before storage closes. So the backend owns a small multi-threaded
//! runtime: connections are made and driven there, the per-group writers and the listener
//! run there, and every call from the server is a task spawned there and awaited (reads also
//! decode their rows there, off the actix event loops).

mod commit;
mod compact;
mod connect;
mod epoch;
#[cfg(test)]
mod epoch_tests;
mod listen;
mod read;
pub mod schema;
mod streams;
#[cfg(test)]
mod tests;
mod writer;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use atomsync_proto::wire::{Change, Doc};
use deadpool_postgres::{Client, Pool};
use tokio::runtime::{Handle, Runtime};

use self::epoch::Epochs;
use self::listen::Listener;
use self::streams::Streams;
use self::writer::Writers;
use super::browse::{GroupStats, KeyPage, KeyRange};
use super::lineage::Lineage;
use super::{
    CommitSink, Compacted, OpenOptions, PageEnd, PageQuery, PageSink, PushTicket, StorageError,
    StreamedGroups,
};
use crate::config::{Database, Durability};

/// The opened database: its runtime, pool, per-group writers, listener and epoch. Cheap to
/// clone.
#[derive(Clone)]
pub(crate) struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL with its password hidden, for logs.
    shown: String,
    epochs: Arc<Epochs>,
    streams: Arc<Streams>,
    pool: Pool,
    writers: Writers,
    listener: Listener,
    handle: Handle,
    /// Last, so that it shuts down after everything that runs on it is dropped.
    _runtime: OwnedRuntime,
}

/// A runtime shut down in the background when dropped: dropping a runtime otherwise blocks,
/// which panics on an event loop, where the last clone of the backend (or an open that
/// failed) lets go of it.
struct OwnedRuntime(Option<Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

impl Postgres {
    /// Connects to the database at `url` (which must exist), migrates it, settles its epoch
    /// (renewed if it went back in time; see `epoch`), builds the pool of
    /// `options.pool_size` connections, and starts listening for other instances' commits
    /// (it returns once it listens, or after a connect timeout while it keeps trying).
    pub(crate) async fn open(url: &str, options: &OpenOptions) -> Result<Postgres, StorageError> {
        let durability = options.durability;
        let shown = Database::Postgres(url).redacted();
        let config = connect::config(url, durability)?;
        // This instance's own record, and its lock: two instances need two state files.
        let lineage = options
            .state_file
            .as_deref()
            .map(Lineage::open)
            .transpose()?;
        // Names this instance in its notifications, so that its listener skips its own.
        let instance = super::new_epoch()?;
        let streams = Arc::new(Streams::default());
        let epochs = Arc::new(Epochs::new(instance.clone(), lineage, streams.clone()));
        let runtime = OwnedRuntime(Some(connect::runtime()?));
        let handle = runtime
            .0
            .as_ref()
            .map(|r| r.handle().clone())
            .ok_or_else(|| StorageError::Incompatible("the backend's runtime is gone".into()))?;
        let pool = connect::pool(config.clone(), options.pool_size, epochs.clone())?;
        let setup = {
            let (pool, epochs) = (pool.clone(), epochs.clone());
            handle.spawn(async move {
                let mut client = connect::get(&pool).await?;
                schema::migrate(&mut client).await?;
                epochs.check(&client).await?;
                if durability == Durability::Full {
                    schema::warn_when_commits_are_not_durable(&client).await;
                }
                Ok::<_, StorageError>(())
            })
        };
        match setup.await {
            Ok(done) => done?,
            Err(e) => return Err(StorageError::task(e)),
        }
        if epochs.has_lineage() {
            let epochs = epochs.clone();
            handle.spawn(async move {
                let mut every = tokio::time::interval(super::lineage::SYNC_INTERVAL);
                loop {
                    every.tick().await;
                    epochs.sync_lineage().await;
                }
            });
        }
        let writers = Writers::new(writer::Setup {
            pool: pool.clone(),
            handle: handle.clone(),
            instance: instance.clone(),
            max_answer_bytes: options.max_answer_bytes,
            epochs: epochs.clone(),
            streams: streams.clone(),
            synced: durability == Durability::Full,
        });
        let listener = Listener::start(config, &handle, instance, streams.clone(), epochs.clone());
        // So that an instance, once open, hears every commit made from then on (a commit
        // made before it listened is caught up on by its re-read anyway).
        if !listener.listening(connect::CONNECT_TIMEOUT).await {
            tracing::warn!(
                "not yet listening for other instances' commits; retrying in the background"
            );
        }
        Ok(Postgres {
            inner: Arc::new(Inner {
                shown,
                epochs,
                streams,
                pool,
                writers,
                listener,
                handle,
                _runtime: runtime,
            }),
        })
    }

    /// The URL, password hidden.
    pub(crate) fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// The epoch served: it changes only when the database went back in time (see `epoch`).
    pub(crate) fn epoch(&self) -> &'static str {
        self.inner.epochs.epoch()
    }

    pub(crate) fn epoch_arc(&self) -> Arc<str> {
        self.inner.epochs.epoch_arc()
    }

    pub(crate) fn set_commit_sink(&self, sink: CommitSink) {
        self.inner.streams.set_sink(sink);
    }

    pub(crate) fn set_streamed_groups(&self, groups: StreamedGroups) {
        self.inner.streams.set_groups(groups);
    }

    pub(crate) fn push(&self, group: Arc<str>, changes: Vec<Change>) -> PushTicket {
        self.inner.writers.push(group, changes)
    }

    pub(crate) async fn pull_into<S: PageSink>(
        &self,
        group: Arc<str>,
        query: PageQuery,
        mut sink: S,
    ) -> Result<(S, PageEnd), StorageError> {
        let epochs = self.inner.epochs.clone();
        self.run(async move |pool: Pool| {
            let mut offered = 0;
            let mut tries = 0;
            let end = loop {
                tries += 1;
                let mut client = connect::get(&pool).await?;
                match read::pull_into(&mut client, &group, &query, &mut sink, &mut offered).await {
                    // A pooled connection found dead before the sink took anything: nothing
                    // is lost by reading again, once, on a fresh one.
                    Err(e) if tries == 1 && offered == 0 && lost_connection(&e) => continue,
                    end => break end?,
                }
            };
            if end.epoch != epochs.epoch_arc() {
                // Another instance renewed the epoch and this one has not adopted it yet:
                // adopt it now, so that the caller, which named its page with the old one
                // and must not send it, reads again under the new one.
                epochs.check(&*connect::get(&pool).await?).await?;
            }
            Ok((sink, end))
        })
        .await
    }

    pub(crate) async fn compact(&self, before: SystemTime) -> Result<Compacted, StorageError> {
        self.run(async move |pool: Pool| compact::compact(&pool, before).await)
            .await
    }

    pub(crate) async fn group_seq(&self, group: Arc<str>) -> Result<u64, StorageError> {
        self.read(move |client| {
            let group = group.clone();
            async move { read::group_seq(&client, &group).await }
        })
        .await
    }

    pub(crate) async fn groups(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<GroupStats>, bool), StorageError> {
        self.read(move |client| {
            let after = after.clone();
            async move { read::groups(&client, after.as_deref(), limit).await }
        })
        .await
    }

    pub(crate) async fn group_stats(
        &self,
        group: Arc<str>,
    ) -> Result<Option<GroupStats>, StorageError> {
        self.read(move |client| {
            let group = group.clone();
            async move { read::group_stats(&client, &group).await }
        })
        .await
    }

    pub(crate) async fn doc_at(
        &self,
        group: Arc<str>,
        key: String,
    ) -> Result<(Option<Doc>, Arc<str>), StorageError> {
        let epochs = self.inner.epochs.clone();
        self.read(move |client| {
            let (group, key, epochs) = (group.clone(), key.clone(), epochs.clone());
            async move {
                let (doc, epoch) = read::doc(&client, &group, &key).await?;
                if epoch != epochs.epoch_arc() {
                    // Another instance renewed the epoch: serve it from now on too.
                    epochs.check(&client).await?;
                }
                Ok((doc, epoch))
            }
        })
        .await
    }

    pub(crate) async fn docs_by_key(
        &self,
        group: Arc<str>,
        range: KeyRange,
    ) -> Result<Option<KeyPage>, StorageError> {
        self.read(move |mut client| {
            let (group, range) = (group.clone(), range.clone());
            async move { read::docs_by_key(&mut client, &group, &range).await }
        })
        .await
    }

    pub(crate) async fn health(&self) -> Result<(), StorageError> {
        if self.inner.writers.is_closed() {
            return Err(StorageError::WriterGone);
        }
        self.read(|client| async move { read::health(&client).await })
            .await
    }

    pub(crate) async fn close(&self) {
        self.inner.writers.close().await;
        self.inner.listener.stop();
        let epochs = self.inner.epochs.clone();
        let _ = self
            .inner
            .handle
            .spawn(async move { epochs.sync_lineage().await })
            .await;
    }

    /// Runs `read` on a pooled connection, as one task on the backend's runtime. A
    /// connection found lost (a pooled one the database closed in the meantime) is replaced
    /// and the read run again: a read changes nothing.
    async fn read<T, F, Fut>(&self, read: F) -> Result<T, StorageError>
    where
        F: Fn(Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, StorageError>> + Send,
        T: Send + 'static,
    {
        self.run(
            async move |pool: Pool| match read(connect::get(&pool).await?).await {
                Err(e) if lost_connection(&e) => read(connect::get(&pool).await?).await,
                done => done,
            },
        )
        .await
    }

    /// Runs `task` with the pool as one task on the backend's runtime, where the pool's
    /// connections live, and waits for it.
    async fn run<T, F, Fut>(&self, task: F) -> Result<T, StorageError>
    where
        F: FnOnce(Pool) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StorageError>> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.inner.pool.clone();
        match self.inner.handle.spawn(task(pool)).await {
            Ok(result) => result,
            Err(e) => Err(StorageError::task(e)),
        }
    }
}

/// True when PostgreSQL's failure is a state of the database or its operation (the
/// connection lost, the server shutting down or out of resources, a lock or serialization
/// timeout, a login, database or table taken away) rather than a bug of ours (a statement
/// or value the server refuses): 503, which a client retries, versus 500.
pub(super) fn is_transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            let code = code.code();
            // 08: connection exception; 28: invalid authorization (a password changed);
            // 3D: the database is gone; 40: transaction rollback (serialization, deadlock);
            // 53: insufficient resources (disk full, too many connections); 57: operator
            // intervention (shutdown, cancel); 58: system error (I/O); 55P03: lock not
            // available (lock_timeout); 25006: read-only transaction (a standby, before a
            // failover completes); 42501, 42P01: a privilege or a table taken away.
            ["08", "28", "3D", "40", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
                || ["55P03", "25006", "42501", "42P01"].contains(&code)
        }
        // No SQLSTATE: the driver failed to reach or hear the server (I/O, a connect
        // timeout, TLS), which passes; or to convert a value, which is our bug.
        None => !conversion(e),
    }
}

/// True when `e` says the connection itself was lost (closed, failed, or its backend ended
/// by a shutdown or an administrator): the request may go again on another connection,
/// and a commit in flight may or may not have been made.
fn lost_connection(e: &StorageError) -> bool {
    let StorageError::Postgres(e) = e else {
        return false;
    };
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&code)
        }
        None => !conversion(e),
    }
}

/// True for the driver's own failure to convert a value (our bug), as opposed to one of
/// reaching the server. The error's kind is not public: its words say which.
fn conversion(e: &tokio_postgres::Error) -> bool {
    let shown = e.to_string();
    shown.starts_with("error serializing") || shown.starts_with("error deserializing")
}

/// Converts a stored BIGINT to the wire's u64; a negative one means the table was written
/// by something else.
fn unsigned(n: i64, what: &str) -> Result<u64, StorageError> {
    u64::try_from(n)
        .map_err(|_| StorageError::Incompatible(format!("a negative {what} ({n}) in the database")))
}

/// A u64 cursor as a BIGINT: nothing beyond `i64::MAX` can exist, so clamp rather than fail.
fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Locks one of the backend's std mutexes: each is held for a lookup, an insert or an
/// assignment, never across an await, so a panic cannot leave one half-changed.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
