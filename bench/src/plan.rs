//! How much each workload does: the full run's counts (the issue's), and `--quick`'s.
//!
//! Every timed loop is bounded twice, by a count here and by [`Plan::phase_limit`], so a
//! slow server makes a phase shorter, never endless.

use std::time::Duration;

/// The counts of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Repetitions of each workload; medians are reported.
    pub reps: usize,
    /// The pause after `sync` before each timed phase.
    pub settle: Duration,
    /// The longest a timed phase may send for.
    pub phase_limit: Duration,
    /// How long stragglers (deliveries, answers) are awaited after a phase's sending ends.
    pub drain_limit: Duration,
    /// W1: changes per repetition (in requests of 100).
    pub w1_changes: u64,
    /// W2: single-change pushes by the one sequential client.
    pub w2_sequential: u64,
    /// W2: single-change pushes by the 16 concurrent clients together.
    pub w2_concurrent: u64,
    /// W2: the concurrent clients.
    pub w2_clients: usize,
    /// W3: changes per repetition, half with a stale base.
    pub w3_changes: u64,
    /// W4: writer rates, pushes per second.
    pub w4_rates: Vec<u64>,
    /// W4: subscriber counts.
    pub w4_subscribers: Vec<usize>,
    /// W4: seconds of pushing at each rate.
    pub w4_seconds: f64,
    /// W4: seconds of pushing at rates above 100/s with more than 100 subscribers.
    pub w4_heavy_seconds: f64,
    /// W5: subscriber counts.
    pub w5_subscribers: Vec<usize>,
    /// W5: deliveries aimed for per repetition (pushes = this / subscribers).
    pub w5_deliveries: u64,
    /// W5: idle subscribed connections for the memory measurement (0: skipped).
    pub memory_connections: usize,
    /// W6: groups pushing at once.
    pub w6_groups: usize,
    /// W6: changes per group (in requests of 100).
    pub w6_changes_per_group: u64,
    /// W7: documents to catch up on.
    pub w7_docs: u64,
    /// W7: page size.
    pub w7_page: usize,
    /// Peer: `_bulk_docs` documents (in batches of 100).
    pub peer_bulk: u64,
    /// Peer: single PUTs by one client (and as many again by the concurrent clients).
    pub peer_puts: u64,
    /// Peer: longpoll writer rates (one subscriber).
    pub peer_rates: Vec<u64>,
    /// Browser: documents of the group synced into IndexedDB.
    pub browser_docs: u64,
    /// Browser: swaps timed per repetition (the median is kept).
    pub browser_swaps: usize,
}

impl Plan {
    /// The run: 3 repetitions, 2 s settling, 1,000 and 5,000 subscribers, 10,000
    /// idle connections, 100 groups, 100,000 documents.
    pub fn full() -> Plan {
        Plan {
            reps: 3,
            settle: Duration::from_secs(2),
            phase_limit: Duration::from_secs(8),
            drain_limit: Duration::from_secs(20),
            w1_changes: 20_000,
            w2_sequential: 2_000,
            w2_concurrent: 8_000,
            w2_clients: 16,
            w3_changes: 20_000,
            w4_rates: vec![20, 1_000],
            w4_subscribers: vec![1, 1_000],
            w4_seconds: 5.0,
            w4_heavy_seconds: 1.0,
            w5_subscribers: vec![1_000, 5_000],
            w5_deliveries: 500_000,
            memory_connections: 10_000,
            w6_groups: 100,
            w6_changes_per_group: 1_000,
            w7_docs: 100_000,
            w7_page: 10_000,
            peer_bulk: 10_000,
            peer_puts: 1_000,
            peer_rates: vec![20, 1_000],
            browser_docs: 50_000,
            browser_swaps: 20,
        }
    }

    /// A smoke run for the test: every workload, tiny counts, one repetition.
    pub fn quick() -> Plan {
        Plan {
            reps: 1,
            settle: Duration::from_millis(100),
            phase_limit: Duration::from_secs(3),
            drain_limit: Duration::from_secs(10),
            w1_changes: 300,
            w2_sequential: 30,
            w2_concurrent: 64,
            w2_clients: 16,
            w3_changes: 200,
            w4_rates: vec![20, 1_000],
            w4_subscribers: vec![1, 10],
            w4_seconds: 0.25,
            w4_heavy_seconds: 0.1,
            w5_subscribers: vec![10, 50],
            w5_deliveries: 2_000,
            memory_connections: 100,
            w6_groups: 10,
            w6_changes_per_group: 200,
            w7_docs: 2_000,
            w7_page: 500,
            peer_bulk: 300,
            peer_puts: 30,
            peer_rates: vec![20],
            browser_docs: 500,
            browser_swaps: 3,
        }
    }

    /// The number of pushes W4 sends at `rate` with `subscribers`.
    pub fn w4_pushes(&self, rate: u64, subscribers: usize) -> u64 {
        let seconds = if rate > 100 && subscribers > 100 {
            self.w4_heavy_seconds
        } else {
            self.w4_seconds
        };
        ((rate as f64 * seconds).round() as u64).max(1)
    }
}
