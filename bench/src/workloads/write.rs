//! The write workloads over HTTP, and their raw-SQLite baselines:
//! - W1: batched pushes, 100 changes per request, MessagePack and JSON, one group;
//!   baseline: raw SQLite, 100 version-checked writes per transaction.
//! - W2: single-change pushes, one sequential client and 16 concurrent clients on one
//!   group; baseline: raw SQLite, one transaction per change.
//! - W3: W1 with half the bases stale; checked afterwards that no rejected change was written.
//! - W6: 100 groups pushing W1's shape at once; aggregate rate and `SQLITE_BUSY` errors.
//!
//! Every repetition writes to new groups, so every accepted write is a document's first.

use std::time::Instant;

use atomsync_proto::Encoding;
use bytes::Bytes;

use super::{Ctx, Target};
use crate::data::{self, RawChange};
use crate::error::{BenchError, Result};
use crate::http::{self, Outcome};
use crate::raw::{Done, RawDb};

/// Changes per request (and per raw transaction) in the batched workloads.
pub const BATCH: usize = 100;

/// What a set of concurrent clients got done.
#[derive(Debug, Clone, Copy)]
struct Run {
    done: Done,
    outcome: Outcome,
    busy: u64,
}

/// Each client sends its bodies one after the other on its own connection, all clients at
/// once, until every body is sent or the phase's time is up. A busy answer (503 naming
/// SQLite's lock) is counted and skipped when `count_busy`; any other error ends the run.
async fn run_clients(
    ctx: &Ctx,
    target: &Target,
    clients: Vec<Vec<Bytes>>,
    encoding: Encoding,
    count_busy: bool,
) -> Result<Run> {
    let deadline = Instant::now() + ctx.plan.phase_limit;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for bodies in clients {
        let client = http::client()?;
        let base = target.base.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcome = Outcome::default();
            let mut busy = 0;
            for body in bodies {
                if Instant::now() >= deadline {
                    break;
                }
                match http::push(&client, &base, body, encoding).await {
                    Ok(o) => outcome += o,
                    Err(e) if count_busy && http::is_busy(&e) => busy += 1,
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, BenchError>((outcome, busy))
        }));
    }
    let mut run = Run {
        done: Done {
            items: 0,
            elapsed: Default::default(),
        },
        outcome: Outcome::default(),
        busy: 0,
    };
    for task in tasks {
        let (outcome, busy) = task
            .await
            .map_err(|e| BenchError::Setup(format!("a client task failed: {e}")))??;
        run.outcome += outcome;
        run.busy += busy;
    }
    run.done = Done {
        items: run.outcome.accepted + run.outcome.conflicts,
        elapsed: start.elapsed(),
    };
    Ok(run)
}

/// Fails unless every change processed was accepted.
fn all_accepted(run: &Run) -> Result<f64> {
    if run.outcome.conflicts > 0 {
        return Err(BenchError::Protocol(format!(
            "{} first writes were answered as conflicts",
            run.outcome.conflicts
        )));
    }
    if run.done.items == 0 {
        return Err(BenchError::Protocol(
            "no change was written within the phase's time".into(),
        ));
    }
    Ok(run.done.rate())
}

/// W1, one repetition, both encodings.
pub async fn w1(ctx: &mut Ctx, target: &Target, rep: usize) {
    for (encoding, name) in [(Encoding::MsgPack, "msgpack"), (Encoding::Json, "json")] {
        let group = format!("w1-{}-{name}-{rep}", target.durability.name());
        let rate = w1_rate(ctx, target, &group, encoding).await;
        ctx.outcome(&format!("w1.{}.{name}", target.durability.name()), rate);
    }
}

/// One timed W1 phase into the new group `group`: changes/s.
pub async fn w1_rate(ctx: &Ctx, target: &Target, group: &str, encoding: Encoding) -> Result<f64> {
    let changes = data::changes("w1", 0..ctx.plan.w1_changes, |_| 0);
    let bodies = data::push_bodies(group, &changes, BATCH, encoding);
    ctx.settle().await;
    run_clients(ctx, target, vec![bodies], encoding, false)
        .await
        .and_then(|r| all_accepted(&r))
}

/// W2, one repetition: one sequential client, then the concurrent clients.
pub async fn w2(ctx: &mut Ctx, target: &Target, rep: usize) {
    let d = target.durability.name();
    let rate = w2_sequential(ctx, target, &format!("w2-{d}-seq-{rep}")).await;
    ctx.outcome(&format!("w2.{d}.sequential"), rate);
    let rate = w2_concurrent(ctx, target, &format!("w2-{d}-concurrent-{rep}")).await;
    ctx.outcome(&format!("w2.{d}.concurrent"), rate);
}

/// One timed phase of single-change pushes from one client into the new group `group`.
pub async fn w2_sequential(ctx: &Ctx, target: &Target, group: &str) -> Result<f64> {
    let encoding = Encoding::MsgPack;
    let changes = data::changes("w2", 0..ctx.plan.w2_sequential, |_| 0);
    let bodies = data::push_bodies(group, &changes, 1, encoding);
    ctx.settle().await;
    run_clients(ctx, target, vec![bodies], encoding, false)
        .await
        .and_then(|r| all_accepted(&r))
}

