//! What syncing does to one group, whatever the transport: check the epoch, store
//! changes with the cursor, finish a catch-up, take a batch of pending changes, and settle
//! a push's answer (calling the resolver). The engine's view of a group on one connection
//! is a [`Slot`].
//!
//! Every answer is checked before it is stored: a page or frame that breaks the
//! protocol's ordering rules is refused whole, so the cursor never jumps over changes.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use atomsync_proto::Packed;
use atomsync_proto::wire::{Change, Doc, Op, PullResponse, PushRequest, PushResponse, PushResult};

use crate::group::{GroupShared, checked};
use crate::local::{Applied, EpochCheck, PendingChange, Settlement};
use crate::{ClientError, Resolver, Status};

/// Most changes in one push (the server's default limit is 10000).
pub(crate) const MAX_BATCH: usize = 1000;
/// Most value bytes in one push (the server's default body limit is 8 MiB).
const MAX_BATCH_BYTES: usize = 4 << 20;

/// One group as a connection syncs it.
pub(crate) struct Slot {
    pub(crate) shared: Arc<GroupShared>,
    /// The server refused the group (403): left alone until kicked or re-attached.
    pub(crate) forbidden: bool,
    /// Changes per push: 1 after the server refused a batch, to find the change it
    /// refuses; back to [`MAX_BATCH`] once nothing is pending.
    pub(crate) batch_limit: usize,
    /// WebSocket: the push awaiting its `pushed` answer (frame id, changes sent).
    pub(crate) in_flight: Option<(u64, Vec<PendingChange>)>,
    /// WebSocket: `subscribed` has arrived on this connection.
    pub(crate) live: bool,
    /// No push before this instant (the server was unavailable).
    pub(crate) retry_at: Option<Instant>,
    /// WebSocket: the cursor the current subscription started from, while it catches up.
    pub(crate) subscribed_since: u64,
    /// WebSocket: this catch-up was seen to start again from 0 below our cursor (the
    /// server compacted past it), and the reset has begun.
    pub(crate) reset_begun: bool,
    /// WebSocket: the server ended the subscription while it caught up; subscribe again
    /// once `retry_at` passes.
    pub(crate) resubscribe: bool,
}

impl Slot {
    pub(crate) fn new(shared: Arc<GroupShared>) -> Slot {
        Slot {
            shared,
            forbidden: false,
            batch_limit: MAX_BATCH,
            in_flight: None,
            live: false,
            retry_at: None,
            subscribed_since: 0,
            reset_begun: false,
            resubscribe: false,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.shared.name
    }

    pub(crate) fn status(&self, update: impl FnOnce(&mut Status)) {
        self.shared.update_status(update);
    }

    /// Whether a push may start now.
    pub(crate) fn may_push(&self) -> bool {
        !self.forbidden
            && self.in_flight.is_none()
            && self.retry_at.is_none_or(|at| at <= Instant::now())
    }
}

/// Runs a local-store operation on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, ClientError> + Send + 'static,
) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(op)
        .await
        .unwrap_or_else(|error| Err(task_failed(&error)))
}

/// The error of a local-store task that did not finish. A panicking watcher is caught
/// where it is called, so this is only a cancelled task (the runtime shutting down).
pub(crate) fn task_failed(error: &tokio::task::JoinError) -> ClientError {
    ClientError::Protocol(format!("local store task failed: {error}"))
}

/// Compares the server's epoch with the recorded one (resetting the group on a change).
pub(crate) async fn check_epoch(
    shared: &Arc<GroupShared>,
    epoch: &str,
) -> Result<EpochCheck, ClientError> {
    let (shared, epoch) = (shared.clone(), epoch.to_owned());
    blocking(move || {
        let mut check = EpochCheck::Same;
        shared.apply(|db| {
            let (result, applied) = db.check_epoch(&shared.name, &epoch)?;
            check = result;
            Ok(applied)
        })?;
        if check == EpochCheck::Changed {
            tracing::warn!(group = %shared.name, "the server's database changed (new epoch): syncing again from 0");
        }
        Ok(check)
    })
    .await
}

/// Starts a reset after the server reported compaction below the cursor (PROTOCOL.md
/// section 8): every document is stale until the full catch-up returns it; those it does
/// not return are dropped when it ends ([`finish_catch_up`]); pending changes stay.
pub(crate) async fn begin_compaction_reset(shared: &Arc<GroupShared>) -> Result<(), ClientError> {
    let shared = shared.clone();
    tracing::info!(group = %shared.name, "the server compacted past our cursor: full catch-up");
    blocking(move || {
        shared
            .apply(|db| db.begin_compaction_reset(&shared.name))
            .map(drop)
    })
    .await
}

