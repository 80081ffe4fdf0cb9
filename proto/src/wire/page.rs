//! [`PageWriter`]: a message that carries many documents (a pull page, a `changes` frame),
//! written one document at a time and bounded in bytes (PROTOCOL.md section 4).
//!
//! A server builds such a message as it reads the documents, never holding them and the
//! encoded message both: each document is encoded into the message and dropped. The writer
//! refuses a document that would take the message past its budget, unless the message has
//! none yet (a page always holds at least one document, whatever its size, so that paging
//! advances). The bytes are those of the chosen encoding, so a JSON page is bounded as
//! tightly as a MessagePack one.

use super::writer::Writer;
use super::{Doc, Encoding, write};

/// Bytes kept for what follows the documents (`seq`, `more`, `reset`, `floor` and the
/// closing brackets), so that the finished message stays within the budget.
const TRAILER: usize = 96;
/// The most documents one message holds (the list header's 16-bit form).
const MAX_DOCS: usize = u16::MAX as usize;

/// A pull response or a `changes` frame being written.
pub struct PageWriter {
    w: Writer,
    /// Where the map's header is (its length is known at the end).
    map_at: usize,
    /// Where the `changes` list's header is.
    list_at: usize,
    docs: usize,
    last_seq: Option<u64>,
    max_bytes: usize,
}

impl PageWriter {
    /// A pull response `{"group", "epoch", "changes", ...}` of at most about `max_bytes`.
    pub fn pull(group: &str, epoch: &str, encoding: Encoding, max_bytes: usize) -> PageWriter {
        let mut w = Writer::new(encoding, capacity(max_bytes));
        let map_at = w.map_later();
        w.key("group");
        w.str(group);
        w.key("epoch");
        w.str(epoch);
        PageWriter::start(w, map_at, max_bytes)
    }

    /// A `{"type": "changes", "group", "changes", "seq"}` frame of at most about `max_bytes`.
    pub fn changes(group: &str, encoding: Encoding, max_bytes: usize) -> PageWriter {
        let mut w = Writer::new(encoding, capacity(max_bytes));
        let map_at = w.map_later();
        w.key("type");
        w.str("changes");
        w.key("group");
        w.str(group);
        PageWriter::start(w, map_at, max_bytes)
    }

    fn start(mut w: Writer, map_at: usize, max_bytes: usize) -> PageWriter {
        w.key("changes");
        let list_at = w.list_later();
        PageWriter {
            w,
            map_at,
            list_at,
            docs: 0,
            last_seq: None,
            max_bytes: max_bytes.saturating_sub(TRAILER),
        }
    }

    /// Writes `doc` unless the message already holds a document and this one would take it
    /// past its budget (or it holds 65535): then writes nothing and answers false.
    pub fn offer(&mut self, doc: &Doc) -> bool {
        if self.docs >= MAX_DOCS {
            return false;
        }
        let before = self.w.len();
        write::doc(&mut self.w, doc);
        if self.docs > 0 && self.w.len() > self.max_bytes {
            self.w.truncate(before);
            return false;
        }
        self.docs += 1;
        self.last_seq = Some(doc.seq);
        true
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.w.len()
    }

    /// Documents written so far.
    pub fn docs(&self) -> usize {
        self.docs
    }

    /// True when no document was written.
    pub fn is_empty(&self) -> bool {
        self.docs == 0
    }

    /// The seq of the last document written.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Ends a pull response with the cursor `seq`, `more`, and `reset` and `floor` when
    /// they are set (true; above 0).
    pub fn finish_pull(mut self, seq: u64, more: bool, reset: bool, floor: u64) -> Vec<u8> {
        self.end_list();
        self.w.key("seq");
        self.w.uint(seq);
        self.w.key("more");
        self.w.bool(more);
        if reset {
            self.w.key("reset");
            self.w.bool(true);
        }
        if floor > 0 {
            self.w.key("floor");
            self.w.uint(floor);
        }
        self.w.end();
        let members = 5 + usize::from(reset) + usize::from(floor > 0);
        self.w.set_small_map_len(self.map_at, members);
        self.w.finish()
    }

    /// Ends a `changes` frame; its `seq` is the last document's (0 with none).
    pub fn finish_changes(mut self) -> Vec<u8> {
        self.end_list();
        self.w.key("seq");
        self.w.uint(self.last_seq.unwrap_or(0));
        self.w.end();
        self.w.set_small_map_len(self.map_at, 4);
        self.w.finish()
    }

    fn end_list(&mut self) {
        self.w.end();
        self.w.set_list_len(self.list_at, self.docs);
    }
}

/// The buffer to start with: grown as needed, never past about the budget.
fn capacity(max_bytes: usize) -> usize {
    max_bytes.min(64 << 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{PullResponse, ServerFrame, encode_changes};
    use crate::{Packed, Value};

    fn doc(seq: u64, len: usize) -> Doc {
        Doc {
            key: format!("k{seq}"),
            version: 1,
            seq,
            value: (len > 0).then(|| Packed::from_value(&Value::Bytes(vec![7; len]))),
        }
    }

    #[test]
    fn the_same_bytes_as_the_whole_message_writers() {
        for encoding in [Encoding::MsgPack, Encoding::Json] {
            for n in [0, 1, 15, 16, 17, 300] {
                let docs: Vec<Doc> = (1..=n).map(|s| doc(s, (s % 3) as usize * 10)).collect();
                let mut page = PageWriter::pull("g", "e", encoding, usize::MAX);
                let mut frame = PageWriter::changes("g", encoding, usize::MAX);
                for d in &docs {
                    assert!(page.offer(d) && frame.offer(d));
                }
                let whole = PullResponse {
                    group: "g".into(),
                    epoch: "e".into(),
                    changes: docs.clone(),
                    seq: n,
                    more: n % 2 == 0,
                    reset: n == 16,
                    floor: n / 3,
                };
                let streamed = page.finish_pull(n, n % 2 == 0, n == 16, n / 3);
                assert_eq!(streamed, whole.encode(encoding), "{encoding:?} {n}");
                assert_eq!(
                    PullResponse::decode(&streamed, encoding).unwrap(),
                    whole,
                    "{encoding:?} {n}"
                );
                let last = docs.last().map_or(0, |d| d.seq);
                assert_eq!(
                    frame.finish_changes(),
                    encode_changes("g", &docs, last, encoding)
                );
            }
        }
    }

    #[test]
    fn a_page_stops_at_its_budget_but_always_takes_one_document() {
        for encoding in [Encoding::MsgPack, Encoding::Json] {
            let mut page = PageWriter::changes("g", encoding, 10_000);
            assert!(page.offer(&doc(1, 50_000)), "the first, however large");
            assert!(!page.offer(&doc(2, 10)));
            assert_eq!(page.docs(), 1);
            let bytes = page.finish_changes();
            let ServerFrame::Changes { changes, seq, .. } =
                ServerFrame::decode(&bytes, encoding).unwrap()
            else {
                panic!()
            };
            assert_eq!((changes.len(), seq), (1, 1));

            let mut page = PageWriter::pull("g", "e", encoding, 4000);
            let mut taken = 0;
            while page.offer(&doc(taken + 1, 500)) {
                taken += 1;
            }
            assert!(taken >= 3, "{taken}");
            let bytes = page.finish_pull(taken, true, false, 0);
            assert!(bytes.len() <= 4000, "{} bytes", bytes.len());
            let decoded = PullResponse::decode(&bytes, encoding).unwrap();
            assert_eq!(decoded.changes.len() as u64, taken);
        }
    }
}
