//! [`Outbox`]: what a session writes to its socket, and how a session ends ([`End`]).
//!
//! Every write can wait: actix-ws hands frames to the connection through a small channel,
//! and a client that does not read fills it. So every write also watches the connection's
//! overflow signal (a group actor found its queue full) and a deadline: a session stuck
//! writing to a client that does not read is still closed with 1013, and never waits
//! forever.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use actix_ws::{CloseCode, CloseReason, Closed};
use atomsync_proto::Encoding;
use atomsync_proto::wire::ServerFrame;
use bytes::Bytes;
use bytestring::ByteString;
use tokio::sync::Notify;

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
    socket: actix_ws::Session,
    overflow: Arc<Notify>,
    /// A write that waits this long for room ends the session (1013).
    write_timeout: Duration,
    /// Text and binary frames written so far (pings and pongs are not counted).
    pub(super) sent: Tally,
}

impl Outbox {
    /// Writes to `socket`; gives up when `overflow` is notified or a write waits for
    /// `write_timeout`.
    pub(super) fn new(
        socket: actix_ws::Session,
        overflow: Arc<Notify>,
        write_timeout: Duration,
    ) -> Outbox {
        Outbox {
            socket,
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
        self.bytes(encoding, Bytes::from(frame.encode(encoding)))
            .await
    }

    /// Sends an encoded frame: MessagePack as a binary frame, JSON as a text frame.
    pub(super) async fn bytes(&mut self, encoding: Encoding, bytes: Bytes) -> Result<(), End> {
        let Outbox {
            socket,
            overflow,
            write_timeout,
            sent,
        } = self;
        sent.add(bytes.len());
        match encoding {
            Encoding::MsgPack => guarded(socket.binary(bytes), overflow, *write_timeout).await,
            // The JSON writer only writes UTF-8; checking it keeps the shared bytes uncopied.
            Encoding::Json => match ByteString::try_from(bytes) {
                Ok(text) => guarded(socket.text(text), overflow, *write_timeout).await,
                Err(e) => {
                    tracing::error!(error = %e, "an encoded JSON frame is not UTF-8; not sent");
                    Ok(())
                }
            },
        }
    }

    /// Sends a ping.
    pub(super) async fn ping(&mut self) -> Result<(), End> {
        let Outbox {
            socket,
            overflow,
            write_timeout,
            ..
        } = self;
        guarded(socket.ping(b""), overflow, *write_timeout).await
    }

    /// Answers a ping.
    pub(super) async fn pong(&mut self, payload: &[u8]) -> Result<(), End> {
        let Outbox {
            socket,
            overflow,
            write_timeout,
            ..
        } = self;
        guarded(socket.pong(payload), overflow, *write_timeout).await
    }

    /// Sends the close frame `end` calls for, waiting at most `grace` for room: a client
    /// that reads nothing gets its connection dropped instead (and its socket aborted by
    /// the connection's deadline, see [`crate::conn`]).
    pub(super) async fn close(self, end: End, grace: Duration) {
        let reason = match end {
            End::Gone => return,
            End::ClientClosed(reason) => reason,
            End::Close(code, description) => Some(CloseReason {
                code,
                description: Some(description),
            }),
        };
        if tokio::time::timeout(grace, self.socket.close(reason))
            .await
            .is_err()
        {
            tracing::debug!("the client read nothing for {grace:?}; dropping the connection");
        }
    }
}

/// Waits for a write, unless the connection overflows or the write stalls first.
///
/// Most writes find room in actix-ws's channel and finish on their first poll; only a write
/// that has to wait arms the deadline and watches the overflow signal. Arming a timer (and
/// registering with the signal) for every frame cost more than the write itself under
/// fan-out. An overflow that fires meanwhile is not lost: `Notify` keeps the permit for the
/// session's own watch.
async fn guarded(
    write: impl Future<Output = Result<(), Closed>>,
    overflow: &Notify,
    write_timeout: Duration,
) -> Result<(), End> {
    let mut write = pin!(write);
    if let Poll::Ready(written) = poll_fn(|cx| Poll::Ready(write.as_mut().poll(cx))).await {
        return written.map_err(|Closed| End::Gone);
    }
    // Boxed: the timer is large, and every session's state machine would carry its room.
    Box::pin(wait(write, overflow, write_timeout)).await
}

/// The slow path of [`guarded`]: a write that must wait for the client to read.
async fn wait(
    write: Pin<&mut impl Future<Output = Result<(), Closed>>>,
    overflow: &Notify,
    write_timeout: Duration,
) -> Result<(), End> {
    tokio::select! {
        written = write => written.map_err(|Closed| End::Gone),
        () = overflow.notified() => Err(End::too_slow()),
        () = tokio::time::sleep(write_timeout) => Err(End::too_slow()),
    }
}
