//! Epochs on a database that several servers share (PROTOCOL.md section 1: a database that
//! goes back in time gets a new epoch before it is served, and no `(epoch, group, seq)`
//! ever names two writes).
//!
//! The epoch lives in `atomsync_meta`, beside the database's **history mark**: what
//! PostgreSQL itself says about the history of this database, `system identifier /
//! timeline / database oid / oid of atomsync_groups`, as it was when the epoch was given.
//! Every way back in time that PostgreSQL offers changes one of them, while the copy of
//! `atomsync_meta` that comes back with the old data still holds the old mark:
//!
//! - a point-in-time recovery, or a base backup restored with recovery, ends on a **new
//!   timeline**; so does the promotion of a replica (a failover: a lagging replica lost
//!   acknowledged commits, and even a synchronous one is given a new epoch, since nothing
//!   here can tell the two apart);
//! - a `pg_dump` restored into a new database has a new **database oid** (in a new cluster,
//!   a new **system identifier** too); restored into the same database with `--clean`, its
//!   tables are created again with new **oids**.
//!
//! A database goes back in time only through such an event, and every one of them ends
//! every connection of every server (the server restarts or another one answers), except a
//! `pg_restore --clean` under running servers. So each server checks the mark on **every
//! new connection** before anything is served on it (a hook of the pool, and the listener
//! each time it connects), and the **commit transaction** reads the epoch and the table's
//! oid under the group's row lock: a batch that finds either changed is rolled back, the
//! check runs, and the batch goes again under the new epoch. The server that first finds a
//! mismatch renews the epoch (a compare-and-set under an advisory lock, committed with
//! `synchronous_commit = on` whatever the durability), records the current mark, and
//! `NOTIFY`s the others, which re-read it; every server also re-reads it every few seconds
//! with its listener. A server that learns a new epoch serves it from then on, and ends
//! every subscription of its group actors (1013): each client subscribes again, sees the
//! new epoch and starts again from 0.
//!
//! What the mark cannot see: a data directory (or its volume) put back in place by hand,
//! or commits lost with a crash when PostgreSQL acknowledged them before they were on disk
//! (`synchronous_commit = off`, which `durability = "normal"` sets, or `fsync = off`):
//! same cluster, same timeline, same oids. For these, a server with a **state file**
//! (`[server] state_file`, see [`lineage`](crate::storage::lineage)) records the WAL
//! position flushed after each of its commits, and on every new connection compares it
//! with the database's current one: behind it means the database lost what this server
//! acknowledged, and it renews the epoch. That catches it when the server that acknowledged
//! the lost commits connects before other servers' writes have carried the WAL past its
//! record; a loss of a fraction of a second found first by another server goes unseen.

use std::sync::{Arc, Mutex};

use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::commit::CHANNEL;
use super::streams::Streams;
use super::{lock, unsigned};
use crate::storage::StorageError;
use crate::storage::lineage::{Lineage, Verdict};

/// The advisory lock a renewal holds: "atomsync" + 2.
const EPOCH_LOCK: i64 = 0x61746f6d73796e65;

/// The database's history mark now (see the module doc), as SQL; on a server in recovery
/// (a standby) its timeline is not known, and the mark is NULL.
pub(super) const MARK: &str = "
    CASE WHEN NOT pg_is_in_recovery() THEN
        (SELECT system_identifier FROM pg_control_system())::text
        || '/' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)
        || '/' || (SELECT oid FROM pg_database WHERE datname = current_database())::text
        || '/' || 'atomsync_groups'::regclass::oid::text
    END";

/// The names of the mark's parts, in order, and what a change of each means.
const PARTS: [(&str, &str); 4] = [
    (
        "system identifier",
        "another cluster: a dump restored elsewhere, or a major upgrade",
    ),
    (
        "timeline",
        "a point-in-time recovery, a base backup restored, or a replica promoted",
    ),
    (
        "database oid",
        "the database was created again and restored",
    ),
    (
        "table oid",
        "Atomsync's tables were created again (a restore with --clean)",
    ),
];

/// The epoch this server serves.
#[derive(Clone)]
struct Current {
    epoch: Arc<str>,
    /// The same text, for [`Epochs::epoch`]'s `&str` (see there).
    shown: &'static str,
    /// `atomsync_groups`' oid when the epoch was read: the commit transaction compares it.
    groups_oid: i64,
}

/// The epoch this server serves, and what checks and renews it. Shared by the pool's hook,
/// the writers and the listener.
pub(super) struct Epochs {
    /// Names this server in a renewal's notification.
    instance: String,
    // std Mutexes: held for an assignment or a small write, never across an await.
    current: Mutex<Option<Current>>,
    lineage: Mutex<Option<Lineage>>,
    streams: Arc<Streams>,
    /// One check at a time in this server: connections made together do not renew twice.
    checking: tokio::sync::Mutex<()>,
}

