//! Pages: what one page of a pull or a catch-up reads ([`PageQuery`]), who takes its
//! documents as they are read ([`PageSink`]), and how it ended ([`PageEnd`]).

use std::sync::Arc;

use atomsync_proto::wire::Doc;

/// What one page reads: documents of a group with `since < seq <= upto`, ascending by seq,
/// at most `limit` of them (and as many as the [`PageSink`] takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    /// The cursor (exclusive).
    pub since: u64,
    /// The last seq to read (inclusive): `u64::MAX` for everything.
    pub upto: u64,
    /// The most documents.
    pub limit: usize,
    /// A later page of a full pull (PROTOCOL.md section 8): the floor rule does not apply,
    /// `since` is read as it is even below the floor.
    pub full: bool,
}

impl PageQuery {
    /// Everything after `since`, at most `limit` documents, not part of a full pull.
    pub fn after(since: u64, limit: usize) -> PageQuery {
        PageQuery {
            since,
            upto: u64::MAX,
            limit,
            full: false,
        }
    }
}

/// Takes a page's documents as storage reads them, in `seq` order, on the thread or task
/// that reads (for SQLite, the blocking pool), so that heavy work such as encoding stays off
/// the event loop and a page is never held twice.
pub trait PageSink: Send + 'static {
    /// Takes `doc`, or answers false when the page is full (the document is not taken and
    /// the page ends with `more`). A sink must take the first document it is offered, so
    /// that paging always advances.
    fn offer(&mut self, doc: Doc) -> bool;
}

/// How a page ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageEnd {
    /// The cursor after the page: the last document's seq, or `since` (0 after a reset).
    pub seq: u64,
    /// More documents remain after `seq` (up to `upto`).
    pub more: bool,
    /// `since` was below the floor (and the query not `full`): the page started from 0.
    pub reset: bool,
    /// The group's floor in the page's snapshot (0: nothing compacted).
    pub floor: u64,
    /// The epoch the page was read under (on PostgreSQL, read in the page's snapshot). A
    /// caller that named the page with another epoch before reading it (the database went
    /// back in time meanwhile, and got a new one) must not send it: its seqs belong to the
    /// new epoch.
    pub epoch: Arc<str>,
}

/// One page of a pull or a catch-up, collected.
#[derive(Debug, Clone, PartialEq)]
pub struct PullPage {
    /// Documents with `since < seq <= upto`, ascending by seq, at most `limit`.
    pub docs: Vec<Doc>,
    /// The cursor after this page: the last doc's seq, or `since` (0 after a reset).
    pub seq: u64,
    /// More documents remain after `seq` (up to `upto`).
    pub more: bool,
    /// `since` was below the floor, so the page starts from 0.
    pub reset: bool,
    /// The group's floor (0: nothing compacted).
    pub floor: u64,
}

/// A [`PageSink`] that collects documents until about `max_bytes` of keys and values.
pub(super) struct Collect {
    pub(super) docs: Vec<Doc>,
    bytes: usize,
    max_bytes: usize,
}

impl Collect {
    pub(super) fn new(max_bytes: usize) -> Collect {
        Collect {
            docs: Vec::new(),
            bytes: 0,
            max_bytes,
        }
    }
}

impl PageSink for Collect {
    fn offer(&mut self, doc: Doc) -> bool {
        let size = doc.key.len() + doc.value.as_ref().map_or(0, |v| v.len()) + 48;
        if !self.docs.is_empty() && self.bytes + size > self.max_bytes {
            return false;
        }
        self.bytes += size;
        self.docs.push(doc);
        true
    }
}
