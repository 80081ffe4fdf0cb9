//! The database a test runs on: SQLite in a temporary folder, or, with
//! `ATOMSYNC_TEST_BACKEND=postgres`, a fresh database of a throwaway PostgreSQL cluster
//! (`tests/support/postgres.rs`). `./test.sh` runs the backend-agnostic tests both ways.

use std::path::PathBuf;

use super::{OpenOptions, Storage};
use crate::config::Durability;

#[path = "../../tests/support/postgres.rs"]
pub(crate) mod cluster;

/// The backend the backend-agnostic tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `ATOMSYNC_TEST_BACKEND`: `postgres`, else SQLite.
    pub(crate) fn chosen() -> Backend {
        match std::env::var("ATOMSYNC_TEST_BACKEND").as_deref() {
            Ok("postgres") => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// One test's database, which can be opened more than once (a restart, a second writer).
pub(crate) struct TestDb {
    dir: tempfile::TempDir,
    /// The PostgreSQL database's URL; `None` on SQLite.
    url: Option<String>,
}

impl TestDb {
    /// A new empty database on the chosen backend.
    pub(crate) fn new() -> TestDb {
        TestDb::on(Backend::chosen())
    }

    /// A new empty database on `backend`.
    pub(crate) fn on(backend: Backend) -> TestDb {
        TestDb {
            dir: tempfile::tempdir().expect("temp dir"),
            url: (backend == Backend::Postgres).then(|| cluster::cluster().new_database()),
        }
    }

    /// The SQLite file; `None` on PostgreSQL.
    pub(crate) fn sqlite_path(&self) -> Option<PathBuf> {
        self.url.is_none().then(|| self.dir.path().join("t.db"))
    }

    /// The PostgreSQL URL; `None` on SQLite.
    pub(crate) fn postgres_url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// How to open the database with `pool_size` connections: no state file, durability
    /// `normal`, the default limits.
    pub(crate) fn options(&self, pool_size: u32) -> OpenOptions {
        let db = match &self.url {
            Some(url) => PathBuf::from(url),
            None => self.dir.path().join("t.db"),
        };
        OpenOptions::without_lineage(&db, Durability::Normal, pool_size)
    }

    /// Opens the database with `pool_size` connections.
    pub(crate) async fn open(&self, pool_size: u32) -> Storage {
        self.open_with(self.options(pool_size)).await
    }

    /// Opens the database as `options` say.
    pub(crate) async fn open_with(&self, options: OpenOptions) -> Storage {
        Storage::open_options(options)
            .await
            .expect("open the test database")
    }
}
