//! Latency bookkeeping shared by W4 and the pouchdb-server `_changes` comparison: when each
//! push was sent, and percentiles of the arrival delays.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// When each push was sent: nanoseconds since `base`, plus one (0: not sent yet). Written by
/// the writer, read by every subscriber task, hence atomics rather than a lock.
pub struct SendLog {
    base: Instant,
    sent: Vec<AtomicU64>,
}

impl SendLog {
    /// A log for pushes `0..pushes`.
    pub fn new(pushes: u64) -> SendLog {
        SendLog {
            base: Instant::now(),
            sent: (0..pushes).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Notes that push `index` is being sent now.
    pub fn mark(&self, index: u64) {
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| self.sent.get(i)) {
            let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
            slot.store(nanos + 1, Ordering::Release);
        }
    }

    /// Nanoseconds from the send of push `index` to `at`; `None` for an unknown or unsent one.
    pub fn latency(&self, index: u64, at: Instant) -> Option<u64> {
        let slot = usize::try_from(index).ok().and_then(|i| self.sent.get(i))?;
        let sent = slot.load(Ordering::Acquire).checked_sub(1)?;
        let at = u64::try_from(at.checked_duration_since(self.base)?.as_nanos()).ok()?;
        Some(at.saturating_sub(sent))
    }
}

/// The index in a benchmark key `prefix:0000123`.
pub fn key_index(key: &str) -> Option<u64> {
    key.rsplit(':').next()?.parse().ok()
}

/// p50, p99 and max of a set of delays, in milliseconds, and the deliveries that never came.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Worst.
    pub max: f64,
    /// Deliveries that never arrived.
    pub lost: u64,
}

impl Latency {
    /// From nanosecond delays (any order) and the number expected; `None` when empty.
    pub fn from_nanos(mut delays: Vec<u64>, expected: u64) -> Option<Latency> {
        delays.sort_unstable();
        let at = |q: f64| -> Option<f64> {
            let i = ((delays.len() as f64 - 1.0) * q).round() as usize;
            delays.get(i).map(|ns| *ns as f64 / 1e6)
        };
        Some(Latency {
            p50: at(0.5)?,
            p99: at(0.99)?,
            max: at(1.0)?,
            lost: expected.saturating_sub(delays.len() as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_hundred() {
        let l =
            Latency::from_nanos((1..=100).rev().map(|ms| ms * 1_000_000).collect(), 101).unwrap();
        assert_eq!((l.p50, l.p99, l.max, l.lost), (51.0, 99.0, 100.0, 1));
        assert!(Latency::from_nanos(Vec::new(), 1).is_none());
    }

    #[test]
    fn unsent_pushes_have_no_latency() {
        let log = SendLog::new(2);
        log.mark(0);
        assert!(log.latency(0, Instant::now()).is_some());
        assert!(log.latency(1, Instant::now()).is_none());
        assert!(log.latency(7, Instant::now()).is_none());
        assert_eq!(key_index("s:0000042"), Some(42));
    }
}