/// Stores documents and advances the cursor to `seq`, after checking their order.
pub(crate) async fn apply_changes(
    shared: &Arc<GroupShared>,
    docs: Vec<Doc>,
    seq: u64,
) -> Result<(), ClientError> {
    check_frame(&docs, seq)?;
    let shared = shared.clone();
    blocking(move || {
        shared
            .apply(|db| db.apply_remote(&shared.name, docs, seq))
            .map(drop)
    })
    .await
}

/// Checks one `changes` frame or pull page: documents in strictly ascending `seq`, none
/// after the cursor `seq` it carries.
pub(crate) fn check_frame<'a>(
    docs: impl IntoIterator<Item = &'a Doc>,
    seq: u64,
) -> Result<(), ClientError> {
    check_order(docs, 0, seq)
}

/// Ends a complete catch-up (sweeping after a reset).
pub(crate) async fn finish_catch_up(shared: &Arc<GroupShared>) -> Result<(), ClientError> {
    let shared = shared.clone();
    blocking(move || {
        shared
            .apply(|db| db.finish_catch_up(&shared.name))
            .map(drop)
    })
    .await
}

/// Checks a pull page against the request: the right group, changes after `since` in
/// `seq` order up to the page's cursor, and progress whenever `more` is set.
pub(crate) fn check_page(page: &PullResponse, group: &str, since: u64) -> Result<(), ClientError> {
    if page.group != group {
        return Err(ClientError::Protocol(format!(
            "pull of {group:?} answered for {:?}",
            page.group
        )));
    }
    // A reset answer is a pull from 0.
    let since = if page.reset { 0 } else { since };
    if page.seq < since {
        return Err(ClientError::Protocol(format!(
            "pull since {since} answered with cursor {}",
            page.seq
        )));
    }
    if page.more && page.changes.is_empty() {
        return Err(ClientError::Protocol(
            "pull answered more: true with no changes".into(),
        ));
    }
    check_order(&page.changes, since, page.seq)
}

/// Documents must come in strictly ascending `seq`, after `since`, none after `seq`.
fn check_order<'a>(
    docs: impl IntoIterator<Item = &'a Doc>,
    since: u64,
    seq: u64,
) -> Result<(), ClientError> {
    let mut last = since;
    for doc in docs {
        if doc.seq <= last || doc.seq > seq {
            return Err(ClientError::Protocol(format!(
                "change {:?} at seq {} is out of order (after {last}, cursor {seq})",
                doc.key, doc.seq
            )));
        }
        last = doc.seq;
    }
    Ok(())
}

/// The next batch of pending changes of a slot (empty when none).
pub(crate) async fn next_batch(slot: &Slot) -> Result<Vec<PendingChange>, ClientError> {
    let (shared, limit) = (slot.shared.clone(), slot.batch_limit);
    blocking(move || {
        shared
            .db
            .pending_batch(&shared.name, limit, MAX_BATCH_BYTES)
    })
    .await
}

/// The push request for a batch.
pub(crate) fn push_request(group: &str, batch: &[PendingChange]) -> PushRequest {
    let changes = batch
        .iter()
        .map(|change| Change {
            key: change.key.clone(),
            base: change.base,
            op: change.value.clone().map_or(Op::Delete, Op::Set),
        })
        .collect();
    PushRequest {
        group: group.to_owned(),
        changes,
    }
}

/// What settling a push found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Done; more may be pending.
    Done,
    /// The answer came from another database: the group was reset and must catch up again
    /// (only the accepted changes were recorded; conflicts wait for the rebase).
    EpochChanged,
}

/// Records a push's answer: versions of accepted changes, conflicts through the resolver.
pub(crate) async fn settle(
    slot: &mut Slot,
    sent: Vec<PendingChange>,
    response: PushResponse,
) -> Result<Settled, ClientError> {
    check_results(slot.name(), &sent, &response)?;
    let epoch_changed = check_epoch(&slot.shared, &response.epoch).await? == EpochCheck::Changed;
    let shared = slot.shared.clone();
    let applied: Applied = blocking(move || {
        let resolver = shared.options().resolver;
        let mut settlements = Vec::with_capacity(sent.len());
        for (sent, result) in sent.into_iter().zip(response.results) {
            match result {
                PushResult::Accepted { version, .. } => {
                    settlements.push(Settlement::Accepted { sent, version })
                }
                // Bases of the old database mean nothing to the new one: the change stays
                // pending and is rebased after the catch-up.
                PushResult::Conflict { .. } if epoch_changed => {}
                PushResult::Conflict { current, .. } => {
                    let resolution = resolve(resolver.as_ref(), &sent, current.as_ref());
                    settlements.push(Settlement::Conflict {
                        sent,
                        current,
                        resolution,
                    });
                }
            }
        }
        shared.apply(|db| db.settle(&shared.name, &settlements))
    })
    .await?;
    if applied.pending == 0 {
        slot.batch_limit = MAX_BATCH;
    }
    slot.status(|status| status.rounds += 1);
    Ok(if epoch_changed {
        Settled::EpochChanged
    } else {
        Settled::Done
    })
}

