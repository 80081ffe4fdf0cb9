//! `swap` of one key on an offline atom of each size, and its baseline: one SQLite
//! transaction writing one row with `synchronous=FULL`, the least a durable local write
//! can cost on this disk.
//!
//! Each atom gets a store of its own, filled by one swap of every document (untimed), so
//! every document is a pending change, as after working offline. Then each timed swap
//! gives one existing key a new value; the figure is the mean time per swap, fsyncs and
//! WAL checkpoints included.

use std::path::Path;
use std::time::{Duration, Instant};

use atomsync_client::{Options, Store, SyncedAtom};
use rusqlite::{Connection, params};

use super::super::Ctx;
use crate::data;
use crate::error::{BenchError, Result};

/// The baseline's measurement key.
pub const RAW_KEY: &str = "raw.client.tx";

/// Swaps before the timed ones (the first touch of the file's pages).
const WARM_UP: usize = 5;

/// The measurement key of the swap on an atom of `size` documents.
pub fn key(size: u64) -> String {
    format!("client.swap.n{size}")
}

/// A sync URL nothing listens on (the discard port, refused at once): the atom stays
/// offline, as the figure is.
const OFFLINE_URL: &str = "http://127.0.0.1:9/sync";

/// One repetition: the baseline, then every size.
pub async fn run(ctx: &mut Ctx, rep: usize) {
    let swaps = ctx.plan.client.swaps;
    let path = ctx.dir.join(format!("client-raw-{rep}.db"));
    ctx.settle().await;
    let raw = tokio::task::spawn_blocking(move || raw_transactions(&path, swaps))
        .await
        .map_err(|e| BenchError::Setup(format!("the baseline thread failed: {e}")))
        .and_then(|r| r);
    ctx.outcome(RAW_KEY, raw);
    for size in ctx.plan.client.swap_sizes.clone() {
        let result = swap_on(ctx, size, rep).await;
        ctx.outcome(&key(size), result);
    }
}

/// Mean µs per swap on an atom of `size` documents.
async fn swap_on(ctx: &Ctx, size: u64, rep: usize) -> Result<f64> {
    let path = ctx.dir.join(format!("client-swap-{size}-{rep}.db"));
    let store = Store::open(&path).map_err(client_error)?;
    let atom = store
        .synced_atom("swap", Options::new(OFFLINE_URL))
        .map_err(client_error)?;
    let filler = atom.clone();
    blocking(move || {
        filler
            .swap(|map| {
                for i in 0..size {
                    map.insert(data::key("swap", i), data::value(i));
                }
            })
            .map_err(client_error)?;
        Ok(())
    })
    .await?;
    if atom.snapshot().len() as u64 != size {
        return Err(BenchError::Protocol(format!(
            "the atom holds {} documents, not {size}",
            atom.snapshot().len()
        )));
    }
    ctx.settle().await;
    let swaps = ctx.plan.client.swaps;
    let timer = atom.clone();
    let elapsed = blocking(move || time_swaps(&timer, size, swaps)).await?;
    store.close().await;
    Ok(elapsed.as_secs_f64() * 1e6 / swaps as f64)
}

/// Warms up, then times `swaps` swaps, each giving one existing key a new value.
fn time_swaps(atom: &SyncedAtom, size: u64, swaps: usize) -> Result<Duration> {
    let mut start = Instant::now();
    for i in 0..WARM_UP + swaps {
        if i == WARM_UP {
            start = Instant::now();
        }
        let index = (i as u64 * 7919) % size.max(1);
        let value = data::value(size + i as u64);
        atom.swap(|map| {
            map.insert(data::key("swap", index), value.clone());
        })
        .map_err(client_error)?;
    }
    Ok(start.elapsed())
}

/// Mean µs per transaction writing one ~100-byte row, WAL, `synchronous=FULL`.
fn raw_transactions(path: &Path, count: usize) -> Result<f64> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS docs (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;",
    )?;
    let values: Vec<_> = (0..(WARM_UP + count) as u64)
        .map(|i| {
            (
                data::key("raw", i % 100),
                atomsync_proto::Packed::from_value(&data::value(i)),
            )
        })
        .collect();
    let mut start = Instant::now();
    for (i, (key, value)) in values.iter().enumerate() {
        if i == WARM_UP {
            start = Instant::now();
        }
        let tx = conn.transaction()?;
        tx.prepare_cached("INSERT OR REPLACE INTO docs (key, value) VALUES (?1, ?2)")?
            .execute(params![key, value.as_bytes()])?;
        tx.commit()?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / count as f64)
}

/// Runs blocking client work (a swap waits for its fsync) off the runtime's threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BenchError::Setup(format!("a client thread failed: {e}")))?
}

/// A client error as the bench reports it.
pub fn client_error(error: impl std::fmt::Display) -> BenchError {
    BenchError::Protocol(format!("atomsync-client: {error}"))
}
