//! The request middleware that moves a connection through its [`Phase`]s and bounds the
//! time its request takes to arrive.
//!
//! A request's head and body must arrive within the request timeout of the moment the
//! connection was ready for it (accepted, or its previous answer sent). The body is read
//! through [`TimedBody`], which fails with `TimedOut` at that deadline; the handler answers
//! 408 and the connection is closed (`ApiError` forces the close). A body the handler does
//! not read (a 415, a 404, a chunked body actix drains after the answer) keeps the
//! connection in [`Phase::Request`], and the sweeper aborts it at the deadline. Once the
//! body has arrived the server's own time does not count; once the answer has been handed
//! to actix the connection is idle again. A WebSocket upgrade leaves the connection to its
//! session.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::HttpMessage;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use bytes::Bytes;
use futures_util::Stream;
use tokio::time::Sleep;

use super::{Conn, ConnHandle, Phase, SWEEP_INTERVAL, Timings};

/// The route whose upgrade hands the connection to a WebSocket session.
const WEBSOCKET_PATH: &str = "/sync/ws";

/// The message a timed-out body read carries; `read_body` turns it into a 408.
pub const BODY_TIMED_OUT: &str = "the request body did not arrive within the request timeout";

/// Middleware: see the module doc.
pub async fn request_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + Unpin + 'static>,
) -> Result<ServiceResponse<Finished<impl MessageBody + Unpin>>, actix_web::Error> {
    let Some(ConnHandle(conn)) = req.conn_data::<ConnHandle>() else {
        // Not registered (a test service): nothing to bound.
        let response = next.call(req).await?;
        return Ok(response.map_body(|_, body| Finished { body, conn: None }));
    };
    let conn = conn.clone();
    let timings = conn.timings();
    // Only the WebSocket route's upgrade streams its "body" for the life of the
    // connection; an `Upgrade` header on any other request does not lift its deadline.
    let upgrade = req.method() == Method::GET
        && req.path() == WEBSOCKET_PATH
        && req
            .headers()
            .get(header::UPGRADE)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let payload = req.take_payload();
    if upgrade || matches!(payload, Payload::None) {
        req.set_payload(payload);
        conn.enter(Phase::Processing, None);
    } else {
        let left = conn.request_time_left();
        // The sweeper's deadline comes a little after the body's own, so that the handler's
        // 408 is what a peer normally sees; the sweeper only catches an unread body.
        conn.enter(Phase::Request, Some(left + SWEEP_INTERVAL * 5));
        let timed = TimedBody {
            inner: payload,
            sleep: Box::pin(tokio::time::sleep(left)),
            conn: conn.clone(),
            timings,
        };
        let stream: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(timed);
        req.set_payload(Payload::from(stream));
    }
    let response = next.call(req).await?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        conn.enter(Phase::Upgraded, None);
        return Ok(response.map_body(|_, body| Finished { body, conn: None }));
    }
    Ok(response.map_body(|_, body| Finished {
        body,
        conn: Some(conn),
    }))
}

/// A request body that fails with `TimedOut` once its deadline passes, and marks the
/// connection [`Phase::Processing`] when it has all arrived.
struct TimedBody {
    inner: Payload,
    sleep: Pin<Box<Sleep>>,
    conn: Arc<Conn>,
    timings: Timings,
}

impl Stream for TimedBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(None) => {
                this.conn.enter(Phase::Processing, None);
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    // The 408 goes out and the connection closes; if the peer does not
                    // take the answer either, the sweeper aborts it.
                    this.conn.close_within(this.timings.close_timeout);
                    Poll::Ready(Some(Err(PayloadError::Io(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        BODY_TIMED_OUT,
                    )))))
                }
            },
        }
    }
}

/// A response body that, once actix has taken all of it (and drops it), makes the
/// connection idle again, ready for its next request, unless its request body is still
/// unread (the deadline of [`Phase::Request`] then stands).
pub struct Finished<B> {
    body: B,
    conn: Option<Arc<Conn>>,
}

impl<B> Drop for Finished<B> {
    fn drop(&mut self) {
        if let Some(conn) = &self.conn
            && conn.phase() == Phase::Processing
        {
            conn.ready_for_next();
        }
    }
}

impl<B: MessageBody + Unpin> MessageBody for Finished<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        Pin::new(&mut this.body).poll_next(cx)
    }
}
