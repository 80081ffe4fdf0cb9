//! One group's subscription on a connection: the hand-over from catch-up to live.
//!
//! [`Handover`] is the bookkeeping alone, kept free of sockets and actors so that every
//! case is tested directly. The group actor answered `Subscribe` with `upto`, the seq of the
//! last commit it streamed before registering the queue: catch-up sends what storage holds
//! up to `upto`, and every commit after `upto` reaches the queue. While catch-up runs, the
//! live frames of the group are held back (in order), then released after `subscribed`.
//! Frames that catch-up already covers (`seq <= upto`) are dropped, so the client sees each
//! change once, in `seq` order, with no gap.
//!
//! Holding frames back is bounded ([`CATCH_UP_BUFFER`]). A group that commits faster than a
//! long catch-up drains makes the subscription *lag*: the held frames are let go, and when
//! the round ends the session registers again for a new `upto` and catches up to it from
//! storage, which has everything the dropped frames carried.

use std::sync::Arc;

use actix::Addr;
use atomsync_proto::Encoding;
use atomsync_proto::wire::{ServerFrame, encode_changes};
use bytes::Bytes;
use tokio::task::AbortHandle;

use crate::actors::{GroupActor, LiveFrame};

/// Live frames held back per group while it catches up, before the subscription lags: as
/// many as the connection's queue holds, since held frames are queued frames moved aside.
pub(super) const CATCH_UP_BUFFER: usize = super::session::QUEUE_CAPACITY;

/// A live subscription of the connection: its actor, its catch-up task, its hand-over.
pub(super) struct Subscription {
    /// The group's actor, to register again or unregister.
    pub(super) addr: Addr<GroupActor>,
    /// The encoding the subscription streams in.
    pub(super) encoding: Encoding,
    /// Where the subscription is.
    pub(super) handover: Handover,
    /// The running catch-up round, stopped when the subscription is replaced or dropped.
    task: Option<AbortHandle>,
}

impl Subscription {
    /// A subscription whose first catch-up round is `task`.
    pub(super) fn new(
        addr: Addr<GroupActor>,
        encoding: Encoding,
        handover: Handover,
        task: AbortHandle,
    ) -> Subscription {
        Subscription {
            addr,
            encoding,
            handover,
            task: Some(task),
        }
    }

    /// The catch-up round now running.
    pub(super) fn set_task(&mut self, task: AbortHandle) {
        if let Some(old) = self.task.replace(task) {
            old.abort();
        }
    }

    /// The catch-up round sent its last event: its handle is let go, so that the finished
    /// task's memory (most of a KiB) is freed now, not when the subscription ends.
    pub(super) fn round_finished(&mut self) {
        self.task = None;
    }

    /// Stops the catch-up round, if one runs (a round that finished ignores this).
    pub(super) fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Where a subscription is between its `subscribe` and the live stream.
#[derive(Debug)]
pub(super) struct Handover {
    group: Arc<str>,
    /// Tells the current catch-up round's pages from those of a replaced one.
    generation: u64,
    /// The last seq sent to the client, or `since` before anything was sent.
    cursor: u64,
    /// `since` was past the actor's hand-over point: the first live frame after the cursor
    /// may begin at or below it (a commit that the client's cursor splits), and must be
    /// trimmed, since no change with `seq <= since` is ever sent.
    trim_next: bool,
    phase: Phase,
    /// Catch-up went back to 0 because `since` was below the group's floor.
    reset: bool,
}

#[derive(Debug)]
enum Phase {
    CatchingUp {
        upto: u64,
        held: Vec<Arc<LiveFrame>>,
        lagging: bool,
    },
    Live,
}

/// What to do when a catch-up round has sent its last page.
#[derive(Debug)]
pub(super) enum RoundEnd {
    /// Live frames were let go while catching up: register again, and catch up from
    /// `since` to the new hand-over point.
    Again {
        /// The cursor to continue from.
        since: u64,
    },
    /// Caught up: send `subscribed` with `seq` and `reset`, then `frames`, in order.
    Live {
        /// The cursor after catch-up.
        seq: u64,
        /// Catch-up started again from 0 (the floor passed `since`).
        reset: bool,
        /// Held-back live frames to send now, with their encoding.
        frames: Vec<(Encoding, Bytes)>,
    },
}

impl Handover {
    /// A subscription from `since`, registered with the actor at hand-over point `upto`.
    pub(super) fn new(group: Arc<str>, generation: u64, since: u64, upto: u64) -> Handover {
        Handover {
            group,
            generation,
            cursor: since,
            trim_next: since > upto,
            phase: Phase::CatchingUp {
                upto,
                held: Vec::new(),
                lagging: false,
            },
            reset: false,
        }
    }

