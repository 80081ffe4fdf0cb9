//! Watch callbacks: registration, the [`WatchGuard`] that removes one when dropped, and
//! in-order delivery that lets a callback write to the atom it watches.
//!
//! Changes are queued while the atom's write lock is held (so the queue has the commit
//! order) and delivered after it is released, by whichever thread gets to be the
//! dispatcher. A callback that writes to the atom queues its own change and returns; the
//! dispatcher delivers it next, so nothing deadlocks and every watcher sees the changes in
//! order, each exactly once.

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use crate::Map;

/// A registered callback: `(old, new)`.
pub(crate) type Callback = Arc<dyn Fn(&Map, &Map) + Send + Sync>;

/// The callbacks of one atom and its queue of changes not yet delivered.
#[derive(Default)]
pub(crate) struct Watchers {
    next_id: AtomicU64,
    callbacks: Mutex<BTreeMap<u64, Callback>>,
    queue: Mutex<VecDeque<(Arc<Map>, Arc<Map>)>>,
    /// Held by the thread delivering the queue.
    dispatching: Mutex<()>,
}

impl Watchers {
    pub(crate) fn add(&self, callback: Callback) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.callbacks).insert(id, callback);
        id
    }

    pub(crate) fn remove(&self, id: u64) {
        lock(&self.callbacks).remove(&id);
    }

    /// Queues a change; call with the atom's write lock held.
    pub(crate) fn enqueue(&self, old: Arc<Map>, new: Arc<Map>) {
        lock(&self.queue).push_back((old, new));
    }

    /// Delivers queued changes unless another thread (or this one, further up the stack)
    /// is already doing so; call without the atom's write lock.
    pub(crate) fn dispatch(&self) {
        loop {
            let Ok(guard) = self.dispatching.try_lock() else {
                // The dispatcher checks the queue again after letting go, so this change
                // is not stranded.
                return;
            };
            loop {
                // A statement of its own, so that the queue is not locked while callbacks
                // run (a `while let` would hold the guard through the body).
                let next = lock(&self.queue).pop_front();
                let Some((old, new)) = next else { break };
                // Callbacks are cloned out so that one may watch or unwatch while called.
                let callbacks: Vec<Callback> = lock(&self.callbacks).values().cloned().collect();
                for callback in callbacks {
                    if catch_unwind(AssertUnwindSafe(|| callback(&old, &new))).is_err() {
                        tracing::error!("a watch callback panicked; the other watchers still run");
                    }
                }
            }
            drop(guard);
            if lock(&self.queue).is_empty() {
                return;
            }
        }
    }
}

/// Keeps a watch callback registered; dropping it unwatches.
#[must_use = "the callback is unwatched when the guard is dropped"]
pub struct WatchGuard {
    pub(crate) watchers: Weak<Watchers>,
    pub(crate) id: u64,
}

impl WatchGuard {
    /// Keeps the callback registered for as long as the atom lives, without a guard.
    pub fn forget(mut self) {
        self.watchers = Weak::new();
    }
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Some(watchers) = self.watchers.upgrade() {
            watchers.remove(self.id);
        }
    }
}

impl std::fmt::Debug for WatchGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchGuard").field("id", &self.id).finish()
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (every critical
/// section here is a single push, pop or insert).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn map(n: usize) -> Arc<Map> {
        Arc::new(
            (0..n)
                .map(|i| (i.to_string(), crate::Value::from(i)))
                .collect(),
        )
    }

    #[test]
    fn delivers_in_order_and_survives_a_panicking_callback() {
        let watchers = Arc::new(Watchers::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        watchers.add(Arc::new(|_, _| panic!("boom")));
        watchers.add(Arc::new(move |_, new| {
            seen2.lock().unwrap().push(new.len())
        }));
        watchers.enqueue(map(0), map(1));
        watchers.enqueue(map(1), map(2));
        watchers.dispatch();
        assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
    }

    #[test]
    fn a_callback_may_queue_more_changes() {
        let watchers = Arc::new(Watchers::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let (inner, count) = (Arc::downgrade(&watchers), calls.clone());
        watchers.add(Arc::new(move |_, new| {
            count.fetch_add(1, Ordering::SeqCst);
            if let Some(w) = inner.upgrade().filter(|_| new.len() < 3) {
                w.enqueue(map(new.len()), map(new.len() + 1));
                w.dispatch(); // re-entrant: returns at once, the outer loop delivers
            }
        }));
        watchers.enqueue(map(0), map(1));
        watchers.dispatch();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn dropping_the_guard_unwatches() {
        let watchers = Arc::new(Watchers::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let count = calls.clone();
        let id = watchers.add(Arc::new(move |_, _| {
            count.fetch_add(1, Ordering::SeqCst);
        }));
        let guard = WatchGuard {
            watchers: Arc::downgrade(&watchers),
            id,
        };
        watchers.enqueue(map(0), map(1));
        watchers.dispatch();
        drop(guard);
        watchers.enqueue(map(1), map(2));
        watchers.dispatch();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
