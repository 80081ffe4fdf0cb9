//! The registry: group name → the address of its actor, started on first use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix::{Actor, Addr};

use super::group::GroupActor;
use crate::storage::{Storage, Writer};

/// Finds or starts the actor of a group. Cheap to clone.
///
/// A std `Mutex` around a `HashMap`: the lock is held for one lookup or insert, never across
/// an `.await`, so an async lock would only add cost. Actors are never removed: an idle
/// actor is a few hundred bytes, and keeping exactly one actor per group for the life of the
/// process is what keeps every commit of a group flowing through one ordered mailbox.
#[derive(Clone)]
pub struct Registry {
    groups: Arc<Mutex<HashMap<Arc<str>, Addr<GroupActor>>>>,
    storage: Storage,
    writer: Writer,
}

impl Registry {
    /// An empty registry over the given storage.
    pub fn new(storage: Storage, writer: Writer) -> Registry {
        Registry {
            groups: Arc::default(),
            storage,
            writer,
        }
    }

    /// The actor of `group` (a valid group name), started on the current arbiter when new.
    pub fn get(&self, group: &str) -> Addr<GroupActor> {
        let mut groups = self
            .groups
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(addr) = groups.get(group)
            && addr.connected()
        {
            return addr.clone();
        }
        let name: Arc<str> = group.into();
        let addr = GroupActor::new(name.clone(), self.storage.clone(), self.writer.clone()).start();
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
        self.groups.lock().map(|g| g.len()).unwrap_or(0)
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
