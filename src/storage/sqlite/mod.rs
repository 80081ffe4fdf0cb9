//! The SQLite backend: one database file in WAL mode, a pool of readers and one writer thread.
//!
//! - [`schema`]: the tables and their migrations (`PRAGMA user_version`).
//! - [`read`]: pulls, catch-up pages and health checks, on pooled read connections.
//! - [`writer`]: the single writer thread that version-checks and commits every push.

pub mod read;
pub mod schema;
pub mod writer;

use super::{PushTicket, StorageError};
