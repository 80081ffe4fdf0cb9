//! Open connections (PROTOCOL.md section 4, "Slow and idle connections"): how many may be
//! open, how long a request may take to arrive, and the power to free a socket whatever
//! its peer does.
//!
//! actix-web answers a first request's stalled head with 408, but nothing bounds a body
//! that stalls, a chunked body it drains after the answer, the head of a later request on
//! a kept-alive connection, or the write of a close frame to a peer that reads nothing:
//! its dispatcher waits on the peer forever and holds the socket, its kernel buffers and
//! a file descriptor. So every accepted socket is wrapped in a [`Guarded`] stream
//! ([`Connections::accept`]) and registered here, with a [`Phase`] and a deadline that the
//! request middleware ([`deadline`]) and the WebSocket sessions move along. A sweeper
//! ([`Connections::sweep`]) aborts every connection past its deadline: its stream wakes
//! actix's dispatcher with an error, the dispatcher drops the connection, and with
//! `SO_LINGER` 0 the kernel frees what was queued for the peer at once instead of
//! retrying for minutes.
//!
//! Past [`Connections::limit`] a new connection is answered 503 and closed at once, so
//! that the connections already open keep working.

pub mod deadline;
mod phase;
mod stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::rt::net::TcpStream;
use futures_util::task::AtomicWaker;

pub use phase::Phase;
use phase::PhaseCell;
pub use stream::Guarded;

/// How often the sweeper looks for connections past their deadline: the slack added to
/// every deadline it enforces.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// Descriptors kept for the server's own use (database, log, pool, listener) when the
/// connection limit is derived from the open-file limit.
const RESERVED_FDS: u64 = 64;

/// How often a flood of refused connections is logged at most.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The timings the deadlines are made of.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// A request's head and body must arrive within this.
    pub request_timeout: Duration,
    /// How long actix keeps an idle connection open for a next request.
    pub keep_alive: Duration,
    /// How long a connection the server closes may take to go before it is aborted.
    pub close_timeout: Duration,
}

/// Every open connection of the server. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    timings: Timings,
    /// Connections open now: accepted and not yet dropped by actix.
    open: AtomicUsize,
    next_id: AtomicU64,
    /// Open connections by id. A std `Mutex`: it is held for an insert, a removal or one
    /// pass of the sweeper, never across an await.
    table: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Milliseconds since `start` when a refusal was last logged.
    last_refusal_log: AtomicU64,
    start: Instant,
}

/// How an aborted connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Abort {
    /// Reset: `SO_LINGER` 0, whatever is queued for the peer is dropped.
    Reset,
    /// A head that did not arrive: a 408, then an orderly close.
    HeadTimeout,
    /// An orderly close, nothing said: an idle connection at shutdown.
    Close,
}

/// One open connection, shared by its [`Guarded`] stream, the request middleware, its
/// WebSocket session if any, and the sweeper.
pub struct Conn {
    id: u64,
    phase: PhaseCell,
    /// Milliseconds on `clock` when the connection was last ready for a request: accepted,
    /// or its previous answer handed to actix.
    ready_ms: AtomicU64,
    timings: Timings,
    /// The clock deadlines are kept on: the start of the [`Connections`].
    clock: Instant,
    /// 0, or the [`Abort`] the sweeper decided on (see [`Conn::abort_code`]).
    abort: AtomicU8,
    /// The tasks waiting to read and to write the socket, woken by an abort.
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("id", &self.id)
            .field("phase", &self.phase.get().0)
            .finish()
    }
}

/// What the request middleware and the WebSocket upgrade find in actix's per-connection
/// data: the connection, to move it along its phases.
#[derive(Debug, Clone)]
pub struct ConnHandle(pub Arc<Conn>);

impl Conn {
    /// Moves the connection to `phase`, its deadline `after` from now (`None`: none).
    pub fn enter(&self, phase: Phase, after: Option<Duration>) {
        let deadline = after.map(|after| self.clock.elapsed().saturating_add(after));
        self.phase.set(phase, deadline);
    }

    /// Its answer is handed to actix: idle until the next head, which must arrive (after
    /// at most the keep-alive wait) within the request timeout.
    pub(crate) fn ready_for_next(&self) {
        let now = u64::try_from(self.clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.ready_ms.store(now, Ordering::Release);
        self.enter(Phase::Idle, Some(idle_deadline(&self.timings)));
    }

    /// What is left of the request timeout for the request now arriving, counted from
    /// when the connection was ready for it.
    pub(crate) fn request_time_left(&self) -> Duration {
        let ready = Duration::from_millis(self.ready_ms.load(Ordering::Acquire));
        ready
            .saturating_add(self.timings.request_timeout)
            .saturating_sub(self.clock.elapsed())
    }

    /// The timings its deadlines are made of.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// The phase it is in.
    pub fn phase(&self) -> Phase {
        self.phase.get().0
    }

    /// The server has decided to close this connection: it is aborted `grace` from now
    /// unless it is gone by then. Never extends an earlier deadline of the same kind.
    pub fn close_within(&self, grace: Duration) {
        let deadline = self.clock.elapsed().saturating_add(grace);
        self.phase.close_by(deadline);
    }

    /// Ends the connection as `how` says: its stream fails its next read and write, and
    /// the tasks waiting on it are woken to find out.
    pub(crate) fn abort(&self, how: Abort) {
        let code = match how {
            Abort::Reset => 1,
            Abort::HeadTimeout => 2,
            Abort::Close => 3,
        };
        let _ = self
            .abort
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire);
        self.read_waker.wake();
        self.write_waker.wake();
    }

