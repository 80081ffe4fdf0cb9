//! [`GroupShared`]: one synced group's state as the application and the engine share it:
//! the visible map, the status, the watchers, and the write lock that orders every change
//! of the group (a local swap, a remote change, a push outcome) across memory and disk.
//!
//! Every change goes the same way: take the write lock, commit one SQLite transaction,
//! publish the new map and status, queue the watchers' change, release the lock, deliver
//! to watchers. Readers never take the write lock: the map is read from a
//! `tokio::sync::watch` channel, which hands out the current `Arc` cheaply.
//!
//! Why the map is persistent ([`imbl::OrdMap`], not `BTreeMap`): a change must cost what
//! it touches, not the size of the group. With a `BTreeMap` every swap and every applied
//! change deep-copied the whole map, compared every entry of the old and new copies and
//! freed the old one: 259 ms per swap at 100,000 documents. A persistent map is cloned in
//! O(1), a change copies one root-to-leaf path, and [`imbl::OrdMap::diff`] walks only
//! the nodes the two versions do not share, so finding what a swap changed is
//! O(changed keys × log n). `imbl` over `rpds`: its `OrdMap` keeps `BTreeMap`'s
//! `&mut self` API (`insert` and `remove` return the old value, `get_mut`, `entry`), so
//! the closures applications pass to `swap` compile unchanged, where `rpds`'s
//! `insert(&self)` returns a new map and would leave a closure's `m.insert(..)` a silent
//! no-op; its B-tree nodes hold 16 entries (fewer allocations than a red-black tree's
//! node per entry); and it has the structural diff, which `rpds` lacks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use atomsync_proto::wire::check_key;
use atomsync_proto::{Limits, Packed, Value};
use imbl::ordmap::DiffItem;
use tokio::sync::watch;

use crate::local::{Applied, Loaded, LocalDb};
use crate::watchers::Watchers;
use crate::{ClientError, Map, Options, Status};

/// The shared state of one group of a store.
pub(crate) struct GroupShared {
    pub(crate) name: String,
    pub(crate) db: Arc<LocalDb>,
    /// Orders every change of the group; a std `Mutex` because it is held only around one
    /// short SQLite transaction and the publication, never across an `.await`.
    write: Mutex<()>,
    map: watch::Sender<Arc<Map>>,
    status: watch::Sender<Status>,
    /// In an `Arc` so that a [`WatchGuard`](crate::WatchGuard) can hold it weakly.
    pub(crate) watchers: Arc<Watchers>,
    options: Mutex<Options>,
    closed: AtomicBool,
}

impl GroupShared {
    pub(crate) fn new(
        name: String,
        db: Arc<LocalDb>,
        loaded: Loaded,
        options: Options,
    ) -> GroupShared {
        let status = Status {
            pending: loaded.pending,
            cursor: loaded.meta.cursor,
            epoch: loaded.meta.epoch,
            ..Status::default()
        };
        GroupShared {
            name,
            db,
            write: Mutex::new(()),
            map: watch::Sender::new(Arc::new(loaded.visible)),
            status: watch::Sender::new(status),
            watchers: Arc::default(),
            options: Mutex::new(options),
            closed: AtomicBool::new(false),
        }
    }

