//! The peer: pouchdb-server 4.2.0 (npm), on its default LevelDB store in a temporary
//! folder, pinned to the server core like Atomsync, driven with the same documents:
//! - `_bulk_docs` in batches of 100, beside W1;
//! - single `PUT`s, one client and 16 concurrent clients, beside W2;
//! - `_changes?feed=longpoll` delay from a `PUT`'s send to the long poll's answer, beside W4.
//!
//! It is installed once into `target/bench-peer/` (cached across runs). Without npm, or if
//! the install fails, the peer's rows say why and the rest of the run goes on.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Ctx;
use crate::data;
use crate::error::{BenchError, Result};
use crate::latency::{Latency, SendLog, key_index};
use crate::raw::Done;
use crate::server::{Process, wait_until_serving};
use crate::system;

/// The package the issue names.
const PACKAGE: &str = "pouchdb-server@4.2.0";
/// PUTs in flight at most while pacing the `_changes` writer: a server slower than the pace
/// slows the writer down rather than drowning in connections.
const PUTS_IN_FLIGHT: usize = 64;
/// The longest an `npm install` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(900);

/// A running pouchdb-server.
pub struct Peer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _process: Process,
    _dir: tempfile::TempDir,
}

/// The pouchdb-server script, installing it into `cache` first when it is not there.
pub fn install(cache: &Path) -> Result<PathBuf> {
    let script = cache.join("node_modules/pouchdb-server/bin/pouchdb-server");
    if script.is_file() {
        return Ok(script);
    }
    let npm_ok = Command::new("npm")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !npm_ok.is_ok_and(|s| s.success()) {
        return Err(BenchError::Setup(
            "npm is not available: install Node.js and npm to compare with pouchdb-server".into(),
        ));
    }
    std::fs::create_dir_all(cache)
        .map_err(|e| BenchError::io(format!("creating {}", cache.display()), e))?;
    eprintln!(
        "installing {PACKAGE} into {} (once; cached)",
        cache.display()
    );
    let log = std::fs::File::create(cache.join("npm-install.log"))
        .map_err(|e| BenchError::io("npm log", e))?;
    let log2 = log.try_clone().map_err(|e| BenchError::io("npm log", e))?;
    let mut child = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(cache)
        .arg(PACKAGE)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| BenchError::io("npm install", e))?;
    let deadline = Instant::now() + INSTALL_TIMEOUT;
    let status = loop {
        match child
            .try_wait()
            .map_err(|e| BenchError::io("npm install", e))?
        {
            Some(status) => break status,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BenchError::Timeout(format!("npm install {PACKAGE}")));
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    if status.success() && script.is_file() {
        Ok(script)
    } else {
        Err(BenchError::Setup(format!(
            "npm install {PACKAGE} failed ({status}); see {}/npm-install.log",
            cache.display()
        )))
    }
}

impl Peer {
    /// Starts `script` under node on a free loopback port with a new store.
    pub fn start(script: &Path, core: Option<usize>) -> Result<Peer> {
        let dir = tempfile::tempdir().map_err(|e| BenchError::io("temporary folder", e))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| BenchError::io("finding a free port", e))?
            .port();
        let mut cmd = system::pinned_command(Path::new("node"), core);
        cmd.arg(script)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--no-stdout-logs",
                "--dir",
            ])
            .arg(dir.path())
            .current_dir(dir.path());
        let log = dir.path().join("bench-peer.log");
        let (process, _) =
            Process::start(cmd, &log, "pouchdb-server has started on", "pouchdb-server")?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        wait_until_serving(addr)?;
        Ok(Peer {
            base: format!("http://{addr}"),
            _process: process,
            _dir: dir,
        })
    }

    async fn create_db(&self, client: &reqwest::Client, db: &str) -> Result<()> {
        let res = client.put(format!("{}/{db}", self.base)).send().await?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(BenchError::Protocol(format!(
                "PUT /{db} answered {}",
                res.status()
            )))
        }
    }
}

/// One client's requests in order: the document id to `PUT` (empty: a `_bulk_docs` POST),
/// and the body.
type Requests = Vec<(String, Bytes)>;

fn json_body(value: &serde_json::Value) -> Bytes {
    Bytes::from(value.to_string())
}

