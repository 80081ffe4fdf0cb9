//! Lineage: how the server tells that the database at its path went back in time, so that
//! it can give it a new epoch before serving it (PROTOCOL.md section 1). Backend-neutral:
//! a backend supplies its epoch and its commit counter, and calls [`Lineage::committed`]
//! after each commit.
//!
//! Evidence that a database went back in time can only come from outside it. Every
//! database counts its commits (one counter bumped by each transaction that accepted a
//! write); a small **state file**, kept beside the database or wherever `[server]
//! state_file` says, remembers for every epoch served from this path the highest count
//! the server has acknowledged. At start:
//!
//! - the database's epoch is known and its count is **below** the remembered one: it went
//!   back in time (a backup copied back by hand, a restored file, a filesystem snapshot of
//!   the database alone): **new epoch**, logged loudly, before anything is served;
//! - the database is a copy made by `atomsync-server backup` (stamped `backup_of`): new
//!   epoch, whatever the state file says (it may come from another machine);
//! - no state file, but the database has committed writes: nothing tells whether it is
//!   the one last served, so **new epoch** (clients sync again from 0; nothing is lost);
//! - an epoch never seen here (a new database, or one installed from elsewhere) or a
//!   count at or above the remembered one: served as it is, and remembered.
//!
//! The hot path costs one small `pwrite` after each commit batch, before any push of it is
//! acknowledged, and no fsync: a process that crashes (SIGKILL) leaves the write in the
//! page cache, where the next start reads it. The file is fsynced once a second while
//! commits come, and at shutdown. The state file is also the server's lock on its
//! database: a second server, or an offline command (`restore`, `compact`), finds it held.
//!
//! What stays undetectable: a database and its state file rolled back *together* (a
//! snapshot of the one volume that holds both: keep `state_file` on another volume to
//! cover it); and, after a power cut, a rollback to a copy made in the last second before
//! it (the state file may miss that second's counts).
//!
//! A database shared by several servers (PostgreSQL) is judged by
//! [`Lineage::judge_shared`]: each server's state file knows only what that server saw, so
//! only a known epoch found behind it is evidence; the backend checks the rest (see the
//! PostgreSQL backend's "Epochs").

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::StorageError;

/// The first line of every state file.
const HEADER: &str = "atomsync-state 1";
/// How often the state file is synced to disk while commits come.
pub(crate) const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Epochs remembered, newest kept.
const MAX_EPOCHS: usize = 100;

/// What the start of a server makes of the database it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The database the server served last, at or past where it left it.
    Same,
    /// A database not served from this path before (or a first start): served as it is.
    Adopt(String),
    /// The database may have gone back in time: it gets a new epoch before serving. Says why.
    NewEpoch(String),
}

/// The state file, locked for as long as this lives.
pub struct Lineage {
    path: PathBuf,
    file: File,
    /// Every epoch served from this path, oldest first, with its highest count; the
    /// current one last.
    epochs: Vec<(String, u64)>,
    /// The state file could not be read as one: what was wrong.
    unreadable: Option<String>,
    /// Where the current epoch's line starts in the file.
    tail_at: u64,
    unsynced: Option<Instant>,
}

impl std::fmt::Debug for Lineage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lineage").field("path", &self.path).finish()
    }
}

impl Lineage {
    /// The state file for the database at `db` when the config names none: beside it.
    pub fn default_path(db: &Path) -> PathBuf {
        let mut name = db.file_name().unwrap_or_default().to_os_string();
        name.push(".state");
        db.with_file_name(name)
    }

    /// Opens (creating when missing) and locks the state file at `path`. Fails when
    /// another process holds it: a server runs on this database.
    pub fn open(path: &Path) -> Result<Lineage, StorageError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| StorageError::state(path, "cannot open", &e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StorageError::State {
                    path: path.to_owned(),
                    message: "held by another process: an atomsync-server (or an offline \
                              command) is using this database; stop it first"
                        .into(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StorageError::state(path, "cannot lock", &e));
            }
        }
        let mut text = String::new();
        let (epochs, unreadable) = match file.read_to_string(&mut text) {
            Ok(_) => match parse(&text) {
                Ok(epochs) => (epochs, None),
                Err(why) => (Vec::new(), Some(why)),
            },
            Err(e) => (Vec::new(), Some(format!("cannot be read: {e}"))),
        };
        Ok(Lineage {
            path: path.to_owned(),
            file,
            epochs,
            unreadable,
            tail_at: 0,
            unsynced: None,
        })
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What to make of a database with `epoch` at `commits`; `stamp` is its backup stamp.
    pub fn judge(&self, epoch: &str, commits: u64, stamp: Option<&str>) -> Verdict {
        if let Some(stamp) = stamp {
            return Verdict::NewEpoch(format!(
                "it is a copy made by `atomsync-server backup` ({stamp}) put in place by hand; \
                 use `atomsync-server restore` next time"
            ));
        }
        if let Some(known) = self.epochs.iter().find(|(e, _)| e == epoch).map(|e| e.1) {
            return if commits < known {
                Verdict::NewEpoch(format!(
                    "it went back in time: {commits} commits, where this server had \
                     acknowledged {known} under the same epoch (a backup or an older copy \
                     put back, or a filesystem snapshot)"
                ))
            } else {
                Verdict::Same
            };
        }
        if commits == 0 {
            return Verdict::Adopt("a new database".into());
        }
        match (&self.unreadable, self.epochs.is_empty()) {
            (Some(why), _) => Verdict::NewEpoch(format!(
                "the state file {} {why}, so nothing tells whether the database is the one \
                 last served",
                self.path.display()
            )),
            (None, true) => Verdict::NewEpoch(format!(
                "no state file ({} was missing or empty) beside a database that has \
                 committed writes, so nothing tells whether it is the one last served",
                self.path.display()
            )),
            (None, false) => Verdict::Adopt(
                "a database not served from this path before was installed; its epoch is \
                 its own"
                    .into(),
            ),
        }
    }

