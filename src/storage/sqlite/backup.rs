//! Backups and restores of a SQLite database (`atomsync-server backup`, `restore`).
