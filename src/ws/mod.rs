//! WebSocket sessions (`GET /sync/ws`, PROTOCOL.md section 6): subscribe to groups, catch
//! up, stream every later commit, and push.
//!
//! ## How a session, its queue and the group actors fit together
//!
//! - [`upgrade`] checks the token (401 before any upgrade), wraps the request body in a
//!   [`limit::FrameLimit`] (a frame declaring more than the body limit closes with 1009
//!   before it is read), and spawns the session task on the worker's arbiter.
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
mod limit;
/// Not API: the frame scanner's fuzz property, for the fuzz build only (`fuzz/`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub use limit::fuzzing::frame_scanner;
mod outbox;
mod session;
#[cfg(test)]
mod session_tests;
mod stats;
mod subscription;

use std::pin::Pin;
use std::time::Duration;

use actix_web::dev;
use actix_web::error::PayloadError;
use actix_web::web::{Data, Payload};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use atomsync_proto::ErrorCode;
use bytes::Bytes;
use futures_util::Stream;

use crate::http::request::{identify, response_encoding};
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

/// What actix-web's request payload holds: any stream of body chunks.
type PayloadStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// `GET /sync/ws`: authenticates, then upgrades the request to a WebSocket session.
pub async fn upgrade(
    req: HttpRequest,
    body: Payload,
    state: Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let encoding = response_encoding(&req);
    crate::http::guard::check_upgrade_origin(&req, &state.auth.current())?;
    // Watched from before the token is checked: rules replaced after this point reach the
    // session, which checks its token again.
    let rules = state.auth.watch();
    // The admin token subscribes to any group, read-only (the inspector's live tail): it
    // reads every document through the admin API already; its pushes are refused.
    let read_only = crate::http::admin::is_admin(&req, &state) && state.auth.current().is_on();
    let identity = if read_only {
        crate::auth::Identity::Open
    } else {
        identify(&req, &state.auth, encoding)?
    };
    if *state.shutdown.borrow() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "server: shutting down",
            encoding,
        ));
    }

    let limited = limit::FrameLimit::new(body.into_inner(), state.max_body_bytes);
    let oversized = limited.tripped();
    let stream: PayloadStream = Box::pin(limited);
    let mut payload = dev::Payload::Stream { payload: stream };
    let body = Payload::from_request(&req, &mut payload)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("upgrade: {e}"), encoding))?;
    let (response, socket, messages) = actix_ws::handle(&req, body).map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("upgrade: {e}; /sync/ws takes a WebSocket handshake"),
            encoding,
        )
    })?;
    // FrameLimit refuses oversized frames first; these bound what actix buffers anyway.
    let messages = messages
        .max_frame_size(state.max_body_bytes)
        .aggregate_continuations()
        .max_continuation_size(state.max_body_bytes);
    let start = session::Start {
        socket,
        messages,
        state: state.clone(),
        identity,
        rules,
        oversized,
        conn: req
            .conn_data::<crate::conn::ConnHandle>()
            .map(|handle| handle.0.clone()),
        read_only,
    };
    actix_web::rt::spawn(session::run(start));
    Ok(response)
}
