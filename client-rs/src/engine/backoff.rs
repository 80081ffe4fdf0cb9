//! Exponential backoff with jitter for reconnecting: 100 ms doubling to a 5 s cap, each
//! wait drawn from the upper half of its step so that many clients restarted together do
//! not reconnect in lockstep.

use std::time::Duration;

use rand::Rng;

const FIRST: Duration = Duration::from_millis(100);
const CAP: Duration = Duration::from_secs(5);

/// The waits of one run of failures.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
}

impl Backoff {
    /// The wait before the next attempt.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let step = FIRST.saturating_mul(1u32 << self.failures.min(16)).min(CAP);
        self.failures = self.failures.saturating_add(1);
        let half = step / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }

    /// A success: the next failure starts again from the first step.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut backoff = Backoff::default();
        let first = backoff.next_delay();
        assert!(first >= FIRST / 2 && first <= FIRST, "{first:?}");
        let later: Vec<Duration> = (0..20).map(|_| backoff.next_delay()).collect();
        assert!(later.iter().all(|d| *d <= CAP));
        assert!(later.last().is_some_and(|d| *d >= CAP / 2));
        backoff.reset();
        assert!(backoff.next_delay() <= FIRST);
    }
}
