//! The WebSocket workloads (PROTOCOL.md section 6):
//! - W4: a writer pushes single changes at a fixed rate; every subscriber notes when each
//!   change arrives; latency = arrival - the moment the push frame was sent.
//! - W5: a writer pushes as fast as the server answers (a window of pushes in flight);
//!   deliveries per second to all subscribers, Atomsync beside the broadcast baseline.
//! - Memory: resident memory per idle subscribed connection, from `VmRSS` before and after.
//!
//! Subscribers and writer share this process's clock, so a latency is a plain difference
//! of two `Instant`s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use atomsync_proto::wire::ServerFrame;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::data;
use crate::error::{BenchError, Result};
use crate::latency::{Latency, SendLog, key_index};
use crate::ws::{self, Ws};

/// Subscriptions opened at once while connecting many subscribers.
const CONNECT_CONCURRENCY: usize = 64;
/// W5's pushes in flight: enough to keep the server busy, few enough to be a real client.
const PUSH_WINDOW: usize = 64;

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    latencies: Vec<u64>,
    received: u64,
    last: Option<Instant>,
    closed: Option<String>,
}

/// Subscribers whose connection ended before they saw every change (a server may close a
/// subscriber too slow to keep up with code 1013): printed, since their deliveries count
/// as lost.
#[derive(Debug, Default)]
struct Ended {
    count: usize,
    first: Option<String>,
}

impl Ended {
    fn note(&mut self, seen: &Seen) {
        if let Some(reason) = &seen.closed {
            self.count += 1;
            self.first.get_or_insert_with(|| reason.clone());
        }
    }

    fn report(&self) {
        if let Some(first) = &self.first {
            eprintln!(
                "  {} subscriber connections ended early, the first: {first}",
                self.count
            );
        }
    }
}

/// Opens `count` connections to `addr`, each subscribed to `group` from 0.
async fn open_subscribers(
    addr: SocketAddr,
    path: &'static str,
    group: &str,
    count: usize,
) -> Result<Vec<Ws>> {
    let connects = futures_util::stream::iter(0..count)
        .map(|_| async move {
            let mut ws = ws::connect(addr, path).await?;
            ws::subscribe(&mut ws, group, 0).await?;
            Ok::<_, BenchError>(ws)
        })
        .buffer_unordered(CONNECT_CONCURRENCY);
    let all: Vec<Result<Ws>> = connects.collect().await;
    all.into_iter().collect()
}

/// Reads `expected` changes or until `deadline`, noting latencies when `log` is given.
fn listen(
    mut ws: Ws,
    expected: u64,
    log: Option<Arc<SendLog>>,
    deadline: tokio::time::Instant,
) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        while seen.received < expected {
            let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
                Err(_) => break,
                Ok(None) => {
                    seen.closed = Some("the connection closed".into());
                    break;
                }
                Ok(Some(Err(e))) => {
                    seen.closed = Some(e.to_string());
                    break;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let at = Instant::now();
            let bytes = match frame {
                Message::Binary(bytes) => bytes,
                Message::Close(close) => {
                    seen.closed = Some(format!("closed by the server: {close:?}"));
                    break;
                }
                _ => continue,
            };
            if let Ok(ServerFrame::Changes { changes, .. }) =
                ServerFrame::decode(&bytes, atomsync_proto::Encoding::MsgPack)
            {
                seen.received += changes.len() as u64;
                seen.last = Some(at);
                if let Some(log) = &log {
                    for doc in &changes {
                        let index = key_index(&doc.key);
                        if let Some(latency) = index.and_then(|i| log.latency(i, at)) {
                            seen.latencies.push(latency);
                        }
                    }
                }
            }
        }
        seen
    })
}

/// How a writer's pushes go out.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// At this many pushes per second, whatever the answers.
    Rate(u64),
    /// As fast as answers come back, with [`PUSH_WINDOW`] in flight.
    Window,
}

/// Sends `pushes` single-change pushes to `group` (key index = push index); returns when
/// every push is answered, or at `deadline`.
async fn write(
    addr: SocketAddr,
    path: &'static str,
    group: &str,
    pushes: u64,
    pace: Pace,
    log: Arc<SendLog>,
    deadline: tokio::time::Instant,
) -> Result<Instant> {
    let frames: Vec<bytes::Bytes> = (0..pushes)
        .map(|i| {
            ws::push_frame(
                i,
                &data::push_request(group, &data::changes("s", i..i + 1, |_| 0)),
            )
        })
        .collect();
    let ws = ws::connect(addr, path).await?;
    let (mut sink, mut stream) = ws.split();
    let window = Arc::new(Semaphore::new(PUSH_WINDOW));
    let acks = {
        let window = window.clone();
        tokio::spawn(async move {
            let mut answered = 0;
            while answered < pushes {
                match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(Some(Ok(Message::Binary(bytes)))) => {
                        match ServerFrame::decode(&bytes, atomsync_proto::Encoding::MsgPack)? {
                            ServerFrame::Pushed { .. } => {
                                answered += 1;
                                window.add_permits(1);
                            }
                            ServerFrame::Error { error, .. } => {
                                return Err(BenchError::Protocol(format!(
                                    "push answered {}: {}",
                                    error.code.as_str(),
                                    error.message
                                )));
                            }
                            _ => {}
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(e))) => return Err(e.into()),
                    Ok(None) => {
                        return Err(BenchError::Protocol(
                            "the writer's connection closed".into(),
                        ));
                    }
                    Err(_) => {
                        return Err(BenchError::Timeout(format!(
                            "{answered} of {pushes} pushes answered; the rest"
                        )));
                    }
                }
            }
            Ok(())
        })
    };
    let start = Instant::now();
    for (index, frame) in (0u64..).zip(frames) {
        match pace {
            Pace::Rate(rate) => {
                let at = start + Duration::from_secs_f64(index as f64 / rate.max(1) as f64);
                tokio::time::sleep_until(at.into()).await;
            }
            Pace::Window => match tokio::time::timeout_at(deadline, window.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                _ => break,
            },
        }
        log.mark(index);
        sink.send(Message::Binary(frame)).await?;
    }
    acks.await
        .map_err(|e| BenchError::Setup(format!("the writer's reader failed: {e}")))??;
    let _ = sink.close().await;
    Ok(start)
}

