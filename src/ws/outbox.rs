//! [`Outbox`]: what a session writes to its socket, and how a session ends ([`End`]).
//!
//! Frames are encoded into the connection's write buffer and flushed by the session between
//! its other work. Past [`WRITE_HIGH_WATER`](super::socket::WRITE_HIGH_WATER) buffered
//! bytes a write waits for the client to read, and a client that does not read never makes
//! room. So a waiting write also watches the connection's overflow signal (a group actor
//! found its queue full) and a deadline: a session stuck writing to a client that does not
//! read is still closed with 1013, and never waits forever.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::time::Duration;

use actix_http::ws::{CloseCode, CloseReason, OpCode};
use atomsync_proto::Encoding;
use atomsync_proto::wire::ServerFrame;
use tokio::sync::Notify;

use super::socket::Writer;
use super::stats::Tally;

/// Why a session ends, and the close frame it sends.
#[derive(Debug)]
pub(super) enum End {
    /// The client sent a close frame; it is echoed.
    ClientClosed(Option<CloseReason>),
    /// The server closes with this code and reason.
    Close(CloseCode, String),
    /// The connection is gone: nothing can be sent.
    Gone,
}

impl End {
    /// The close code the session ends with, as a client sees it: the code sent or echoed,
    /// 1005 for a client's close without one, 1006 for a connection that just went away.
    pub(super) fn code(&self) -> u16 {
        match self {
            End::ClientClosed(Some(reason)) => reason.code.into(),
            End::ClientClosed(None) => 1005,
            End::Close(code, _) => (*code).into(),
            End::Gone => 1006,
        }
    }

    /// 1013: the client cannot keep up; it resumes from its cursor.
    pub(super) fn too_slow() -> End {
        End::Close(
            CloseCode::Again,
            "too slow: outgoing queue full; resume from your cursor".into(),
        )
    }

    /// 1001: the server is shutting down.
    pub(super) fn going_away() -> End {
        End::Close(CloseCode::Away, "server shutting down".into())
    }
}

/// The sending half of a connection.
pub(super) struct Outbox {
    writer: Writer,
    overflow: Arc<Notify>,
    /// A write that waits this long for room ends the session (1013).
    write_timeout: Duration,
    /// Text and binary frames written so far (pings and pongs are not counted).
    pub(super) sent: Tally,
}

impl Outbox {
    /// Writes through `writer`; gives up when `overflow` is notified or a write waits for
    /// `write_timeout`.
    pub(super) fn new(writer: Writer, overflow: Arc<Notify>, write_timeout: Duration) -> Outbox {
        Outbox {
            writer,
            overflow,
            write_timeout,
            sent: Tally::default(),
        }
    }

    /// Encodes and sends a frame.
    pub(super) async fn frame(
        &mut self,
        encoding: Encoding,
        frame: &ServerFrame,
    ) -> Result<(), End> {
        let bytes = frame.encode(encoding);
        self.bytes(encoding, &bytes).await
    }

    /// Sends an encoded frame: MessagePack as a binary frame, JSON as a text frame (the
    /// JSON writer only writes UTF-8).
    pub(super) async fn bytes(&mut self, encoding: Encoding, bytes: &[u8]) -> Result<(), End> {
        self.sent.add(bytes.len());
        let opcode = match encoding {
            Encoding::MsgPack => OpCode::Binary,
            Encoding::Json => OpCode::Text,
        };
        self.room().await?;
        self.writer.frame(opcode, bytes);
        Ok(())
    }

    /// Sends a ping.
    pub(super) async fn ping(&mut self) -> Result<(), End> {
        self.room().await?;
        self.writer.frame(OpCode::Ping, b"");
        Ok(())
    }

    /// Answers a ping.
    pub(super) async fn pong(&mut self, payload: &[u8]) -> Result<(), End> {
        self.room().await?;
        self.writer.frame(OpCode::Pong, payload);
        Ok(())
    }

    /// Frames are waiting to be written: the session flushes them ([`Outbox::flush`]) as
    /// soon as the socket takes them, between its other work.
    pub(super) fn pending(&self) -> bool {
        self.writer.pending()
    }

    /// Writes what is buffered; fails when the connection does.
    pub(super) async fn flush(&mut self) -> Result<(), End> {
        poll_fn(|cx| self.writer.poll_flush(cx))
            .await
            .map_err(|_| End::Gone)
    }

    /// Waits until the buffer has room for another frame. Most writes find room at once;
    /// only one that has to wait for the client arms the deadline and watches the overflow
    /// signal (arming a timer for every frame cost more than the write itself under
    /// fan-out). An overflow that fires meanwhile is not lost: `Notify` keeps the permit
    /// for the session's own watch.
    async fn room(&mut self) -> Result<(), End> {
        if self.writer.has_room() {
            return Ok(());
        }
        let Outbox {
            writer,
            overflow,
            write_timeout,
            ..
        } = self;
        // Boxed: the timer is large, and every session's state machine would carry its room.
        Box::pin(wait(
            poll_fn(|cx| writer.poll_flush(cx)),
            overflow,
            *write_timeout,
        ))
        .await
    }

    /// Sends the close frame `end` calls for and ends the connection, within `grace`: the
    /// frame and whatever is buffered before it are flushed, the sending side is shut,
    /// and what the client still sends is read until it closes its side. A client that
    /// reads nothing gets its connection dropped instead (and its socket aborted by the
    /// connection's deadline, see [`crate::conn`]). False if the client did not take it.
    pub(super) async fn close(mut self, end: End, grace: Duration) -> bool {
        let reason = match end {
            End::Gone => return true,
            End::ClientClosed(reason) => reason,
            End::Close(code, description) => Some(CloseReason {
                code,
                description: Some(description),
            }),
        };
        self.writer.close_frame(reason);
        let writer = &mut self.writer;
        let closing = async {
            poll_fn(|cx| writer.poll_flush(cx)).await?;
            poll_fn(|cx| writer.poll_shutdown(cx)).await?;
            poll_fn(|cx| writer.poll_drain(cx)).await;
            Ok::<(), std::io::Error>(())
        };
        if tokio::time::timeout(grace, closing).await.is_err() {
            tracing::debug!(
                "the client did not take the close within {grace:?}; dropping the connection"
            );
            return false;
        }
        true
    }
}

/// Waits for the client to take what is buffered, unless the connection overflows or the
/// write stalls first.
async fn wait(
    flushed: impl Future<Output = std::io::Result<()>>,
    overflow: &Notify,
    write_timeout: Duration,
) -> Result<(), End> {
    tokio::select! {
        written = flushed => written.map_err(|_| End::Gone),
        () = overflow.notified() => Err(End::too_slow()),
        () = tokio::time::sleep(write_timeout) => Err(End::too_slow()),
    }
}
