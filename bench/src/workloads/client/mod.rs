//! The native client (`atomsync-client`) as an application meets it (issue 10), each
//! figure beside a baseline measured in the same run:
//!
//! - [`swap`]: `swap` of one key on atoms of 10 to 100,000 documents, offline; baselines:
//!   a one-row SQLite transaction with `synchronous=FULL`, and the swap on 10 documents
//!   (target: 100,000 ÷ 10 at most 2×).
//! - [`sync`]: the first sync of 100,000 documents (`synced_atom` until every key is in the
//!   map) in a fresh process, with its peak resident memory; baseline: pulling and
//!   decoding the same documents over HTTP in the pages the WebSocket catch-up sends
//!   (target: at most 2× the time).
//! - [`live`]: 20,000 single-change pushes from 4 writers while an atom (empty, and of
//!   100,000 documents) follows live: how long after the last acknowledgement the atom
//!   shows the last change (target: 1 s), and its rate beside the server's ack rate.
//!
//! The client runs in the bench process, on the bench core, as the load generators and
//! the in-process baselines do; the server runs on the other core.

pub mod live;
pub mod swap;
pub mod sync;

use std::time::Duration;

use super::{Ctx, Target};
use crate::report::{RowSpec, Target as Goal};

/// The workload's name in `--only` and in the table.
pub const NAME: &str = "client";

/// The counts of the client workload.
#[derive(Debug, Clone)]
pub struct ClientPlan {
    /// Atom sizes the swap is measured on; the first and the last are compared.
    pub swap_sizes: Vec<u64>,
    /// Swaps per size and repetition, spread over rounds (the first round untimed).
    pub swaps: usize,
    /// Documents of the first sync (and of the large atom of the live test).
    pub sync_docs: u64,
    /// Single-change pushes during the live test, all writers together.
    pub live_pushes: u64,
    /// Concurrent writers during the live test.
    pub live_writers: usize,
    /// How long the live test's writers may push.
    pub live_limit: Duration,
}

impl ClientPlan {
    /// The counts.
    pub fn full() -> ClientPlan {
        ClientPlan {
            swap_sizes: vec![10, 1_000, 10_000, 100_000],
            swaps: 300,
            sync_docs: 100_000,
            live_pushes: 20_000,
            live_writers: 4,
            live_limit: Duration::from_secs(30),
        }
    }

    /// The smoke run's.
    pub fn quick() -> ClientPlan {
        ClientPlan {
            swap_sizes: vec![10, 100, 1_000],
            swaps: 10,
            sync_docs: 2_000,
            live_pushes: 200,
            live_writers: 4,
            live_limit: Duration::from_secs(10),
        }
    }
}

/// Every repetition of the workload, against `target`.
pub async fn run(ctx: &mut Ctx, target: &Target) {
    eprintln!("client setup: {} documents", ctx.plan.client.sync_docs);
    let setup = sync::setup(ctx, target, sync::GROUP).await;
    for rep in 0..ctx.plan.reps {
        eprintln!("client: swaps, repetition {}", rep + 1);
        swap::run(ctx, rep).await;
        eprintln!("client: first sync, repetition {}", rep + 1);
        match &setup {
            Ok(()) => sync::run(ctx, target, rep).await,
            Err(e) => {
                for key in sync::KEYS {
                    ctx.results.fail(key, &format!("setup: {e}"));
                }
            }
        }
        eprintln!("client: live apply, repetition {}", rep + 1);
        live::run(ctx, target, rep).await;
    }
}

/// The workload's rows, in the order.
pub fn rows(plan: &ClientPlan) -> Vec<RowSpec> {
    let spec = |metric: String,
                unit: &'static str,
                value: String,
                baseline: &str,
                baseline_key: Option<&str>,
                target: Option<Goal>| RowSpec {
        workload: NAME,
        metric,
        unit,
        value,
        baseline: baseline.to_owned(),
        baseline_key: baseline_key.map(str::to_owned),
        target,
    };
    let mut rows = Vec::new();
    let (smallest, largest) = (
        plan.swap_sizes.first().copied().unwrap_or(0),
        plan.swap_sizes.last().copied().unwrap_or(0),
    );
    for &size in &plan.swap_sizes {
        rows.push(spec(
            format!("native swap of one key, atom of {size} documents, offline"),
            "µs",
            swap::key(size),
            "one-row SQLite transaction, FULL",
            Some(swap::RAW_KEY),
            None,
        ));
    }
    rows.push(spec(
        format!("native swap of one key, atom of {largest} documents, offline"),
        "µs",
        swap::key(largest),
        &format!("the same swap, atom of {smallest} documents"),
        Some(&swap::key(smallest)),
        Some(Goal::RatioAtMost(2.0)),
    ));
    rows.push(spec(
        format!(
            "native first sync of {} documents (synced_atom → all keys)",
            plan.sync_docs
        ),
        "docs/s",
        sync::KEYS[0].into(),
        &format!("HTTP pull + decode, pages of {}", sync::PAGE),
        Some(sync::KEYS[1]),
        Some(Goal::RatioAtLeast(0.5)),
    ));
    rows.push(spec(
        format!(
            "native first sync of {} documents: peak resident memory",
            plan.sync_docs
        ),
        "MiB",
        sync::KEYS[2].into(),
        "the same process before the sync",
        Some(sync::KEYS[3]),
        None,
    ));
    let pushes = format!(
        "{} single-change pushes from {} writers",
        plan.live_pushes, plan.live_writers
    );
    for (atom, docs) in [("empty", 0), ("large", plan.sync_docs)] {
        let who = format!("{pushes}, atom of {docs} documents");
        rows.push(spec(
            format!("native live apply: last change visible after its ack, {who}"),
            "ms",
            live::key(atom, "lag"),
            "",
            None,
            Some(Goal::AtMost(1000.0)),
        ));
        rows.push(spec(
            format!("native live apply: changes visible per second, {who}"),
            "changes/s",
            live::key(atom, "rate"),
            "the server's acknowledgements per second",
            Some(&live::key(atom, "acks")),
            None,
        ));
    }
    rows
}
