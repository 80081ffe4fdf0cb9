//! A catch-up round: the documents a subscriber missed, read from storage in pages and sent
//! back to its session as encoded `changes` frames.
//!
//! Each round runs in its own task, so the session keeps serving its other groups meanwhile.
//! A page is one consistent snapshot ([`Storage::pull_then`]) bounded by `upto`, the
//! hand-over point the group actor gave, encoded where it was read (for SQLite, on the
//! blocking pool, never on the event loop); reads never hold up the group's writers. The round hands its frames to the session
//! through a small bounded channel: a slow client slows its own catch-up, nothing else.
//!
//! Pages are bounded twice: by document count ([`PAGE_DOCS`], adjusted to the sizes seen so
//! a page stays near [`PAGE_BYTES`] in memory) and, when encoded, split into frames of about
//! [`FRAME_BYTES`], so a backlog of large values never becomes one giant frame.

use std::sync::Arc;

use atomsync_proto::wire::{Doc, encode_changes};
use atomsync_proto::{Encoding, ErrorCode, WireError};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::RequestError;
use crate::storage::{PullPage, Storage};

/// The most documents read in one page.
pub(super) const PAGE_DOCS: usize = 1000;
/// The fewest documents read in one page, however large they are.
const MIN_PAGE_DOCS: usize = 4;
/// What a page should hold in memory, about.
const PAGE_BYTES: usize = 8 << 20;
/// What one `changes` frame should carry, about (a single document may exceed it).
pub(super) const FRAME_BYTES: usize = 1 << 20;
/// What a document adds to a frame besides its key and value: names, version, seq.
const DOC_OVERHEAD: usize = 48;

/// What a round reports to its session.
#[derive(Debug)]
pub(super) struct CatchUpEvent {
    /// The group being caught up.
    pub(super) group: Arc<str>,
    /// The round, to tell its pages from those of a replaced round.
    pub(super) generation: u64,
    /// What happened.
    pub(super) step: Step,
}

/// One step of a round.
#[derive(Debug)]
pub(super) enum Step {
    /// An encoded `changes` frame ending at `seq`, to send as it is.
    Frame {
        /// The frame, in the subscription's encoding.
        bytes: Bytes,
        /// The seq of its last document.
        seq: u64,
    },
    /// Everything up to the hand-over point was sent; the cursor is `seq`.
    Done {
        /// The cursor after the round.
        seq: u64,
        /// The round started again from 0: `since` was below the group's floor.
        reset: bool,
    },
    /// Storage failed; the subscription ends with this error.
    Failed(WireError),
}

/// What a round reads: a group from `since` (exclusive) to `upto` (inclusive).
pub(super) struct Round {
    /// Where to read.
    pub(super) storage: Storage,
    /// The group.
    pub(super) group: Arc<str>,
    /// The cursor to start from.
    pub(super) since: u64,
    /// The actor's hand-over point: everything later arrives live.
    pub(super) upto: u64,
    /// The subscription's encoding.
    pub(super) encoding: Encoding,
    /// Tags the round's events.
    pub(super) generation: u64,
    /// The largest value, to size the first page.
    pub(super) max_value_bytes: usize,
}

/// Starts `round` on the current arbiter; its events go to `events`.
pub(super) fn spawn(round: Round, events: mpsc::Sender<CatchUpEvent>) -> AbortHandle {
    actix_web::rt::spawn(run(round, events)).abort_handle()
}

/// One page, read and encoded on a blocking thread.
struct Page {
    frames: Vec<(Bytes, u64)>,
    seq: u64,
    more: bool,
    reset: bool,
    docs: usize,
    bytes: usize,
}

async fn run(round: Round, events: mpsc::Sender<CatchUpEvent>) {
    let send = |step| {
        events.send(CatchUpEvent {
            group: round.group.clone(),
            generation: round.generation,
            step,
        })
    };
    let mut cursor = round.since;
    let mut reset = false;
    let mut limit = first_limit(round.max_value_bytes);
    let mut first = true;
    loop {
        let page = match read_page(&round, cursor, limit).await {
            Ok(page) => page,
            Err(error) => {
                let _ = send(Step::Failed(error)).await;
                return;
            }
        };
        if page.reset && !first {
            // The floor passed the cursor mid-round; reading on would start from 0 again
            // forever. The client subscribes again from its cursor.
            let error = WireError::new(
                ErrorCode::Unavailable,
                "catch-up: the group was compacted while catching up; subscribe again",
            );
            let _ = send(Step::Failed(error)).await;
            return;
        }
        first = false;
        reset |= page.reset;
        for (bytes, seq) in page.frames {
            if send(Step::Frame { bytes, seq }).await.is_err() {
                return; // The session is gone.
            }
        }
        cursor = page.seq;
        if !page.more {
            let _ = send(Step::Done { seq: cursor, reset }).await;
            return;
        }
        limit = next_limit(page.docs, page.bytes);
    }
}