/// What one look at the database found.
struct Seen {
    epoch: Option<String>,
    /// The mark stored with the epoch.
    stored: Option<String>,
    /// The mark now; `None` on a standby.
    mark: Option<String>,
    groups_oid: i64,
    /// The WAL's insert position now; `None` on a standby.
    lsn: Option<u64>,
}

impl Epochs {
    pub(super) fn new(instance: String, lineage: Option<Lineage>, streams: Arc<Streams>) -> Epochs {
        Epochs {
            instance,
            current: Mutex::default(),
            lineage: Mutex::new(lineage),
            streams,
            checking: tokio::sync::Mutex::new(()),
        }
    }

    /// The epoch served. Renewals are rare (each needs the database to go back in time), so
    /// each new epoch's text is leaked once to hand out a `&'static str` without holding a
    /// lock: [`Storage::epoch`](crate::storage::Storage::epoch) is a `&str` the whole server
    /// reads.
    pub(super) fn epoch(&self) -> &'static str {
        lock(&self.current).as_ref().map_or("", |c| c.shown)
    }

    pub(super) fn epoch_arc(&self) -> Arc<str> {
        lock(&self.current)
            .as_ref()
            .map_or_else(|| Arc::from(""), |c| c.epoch.clone())
    }

    /// The epoch and `atomsync_groups`' oid a commit must find, once settled.
    pub(super) fn known(&self) -> Option<(Arc<str>, i64)> {
        lock(&self.current)
            .as_ref()
            .map(|c| (c.epoch.clone(), c.groups_oid))
    }

    /// True once the epoch was settled at open: later connections are checked.
    pub(super) fn settled(&self) -> bool {
        lock(&self.current).is_some()
    }

    /// True when a state file records this server's commits.
    pub(super) fn has_lineage(&self) -> bool {
        lock(&self.lineage).is_some()
    }

    /// Records that a commit of this server is durable up to the WAL position `lsn`,
    /// before it is acknowledged.
    pub(super) fn committed(&self, lsn: u64) -> Result<(), StorageError> {
        match lock(&self.lineage).as_mut() {
            Some(lineage) => lineage.committed(lsn),
            None => Ok(()),
        }
    }

    /// Syncs the state file's counts, if any are unsynced, off the caller's thread and
    /// without holding the state file meanwhile.
    pub(super) async fn sync_lineage(&self) {
        let unsynced = lock(&self.lineage)
            .as_mut()
            .and_then(Lineage::take_unsynced);
        if let Some(file) = unsynced {
            let synced = tokio::task::spawn_blocking(move || file.sync_data()).await;
            if let Ok(Err(e)) = synced {
                tracing::warn!(error = %e, "cannot sync the state file");
            }
        }
    }

    /// Looks at the database on `client` (a new connection, or one whose commit found the
    /// epoch changed): renews the epoch if the database went back in time, adopts the one
    /// in force, and, when it is not the one served so far, serves it from now on and tells
    /// every streamed group (see the module doc).
    pub(super) async fn check(&self, client: &Client) -> Result<(), StorageError> {
        let _one = self.checking.lock().await;
        let seen = look(client).await?;
        let (Some(mark), Some(lsn)) = (seen.mark.as_deref(), seen.lsn) else {
            return Err(StorageError::Unavailable(
                "the database is a standby in recovery: Atomsync writes to the primary \
                 (list the primary, or several hosts with target_session_attrs=read-write)"
                    .into(),
            ));
        };
        let Some(epoch) = seen.epoch.clone() else {
            return Err(StorageError::Incompatible(
                "atomsync_meta holds no epoch".into(),
            ));
        };
        let why = match seen.stored.as_deref() {
            Some(stored) if stored != mark => Some(describe(stored, mark)),
            _ => match lock(&self.lineage)
                .as_ref()
                .map(|l| l.judge_shared(&epoch, lsn))
            {
                Some(Verdict::NewEpoch(why)) => Some(why),
                _ => None,
            },
        };
        let epoch = match why {
            Some(why) => self.renew(client, &epoch, mark, &why).await?,
            None => epoch,
        };
        self.adopt(client, epoch, seen.groups_oid, lsn).await
    }

    /// Serves `epoch` from now on; tells the streamed groups when it changed.
    async fn adopt(
        &self,
        client: &Client,
        epoch: String,
        groups_oid: i64,
        lsn: u64,
    ) -> Result<(), StorageError> {
        let (first, changed) = {
            let mut current = lock(&self.current);
            let same = current
                .as_ref()
                .is_some_and(|c| *c.epoch == *epoch && c.groups_oid == groups_oid);
            let first = current.is_none();
            if !same {
                let epoch: Arc<str> = epoch.as_str().into();
                *current = Some(Current {
                    shown: Box::leak(epoch.to_string().into_boxed_str()),
                    epoch,
                    groups_oid,
                });
            }
            (first, !same && !first)
        };
        if (first || changed)
            && let Some(lineage) = lock(&self.lineage).as_mut()
        {
            lineage.start(&epoch, lsn)?;
        }
        if changed {
            tracing::warn!(
                epoch,
                "serving the database's new epoch from now on; every subscription ends and its \
                 client syncs again from 0"
            );
            self.streams.notice_all(client, true).await?;
        }
        Ok(())
    }

    /// Gives the database a new epoch and records `mark` with it, unless another server did
    /// first (the epoch is no longer `old`); answers the epoch in force.
    async fn renew(
        &self,
        client: &Client,
        old: &str,
        mark: &str,
        why: &str,
    ) -> Result<String, StorageError> {
        let renewed = renew_once(client, &self.instance, old, mark).await;
        if renewed.is_err() && !client.is_closed() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        let (epoch, ours) = renewed?;
        if ours {
            tracing::warn!(
                old_epoch = old,
                epoch,
                "the database gets a new epoch before it is served further: {why}; every \
                 client syncs it again from 0, so no (epoch, group, seq) names two writes"
            );
        }
        Ok(epoch)
    }
}