/// The end of a phase's waiting: sending time plus the drain allowance.
fn phase_deadline(plan: &crate::plan::Plan, sending: Duration) -> tokio::time::Instant {
    tokio::time::Instant::now() + sending + plan.drain_limit
}

/// W4, one (rate, subscribers) pair on a new group.
pub async fn w4(
    ctx: &super::Ctx,
    target: &super::Target,
    rate: u64,
    subscribers: usize,
    rep: usize,
) -> Result<Latency> {
    let group = format!("w4-r{rate}-s{subscribers}-{rep}");
    let pushes = ctx.plan.w4_pushes(rate, subscribers);
    let subs = open_subscribers(target.addr, "/sync/ws", &group, subscribers).await?;
    ctx.settle().await;
    let log = Arc::new(SendLog::new(pushes));
    let deadline = phase_deadline(
        &ctx.plan,
        Duration::from_secs_f64(pushes as f64 / rate as f64),
    );
    let listeners: Vec<_> = subs
        .into_iter()
        .map(|ws| listen(ws, pushes, Some(log.clone()), deadline))
        .collect();
    write(
        target.addr,
        "/sync/ws",
        &group,
        pushes,
        Pace::Rate(rate),
        log,
        deadline,
    )
    .await?;
    let mut latencies = Vec::with_capacity(pushes as usize * subscribers);
    let mut ended = Ended::default();
    for listener in listeners {
        let seen = listener
            .await
            .map_err(|e| BenchError::Setup(format!("a subscriber task failed: {e}")))?;
        ended.note(&seen);
        latencies.extend(seen.latencies);
    }
    ended.report();
    Latency::from_nanos(latencies, pushes * subscribers as u64)
        .ok_or_else(|| BenchError::Protocol("no subscriber received any change".into()))
}

/// W5's numbers for one subscriber count: deliveries per second and lost deliveries.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    /// Changes delivered to subscribers per second, from the first push to the last arrival.
    pub per_second: f64,
    /// Deliveries that never arrived.
    pub lost: u64,
}

/// W5, one subscriber count on a new group, against `addr` (Atomsync at `/sync/ws`, or
/// the broadcast baseline).
pub async fn w5(
    ctx: &super::Ctx,
    addr: SocketAddr,
    path: &'static str,
    subscribers: usize,
    rep: usize,
) -> Result<Fanout> {
    let group = format!("w5-s{subscribers}-{rep}");
    let pushes = (ctx.plan.w5_deliveries / subscribers.max(1) as u64).max(1);
    let subs = open_subscribers(addr, path, &group, subscribers).await?;
    ctx.settle().await;
    let deadline = phase_deadline(&ctx.plan, ctx.plan.phase_limit);
    let listeners: Vec<_> = subs
        .into_iter()
        .map(|ws| listen(ws, pushes, None, deadline))
        .collect();
    let start = write(
        addr,
        path,
        &group,
        pushes,
        Pace::Window,
        Arc::new(SendLog::new(0)),
        deadline,
    )
    .await?;
    let mut received = 0;
    let mut last = start;
    let mut ended = Ended::default();
    for listener in listeners {
        let seen = listener
            .await
            .map_err(|e| BenchError::Setup(format!("a subscriber task failed: {e}")))?;
        ended.note(&seen);
        received += seen.received;
        last = last.max(seen.last.unwrap_or(start));
    }
    ended.report();
    let seconds = last.duration_since(start).as_secs_f64().max(1e-9);
    Ok(Fanout {
        per_second: received as f64 / seconds,
        lost: (pushes * subscribers as u64).saturating_sub(received),
    })
}

/// Resident memory per idle subscribed connection, in KiB: `pid`'s `VmRSS` before and after
/// opening `count` connections (one warm-up connection first, so one-time allocations do
/// not count), each subscribed to one group and then left idle for a second.
pub async fn memory_per_connection(
    addr: SocketAddr,
    path: &'static str,
    pid: u32,
    count: usize,
) -> Result<f64> {
    let warm = open_subscribers(addr, path, "memory", 1).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = crate::system::vm_rss_kib(pid)?;
    let idle = open_subscribers(addr, path, "memory", count).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = crate::system::vm_rss_kib(pid)?;
    drop(idle);
    drop(warm);
    Ok(after.saturating_sub(before) as f64 / count.max(1) as f64)
}
