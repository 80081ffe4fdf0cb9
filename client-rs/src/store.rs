//! [`Store`]: the local SQLite file of an application, the synced atoms opened on it, and
//! the one sync engine they share.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use atomsync_proto::wire::check_group;
use tokio::sync::mpsc;

use crate::engine::{self, Command, EngineHandle};
use crate::group::GroupShared;
use crate::local::LocalDb;
use crate::options::Endpoints;
use crate::{ClientError, Options, SyncedAtom};

/// A durable local store: one SQLite file holding every synced group of an application.
///
/// Cheap to clone (the clones share everything). Its sync engine, one tokio task, starts
/// with the first [`Store::synced_atom`] and stops with [`Store::close`], or when the last
/// handle to the store and its atoms is dropped.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<StoreInner>,
}

pub(crate) struct StoreInner {
    db: Arc<LocalDb>,
    /// One shared state per group, so that every atom of a group sees one map. A std
    /// `Mutex`: held only to look up or insert, never across an `.await`.
    groups: Mutex<HashMap<String, Arc<GroupShared>>>,
    /// Started on first use, from within the caller's tokio runtime.
    engine: Mutex<Option<EngineHandle>>,
    closed: AtomicBool,
}

impl Store {
    /// Opens the store at `path`, creating the file when missing. Needs no network and no
    /// runtime; the map of every group is read from disk when its atom is opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, ClientError> {
        let db = LocalDb::open(path.as_ref())?;
        Ok(Store {
            inner: Arc::new(StoreInner {
                db: Arc::new(db),
                groups: Mutex::new(HashMap::new()),
                engine: Mutex::new(None),
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The synced atom of `group`, loaded from disk and synced per `options` in the
    /// background. Must be called from within a tokio runtime (the engine runs on it).
    ///
    /// Opening a group that is already open gives another handle on the same atom; when
    /// the options differ, the new ones take effect (and a sync stopped by an auth error
    /// is tried again).
    pub fn synced_atom(&self, group: &str, options: Options) -> Result<SyncedAtom, ClientError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(ClientError::Closed);
        }
        check_group(group).map_err(|reason| ClientError::InvalidGroup {
            group: group.to_owned(),
            reason,
        })?;
        Endpoints::parse(&options.url)?;
        let commands = self.inner.engine_commands()?;
        let mut groups = lock(&self.inner.groups);
        let shared = match groups.get(group) {
            Some(shared) => {
                if !shared.options().same_as(&options) {
                    shared.set_options(options);
                    let _ = commands.send(Command::Attach(shared.clone()));
                }
                shared.clone()
            }
            None => {
                let loaded = self.inner.db.load(group)?;
                let shared = Arc::new(GroupShared::new(
                    group.to_owned(),
                    self.inner.db.clone(),
                    loaded,
                    options,
                ));
                groups.insert(group.to_owned(), shared.clone());
                let _ = commands.send(Command::Attach(shared.clone()));
                shared
            }
        };
        Ok(SyncedAtom {
            shared,
            store: self.inner.clone(),
        })
    }

    /// Stops syncing and closes every atom of the store: their reads still work, writes
    /// fail with [`ClientError::Closed`]. Waits for the engine to stop. Everything written
    /// was already durable; pending changes are pushed when the store is opened again.
    pub async fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        let groups: Vec<Arc<GroupShared>> = lock(&self.inner.groups)
            .drain()
            .map(|(_, shared)| shared)
            .collect();
        for shared in groups {
            close_group(&shared);
        }
        let engine = lock(&self.inner.engine).take();
        if let Some(engine) = engine {
            let _ = engine.commands.send(Command::Shutdown);
            let _ = engine.task.await;
        }
    }
}

impl StoreInner {
    /// The engine's command channel, starting the engine on first use.
    fn engine_commands(&self) -> Result<mpsc::UnboundedSender<Command>, ClientError> {
        let mut engine = lock(&self.engine);
        if let Some(running) = engine.as_ref() {
            return Ok(running.commands.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| ClientError::NoRuntime)?;
        let started = engine::start(&runtime)?;
        let commands = started.commands.clone();
        *engine = Some(started);
        Ok(commands)
    }

    /// Sends a command to the engine, if it runs.
    pub(crate) fn send(&self, command: Command) {
        if let Some(engine) = lock(&self.engine).as_ref() {
            let _ = engine.commands.send(command);
        }
    }

    /// Stops syncing one group (its atom was closed). A handle left over from an earlier
    /// opening of the group closes nothing of the current one.
    pub(crate) fn close_group(&self, shared: &Arc<GroupShared>) {
        let mut groups = lock(&self.groups);
        let current = groups
            .get(&shared.name)
            .is_some_and(|open| Arc::ptr_eq(open, shared));
        if current {
            groups.remove(&shared.name);
            drop(groups);
            self.send(Command::Detach(shared.name.clone()));
        }
        close_group(shared);
    }
}

/// Marks a group closed: no more writes, and waiters on `ready` or `sync_now` are released.
fn close_group(shared: &GroupShared) {
    shared.close();
    let error = Arc::new(ClientError::Closed);
    shared.update_status(|status| status.fail(error));
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
