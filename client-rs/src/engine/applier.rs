//! [`Applier`]: stores `changes` frames on a blocking thread while the live loop goes on
//! reading the socket, so that the server streams the next frames while the last ones are
//! written (a first sync overlaps the server's reading with the client's storing).
//!
//! One store runs at a time; frames that arrive meanwhile queue in a [`ChangesBatch`] and
//! are stored together when it ends, in arrival order. When the queue is full the loop
//! stops reading until the running store ends, so memory stays bounded and a slow disk
//! slows the server's sending (which then queues, and at worst closes the connection
//! with 1013 for the client to resume from its cursor). Anything that must see the stored
//! state first (a `subscribed` frame, a push's answer, a new subscription) waits for
//! [`Applier::flush`].

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::batch::{ChangesBatch, GroupChanges};
use super::round::{Slot, task_failed};
use crate::ClientError;
use crate::group::GroupShared;
use crate::local::Received;

/// The store in progress and the frames waiting for it.
#[derive(Default)]
pub(crate) struct Applier {
    running: Option<JoinHandle<Result<(), ClientError>>>,
    queued: ChangesBatch,
}

impl Applier {
    /// Queues a `changes` frame of a group the connection syncs (frames of any other
    /// group are dropped), after checking its order.
    pub(crate) fn add(
        &mut self,
        slots: &BTreeMap<String, Slot>,
        group: String,
        docs: Vec<Received>,
        seq: u64,
    ) -> Result<(), ClientError> {
        if slots.get(&group).is_some_and(|slot| !slot.forbidden) {
            self.queued.add(group, docs, seq)?;
        }
        Ok(())
    }

    /// True while a store runs.
    pub(crate) fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// True when the loop should stop reading until the running store ends.
    pub(crate) fn is_backlogged(&self) -> bool {
        self.running.is_some() && self.queued.is_full()
    }

    /// Starts storing what is queued, unless a store runs or nothing is queued.
    pub(crate) fn start(&mut self, slots: &BTreeMap<String, Slot>) {
        if self.running.is_some() || self.queued.is_empty() {
            return;
        }
        let work: Vec<(Arc<GroupShared>, GroupChanges)> = std::mem::take(&mut self.queued)
            .into_groups()
            .into_iter()
            .filter_map(|changes| Some((slots.get(&changes.group)?.shared.clone(), changes)))
            .collect();
        if work.is_empty() {
            return;
        }
        self.running = Some(tokio::task::spawn_blocking(move || {
            for (shared, changes) in work {
                let seq = changes.seq;
                shared.apply(|db| db.apply_remote(&shared.name, changes.docs(), seq))?;
            }
            Ok(())
        }));
    }

    /// Waits for the running store to end (forever when none runs: a `select!` branch
    /// guarded by [`is_running`](Self::is_running)). Cancel-safe: the store goes on.
    pub(crate) async fn finished(&mut self) -> Result<(), ClientError> {
        let Some(running) = self.running.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = running.await;
        self.running = None;
        outcome.unwrap_or_else(|error| Err(task_failed(&error)))
    }

    /// Stores everything queued and waits until it is stored.
    pub(crate) async fn flush(
        &mut self,
        slots: &BTreeMap<String, Slot>,
    ) -> Result<(), ClientError> {
        loop {
            if self.is_running() {
                self.finished().await?;
            }
            self.start(slots);
            if !self.is_running() {
                return Ok(());
            }
        }
    }
}
