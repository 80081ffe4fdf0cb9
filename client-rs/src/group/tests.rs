//! The group's write paths on large atoms (20,000 documents), without a server: a swap
//! writes exactly the keys it changed (the structural diff agrees with comparing every
//! entry, as the client did with a `BTreeMap`), remote changes and swaps reach watchers
//! in order, each exactly once, and a pending key keeps its local value until settled.

use std::sync::{Arc, Mutex};

use atomsync_proto::wire::Doc;
use atomsync_proto::{Packed, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{GroupShared, diff};
use crate::local::{LocalDb, Settlement};
use crate::{Map, Options};

/// Documents in the large atom.
const DOCS: u64 = 20_000;

fn key(index: u64) -> String {
    format!("doc:{index:06}")
}

fn value(index: u64, round: u64) -> Value {
    Value::map([
        ("n", Value::from(index)),
        ("round", Value::from(round)),
        ("tags", Value::set([Value::kw("a"), Value::kw("b")])),
    ])
}

fn doc(index: u64, version: u64, seq: u64, round: u64) -> Doc {
    Doc {
        key: key(index),
        version,
        seq,
        value: Some(Packed::from_value(&value(index, round))),
    }
}

/// A group of `DOCS` documents as the server sent them (nothing pending).
fn large_group() -> (tempfile::TempDir, Arc<GroupShared>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(LocalDb::open(&dir.path().join("store.db")).unwrap());
    let loaded = db.load("g").unwrap();
    let shared = Arc::new(GroupShared::new(
        "g".into(),
        db,
        loaded,
        Options::new("http://127.0.0.1:9/sync"),
    ));
    let docs: Vec<Doc> = (0..DOCS).map(|i| doc(i, 1, i + 1, 0)).collect();
    shared.apply(|db| db.apply_remote("g", docs, DOCS)).unwrap();
    assert_eq!(shared.snapshot().len() as u64, DOCS);
    (dir, shared)
}

/// The edits as the client computed them before: every entry of both maps compared.
fn full_comparison(old: &Map, new: &Map) -> Vec<(String, Option<Value>)> {
    let mut edits = Vec::new();
    for key in old.keys() {
        if !new.contains_key(key) {
            edits.push((key.clone(), None));
        }
    }
    for (key, value) in new {
        if old.get(key) != Some(value) {
            edits.push((key.clone(), Some(value.clone())));
        }
    }
    edits.sort_by(|a, b| a.0.cmp(&b.0));
    edits
}

fn decoded(edits: Vec<(String, Option<Packed>)>) -> Vec<(String, Option<Value>)> {
    edits
        .into_iter()
        .map(|(key, value)| (key, value.as_ref().map(Packed::to_value)))
        .collect()
}

#[test]
fn the_structural_diff_finds_what_comparing_every_entry_finds() {
    let base: Map = (0..DOCS).map(|i| (key(i), value(i, 0))).collect();
    let mut rng = StdRng::seed_from_u64(10);
    for round in 1..=30u64 {
        let mut next = base.clone();
        let edits = rng.random_range(0..40);
        for _ in 0..edits {
            let index = rng.random_range(0..DOCS + 100);
            match rng.random_range(0..4) {
                0 => {
                    next.remove(&key(index));
                }
                // The same value again: not a change.
                1 => {
                    next.insert(key(index), value(index, 0));
                }
                _ => {
                    next.insert(key(index), value(index, round));
                }
            }
        }
        assert_eq!(
            decoded(diff(&base, &next).unwrap()),
            full_comparison(&base, &next),
            "round {round}"
        );
    }
    // Maps that share nothing (a `reset` to a rebuilt map) compare entry by entry.
    let rebuilt: Map = (0..DOCS)
        .map(|i| (key(i), value(i, u64::from(i % 1000 == 0))))
        .collect();
    let edits = diff(&base, &rebuilt).unwrap();
    assert_eq!(edits.len(), 20);
    assert_eq!(decoded(edits), full_comparison(&base, &rebuilt));
}

#[test]
fn a_swap_on_a_large_atom_writes_only_the_keys_it_changed() {
    let (_dir, shared) = large_group();
    let before = shared.snapshot();
    let after = shared
        .swap(|map| {
            map.insert(key(7), value(7, 1));
            map.insert(key(8), value(8, 0)); // unchanged
            map.insert("new".into(), Value::from("x"));
            map.remove(&key(DOCS - 1));
        })
        .unwrap();
    assert_eq!(after.len() as u64, DOCS);
    assert_eq!(before.len() as u64, DOCS, "the old snapshot never changes");
    assert_eq!(before.get(&key(7)), Some(&value(7, 0)));
    let mut pending: Vec<(String, u64, Option<Value>)> = shared
        .db
        .pending_batch("g", 100, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|change| (change.key, change.base, change.value.map(|v| v.to_value())))
        .collect();
    pending.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        pending,
        vec![
            (key(7), 1, Some(value(7, 1))),
            (key(DOCS - 1), 1, None),
            ("new".to_owned(), 0, Some(Value::from("x"))),
        ]
    );
    assert_eq!(shared.status().pending, 3);
    // A swap that changes nothing writes nothing and keeps the same map.
    let same = shared.swap(|map| {
        map.insert(key(9), value(9, 0));
    });
    assert!(Arc::ptr_eq(&same.unwrap(), &after));
}

