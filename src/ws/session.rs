//! One connection's task: reads client frames, answers them, and forwards the live frames
//! of its subscriptions, until the client leaves, lags, falls silent or the server stops.
//!
//! The task waits on seven things at once (see [`run`]): the overflow signal, shutdown, the
//! heartbeat, the oldest push's answer, catch-up pages, live frames and the next
//! client frame. It handles one at a time, so a subscription's state needs no lock.
//! Pushes are pipelined: up to [`PUSHES_IN_FLIGHT`] go to storage as they are read and
//! are answered in the order they came. Any other frame read behind them waits until they
//! are answered, so every answer still leaves in the order of the frames, while live
//! frames keep flowing.

mod subscribing;

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use actix_http::ws::CloseCode;
use actix_web::web::Data;
use atomsync_proto::wire::{ClientFrame, FrameError, ServerFrame, UncheckedPush};
use atomsync_proto::{Encoding, ErrorCode, Value, WireError};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};

use super::catch_up::CatchUpEvent;
use super::incoming::{Incoming, Message, ReadError};
use super::outbox::{End, Outbox};
use super::socket::{Chunks, SharedIo, Writer};
use super::stats::SessionStats;
use super::subscription::Subscription;
use crate::actors::LiveFrame;
use crate::auth::{Access, Auth, Identity};
use crate::conn::Conn;
use crate::http::AppState;

/// How often the server pings (PROTOCOL.md section 6; `[server] ping_interval`).
pub(crate) const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// A connection that sent nothing (not even a pong) for this long is closed
/// (`[server] idle_timeout`).
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);
/// Live frames queued for one connection, all its groups together, before it counts as too
/// slow (1013). Frames are shared `Bytes`, so this bounds pointers, not copies.
pub(super) const QUEUE_CAPACITY: usize = 256;
/// The most live frames a session writes per wake-up: they leave in one write, and client
/// frames still get their turn.
pub(super) const LIVE_BATCH: usize = 32;
/// Pushes of one connection sent to storage and not yet answered: they are committed
/// together (group commit) and their frames fan out together, where one push at a time
/// made one commit, and one flush per subscriber, per push.
pub(super) const PUSHES_IN_FLIGHT: usize = 64;
/// Catch-up frames read ahead of the socket, all groups of the connection together.
pub(super) const CATCH_UP_AHEAD: usize = 4;
/// How long a connection the server closes may take to go: the close frame waits this
/// long for room, and the socket is aborted this long after the decision whatever the
/// peer does (`[server] close_timeout`).
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection ids: how a group actor tells its subscribers apart. Unique for the life of
/// the process, so a late message about a closed connection can never hit a new one.
static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// The answer to a push, once storage has committed it (or why it did not).
type PendingPush = Pin<Box<dyn Future<Output = (Encoding, ServerFrame)>>>;

/// What a client frame leaves the session waiting for.
enum Next {
    /// Nothing: the frame was handled.
    Idle,
    /// The answer to a push.
    Push(PendingPush),
    /// Pushes are in flight: the frame waits for their answers.
    Hold(Box<Held>),
}

/// A decoded client frame held until the pushes before it are answered.
struct Held {
    frame: Result<ClientFrame, FrameError>,
    encoding: Encoding,
}

/// What a new session starts from.
pub(super) struct Start {
    /// The connection, its HTTP exchange done.
    pub(super) io: SharedIo,
    /// What the client sent after its upgrade request, read with it.
    pub(super) leftover: Bytes,
    /// The server.
    pub(super) state: Data<AppState>,
    /// Who authenticated at the upgrade.
    pub(super) identity: Identity,
    /// The rules, watched since before `identity` was checked.
    pub(super) rules: watch::Receiver<Arc<Auth>>,
    /// The admin token's session: it may subscribe to any group, never push.
    pub(super) read_only: bool,
    /// The connection's registration, to abort its socket once the session has ended
    /// (absent in tests without a real connection).
    pub(super) conn: Option<Arc<Conn>>,
}

struct Session {
    conn_id: u64,
    identity: Identity,
    state: Data<AppState>,
    out: Outbox,
    /// The bounded queue every group actor streams this connection's live frames into.
    live_tx: mpsc::Sender<Arc<LiveFrame>>,
    /// Notified by a group actor that found `live_tx` full.
    overflow: Arc<Notify>,
    /// Catch-up rounds hand their frames back here. Created when a round starts and dropped
    /// once no subscription is catching up: tokio allocates a channel's first block of
    /// slots up front, and an idle connection should not carry it.
    catch_up: Option<(mpsc::Sender<CatchUpEvent>, mpsc::Receiver<CatchUpEvent>)>,
    /// Boxed: most connections hold one or two, and a map's smallest table has room for
    /// four entries; boxed, the empty ones cost a pointer each, not a whole subscription.
    subscriptions: HashMap<Arc<str>, Box<Subscription>>,
    generations: u64,
    last_heard: Instant,
    conn: Option<Arc<Conn>>,
    /// Pushes are refused (403): the admin token reads only.
    read_only: bool,
    /// For the session's access-log line and the metrics.
    stats: SessionStats,
}

