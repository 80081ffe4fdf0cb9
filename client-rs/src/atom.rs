//! [`SyncedAtom`]: the application's handle on one synced group: an immutable map read at
//! memory speed, written with `swap` (durably, offline), watched, and synced in the
//! background.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::engine::Command;
use crate::group::GroupShared;
use crate::store::StoreInner;
use crate::watchers::WatchGuard;
use crate::{ClientError, Map, Options, Status, Value, from_value};

/// One synced group as a map of documents, in the manner of a Clojure atom.
///
/// Reads ([`snapshot`](Self::snapshot), [`get`](Self::get)) never wait for the network
/// or the disk. Writes ([`swap`](Self::swap) and its helpers) apply to the local store in
/// one SQLite transaction and return once it is durable; the engine pushes them when it
/// can. Remote changes replace the map as they arrive (those that arrive together as one
/// new map), and watchers see every change.
///
/// Cheap to clone; clones are handles on the same atom. Dropping every handle does not
/// stop the sync (the store keeps it going); [`close`](Self::close) does.
#[derive(Clone)]
pub struct SyncedAtom {
    pub(crate) shared: Arc<GroupShared>,
    pub(crate) store: Arc<StoreInner>,
}

impl SyncedAtom {
    /// The group this atom syncs.
    pub fn group(&self) -> &str {
        &self.shared.name
    }

    /// The current map: an immutable snapshot, as cheap as cloning an `Arc` (Clojure's
    /// `deref`). Later changes make new maps; this one never changes.
    #[doc(alias = "deref")]
    pub fn snapshot(&self) -> Arc<Map> {
        self.shared.snapshot()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        self.shared.snapshot().get(key).cloned()
    }

    /// The value under `key`, converted to an application type (see [`crate::from_value`]).
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ClientError> {
        self.shared
            .snapshot()
            .get(key)
            .map(|value| from_value(value).map_err(ClientError::from))
            .transpose()
    }

    /// Changes the map with `change`, which edits a copy of the current map. The
    /// difference is written to the local store in one SQLite transaction (the new
    /// documents and their pending changes), synchronously: `swap` returns once it is on
    /// disk, so it blocks the calling thread for a small write. Then watchers run and the
    /// engine is woken to push. No network is involved.
    ///
    /// The copy costs O(1) and the difference O(changed keys × log n) (the [`Map`] is
    /// persistent: versions share what a change did not touch), so a swap of one key
    /// costs about the same on a map of ten documents as on one of a million: mostly the
    /// fsync.
    ///
    /// `change` may run more than once (when a remote change lands between reading the map
    /// and writing it, it runs again on the newer map), so it should only compute. Every
    /// changed key and value is checked first: a key must be 1 to 1024 bytes, a value valid
    /// and within the protocol's default limits (1 MiB encoded, depth 64); nothing is
    /// written when one is not. Returns the new map.
    pub fn swap(&self, change: impl FnMut(&mut Map)) -> Result<Arc<Map>, ClientError> {
        let before = self.shared.snapshot();
        let after = self.shared.swap(change)?;
        if !Arc::ptr_eq(&before, &after) {
            self.store.send(Command::Wake(self.shared.name.clone()));
        }
        Ok(after)
    }

    /// Replaces the whole map with `map` (Clojure's `reset!`).
    pub fn reset(&self, map: Map) -> Result<Arc<Map>, ClientError> {
        self.swap(move |current| current.clone_from(&map))
    }

