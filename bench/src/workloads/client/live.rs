//! Live apply: an atom follows a group live over the WebSocket while writers push
//! single changes as fast as the server acknowledges them (each writer one push at a
//! time over HTTP, every change a new key). The clock: the last acknowledgement any
//! writer receives, and the moment the atom's map first holds every change (a watcher
//! sees it, on the thread that publishes the map). Measured on an empty atom and on one of
//! 100,000 documents, since applying a change must not cost more on a larger map.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use atomsync_client::{Connection, Options, Store, SyncedAtom};
use atomsync_proto::Encoding;

use super::super::catchup::write_docs;
use super::super::{Ctx, Target};
use super::swap::client_error;
use crate::data;
use crate::error::{BenchError, Result};
use crate::http;

/// The measurement key of `stat` (`lag`, `rate`, `acks`) for the `atom` (`empty`, `large`).
pub fn key(atom: &str, stat: &str) -> String {
    format!("client.live.{atom}.{stat}")
}

/// What one run measured.
struct Figures {
    /// Last change visible minus its acknowledgement, in ms (negative: visible first).
    lag_ms: f64,
    /// Changes visible per second, from the first push to the last change visible.
    rate: f64,
    /// Acknowledgements per second, from the first push to the last acknowledgement.
    acks: f64,
}

/// One repetition: the empty atom, then the large one.
pub async fn run(ctx: &mut Ctx, target: &Target, rep: usize) {
    for (atom, docs) in [("empty", 0), ("large", ctx.plan.client.sync_docs)] {
        match live_once(ctx, target, rep, atom, docs).await {
            Ok(figures) => {
                ctx.outcome(&key(atom, "lag"), Ok(figures.lag_ms));
                ctx.outcome(&key(atom, "rate"), Ok(figures.rate));
                ctx.outcome(&key(atom, "acks"), Ok(figures.acks));
            }
            Err(e) => {
                for stat in ["lag", "rate", "acks"] {
                    ctx.outcome(&key(atom, stat), Err(BenchError::Setup(e.to_string())));
                }
            }
        }
    }
}

async fn live_once(
    ctx: &Ctx,
    target: &Target,
    rep: usize,
    atom_name: &str,
    docs: u64,
) -> Result<Figures> {
    let group = format!("client-live-{atom_name}-{rep}");
    if docs > 0 {
        write_docs(target, &group, "base", docs).await?;
    }
    let store = Store::open(ctx.dir.join(format!("{group}.db"))).map_err(client_error)?;
    let atom = store
        .synced_atom(&group, Options::new(format!("{}/sync", target.base)))
        .map_err(client_error)?;
    let result = follow(ctx, target, &atom, &group, docs).await;
    store.close().await;
    result
}

/// Waits for the atom to be live with every document, then pushes and times.
async fn follow(
    ctx: &Ctx,
    target: &Target,
    atom: &SyncedAtom,
    group: &str,
    docs: u64,
) -> Result<Figures> {
    let plan = &ctx.plan.client;
    let ready_by = Instant::now() + ctx.plan.phase_limit + ctx.plan.drain_limit;
    while !(atom.status().connection == Connection::Live
        && atom.status().in_sync()
        && atom.snapshot().len() as u64 == docs)
    {
        if Instant::now() > ready_by {
            return Err(BenchError::Timeout(format!(
                "the atom was not live with {docs} documents in time: {} documents, {:?}",
                atom.snapshot().len(),
                atom.status()
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let expected = docs + plan.live_pushes;
    let visible: Arc<Mutex<Option<Instant>>> = Arc::default();
    let calls = Arc::new(AtomicU64::new(0));
    let (seen, counted) = (visible.clone(), calls.clone());
    let _watch = atom.watch(move |_old, new| {
        counted.fetch_add(1, Ordering::Relaxed);
        if new.len() as u64 >= expected {
            seen.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(Instant::now);
        }
    });
    let writers = plan.live_writers.max(1);
    let per_writer = plan.live_pushes / writers as u64;
    if per_writer * writers as u64 != plan.live_pushes {
        return Err(BenchError::Setup(format!(
            "{} pushes do not split evenly over {writers} writers",
            plan.live_pushes
        )));
    }
    let bodies: Vec<_> = (0..writers)
        .map(|w| {
            let changes = data::changes(&format!("live{w}"), 0..per_writer, |_| 0);
            data::push_bodies(group, &changes, 1, Encoding::MsgPack)
        })
        .collect();
    let failures_before = atom.status().failures;
    ctx.settle().await;
    let start = Instant::now();
    let deadline = start + plan.live_limit;
    let mut tasks = Vec::with_capacity(writers);
    for bodies in bodies {
        let client = http::client()?;
        let base = target.base.clone();
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut last_ack) = (0u64, None);
            for body in bodies {
                if Instant::now() >= deadline {
                    break;
                }
                accepted += http::push(&client, &base, body, Encoding::MsgPack)
                    .await?
                    .accepted;
                last_ack = Some(Instant::now());
            }
            Ok::<_, BenchError>((accepted, last_ack))
        }));
    }
    let (mut accepted, mut last_ack) = (0, start);
    for task in tasks {
        let (count, at) = task
            .await
            .map_err(|e| BenchError::Setup(format!("a writer task failed: {e}")))??;
        accepted += count;
        last_ack = last_ack.max(at.unwrap_or(start));
    }
    if accepted != plan.live_pushes {
        return Err(BenchError::Timeout(format!(
            "{accepted} of {} pushes acknowledged within {} s",
            plan.live_pushes,
            plan.live_limit.as_secs()
        )));
    }
    let drain_by = Instant::now() + ctx.plan.drain_limit;
    let visible_at = loop {
        let at = *visible.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = at {
            break at;
        }
        if Instant::now() > drain_by {
            return Err(BenchError::Timeout(format!(
                "the atom showed {} of {expected} documents {} s after the last acknowledgement",
                atom.snapshot().len(),
                ctx.plan.drain_limit.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let lag_ms = match visible_at.checked_duration_since(last_ack) {
        Some(after) => after.as_secs_f64() * 1e3,
        None => -(last_ack.duration_since(visible_at).as_secs_f64() * 1e3),
    };
    let reconnects = atom.status().failures - failures_before;
    eprintln!(
        "  ({} watcher calls for {} changes; {reconnects} connection failures)",
        calls.load(Ordering::Relaxed),
        plan.live_pushes
    );
    let pushes = plan.live_pushes as f64;
    Ok(Figures {
        lag_ms,
        rate: pushes / visible_at.duration_since(start).as_secs_f64().max(1e-9),
        acks: pushes / last_ack.duration_since(start).as_secs_f64().max(1e-9),
    })
}
