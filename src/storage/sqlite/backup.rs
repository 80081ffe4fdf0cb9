//! Backups and restores of an Atomsync SQLite database (`atomsync-server backup` and
//! `restore`).
//!
//! - [`backup`] takes a consistent copy while the server serves: `VACUUM INTO`, which reads
//!   one snapshot (in WAL mode the server's writer never waits for it) and writes a compact
//!   copy. The copy is written beside its destination, **stamped** (`meta.backup_of`: the
//!   epoch and commit count it was taken at), checked, synced, and only then renamed into
//!   place. The stamp is what makes a copy put in place by hand get a new epoch when a
//!   server starts on it (see [`crate::storage::lineage`]).
//! - [`restore`] (server stopped; it takes the state file's lock) installs a copy with a
//!   **new epoch**: copied beside the live database, brought up to this server's schema,
//!   given its epoch, checked and synced; the live database's WAL is checkpointed, the old
//!   file kept under another name (a hard link: no copy), and the new one renamed over it.
//!   A restore that fails at any step leaves the live database as it was.
//!
//! Both refuse a file that is not an Atomsync database, saying what it is.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, params};

use super::schema::{self, Found};
use crate::storage::StorageError;
use crate::storage::lineage::Lineage;

/// How often progress is reported while copying.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);
/// Pages copied per step of a restore.
const RESTORE_STEP_PAGES: i32 = 1024;

/// What a database holds, for the summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// Its epoch.
    pub epoch: String,
    /// Its commit count.
    pub commits: u64,
    /// Groups.
    pub groups: u64,
    /// Documents, tombstones included.
    pub documents: u64,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The copy.
    pub out: PathBuf,
    /// What it holds.
    pub contents: Contents,
    /// How long it took.
    pub elapsed: Duration,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// What was installed.
    pub contents: Contents,
    /// The epoch the copy had (its database's).
    pub old_epoch: String,
    /// The database the restore replaced, kept under this name; `None` when there was none.
    pub kept: Option<PathBuf>,
}

/// Copies the live database at `db` to `out` (which must not exist), consistently, while a
/// server may be writing it. `progress(done, total)` is called with bytes as the copy grows.
pub fn backup(
    db: &Path,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupReport, StorageError> {
    let started = Instant::now();
    must_be_atomsync(db, "the database")?;
    if out.exists() {
        return Err(StorageError::Incompatible(format!(
            "{} exists already; choose another path (a backup never overwrites a file)",
            out.display()
        )));
    }
    let partial = beside(out, "partial");
    let _ = std::fs::remove_file(&partial);
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_secs(30))?;
    let total: u64 = source.query_row(
        "SELECT (page_count - freelist_count) * page_size
         FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
        [],
        |r| r.get(0),
    )?;
    let target = partial.to_string_lossy().into_owned();
    let copied = std::thread::scope(|scope| {
        let copy = scope.spawn(move || source.execute("VACUUM INTO ?1", params![target]));
        while !copy.is_finished() {
            let done = std::fs::metadata(&partial).map_or(0, |m| m.len());
            progress(done.min(total), total);
            std::thread::sleep(PROGRESS_EVERY);
        }
        copy.join()
    });
    let cleanup = |e: StorageError| {
        let _ = std::fs::remove_file(&partial);
        e
    };
    match copied {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(cleanup(e.into())),
        Err(_) => return Err(cleanup(StorageError::Task("the copy panicked".into()))),
    }
    progress(total, total);
    let contents = stamp(&partial).map_err(cleanup)?;
    sync_file(&partial).map_err(cleanup)?;
    std::fs::rename(&partial, out).map_err(|e| {
        cleanup(StorageError::Incompatible(format!(
            "{}: cannot rename the finished copy into place: {e}",
            out.display()
        )))
    })?;
    sync_dir(out)?;
    Ok(BackupReport {
        out: out.to_owned(),
        contents: Contents {
            bytes: std::fs::metadata(out).map_or(0, |m| m.len()),
            ..contents
        },
        elapsed: started.elapsed(),
    })
}