/// Sends each client's requests in turn, all clients at once; `bulk` requests are
/// `POST /db/_bulk_docs` of `per_request` documents, else `PUT /db/ID` of one.
async fn run_clients(
    ctx: &Ctx,
    peer: &Peer,
    db: &str,
    clients: Vec<Requests>,
    per_request: u64,
) -> Result<Done> {
    let deadline = Instant::now() + ctx.plan.phase_limit;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for requests in clients {
        let client = crate::http::client()?;
        let base = format!("{}/{db}", peer.base);
        tasks.push(tokio::spawn(async move {
            let mut written = 0;
            for (path, body) in requests {
                if Instant::now() >= deadline {
                    break;
                }
                let req = if path.is_empty() {
                    client.post(format!("{base}/_bulk_docs"))
                } else {
                    client.put(format!("{base}/{path}"))
                };
                let res = req
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await?;
                let status = res.status();
                let text = res.text().await?;
                if !status.is_success() || text.contains("\"error\"") {
                    return Err(BenchError::Protocol(format!(
                        "pouchdb-server answered {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )));
                }
                written += per_request;
            }
            Ok::<_, BenchError>(written)
        }));
    }
    let mut items = 0;
    for task in tasks {
        items += task
            .await
            .map_err(|e| BenchError::Setup(format!("a peer client failed: {e}")))??;
    }
    Ok(Done {
        items,
        elapsed: start.elapsed(),
    })
}

/// One repetition of the peer's write workloads: `_bulk_docs`, sequential and concurrent PUTs.
pub async fn writes(ctx: &mut Ctx, peer: &Peer, rep: usize) {
    let client = match crate::http::client() {
        Ok(c) => c,
        Err(e) => return ctx.outcome("peer.bulk", Err(e)),
    };
    let plan = ctx.plan.clone();
    let bulk: Requests = (0..plan.peer_bulk)
        .collect::<Vec<_>>()
        .chunks(100)
        .map(|chunk| {
            let docs: Vec<_> = chunk.iter().map(|i| data::pouch_doc("w1", *i)).collect();
            (
                String::new(),
                json_body(&serde_json::json!({ "docs": docs })),
            )
        })
        .collect();
    let puts = |range: std::ops::Range<u64>| -> Requests {
        range
            .map(|i| (data::key("w2", i), json_body(&data::pouch_doc("w2", i))))
            .collect()
    };
    let clients = plan.w2_clients.max(1) as u64;
    let per_client = (plan.peer_puts / clients).max(1);
    let phases: Vec<(&str, Vec<Requests>, u64)> = vec![
        ("peer.bulk", vec![bulk], 100),
        ("peer.put.sequential", vec![puts(0..plan.peer_puts)], 1),
        (
            "peer.put.concurrent",
            (0..clients)
                .map(|c| puts(c * per_client..(c + 1) * per_client))
                .collect(),
            1,
        ),
    ];
    for (key, requests, per_request) in phases {
        let db = format!("{}-{rep}", key.replace('.', "-"));
        let rate = match peer.create_db(&client, &db).await {
            Ok(()) => {
                ctx.settle().await;
                run_clients(ctx, peer, &db, requests, per_request)
                    .await
                    .map(|d| d.rate())
            }
            Err(e) => Err(e),
        };
        ctx.outcome(key, rate);
    }
}

/// One repetition of the `_changes` comparison at `rate` PUTs per second, one long poller.
pub async fn longpoll(ctx: &Ctx, peer: &Peer, rate: u64, rep: usize) -> Result<Latency> {
    let client = crate::http::client()?;
    let db = format!("changes-r{rate}-{rep}");
    peer.create_db(&client, &db).await?;
    let pushes = ctx.plan.w4_pushes(rate, 1);
    let log = Arc::new(SendLog::new(pushes));
    let deadline = Instant::now()
        + ctx.plan.settle
        + Duration::from_secs_f64(pushes as f64 / rate as f64)
        + ctx.plan.drain_limit;
    let poller = {
        let (client, url, log) = (
            client.clone(),
            format!("{}/{db}/_changes?feed=longpoll", peer.base),
            log.clone(),
        );
        tokio::spawn(async move {
            let mut since = serde_json::Value::from(0);
            let mut delays = Vec::new();
            while (delays.len() as u64) < pushes && Instant::now() < deadline {
                let since_text = since
                    .as_str()
                    .map_or_else(|| since.to_string(), str::to_owned);
                let body: serde_json::Value = client
                    .get(format!("{url}&since={since_text}"))
                    .send()
                    .await?
                    .json()
                    .await?;
                let at = Instant::now();
                for change in body
                    .get("results")
                    .and_then(|r| r.as_array())
                    .into_iter()
                    .flatten()
                {
                    let index = change
                        .get("id")
                        .and_then(|i| i.as_str())
                        .and_then(key_index);
                    delays.extend(index.and_then(|i| log.latency(i, at)));
                }
                since = body
                    .get("last_seq")
                    .cloned()
                    .ok_or_else(|| BenchError::Protocol("_changes without last_seq".into()))?;
            }
            Ok::<_, BenchError>(delays)
        })
    };
    ctx.settle().await;
    let start = Instant::now();
    let mut writes = Vec::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(PUTS_IN_FLIGHT));
    for i in 0..pushes {
        tokio::time::sleep_until((start + Duration::from_secs_f64(i as f64 / rate as f64)).into())
            .await;
        let permit = in_flight
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
        let (client, url, body, log) = (
            client.clone(),
            format!("{}/{db}/{}", peer.base, data::key("c", i)),
            json_body(&data::pouch_doc("c", i)),
            log.clone(),
        );
        writes.push(tokio::spawn(async move {
            let _permit = permit;
            log.mark(i);
            client
                .put(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await?
                .error_for_status()?;
            Ok::<_, BenchError>(())
        }));
    }
    let sending = start.elapsed().as_secs_f64();
    for write in writes {
        write
            .await
            .map_err(|e| BenchError::Setup(format!("a peer PUT failed: {e}")))??;
    }
    let achieved = pushes as f64 / sending.max(1e-9);
    if achieved < rate as f64 * 0.9 {
        eprintln!(
            "  pouchdb-server took PUTs at {achieved:.0}/s of the {rate}/s asked ({PUTS_IN_FLIGHT} in flight at most)"
        );
    }
    let delays = tokio::time::timeout_at(deadline.into(), poller)
        .await
        .map_err(|_| BenchError::Timeout("the _changes long poll".into()))?
        .map_err(|e| BenchError::Setup(format!("the long poller failed: {e}")))??;
    Latency::from_nanos(delays, pushes)
        .ok_or_else(|| BenchError::Protocol("the long poll saw no change".into()))
}
