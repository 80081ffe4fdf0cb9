//! [`ChangesBatch`]: `changes` frames that arrived together, gathered so that each group
//! stores them in one transaction and publishes one new map.
//!
//! A server under load commits thousands of changes a second, one frame per commit. Stored
//! one frame at a time, each would pay a transaction, a new map version and a round of
//! watcher calls, and the client would fall behind the server. Frames that arrive while a
//! store runs (see `applier`) gather in a batch, up to a bound, and are stored together:
//! the batch grows with the backlog, as the server's group commit does, so the client
//! keeps up at any rate its disk allows. Watchers therefore see every change, in order,
//! but one call may carry the changes of several frames.

use super::round::check_frame;
use crate::ClientError;
use crate::local::Received;

/// The most documents stored in one transaction: bounds the memory a batch holds and how
/// long the group's write lock is held (a local `swap` waits for it).
pub(crate) const MAX_BATCH_DOCS: usize = 10_000;

/// The most value bytes stored in one transaction, for the same reasons.
const MAX_BATCH_BYTES: usize = 16 << 20;

/// The frames of one batch, per group in the order they came.
#[derive(Debug, Default)]
pub(crate) struct ChangesBatch {
    /// Per group: its documents in arrival order, and the highest cursor its frames
    /// carried.
    groups: Vec<GroupChanges>,
    docs: usize,
    bytes: usize,
}

/// One group's share of a batch.
#[derive(Debug)]
pub(crate) struct GroupChanges {
    pub(crate) group: String,
    /// Its frames' documents, frame by frame (kept apart: no copying into one vector).
    pub(crate) frames: Vec<Vec<Received>>,
    pub(crate) seq: u64,
}

impl GroupChanges {
    /// Every document, in arrival order.
    pub(crate) fn docs(self) -> impl Iterator<Item = Received> {
        self.frames.into_iter().flatten()
    }
}

impl ChangesBatch {
    /// Adds one frame after checking it (a frame that breaks the ordering rules is refused
    /// whole, and the frames before it stay in the batch).
    pub(crate) fn add(
        &mut self,
        group: String,
        docs: Vec<Received>,
        seq: u64,
    ) -> Result<(), ClientError> {
        check_frame(docs.iter().map(|received| &received.doc), seq)?;
        self.docs += docs.len();
        self.bytes += docs
            .iter()
            .map(|Received { doc, .. }| {
                doc.key.len() + doc.value.as_ref().map_or(0, |value| value.len())
            })
            .sum::<usize>();
        match self
            .groups
            .iter_mut()
            .find(|changes| changes.group == group)
        {
            Some(changes) => {
                changes.frames.push(docs);
                // A subscription's frames come in ascending `seq`; the maximum also holds
                // when a subscription was restarted from a lower cursor meanwhile (the
                // store keeps the cursor from going back, and skips older documents).
                changes.seq = changes.seq.max(seq);
            }
            None => self.groups.push(GroupChanges {
                group,
                frames: vec![docs],
                seq,
            }),
        }
        Ok(())
    }

    /// True when no frame is in it.
    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// True when no more frames should join.
    pub(crate) fn is_full(&self) -> bool {
        self.docs >= MAX_BATCH_DOCS || self.bytes >= MAX_BATCH_BYTES
    }

    /// The batch per group.
    pub(crate) fn into_groups(self) -> Vec<GroupChanges> {
        self.groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use atomsync_proto::wire::Doc;
    use atomsync_proto::{Packed, Value};

    fn doc(key: &str, seq: u64) -> Received {
        Received::from(Doc {
            key: key.to_owned(),
            version: 1,
            seq,
            value: Some(Packed::from_value(&Value::from(seq))),
        })
    }

    #[test]
    fn frames_gather_per_group_in_arrival_order() {
        let mut batch = ChangesBatch::default();
        batch
            .add("a".into(), vec![doc("x", 1), doc("y", 2)], 2)
            .unwrap();
        batch.add("b".into(), vec![doc("x", 7)], 7).unwrap();
        batch.add("a".into(), vec![doc("x", 3)], 3).unwrap();
        batch.add("a".into(), Vec::new(), 5).unwrap();
        let groups = batch.into_groups();
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[1].group.as_str(), groups[1].seq), ("b", 7));
        let first = groups.into_iter().next().unwrap();
        assert_eq!((first.group.as_str(), first.seq), ("a", 5));
        let seqs: Vec<u64> = first.docs().map(|received| received.doc.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3]);
    }

    #[test]
    fn a_frame_out_of_order_is_refused_and_the_rest_kept() {
        let mut batch = ChangesBatch::default();
        batch.add("a".into(), vec![doc("x", 1)], 1).unwrap();
        assert!(
            batch
                .add("a".into(), vec![doc("y", 4), doc("z", 3)], 4)
                .is_err()
        );
        assert!(batch.add("a".into(), vec![doc("y", 9)], 8).is_err());
        let first = batch.into_groups().into_iter().next().unwrap();
        assert_eq!(first.seq, 1);
        assert_eq!(first.docs().count(), 1);
    }

    #[test]
    fn a_batch_is_bounded_by_documents() {
        let mut batch = ChangesBatch::default();
        let docs: Vec<Received> = (1..=MAX_BATCH_DOCS as u64 - 1)
            .map(|seq| doc("k", seq))
            .collect();
        batch.add("a".into(), docs, MAX_BATCH_DOCS as u64).unwrap();
        assert!(!batch.is_full());
        batch
            .add(
                "a".into(),
                vec![doc("k", MAX_BATCH_DOCS as u64 + 1)],
                MAX_BATCH_DOCS as u64 + 1,
            )
            .unwrap();
        assert!(batch.is_full());
    }
}
