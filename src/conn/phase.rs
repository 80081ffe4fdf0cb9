//! [`Phase`]: where a connection is in its life, and the deadline that goes with it, held
//! in one atomic so the request middleware, a WebSocket session and the sweeper can move
//! it along from their own threads without a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests: waiting for (the rest of) a head. Deadline: head timeout.
    Idle,
    /// A head arrived; its body has not all arrived. Deadline: the request timeout.
    Request,
    /// The request has arrived; the server is answering it. No deadline: the server's
    /// own time is not the peer's fault.
    Processing,
    /// A WebSocket: its session keeps its own liveness. No deadline.
    Upgraded,
    /// The server decided to close it. Deadline: the close grace, then abort.
    Closing,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Idle,
        Phase::Request,
        Phase::Processing,
        Phase::Upgraded,
        Phase::Closing,
    ];

    fn code(self) -> u64 {
        match self {
            Phase::Idle => 0,
            Phase::Request => 1,
            Phase::Processing => 2,
            Phase::Upgraded => 3,
            Phase::Closing => 4,
        }
    }

    fn from_code(code: u64) -> Phase {
        Phase::ALL
            .into_iter()
            .find(|p| p.code() == code)
            .unwrap_or(Phase::Closing)
    }
}

/// A phase and its deadline (milliseconds on the owner's clock, plus one so that 0 is
/// "none"), packed as `deadline << 3 | phase`.
#[derive(Debug, Default)]
pub(super) struct PhaseCell(AtomicU64);

const PHASE_BITS: u32 = 3;
const PHASE_MASK: u64 = (1 << PHASE_BITS) - 1;

fn pack(phase: Phase, deadline: Option<Duration>) -> u64 {
    let millis = deadline.map_or(0, |d| {
        u64::try_from(d.as_millis())
            .unwrap_or(u64::MAX >> PHASE_BITS)
            .saturating_add(1)
            .min(u64::MAX >> PHASE_BITS)
    });
    millis << PHASE_BITS | phase.code()
}

fn unpack(word: u64) -> (Phase, Option<Duration>) {
    let millis = word >> PHASE_BITS;
    let deadline = (millis > 0).then(|| Duration::from_millis(millis - 1));
    (Phase::from_code(word & PHASE_MASK), deadline)
}

impl PhaseCell {
    pub(super) fn get(&self) -> (Phase, Option<Duration>) {
        unpack(self.0.load(Ordering::Acquire))
    }

    /// Moves to `phase` unless the connection is closing: once the server decided to
    /// close it, only the sweeper's abort (or the connection's end) follows.
    pub(super) fn set(&self, phase: Phase, deadline: Option<Duration>) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (unpack(word).0 != Phase::Closing).then_some(pack(phase, deadline))
            });
    }

    /// Moves to [`Phase::Closing`] with `deadline`, or keeps an earlier closing deadline.
    pub(super) fn close_by(&self, deadline: Duration) {
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                match unpack(word) {
                    (Phase::Closing, Some(earlier)) if earlier <= deadline => None,
                    _ => Some(pack(Phase::Closing, Some(deadline))),
                }
            });
    }

    /// The phase whose deadline is at or before `now`, once: the deadline is cleared, so
    /// an expired connection is acted on by one sweep only.
    pub(super) fn expired(&self, now: Duration) -> Option<Phase> {
        let mut expired = None;
        let _ = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                match unpack(word) {
                    (phase, Some(deadline)) if deadline <= now => {
                        expired = Some(phase);
                        Some(pack(phase, None))
                    }
                    _ => {
                        expired = None;
                        None
                    }
                }
            });
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_deadline_expires_once() {
        let cell = PhaseCell::default();
        cell.set(Phase::Request, Some(MS(500)));
        assert_eq!(cell.get(), (Phase::Request, Some(MS(500))));
        assert_eq!(cell.expired(MS(499)), None);
        assert_eq!(cell.expired(MS(500)), Some(Phase::Request));
        assert_eq!(cell.expired(MS(9000)), None);
        assert_eq!(cell.get(), (Phase::Request, None));
    }

    #[test]
    fn phases_without_deadline_never_expire() {
        let cell = PhaseCell::default();
        for phase in [Phase::Processing, Phase::Upgraded] {
            cell.set(phase, None);
            assert_eq!(cell.expired(Duration::MAX), None);
            assert_eq!(cell.get().0, phase);
        }
    }

    #[test]
    fn closing_is_final_and_keeps_the_earliest_deadline() {
        let cell = PhaseCell::default();
        cell.set(Phase::Upgraded, None);
        cell.close_by(MS(2000));
        cell.close_by(MS(5000));
        assert_eq!(cell.get(), (Phase::Closing, Some(MS(2000))));
        cell.close_by(MS(1000));
        assert_eq!(cell.get(), (Phase::Closing, Some(MS(1000))));
        // A late request phase change cannot revive a closing connection.
        cell.set(Phase::Idle, None);
        assert_eq!(cell.get(), (Phase::Closing, Some(MS(1000))));
        assert_eq!(cell.expired(MS(1000)), Some(Phase::Closing));
    }

    #[test]
    fn packing_round_trips() {
        for phase in Phase::ALL {
            for deadline in [
                None,
                Some(MS(0)),
                Some(MS(1)),
                Some(Duration::from_secs(86_400 * 365)),
            ] {
                assert_eq!(unpack(pack(phase, deadline)), (phase, deadline));
            }
        }
    }
}