    /// The catch-up round whose pages count.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// Caught up: no catch-up round of this subscription is running or due.
    pub(super) fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live)
    }

    /// A catch-up frame ending at `seq` was sent.
    pub(super) fn sent_page(&mut self, seq: u64) {
        self.cursor = seq;
    }

    /// A live frame from the queue: the bytes to send now, if any.
    pub(super) fn live(&mut self, frame: Arc<LiveFrame>) -> Option<(Encoding, Bytes)> {
        match &mut self.phase {
            Phase::Live => self.forward(frame),
            Phase::CatchingUp {
                upto,
                held,
                lagging,
            } => {
                if frame.seq <= *upto || *lagging {
                    // Covered by catch-up, or by the next round once lagging.
                    return None;
                }
                if held.len() >= CATCH_UP_BUFFER {
                    *lagging = true;
                    *held = Vec::new();
                    return None;
                }
                held.push(frame);
                None
            }
        }
    }

    /// The round ended with the cursor at `seq` (`reset`: it started again from 0).
    pub(super) fn round_done(&mut self, seq: u64, reset: bool) -> RoundEnd {
        self.cursor = seq;
        self.reset |= reset;
        let phase = std::mem::replace(&mut self.phase, Phase::Live);
        match phase {
            Phase::CatchingUp {
                lagging: true,
                upto,
                ..
            } => {
                self.phase = Phase::CatchingUp {
                    upto,
                    held: Vec::new(),
                    lagging: true,
                };
                RoundEnd::Again { since: self.cursor }
            }
            Phase::CatchingUp { held, .. } => {
                let seq = self.cursor;
                let frames = held
                    .into_iter()
                    .filter_map(|frame| self.forward(frame))
                    .collect();
                RoundEnd::Live {
                    seq,
                    reset: self.reset,
                    frames,
                }
            }
            Phase::Live => RoundEnd::Live {
                seq: self.cursor,
                reset: self.reset,
                frames: Vec::new(),
            },
        }
    }

    /// A new round after lagging: registered again at `upto`, its pages tagged `generation`.
    pub(super) fn next_round(&mut self, generation: u64, upto: u64) {
        self.generation = generation;
        self.trim_next = self.cursor > upto;
        self.phase = Phase::CatchingUp {
            upto,
            held: Vec::new(),
            lagging: false,
        };
    }

    /// Sends a live frame unless the client has it already.
    fn forward(&mut self, frame: Arc<LiveFrame>) -> Option<(Encoding, Bytes)> {
        if frame.seq <= self.cursor {
            return None;
        }
        let bytes = if std::mem::take(&mut self.trim_next) {
            trim(&self.group, &frame, self.cursor)
        } else {
            frame.bytes.clone()
        };
        self.cursor = frame.seq;
        Some((frame.encoding, bytes))
    }
}

