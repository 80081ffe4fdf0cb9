//! Metrics: every counter, gauge and histogram the server keeps, and their rendering in
//! the Prometheus text format for `GET /metrics` (through the `prometheus` crate).
//!
//! ## One set per process
//!
//! The counters live in one process-wide [`Metrics`] ([`get`]), as Prometheus exporters
//! conventionally do (a process is one scrape target). They are counted where things
//! happen: on HTTP workers (requests, changes), on the storage writer thread (commits,
//! fsyncs), on the blocking pool (waits for a read connection), in group actors
//! (subscriptions) and WebSocket sessions (connections, frames). Handing a registry to
//! each of those through every constructor would widen the storage and actor interfaces
//! for what is only a tally; the counters are atomics, so sharing them needs no lock.
//!
//! `[metrics] enabled = false` turns counting off for the process ([`set_enabled`]): then
//! [`get`] answers `None` and every site skips its work, one relaxed load each, which is
//! how the benchmark measures what metrics cost on the push path.
//!
//! ## Labels
//!
//! Only bounded ones: a route is its pattern (`/admin/groups/{group}`, never the path), a
//! status its code, an outcome one of a few words. Group names and keys never become
//! labels: a server may hold millions of groups, and each label value is a series kept
//! forever.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// Every metric of the server. Field docs give the exported name.
pub struct Metrics {
    registry: Registry,
    /// `atomsync_http_requests_total{method, route, status}`.
    requests: IntCounterVec,
    /// `atomsync_http_request_duration_seconds`: from the request's head to its response.
    pub(crate) request_seconds: Histogram,
    /// `atomsync_changes_total{outcome="accepted"}`.
    pub(crate) changes_accepted: IntCounter,
    /// `atomsync_changes_total{outcome="conflict"}`.
    pub(crate) changes_conflict: IntCounter,
    /// `atomsync_commit_duration_seconds`: one transaction, from its start to durable.
    pub(crate) commit_seconds: Histogram,
    /// `atomsync_commit_batch_pushes`: pushes committed by one transaction.
    pub(crate) commit_pushes: Histogram,
    /// `atomsync_commit_batch_changes`: changes those pushes carried.
    pub(crate) commit_changes: Histogram,
    /// `atomsync_commit_failures_total`: transactions that did not commit.
    pub(crate) commit_failures: IntCounter,
    /// `atomsync_commit_fsyncs_total`: commits that fsynced the WAL before anything was
    /// acknowledged (durability full; normal syncs at checkpoints only). On PostgreSQL, the
    /// commits made with `synchronous_commit` on (the database flushes its WAL).
    pub(crate) fsyncs: IntCounter,
    /// `atomsync_pool_wait_seconds`: how long a read waited for a pooled connection.
    pub(crate) pool_wait_seconds: Histogram,
    /// `atomsync_pool_timeouts_total`: reads that found no connection in time.
    pub(crate) pool_timeouts: IntCounter,
    /// `atomsync_ws_connections`: WebSocket sessions open now.
    pub(crate) ws_open: IntGauge,
    /// `atomsync_ws_connections_total`: WebSocket sessions opened.
    pub(crate) ws_opened: IntCounter,
    /// `atomsync_ws_subscriptions`: subscriptions registered with group actors now.
    pub(crate) subscriptions: IntGauge,
    /// `atomsync_ws_frames_sent_total`.
    pub(crate) frames_sent: IntCounter,
    /// `atomsync_ws_bytes_sent_total`: payload bytes of those frames.
    pub(crate) bytes_sent: IntCounter,
    /// `atomsync_ws_frames_received_total`: text and binary frames from clients.
    pub(crate) frames_received: IntCounter,
    /// `atomsync_ws_bytes_received_total`.
    pub(crate) bytes_received: IntCounter,
    /// `atomsync_ws_slow_consumer_closes_total`: sessions closed with 1013.
    pub(crate) slow_closes: IntCounter,
    /// `atomsync_groups_open`: group actors running (groups with a subscriber, or that had
    /// one within `group_idle_timeout`).
    pub(crate) groups_open: IntGauge,
}

static ENABLED: AtomicBool = AtomicBool::new(true);

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics, or `None` when `[metrics] enabled = false`.
#[inline]
pub fn get() -> Option<&'static Metrics> {
    if ENABLED.load(Ordering::Relaxed) {
        Some(&METRICS)
    } else {
        None
    }
}

