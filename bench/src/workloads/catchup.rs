//! W7 catch-up: a client pulls every document of a group from `since=0` in pages, as a new
//! device does. Baseline: raw SQLite reading the same rows from the server's own database
//! file, page by page, each page in its own read transaction.

use std::time::{Duration, Instant};

use atomsync_proto::Encoding;
use atomsync_proto::wire::PullResponse;

use super::{Ctx, Target};
use crate::data;
use crate::error::{BenchError, Result};
use crate::http;
use crate::raw;

/// The group W7 reads.
pub const GROUP: &str = "w7-catchup";

/// Writes the documents W7 reads, in the largest pushes the server takes. Untimed.
pub async fn setup(ctx: &Ctx, target: &Target) -> Result<()> {
    write_docs(target, GROUP, "w7", ctx.plan.w7_docs).await
}

/// Writes documents `0..count` under `prefix` into the new group `group`, in the largest
/// pushes the server takes. Untimed.
pub async fn write_docs(target: &Target, group: &str, prefix: &str, count: u64) -> Result<()> {
    let client = http::client()?;
    let changes = data::changes(prefix, 0..count, |_| 0);
    for body in data::push_bodies(group, &changes, 10_000, Encoding::MsgPack) {
        let outcome = http::push(&client, &target.base, body, Encoding::MsgPack).await?;
        if outcome.conflicts > 0 {
            return Err(BenchError::Protocol(format!(
                "setup of {group}: {} conflicts on a new group",
                outcome.conflicts
            )));
        }
    }
    Ok(())
}

/// One repetition: the pull in both encodings, then the raw read.
pub async fn w7(ctx: &mut Ctx, target: &Target) {
    for (encoding, name) in [(Encoding::MsgPack, "msgpack"), (Encoding::Json, "json")] {
        ctx.settle().await;
        let rate = pull_all(ctx, target, encoding).await;
        ctx.outcome(&format!("w7.{name}"), rate);
    }
    let Some(db) = target.db.clone() else {
        ctx.outcome(
            "raw.w7",
            Err(BenchError::Setup(
                "needs the server's database file: not with --url".into(),
            )),
        );
        return;
    };
    let page = ctx.plan.w7_page;
    let deadline = Instant::now() + ctx.plan.phase_limit + ctx.plan.settle;
    ctx.settle().await;
    let rate = tokio::task::spawn_blocking(move || raw::read_all(&db, GROUP, page, deadline))
        .await
        .map_err(|e| BenchError::Setup(format!("the raw read thread failed: {e}")))
        .and_then(|done| check_count(done?, ctx.plan.w7_docs));
    ctx.outcome("raw.w7", rate);
}

/// Pulls pages until `more` is false; documents per second.
async fn pull_all(ctx: &Ctx, target: &Target, encoding: Encoding) -> Result<f64> {
    let deadline = Instant::now() + ctx.plan.phase_limit;
    let done = pull_pages(target, GROUP, ctx.plan.w7_page, encoding, deadline).await?;
    check_count(done, ctx.plan.w7_docs)
}

/// Pulls `group` from `since=0` in pages of `page` until `more` is false (or `deadline`),
/// decoding each page as a client does.
pub async fn pull_pages(
    target: &Target,
    group: &str,
    page: usize,
    encoding: Encoding,
    deadline: Instant,
) -> Result<raw::Done> {
    let client = http::client()?;
    let start = Instant::now();
    let mut since = 0;
    let mut items = 0;
    // Decoding is a client's work, and counts; its share is printed so that the server's
    // part of the time can be told apart.
    let mut decoding = Duration::ZERO;
    while Instant::now() < deadline {
        let bytes = http::pull_bytes(&client, &target.base, group, since, page, encoding).await?;
        let decode_start = Instant::now();
        let page = PullResponse::decode(&bytes, encoding)?;
        decoding += decode_start.elapsed();
        items += page.changes.len() as u64;
        since = page.seq;
        if !page.more {
            break;
        }
    }
    let share = decoding.as_secs_f64() / start.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "  (the client's decoding took {:.0}% of the pull)",
        share * 100.0
    );
    Ok(raw::Done {
        items,
        elapsed: start.elapsed(),
    })
}

/// The rate of a read that must have returned `want` documents.
pub fn check_count(done: raw::Done, want: u64) -> Result<f64> {
    if done.items == want {
        Ok(done.rate())
    } else {
        Err(BenchError::Protocol(format!(
            "read {} of {want} documents within the phase's time",
            done.items
        )))
    }
}