    /// What to make of a database shared with other servers, with `epoch` at `commits`:
    /// [`Verdict::NewEpoch`] only when this server has acknowledged more commits under
    /// `epoch` than the database holds. An epoch never served here, a backup stamp or a
    /// missing state file say nothing about a shared database (another server may have
    /// served it meanwhile; a server joining a deployment starts with no state file).
    pub fn judge_shared(&self, epoch: &str, commits: u64) -> Verdict {
        match self.epochs.iter().find(|(e, _)| e == epoch).map(|e| e.1) {
            Some(known) if commits < known => Verdict::NewEpoch(format!(
                "it went back in time: it is at {commits}, where this server had \
                 acknowledged commits up to {known} under the same epoch (a data directory \
                 or volume put back, or commits lost by a crash)"
            )),
            Some(_) => Verdict::Same,
            None => Verdict::Adopt("a database this server has not served before".into()),
        }
    }

    /// Records that `epoch` is served from now on, at `commits`, and syncs the file.
    pub fn start(&mut self, epoch: &str, commits: u64) -> Result<(), StorageError> {
        self.epochs.retain(|(e, _)| e != epoch);
        self.epochs.push((epoch.to_owned(), commits));
        if self.epochs.len() > MAX_EPOCHS {
            let extra = self.epochs.len() - MAX_EPOCHS;
            self.epochs.drain(..extra);
        }
        self.unreadable = None;
        let mut text = format!(
            "{HEADER}\n# Which databases this server has served from its path, and how far: \
             see README, Guarantees. Do not edit.\n"
        );
        for (e, _) in &self.epochs[..self.epochs.len() - 1] {
            text.push_str(&line(e, self.count_of(e)));
        }
        self.tail_at = text.len() as u64;
        text.push_str(&line(epoch, commits));
        let path = &self.path;
        self.file
            .write_all_at(text.as_bytes(), 0)
            .map_err(|e| StorageError::state(path, "cannot write", &e))?;
        self.file
            .set_len(text.len() as u64)
            .map_err(|e| StorageError::state(path, "cannot write", &e))?;
        self.file
            .sync_all()
            .map_err(|e| StorageError::state(path, "cannot sync", &e))?;
        self.unsynced = None;
        Ok(())
    }

    fn count_of(&self, epoch: &str) -> u64 {
        self.epochs
            .iter()
            .find(|(e, _)| e == epoch)
            .map_or(0, |e| e.1)
    }

    /// The current epoch reached `commits`: written to the file (not synced), before any
    /// push of the commit is acknowledged.
    pub fn committed(&mut self, commits: u64) -> Result<(), StorageError> {
        let Some((epoch, count)) = self.epochs.last_mut() else {
            return Ok(());
        };
        if commits <= *count {
            return Ok(());
        }
        *count = commits;
        // The count only grows, so the new line is never shorter than the one it covers.
        let text = line(epoch, commits);
        self.file
            .write_all_at(text.as_bytes(), self.tail_at)
            .map_err(|e| StorageError::state(&self.path, "cannot write", &e))?;
        self.unsynced.get_or_insert_with(Instant::now);
        Ok(())
    }

    /// When the next sync is due, if anything is unsynced.
    pub fn sync_due(&self) -> Option<Instant> {
        self.unsynced.map(|since| since + SYNC_INTERVAL)
    }

    /// What [`committed`](Lineage::committed) wrote, to be synced by the caller without
    /// holding this (a handle on the same file), if anything is unsynced; from now on it
    /// counts as synced.
    pub fn take_unsynced(&mut self) -> Option<File> {
        self.unsynced.take()?;
        match self.file.try_clone() {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot sync the state file");
                None
            }
        }
    }

    /// Syncs what [`committed`](Lineage::committed) wrote, if anything.
    pub fn sync(&mut self) {
        if self.unsynced.take().is_some()
            && let Err(e) = self.file.sync_data()
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot sync the state file");
        }
    }
}

