//! What one WebSocket session did, for its one access-log line when it ends and for the
//! WebSocket metrics: frames and bytes each way, pushes and their changes, the groups it
//! subscribed to, how long it lasted and how it closed.
//!
//! Counting happens in plain fields of the session (its task is the only one touching
//! them); the process-wide counters get the differences at every heartbeat and at the end
//! ([`SessionStats::flush`]), so a fan-out of thousands of frames a second does not touch
//! a shared atomic per frame.

use std::sync::Arc;
use std::time::Instant;

use super::outbox::End;

/// The most group names the end-of-session line lists; more are counted.
const NAMED_GROUPS: usize = 8;

/// Frames and their payload bytes, one way of a connection.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Tally {
    pub(super) frames: u64,
    pub(super) bytes: u64,
}

impl Tally {
    /// Counts one frame of `len` bytes.
    pub(super) fn add(&mut self, len: usize) {
        self.frames += 1;
        self.bytes += len as u64;
    }

    fn since(self, before: Tally) -> Tally {
        Tally {
            frames: self.frames.saturating_sub(before.frames),
            bytes: self.bytes.saturating_sub(before.bytes),
        }
    }
}

/// One session's figures.
pub(super) struct SessionStats {
    opened: Instant,
    /// Text and binary frames from the client.
    pub(super) received: Tally,
    /// Push frames and the changes they carried.
    pushes: u64,
    changes: u64,
    /// Groups subscribed to, first [`NAMED_GROUPS`] by name, then only counted.
    groups: Vec<Arc<str>>,
    more_groups: u64,
    /// What the metrics have been given so far.
    flushed_sent: Tally,
    flushed_received: Tally,
}

impl SessionStats {
    /// A session opening now: counted as an open connection.
    pub(super) fn open() -> SessionStats {
        if let Some(m) = crate::metrics::get() {
            m.ws_open.inc();
            m.ws_opened.inc();
        }
        SessionStats {
            opened: Instant::now(),
            received: Tally::default(),
            pushes: 0,
            changes: 0,
            groups: Vec::new(),
            more_groups: 0,
            flushed_sent: Tally::default(),
            flushed_received: Tally::default(),
        }
    }

    /// A push frame of `changes` changes.
    pub(super) fn push(&mut self, changes: usize) {
        self.pushes += 1;
        self.changes += changes as u64;
    }

    /// A subscription to `group`.
    pub(super) fn subscribed(&mut self, group: &Arc<str>) {
        if self.groups.contains(group) {
            return;
        }
        if self.groups.len() < NAMED_GROUPS {
            self.groups.push(group.clone());
        } else {
            self.more_groups += 1;
        }
    }

    /// Hands the frames counted since the last flush to the metrics.
    pub(super) fn flush(&mut self, sent: Tally) {
        let Some(m) = crate::metrics::get() else {
            return;
        };
        let out = sent.since(self.flushed_sent);
        let inn = self.received.since(self.flushed_received);
        m.frames_sent.inc_by(out.frames);
        m.bytes_sent.inc_by(out.bytes);
        m.frames_received.inc_by(inn.frames);
        m.bytes_received.inc_by(inn.bytes);
        self.flushed_sent = sent;
        self.flushed_received = self.received;
    }

    /// The session is over: the last flush, and its one line in the access log.
    pub(super) fn close(mut self, conn_id: u64, sent: Tally, end: &End) {
        self.flush(sent);
        let code = end.code();
        if let Some(m) = crate::metrics::get() {
            m.ws_open.dec();
            if code == 1013 {
                m.slow_closes.inc();
            }
        }
        let mut groups = self.groups.join(",");
        if self.more_groups > 0 {
            groups.push_str(&format!(",+{} more", self.more_groups));
        }
        let secs = (self.opened.elapsed().as_millis() as f64) / 1000.0;
        // Why the server closed it ("too slow: ...", "server shutting down"), if it did.
        let reason = match end {
            End::Close(_, reason) => Some(reason.as_str()),
            _ => None,
        };
        tracing::info!(
            target: "atomsync::access",
            route = "/sync/ws",
            conn_id,
            groups,
            pushes = self.pushes,
            changes = self.changes,
            frames_in = self.received.frames,
            bytes_in = self.received.bytes,
            frames_out = sent.frames,
            bytes_out = sent.bytes,
            secs,
            close = code,
            reason,
            "websocket session ended"
        );
    }
}