/// The frame without its documents at or below `cursor`. Rare (a client whose cursor is
/// ahead of the actor, see [`Handover::trim_next`]), so decoding the shared bytes is fine.
fn trim(group: &str, frame: &LiveFrame, cursor: u64) -> Bytes {
    match ServerFrame::decode(&frame.bytes, frame.encoding) {
        Ok(ServerFrame::Changes { changes, seq, .. }) => {
            if changes.iter().all(|doc| doc.seq > cursor) {
                return frame.bytes.clone();
            }
            let kept: Vec<_> = changes.into_iter().filter(|doc| doc.seq > cursor).collect();
            Bytes::from(encode_changes(group, &kept, seq, frame.encoding))
        }
        other => {
            // The actor encoded these bytes itself; sending them as they are loses nothing.
            tracing::error!(group, ?other, "a live frame does not decode as `changes`");
            frame.bytes.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use atomsync_proto::Packed;
    use atomsync_proto::wire::Doc;

    use super::*;

    fn doc(seq: u64) -> Doc {
        Doc {
            key: format!("k{seq}"),
            version: 1,
            seq,
            value: Some(Packed::from_value(&seq.into())),
        }
    }

    /// A commit's live frame with documents `first..=last`.
    fn live(first: u64, last: u64) -> Arc<LiveFrame> {
        let docs: Vec<Doc> = (first..=last).map(doc).collect();
        let bytes = encode_changes("g", &docs, last, Encoding::Json);
        Arc::new(LiveFrame {
            group: "g".into(),
            seq: last,
            encoding: Encoding::Json,
            bytes: bytes.into(),
        })
    }

    fn seqs(bytes: &Bytes) -> Vec<u64> {
        match ServerFrame::decode(bytes, Encoding::Json).unwrap() {
            ServerFrame::Changes { changes, .. } => changes.iter().map(|d| d.seq).collect(),
            other => panic!("{other:?}"),
        }
    }

    fn live_end(end: RoundEnd) -> (u64, bool, Vec<u64>) {
        match end {
            RoundEnd::Live { seq, reset, frames } => (
                seq,
                reset,
                frames.iter().flat_map(|(_, bytes)| seqs(bytes)).collect(),
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn frames_during_catch_up_are_held_then_released_once_in_order() {
        let mut h = Handover::new("g".into(), 1, 0, 5);
        assert!(h.live(live(4, 5)).is_none(), "covered by catch-up: dropped");
        assert!(h.live(live(6, 6)).is_none(), "held");
        assert!(h.live(live(7, 8)).is_none(), "held");
        h.sent_page(3);
        h.sent_page(5);
        let (seq, reset, sent) = live_end(h.round_done(5, false));
        assert_eq!((seq, reset), (5, false));
        assert_eq!(sent, vec![6, 7, 8]);
        assert!(matches!(h.phase, Phase::Live));
        assert!(h.live(live(8, 8)).is_none(), "never twice");
        let (_, bytes) = h.live(live(9, 10)).unwrap();
        assert_eq!(seqs(&bytes), vec![9, 10]);
        assert_eq!(h.cursor, 10);
    }

    #[test]
    fn an_empty_catch_up_reports_since() {
        let mut h = Handover::new("g".into(), 1, 7, 7);
        let (seq, _, sent) = live_end(h.round_done(7, false));
        assert_eq!((seq, sent), (7, vec![]));
    }

    #[test]
    fn a_reset_round_reports_its_cursor_and_the_flag() {
        let mut h = Handover::new("g".into(), 1, 3, 20);
        h.sent_page(12);
        let (seq, reset, _) = live_end(h.round_done(12, true));
        assert_eq!((seq, reset), (12, true));
    }

    #[test]
    fn too_many_held_frames_lag_into_another_round() {
        let mut h = Handover::new("g".into(), 1, 0, 10);
        for seq in 11..11 + CATCH_UP_BUFFER as u64 + 5 {
            assert!(h.live(live(seq, seq)).is_none());
        }
        h.sent_page(10);
        let RoundEnd::Again { since } = h.round_done(10, false) else {
            panic!("expected another round")
        };
        assert_eq!(since, 10);
        // Frames queued before the new registration are covered by the new round.
        h.next_round(2, 2000);
        assert_eq!(h.generation(), 2);
        assert!(h.live(live(1500, 1500)).is_none());
        assert!(h.live(live(2001, 2001)).is_none(), "held");
        h.sent_page(2000);
        let (seq, _, sent) = live_end(h.round_done(2000, false));
        assert_eq!((seq, sent), (2000, vec![2001]));
    }

    #[test]
    fn a_cursor_ahead_of_the_actor_trims_the_commit_it_splits() {
        // The client claims seq 5; the actor had streamed 3; a commit of 4..=7 follows.
        let mut h = Handover::new("g".into(), 1, 5, 3);
        assert!(h.live(live(4, 7)).is_none(), "held");
        let (seq, _, sent) = live_end(h.round_done(5, false));
        assert_eq!(seq, 5);
        assert_eq!(sent, vec![6, 7], "no change with seq <= since");
        let (_, bytes) = h.live(live(8, 9)).unwrap();
        assert_eq!(seqs(&bytes), vec![8, 9]);
    }

    #[test]
    fn frames_reaching_a_live_subscription_skip_what_was_sent() {
        let mut h = Handover::new("g".into(), 1, 0, 0);
        let _ = h.round_done(0, false);
        let (_, bytes) = h.live(live(1, 2)).unwrap();
        assert_eq!(seqs(&bytes), vec![1, 2]);
        assert!(h.live(live(1, 2)).is_none());
    }
}
