//! [`FileIdentity`]: whether the file at the database's path is still the one the server
//! opened (PROTOCOL.md section 1: a database deleted or replaced while the server runs
//! answers 503, and nothing more is acknowledged into the file that is gone).
//!
//! SQLite keeps writing to the file it opened, even once it has no name: without this
//! check, pushes into a deleted database are acknowledged and lost at the next restart.
//! The check is one `stat` of the path (about a microsecond), made after every commit
//! before any of it is acknowledged or streamed, before every batch, and by `/healthz`.
//! Once lost, the database stays lost until the server restarts.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::storage::StorageError;

/// The device and inode the database was opened at.
#[derive(Debug)]
pub(crate) struct FileIdentity {
    path: PathBuf,
    dev: u64,
    ino: u64,
    lost: AtomicBool,
}

impl FileIdentity {
    /// The identity of the file now at `path`.
    pub(crate) fn of(path: &Path) -> Result<FileIdentity, StorageError> {
        let meta = std::fs::metadata(path).map_err(|e| {
            StorageError::Incompatible(format!("{}: cannot stat: {e}", path.display()))
        })?;
        Ok(FileIdentity {
            path: path.to_owned(),
            dev: meta.dev(),
            ino: meta.ino(),
            lost: AtomicBool::new(false),
        })
    }

    /// Fails when the database was found lost before.
    pub(crate) fn still_there(&self) -> Result<(), StorageError> {
        if self.lost.load(Ordering::Acquire) {
            return Err(StorageError::Lost(self.path.clone()));
        }
        Ok(())
    }

    /// Looks at the path again: fails, for good, when it names another file or none.
    pub(crate) fn check(&self) -> Result<(), StorageError> {
        self.still_there()?;
        let same = std::fs::metadata(&self.path)
            .is_ok_and(|meta| meta.dev() == self.dev && meta.ino() == self.ino);
        if same {
            return Ok(());
        }
        if !self.lost.swap(true, Ordering::AcqRel) {
            tracing::error!(
                db = %self.path.display(),
                "the database file was deleted or replaced while the server ran: every push \
                 now answers 503 and nothing more is acknowledged; restart the server"
            );
        }
        Err(StorageError::Lost(self.path.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deleted_or_replaced_file_is_lost_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"x").unwrap();
        let id = FileIdentity::of(&path).unwrap();
        id.check().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(id.check(), Err(StorageError::Lost(_))));
        std::fs::write(&path, b"y").unwrap();
        assert!(
            id.check().is_err(),
            "a new file at the path is not the database"
        );
        assert!(id.still_there().is_err());

        let other = dir.path().join("b.db");
        std::fs::write(&other, b"x").unwrap();
        let id = FileIdentity::of(&other).unwrap();
        std::fs::write(dir.path().join("c.db"), b"z").unwrap();
        std::fs::rename(dir.path().join("c.db"), &other).unwrap();
        assert!(id.check().is_err(), "replaced by a rename");
    }
}