/// One timed phase of single-change pushes from the plan's concurrent clients.
pub async fn w2_concurrent(ctx: &Ctx, target: &Target, group: &str) -> Result<f64> {
    let encoding = Encoding::MsgPack;
    let clients = ctx.plan.w2_clients.max(1);
    let per_client = ctx.plan.w2_concurrent / clients as u64;
    let bodies = (0..clients)
        .map(|c| {
            let first = c as u64 * per_client;
            data::push_bodies(
                group,
                &data::changes("w2", first..first + per_client, |_| 0),
                1,
                encoding,
            )
        })
        .collect();
    ctx.settle().await;
    run_clients(ctx, target, bodies, encoding, false)
        .await
        .and_then(|r| all_accepted(&r))
}

/// W3, one repetition: every key written once (untimed), then W1 with every odd key's base
/// stale (0 instead of 1). Afterwards every odd key must still be at version 1.
pub async fn w3(ctx: &mut Ctx, target: &Target, rep: usize) {
    let result = w3_run(ctx, target, rep).await;
    ctx.outcome(&target.key("w3"), result);
}

async fn w3_run(ctx: &Ctx, target: &Target, rep: usize) -> Result<f64> {
    let encoding = Encoding::MsgPack;
    let group = format!("w3-{}-{rep}", target.durability.name());
    let n = ctx.plan.w3_changes;
    let first = data::changes("w3", 0..n, |_| 0);
    let setup = run_clients(
        ctx,
        target,
        vec![data::push_bodies(&group, &first, 1_000, encoding)],
        encoding,
        false,
    )
    .await?;
    if setup.done.items != n {
        return Err(BenchError::Protocol(format!(
            "setup wrote {} of {n} documents in time",
            setup.done.items
        )));
    }
    all_accepted(&setup)?;
    let stale = data::changes("w3", 0..n, |i| if i % 2 == 0 { 1 } else { 0 });
    let bodies = data::push_bodies(&group, &stale, BATCH, encoding);
    ctx.settle().await;
    let run = run_clients(ctx, target, vec![bodies], encoding, false).await?;
    if run.outcome.accepted != run.outcome.conflicts {
        return Err(BenchError::Protocol(format!(
            "{} accepted and {} conflicts, expected half and half",
            run.outcome.accepted, run.outcome.conflicts
        )));
    }
    verify_stale_not_written(target, &group, n, run.done.items).await?;
    Ok(run.done.rate())
}

/// Pulls the whole group: every odd key (stale base) must be at version 1, every even key
/// among the first `processed` at version 2.
async fn verify_stale_not_written(
    target: &Target,
    group: &str,
    n: u64,
    processed: u64,
) -> Result<()> {
    let client = http::client()?;
    let mut since = 0;
    let mut seen = 0;
    loop {
        let page = http::pull(
            &client,
            &target.base,
            group,
            since,
            10_000,
            Encoding::MsgPack,
        )
        .await?;
        for doc in &page.changes {
            let index: u64 = doc
                .key
                .rsplit(':')
                .next()
                .and_then(|i| i.parse().ok())
                .unwrap_or(u64::MAX);
            let want = if index % 2 == 1 || index >= processed {
                1
            } else {
                2
            };
            if doc.version != want {
                return Err(BenchError::Protocol(format!(
                    "{} is at version {}, expected {want}",
                    doc.key, doc.version
                )));
            }
            seen += 1;
        }
        if !page.more || page.changes.is_empty() {
            break;
        }
        since = page.seq;
    }
    if seen == n {
        Ok(())
    } else {
        Err(BenchError::Protocol(format!(
            "a pull returned {seen} of {n} documents"
        )))
    }
}

/// W6, one repetition: every group its own client, all at once.
pub async fn w6(ctx: &mut Ctx, target: &Target, rep: usize) {
    let d = target.durability.name();
    let encoding = Encoding::MsgPack;
    let clients = (0..ctx.plan.w6_groups)
        .map(|g| {
            let group = format!("w6-{d}-{rep}-g{g:03}");
            data::push_bodies(
                &group,
                &data::changes("w6", 0..ctx.plan.w6_changes_per_group, |_| 0),
                BATCH,
                encoding,
            )
        })
        .collect();
    ctx.settle().await;
    match run_clients(ctx, target, clients, encoding, true).await {
        Ok(run) => {
            ctx.outcome(&format!("w6.{d}.busy"), Ok(run.busy as f64));
            ctx.outcome(&format!("w6.{d}"), all_accepted(&run));
        }
        Err(e) => {
            let reason = e.to_string();
            ctx.outcome(
                &format!("w6.{d}.busy"),
                Err(BenchError::Protocol(reason.clone())),
            );
            ctx.outcome(&format!("w6.{d}"), Err(e));
        }
    }
}

/// The raw-SQLite baselines of W1 (100 per transaction) and W2 (one per transaction), one
/// repetition, in the target's durability, on this process's core.
pub async fn raw(ctx: &mut Ctx, target: &Target, rep: usize) {
    let d = target.durability;
    for (per_tx, count, key) in [
        (BATCH, ctx.plan.w1_changes, "w1"),
        (1, ctx.plan.w2_sequential, "w2"),
    ] {
        let path = ctx.dir.join(format!("raw-{key}-{}.db", d.name()));
        let group = format!("raw-{key}-{rep}");
        let changes: Vec<RawChange> = data::changes(key, 0..count, |_| 0);
        ctx.settle().await;
        let limit = ctx.plan.phase_limit;
        let rate = tokio::task::spawn_blocking(move || {
            let mut db = RawDb::create(&path, d, &group)?;
            db.write(&changes, per_tx, Instant::now() + limit)
        })
        .await
        .map_err(|e| BenchError::Setup(format!("the raw baseline thread failed: {e}")))
        .and_then(|done| Ok(done?.rate()));
        ctx.outcome(&format!("raw.{key}.{}", d.name()), rate);
    }
}
