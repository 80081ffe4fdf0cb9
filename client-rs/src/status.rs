//! [`Status`]: what a synced atom knows about its sync, published through a
//! `tokio::sync::watch` channel so that an application can show it and react to it.

use std::sync::Arc;

use crate::ClientError;

/// How a synced atom is connected right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Connection {
    /// Not connected: the server is unreachable, refused the token, or no attempt finished
    /// yet. Local reads and writes work as always.
    #[default]
    Offline,
    /// Live over the WebSocket: changes arrive as they are committed.
    Live,
    /// Over HTTP only (the WebSocket is unavailable): pulls every second.
    Polling,
}

/// The sync state of one synced atom.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Status {
    /// How the atom is connected.
    pub connection: Connection,
    /// True once the first sync attempt has finished: caught up with the server, or
    /// failed (offline, refused). What [`SyncedAtom::ready`](crate::SyncedAtom::ready)
    /// waits for.
    pub ready: bool,
    /// True while the atom is connected and has applied everything the server had when it
    /// (re)connected.
    pub caught_up: bool,
    /// Local changes not yet accepted by the server.
    pub pending: usize,
    /// The group's cursor: the highest server sequence number stored locally.
    pub cursor: u64,
    /// The server database's epoch, once known.
    pub epoch: Option<String>,
    /// Why the last attempt failed (network, 401/403, a server error), cleared by the next
    /// success. An auth error stops retrying until the options change or `sync_now`.
    pub last_error: Option<Arc<ClientError>>,
    /// Failed attempts so far (grows on every failure; `sync_now` watches it).
    pub failures: u64,
    /// Completed sync rounds so far: catch-ups, polls and settled pushes.
    pub rounds: u64,
}

impl Status {
    /// True when connected (live or polling).
    pub fn online(&self) -> bool {
        self.connection != Connection::Offline
    }

    /// True when sync stopped because the server refused the token or the group (401/403).
    pub fn is_auth_error(&self) -> bool {
        self.last_error.as_deref().is_some_and(ClientError::is_auth)
    }

    /// True when connected, caught up and with nothing pending.
    pub fn in_sync(&self) -> bool {
        self.online() && self.caught_up && self.pending == 0
    }

    /// Records a failed attempt: offline, not caught up, `error` as the last error.
    pub(crate) fn fail(&mut self, error: Arc<ClientError>) {
        self.connection = Connection::Offline;
        self.caught_up = false;
        self.ready = true;
        self.last_error = Some(error);
        self.failures += 1;
    }

    /// Records a completed round over `connection`.
    pub(crate) fn succeed(&mut self, connection: Connection) {
        self.connection = connection;
        self.caught_up = true;
        self.ready = true;
        self.last_error = None;
        self.rounds += 1;
    }
}