/// Marks a finished copy as a backup, checks it, and says what it holds.
fn stamp(copy: &Path) -> Result<Contents, StorageError> {
    let conn = Connection::open(copy)?;
    // One file, no `-wal` beside it: a copy is moved around whole.
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    check_integrity(&conn, copy)?;
    let contents = contents(&conn, copy)?;
    let taken = humantime::format_rfc3339_seconds(SystemTime::now());
    conn.execute(
        "INSERT INTO meta (name, value) VALUES ('backup_of', ?1)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![format!(
            "epoch {} at commit {}, taken {taken}",
            contents.epoch, contents.commits
        )],
    )?;
    Ok(contents)
}

/// Installs the backup `from` as the database at `db`, with a new epoch recorded in the
/// (already locked) state file. `progress(done, total)` counts pages.
pub fn restore(
    from: &Path,
    db: &Path,
    lineage: &mut Lineage,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RestoreReport, StorageError> {
    must_be_atomsync(from, "the backup")?;
    let live = match schema::inspect(db) {
        Ok(Found::Atomsync { .. }) => true,
        Ok(Found::Nothing) => false,
        Err(e) => {
            return Err(StorageError::Foreign(format!(
                "the database path holds something else; nothing was restored: {e}"
            )));
        }
    };
    let staged = beside(db, "restoring");
    let _ = std::fs::remove_file(&staged);
    let cleanup = |e: StorageError| {
        let _ = std::fs::remove_file(&staged);
        e
    };
    let (old_epoch, contents) = stage(from, &staged, progress).map_err(cleanup)?;
    // The live database's WAL belongs to it alone: fold it in, so that no stale WAL sits
    // beside the new file.
    if live {
        checkpoint(db).map_err(cleanup)?;
    }
    let kept = if live {
        let kept = free_name(&beside(db, "before-restore"));
        std::fs::hard_link(db, &kept).map_err(|e| {
            cleanup(StorageError::Incompatible(format!(
                "cannot keep the replaced database as {}: {e}",
                kept.display()
            )))
        })?;
        Some(kept)
    } else {
        None
    };
    std::fs::rename(&staged, db).map_err(|e| {
        cleanup(StorageError::Incompatible(format!(
            "{}: cannot rename the restored copy into place: {e}",
            db.display()
        )))
    })?;
    sync_dir(db)?;
    lineage.start(&contents.epoch, contents.commits)?;
    Ok(RestoreReport {
        contents: Contents {
            bytes: std::fs::metadata(db).map_or(0, |m| m.len()),
            ..contents
        },
        old_epoch,
        kept,
    })
}

/// Copies `from` to `staged`, migrates it, gives it a new epoch, checks and syncs it.
/// Returns the epoch it had and what it holds now.
fn stage(
    from: &Path,
    staged: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<(String, Contents), StorageError> {
    let source = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let old_epoch = schema::epoch(&source)?.unwrap_or_default();
    let mut target = Connection::open(staged)?;
    {
        let copy = rusqlite::backup::Backup::new(&source, &mut target)?;
        loop {
            let step = copy.step(RESTORE_STEP_PAGES)?;
            let p = copy.progress();
            let total = p.pagecount.max(0) as u64;
            progress(total.saturating_sub(p.remaining.max(0) as u64), total);
            match step {
                rusqlite::backup::StepResult::Done => break,
                rusqlite::backup::StepResult::More => {}
                rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    drop(source);
    target.pragma_update(None, "journal_mode", "DELETE")?;
    schema::migrate(&target)?;
    schema::renew_epoch(&target)?;
    check_integrity(&target, staged)?;
    let contents = contents(&target, staged)?;
    drop(target);
    sync_file(staged)?;
    Ok((old_epoch, contents))
}

/// Refuses anything at `path` but an Atomsync database; `what` names it in the message.
fn must_be_atomsync(path: &Path, what: &str) -> Result<(), StorageError> {
    let found = schema::inspect(path).map_err(|e| match e {
        StorageError::Foreign(why) => {
            StorageError::Foreign(format!("{what}: {why}; nothing was done"))
        }
        e => e,
    })?;
    match found {
        Found::Atomsync { .. } => Ok(()),
        Found::Nothing => Err(StorageError::Foreign(format!(
            "{what} {} does not exist or is empty: not an Atomsync database",
            path.display()
        ))),
    }
}

fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StorageError> {
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(StorageError::Incompatible(format!(
            "{} fails SQLite's integrity check ({verdict}); it is damaged",
            path.display()
        )));
    }
    Ok(())
}

fn contents(conn: &Connection, path: &Path) -> Result<Contents, StorageError> {
    let (groups, documents): (u64, u64) = conn.query_row(
        "SELECT (SELECT count(*) FROM groups), (SELECT count(*) FROM docs)",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Contents {
        epoch: schema::epoch(conn)?.unwrap_or_default(),
        commits: schema::commits(conn)?,
        groups,
        documents,
        bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
    })
}

/// Folds the live database's WAL into it and removes the WAL and its index.
fn checkpoint(db: &Path) -> Result<(), StorageError> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    for suffix in ["-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(PathBuf::from(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(StorageError::Incompatible(format!(
                    "cannot remove the replaced database's {suffix} file: {e}"
                )));
            }
        }
    }
    Ok(())
}

