//! A catch-up round: the documents a subscriber missed, read from storage in pages and sent
//! back to its session as encoded `changes` frames.
//!
//! Each round runs in its own task, so the session keeps serving its other groups meanwhile.
//! A page is one consistent snapshot ([`Storage::pull_into`]) bounded by `upto`, the
//! hand-over point the group actor gave. Its documents are encoded into frames as they are
//! read (for SQLite, on the blocking pool, never on the event loop), each dropped once
//! written: a page never exists twice in memory. Reads never hold up the group's writers.
//! The round hands its frames to the session through a small bounded channel: a slow
//! client slows its own catch-up, nothing else.
//!
//! Pages are bounded three ways (PROTOCOL.md section 4): at most [`PAGE_DOCS`] documents,
//! about [`PAGE_BYTES`] of encoded frames, and frames of about [`FRAME_BYTES`] each; a
//! frame always holds at least one document, whatever its size.
//!
//! Compaction (PROTOCOL.md section 8): a round from `since = 0`, or one whose first page
//! was reset (its `since` was below the floor), is a full pull: its later pages read on
//! from their cursor whatever the floor (`full`), so that it never starts over. If the
//! floor rises above the first page's while it runs (or, in another round, above its
//! cursor), tombstones it has not sent may be gone, and the client could keep a deleted
//! key: the round fails (`unavailable`) and the client subscribes again, from its cursor,
//! which is then below the floor.

use std::sync::Arc;

use atomsync_proto::wire::{Doc, PageWriter};
use atomsync_proto::{Encoding, ErrorCode, WireError};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::error::RequestError;
use crate::storage::{PageQuery, PageSink, Storage};

/// The most documents read in one page.
pub(super) const PAGE_DOCS: usize = 1000;
/// What a page's encoded frames should hold, about.
pub(super) const PAGE_BYTES: usize = 8 << 20;
/// What one `changes` frame should carry, about (a single document may exceed it).
pub(super) const FRAME_BYTES: usize = 1 << 20;

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
        /// The group's floor (0: none).
        floor: u64,
        /// The epoch every page of the round was read under.
        epoch: Arc<str>,
    },
    /// Storage failed, or the group was compacted under the round; the subscription ends
    /// with this error.
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
}

/// Starts `round` on the current arbiter; its events go to `events`.
pub(super) fn spawn(round: Round, events: mpsc::Sender<CatchUpEvent>) -> AbortHandle {
    actix_web::rt::spawn(run(round, events)).abort_handle()
}

/// A page's frames, encoded as storage reads the documents.
struct Frames {
    group: Arc<str>,
    encoding: Encoding,
    current: Option<PageWriter>,
    done: Vec<(Bytes, u64)>,
    /// Bytes of the frames in `done`.
    bytes: usize,
}

impl Frames {
    fn new(group: Arc<str>, encoding: Encoding) -> Frames {
        Frames {
            group,
            encoding,
            current: None,
            done: Vec::new(),
            bytes: 0,
        }
    }

    fn close_frame(&mut self) {
        if let Some(frame) = self.current.take()
            && let Some(seq) = frame.last_seq()
        {
            let bytes = frame.finish_changes();
            self.bytes += bytes.len();
            self.done.push((Bytes::from(bytes), seq));
        }
    }

    /// Every frame of the page, in seq order.
    fn finish(mut self) -> Vec<(Bytes, u64)> {
        self.close_frame();
        self.done
    }
}

impl PageSink for Frames {
    fn offer(&mut self, doc: Doc) -> bool {
        let written = self.bytes + self.current.as_ref().map_or(0, PageWriter::len);
        let empty = self.done.is_empty() && self.current.as_ref().is_none_or(PageWriter::is_empty);
        if !empty && written >= PAGE_BYTES {
            return false;
        }
        let (group, encoding) = (&self.group, self.encoding);
        let frame = self
            .current
            .get_or_insert_with(|| PageWriter::changes(group, encoding, FRAME_BYTES));
        if frame.offer(&doc) {
            return true;
        }
        self.close_frame();
        let mut frame = PageWriter::changes(&self.group, self.encoding, FRAME_BYTES);
        let taken = frame.offer(&doc);
        self.current = Some(frame);
        taken
    }
}

