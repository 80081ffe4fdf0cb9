//! Requests that ask to switch to WebSocket: their connection is taken out of actix-http's
//! HTTP/1 dispatcher, and a WebSocket session runs on it alone.
//!
//! Why: the dispatcher keeps an 8 KiB read and an 8 KiB write buffer and its own task for
//! the life of a connection, and actix-ws adds a 32-slot channel and a second task; an
//! idle subscribed connection cost ~17 KiB, most of it those. actix-http hands a request
//! with `Upgrade: websocket` (and its stream, with what was read past the head) to the
//! `upgrade` service instead, and here:
//!
//! 1. the request goes through the same routes and middleware as every other one (access
//!    log, `Host` and `Origin` checks, request deadline), its body being the rest of the
//!    stream, as actix-http reads an upgrade request's body; so a `POST /sync` with an
//!    `Upgrade` header is answered (or timed out, 408) like any push;
//! 2. a 101 that carries a [`crate::ws::Accepted`] (the WebSocket route's) is written, and
//!    the session is spawned on the connection ([`crate::ws::start`]); the dispatcher's
//!    task ends;
//! 3. any other answer is written and the connection closed (after an upgrade request, it
//!    cannot serve another one).

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use actix_codec::{Encoder, Framed};
use actix_http::body::{BodySize, MessageBody};
use actix_http::h1::{self, Message};
use actix_http::{ConnectionType, Payload, Request, Response, StatusCode};
use actix_service::{Service, ServiceFactory, fn_factory, fn_service};
use actix_web::dev::{AppConfig, ServiceResponse};
use actix_web::error::PayloadError;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};

use super::server::Served;

/// The upgrade service for connections of type `T`, with `app` (a factory of the server's
/// routes) to answer the requests.
pub(super) fn service<T, F, B>(
    app: impl Fn() -> F + Clone + 'static,
) -> impl ServiceFactory<
    (Request, Framed<T, h1::Codec>),
    Config = (),
    Response = (),
    Error = actix_web::Error,
    InitError = (),
>
where
    T: Served,
    F: ServiceFactory<
            Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
    B: MessageBody + 'static,
{
    fn_factory(move || {
        let app = app();
        async move {
            let routes = Rc::new(app.new_service(AppConfig::default()).await?);
            Ok::<_, ()>(fn_service(move |(req, framed)| {
                upgrade(routes.clone(), req, framed)
            }))
        }
    })
}

/// The stream and what was read past the request head, while the request is answered.
struct Taken<T> {
    io: T,
    read_buf: BytesMut,
}

/// Answers one upgrade request on its connection (see the module doc).
async fn upgrade<T, S, B>(
    routes: Rc<S>,
    mut req: Request,
    framed: Framed<T, h1::Codec>,
) -> Result<(), actix_web::Error>
where
    T: Served,
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let parts = framed.into_parts();
    let mut codec = parts.codec;
    let conn = parts.io.guarded().conn().clone();
    let taken = Rc::new(RefCell::new(Some(Taken {
        io: parts.io,
        read_buf: parts.read_buf,
    })));
    *req.payload() = Payload::Stream {
        payload: Box::pin(Rest(taken.clone())),
    };
    let response: Response<_> = match routes.call(req).await {
        Ok(response) => response.map_into_boxed_body().into(),
        Err(error) => error.error_response().map_into_boxed_body().into(),
    };
    let Some(Taken { mut io, read_buf }) = taken.borrow_mut().take() else {
        return Ok(());
    };
    let (mut head, body) = response.into_parts();
    let accepted = head.extensions_mut().remove::<crate::ws::Accepted>();
    let mut out = BytesMut::new();
    match accepted {
        Some(accepted) if head.status() == StatusCode::SWITCHING_PROTOCOLS => {
            drop(body);
            codec.encode(Message::Item((head, BodySize::None)), &mut out)?;
            // A client that does not take the response gets the session's own deadlines:
            // it reads nothing, its pings go unanswered, and it is closed.
            if let Err(e) = write(&mut io, &out).await {
                tracing::debug!(error = %e, "websocket: the 101 could not be written");
                return Ok(());
            }
            actix_web::rt::spawn(crate::ws::start(io, read_buf.freeze(), accepted));
        }
        _ => {
            // Dropping the body (its last reference) makes the connection idle again;
            // then it is closing, and gone within the close timeout whatever the peer does.
            let body = actix_http::body::to_bytes(body).await.unwrap_or_default();
            let grace = conn.timings().close_timeout;
            conn.close_within(grace);
            head.head_mut().set_connection_type(ConnectionType::Close);
            let size = BodySize::Sized(body.len() as u64);
            codec.encode(Message::Item((head, size)), &mut out)?;
            codec.encode(Message::Chunk(Some(body)), &mut out)?;
            codec.encode(Message::Chunk(None), &mut out)?;
            let answered = tokio::time::timeout(grace, async {
                write(&mut io, &out).await?;
                io.shutdown().await?;
                linger(&mut io).await;
                Ok::<(), io::Error>(())
            });
            if answered.await.is_err() {
                // The peer took nothing: reset, so the kernel stops offering it the answer.
                conn.abort(crate::conn::Abort::Reset);
            }
        }
    }
    Ok(())
}

async fn write<T: Served>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// Reads what the peer still sends until it closes, for at most a second: closing with
/// unread input resets the connection, which may destroy the answer before it is read.
async fn linger<T: Served>(io: &mut T) {
    let mut scratch = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(io.read(&mut scratch).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// The body of an upgrade request that is not answered 101: the rest of the stream, as
/// actix-http reads it.
struct Rest<T>(Rc<RefCell<Option<Taken<T>>>>);

impl<T: Served> Stream for Rest<T> {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut taken = self.0.borrow_mut();
        let Some(Taken { io, read_buf }) = taken.as_mut() else {
            return Poll::Ready(None);
        };
        if !read_buf.is_empty() {
            return Poll::Ready(Some(Ok(read_buf.split().freeze())));
        }
        let mut stack = [MaybeUninit::<u8>::uninit(); 8192];
        let mut buf = ReadBuf::uninit(&mut stack);
        match ready!(Pin::new(io).poll_read(cx, &mut buf)) {
            Ok(()) if buf.filled().is_empty() => Poll::Ready(None),
            Ok(()) => Poll::Ready(Some(Ok(Bytes::copy_from_slice(buf.filled())))),
            Err(e) => Poll::Ready(Some(Err(PayloadError::Io(e)))),
        }
    }
}
