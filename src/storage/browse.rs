//! What operators' tools read beside the sync protocol (the admin API, `GET /sync/doc`):
//! groups with their counts, and a group's documents in key order. The shapes every
//! backend answers with.

use atomsync_proto::wire::Doc;

/// A group as stored, with its document counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStats {
    /// The group's name.
    pub name: String,
    /// The seq of its latest accepted write.
    pub seq: u64,
    /// The highest seq among removed tombstones (0: none removed).
    pub floor: u64,
    /// Live documents.
    pub documents: u64,
    /// Tombstones.
    pub tombstones: u64,
}

/// A page of documents in key order.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyPage {
    /// Documents ascending by key (byte order), tombstones only when asked for.
    pub docs: Vec<Doc>,
    /// More documents follow the last one.
    pub more: bool,
}

/// What to browse: which keys, how many, how many bytes.
#[derive(Debug, Clone)]
pub struct KeyRange {
    /// Keys after this one (exclusive); `None` from the first.
    pub after: Option<String>,
    /// Only keys that start with this.
    pub prefix: String,
    /// Include tombstones.
    pub tombstones: bool,
    /// At most this many documents.
    pub limit: usize,
    /// Add no document that would take the keys and values past this many bytes (a page
    /// always holds at least one document when one remains, whatever its size).
    pub max_bytes: usize,
}