/// `path` with `.suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// `path`, or `path-<unix time>` when it exists.
fn free_name(path: &Path) -> PathBuf {
    if !path.exists() {
        return path.to_owned();
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!("-{now}"));
    PathBuf::from(name)
}

fn sync_file(path: &Path) -> Result<(), StorageError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| StorageError::state(path, "cannot sync", &e))
}

/// Syncs the directory holding `path`, so that a rename into it survives a power cut.
fn sync_dir(path: &Path) -> Result<(), StorageError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::state(dir, "cannot sync the directory", &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Durability;
    use crate::storage::{OpenOptions, Storage};
    use atomsync_proto::wire::{Change, Op};
    use atomsync_proto::{Packed, Value};

    fn put(storage: &Storage, keys: &[&str]) -> u64 {
        let changes = keys
            .iter()
            .map(|k| Change {
                key: (*k).into(),
                base: 0,
                op: Op::Set(Packed::from_value(&Value::from(*k))),
            })
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(storage.push("g".into(), changes)).unwrap().seq
    }

    #[test]
    fn a_backup_restored_gets_a_new_epoch_and_keeps_the_replaced_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        let state = dir.path().join("a.db.state");
        let mut options = OpenOptions::without_lineage(&db, Durability::Normal, 1);
        options.state_file = Some(state.clone());
        let storage = Storage::open_with(&options).unwrap();
        assert_eq!(put(&storage, &["a", "b"]), 2);
        let out = dir.path().join("copy.db");
        let mut seen = Vec::new();
        let report = backup(&db, &out, &mut |done, total| seen.push((done, total))).unwrap();
        assert_eq!((report.contents.groups, report.contents.documents), (1, 2));
        assert_eq!(report.contents.epoch, storage.epoch());
        assert!(seen.last().is_some_and(|(d, t)| d == t && *t > 0));
        let e = backup(&db, &out, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("exists already"), "{e}");
        put(&storage, &["c"]);
        let epoch = storage.epoch().to_owned();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(storage.close());
        drop(storage);

        let mut lineage = Lineage::open(&state).unwrap();
        let report = restore(&out, &db, &mut lineage, &mut |_, _| {}).unwrap();
        assert_eq!(report.old_epoch, epoch);
        assert_ne!(report.contents.epoch, epoch);
        assert_eq!(report.contents.documents, 2);
        let kept = report.kept.unwrap();
        assert!(kept.exists());
        drop(lineage);
        let storage = Storage::open_with(&options).unwrap();
        assert_eq!(storage.epoch(), report.contents.epoch, "no second renewal");
        assert_eq!(put(&storage, &["z"]), 3, "seq 3 again, under a new epoch");
    }

    #[test]
    fn neither_refuses_to_touch_what_is_not_an_atomsync_database() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "hello").unwrap();
        let e = backup(&text, &dir.path().join("x.db"), &mut |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an SQLite database"), "{e}");
        let db = dir.path().join("live.db");
        let mut lineage = Lineage::open(&dir.path().join("live.db.state")).unwrap();
        let e = restore(&text, &db, &mut lineage, &mut |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an SQLite database"), "{e}");
        assert!(!db.exists(), "nothing was created");
    }
}