fn line(epoch: &str, commits: u64) -> String {
    format!("epoch {epoch} commits {commits}\n")
}

/// The epochs of a state file's text; an empty text has none.
fn parse(text: &str) -> Result<Vec<(String, u64)>, String> {
    let mut lines = text.lines();
    match lines.next() {
        None => return Ok(Vec::new()),
        Some(HEADER) => {}
        Some(_) => return Err("does not start with the state file's header".into()),
    }
    let mut epochs = Vec::new();
    for (n, l) in lines.enumerate() {
        if l.starts_with('#') || l.is_empty() {
            continue;
        }
        let words: Vec<&str> = l.split(' ').collect();
        match words.as_slice() {
            ["epoch", epoch, "commits", count] if !epoch.is_empty() => {
                let count = count
                    .parse::<u64>()
                    .map_err(|_| format!("line {}: bad count {count:?}", n + 2))?;
                epochs.push(((*epoch).to_owned(), count));
            }
            _ => return Err(format!("line {}: not `epoch E commits N`", n + 2)),
        }
    }
    Ok(epochs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_behind_what_was_acknowledged_gets_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.state");
        let mut l = Lineage::open(&path).unwrap();
        assert!(matches!(l.judge("e1", 0, None), Verdict::Adopt(_)));
        l.start("e1", 0).unwrap();
        for n in 1..=150 {
            l.committed(n).unwrap();
        }
        drop(l); // a crash: nothing synced, the page cache keeps the writes

        let l = Lineage::open(&path).unwrap();
        assert_eq!(l.judge("e1", 150, None), Verdict::Same);
        assert_eq!(l.judge("e1", 151, None), Verdict::Same);
        let Verdict::NewEpoch(why) = l.judge("e1", 100, None) else {
            panic!()
        };
        assert!(
            why.contains("went back in time") && why.contains("150"),
            "{why}"
        );
        assert!(matches!(l.judge("other", 7, None), Verdict::Adopt(_)));
        assert!(matches!(
            l.judge("e1", 150, Some("of e1")),
            Verdict::NewEpoch(_)
        ));
    }

    #[test]
    fn every_epoch_is_remembered_so_an_old_one_put_back_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.state");
        let mut l = Lineage::open(&path).unwrap();
        l.start("a", 0).unwrap();
        l.committed(500).unwrap();
        l.start("b", 10).unwrap(); // a restore
        l.committed(12).unwrap();
        drop(l);
        let l = Lineage::open(&path).unwrap();
        assert!(matches!(l.judge("a", 400, None), Verdict::NewEpoch(_)));
        assert_eq!(l.judge("a", 500, None), Verdict::Same);
        assert_eq!(l.judge("b", 12, None), Verdict::Same);
        assert!(matches!(l.judge("b", 11, None), Verdict::NewEpoch(_)));
    }

    #[test]
    fn without_a_readable_state_file_a_used_database_gets_a_new_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.state");
        let l = Lineage::open(&path).unwrap();
        assert!(
            matches!(l.judge("e", 3, None), Verdict::NewEpoch(w) if w.contains("no state file"))
        );
        drop(l);
        std::fs::write(&path, "garbage").unwrap();
        let l = Lineage::open(&path).unwrap();
        assert!(matches!(l.judge("e", 3, None), Verdict::NewEpoch(w) if w.contains("header")));
        assert!(matches!(l.judge("e", 0, None), Verdict::Adopt(_)));
    }

    #[test]
    fn a_shared_database_is_judged_only_by_what_this_server_saw() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Lineage::open(&dir.path().join("i.state")).unwrap();
        assert!(
            matches!(l.judge_shared("e", 9_000), Verdict::Adopt(_)),
            "a new server"
        );
        l.start("e", 9_000).unwrap();
        l.committed(12_000).unwrap();
        assert_eq!(l.judge_shared("e", 12_000), Verdict::Same);
        assert!(matches!(l.judge_shared("e", 11_999), Verdict::NewEpoch(w) if w.contains("12000")));
        assert!(matches!(l.judge_shared("other", 1), Verdict::Adopt(_)));
        let synced = l.take_unsynced().expect("a count to sync");
        synced.sync_data().unwrap();
        assert!(l.take_unsynced().is_none() && l.sync_due().is_none());
    }

    #[test]
    fn the_state_file_is_a_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.state");
        let held = Lineage::open(&path).unwrap();
        let e = Lineage::open(&path).unwrap_err().to_string();
        assert!(e.contains("held by another process"), "{e}");
        drop(held);
        Lineage::open(&path).unwrap();
        assert_eq!(
            Lineage::default_path(Path::new("/var/lib/atomsync/atomsync.db")),
            PathBuf::from("/var/lib/atomsync/atomsync.db.state")
        );
    }
}
