//! [`FrameLimit`]: refuses a client frame, or a fragmented message, whose *declared* length is
//! over the body limit as soon as its header arrives (PROTOCOL.md section 6).
//!
//! Why not actix's own `max_frame_size`: its parser checks the length only once the whole
//! frame is buffered, so a frame declaring 4 GiB would be read into memory first. This
//! adapter sits between the connection and the frame decoder ([`super::incoming`]), follows
//! the frame headers as the bytes pass (it never copies or unmasks a payload), and fails the
//! stream at the first header over the limit. The decoder sees the failure, finds
//! [`FrameLimit::tripped`] set, and the session closes with 1009.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use bytes::Bytes;
use futures_util::Stream;

#[cfg(any(test, fuzzing))]
pub(super) mod fuzzing;

/// The longest header a client frame can have: 2 bytes, an 8-byte length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Follows the frames of a byte stream and checks each declared length.
#[derive(Debug, Default)]
struct Scanner {
    header: [u8; MAX_HEADER],
    /// Header bytes of the current frame seen so far.
    have: usize,
    /// Payload bytes of the current frame still to pass.
    payload_left: u64,
    /// Data bytes declared so far by the unfinished fragmented message.
    message_len: u64,
}

/// Where an over-limit frame starts in a chunk: bytes before it belong to earlier frames.
#[derive(Debug, PartialEq, Eq)]
struct OverLimit {
    frame_start: usize,
}

impl Scanner {
    /// Follows `chunk`; fails at the first frame whose length (or whose message's length so
    /// far) is over `limit`.
    fn feed(&mut self, chunk: &[u8], limit: u64) -> Result<(), OverLimit> {
        let mut at = 0;
        let mut header_start = 0;
        while at < chunk.len() {
            if self.payload_left > 0 {
                let rest = (chunk.len() - at) as u64;
                let skip = self.payload_left.min(rest);
                self.payload_left -= skip;
                // `skip` is at most `rest`, a usize.
                at += usize::try_from(skip).unwrap_or(chunk.len() - at);
                continue;
            }
            if self.have == 0 {
                header_start = at;
            }
            let Some(byte) = chunk.get(at) else { break };
            if let Some(slot) = self.header.get_mut(self.have) {
                *slot = *byte;
            }
            self.have += 1;
            at += 1;
            if self.have >= 2 && self.have == self.header_len() {
                let length = self.declared_length();
                self.have = 0;
                if !self.admit(length, limit) {
                    return Err(OverLimit {
                        frame_start: header_start,
                    });
                }
                self.payload_left = length;
            }
        }
        Ok(())
    }

    /// The full header length, known once the first two bytes are in.
    fn header_len(&self) -> usize {
        let second = self.header[1];
        let extended = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if second & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn declared_length(&self) -> u64 {
        let [_, second, e0, e1, e2, e3, e4, e5, e6, e7, ..] = self.header;
        match second & 0x7f {
            126 => u64::from(u16::from_be_bytes([e0, e1])),
            127 => u64::from_be_bytes([e0, e1, e2, e3, e4, e5, e6, e7]),
            short => u64::from(short),
        }
    }

    /// Checks a complete header; tracks the length of a fragmented data message.
    fn admit(&mut self, length: u64, limit: u64) -> bool {
        let first = self.header[0];
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0f;
        if opcode & 0x08 != 0 {
            // A control frame (close, ping, pong) may sit between fragments; it is not part
            // of the message. Its length is checked on its own.
            return length <= limit;
        }
        let total = if opcode == 0 {
            self.message_len.saturating_add(length)
        } else {
            length
        };
        if total > limit {
            return false;
        }
        self.message_len = if fin { 0 } else { total };
        true
    }
}

/// Where the stream is once a frame over the limit was seen.
#[derive(Debug, PartialEq, Eq)]
enum Tripped {
    No,
    /// The bytes before the frame were passed on: pause once so the decoder reads them.
    Pause,
    /// Report the error.
    Report,
}

/// The request payload of a WebSocket connection, with every declared frame length checked.
pub(super) struct FrameLimit<S> {
    inner: S,
    limit: u64,
    scanner: Scanner,
    state: Tripped,
    tripped: Arc<AtomicBool>,
}

impl<S> FrameLimit<S> {
    /// Wraps `inner`; frames (and fragmented messages) over `limit` bytes fail the stream.
    pub(super) fn new(inner: S, limit: usize) -> FrameLimit<S> {
        FrameLimit {
            inner,
            limit: u64::try_from(limit).unwrap_or(u64::MAX),
            scanner: Scanner::default(),
            state: Tripped::No,
            tripped: Arc::default(),
        }
    }

