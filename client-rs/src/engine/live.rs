//! Live mode: the connection's groups subscribed on one WebSocket. Catch-up and live
//! changes arrive as `changes` frames, `subscribed` ends a group's catch-up (and carries
//! its epoch), and pending changes go out as `push` frames, one in flight per group.
//! `changes` frames are stored in the background ([`Applier`]) while the socket is read
//! on, those that arrive meanwhile together.

use std::time::Duration;

use atomsync_proto::Value;
use atomsync_proto::wire::{ClientFrame, ServerFrame};
use tokio::time::{Instant, sleep_until, timeout};

use super::applier::Applier;
use super::conn::{Conn, Effect, Outcome};
use super::round::{
    self, Settled, apply_changes, blocking, check_epoch, finish_catch_up, next_batch, push_request,
};
use super::ws::{Incoming, Socket};
use crate::local::{EpochCheck, PendingChange};
use crate::status::Connection;
use crate::{ClientError, Status};

/// The server pings every 15 s and drops a connection silent for 45 s; a client that
/// hears nothing for as long takes the connection for dead.
const SILENCE_LIMIT: Duration = Duration::from_secs(45);

/// How long a push waits after the server said it was unavailable.
pub(crate) const PUSH_RETRY: Duration = Duration::from_secs(2);

/// How long closing a socket may take before it is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs the WebSocket session until it ends, then leaves every group not live.
pub(crate) async fn run(conn: &mut Conn, mut socket: Socket) -> Outcome {
    let outcome = match session(conn, &mut socket).await {
        Ok(outcome) => outcome,
        Err(error) => Outcome::Failed(error),
    };
    let _ = timeout(CLOSE_TIMEOUT, socket.close()).await;
    for slot in conn.slots.values_mut() {
        slot.live = false;
        slot.in_flight = None;
    }
    outcome
}

async fn session(conn: &mut Conn, socket: &mut Socket) -> Result<Outcome, ClientError> {
    let names = conn.active_groups();
    for name in names {
        subscribe(conn, socket, &name).await?;
    }
    let mut applier = Applier::default();
    let mut last_heard = Instant::now();
    loop {
        start_pushes(conn, socket).await?;
        let retry_at = conn
            .slots
            .values()
            .filter_map(|slot| slot.retry_at)
            .min()
            .map(Instant::from_std);
        tokio::select! {
            incoming = socket.next(), if !applier.is_backlogged() => {
                last_heard = Instant::now();
                match incoming {
                    Incoming::Changes { group, changes, seq } => {
                        if catch_up_restarted(conn, &group, changes.iter().map(|received| &received.doc)) {
                            // Whatever came before is stored under the old cursor first.
                            applier.flush(&conn.slots).await?;
                            begin_reset(conn, &group).await?;
                        }
                        if let Err(error) = applier.add(&conn.slots, group, changes, seq) {
                            // What arrived before the bad frame is good: stored, then the
                            // session ends.
                            applier.flush(&conn.slots).await?;
                            return Err(error);
                        }
                        applier.start(&conn.slots);
                    }
                    Incoming::Frame(frame) => {
                        // Every other frame comes after the changes before it.
                        applier.flush(&conn.slots).await?;
                        if let Some(outcome) = on_frame(conn, socket, frame).await? {
                            return Ok(outcome);
                        }
                    }
                    Incoming::Bad(error) => tracing::warn!(server = ?conn.key, %error, "ignored a bad frame"),
                    Incoming::Alive => {}
                    Incoming::Closed(error) => {
                        applier.flush(&conn.slots).await?;
                        return Err(error);
                    }
                }
            }
            stored = applier.finished(), if applier.is_running() => {
                stored?;
                applier.start(&conn.slots);
            }
            command = conn.commands.recv() => match command {
                None => return Ok(Outcome::Closed),
                Some(command) => on_command(conn, socket, &mut applier, command).await?,
            },
            () = sleep_until(last_heard + SILENCE_LIMIT) => {
                return Err(ClientError::Network(format!("no word from the server for {} s", SILENCE_LIMIT.as_secs())));
            }
            () = sleep_until(retry_at.unwrap_or_else(Instant::now)), if retry_at.is_some() => {
                let now = std::time::Instant::now();
                let mut again = Vec::new();
                for (name, slot) in conn.slots.iter_mut() {
                    if slot.retry_at.is_some_and(|at| at <= now) {
                        slot.retry_at = None;
                        if std::mem::take(&mut slot.resubscribe) {
                            again.push(name.clone());
                        }
                    }
                }
                for name in again {
                    applier.flush(&conn.slots).await?;
                    subscribe(conn, socket, &name).await?;
                }
            }
        }
    }
}