/// Runs a session to its end, then unregisters it from every group.
///
/// Everything is built before the task's future, which then holds each piece once: an
/// `async fn` would keep `start` in its state beside the session built from it, a few
/// hundred bytes more for every connection.
pub(super) fn run(start: Start) -> impl Future<Output = ()> {
    let conn_id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
    let (live_tx, live_rx) = mpsc::channel(QUEUE_CAPACITY);
    let overflow = Arc::new(Notify::new());
    let shutdown = start.state.shutdown.clone();
    let rules = start.rules;
    let liveness = start.state.liveness;
    let last_heard = Instant::now();
    let mut heartbeat = interval_at(last_heard + liveness.ping_interval, liveness.ping_interval);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let messages = Incoming::new(
        Chunks::new(start.io.clone(), start.leftover),
        start.state.max_body_bytes,
    );
    let session = Session {
        conn_id,
        identity: start.identity,
        state: start.state,
        // A write that waits as long as the silence limit for a client that reads
        // nothing ends the session (1013).
        out: Outbox::new(
            Writer::new(start.io),
            overflow.clone(),
            liveness.idle_timeout,
        ),
        live_tx,
        overflow: overflow.clone(),
        catch_up: None,
        subscriptions: HashMap::new(),
        generations: 0,
        last_heard,
        conn: start.conn,
        read_only: start.read_only,
        stats: SessionStats::open(),
    };
    tracing::debug!(conn_id, "websocket open");
    serve(
        session, messages, live_rx, overflow, shutdown, heartbeat, rules,
    )
}

/// The session's loop, then its end.
async fn serve(
    mut session: Session,
    mut messages: Incoming<Chunks>,
    mut live_rx: mpsc::Receiver<Arc<LiveFrame>>,
    overflow: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
    mut heartbeat: Interval,
    mut rules: watch::Receiver<Arc<Auth>>,
) {
    // Pushes sent to storage and not yet answered, oldest first: answered in order.
    let mut pending: VecDeque<PendingPush> = VecDeque::new();
    // A frame read behind pushes in flight that is not itself a push waits for them.
    // Boxed: it is rare, and inline it would take its room in every idle connection.
    let mut held: Option<Box<Held>> = None;
    let end = loop {
        if *shutdown.borrow_and_update() {
            break End::going_away();
        }
        if pending.is_empty()
            && let Some(next) = held.take()
        {
            let Held { frame, encoding } = *next;
            match Box::pin(session.on_decoded(frame, encoding)).await {
                Ok(push) => pending.extend(push),
                Err(end) => break end,
            }
        }
        // Not `biased`: a group that streams without pause must not starve the client's
        // own frames; each branch gets its turn. Handlers are boxed: their futures are
        // large, and inline they would make every idle connection's task as large as the
        // largest of them (~2.6 KiB, 1.4 KiB boxed); one allocation per wake-up is cheap
        // beside the write it makes.
        let step = tokio::select! {
            () = overflow.notified() => Err(End::too_slow()),
            changed = shutdown.changed() => changed.map_err(|_| End::going_away()),
            _ = heartbeat.tick() => Box::pin(session.heartbeat(&mut heartbeat)).await,
            Ok(()) = rules.changed() => {
                let rules = rules.borrow_and_update().clone();
                Box::pin(session.on_new_rules(&rules)).await
            }
            (encoding, answer) = oldest(&mut pending), if !pending.is_empty() => {
                pending.pop_front();
                Box::pin(session.out.frame(encoding, &answer)).await
            }
            Some(event) = catch_up_event(&mut session.catch_up) => {
                let step = Box::pin(session.on_catch_up(event)).await;
                session.release_catch_up();
                step
            }
            Some(frame) = live_rx.recv() => Box::pin(session.on_live_batch(frame, &mut live_rx)).await,
            // What the handlers wrote leaves as soon as the socket takes it, in one write
            // for all the frames of a wake-up.
            flushed = session.out.flush(), if session.out.pending() => flushed,
            message = messages.recv(), if pending.len() < PUSHES_IN_FLIGHT && held.is_none() => {
                let busy = !pending.is_empty();
                Box::pin(session.on_message(message, busy)).await.map(|next| match next {
                    Next::Idle => {}
                    Next::Push(push) => pending.push_back(push),
                    Next::Hold(frame) => held = Some(frame),
                })
            }
        };
        if let Err(end) = step {
            break end;
        }
    };
    Box::pin(session.finish(end)).await;
}