async fn read_page(round: &Round, since: u64, limit: usize) -> Result<Page, WireError> {
    let group = round.group.clone();
    let encoding = round.encoding;
    // Encoded where the page was read: a page of large values never stalls the event loop.
    let encode = move |page: PullPage| {
        let bytes = page.docs.iter().map(doc_bytes).sum();
        let docs = page.docs.len();
        Page {
            frames: frames(&group, page.docs, encoding),
            seq: page.seq,
            more: page.more,
            reset: page.reset,
            docs,
            bytes,
        }
    };
    round
        .storage
        .pull_then(round.group.clone(), since, limit, round.upto, encode)
        .await
        // Same codes and messages as a failed pull.
        .map_err(|e| RequestError::from(e).to_wire())
}

/// The first page's size: small enough that a page of the largest values stays near
/// [`PAGE_BYTES`]; later pages follow the sizes actually seen.
fn first_limit(max_value_bytes: usize) -> usize {
    (PAGE_BYTES / max_value_bytes.max(1)).clamp(MIN_PAGE_DOCS, PAGE_DOCS)
}

/// The next page's size, from the last page's count and bytes.
fn next_limit(docs: usize, bytes: usize) -> usize {
    let average = (bytes / docs.max(1)).max(1);
    (PAGE_BYTES / average).clamp(MIN_PAGE_DOCS, PAGE_DOCS)
}

/// About what a document weighs in a frame.
fn doc_bytes(doc: &Doc) -> usize {
    doc.key.len() + doc.value.as_ref().map_or(0, |v| v.len()) + DOC_OVERHEAD
}

/// Splits a page into `changes` frames of about [`FRAME_BYTES`] each, in seq order; each
/// frame carries the seq of its last document.
fn frames(group: &str, docs: Vec<Doc>, encoding: Encoding) -> Vec<(Bytes, u64)> {
    let mut out = Vec::new();
    let mut chunk: Vec<Doc> = Vec::new();
    let mut chunk_bytes = 0;
    let mut flush = |chunk: &mut Vec<Doc>| {
        if let Some(seq) = chunk.last().map(|d| d.seq) {
            out.push((
                Bytes::from(encode_changes(group, chunk, seq, encoding)),
                seq,
            ));
        }
        chunk.clear();
    };
    for doc in docs {
        let size = doc_bytes(&doc);
        if !chunk.is_empty() && chunk_bytes + size > FRAME_BYTES {
            flush(&mut chunk);
            chunk_bytes = 0;
        }
        chunk_bytes += size;
        chunk.push(doc);
    }
    flush(&mut chunk);
    out
}

#[cfg(test)]
mod tests {
    use atomsync_proto::Packed;
    use atomsync_proto::wire::ServerFrame;

    use super::*;

    fn doc(seq: u64, value_len: usize) -> Doc {
        let value = atomsync_proto::Value::Bytes(vec![7; value_len]);
        Doc {
            key: format!("k{seq}"),
            version: 1,
            seq,
            value: Some(Packed::from_value(&value)),
        }
    }

    #[test]
    fn a_page_of_large_values_is_split_into_bounded_frames_in_order() {
        let docs: Vec<Doc> = (1..=10).map(|seq| doc(seq, 300 << 10)).collect();
        let out = frames("g", docs, Encoding::MsgPack);
        assert!(out.len() >= 3, "{} frames", out.len());
        let mut all = Vec::new();
        for (bytes, seq) in &out {
            assert!(bytes.len() <= FRAME_BYTES + (300 << 10), "{}", bytes.len());
            let ServerFrame::Changes {
                changes,
                seq: frame_seq,
                group,
            } = ServerFrame::decode(bytes, Encoding::MsgPack).unwrap()
            else {
                panic!()
            };
            assert_eq!((group.as_str(), frame_seq), ("g", *seq));
            assert_eq!(changes.last().unwrap().seq, *seq);
            all.extend(changes.iter().map(|d| d.seq));
        }
        assert_eq!(all, (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn small_documents_share_one_frame_and_a_huge_one_gets_its_own() {
        let docs = vec![doc(1, 10), doc(2, 10), doc(3, 2 << 20), doc(4, 10)];
        let seqs: Vec<u64> = frames("g", docs, Encoding::Json)
            .iter()
            .map(|(_, seq)| *seq)
            .collect();
        assert_eq!(seqs, vec![2, 3, 4]);
        assert!(frames("g", Vec::new(), Encoding::Json).is_empty());
    }

    #[test]
    fn page_sizes_follow_the_documents() {
        assert_eq!(first_limit(1 << 20), 8);
        assert_eq!(first_limit(100), PAGE_DOCS);
        assert_eq!(next_limit(8, 8 * 100), PAGE_DOCS);
        assert_eq!(next_limit(8, 8 << 20), 8);
        assert_eq!(next_limit(2, 100 << 20), MIN_PAGE_DOCS);
        assert_eq!(next_limit(0, 0), PAGE_DOCS);
    }
}