/// Subscribes a group from its stored cursor.
async fn subscribe(conn: &mut Conn, socket: &mut Socket, name: &str) -> Result<(), ClientError> {
    let Some(slot) = conn.slots.get_mut(name) else {
        return Ok(());
    };
    slot.live = false;
    slot.reset_begun = false;
    slot.resubscribe = false;
    let shared = slot.shared.clone();
    let meta = blocking(move || shared.db.meta(&shared.name)).await?;
    if let Some(slot) = conn.slots.get_mut(name) {
        slot.subscribed_since = meta.cursor;
    }
    socket
        .send(&ClientFrame::Subscribe {
            group: name.to_owned(),
            since: meta.cursor,
        })
        .await
}

/// Starts a push for every live group that has pending changes and none in flight (the
/// status's pending count, kept by every write, spares a query per frame).
async fn start_pushes(conn: &mut Conn, socket: &mut Socket) -> Result<(), ClientError> {
    let ready: Vec<String> = conn
        .slots
        .iter()
        .filter(|(_, slot)| slot.live && slot.may_push() && slot.shared.status().pending > 0)
        .map(|(name, _)| name.clone())
        .collect();
    for name in ready {
        let id = conn.push_id();
        let Some(slot) = conn.slots.get_mut(&name) else {
            continue;
        };
        let batch = next_batch(slot).await?;
        if batch.is_empty() {
            continue;
        }
        let push = push_request(&name, &batch).to_unchecked();
        socket
            .send(&ClientFrame::Push {
                id: Value::from(id),
                push,
            })
            .await?;
        slot.in_flight = Some((id, batch));
    }
    Ok(())
}

/// True when a `changes` frame of `group`'s catch-up starts at or below the cursor it
/// subscribed from: the server compacted past that cursor and catches up from 0
/// (PROTOCOL.md section 8), so every document is stale until the catch-up returns it.
fn catch_up_restarted<'a>(
    conn: &Conn,
    group: &str,
    changes: impl IntoIterator<Item = &'a atomsync_proto::wire::Doc>,
) -> bool {
    conn.slots.get(group).is_some_and(|slot| {
        !slot.forbidden
            && !slot.live
            && !slot.reset_begun
            && slot.subscribed_since > 0
            && changes
                .into_iter()
                .next()
                .is_some_and(|doc| doc.seq <= slot.subscribed_since)
    })
}

/// Marks `group`'s catch-up as a reset, durably: `subscribed` then drops every key it did
/// not return (pending changes stay).
async fn begin_reset(conn: &mut Conn, group: &str) -> Result<(), ClientError> {
    if let Some(slot) = conn.slots.get_mut(group) {
        round::begin_compaction_reset(&slot.shared).await?;
        slot.reset_begun = true;
    }
    Ok(())
}

