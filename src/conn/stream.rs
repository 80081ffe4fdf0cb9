//! [`Guarded`]: an accepted socket as actix's dispatcher reads and writes it, that fails
//! both ways once its connection is aborted.
//!
//! The dispatcher of a connection whose peer never reads waits for the socket to become
//! writable, forever; one whose peer never finishes a body waits to read. An abort wakes
//! whichever task waits (the stream registers its waker whenever the socket makes it
//! wait) and fails the next read and write, so the dispatcher drops the connection. A
//! reset sets `SO_LINGER` 0 first, so that closing the socket drops what is still queued
//! for the peer rather than retrying it for minutes; a head timeout writes a 408 and
//! closes in order.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Abort, Conn, Registration, http_error};

/// An accepted socket, registered with the [`super::Connections`] while it lives.
pub struct Guarded {
    io: TcpStream,
    conn: Arc<Conn>,
    /// Unregisters the connection when the stream is dropped.
    _registration: Registration,
    /// The abort has been acted on (linger set, 408 written).
    acted: bool,
}

impl std::fmt::Debug for Guarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guarded").field("conn", &self.conn).finish()
    }
}

impl Guarded {
    pub(super) fn new(io: TcpStream, conn: Arc<Conn>, registration: Registration) -> Guarded {
        Guarded {
            io,
            conn,
            _registration: registration,
            acted: false,
        }
    }

    /// The connection, for actix's per-connection data.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// The error every read and write returns once the connection is aborted; the first
    /// time, the abort's side effect on the socket.
    fn aborted(&mut self) -> Option<io::Error> {
        let how = self.conn.aborted()?;
        if !self.acted {
            self.acted = true;
            let socket = socket2::SockRef::from(&self.io);
            match how {
                Abort::Reset => {
                    let _ = socket.set_linger(Some(Duration::ZERO));
                }
                Abort::Close => {}
                Abort::HeadTimeout => {
                    // Nothing else is being written between requests.
                    let response = http_error(
                        "408 Request Timeout",
                        "request_timeout",
                        "request: the head did not arrive within the request timeout",
                    );
                    let _ = socket.send(response.as_bytes());
                }
            }
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        Some(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "connection aborted: past its deadline",
        ))
    }
}

impl Drop for Guarded {
    /// A connection aborted and dropped before its stream was polled again still gets the
    /// abort's effect: after a reset, the kernel must not go on retrying what the peer
    /// never read.
    fn drop(&mut self) {
        let _ = self.aborted();
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(error) = this.aborted() {
            return Poll::Ready(Err(error));
        }
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {
                this.conn.read_waker.register(cx.waker());
                // An abort between the check above and the registration woke no one.
                match this.aborted() {
                    Some(error) => Poll::Ready(Err(error)),
                    None => Poll::Pending,
                }
            }
            ready => ready,
        }
    }
}

impl Guarded {
    /// Runs a write-side poll, failing it once aborted and registering for wake-ups when
    /// the socket makes it wait.
    fn poll_write_side<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if let Some(error) = self.aborted() {
            return Poll::Ready(Err(error));
        }
        match poll(Pin::new(&mut self.io), cx) {
            Poll::Pending => {
                self.conn.write_waker.register(cx.waker());
                match self.aborted() {
                    Some(error) => Poll::Ready(Err(error)),
                    None => Poll::Pending,
                }
            }
            ready => ready,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_side(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_side(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_write_side(cx, |io, cx| io.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_write_side(cx, |io, cx| io.poll_shutdown(cx))
    }
}
