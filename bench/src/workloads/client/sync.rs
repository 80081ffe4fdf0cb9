//! The native client's first sync: a new store opens `synced_atom` on a group of 100,000
//! documents; the clock runs from that call until every key is in the map. It runs in a fresh
//! process of its own (`atomsync-bench client-sync`, on the bench core like the rest of
//! the load), so that its peak resident memory (`VmHWM`) is the sync's alone, not what
//! earlier workloads left in the bench's heap.
//!
//! Baseline: pulling every document over HTTP from `since=0` and decoding each page, in
//! pages of the size the WebSocket catch-up sends; what any client must at least do to
//! receive the same data.

use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use atomsync_client::{Options, Store};
use atomsync_proto::Encoding;

use super::super::catchup::{check_count, pull_pages, write_docs};
use super::super::{Ctx, Target};
use super::swap::client_error;
use crate::error::{BenchError, Result};
use crate::system;

/// The group of the first sync.
pub const GROUP: &str = "client-sync";

/// Documents per page: the server's catch-up page (`PAGE_DOCS` in `src/ws/catch_up.rs`),
/// which is also the pull's default `limit`.
pub const PAGE: usize = 1000;

/// Measurement keys: the sync's rate, the baseline's, the peak memory, the memory before.
pub const KEYS: [&str; 4] = [
    "client.sync",
    "raw.client.pull",
    "client.sync.rss",
    "client.sync.rss.before",
];

/// Writes the group's documents (untimed).
pub async fn setup(ctx: &Ctx, target: &Target, group: &str) -> Result<()> {
    write_docs(target, group, "sync", ctx.plan.client.sync_docs).await
}

/// Turns of baseline and sync per repetition: alternating, so that a burst of noise on
/// the machine does not fall on one side only.
const TURNS: usize = 2;

/// One repetition: the baseline and the first sync, in turns.
pub async fn run(ctx: &mut Ctx, target: &Target, rep: usize) {
    for turn in 0..TURNS {
        let want = ctx.plan.client.sync_docs;
        ctx.settle().await;
        let deadline = Instant::now() + ctx.plan.phase_limit;
        let pulled = pull_pages(target, GROUP, PAGE, Encoding::MsgPack, deadline)
            .await
            .and_then(|done| check_count(done, want));
        ctx.outcome(KEYS[1], pulled);

        ctx.settle().await;
        let db = ctx.dir.join(format!("client-sync-{rep}-{turn}.db"));
        let limit = ctx.plan.phase_limit + ctx.plan.drain_limit;
        let url = format!("{}/sync", target.base);
        let report = tokio::task::spawn_blocking(move || run_child(&url, want, &db, limit))
            .await
            .map_err(|e| BenchError::Setup(format!("the client-sync thread failed: {e}")))
            .and_then(|r| r);
        match report {
            Ok(report) => {
                ctx.outcome(KEYS[0], Ok(want as f64 / report.seconds.max(1e-9)));
                ctx.outcome(KEYS[2], Ok(report.peak_kib as f64 / 1024.0));
                ctx.outcome(KEYS[3], Ok(report.before_kib as f64 / 1024.0));
            }
            Err(e) => {
                for key in [KEYS[0], KEYS[2], KEYS[3]] {
                    ctx.outcome(key, Err(BenchError::Setup(e.to_string())));
                }
            }
        }
    }
}

/// What the child process reports.
#[derive(Debug)]
struct Report {
    seconds: f64,
    peak_kib: u64,
    before_kib: u64,
}

/// Runs `atomsync-bench client-sync` and reads its one-line report.
fn run_child(url: &str, docs: u64, db: &std::path::Path, limit: Duration) -> Result<Report> {
    let exe = std::env::current_exe().map_err(|e| BenchError::io("locating the bench", e))?;
    let mut child = Command::new(exe)
        .args(["client-sync", "--url", url, "--group", GROUP, "--docs"])
        .arg(docs.to_string())
        .arg("--db")
        .arg(db)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| BenchError::io("starting atomsync-bench client-sync", e))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Timeout(format!(
                    "the first sync did not end within {} s",
                    limit.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(BenchError::io("waiting for client-sync", e)),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|e| BenchError::io("reading client-sync's report", e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line: serde_json::Value = serde_json::from_str(text.trim()).map_err(|e| {
        BenchError::Protocol(format!(
            "client-sync printed {text:?} ({e}), exit {}",
            output.status
        ))
    })?;
    if let Some(error) = line["error"].as_str() {
        return Err(BenchError::Protocol(format!("client-sync: {error}")));
    }
    let number = |field: &str| {
        line[field].as_f64().ok_or_else(|| {
            BenchError::Protocol(format!("client-sync's report has no {field}: {line}"))
        })
    };
    Ok(Report {
        seconds: number("seconds")?,
        peak_kib: number("peak_kib")? as u64,
        before_kib: number("before_kib")? as u64,
    })
}

/// The child process (`atomsync-bench client-sync`): opens a new store at `db`, syncs
/// `group` from `url` until the map holds `docs` documents, and prints one JSON line:
/// `{"seconds", "peak_kib", "before_kib"}`, or `{"error"}`.
pub fn child(url: String, group: String, docs: u64, db: PathBuf) -> ExitCode {
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("starting the async runtime", e))
        .and_then(|runtime| runtime.block_on(sync_once(&url, &group, docs, db)));
    match outcome {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", serde_json::json!({ "error": e.to_string() }));
            ExitCode::FAILURE
        }
    }
}

async fn sync_once(url: &str, group: &str, docs: u64, db: PathBuf) -> Result<serde_json::Value> {
    let pid = std::process::id();
    let before_kib = system::vm_rss_kib(pid)?;
    let store = Store::open(&db).map_err(client_error)?;
    // The clock: from `synced_atom` (the store is open, as in an application that
    // opens its store at start) to every key in the map.
    let start = Instant::now();
    let cpu_before = system::cpu_seconds(pid)?;
    let atom = store
        .synced_atom(group, Options::new(url))
        .map_err(client_error)?;
    let mut maps = atom.subscribe();
    let mut versions = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while (maps.borrow_and_update().len() as u64) < docs {
        match tokio::time::timeout_at(deadline, maps.changed()).await {
            Ok(Ok(())) => versions += 1,
            _ => {
                return Err(BenchError::Timeout(format!(
                    "the atom held {} of {docs} documents after 60 s; status {:?}",
                    maps.borrow().len(),
                    atom.status()
                )));
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // Beside the wall time, to tell a sync that computed from one that waited (for the
    // disk, the server, or a core busy with another process).
    let cpu = system::cpu_seconds(pid)? - cpu_before;
    atom.ready().await;
    let ready = start.elapsed().as_secs_f64();
    let peak_kib = system::vm_hwm_kib(pid)?;
    eprintln!(
        "  (first sync: every key after {:.0} ms ({:.0} ms of CPU), ready after {:.0} ms, {versions} map versions seen)",
        seconds * 1e3,
        cpu * 1e3,
        ready * 1e3,
    );
    store.close().await;
    Ok(serde_json::json!({ "seconds": seconds, "peak_kib": peak_kib, "before_kib": before_kib }))
}
