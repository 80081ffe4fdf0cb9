//! [`Incoming`]: the client's messages, decoded from the connection's bytes.
//!
//! The bytes pass [`FrameLimit`] first (a frame declaring more than the body limit fails
//! before it is buffered), then actix-http's WebSocket codec (masking, opcodes, control
//! frames, close payloads), then fragments are joined into whole messages and text is
//! checked to be UTF-8. What is buffered between reads is only an unfinished frame or
//! message: an idle connection holds no buffer.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use actix_codec::Decoder;
use actix_http::ws::{CloseReason, Codec, Frame, Item, ProtocolError};
use actix_web::error::PayloadError;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use super::limit::FrameLimit;

/// A whole client message.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Message {
    /// A text message, checked to be UTF-8.
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    Close(Option<CloseReason>),
}

/// Why the client's messages cannot be read on.
#[derive(Debug)]
pub(super) enum ReadError {
    /// A frame or message over the body limit (1009).
    TooLarge,
    /// A text message that is not UTF-8: refused, and the connection goes on.
    NotUtf8(std::str::Utf8Error),
    /// Not the WebSocket protocol (1002).
    Protocol(ProtocolError),
    /// The connection failed.
    Io(std::io::Error),
}

/// A fragmented message being joined.
struct Fragments {
    text: bool,
    parts: BytesMut,
}

/// The client's messages. `None` once the connection ends.
pub(super) struct Incoming<S> {
    chunks: FrameLimit<S>,
    /// Set by [`FrameLimit`] when it failed the stream for a frame over the limit.
    oversized: Arc<AtomicBool>,
    limit: usize,
    codec: Codec,
    /// Bytes read and not yet decoded: part of a frame. Empty (and unallocated) when idle.
    buf: BytesMut,
    fragments: Option<Fragments>,
    ended: bool,
}

impl<S> Incoming<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    /// Decodes `chunks`, refusing frames and messages over `limit` bytes.
    pub(super) fn new(chunks: S, limit: usize) -> Incoming<S> {
        let chunks = FrameLimit::new(chunks, limit);
        Incoming {
            oversized: chunks.tripped(),
            chunks,
            limit,
            codec: Codec::new().max_size(limit),
            buf: BytesMut::new(),
            fragments: None,
            ended: false,
        }
    }

    /// The next message.
    pub(super) async fn recv(&mut self) -> Option<Result<Message, ReadError>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Message, ReadError>>> {
        loop {
            // Every complete frame already read is decoded before reading on: FrameLimit
            // passes on the frames before an oversized one, then pauses once.
            while let Some(frame) = self.decode()? {
                if let Some(message) = self.message(frame)? {
                    return Poll::Ready(Some(Ok(message)));
                }
            }
            if self.ended {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.chunks).poll_next(cx)) {
                Some(Ok(chunk)) if self.buf.is_empty() => self.buf = BytesMut::from(chunk),
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
                Some(Err(_)) if self.oversized.load(Ordering::Acquire) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(ReadError::TooLarge)));
                }
                Some(Err(PayloadError::Io(e))) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(ReadError::Io(e))));
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Poll::Ready(Some(Err(ReadError::Io(std::io::Error::other(e)))));
                }
                None => self.ended = true,
            }
        }
    }

    /// The next complete frame in the buffer. The buffer is let go once empty: a slice of
    /// it may live on in a message, and would keep the whole allocation.
    fn decode(&mut self) -> Result<Option<Frame>, ReadError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let frame = self.codec.decode(&mut self.buf).map_err(|e| match e {
            ProtocolError::Overflow => ReadError::TooLarge,
            other => ReadError::Protocol(other),
        });
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        if frame.is_err() {
            self.ended = true;
        }
        frame
    }

    /// The message a frame completes, if any.
    fn message(&mut self, frame: Frame) -> Result<Option<Message>, ReadError> {
        Ok(Some(match frame {
            Frame::Text(bytes) => text(bytes)?,
            Frame::Binary(bytes) => Message::Binary(bytes),
            Frame::Ping(bytes) => Message::Ping(bytes),
            Frame::Pong(_) => Message::Pong,
            Frame::Close(reason) => Message::Close(reason),
            Frame::Continuation(item) => return self.fragment(item),
        }))
    }

    /// Joins a fragment; the message once its last fragment came. The codec refuses a
    /// fragment out of order; FrameLimit, a message over the limit.
    fn fragment(&mut self, item: Item) -> Result<Option<Message>, ReadError> {
        let (first, is_text, bytes, last) = match item {
            Item::FirstText(bytes) => (true, true, bytes, false),
            Item::FirstBinary(bytes) => (true, false, bytes, false),
            Item::Continue(bytes) => (false, false, bytes, false),
            Item::Last(bytes) => (false, false, bytes, true),
        };
        if first {
            self.fragments = Some(Fragments {
                text: is_text,
                parts: BytesMut::new(),
            });
        }
        let Some(fragments) = self.fragments.as_mut() else {
            return Err(ReadError::Protocol(ProtocolError::ContinuationNotStarted));
        };
        if fragments.parts.len() + bytes.len() > self.limit {
            self.fragments = None;
            return Err(ReadError::TooLarge);
        }
        fragments.parts.extend_from_slice(&bytes);
        if !last {
            return Ok(None);
        }
        let Some(Fragments {
            text: joined_text,
            parts,
        }) = self.fragments.take()
        else {
            return Ok(None);
        };
        let bytes = parts.freeze();
        Ok(Some(if joined_text {
            text(bytes)?
        } else {
            Message::Binary(bytes)
        }))
    }
}

fn text(bytes: Bytes) -> Result<Message, ReadError> {
    match std::str::from_utf8(&bytes) {
        Ok(_) => Ok(Message::Text(bytes)),
        Err(e) => Err(ReadError::NotUtf8(e)),
    }
}
