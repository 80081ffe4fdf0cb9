//! The registry: group name → the address of its actor, started on first subscription and
//! stopped once idle; and the commit sink that routes every commit to its group's actor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use actix::{Actor, Addr, MailboxError};

use super::group::{GroupActor, Stream, Subscribe, SubscribeAck, Subscriber};
use crate::storage::{Committed, Storage};

/// How long a group with no subscriber keeps its actor, unless told otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How many times a subscription tries again when the actor it found stopped meanwhile
/// (it went idle just then): each try finds or starts a fresh one.
const SUBSCRIBE_TRIES: usize = 4;

/// Group name → its actor. A std `Mutex` around a `HashMap`: the lock is held for one lookup
/// or insert, never across an `.await`, so an async lock would only add cost.
pub(super) type Groups = Mutex<HashMap<Arc<str>, Addr<GroupActor>>>;

/// Finds or starts the actor of a group, and hands every commit to its group's actor.
/// Cheap to clone.
///
/// Only subscriptions start actors: a push goes straight to storage, and a commit of a group
/// with no actor has nobody to stream to. An actor started later reads the group's seq from
/// storage before it answers anything, and that read sees every commit the registry did
/// not hand it (the commit came before the actor could be found), so nothing falls between.
///
/// An actor with no subscriber for the idle timeout stops and leaves the map (a server with
/// millions of groups, one per user, keeps actors only for the groups in use). Its
/// commits since are in storage; the next subscription starts a fresh actor, which reads
/// the group's seq before answering, so ordering and the hand-over stay exact. A
/// subscription that races an actor stopping finds the next one ([`Registry::subscribe`]).
#[derive(Clone)]
pub struct Registry {
    groups: Arc<Groups>,
    storage: Storage,
    idle_timeout: Duration,
}

impl Registry {
    /// An empty registry over `storage` whose actors stop after [`DEFAULT_IDLE_TIMEOUT`]
    /// without subscribers; see [`Registry::with_idle_timeout`].
    pub fn new(storage: Storage) -> Registry {
        Registry::with_idle_timeout(storage, DEFAULT_IDLE_TIMEOUT)
    }

    /// An empty registry over `storage`, which from now on hands every commit to the
    /// registry (replacing any registry before), and the registry to its group's actor; and
    /// asks the registry which groups have an actor when it must re-read their seqs. An
    /// actor without subscribers for `idle_timeout` stops.
    pub fn with_idle_timeout(storage: Storage, idle_timeout: Duration) -> Registry {
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
        Registry {
            groups,
            storage,
            idle_timeout,
        }
    }

    /// The actor of `group` (a valid group name), started on the current arbiter when new.
    /// It may stop once idle: to subscribe, use [`Registry::subscribe`].
    pub fn get(&self, group: &str) -> Addr<GroupActor> {
        let mut groups = lock(&self.groups);
        if let Some(addr) = groups.get(group)
            && addr.connected()
        {
            return addr.clone();
        }
        let name: Arc<str> = group.into();
        let actor = GroupActor::new(
            name.clone(),
            self.storage.clone(),
            self.idle_timeout,
            Arc::downgrade(&self.groups),
        );
        let addr = actor.start();
        groups.insert(name, addr.clone());
        addr
    }

    /// Registers `subscriber` with the actor of `group`, starting one if none runs, and
    /// answers with the actor and the hand-over point. An actor that stopped (idle) between
    /// being found and the registration is forgotten and a fresh one asked.
    pub async fn subscribe(
        &self,
        group: &str,
        subscriber: Subscriber,
    ) -> Result<(Addr<GroupActor>, SubscribeAck), MailboxError> {
        let mut last = MailboxError::Closed;
        for _ in 0..SUBSCRIBE_TRIES {
            let addr = self.get(group);
            let subscribe = Subscribe {
                subscriber: subscriber.clone(),
            };
            match addr.send(subscribe).await {
                Ok(ack) => return Ok((addr, ack)),
                Err(e) => {
                    forget(&self.groups, group, &addr);
                    last = e;
                }
            }
        }
        Err(last)
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

/// Removes `group` from the map if it still names `addr` (not a newer actor).
pub(super) fn forget(groups: &Groups, group: &str, addr: &Addr<GroupActor>) {
    let mut groups = lock(groups);
    if groups.get(group).is_some_and(|current| current == addr) {
        groups.remove(group);
        // A server that had many groups in use at once gives the room back.
        if groups.capacity() > 1024 && groups.len() < groups.capacity() / 4 {
            groups.shrink_to_fit();
        }
    }
}

fn lock(groups: &Groups) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Addr<GroupActor>>> {
    // A panic while holding the lock cannot leave the map half-changed: every change is
    // one insert.
    groups
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