/// Handles a frame other than `changes` (those go to the [`Applier`]), once the changes
/// before it are stored.
async fn on_frame(
    conn: &mut Conn,
    socket: &mut Socket,
    frame: ServerFrame,
) -> Result<Option<Outcome>, ClientError> {
    match frame {
        ServerFrame::Changes {
            group,
            changes,
            seq,
        } => {
            // The session hands `changes` to the applier; one reaching here is stored as is.
            if catch_up_restarted(conn, &group, &changes) {
                begin_reset(conn, &group).await?;
            }
            if let Some(slot) = conn.slots.get(&group).filter(|slot| !slot.forbidden) {
                apply_changes(&slot.shared, changes, seq).await?;
            }
        }
        ServerFrame::Subscribed {
            group,
            epoch,
            seq,
            reset,
            floor: _,
        } => {
            let Some(slot) = conn.slots.get_mut(&group).filter(|slot| !slot.forbidden) else {
                return Ok(None);
            };
            if check_epoch(&slot.shared, &epoch).await? == EpochCheck::Changed {
                return Ok(Some(Outcome::Reconnect));
            }
            if reset && !slot.reset_begun {
                // Reset, but every document it sent came after our cursor: nothing tells
                // which of ours it did not return. Start the reset now and catch up again
                // from 0 (rare: the group's every document was written after our cursor).
                round::begin_compaction_reset(&slot.shared).await?;
                return subscribe(conn, socket, &group).await.map(|()| None);
            }
            apply_changes(&slot.shared, Vec::new(), seq).await?;
            finish_catch_up(&slot.shared).await?;
            slot.live = true;
            slot.status(|status: &mut Status| status.succeed(Connection::Live));
            conn.succeeded();
        }
        ServerFrame::Unsubscribed { .. } => {}
        ServerFrame::Pushed { id, response } => {
            let Some(slot) = conn.slots.get_mut(&response.group) else {
                return Ok(None);
            };
            let Some(sent) = take_in_flight(&mut slot.in_flight, &id) else {
                return Ok(None);
            };
            if round::settle(slot, sent, response).await? == Settled::EpochChanged {
                return Ok(Some(Outcome::Reconnect));
            }
        }
        ServerFrame::Error { id, group, error } => {
            let error = ClientError::from_wire(&error);
            let Some(slot) = group.as_ref().and_then(|group| conn.slots.get_mut(group)) else {
                tracing::warn!(server = ?conn.key, %error, "the server reported an error");
                return Ok(None);
            };
            let sent = id
                .as_ref()
                .and_then(|id| take_in_flight(&mut slot.in_flight, id));
            match sent {
                Some(sent) => {
                    if let Err(error) = round::refused(slot, sent, error).await {
                        tracing::warn!(group = %slot.name(), %error, "push failed; retrying shortly");
                        slot.retry_at = Some(std::time::Instant::now() + PUSH_RETRY);
                        let error = std::sync::Arc::new(error);
                        slot.status(|status| round::note(status, error));
                    }
                }
                None if matches!(error, ClientError::Forbidden(_)) => {
                    slot.forbidden = true;
                    slot.live = false;
                    let error = std::sync::Arc::new(error);
                    slot.status(|status| status.fail(error));
                }
                None => {
                    tracing::warn!(group = %slot.name(), %error, "the server reported an error");
                    if !slot.live {
                        // The subscription ended while catching up (the group was compacted
                        // meanwhile, or storage failed): subscribe again shortly.
                        slot.resubscribe = true;
                        slot.retry_at = Some(std::time::Instant::now() + PUSH_RETRY);
                    }
                    let error = std::sync::Arc::new(error);
                    slot.status(|status| round::note(status, error));
                }
            }
        }
    }
    Ok(None)
}

/// The changes of the in-flight push whose frame id is `id` (an answer to an older,
/// forgotten push matches nothing).
fn take_in_flight(
    in_flight: &mut Option<(u64, Vec<PendingChange>)>,
    id: &Value,
) -> Option<Vec<PendingChange>> {
    let expected = in_flight.as_ref().map(|(expected, _)| *expected)?;
    if id.as_u64() == Some(expected) {
        in_flight.take().map(|(_, sent)| sent)
    } else {
        None
    }
}

async fn on_command(
    conn: &mut Conn,
    socket: &mut Socket,
    applier: &mut Applier,
    command: super::ConnCommand,
) -> Result<(), ClientError> {
    match conn.on_command(command) {
        Effect::Added(name) => {
            // A subscription starts from the stored cursor: everything received first.
            applier.flush(&conn.slots).await?;
            subscribe(conn, socket, &name).await?;
        }
        Effect::Removed(name) => {
            socket
                .send(&ClientFrame::Unsubscribe { group: name })
                .await?
        }
        // `start_pushes` runs before the next wait.
        Effect::Wake => {}
        Effect::Kick(name) => {
            let Some(slot) = conn.slots.get(&name) else {
                return Ok(());
            };
            if !slot.live {
                applier.flush(&conn.slots).await?;
                subscribe(conn, socket, &name).await?;
            } else if slot.in_flight.is_none() && slot.shared.status().pending == 0 {
                // Live with nothing to push: in sync as of now.
                slot.status(|status| status.rounds += 1);
            }
        }
    }
    Ok(())
}
