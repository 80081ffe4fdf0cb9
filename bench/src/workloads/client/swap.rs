//! `swap` of one key on an offline atom of each size, and its baseline: one SQLite
//! transaction writing one row with `synchronous=FULL`, the least a durable local write
//! can cost on this disk.
//!
//! Each atom gets a store of its own, filled by one swap of every document (untimed), so
//! every document is a pending change, as after working offline. Then each timed swap
//! gives one existing key a new value; the figure is the mean time per swap, fsyncs and
//! WAL checkpoints included. The atoms and the baseline take turns in rounds, so that
//! the machine's noise (other processes' disk writes lengthen every fsync) falls on all.

use std::path::Path;
use std::time::{Duration, Instant};

use atomsync_client::{Options, Store, SyncedAtom};
use rusqlite::{Connection, params};

use super::super::Ctx;
use crate::data;
use crate::error::{BenchError, Result};

/// The baseline's measurement key.
pub const RAW_KEY: &str = "raw.client.tx";

/// Rounds that only warm up (the first touch of each file's pages), untimed.
const WARM_UP_ROUNDS: usize = 1;

/// The measurement key of the swap on an atom of `size` documents.
pub fn key(size: u64) -> String {
    format!("client.swap.n{size}")
}

/// A sync URL nothing listens on (the discard port, refused at once): the atom stays
/// offline, as the figure is.
const OFFLINE_URL: &str = "http://127.0.0.1:9/sync";

/// Rounds the swaps are spread over: every size and the baseline take their turn in each
/// round, so that a burst of noise from a neighbour on the machine hits all alike.
const ROUNDS: usize = 10;

/// One repetition: every atom filled (untimed), then the swaps and the baseline's
/// transactions, interleaved.
pub async fn run(ctx: &mut Ctx, rep: usize) {
    let sizes = ctx.plan.client.swap_sizes.clone();
    let keys: Vec<String> = sizes.iter().map(|&size| key(size)).collect();
    match measure(ctx, rep).await {
        Ok((raw, swaps)) => {
            ctx.outcome(RAW_KEY, Ok(raw));
            for (key, micros) in keys.iter().zip(swaps) {
                ctx.outcome(key, Ok(micros));
            }
        }
        Err(e) => {
            for key in keys.iter().map(String::as_str).chain([RAW_KEY]) {
                ctx.outcome(key, Err(BenchError::Setup(e.to_string())));
            }
        }
    }
}

/// Mean µs per baseline transaction, and per swap on each atom.
async fn measure(ctx: &Ctx, rep: usize) -> Result<(f64, Vec<f64>)> {
    let mut stores = Vec::new();
    let mut atoms = Vec::new();
    for &size in &ctx.plan.client.swap_sizes {
        let path = ctx.dir.join(format!("client-swap-{size}-{rep}.db"));
        let store = Store::open(&path).map_err(client_error)?;
        let atom = store
            .synced_atom("swap", Options::new(OFFLINE_URL))
            .map_err(client_error)?;
        let filler = atom.clone();
        blocking(move || fill(&filler, size)).await?;
        stores.push(store);
        atoms.push((atom, size));
    }
    let raw_path = ctx.dir.join(format!("client-raw-{rep}.db"));
    let swaps = ctx.plan.client.swaps;
    ctx.settle().await;
    let timed = blocking(move || {
        let mut raw = RawWriter::open(&raw_path)?;
        let mut raw_time = Duration::ZERO;
        let mut swap_times = vec![Duration::ZERO; atoms.len()];
        let per_round = swaps.div_ceil(ROUNDS);
        for round in 0..ROUNDS {
            let counted = round >= WARM_UP_ROUNDS;
            for turn in 0..=atoms.len() {
                // Each round starts with another of them.
                let which = (turn + round) % (atoms.len() + 1);
                let start = Instant::now();
                match atoms.get(which) {
                    Some((atom, size)) => {
                        for i in 0..per_round {
                            swap_once(atom, *size, (round * per_round + i) as u64)?;
                        }
                        if counted {
                            swap_times[which] += start.elapsed();
                        }
                    }
                    None => {
                        for i in 0..per_round {
                            raw.write((round * per_round + i) as u64)?;
                        }
                        if counted {
                            raw_time += start.elapsed();
                        }
                    }
                }
            }
        }
        let timed_count = (per_round * (ROUNDS - WARM_UP_ROUNDS)) as f64;
        let micros = |time: Duration| time.as_secs_f64() * 1e6 / timed_count;
        Ok((
            micros(raw_time),
            swap_times.into_iter().map(micros).collect(),
        ))
    })
    .await;
    for store in stores {
        store.close().await;
    }
    timed
}

/// Gives the atom `size` documents in one swap, as after working offline.
fn fill(atom: &SyncedAtom, size: u64) -> Result<()> {
    atom.swap(|map| {
        for i in 0..size {
            map.insert(data::key("swap", i), data::value(i));
        }
    })
    .map_err(client_error)?;
    let len = atom.snapshot().len() as u64;
    if len != size {
        return Err(BenchError::Protocol(format!(
            "the atom holds {len} documents, not {size}"
        )));
    }
    Ok(())
}

/// One swap giving one existing key (spread over the map) a new value.
fn swap_once(atom: &SyncedAtom, size: u64, n: u64) -> Result<()> {
    let index = (n * 7919) % size.max(1);
    let value = data::value(size + n);
    atom.swap(|map| {
        map.insert(data::key("swap", index), value.clone());
    })
    .map_err(client_error)?;
    Ok(())
}

/// The baseline: one ~100-byte row written per transaction, WAL, `synchronous=FULL`.
struct RawWriter {
    conn: Connection,
}

impl RawWriter {
    fn open(path: &Path) -> Result<RawWriter> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS docs (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID;",
        )?;
        Ok(RawWriter { conn })
    }

    fn write(&mut self, n: u64) -> Result<()> {
        let value = atomsync_proto::Packed::from_value(&data::value(n));
        let tx = self.conn.transaction()?;
        tx.prepare_cached("INSERT OR REPLACE INTO docs (key, value) VALUES (?1, ?2)")?
            .execute(params![data::key("raw", n % 100), value.as_bytes()])?;
        tx.commit()?;
        Ok(())
    }
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
