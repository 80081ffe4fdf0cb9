//! WebSocket sessions (`GET /sync/ws`, PROTOCOL.md section 6): subscribe to groups, catch
//! up, stream every later commit, and push.
//!
//! ## How a session, its queue and the group actors fit together
//!
//! - [`upgrade`] checks the token (401 before any upgrade) and answers 101; the server
//!   takes the connection out of actix-http, writes the 101 and runs the session task on
//!   it ([`start`]; `crate::http::upgrade`). The session reads and writes the socket
//!   itself ([`socket`]), with no buffer kept while the connection idles; client frames
//!   pass a [`limit::FrameLimit`] (a frame declaring more than the body limit closes with
//!   1009 before it is read) and actix-http's frame codec ([`incoming`]).
//! - The session task ([`session`]) owns one bounded queue of
//!   [`LiveFrame`](crate::actors::LiveFrame)s for the whole connection, shared by all its
//!   subscriptions, and an overflow signal. `subscribe` sends the group actor a `Subscribe`
//!   carrying the queue's sender; the actor answers with its hand-over point (the seq of the
//!   last commit it streamed) and from then on puts every commit of the group in the queue,
//!   encoded once per encoding and shared as `Bytes` by every subscriber.
//! - Meanwhile a catch-up round ([`catch_up`]) reads what the client missed, from its
//!   `since` up to exactly the hand-over point, in pages on the blocking pool, and hands the
//!   frames back to the session. The session holds the group's live frames until the round
//!   ends, sends `subscribed`, then releases them ([`subscription`]). The actor orders
//!   commits and registrations in one mailbox, so the two halves meet without gap or
//!   duplicate, however many clients push meanwhile.
//! - The actor never waits for a session: it `try_send`s, and a full queue means the
//!   connection cannot keep up. The actor drops that registration and notifies the signal;
//!   the session closes with 1013 ([`outbox`]), and the client resumes from its cursor. The
//!   group and its other subscribers go on at full speed.
//! - `push` frames take the same path as `POST /sync` ([`crate::push`]), several in flight
//!   per connection (the writer commits them together, their frames fan out together),
//!   answered in the order they came; accepted changes reach every subscriber, the pusher
//!   too.
//! - The session pings every 15 s, closes a connection silent for 45 s, closes with 1001 at
//!   shutdown, and when it ends for any reason unregisters from every group actor.

mod catch_up;
mod incoming;
mod limit;
/// Not API: the frame scanner's fuzz property, for the fuzz build only (`fuzz/`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub use limit::fuzzing::frame_scanner;
mod outbox;
mod session;
#[cfg(test)]
mod session_tests;
mod socket;
mod stats;
mod subscription;

use std::time::Duration;

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse};
use atomsync_proto::ErrorCode;
use bytes::Bytes;

use crate::auth::Access;
use crate::http::request::response_encoding;
use crate::http::{ApiError, AppState};

/// How a session keeps a connection alive and how fast it lets one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// How often the server pings.
    pub ping_interval: Duration,
    /// A connection silent (not even a pong) this long is closed.
    pub idle_timeout: Duration,
    /// A connection the server closes is gone this long after the decision.
    pub close_timeout: Duration,
}

impl Default for Liveness {
    /// The protocol's: a ping every 15 s, closed after 45 s of silence, gone 2 s after.
    fn default() -> Liveness {
        Liveness {
            ping_interval: session::HEARTBEAT_INTERVAL,
            idle_timeout: session::CLIENT_TIMEOUT,
            close_timeout: session::CLOSE_TIMEOUT,
        }
    }
}

/// What the upgrade handler leaves in its 101 response: the session to run on the
/// connection once the server has sent the response ([`start`]).
pub struct Accepted {
    state: Data<AppState>,
    identity: crate::auth::Identity,
    rules: tokio::sync::watch::Receiver<std::sync::Arc<crate::auth::Auth>>,
    read_only: bool,
    conn: Option<std::sync::Arc<crate::conn::Conn>>,
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accepted")
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// Runs the session of an [`Accepted`] upgrade on `io`, the connection the 101 response was
/// written to; `leftover`: what the client sent after its request, already read. Returns
/// when the session has ended and the connection is closed.
pub fn start(
    io: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + 'static,
    leftover: Bytes,
    accepted: Accepted,
) -> impl std::future::Future<Output = ()> {
    session::run(session::Start {
        io: socket::shared(io),
        leftover,
        state: accepted.state,
        identity: accepted.identity,
        rules: accepted.rules,
        read_only: accepted.read_only,
        conn: accepted.conn,
    })
}

/// `GET /sync/ws`: authenticates, then answers 101 with the session to run (an
/// [`Accepted`] in the response's extensions), which the server starts on the connection
/// once the response is written (`crate::http::upgrade`).
pub async fn upgrade(req: HttpRequest, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let encoding = response_encoding(&req);
    crate::http::guard::check_upgrade_origin(&req, &state.auth.current())?;
    // Watched from before the token is checked: rules replaced after this point reach the
    // session, which checks its token again.
    let rules = state.auth.watch();
    // The admin token subscribes to any group, read-only (the inspector's live tail): it
    // reads every document through the admin API already; its pushes are refused.
    let (identity, read_only) =
        crate::http::admin::identify_sync(&req, &state, Access::Read, encoding)?;
    if *state.shutdown.borrow() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "server: shutting down",
            encoding,
        ));
    }
    let mut response = actix_http::ws::handshake(req.head()).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("upgrade: {e}; /sync/ws takes a WebSocket handshake"),
            encoding,
        )
    })?;
    let mut response = HttpResponse::from(response.finish().map_into_boxed_body());
    response.extensions_mut().insert(Accepted {
        state,
        identity,
        rules,
        read_only,
        conn: req
            .conn_data::<crate::conn::ConnHandle>()
            .map(|handle| handle.0.clone()),
    });
    Ok(response)
}
