//! Not API: the property of the `ws_scanner` fuzz target (`fuzz/`), compiled only for the
//! fuzz build (`--cfg fuzzing`) and for the test that replays its corpus on stable.
//!
//! The scanner follows frame headers incrementally, a chunk at a time as the connection
//! delivers them; that is where it could go wrong (a header split across chunks, a payload
//! skipped a byte too far). So it is held to a plain reading of RFC 6455 framing over the
//! whole stream at once: both must find the same first frame over the limit, at the same
//! place, however the stream is cut.

use super::{OverLimit, Scanner};

/// The `ws_scanner` target. The input is the limit (2 bytes, big-endian), how many cuts
/// (1 byte, at most 15 are used), the distance of each cut from the previous one (1 byte
/// each), then the stream of client frames.
pub fn frame_scanner(data: &[u8]) {
    let Some((&[high, low, cuts], rest)) = data.split_first_chunk::<3>() else {
        return;
    };
    let limit = u64::from(u16::from_be_bytes([high, low]));
    let cuts = usize::from(cuts & 0x0f).min(rest.len());
    let (distances, stream) = rest.split_at(cuts);

    let mut chunks = Vec::new();
    let mut at = 0;
    for distance in distances {
        let end = (at + usize::from(*distance)).min(stream.len());
        chunks.push(at..end);
        at = end;
    }
    chunks.push(at..stream.len());

    let expected = first_over_limit(stream, limit);
    let mut scanner = Scanner::default();
    for chunk in chunks {
        let bytes = stream.get(chunk.clone()).unwrap_or_default();
        match scanner.feed(bytes, limit) {
            Ok(()) => {
                if let Some(frame) = &expected {
                    assert!(
                        !chunk.contains(&(frame.header_end - 1)),
                        "the frame at {} over the limit passed in chunk {chunk:?}",
                        frame.start
                    );
                }
            }
            Err(OverLimit { frame_start }) => {
                let frame = expected.as_ref().unwrap_or_else(|| {
                    panic!("chunk {chunk:?} refused at {frame_start}; no frame is over the limit")
                });
                assert!(
                    chunk.contains(&(frame.header_end - 1)),
                    "refused in chunk {chunk:?}, but the header ends at {}",
                    frame.header_end
                );
                // A header split across chunks is refused where the last chunk begins.
                assert_eq!(
                    chunk.start + frame_start,
                    frame.start.max(chunk.start),
                    "where the frame starts"
                );
                return;
            }
        }
    }
}

/// The first frame over the limit: where it starts and where its header ends.
#[derive(Debug)]
struct Frame {
    start: usize,
    header_end: usize,
}

/// Reads `stream` as consecutive frames (RFC 6455 section 5.2): a frame is over `limit`
/// when its payload length is; a data frame also when the fragmented message it continues
/// (opcode 0) has declared more than `limit` bytes in all. Control frames (opcodes 8 to
/// 15) may come between fragments and do not count. `None` when no complete header is
/// over the limit.
fn first_over_limit(stream: &[u8], limit: u64) -> Option<Frame> {
    let mut start = 0;
    let mut message_so_far: u64 = 0;
    loop {
        let first = *stream.get(start)?;
        let second = *stream.get(start + 1)?;
        let length_bytes = match second & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask_bytes = if second & 0x80 == 0 { 0 } else { 4 };
        let header_end = start + 2 + length_bytes + mask_bytes;
        let length_field = stream.get(start + 2..start + 2 + length_bytes)?;
        if header_end > stream.len() {
            return None;
        }
        let length = if length_bytes == 0 {
            u64::from(second & 0x7f)
        } else {
            length_field
                .iter()
                .fold(0u64, |n, byte| n << 8 | u64::from(*byte))
        };
        let fin = first & 0x80 != 0;
        let opcode = first & 0x0f;
        let counted = if opcode >= 8 {
            length
        } else if opcode == 0 {
            message_so_far.saturating_add(length)
        } else {
            length
        };
        if counted > limit {
            return Some(Frame { start, header_end });
        }
        if opcode < 8 {
            message_so_far = if fin { 0 } else { counted };
        }
        // A payload that runs past the end of the stream ends the reading.
        start = usize::try_from(length)
            .ok()
            .and_then(|length| header_end.checked_add(length))?;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_ws_scanner_corpus_replays() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ws_scanner");
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let path = entry.expect("a corpus entry").path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| frame_scanner(&bytes));
            assert!(outcome.is_ok(), "{} fails", path.display());
            count += 1;
        }
        assert!(count >= 10, "{}: only {count} inputs", dir.display());
    }

    #[test]
    fn the_reference_reading_finds_what_the_unit_tests_do() {
        // Limit 125; a 2-byte frame, then one declaring 126 bytes: refused at offset 8.
        let mut input = vec![0, 125, 1, 3];
        input.extend([0x82, 0x82, 0, 0, 0, 0, 1, 2]);
        input.extend([0x82, 0xfe, 0, 126, 0, 0, 0, 0]);
        let stream = input.get(4..).unwrap();
        let frame = first_over_limit(stream, 125).unwrap();
        assert_eq!((frame.start, frame.header_end), (8, 16));
        frame_scanner(&input);
    }
}
