//! `idle_groups`: touches many distinct groups on a running server (one push and one
//! subscription each, the layout of one group per user), leaves them idle, and prints the
//! server's resident memory before, at its peak, and after the idle timeout: what the
//! reclaiming of idle group actors is for (issue 11).
//!
//! ```text
//! atomsync-server --bind 127.0.0.1:8090 --db /tmp/idle.db   # group_idle_timeout: 60s
//! cargo run --release --example idle_groups -- 127.0.0.1:8090 SERVER_PID 100000 70
//! ```
//!
//! The last argument is how many seconds to wait after the groups went idle.

use std::error::Error;
use std::time::{Duration, Instant};

use atomsync_proto::Encoding;
use atomsync_proto::wire::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str = "usage: idle_groups HOST:PORT SERVER_PID GROUPS WAIT_SECONDS";
/// Subscriptions sent before their answers are read.
const WINDOW: usize = 500;

/// The server's resident set size in KiB, from /proc.
fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr, pid, groups, wait] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let groups: usize = groups.parse()?;
    let wait = Duration::from_secs(wait.parse()?);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let before = rss_kib(pid);
    let mut peak = before;
    let http = reqwest::Client::new();
    let started = Instant::now();
    for i in 0..groups {
        let body = format!(
            r#"{{"group":"user-{i}","changes":[{{"key":"profile","base":0,"value":{{"n":{i}}}}}]}}"#
        );
        let res = http
            .post(format!("http://{addr}/sync"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(format!("push {i}: {}", res.status()).into());
        }
        if i % 5000 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sync/ws")).await?;
    for start in (0..groups).step_by(WINDOW) {
        let end = (start + WINDOW).min(groups);
        for i in start..end {
            let frame = ClientFrame::Subscribe {
                group: format!("user-{i}"),
                since: 0,
            };
            socket
                .send(Message::binary(frame.encode(Encoding::MsgPack)))
                .await?;
        }
        let mut subscribed = 0;
        while subscribed < end - start {
            let Some(message) = socket.next().await else {
                return Err("the server closed".into());
            };
            if let Message::Binary(bytes) = message?
                && let ServerFrame::Subscribed { .. } =
                    ServerFrame::decode(&bytes, Encoding::MsgPack)?
            {
                subscribed += 1;
            }
        }
        peak = peak.max(rss_kib(pid));
    }
    let touched = started.elapsed();
    peak = peak.max(rss_kib(pid));
    let actors = admin_actors(addr).await;
    socket.close(None).await?;
    drop(socket);
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        peak = peak.max(rss_kib(pid));
    }
    let after = rss_kib(pid);
    println!(
        "{groups} groups touched (a push and a subscription each) in {:.1} s; group actors at the end: {actors}",
        touched.as_secs_f64()
    );
    println!(
        "server RSS: before {} MiB, peak {} MiB, after {} s idle {} MiB; group actors then: {}",
        before / 1024,
        peak / 1024,
        wait.as_secs(),
        after / 1024,
        admin_actors(addr).await
    );
    Ok(())
}

/// `group_actors` from `GET /admin/server` (the admin token `root`), or `?` without it.
async fn admin_actors(addr: &str) -> String {
    let answer = reqwest::Client::new()
        .get(format!("http://{addr}/admin/server"))
        .bearer_auth("root")
        .send()
        .await;
    match answer {
        Ok(res) if res.status().is_success() => res
            .json::<serde_json::Value>()
            .await
            .map(|v| v["group_actors"].to_string())
            .unwrap_or_else(|_| "?".into()),
        _ => "?".into(),
    }
}