async fn run(round: Round, events: mpsc::Sender<CatchUpEvent>) {
    let send = |step| {
        events.send(CatchUpEvent {
            group: round.group.clone(),
            generation: round.generation,
            step,
        })
    };
    let mut query = PageQuery {
        since: round.since,
        upto: round.upto,
        limit: PAGE_DOCS,
        full: false,
    };
    let mut first: Option<(bool, u64)> = None;
    // Every page of a round, and its `subscribed` frame, names seqs with one epoch.
    let epoch = round.storage.epoch_arc();
    loop {
        let frames = Frames::new(round.group.clone(), round.encoding);
        let page = round
            .storage
            .pull_into(round.group.clone(), query, frames)
            .await
            // Same codes and messages as a failed pull.
            .map_err(|e| RequestError::from(e).to_wire());
        let (frames, end) = match page {
            Ok(page) => page,
            Err(error) => {
                let _ = send(Step::Failed(error)).await;
                return;
            }
        };
        if end.epoch != epoch {
            // The database got a new epoch under the round (PostgreSQL: another instance
            // renewed it): its seqs are not the ones the client's cursor counts.
            let error = WireError::new(
                ErrorCode::Unavailable,
                "catch-up: the database got a new epoch while catching up; subscribe again",
            );
            let _ = send(Step::Failed(error)).await;
            return;
        }
        let later = first.is_some();
        let (reset, floor) = *first.get_or_insert((end.reset, end.floor));
        // A full catch-up that sees the floor rise, or another whose cursor fell below it.
        let compacted_under = if query.full {
            end.floor > floor
        } else {
            later && end.reset
        };
        if compacted_under {
            // Tombstones after the cursor may be gone: a client that kept reading would
            // keep a key deleted there. It subscribes again from its cursor, below the
            // floor now, which starts a full catch-up.
            let error = WireError::new(
                ErrorCode::Unavailable,
                "catch-up: the group was compacted while catching up; subscribe again",
            );
            let _ = send(Step::Failed(error)).await;
            return;
        }
        // A full catch-up (from 0, or reset to 0) reads its later pages below the floor.
        query.full |= reset || round.since == 0;
        for (bytes, seq) in frames.finish() {
            if send(Step::Frame { bytes, seq }).await.is_err() {
                return; // The session is gone.
            }
        }
        query.since = end.seq;
        if !end.more {
            let _ = send(Step::Done {
                seq: end.seq,
                reset,
                floor: end.floor,
                epoch,
            })
            .await;
            return;
        }
    }
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

    /// Offers `docs` as storage would, until the page is full; the frames and how many
    /// documents were taken.
    fn page(docs: Vec<Doc>, encoding: Encoding) -> (Vec<(Bytes, u64)>, usize) {
        let mut frames = Frames::new("g".into(), encoding);
        let mut taken = 0;
        for d in docs {
            if !frames.offer(d) {
                break;
            }
            taken += 1;
        }
        (frames.finish(), taken)
    }

    fn seqs(out: &[(Bytes, u64)], encoding: Encoding) -> Vec<u64> {
        let mut all = Vec::new();
        for (bytes, seq) in out {
            let ServerFrame::Changes {
                changes,
                seq: frame_seq,
                group,
            } = ServerFrame::decode(bytes, encoding).unwrap()
            else {
                panic!()
            };
            assert_eq!((group.as_str(), frame_seq), ("g", *seq));
            assert_eq!(changes.last().unwrap().seq, *seq);
            all.extend(changes.iter().map(|d| d.seq));
        }
        all
    }

    #[test]
    fn a_page_of_large_values_is_split_into_bounded_frames_in_order() {
        for encoding in [Encoding::MsgPack, Encoding::Json] {
            let docs: Vec<Doc> = (1..=10).map(|seq| doc(seq, 300 << 10)).collect();
            let (out, taken) = page(docs, encoding);
            assert_eq!(taken, 10);
            assert!(out.len() >= 3, "{} frames", out.len());
            for (bytes, _) in &out {
                assert!(bytes.len() <= FRAME_BYTES, "{}", bytes.len());
            }
            assert_eq!(seqs(&out, encoding), (1..=10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn small_documents_share_one_frame_and_a_huge_one_gets_its_own() {
        let docs = vec![doc(1, 10), doc(2, 10), doc(3, 2 << 20), doc(4, 10)];
        let (out, _) = page(docs, Encoding::Json);
        let ends: Vec<u64> = out.iter().map(|(_, seq)| *seq).collect();
        assert_eq!(ends, vec![2, 3, 4]);
        assert!(page(Vec::new(), Encoding::Json).0.is_empty());
    }

    #[test]
    fn a_page_stops_near_its_byte_budget_but_takes_one_document_whatever_its_size() {
        // Seventy 1 MiB documents: a page takes about PAGE_BYTES of them, never all.
        let docs: Vec<Doc> = (1..=70).map(|seq| doc(seq, 1 << 20)).collect();
        let (out, taken) = page(docs, Encoding::MsgPack);
        let bytes: usize = out.iter().map(|(b, _)| b.len()).sum();
        assert!((7..=9).contains(&taken), "{taken} documents");
        assert!(bytes <= PAGE_BYTES + (1 << 20) + 4096, "{bytes} bytes");
        let (out, taken) = page(vec![doc(1, 20 << 20), doc(2, 1)], Encoding::MsgPack);
        assert_eq!((taken, out.len()), (1, 1), "one huge document alone");
    }
}
