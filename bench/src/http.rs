//! The HTTP side of the load generator: `POST /sync` with a prepared body and `GET /sync`
//! pages, answers decoded and checked as a client would.

use atomsync_proto::Encoding;
use atomsync_proto::wire::{PullResponse, PushResponse, PushResult};

use crate::error::{BenchError, Result};

/// One HTTP client (a keep-alive connection pool) per load-generating task.
pub fn client() -> Result<reqwest::Client> {
    // reqwest is built without a TLS provider of its own; the bench speaks plain HTTP on
    // loopback, but the client still wants one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(4)
        .build()?)
}

/// How a push's changes fared.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Changes accepted.
    pub accepted: u64,
    /// Changes rejected as conflicts.
    pub conflicts: u64,
}

impl std::ops::AddAssign for Outcome {
    fn add_assign(&mut self, other: Outcome) {
        self.accepted += other.accepted;
        self.conflicts += other.conflicts;
    }
}

/// `POST base/sync` with `body` in `encoding`; a non-200 answer is an error that carries the
/// server's message (a `SQLITE_BUSY` shows up as `unavailable`).
pub async fn push(
    client: &reqwest::Client,
    base: &str,
    body: bytes::Bytes,
    encoding: Encoding,
) -> Result<Outcome> {
    let res = client
        .post(format!("{base}/sync"))
        .header("content-type", encoding.content_type())
        .header("accept", encoding.content_type())
        .body(body)
        .send()
        .await?;
    let status = res.status();
    let bytes = res.bytes().await?;
    if !status.is_success() {
        return Err(answer_error("push", status, &bytes, encoding));
    }
    let response = PushResponse::decode(&bytes, encoding)?;
    let mut outcome = Outcome::default();
    for result in &response.results {
        match result {
            PushResult::Accepted { .. } => outcome.accepted += 1,
            PushResult::Conflict { .. } => outcome.conflicts += 1,
        }
    }
    Ok(outcome)
}

/// `GET base/sync?group=G&since=S&limit=N`, decoded.
pub async fn pull(
    client: &reqwest::Client,
    base: &str,
    group: &str,
    since: u64,
    limit: usize,
    encoding: Encoding,
) -> Result<PullResponse> {
    let bytes = pull_bytes(client, base, group, since, limit, encoding).await?;
    Ok(PullResponse::decode(&bytes, encoding)?)
}

/// `GET base/sync?group=G&since=S&limit=N`: the 200 answer's bytes, not yet decoded.
pub async fn pull_bytes(
    client: &reqwest::Client,
    base: &str,
    group: &str,
    since: u64,
    limit: usize,
    encoding: Encoding,
) -> Result<bytes::Bytes> {
    let res = client
        .get(format!(
            "{base}/sync?group={group}&since={since}&limit={limit}"
        ))
        .header("accept", encoding.content_type())
        .send()
        .await?;
    let status = res.status();
    let bytes = res.bytes().await?;
    if !status.is_success() {
        return Err(answer_error("pull", status, &bytes, encoding));
    }
    Ok(bytes)
}

fn answer_error(
    what: &str,
    status: reqwest::StatusCode,
    body: &[u8],
    encoding: Encoding,
) -> BenchError {
    let detail = match atomsync_proto::wire::decode_error(body, encoding) {
        Ok(e) => format!("{}: {}", e.code.as_str(), e.message),
        Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
    };
    BenchError::Protocol(format!("{what} answered {status}: {detail}"))
}

/// True when an error is SQLite reporting its write lock taken (`SQLITE_BUSY`/`LOCKED`),
/// as the server words it in a 503.
pub fn is_busy(error: &BenchError) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    text.contains("busy") || text.contains("locked")
}