/// One look: the epoch and mark stored, the mark and WAL position now.
async fn look(client: &Client) -> Result<Seen, StorageError> {
    let sql = format!(
        "SELECT (SELECT value FROM atomsync_meta WHERE name = 'epoch'),
                (SELECT value FROM atomsync_meta WHERE name = 'history'),
                {MARK},
                'atomsync_groups'::regclass::oid::int8,
                CASE WHEN NOT pg_is_in_recovery()
                     THEN (pg_current_wal_insert_lsn() - '0/0')::int8 END"
    );
    let row = client.query_one(&sql, &[]).await?;
    Ok(Seen {
        epoch: row.get(0),
        stored: row.get(1),
        mark: row.get(2),
        groups_oid: row.get(3),
        lsn: row
            .get::<_, Option<i64>>(4)
            .map(|n| unsigned(n, "WAL position"))
            .transpose()?,
    })
}

/// The renewal's transaction; the epoch in force and whether this server set it.
async fn renew_once(
    client: &Client,
    instance: &str,
    old: &str,
    mark: &str,
) -> Result<(String, bool), StorageError> {
    let (_, _, in_force) = futures_util::try_join!(
        // Durable at once whatever the durability: no client may see the old epoch again.
        client.batch_execute("BEGIN; SET LOCAL synchronous_commit = on"),
        client.execute("SELECT pg_advisory_xact_lock($1)", &[&EPOCH_LOCK]),
        client.query_one("SELECT value FROM atomsync_meta WHERE name = 'epoch'", &[]),
    )?;
    let in_force: String = in_force.get(0);
    if in_force != old {
        client.batch_execute("COMMIT").await?;
        return Ok((in_force, false));
    }
    let epoch = crate::storage::new_epoch()?;
    let notice = format!("{instance} epoch {epoch}");
    let by_epoch: &[&(dyn ToSql + Sync)] = &[&epoch];
    let by_mark: &[&(dyn ToSql + Sync)] = &[&mark];
    let notify: &[&(dyn ToSql + Sync)] = &[&CHANNEL, &notice];
    futures_util::try_join!(
        client.execute(
            "UPDATE atomsync_meta SET value = $1 WHERE name = 'epoch'",
            by_epoch
        ),
        client.execute(
            "INSERT INTO atomsync_meta (name, value) VALUES ('history', $1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            by_mark
        ),
        client.execute("SELECT pg_notify($1, $2)", notify),
        client.batch_execute("COMMIT"),
    )?;
    Ok((epoch, true))
}

/// Which parts of the mark changed, and what that means.
fn describe(stored: &str, now: &str) -> String {
    let changed: Vec<String> = stored
        .split('/')
        .zip(now.split('/'))
        .zip(PARTS)
        .filter(|((was, is), _)| was != is)
        .map(|((was, is), (part, means))| format!("its {part} is {is}, not {was} ({means})"))
        .collect();
    if changed.is_empty() {
        return format!("its history mark is {now}, not {stored}");
    }
    format!(
        "it went back in time or was replaced: {}",
        changed.join("; ")
    )
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn a_changed_mark_says_which_part_and_why() {
        let said = describe("7/00000001/16384/16390", "7/00000002/16384/16390");
        assert!(
            said.contains("timeline is 00000002, not 00000001") && said.contains("promoted"),
            "{said}"
        );
        let said = describe("7/00000001/16384/16390", "7/00000001/16384/20001");
        assert!(
            said.contains("table oid") && !said.contains("timeline"),
            "{said}"
        );
    }
}