    /// Sets one key.
    pub fn assoc(
        &self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Result<Arc<Map>, ClientError> {
        let (key, value) = (key.into(), value.into());
        self.swap(move |map| {
            map.insert(key.clone(), value.clone());
        })
    }

    /// Removes one key (a delete that syncs).
    pub fn dissoc(&self, key: &str) -> Result<Arc<Map>, ClientError> {
        self.swap(|map| {
            map.remove(key);
        })
    }

    /// Calls `callback(old, new)` after every change of the map, local or remote, in order,
    /// until the guard is dropped. It runs on the thread that made the change (the
    /// caller of `swap`, or a blocking thread of the engine), so it should be quick; it
    /// may read and write the atom.
    ///
    /// Every change is seen, in order, exactly once, but not necessarily one call per
    /// change: remote changes that arrive together (a catch-up, a busy group: several
    /// `changes` frames from the server) are stored in one transaction and published as
    /// one new map, so one call's `old` → `new` may carry many of them. Each call's `old`
    /// is the previous call's `new`. `old.diff(new)` yields what changed
    /// ([`DiffItem`](crate::DiffItem)s), visiting only what the two versions do not
    /// share.
    pub fn watch(&self, callback: impl Fn(&Map, &Map) + Send + Sync + 'static) -> WatchGuard {
        let id = self.shared.watchers.add(Arc::new(callback));
        WatchGuard {
            watchers: Arc::downgrade(&self.shared.watchers),
            id,
        }
    }

    /// A receiver of the map: `changed().await` wakes on every change (intermediate maps
    /// may be skipped when several land at once; `borrow()` is always the latest; use
    /// [`watch`](Self::watch) to see every version).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Map>> {
        self.shared.subscribe()
    }

    /// The sync status now.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// A receiver of the sync status, to show it or wait on it.
    pub fn status_watch(&self) -> watch::Receiver<Status> {
        self.shared.status_watch()
    }

    /// Waits until the atom is ready: loaded from disk (already so when the atom is
    /// returned) and its first sync attempt finished: caught up with everything the
    /// server had when the atom connected, or known to be offline (the server unreachable,
    /// or refusing the token or the group: see [`status`](Self::status)). It does not
    /// wait for the network to come back. The local map is usable before; this is for
    /// applications that prefer to show the server's state first. Also returns once the
    /// atom is closed.
    pub async fn ready(&self) {
        let mut status = self.shared.status_watch();
        // The sender lives in `shared`, which `self` holds: the channel cannot close.
        let _ = status.wait_for(|status| status.ready).await;
    }

    /// Syncs now: connects at once if offline (cutting a backoff short, retrying after an
    /// auth error), pushes what is pending, and returns when the group is in sync with
    /// the server, or with the error of the attempt that failed. Wrap it in
    /// `tokio::time::timeout` to bound the wait.
    pub async fn sync_now(&self) -> Result<(), Arc<ClientError>> {
        if self.shared.is_closed() {
            return Err(Arc::new(ClientError::Closed));
        }
        let mut status = self.shared.status_watch();
        let before = status.borrow_and_update().clone();
        self.store.send(Command::Kick(self.shared.name.clone()));
        let settled = status
            .wait_for(|now| {
                now.failures > before.failures
                    || (now.rounds > before.rounds && now.pending == 0 && now.online())
            })
            .await;
        match settled {
            Ok(now) if now.failures > before.failures => Err(now
                .last_error
                .clone()
                .unwrap_or_else(|| Arc::new(ClientError::Network("sync failed".into())))),
            Ok(_) => Ok(()),
            Err(_) => Err(Arc::new(ClientError::Closed)),
        }
    }

    /// Changes how the atom syncs (another server, token or resolver). A sync stopped by
    /// an auth error is tried again.
    pub fn set_options(&self, options: Options) -> Result<(), ClientError> {
        if self.shared.is_closed() {
            return Err(ClientError::Closed);
        }
        crate::options::Endpoints::parse(&options.url)?;
        self.shared.set_options(options);
        self.store.send(Command::Attach(self.shared.clone()));
        Ok(())
    }

    /// Stops syncing this group and closes every handle on it: reads still work, writes
    /// fail with [`ClientError::Closed`]. Pending changes stay on disk and are pushed when
    /// the group is opened again.
    pub async fn close(&self) {
        self.store.close_group(&self.shared);
    }
}

impl std::fmt::Debug for SyncedAtom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncedAtom")
            .field("group", &self.shared.name)
            .finish_non_exhaustive()
    }
}