    /// The abort decided on, if any.
    pub(crate) fn aborted(&self) -> Option<Abort> {
        match self.abort.load(Ordering::Acquire) {
            0 => None,
            2 => Some(Abort::HeadTimeout),
            3 => Some(Abort::Close),
            _ => Some(Abort::Reset),
        }
    }
}

/// Unregisters a connection when its stream is dropped, which is when it is gone.
struct Registration {
    conn: Arc<Conn>,
    inner: Arc<Inner>,
}

impl Inner {
    /// The table of open connections. A panic while it was held leaves it consistent
    /// (each use is one insert, remove or scan), so a poisoned lock is used as it is.
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.inner.table().remove(&self.conn.id);
        self.inner.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    /// Allows `limit` open connections; `timings` make the deadlines.
    pub fn new(limit: usize, timings: Timings) -> Connections {
        Connections {
            inner: Arc::new(Inner {
                limit,
                timings,
                open: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                table: Mutex::new(HashMap::new()),
                last_refusal_log: AtomicU64::new(0),
                start: Instant::now(),
            }),
        }
    }

    /// The most connections open at once.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Connections open now.
    pub fn open_count(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// A new connection: registered and wrapped; or, past the limit, answered 503 and
    /// shut down at once (`None`).
    pub fn accept(&self, io: TcpStream) -> Option<Guarded> {
        let inner = &self.inner;
        let open = inner.open.fetch_add(1, Ordering::AcqRel) + 1;
        if open > inner.limit {
            inner.open.fetch_sub(1, Ordering::AcqRel);
            self.refuse(&io);
            return None;
        }
        let conn = Arc::new(Conn {
            id: inner.next_id.fetch_add(1, Ordering::Relaxed),
            phase: PhaseCell::default(),
            ready_ms: AtomicU64::new(0),
            timings: inner.timings,
            clock: inner.start,
            abort: AtomicU8::new(0),
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
        });
        // Between requests until the first head arrives: actix answers a head that is
        // late 408 itself; this deadline is the backstop.
        conn.ready_for_next();
        inner.table().insert(conn.id, conn.clone());
        let registration = Registration {
            conn: conn.clone(),
            inner: inner.clone(),
        };
        Some(Guarded::new(io, conn, registration))
    }

    fn refuse(&self, io: &TcpStream) {
        let now = u64::try_from(self.inner.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.inner.last_refusal_log.load(Ordering::Relaxed);
        let interval = u64::try_from(REFUSAL_LOG_INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if (last == 0 || now.saturating_sub(last) >= interval)
            && self
                .inner
                .last_refusal_log
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                limit = self.inner.limit,
                "refusing new connections: the limit of open connections is reached (logged once per 10 s)"
            );
        }
        // A fresh socket has room for a few hundred bytes: the write does not block. It is
        // made on the socket itself: tokio's `try_write` knows no readiness for a socket
        // the reactor has not reported on yet.
        let socket = socket2::SockRef::from(io);
        let _ = socket.send(
            http_error(
                "503 Service Unavailable",
                "unavailable",
                "server: too many open connections; try again later",
            )
            .as_bytes(),
        );
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }

    /// Aborts every connection past its deadline. Runs every [`SWEEP_INTERVAL`].
    pub fn sweep(&self) {
        let now = self.inner.start.elapsed();
        let expired: Vec<(Arc<Conn>, Phase)> = {
            let table = self.inner.table();
            table
                .values()
                .filter_map(|conn| conn.phase.expired(now).map(|phase| (conn.clone(), phase)))
                .collect()
        };
        for (conn, phase) in expired {
            tracing::debug!(
                conn = conn.id,
                ?phase,
                "connection past its deadline: aborting"
            );
            conn.abort(match phase {
                Phase::Idle => Abort::HeadTimeout,
                _ => Abort::Reset,
            });
        }
    }

    /// Closes every connection waiting between requests: at shutdown, a kept-alive
    /// connection has nothing in flight to finish.
    pub fn close_idle(&self) {
        let table = self.inner.table();
        for conn in table.values().filter(|conn| conn.phase() == Phase::Idle) {
            conn.abort(Abort::Close);
        }
    }

    /// Waits until no WebSocket connection is open (none [`Phase::Upgraded`] or
    /// [`Phase::Closing`]), for at most `within`: at shutdown, each session sends its close
    /// frame and goes within the close timeout.
    pub async fn sessions_ended(&self, within: Duration) {
        let give_up = Instant::now() + within;
        while Instant::now() < give_up && self.any_session() {
            tokio::time::sleep(SWEEP_INTERVAL / 2).await;
        }
    }

    fn any_session(&self) -> bool {
        let table = self.inner.table();
        table
            .values()
            .any(|conn| matches!(conn.phase(), Phase::Upgraded | Phase::Closing))
    }

    /// Runs [`Connections::sweep`] every [`SWEEP_INTERVAL`] until the task is dropped.
    pub async fn run_sweeper(self) {
        let mut tick = tokio::time::interval(SWEEP_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.sweep();
        }
    }
}

/// A whole HTTP/1.1 error response that closes the connection, written straight to a
/// socket that actix is not writing to (refused, or between requests).
fn http_error(status: &str, code: &str, message: &str) -> String {
    let body = format!("{{\"error\":\"{code}\",\"message\":\"{message}\"}}");
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// How long a connection may sit between requests, head included, before it is closed:
/// actix closes a quiet one after `keep_alive`; one that started a head and stalled gets
/// the request timeout on top.
fn idle_deadline(timings: &Timings) -> Duration {
    timings.keep_alive.saturating_add(timings.request_timeout)
}

/// The connection limit when none is configured: what the open-file limit leaves after
/// the server's own descriptors.
pub fn default_limit() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(1 << 20);
    usize::try_from(soft.saturating_sub(RESERVED_FDS))
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests;