    /// The current map.
    pub(crate) fn snapshot(&self) -> Arc<Map> {
        self.map.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Map>> {
        self.map.subscribe()
    }

    pub(crate) fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    pub(crate) fn status_watch(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    pub(crate) fn update_status(&self, update: impl FnOnce(&mut Status)) {
        self.status.send_modify(update);
    }

    pub(crate) fn options(&self) -> Options {
        lock(&self.options).clone()
    }

    pub(crate) fn set_options(&self, options: Options) {
        *lock(&self.options) = options;
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Applies `change` to the map, writing the difference durably as pending changes
    /// before publishing it. `change` may run more than once: when the engine changes the
    /// map between the read and the write, it runs again on the newer map (as Clojure's
    /// `swap!` does). Returns the new map.
    pub(crate) fn swap(&self, mut change: impl FnMut(&mut Map)) -> Result<Arc<Map>, ClientError> {
        loop {
            if self.is_closed() {
                return Err(ClientError::Closed);
            }
            let base = self.snapshot();
            // O(1): the copy shares every node with `base` until `change` writes to it.
            let mut next = (*base).clone();
            change(&mut next);
            let edits = diff(&base, &next)?;
            if edits.is_empty() {
                return Ok(base);
            }
            let guard = lock(&self.write);
            if !Arc::ptr_eq(&self.snapshot(), &base) {
                continue;
            }
            let applied = self.db.write_local(&self.name, &edits)?;
            let next = Arc::new(next);
            self.map.send_replace(next.clone());
            self.watchers.enqueue(base, next.clone());
            self.publish_position(&applied);
            drop(guard);
            self.watchers.dispatch();
            return Ok(next);
        }
    }

    /// Runs one engine-side transaction and publishes what it changed. Returns its
    /// [`Applied`], whose edits have moved into the map (left empty).
    pub(crate) fn apply(
        &self,
        op: impl FnOnce(&LocalDb) -> Result<Applied, ClientError>,
    ) -> Result<Applied, ClientError> {
        let guard = lock(&self.write);
        let mut applied = op(&self.db)?;
        let old = self.snapshot();
        // O(1): the copy shares every node with `old` until an edit touches it.
        let mut next = (*old).clone();
        let mut changed = false;
        // In order, each against the map as the edits before it left it: a batch may
        // change one key several times. Moved, not cloned: a first sync hands over
        // 100,000 values here.
        for (key, value) in std::mem::take(&mut applied.edits) {
            changed |= match value {
                // The key moves into the map: no copy of it for a key the map lacks (all
                // of a first sync's), and a value equal to the one held is left in place.
                Some(value) => match next.get_mut(&key) {
                    Some(held) if *held == value => false,
                    Some(held) => {
                        *held = value;
                        true
                    }
                    None => {
                        next.insert(key, value);
                        true
                    }
                },
                None => next.remove(&key).is_some(),
            };
        }
        if changed {
            let next = Arc::new(next);
            self.map.send_replace(next.clone());
            self.watchers.enqueue(old, next);
        }
        self.publish_position(&applied);
        drop(guard);
        self.watchers.dispatch();
        Ok(applied)
    }

    fn publish_position(&self, applied: &Applied) {
        self.status.send_if_modified(|status| {
            let before = (status.pending, status.cursor, status.epoch.clone());
            status.pending = applied.pending;
            status.cursor = applied.cursor;
            status.epoch.clone_from(&applied.epoch);
            before != (status.pending, status.cursor, status.epoch.clone())
        });
    }
}

/// The edits that turn `old` into `new`, each checked against the protocol's default
/// limits so that the server will not refuse it later. Only the nodes the two maps do
/// not share are visited: after a swap that changed a few keys of a copy, that is the
/// paths to those keys.
fn diff(old: &Map, new: &Map) -> Result<Vec<(String, Option<Packed>)>, ClientError> {
    let mut edits = Vec::new();
    for item in old.diff(new) {
        match item {
            DiffItem::Remove(key, _) => edits.push((key.clone(), None)),
            DiffItem::Add(key, value)
            | DiffItem::Update {
                new: (key, value), ..
            } => {
                edits.push((key.clone(), Some(checked(key, value)?)));
            }
        }
    }
    Ok(edits)
}

/// The value's encoding, once the key and value pass the checks the server makes.
pub(crate) fn checked(key: &str, value: &Value) -> Result<Packed, ClientError> {
    check_key(key).map_err(|reason| ClientError::InvalidKey {
        key: key.to_owned(),
        reason,
    })?;
    let limits = Limits::default();
    let invalid = |reason: String| ClientError::InvalidValue {
        key: key.to_owned(),
        reason,
    };
    value
        .check(limits.max_depth)
        .map_err(|e| invalid(e.to_string().trim_start_matches(": ").to_owned()))?;
    let packed = Packed::from_value(value);
    if packed.len() > limits.max_value_bytes {
        return Err(invalid(format!(
            "{} bytes encoded, over the limit of {} bytes",
            packed.len(),
            limits.max_value_bytes
        )));
    }
    Ok(packed)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