/// Turns counting on or off for the whole process (from `[metrics] enabled`).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Seconds as Prometheus wants them.
pub(crate) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        // The metric definitions are constants: a failure here is a bug caught by the
        // first test that renders them, never something input can cause.
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid counter");
            registry.register(Box::new(c.clone())).expect("unique");
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid gauge");
            registry.register(Box::new(g.clone())).expect("unique");
            g
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid histogram");
            registry.register(Box::new(h.clone())).expect("unique");
            h
        };
        let vec = |name: &str, help: &str, labels: &[&str]| {
            let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid vec");
            registry.register(Box::new(v.clone())).expect("unique");
            v
        };
        // 50 µs to ~1.6 s: a commit in NORMAL takes tens of µs, one in FULL an fsync.
        let latency = || prometheus::exponential_buckets(0.000_05, 2.0, 16).expect("buckets");
        let sizes = |most: f64| {
            let mut b = vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
            b.retain(|&x| x < most);
            b.push(most);
            b
        };
        let changes = vec(
            "atomsync_changes_total",
            "Changes of answered pushes, by outcome: accepted (written) or conflict (base was not the current version).",
            &["outcome"],
        );
        Metrics {
            requests: vec(
                "atomsync_http_requests_total",
                "HTTP requests answered, by method, route pattern and status code (a WebSocket upgrade is one request, 101).",
                &["method", "route", "status"],
            ),
            request_seconds: histogram(
                "atomsync_http_request_duration_seconds",
                "Time from a request's head to its response's head.",
                latency(),
            ),
            changes_accepted: changes.with_label_values(&["accepted"]),
            changes_conflict: changes.with_label_values(&["conflict"]),
            commit_seconds: histogram(
                "atomsync_commit_duration_seconds",
                "Time of one storage transaction (group commit), from its start until durable.",
                latency(),
            ),
            commit_pushes: histogram(
                "atomsync_commit_batch_pushes",
                "Pushes committed together by one transaction (group commit).",
                sizes(512.0),
            ),
            commit_changes: histogram(
                "atomsync_commit_batch_changes",
                "Changes carried by the pushes of one transaction.",
                prometheus::exponential_buckets(1.0, 4.0, 10).expect("buckets"),
            ),
            commit_failures: counter(
                "atomsync_commit_failures_total",
                "Transactions that failed to commit (every push in them was answered with an error).",
            ),
            fsyncs: counter(
                "atomsync_commit_fsyncs_total",
                "Commits that fsynced the write-ahead log before acknowledging (durability = full).",
            ),
            pool_wait_seconds: histogram(
                "atomsync_pool_wait_seconds",
                "Time a read (pull, catch-up, admin) waited for a pooled read connection.",
                prometheus::exponential_buckets(0.000_01, 4.0, 10).expect("buckets"),
            ),
            pool_timeouts: counter(
                "atomsync_pool_timeouts_total",
                "Reads that found no pooled read connection within the pool's timeout.",
            ),
            ws_open: gauge("atomsync_ws_connections", "WebSocket sessions open now."),
            ws_opened: counter(
                "atomsync_ws_connections_total",
                "WebSocket sessions opened since start.",
            ),
            subscriptions: gauge(
                "atomsync_ws_subscriptions",
                "Group subscriptions of WebSocket sessions registered now.",
            ),
            frames_sent: counter(
                "atomsync_ws_frames_sent_total",
                "Text and binary frames sent to WebSocket clients (live changes, catch-up, answers).",
            ),
            bytes_sent: counter(
                "atomsync_ws_bytes_sent_total",
                "Payload bytes of the frames sent to WebSocket clients.",
            ),
            frames_received: counter(
                "atomsync_ws_frames_received_total",
                "Text and binary frames received from WebSocket clients.",
            ),
            bytes_received: counter(
                "atomsync_ws_bytes_received_total",
                "Payload bytes of the frames received from WebSocket clients.",
            ),
            slow_closes: counter(
                "atomsync_ws_slow_consumer_closes_total",
                "WebSocket sessions closed with 1013 because they could not keep up.",
            ),
            groups_open: gauge(
                "atomsync_groups_open",
                "Group actors running: groups with a subscriber, or with one within group_idle_timeout.",
            ),
            registry,
        }
    }

    /// Counts a wait for a pooled database connection (either backend) that began at
    /// `waited` and ended with `got`.
    pub(crate) fn pool_wait<T, E>(&self, waited: std::time::Instant, got: &Result<T, E>) {
        self.pool_wait_seconds.observe(seconds(waited.elapsed()));
        if got.is_err() {
            self.pool_timeouts.inc();
        }
    }

    /// Counts a durable commit of either backend: its time (`took`, from its start to
    /// durable), its size (`pushes` and their `changes`), its WAL flush (`synced`:
    /// durability full), and the changes of the pushes that applied (`outcomes`) by result.
    pub(crate) fn committed<'a>(
        &self,
        took: Duration,
        (pushes, changes): (usize, usize),
        synced: bool,
        outcomes: impl Iterator<Item = &'a crate::storage::PushOutcome>,
    ) {
        use atomsync_proto::wire::PushResult;
        self.commit_seconds.observe(seconds(took));
        self.commit_pushes.observe(pushes as f64);
        self.commit_changes.observe(changes as f64);
        if synced {
            self.fsyncs.inc();
        }
        let (mut accepted, mut conflicts) = (0, 0);
        for result in outcomes.flat_map(|o| &o.results) {
            match result {
                PushResult::Accepted { .. } => accepted += 1,
                PushResult::Conflict { .. } => conflicts += 1,
            }
        }
        self.changes_accepted.inc_by(accepted);
        self.changes_conflict.inc_by(conflicts);
    }

    /// Counts an answered HTTP request. `route` is the matched pattern or `other`, and a
    /// method outside the standard ones counts as `other`: both bounded.
    pub(crate) fn request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" => method,
            _ => "other",
        };
        self.requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
        self.request_seconds.observe(seconds(took));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding our own registry into a Vec cannot fail: names and labels are valid.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics: cannot encode");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_renders_in_the_text_format() {
        let m = Metrics::new();
        m.request("POST", "/sync", 200, Duration::from_millis(2));
        m.changes_accepted.inc_by(3);
        m.commit_pushes.observe(4.0);
        let text = m.render();
        for name in [
            "atomsync_http_requests_total{method=\"POST\",route=\"/sync\",status=\"200\"} 1",
            "atomsync_changes_total{outcome=\"accepted\"} 3",
            "atomsync_changes_total{outcome=\"conflict\"} 0",
            "atomsync_commit_batch_pushes_bucket{le=\"4\"} 1",
            "# TYPE atomsync_commit_duration_seconds histogram",
            "# TYPE atomsync_ws_connections gauge",
            "atomsync_commit_fsyncs_total 0",
            "atomsync_pool_wait_seconds_count 0",
            "atomsync_ws_slow_consumer_closes_total 0",
            "atomsync_groups_open 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }
}
