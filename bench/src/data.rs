//! The data every workload and every baseline writes: the same keys and ~100-byte values,
//! as Atomsync changes (either encoding), as raw rows, and as pouchdb documents.
//!
//! Request bodies are built before a timed phase starts, so that the load generator spends
//! its time sending, not encoding.

use atomsync_proto::wire::{Change, Op, PushRequest};
use atomsync_proto::{Encoding, Packed, Value};

/// The key of document `index` under `prefix`.
pub fn key(prefix: &str, index: u64) -> String {
    format!("{prefix}:{index:07}")
}

/// Document `index`'s value: a small map, about 100 bytes as MessagePack.
pub fn value(index: u64) -> Value {
    Value::map([
        (
            "title",
            Value::from(format!("benchmark document {index:07}, a short to-do item")),
        ),
        ("n", Value::from(index)),
        ("done", Value::from(index.is_multiple_of(2))),
        ("tags", Value::list(["bench", "sync", "todo"])),
        ("owner", Value::from("alice@example.com")),
    ])
}

/// The same document as pouchdb-server stores it: the same fields, and `_id` = the key.
pub fn pouch_doc(prefix: &str, index: u64) -> serde_json::Value {
    serde_json::json!({
        "_id": key(prefix, index),
        "title": format!("benchmark document {index:07}, a short to-do item"),
        "n": index,
        "done": index.is_multiple_of(2),
        "tags": ["bench", "sync", "todo"],
        "owner": "alice@example.com",
    })
}

/// One change to write: key, base version, value bytes.
#[derive(Debug, Clone)]
pub struct RawChange {
    /// The key.
    pub key: String,
    /// The version the change claims to be based on.
    pub base: u64,
    /// The value, canonical MessagePack.
    pub value: Packed,
}

/// Changes for documents `range` under `prefix`, each with base `base(index)`.
pub fn changes(
    prefix: &str,
    range: std::ops::Range<u64>,
    base: impl Fn(u64) -> u64,
) -> Vec<RawChange> {
    range
        .map(|i| RawChange {
            key: key(prefix, i),
            base: base(i),
            value: Packed::from_value(&value(i)),
        })
        .collect()
}

/// A push request of `changes` to `group`.
pub fn push_request(group: &str, changes: &[RawChange]) -> PushRequest {
    PushRequest {
        group: group.to_owned(),
        changes: changes
            .iter()
            .map(|c| Change {
                key: c.key.clone(),
                base: c.base,
                op: Op::Set(c.value.clone()),
            })
            .collect(),
    }
}

/// `POST /sync` bodies: `changes` cut into requests of `per_request`.
pub fn push_bodies(
    group: &str,
    changes: &[RawChange],
    per_request: usize,
    encoding: Encoding,
) -> Vec<bytes::Bytes> {
    changes
        .chunks(per_request.max(1))
        .map(|chunk| push_request(group, chunk).encode(encoding).into())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_about_100_bytes() {
        for i in [0, 7, 123_456, 9_999_999] {
            let size = Packed::from_value(&value(i)).len();
            assert!((90..=120).contains(&size), "document {i}: {size} bytes");
        }
    }

    #[test]
    fn bodies_carry_every_change_once() {
        let changes = changes("k", 0..250, |_| 0);
        let bodies = push_bodies("g", &changes, 100, Encoding::Json);
        assert_eq!(bodies.len(), 3);
        let limits = atomsync_proto::Limits::default();
        let last = atomsync_proto::wire::UncheckedPush::decode(&bodies[2], Encoding::Json, &limits)
            .unwrap()
            .validate(&limits)
            .unwrap();
        assert_eq!(last.changes.len(), 50);
        assert_eq!(last.changes[0].key, key("k", 200));
    }
}
