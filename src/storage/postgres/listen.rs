//! The listener: one dedicated connection that `LISTEN`s for the commits of the other
//! instances on the same database, and hands each to the commit sink as a notice (a
//! [`Committed`] with no documents), which makes the group's actor read the documents it
//! has not streamed from storage, in `seq` order.
//!
//! A notification can only be missed while the connection is down. So once it is back
//! (and `LISTEN` is in place, so that every later commit is heard), and every
//! [`RESYNC_EVERY`] as a safety net, the listener reads the current seq of every group the
//! sink streams ([`StreamedGroups`]) in one statement and sends a notice for each: an actor
//! behind it catches up from the last seq it streamed, an actor already there ignores it.
//! The listener's own instance's commits reach the sink from its writers, with their
//! documents, and are skipped here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::commit::CHANNEL;
use super::{lock, unsigned};
use crate::storage::{CommitSink, Committed, StorageError, StreamedGroups};

/// How often the streamed groups' seqs are read again, whatever was heard.
pub(super) const RESYNC_EVERY: Duration = Duration::from_secs(10);

/// The longest wait between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// The most group names read in one statement.
const NAMES_PER_READ: usize = 10_000;

/// The listener's task, and what it hands notices to.
pub(super) struct Listener {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

struct Shared {
    /// This instance's name in notifications.
    instance: String,
    /// True while `LISTEN` is in place.
    listening: tokio::sync::watch::Sender<bool>,
    pool: Pool,
    // std Mutexes: set once, cloned out for each use, never held across an await.
    sink: Mutex<Option<CommitSink>>,
    groups: Mutex<Option<StreamedGroups>>,
}

impl Listener {
    /// Starts listening on `handle`, with a connection of its own made from `config`.
    pub(super) fn start(
        config: tokio_postgres::Config,
        handle: &Handle,
        pool: Pool,
        instance: String,
    ) -> Listener {
        let shared = Arc::new(Shared {
            instance,
            listening: tokio::sync::watch::Sender::new(false),
            pool,
            sink: Mutex::default(),
            groups: Mutex::default(),
        });
        let task = handle.spawn(run(config, shared.clone()));
        Listener { shared, task }
    }

    pub(super) fn set_commit_sink(&self, sink: CommitSink) {
        *lock(&self.shared.sink) = Some(sink);
    }

    pub(super) fn set_streamed_groups(&self, groups: StreamedGroups) {
        *lock(&self.shared.groups) = Some(groups);
    }

    /// Waits until `LISTEN` is in place, for at most `limit`; false if it was not by then.
    pub(super) async fn listening(&self, limit: Duration) -> bool {
        let mut listening = self.shared.listening.subscribe();
        tokio::time::timeout(limit, listening.wait_for(|on| *on))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// Stops listening.
    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

/// Listens, reconnecting with backoff, until aborted.
async fn run(config: tokio_postgres::Config, shared: Arc<Shared>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut heard = false;
        let ended = listen(&config, &shared, &mut heard).await;
        shared.listening.send_replace(false);
        if heard {
            backoff = Duration::from_millis(100);
        }
        match ended {
            Ok(()) => tracing::warn!("the postgres listener's connection closed; reconnecting"),
            Err(e) => {
                tracing::warn!(error = %e, "the postgres listener's connection failed; reconnecting")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: `LISTEN`, re-read the streamed groups, then hand on notifications
/// (and re-read every [`RESYNC_EVERY`]) until the connection ends. `listening` is set
/// once `LISTEN` is in place.
async fn listen(
    config: &tokio_postgres::Config,
    shared: &Shared,
    listening: &mut bool,
) -> Result<(), StorageError> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (heard, mut notifications) = mpsc::unbounded_channel();
    // Drives the connection (the `LISTEN` below included) and passes on what it hears; it
    // ends with the connection, which closes the channel.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if heard.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the postgres listener's connection failed");
                    return;
                }
            }
        }
    });
    let _stop_driver = AbortOnDrop(driver);
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    *listening = true;
    shared.listening.send_replace(true);
    tracing::debug!("listening for other instances' commits");
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    loop {
        tokio::select! {
            n = notifications.recv() => match n {
                Some(n) => notice(shared, n.payload()),
                None => return Ok(()),
            },
            // The first tick is at once: the re-read after (re)connecting.
            _ = resync.tick() => {
                if let Err(e) = resync_groups(shared).await {
                    tracing::warn!(error = %e, "cannot re-read the streamed groups' seqs");
                }
            }
        }
    }
}

/// Hands on another instance's commit, `<instance> <seq> <group>`, as a notice.
fn notice(shared: &Shared, payload: &str) {
    let mut parts = payload.splitn(3, ' ');
    let (Some(instance), Some(seq), Some(group)) = (parts.next(), parts.next(), parts.next())
    else {
        tracing::warn!(
            payload,
            "a notification not from Atomsync on its channel; ignored"
        );
        return;
    };
    if instance == shared.instance {
        return;
    }
    let Ok(seq) = seq.parse::<u64>() else {
        tracing::warn!(payload, "a notification with a bad seq; ignored");
        return;
    };
    let sink = lock(&shared.sink).clone();
    if let Some(sink) = sink {
        sink(Committed {
            group: group.into(),
            docs: Vec::new(),
            seq,
        });
    }
}

/// Sends a notice with its current seq for every group the sink streams.
async fn resync_groups(shared: &Shared) -> Result<(), StorageError> {
    let groups = lock(&shared.groups).clone();
    let sink = lock(&shared.sink).clone();
    let (Some(groups), Some(sink)) = (groups, sink) else {
        return Ok(());
    };
    let names = groups();
    if names.is_empty() {
        return Ok(());
    }
    let client = shared.pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT name, seq FROM atomsync_groups WHERE name = ANY($1)")
        .await?;
    for chunk in names.chunks(NAMES_PER_READ) {
        let chunk: Vec<&str> = chunk.iter().map(|n| &**n).collect();
        for row in client.query(&stmt, &[&chunk]).await? {
            let name: &str = row.get(0);
            sink(Committed {
                group: name.into(),
                docs: Vec::new(),
                seq: unsigned(row.get(1), "seq")?,
            });
        }
    }
    Ok(())
}

/// Aborts a task when dropped, so that a connection's driver never outlives its client.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