    /// Set once a frame over the limit was declared: why the stream failed.
    pub(super) fn tripped(&self) -> Arc<AtomicBool> {
        self.tripped.clone()
    }
}

impl<S> Stream for FrameLimit<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.state {
            Tripped::No => {}
            Tripped::Pause => {
                // Pending once, so that the decoder takes the good frames just passed on
                // before it meets the error.
                this.state = Tripped::Report;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Tripped::Report => return Poll::Ready(Some(Err(PayloadError::Overflow))),
        }
        let chunk = match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => chunk,
            other => return other,
        };
        match this.scanner.feed(&chunk, this.limit) {
            Ok(()) => Poll::Ready(Some(Ok(chunk))),
            Err(OverLimit { frame_start }) => {
                this.tripped.store(true, Ordering::Release);
                this.state = Tripped::Pause;
                if frame_start > 0 {
                    Poll::Ready(Some(Ok(chunk.slice(..frame_start))))
                } else {
                    this.state = Tripped::Report;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// A masked client frame with `payload`, declaring its real length.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        header(fin, opcode, payload.len() as u64)
            .into_iter()
            .chain(payload.iter().map(|b| b ^ 0x5a))
            .collect()
    }

    fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        match len {
            0..=125 => out.push(0x80 | len as u8),
            126..=0xffff => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(0x80 | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        out.extend_from_slice(&[0x5a; 4]);
        out
    }

    /// Feeds `bytes` cut at `cut`; the offset of the frame over the limit, if any.
    fn scan(bytes: &[u8], cut: usize, limit: u64) -> Option<usize> {
        let mut scanner = Scanner::default();
        let (a, b) = bytes.split_at(cut);
        if let Err(OverLimit { frame_start }) = scanner.feed(a, limit) {
            return Some(frame_start);
        }
        scanner.feed(b, limit).err().map(|o| o.frame_start + cut)
    }

    #[test]
    fn frames_within_the_limit_pass_in_any_cut() {
        let mut bytes = frame(true, 1, &[b'x'; 100]);
        bytes.extend(frame(true, 2, &[7; 300]));
        bytes.extend(frame(true, 9, b"ping"));
        bytes.extend(frame(true, 2, &[1; 70_000]));
        for cut in 0..bytes.len() {
            assert_eq!(scan(&bytes, cut, 70_000), None, "cut at {cut}");
        }
    }

    #[test]
    fn each_length_form_over_the_limit_is_caught_at_its_header() {
        for len in [126u64, 300, 70_000, 1 << 40, u64::MAX] {
            let mut bytes = frame(true, 2, b"ok");
            let start = bytes.len();
            bytes.extend(header(true, 2, len));
            // Only the header is sent: the rest is never needed to refuse it. A header split
            // across chunks is refused at the start of the chunk that completes it.
            for cut in 0..bytes.len() {
                assert_eq!(
                    scan(&bytes, cut, 125),
                    Some(start.max(cut)),
                    "len {len}, cut {cut}"
                );
            }
        }
    }

    #[test]
    fn a_fragmented_message_counts_its_fragments_but_not_control_frames() {
        let mut bytes = frame(false, 1, &[b'a'; 60]);
        bytes.extend(frame(true, 9, &[0; 100]));
        bytes.extend(frame(false, 0, &[b'b'; 60]));
        let start = bytes.len();
        bytes.extend(frame(true, 0, &[b'c'; 10]));
        assert_eq!(scan(&bytes, 0, 125), Some(start), "60 + 60 + 10 > 125");
        assert_eq!(scan(&bytes, 0, 130), None);
        // A finished message resets the count.
        let mut bytes = frame(false, 2, &[1; 100]);
        bytes.extend(frame(true, 0, &[1; 25]));
        bytes.extend(frame(true, 2, &[1; 125]));
        assert_eq!(scan(&bytes, 0, 125), None);
    }

    #[test]
    fn an_unmasked_header_is_followed_too() {
        let mut bytes = vec![0x82, 3, 1, 2, 3];
        bytes.extend([0x82, 126, 0x01, 0x00]);
        assert_eq!(scan(&bytes, 0, 255), Some(5));
    }

    #[actix_rt::test]
    async fn the_stream_passes_earlier_frames_then_fails() {
        let good = frame(true, 2, b"fine");
        let mut chunk = good.clone();
        chunk.extend(header(true, 2, 1 << 20));
        let source = futures_util::stream::iter(vec![
            Ok(Bytes::from(chunk)),
            Ok(Bytes::from_static(b"rest")),
        ]);
        let mut limited = FrameLimit::new(source, 1024);
        let tripped = limited.tripped();
        let first = limited.next().await.unwrap().unwrap();
        assert_eq!(&first[..], &good[..]);
        assert!(tripped.load(Ordering::Acquire));
        assert!(matches!(
            limited.next().await,
            Some(Err(PayloadError::Overflow))
        ));
    }
}