/// One result per change sent, for the same keys in the same order.
fn check_results(
    group: &str,
    sent: &[PendingChange],
    response: &PushResponse,
) -> Result<(), ClientError> {
    if response.group != group {
        return Err(ClientError::Protocol(format!(
            "push to {group:?} answered for {:?}",
            response.group
        )));
    }
    if response.results.len() != sent.len() {
        return Err(ClientError::Protocol(format!(
            "push of {} changes answered with {} results",
            sent.len(),
            response.results.len()
        )));
    }
    for (index, (change, result)) in sent.iter().zip(&response.results).enumerate() {
        let (key, current) = match result {
            PushResult::Accepted { key, .. } => (key, None),
            PushResult::Conflict { key, current } => (key, current.as_ref()),
        };
        if *key != change.key || current.is_some_and(|doc| doc.key != change.key) {
            return Err(ClientError::Protocol(format!(
                "results[{index}] is for {key:?}, not {:?}",
                change.key
            )));
        }
    }
    Ok(())
}

/// The resolver's answer to a conflict, encoded; `None` lets the server win. Not asked
/// when both sides hold the same value (a retried push meeting its own first attempt).
/// A resolver that panics or answers a value the server would refuse counts as `None`.
fn resolve(
    resolver: Option<&Resolver>,
    sent: &PendingChange,
    current: Option<&Doc>,
) -> Option<Packed> {
    let resolver = resolver?;
    let local = sent.value.as_ref().map(Packed::to_value);
    let server = current
        .and_then(|doc| doc.value.as_ref())
        .map(Packed::to_value);
    if local == server {
        return None;
    }
    let answer = catch_unwind(AssertUnwindSafe(|| {
        resolver(&sent.key, local.as_ref(), server.as_ref())
    }));
    match answer {
        Ok(Some(value)) => match checked(&sent.key, &value) {
            Ok(packed) => Some(packed),
            Err(error) => {
                tracing::error!(key = %sent.key, %error, "the resolver's value is refused; the server wins");
                None
            }
        },
        Ok(None) => None,
        Err(_) => {
            tracing::error!(key = %sent.key, "the resolver panicked; the server wins");
            None
        }
    }
}

/// The server refused a push. Splits a batch to find the change it refuses; drops a lone
/// refused change (the key goes back to the server's value). Returns the error to report
/// when the push is to be retried later rather than at once.
pub(crate) async fn refused(
    slot: &mut Slot,
    sent: Vec<PendingChange>,
    error: ClientError,
) -> Result<(), ClientError> {
    let over_limit = matches!(
        &error,
        ClientError::Server {
            status: 400 | 413,
            ..
        }
    );
    match error {
        ClientError::Forbidden(_) => {
            slot.forbidden = true;
            let error = Arc::new(error);
            slot.status(|status| status.fail(error));
            Ok(())
        }
        ClientError::Server { message, .. } if over_limit && sent.len() > 1 => {
            tracing::warn!(group = %slot.name(), %message, "the server refused a batch: pushing one change at a time");
            slot.batch_limit = 1;
            Ok(())
        }
        ClientError::Server { message, .. } if over_limit => {
            let key = sent
                .first()
                .map(|change| change.key.clone())
                .unwrap_or_default();
            tracing::error!(group = %slot.name(), %key, %message, "the server refused a change: dropped");
            let settlements: Vec<Settlement> = sent
                .into_iter()
                .map(|sent| Settlement::Rejected { sent })
                .collect();
            let shared = slot.shared.clone();
            blocking(move || shared.apply(|db| db.settle(&shared.name, &settlements))).await?;
            let error = Arc::new(ClientError::Rejected { key, message });
            slot.status(|status| note(status, error));
            Ok(())
        }
        other => Err(other),
    }
}

/// Records an error that does not take the group offline (a refused change, a 503 on a
/// push), so that `sync_now` still sees the attempt fail.
pub(crate) fn note(status: &mut Status, error: Arc<ClientError>) {
    status.last_error = Some(error);
    status.failures += 1;
}
