//! The registry: group name → the address of its actor, started on first subscription; and
//! the commit sink that routes every commit to its group's actor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use actix::{Actor, Addr};

use super::group::{GroupActor, Stream};
use crate::storage::{Committed, Storage};

/// Group name → its actor. A std `Mutex` around a `HashMap`: the lock is held for one lookup
/// or insert, never across an `.await`, so an async lock would only add cost.
type Groups = Mutex<HashMap<Arc<str>, Addr<GroupActor>>>;

/// Finds or starts the actor of a group, and hands every commit to its group's actor.
/// Cheap to clone.
///
/// Only subscriptions start actors: a push goes straight to storage, and a commit of a group
/// with no actor has nobody to stream to. An actor started later reads the group's seq from
/// storage before it answers anything, and that read sees every commit the registry did
/// not hand it (the commit came before the actor could be found), so nothing falls between.
/// Actors are never removed: an idle actor is a few hundred bytes, and keeping exactly one
/// actor per group for the life of the process is what keeps every commit of a group
/// flowing through one ordered mailbox.
#[derive(Clone)]
pub struct Registry {
    groups: Arc<Groups>,
    storage: Storage,
}

impl Registry {
    /// An empty registry over `storage`, which from now on hands every commit to the
    /// registry (replacing any registry before), and the registry to its group's actor; and
    /// asks the registry which groups have an actor when it must re-read their seqs.
    pub fn new(storage: Storage) -> Registry {
        let groups: Arc<Groups> = Arc::default();
        // Weak: the sink lives in storage, which must not keep the actors alive.
        let routes = Arc::downgrade(&groups);
        storage.set_commit_sink(Arc::new(move |committed| deliver(&routes, committed)));
        let streamed = Arc::downgrade(&groups);
        storage.set_streamed_groups(Arc::new(move || match streamed.upgrade() {
            Some(groups) => (lock(&groups).iter())
                .filter(|(_, addr)| addr.connected())
                .map(|(name, _)| name.clone())
                .collect(),
            None => Vec::new(),
        }));
        Registry { groups, storage }
    }

    /// The actor of `group` (a valid group name), started on the current arbiter when new.
    pub fn get(&self, group: &str) -> Addr<GroupActor> {
        let mut groups = lock(&self.groups);
        if let Some(addr) = groups.get(group)
            && addr.connected()
        {
            return addr.clone();
        }
        let name: Arc<str> = group.into();
        let addr = GroupActor::new(name.clone(), self.storage.clone()).start();
        groups.insert(name, addr.clone());
        addr
    }

    /// The actor of `group` if one is running, without starting one: what only asks about
    /// a group (the admin API's subscriber counts) must not start actors for every name.
    pub fn running(&self, group: &str) -> Option<Addr<GroupActor>> {
        let groups = self
            .groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        groups.get(group).filter(|addr| addr.connected()).cloned()
    }

    /// How many group actors are running.
    pub fn len(&self) -> usize {
        lock(&self.groups).len()
    }

    /// True when no group actor runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The storage every actor uses.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
}

/// Hands a commit to its group's actor, if the group has one. Called by storage (for
/// SQLite, on the writer thread) in each group's commit order, which the actor's mailbox
/// keeps.
fn deliver(groups: &Weak<Groups>, committed: Committed) {
    let Some(groups) = groups.upgrade() else {
        return;
    };
    let addr = lock(&groups)
        .get(&committed.group)
        .filter(|addr| addr.connected())
        .cloned();
    if let Some(addr) = addr {
        addr.do_send(Stream(committed));
    }
}

fn lock(groups: &Groups) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Addr<GroupActor>>> {
    // A panic while holding the lock cannot leave the map half-changed: every change is
    // one insert.
    groups
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
