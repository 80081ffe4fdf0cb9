//! The workloads of issue 7, and what they share.
//!
//! - [`write`]: W1 batched pushes, W2 single-change pushes, W3 conflicts, W6 many groups,
//!   and their raw-SQLite baselines.
//! - [`stream`]: W4 push-to-delivery latency, W5 fan-out and memory per idle connection.
//! - [`catchup`]: W7 catch-up, and its raw-SQLite baseline.
//! - [`peer`]: pouchdb-server driven with the same data.
//! - [`browser`]: the browser client's first sync and `swap` in headless Chromium.
//! - [`client`]: the native client (issue 10): `swap`, first sync, live apply.
//! - [`overhead`]: what metrics and the access log cost on the push path (W1, W2).
//!
//! Each workload records one sample per repetition into [`Ctx::results`] under a key
//! (`w1.full.msgpack`, `raw.w1.full`, ...); `main` turns keys into rows.

pub mod browser;
pub mod catchup;
pub mod client;
pub mod overhead;
pub mod peer;
pub mod stream;
pub mod write;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::Result;
use crate::plan::Plan;
use crate::report::Results;
use crate::server::Durability;

/// What every workload needs.
pub struct Ctx {
    /// The counts.
    pub plan: Plan,
    /// Where samples go.
    pub results: Results,
    /// A temporary folder for the baselines' databases.
    pub dir: PathBuf,
}

impl Ctx {
    /// `sync`, then the plan's settling pause: called right before every timed phase.
    pub async fn settle(&self) {
        crate::system::sync_and_settle(self.plan.settle).await;
    }

    /// Records a sample, or the failure in its place (also printed, so a long run shows
    /// trouble as it happens).
    pub fn outcome(&mut self, key: &str, sample: Result<f64>) {
        match sample {
            Ok(value) => {
                eprintln!("  {key} = {value:.3}");
                self.results.record(key, value);
            }
            Err(e) => {
                eprintln!("  {key} FAILED: {e}");
                self.results.fail(key, &e.to_string());
            }
        }
    }
}

/// The Atomsync server a workload drives.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`.
    pub base: String,
    /// The socket address (WebSocket connections).
    pub addr: SocketAddr,
    /// Its durability (names the measurement keys, picks the raw baseline's pragma).
    pub durability: Durability,
    /// Its database file, when the bench started it (the raw catch-up baseline reads it).
    pub db: Option<PathBuf>,
}

impl Target {
    /// A measurement key under this target's durability: `w1` → `w1.full`.
    pub fn key(&self, name: &str) -> String {
        format!("{name}.{}", self.durability.name())
    }
}
