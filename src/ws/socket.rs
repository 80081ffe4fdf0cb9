//! The connection under a WebSocket session, taken from actix-http at the upgrade
//! ([`crate::http::upgrade`]), and the writing half of the protocol on it.
//!
//! The session's task reads and writes the socket itself: no channel to another task, no
//! buffer that outlives its data. An idle connection holds no read or write buffer at all:
//! [`Chunks`] reads into the stack and keeps exactly the bytes read, and [`Writer`] lets
//! go of its buffer once the socket took all of it. (Under actix-http's dispatcher every
//! connection kept two 8 KiB buffers and actix-ws a 32-slot channel for its whole life.)
//!
//! Both halves share the stream through an `Rc<RefCell<…>>`: the session's task is the
//! only one touching it (the worker's arbiter runs it), and each borrow lasts one poll.

use std::cell::RefCell;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use actix_http::ws::{CloseReason, OpCode, Parser};
use actix_web::error::PayloadError;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A byte stream a session runs over: plain TCP or TLS, guarded ([`crate::conn`]), or an
/// in-memory pipe in tests.
pub(crate) trait Io: AsyncRead + AsyncWrite {}

impl<T: AsyncRead + AsyncWrite> Io for T {}

/// The stream, shared by the reading and the writing half of one session.
pub(crate) type SharedIo = Rc<RefCell<Pin<Box<dyn Io>>>>;

/// Wraps a stream for a session.
pub(crate) fn shared(io: impl Io + 'static) -> SharedIo {
    Rc::new(RefCell::new(Box::pin(io)))
}

/// The most bytes read from the socket at once, into the stack: a large push arrives in a
/// few reads, and nothing of that size stays with the connection.
const READ_CHUNK: usize = 16 * 1024;

/// Past this many bytes waiting for the socket, a write waits for the client to read.
pub(super) const WRITE_HIGH_WATER: usize = 16 * 1024;

/// What the client sends, as chunks of exactly the bytes read: first what actix-http had
/// read past the upgrade request, then the socket's, until it ends.
pub(super) struct Chunks {
    io: SharedIo,
    leftover: Option<Bytes>,
}

impl Chunks {
    pub(super) fn new(io: SharedIo, leftover: Bytes) -> Chunks {
        Chunks {
            io,
            leftover: (!leftover.is_empty()).then_some(leftover),
        }
    }
}

impl Stream for Chunks {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(leftover) = this.leftover.take() {
            return Poll::Ready(Some(Ok(leftover)));
        }
        read_chunk(&this.io, cx).map(|read| match read {
            Ok(Some(chunk)) => Some(Ok(chunk)),
            Ok(None) => None,
            Err(e) => Some(Err(PayloadError::Io(e))),
        })
    }
}

/// One read of at most [`READ_CHUNK`] bytes; `None` at the end of the stream.
fn read_chunk(io: &SharedIo, cx: &mut Context<'_>) -> Poll<io::Result<Option<Bytes>>> {
    let mut stack = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
    let mut buf = ReadBuf::uninit(&mut stack);
    ready!(io.borrow_mut().as_mut().poll_read(cx, &mut buf))?;
    let filled = buf.filled();
    Poll::Ready(Ok(
        (!filled.is_empty()).then(|| Bytes::copy_from_slice(filled))
    ))
}

/// The writing half: frames are encoded into a buffer that the session flushes to the
/// socket between its other work, and that is let go once flushed.
pub(super) struct Writer {
    io: SharedIo,
    buf: BytesMut,
    /// Everything was written, but the stream (TLS) may still hold some of it.
    unflushed: bool,
}

impl Writer {
    pub(super) fn new(io: SharedIo) -> Writer {
        Writer {
            io,
            buf: BytesMut::new(),
            unflushed: false,
        }
    }

    /// Room for another frame without waiting for the client.
    pub(super) fn has_room(&self) -> bool {
        self.buf.len() < WRITE_HIGH_WATER
    }

    /// Bytes that are not yet on their way to the client.
    pub(super) fn pending(&self) -> bool {
        !self.buf.is_empty() || self.unflushed
    }

    /// Encodes a final, unmasked frame.
    pub(super) fn frame(&mut self, opcode: OpCode, payload: &[u8]) {
        Parser::write_message(&mut self.buf, payload, opcode, true, false);
    }

    /// Encodes a close frame.
    pub(super) fn close_frame(&mut self, reason: Option<CloseReason>) {
        Parser::write_close(&mut self.buf, reason, false);
    }

    /// Writes everything buffered and flushes the stream; the buffer is then released.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut io = self.io.borrow_mut();
        while !self.buf.is_empty() {
            let n = ready!(io.as_mut().poll_write(cx, &self.buf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.buf.advance(n);
            self.unflushed = true;
        }
        // An idle connection keeps no write buffer: the next frame allocates one of its
        // own size, where a kept buffer would stay as large as the largest page sent.
        self.buf = BytesMut::new();
        if self.unflushed {
            ready!(io.as_mut().poll_flush(cx))?;
            self.unflushed = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Ends the sending direction (a TCP FIN, after TLS's close_notify).
    pub(super) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io.borrow_mut().as_mut().poll_shutdown(cx)
    }

    /// Reads and drops what the client still sends, until it closes its side: closing a
    /// socket with unread input resets it, and a reset can destroy the close frame just
    /// sent before the client reads it.
    pub(super) fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match ready!(read_chunk(&self.io, cx)) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return Poll::Ready(()),
            }
        }
    }
}
