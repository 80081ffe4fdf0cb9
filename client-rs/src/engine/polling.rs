//! Polling mode: when the server answers HTTP but not the WebSocket (an older server, a
//! proxy), every group is pulled (to the end) and pushed over HTTP once a second, and at
//! once after a local write. After a while the connection tries the WebSocket again.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::conn::{Conn, Effect, Outcome};
use super::live::PUSH_RETRY;
use super::round::{
    self, Settled, apply_changes, blocking, check_epoch, check_page, finish_catch_up, next_batch,
};
use crate::local::EpochCheck;
use crate::status::Connection;
use crate::{ClientError, Status};

/// How often groups are pulled.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long polling lasts before the WebSocket is tried again.
const WEBSOCKET_RETRY: Duration = Duration::from_secs(30);

/// Polls until the WebSocket is worth another try, the connection fails, or it ends.
pub(crate) async fn run(conn: &mut Conn) -> Outcome {
    let until = Instant::now() + WEBSOCKET_RETRY;
    loop {
        let names = conn.active_groups();
        for name in names {
            if let Err(error) = sync_group(conn, &name).await {
                return Outcome::Failed(error);
            }
        }
        conn.succeeded();
        if Instant::now() >= until {
            return Outcome::TryWebSocket;
        }
        let next_poll = Instant::now() + POLL_INTERVAL;
        loop {
            tokio::select! {
                () = sleep_until(next_poll) => break,
                command = conn.commands.recv() => match command {
                    None => return Outcome::Closed,
                    Some(command) => match conn.on_command(command) {
                        Effect::Removed(_) => {}
                        Effect::Added(_) | Effect::Wake | Effect::Kick(_) => break,
                    },
                },
            }
        }
    }
}

/// One round for one group: pull to the end, then push everything pending. A 403 stops
/// the group; any other failure is the connection's.
async fn sync_group(conn: &mut Conn, name: &str) -> Result<(), ClientError> {
    loop {
        match catch_up(conn, name).await {
            Err(ClientError::Forbidden(message)) => {
                return forbid(conn, name, ClientError::Forbidden(message));
            }
            other => other?,
        }
        match push_all(conn, name).await? {
            Settled::Done => break,
            // The database changed under the push: catch up from 0, rebase, push again.
            Settled::EpochChanged => {}
        }
    }
    if let Some(slot) = conn.slots.get(name).filter(|slot| !slot.forbidden) {
        slot.status(|status: &mut Status| status.succeed(Connection::Polling));
    }
    Ok(())
}

/// Pulls pages until the server has no more.
///
/// A pull from 0, or one the server answered with `reset` (our cursor was below the
/// group's compaction floor), is a full pull: its later pages are asked with `full=true`,
/// so the floor never sends it back to 0 (PROTOCOL.md section 8). If a later page carries
/// a higher floor than the first, a tombstone it has not seen may be gone: it starts again
/// from 0, every document stale until it comes back.
async fn catch_up(conn: &mut Conn, name: &str) -> Result<(), ClientError> {
    let mut full = false;
    let mut first_floor: Option<u64> = None;
    loop {
        let Some(slot) = conn.slots.get(name) else {
            return Ok(());
        };
        let shared = slot.shared.clone();
        let reader = shared.clone();
        let meta = blocking(move || reader.db.meta(&reader.name)).await?;
        let page = conn.http.pull(name, meta.cursor, full).await?;
        check_page(&page, name, meta.cursor)?;
        if check_epoch(&shared, &page.epoch).await? == EpochCheck::Changed {
            // The page answered a cursor of the old database: pull again from 0.
            (full, first_floor) = (false, None);
            continue;
        }
        if full && first_floor.is_some_and(|floor| page.floor > floor) {
            tracing::info!(group = %name, floor = page.floor, "the group was compacted during a full pull: starting it again");
            round::begin_compaction_reset(&shared).await?;
            (full, first_floor) = (false, None);
            continue;
        }
        if page.reset && meta.cursor > 0 {
            round::begin_compaction_reset(&shared).await?;
        }
        first_floor.get_or_insert(page.floor);
        full |= meta.cursor == 0 || page.reset;
        apply_changes(&shared, page.changes, page.seq).await?;
        if !page.more {
            return finish_catch_up(&shared).await;
        }
    }
}

/// Pushes pending changes batch by batch until none is left (or pushing must wait).
async fn push_all(conn: &mut Conn, name: &str) -> Result<Settled, ClientError> {
    loop {
        let Some(slot) = conn.slots.get_mut(name) else {
            return Ok(Settled::Done);
        };
        if !slot.may_push() {
            return Ok(Settled::Done);
        }
        let batch = next_batch(slot).await?;
        if batch.is_empty() {
            return Ok(Settled::Done);
        }
        let request = round::push_request(name, &batch);
        match conn.http.push(&request).await {
            Ok(response) => {
                let Some(slot) = conn.slots.get_mut(name) else {
                    return Ok(Settled::Done);
                };
                if round::settle(slot, batch, response).await? == Settled::EpochChanged {
                    return Ok(Settled::EpochChanged);
                }
            }
            Err(error) => {
                let Some(slot) = conn.slots.get_mut(name) else {
                    return Ok(Settled::Done);
                };
                match round::refused(slot, batch, error).await {
                    Ok(()) => {}
                    Err(error @ (ClientError::Server { .. } | ClientError::Protocol(_))) => {
                        tracing::warn!(group = %name, %error, "push failed; retrying shortly");
                        slot.retry_at = Some(std::time::Instant::now() + PUSH_RETRY);
                        let error = Arc::new(error);
                        slot.status(|status| round::note(status, error));
                        return Ok(Settled::Done);
                    }
                    Err(other) => return Err(other),
                }
            }
        }
    }
}

/// Stops a group the server refused (403); the others go on.
fn forbid(conn: &mut Conn, name: &str, error: ClientError) -> Result<(), ClientError> {
    if let Some(slot) = conn.slots.get_mut(name) {
        slot.forbidden = true;
        let error = Arc::new(error);
        slot.status(|status| status.fail(error));
    }
    Ok(())
}