#[test]
fn watchers_see_every_change_of_a_large_atom_in_order_once() {
    let (_dir, shared) = large_group();
    let calls: Arc<Mutex<Vec<(Map, Map)>>> = Arc::default();
    let seen = calls.clone();
    shared.watchers.add(Arc::new(move |old: &Map, new: &Map| {
        // O(1) copies: the maps share their nodes.
        seen.lock().unwrap().push((old.clone(), new.clone()));
    }));
    let start = shared.snapshot();
    // Local swaps and remote batches, interleaved; one remote batch touches a pending key.
    shared
        .swap(|map| {
            map.insert(key(1), value(1, 1));
        })
        .unwrap();
    let remote = vec![
        doc(1, 2, DOCS + 1, 2),
        doc(2, 2, DOCS + 2, 2),
        doc(3, 2, DOCS + 3, 2),
    ];
    shared
        .apply(|db| db.apply_remote("g", remote, DOCS + 3))
        .unwrap();
    shared
        .swap(|map| {
            map.remove(&key(2));
        })
        .unwrap();
    // A remote batch that changes nothing visible (only the pending key) makes no call.
    shared
        .apply(|db| db.apply_remote("g", vec![doc(1, 3, DOCS + 4, 3)], DOCS + 4))
        .unwrap();
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 3);
    let mut previous = (*start).clone();
    let expected: [&[&str]; 3] = [
        &["doc:000001"],
        &["doc:000002", "doc:000003"],
        &["doc:000002"],
    ];
    for ((old, new), keys) in calls.iter().zip(expected) {
        assert_eq!(*old, previous, "each call starts where the last one ended");
        let changed: Vec<String> = full_comparison(old, new)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(changed, keys);
        previous = new.clone();
    }
    assert_eq!(previous, *shared.snapshot());
    // The pending key kept its local value through both remote changes.
    assert_eq!(shared.snapshot().get(&key(1)), Some(&value(1, 1)));
    assert_eq!(shared.snapshot().get(&key(3)), Some(&value(3, 2)));
}

#[test]
fn settling_on_a_large_atom_changes_only_the_settled_keys() {
    let (_dir, shared) = large_group();
    shared
        .swap(|map| {
            map.insert(key(10), value(10, 1));
            map.insert(key(11), value(11, 1));
            map.insert(key(12), value(12, 1));
        })
        .unwrap();
    let before = shared.snapshot();
    let mut sent = shared.db.pending_batch("g", 100, usize::MAX).unwrap();
    sent.sort_by(|a, b| a.key.cmp(&b.key));
    let mut sent = sent.into_iter();
    let (accepted, lost, merged) = (
        sent.next().unwrap(),
        sent.next().unwrap(),
        sent.next().unwrap(),
    );
    let settlements = [
        Settlement::Accepted {
            sent: accepted,
            version: 2,
        },
        // The server wins: its value comes back.
        Settlement::Conflict {
            sent: lost,
            current: Some(doc(11, 5, DOCS + 1, 5)),
            resolution: None,
        },
        // The resolver's answer is pushed on top of the server's version.
        Settlement::Conflict {
            sent: merged,
            current: Some(doc(12, 6, DOCS + 2, 6)),
            resolution: Some(Packed::from_value(&value(12, 7))),
        },
    ];
    shared.apply(|db| db.settle("g", &settlements)).unwrap();
    let after = shared.snapshot();
    let changed: Vec<(String, Option<Value>)> = full_comparison(&before, &after);
    assert_eq!(
        changed,
        vec![(key(11), Some(value(11, 5))), (key(12), Some(value(12, 7)))]
    );
    let left = shared.db.pending_batch("g", 100, usize::MAX).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].key.as_str(), left[0].base), ("doc:000012", 6));
    assert_eq!(shared.status().pending, 1);
}

#[test]
fn a_batch_that_changes_one_key_twice_ends_with_the_last_value() {
    let (_dir, shared) = large_group();
    let calls = Arc::new(Mutex::new(0));
    let counted = calls.clone();
    shared.watchers.add(Arc::new(move |_: &Map, _: &Map| {
        *counted.lock().unwrap() += 1;
    }));
    // Away and back in one batch (two frames of a busy group): the map ends as it began,
    // and no key holds the value in between.
    let away_and_back = vec![doc(5, 2, DOCS + 1, 9), doc(5, 3, DOCS + 2, 0)];
    shared
        .apply(|db| db.apply_remote("g", away_and_back, DOCS + 2))
        .unwrap();
    assert_eq!(shared.snapshot().get(&key(5)), Some(&value(5, 0)));
    let twice = vec![doc(6, 2, DOCS + 3, 1), doc(6, 3, DOCS + 4, 2)];
    shared
        .apply(|db| db.apply_remote("g", twice, DOCS + 4))
        .unwrap();
    assert_eq!(shared.snapshot().get(&key(6)), Some(&value(6, 2)));
    // A newer version holding the value the map already shows changes nothing: no call.
    shared
        .apply(|db| db.apply_remote("g", vec![doc(7, 2, DOCS + 5, 0)], DOCS + 5))
        .unwrap();
    assert_eq!(*calls.lock().unwrap(), 2);
}
