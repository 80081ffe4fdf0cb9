//! The native client on a large atom (20,000 documents) against the real server: the same
//! behaviour as on a small one, now that the map is persistent and `changes` frames are
//! stored in batches. A first sync brings every document; live changes reach a watcher
//! in order, each exactly once, though one call may carry several; offline writes survive
//! a client restart and conflicts go through the resolver. Sized to take a few seconds in
//! a debug build.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use atomsync_client::{DiffItem, Map, SyncedAtom, Value};

use super::{Client, eventually, in_sync, options, restart, stop};
use crate::common::TestServer;

/// Documents in the large atom.
const DOCS: u64 = 20_000;

fn key(index: u64) -> String {
    format!("doc:{index:06}")
}

fn doc(index: u64, round: u64) -> Value {
    Value::map([("n", Value::from(index)), ("round", Value::from(round))])
}

/// Writes the large atom through `atom` and waits until the server has it.
async fn fill(atom: &SyncedAtom) {
    atom.swap(|map| {
        for index in 0..DOCS {
            map.insert(key(index), doc(index, 0));
        }
    })
    .unwrap();
    in_sync(atom).await;
}

/// Which keys differ between two maps.
fn changed_keys(old: &Map, new: &Map) -> BTreeSet<String> {
    old.diff(new)
        .map(|item| match item {
            DiffItem::Add(key, _)
            | DiffItem::Remove(key, _)
            | DiffItem::Update { new: (key, _), .. } => key.clone(),
        })
        .collect()
}

/// A fresh client syncs every document; then live changes (updates, deletes, new keys,
/// some keys changed several times) reach its watcher in order and exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_atom_syncs_and_its_watchers_see_every_live_change_in_order() {
    let server = TestServer::start();
    let (a, b) = (Client::new(), Client::new());
    let atom_a = a.atom(&server, "l1-large");
    fill(&atom_a).await;
    let atom_b = b.atom(&server, "l1-large");
    atom_b.ready().await;
    assert!(atom_b.status().online(), "{:?}", atom_b.status());
    assert_eq!(
        atom_b.snapshot().len() as u64,
        DOCS,
        "ready after the first sync"
    );
    assert_eq!(*atom_b.snapshot(), *atom_a.snapshot());

    let calls: Arc<Mutex<Vec<(Map, Map)>>> = Arc::default();
    let seen = calls.clone();
    let start = atom_b.snapshot();
    // Maps share their nodes: keeping every version costs little.
    let _watch =
        atom_b.watch(move |old, new| seen.lock().unwrap().push((old.clone(), new.clone())));
    let mut expected = BTreeSet::new();
    for round in 1..=5 {
        for index in 0..40 {
            atom_a.assoc(key(index * 7), doc(index * 7, round)).unwrap();
            expected.insert(key(index * 7));
        }
    }
    for index in 0..20 {
        atom_a.dissoc(&key(DOCS - 1 - index)).unwrap();
        expected.insert(key(DOCS - 1 - index));
        atom_a.assoc(format!("new:{index}"), index).unwrap();
        expected.insert(format!("new:{index}"));
    }
    in_sync(&atom_a).await;
    eventually("b has every change", || {
        *atom_b.snapshot() == *atom_a.snapshot()
    })
    .await;

    let calls = calls.lock().unwrap();
    let mut previous = (*start).clone();
    let mut covered = BTreeSet::new();
    let mut rounds_seen = Vec::new();
    for (old, new) in calls.iter() {
        assert_eq!(*old, previous, "each call starts where the last one ended");
        let keys = changed_keys(old, new);
        assert!(!keys.is_empty(), "a call without a change");
        covered.extend(keys);
        rounds_seen.push(
            new.get(&key(0))
                .and_then(|value| value.get("round").cloned()),
        );
        previous = new.clone();
    }
    assert_eq!(previous, *atom_b.snapshot());
    assert_eq!(
        covered, expected,
        "every changed key, and no other, reached the watcher"
    );
    // In order: a key changed in rounds 1..5 is never seen going back.
    let rounds: Vec<i64> = rounds_seen
        .into_iter()
        .map(|round| round.and_then(|r| r.as_i64()).unwrap_or(-1))
        .collect();
    assert!(
        rounds.windows(2).all(|pair| pair[0] <= pair[1]),
        "{rounds:?}"
    );
    assert_eq!(rounds.last(), Some(&5));
}

/// Offline on a large atom: writes survive a client restart, and when the server is back
/// they converge, a concurrent edit of one key merged by the resolver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_writes_and_conflicts_on_a_large_atom_settle_as_on_a_small_one() {
    let mut server = TestServer::start();
    let union = |_key: &str, local: Option<&Value>, current: Option<&Value>| -> Option<Value> {
        let items = |value: Option<&Value>| {
            value
                .and_then(Value::as_set)
                .map(<[Value]>::to_vec)
                .unwrap_or_default()
        };
        let mut merged = items(current);
        for item in items(local) {
            if !merged.contains(&item) {
                merged.push(item);
            }
        }
        Some(Value::Set(merged))
    };
    let (a, b) = (Client::new(), Client::new());
    let atom_a = a.atom_with("l2-offline", options(&server).resolver(union));
    fill(&atom_a).await;
    atom_a
        .assoc("tags", Value::set([Value::kw("home")]))
        .unwrap();
    in_sync(&atom_a).await;
    let atom_b = b.atom_with("l2-offline", options(&server).resolver(union));
    in_sync(&atom_b).await;
    assert_eq!(*atom_b.snapshot(), *atom_a.snapshot());

    stop(&mut server);
    let add_tag = |tag: &'static str| {
        move |map: &mut Map| {
            if let Some(Value::Set(items)) = map.get_mut("tags") {
                items.push(Value::kw(tag));
            }
        }
    };
    atom_a.swap(add_tag("work")).unwrap();
    atom_a
        .swap(|map| {
            for index in 0..50 {
                map.insert(key(index), doc(index, 1));
            }
        })
        .unwrap();
    atom_b.swap(add_tag("garden")).unwrap();
    atom_b
        .swap(|map| {
            for index in 100..150 {
                map.remove(&key(index));
                map.insert(format!("b:{index}"), doc(index, 2));
            }
        })
        .unwrap();
    assert_eq!(atom_b.status().pending, 101);
    drop(atom_b);
    let b = b.restart().await;
    let atom_b = b.atom_with("l2-offline", options(&server).resolver(union));
    assert_eq!(
        atom_b.status().pending,
        101,
        "offline writes survived the restart"
    );
    assert_eq!(
        atom_b.snapshot().len() as u64,
        DOCS + 1,
        "50 deleted, 50 added"
    );

    restart(&mut server);
    let tags = |atom: &SyncedAtom| -> BTreeSet<String> {
        atom.get("tags")
            .and_then(|tags| {
                tags.as_set().map(|items| {
                    items
                        .iter()
                        .filter_map(|i| i.as_kw().map(String::from))
                        .collect()
                })
            })
            .unwrap_or_default()
    };
    let expected_tags: BTreeSet<String> = ["home", "work", "garden"].map(String::from).into();
    eventually("both converged", || {
        atom_a.status().in_sync()
            && atom_b.status().in_sync()
            && tags(&atom_a) == expected_tags
            && *atom_a.snapshot() == *atom_b.snapshot()
    })
    .await;
    let map = atom_a.snapshot();
    assert_eq!(map.len() as u64, DOCS + 1);
    assert_eq!(map.get(&key(49)), Some(&doc(49, 1)));
    assert!(map.get(&key(120)).is_none());
    assert_eq!(map.get("b:120"), Some(&doc(120, 2)));
}
