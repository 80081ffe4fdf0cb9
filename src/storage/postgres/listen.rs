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
//!
//! The listener also watches the epoch (see `epoch`): each time it connects, before it
//! listens, and at every re-read, it checks the database's epoch on its connection; and a
//! notification that another instance gave the database a new epoch makes it check at once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_postgres::{AsyncMessage, NoTls};

use super::commit::CHANNEL;
use super::epoch::Epochs;
use super::streams::Streams;
use crate::storage::{Committed, StorageError};

/// How often the streamed groups' seqs are read again, whatever was heard.
pub(super) const RESYNC_EVERY: Duration = Duration::from_secs(10);

/// The longest wait between two attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
    streams: Arc<Streams>,
    epochs: Arc<Epochs>,
}

impl Listener {
    /// Starts listening on `handle`, with a connection of its own made from `config`.
    pub(super) fn start(
        config: tokio_postgres::Config,
        handle: &Handle,
        instance: String,
        streams: Arc<Streams>,
        epochs: Arc<Epochs>,
    ) -> Listener {
        let shared = Arc::new(Shared {
            instance,
            listening: tokio::sync::watch::Sender::new(false),
            streams,
            epochs,
        });
        // Named apart in `pg_stat_activity`, for operators (and tests) to tell it.
        let mut config = config;
        let name = format!(
            "{} listener",
            config.get_application_name().unwrap_or("atomsync")
        );
        config.application_name(&name);
        let task = handle.spawn(run(config, shared.clone()));
        Listener { shared, task }
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

/// One connection's life: `LISTEN`, check the epoch, re-read the streamed groups, then hand
/// on notifications (and check and re-read every [`RESYNC_EVERY`]) until the connection
/// ends. `listening` is set once `LISTEN` is in place.
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
    // A new connection may reach a database that went back in time (a failover, a
    // restore): the epoch is settled before anything else is read.
    shared.epochs.check(&client).await?;
    *listening = true;
    shared.listening.send_replace(true);
    tracing::debug!("listening for other instances' commits");
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    loop {
        tokio::select! {
            n = notifications.recv() => match n {
                Some(n) => match notice(shared, n.payload()) {
                    Heard::Commit => {}
                    Heard::Epoch => shared.epochs.check(&client).await?,
                },
                None => return Ok(()),
            },
            // The first tick is at once: the re-read after (re)connecting.
            _ = resync.tick() => {
                let checked = shared.epochs.check(&client).await;
                if let Err(e) = checked.and(shared.streams.notice_all(&client, false).await) {
                    tracing::warn!(error = %e, "cannot check the epoch or re-read the streamed groups' seqs");
                }
            }
        }
    }
}

/// What a notification was.
enum Heard {
    /// A commit (handed on), or nothing to act on.
    Commit,
    /// Another instance gave the database a new epoch.
    Epoch,
}

/// Hands on another instance's commit, `<instance> <seq> <group>`, as a notice; or says
/// that it renewed the epoch, `<instance> epoch <epoch>`.
fn notice(shared: &Shared, payload: &str) -> Heard {
    let mut parts = payload.splitn(3, ' ');
    let (Some(instance), Some(seq), Some(group)) = (parts.next(), parts.next(), parts.next())
    else {
        tracing::warn!(
            payload,
            "a notification not from Atomsync on its channel; ignored"
        );
        return Heard::Commit;
    };
    if instance == shared.instance {
        return Heard::Commit;
    }
    if seq == "epoch" {
        return Heard::Epoch;
    }
    let Ok(seq) = seq.parse::<u64>() else {
        tracing::warn!(payload, "a notification with a bad seq; ignored");
        return Heard::Commit;
    };
    if let Some(sink) = shared.streams.sink() {
        sink(Committed {
            group: group.into(),
            docs: Vec::new(),
            seq,
            epoch_changed: false,
        });
    }
    Heard::Commit
}

/// Aborts a task when dropped, so that a connection's driver never outlives its client.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