/// The answer to the oldest push in flight; only the oldest is awaited, so answers leave
/// in the order the pushes came (storage got them in that order when they were read).
async fn oldest(pending: &mut VecDeque<PendingPush>) -> (Encoding, ServerFrame) {
    poll_fn(|cx| match pending.front_mut() {
        Some(push) => push.as_mut().poll(cx),
        None => Poll::Pending,
    })
    .await
}

/// The next catch-up event; never resolves while no round runs.
async fn catch_up_event(
    catch_up: &mut Option<(mpsc::Sender<CatchUpEvent>, mpsc::Receiver<CatchUpEvent>)>,
) -> Option<CatchUpEvent> {
    match catch_up {
        Some((_, events)) => events.recv().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// A heartbeat tick: closes a connection silent for the idle timeout, else pings. When
    /// the silence limit falls before the next tick, the next tick is moved to it, so a
    /// silent connection is closed at the limit, not up to a ping interval later.
    async fn heartbeat(&mut self, heartbeat: &mut Interval) -> Result<(), End> {
        self.stats.flush(self.out.sent);
        let liveness = self.state.liveness;
        let silent_until = self.last_heard + liveness.idle_timeout;
        if Instant::now() >= silent_until {
            let reason = format!("no message for {:?}", liveness.idle_timeout);
            return Err(End::Close(CloseCode::Policy, reason));
        }
        if silent_until < Instant::now() + liveness.ping_interval {
            heartbeat.reset_at(silent_until);
        }
        self.out.ping().await
    }

    /// The rules were replaced (a config reload): a connection whose token is gone is
    /// closed; a subscription to a group the user may no longer read gets `forbidden`.
    async fn on_new_rules(&mut self, rules: &Auth) -> Result<(), End> {
        let Some(digest) = self.identity.token_digest().copied() else {
            // Auth was off when this connection came: it had no token to check again.
            if rules.is_on() {
                return Err(End::Close(
                    CloseCode::Policy,
                    "auth is now on: reconnect with a token".into(),
                ));
            }
            return Ok(());
        };
        let Some(identity) = rules.recognize(&digest) else {
            tracing::info!(
                conn_id = self.conn_id,
                "token revoked: closing its websocket"
            );
            return Err(End::Close(CloseCode::Policy, "token revoked".into()));
        };
        self.identity = identity;
        let mut revoked: Vec<(Arc<str>, WireError)> = Vec::new();
        for group in self.subscriptions.keys() {
            if let Err(error) = Auth::authorize(&self.identity, group, Access::Read) {
                revoked.push((group.clone(), error));
            }
        }
        for (group, error) in revoked {
            let encoding = self
                .subscriptions
                .get(&group)
                .map_or(Encoding::Json, |s| s.encoding);
            self.drop_subscription(&group);
            self.release_catch_up();
            self.error(encoding, None, Some(group.to_string()), error)
                .await?;
        }
        Ok(())
    }

    /// A client frame; `busy`: pushes are in flight, so only another push may go ahead.
    async fn on_message(
        &mut self,
        message: Option<Result<Message, ReadError>>,
        busy: bool,
    ) -> Result<Next, End> {
        let Some(message) = message else {
            return Err(End::Gone);
        };
        self.last_heard = Instant::now();
        match message {
            Ok(Message::Text(text)) => {
                self.stats.received.add(text.len());
                self.on_frame(text, Encoding::Json, busy).await
            }
            Ok(Message::Binary(bytes)) => {
                self.stats.received.add(bytes.len());
                self.on_frame(bytes, Encoding::MsgPack, busy).await
            }
            Ok(Message::Ping(payload)) => self.out.pong(&payload).await.map(|()| Next::Idle),
            Ok(Message::Pong) => Ok(Next::Idle),
            Ok(Message::Close(reason)) => Err(End::ClientClosed(reason)),
            // Any error frame it sends is not a push's answer; it may go ahead of them.
            Err(error) => self.on_protocol_error(error).await.map(|()| Next::Idle),
        }
    }

    async fn on_protocol_error(&mut self, error: ReadError) -> Result<(), End> {
        match error {
            ReadError::TooLarge => {
                let limit = self.state.max_body_bytes;
                Err(End::Close(
                    CloseCode::Size,
                    format!("frame over the limit of {limit} bytes"),
                ))
            }
            ReadError::NotUtf8(e) => {
                // A text frame that is not UTF-8 is a bad frame like any other.
                let error = WireError::bad_request(format!("frame: text is not UTF-8: {e}"));
                self.error(Encoding::Json, None, None, error).await
            }
            ReadError::Io(e) => {
                tracing::debug!(conn_id = self.conn_id, error = %e, "websocket read failed");
                Err(End::Gone)
            }
            ReadError::Protocol(other) => Err(End::Close(CloseCode::Protocol, other.to_string())),
        }
    }

    async fn on_frame(
        &mut self,
        bytes: Bytes,
        encoding: Encoding,
        busy: bool,
    ) -> Result<Next, End> {
        let frame = ClientFrame::decode(&bytes, encoding, &self.state.limits);
        drop(bytes);
        if busy && !matches!(frame, Ok(ClientFrame::Push { .. })) {
            return Ok(Next::Hold(Box::new(Held { frame, encoding })));
        }
        Ok(match self.on_decoded(frame, encoding).await? {
            Some(push) => Next::Push(push),
            None => Next::Idle,
        })
    }

    async fn on_decoded(
        &mut self,
        frame: Result<ClientFrame, FrameError>,
        encoding: Encoding,
    ) -> Result<Option<PendingPush>, End> {
        match frame {
            Err(FrameError { id, group, error }) => {
                self.error(encoding, id, group, error).await.map(|()| None)
            }
            Ok(ClientFrame::Subscribe { group, since }) => {
                self.subscribe(group, since, encoding).await.map(|()| None)
            }
            Ok(ClientFrame::Unsubscribe { group }) => {
                self.unsubscribe(group, encoding).await.map(|()| None)
            }
            Ok(ClientFrame::Push { id, push }) => Ok(Some(self.push(id, push, encoding))),
        }
    }

    async fn error(
        &mut self,
        encoding: Encoding,
        id: Option<Value>,
        group: Option<String>,
        error: WireError,
    ) -> Result<(), End> {
        self.out
            .frame(encoding, &ServerFrame::Error { id, group, error })
            .await
    }

    /// `push`: handed to the shared push path ([`crate::push`]) at once, which checks it
    /// and passes it on before returning, so pushes are applied in the order they came; the
    /// answer (an error too) is sent when it resolves and every earlier push was answered
    /// (see [`run`]).
    fn push(&mut self, id: Value, push: UncheckedPush, encoding: Encoding) -> PendingPush {
        let group = push.group.clone();
        self.stats.push(push.changes.len());
        if self.read_only {
            let error = WireError::new(ErrorCode::Forbidden, crate::http::admin::ADMIN_READS_ONLY);
            let frame = ServerFrame::Error {
                id: Some(id),
                group: Some(group),
                error,
            };
            return Box::pin(std::future::ready((encoding, frame)));
        }
        let answer = crate::push::push(&self.state, &self.identity, push);
        Box::pin(async move {
            let frame = match answer.await {
                Ok(response) => ServerFrame::Pushed { id, response },
                Err(error) => ServerFrame::Error {
                    id: Some(id),
                    group: Some(group),
                    error: error.to_wire(),
                },
            };
            (encoding, frame)
        })
    }

    /// Unregisters from every group (no actor keeps a closed connection's queue), then
    /// closes the socket as `end` says.
    async fn finish(mut self, end: End) {
        let groups: Vec<Arc<str>> = self.subscriptions.keys().cloned().collect();
        for group in groups {
            self.drop_subscription(&group);
        }
        match &end {
            // Worth an operator's eye: a client (or its network) that cannot keep up.
            End::Close(CloseCode::Again, reason) => tracing::warn!(
                conn_id = self.conn_id,
                reason,
                "websocket too slow: closing with 1013"
            ),
            End::Close(code, reason) => tracing::debug!(
                conn_id = self.conn_id,
                code = u16::from(*code),
                reason,
                "websocket closing"
            ),
            _ => {}
        }
        let grace = self.state.liveness.close_timeout;
        if let Some(conn) = &self.conn {
            // Whatever the peer does, the socket goes within the grace (PROTOCOL.md
            // section 4): a peer that reads nothing cannot hold it open.
            conn.close_within(grace);
        }
        let Session {
            conn_id,
            out,
            stats,
            conn,
            ..
        } = self;
        stats.close(conn_id, out.sent, &end);
        if !out.close(end, grace).await
            && let Some(conn) = conn
        {
            // Reset, not closed: the kernel would go on offering the unread bytes to a
            // peer that takes none, holding the socket for minutes.
            conn.abort(crate::conn::Abort::Reset);
        }
    }
}
