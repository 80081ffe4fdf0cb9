//! [`Streams`]: where this instance's news of the database goes, shared by the writers, the
//! listener and the epoch checks: the commit sink (the group actors' registry), and the
//! groups it streams, for notices sent to every one of them at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio_postgres::Client;

use super::{lock, unsigned};
use crate::storage::{CommitSink, Committed, StorageError, StreamedGroups};

/// The most group names read in one statement.
const NAMES_PER_READ: usize = 10_000;

/// The commit sink and the streamed groups, set once the server's registry exists.
#[derive(Default)]
pub(super) struct Streams {
    // std Mutexes: set once, cloned out for each use, never held across an await.
    sink: Mutex<Option<CommitSink>>,
    groups: Mutex<Option<StreamedGroups>>,
}

impl Streams {
    pub(super) fn set_sink(&self, sink: CommitSink) {
        *lock(&self.sink) = Some(sink);
    }

    pub(super) fn set_groups(&self, groups: StreamedGroups) {
        *lock(&self.groups) = Some(groups);
    }

    /// The sink, if one is set.
    pub(super) fn sink(&self) -> Option<CommitSink> {
        lock(&self.sink).clone()
    }

    /// Sends every streamed group a notice with its current seq, read on `client` in one
    /// statement per [`NAMES_PER_READ`] groups: a catch-up (an actor behind it reads what it
    /// missed) or, with `epoch_changed`, word that the epoch changed.
    pub(super) async fn notice_all(
        &self,
        client: &Client,
        epoch_changed: bool,
    ) -> Result<(), StorageError> {
        let groups = lock(&self.groups).clone();
        let (Some(groups), Some(sink)) = (groups, self.sink()) else {
            return Ok(());
        };
        let names = groups();
        if names.is_empty() {
            return Ok(());
        }
        let stmt = client
            .prepare("SELECT name, seq FROM atomsync_groups WHERE name = ANY($1)")
            .await?;
        for chunk in names.chunks(NAMES_PER_READ) {
            let chunk: Vec<&str> = chunk.iter().map(|n| &**n).collect();
            let rows = client.query(&stmt, &[&chunk]).await?;
            let mut found: Vec<(Arc<str>, u64)> = Vec::with_capacity(rows.len());
            for row in &rows {
                found.push((row.get::<_, &str>(0).into(), unsigned(row.get(1), "seq")?));
            }
            if epoch_changed {
                // A group the new history never wrote streams from 0.
                let written: HashSet<Arc<str>> = found.iter().map(|(n, _)| n.clone()).collect();
                for name in &chunk {
                    if !written.contains(*name) {
                        found.push(((*name).into(), 0));
                    }
                }
            }
            for (group, seq) in found {
                sink(Committed {
                    group,
                    docs: Vec::new(),
                    seq,
                    epoch_changed,
                });
            }
        }
        Ok(())
    }
}
