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
use std::sync::atomic::{AtomicU64, Ordering};
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

/// How often a waiting subscriber looks again at how many changes it should expect.
const RECHECK: Duration = Duration::from_millis(100);

/// Reads changes until it has `expected` (which the writer lowers to what it really sent),
/// or until `deadline`, noting latencies when `log` is given.
fn listen(
    mut ws: Ws,
    expected: Arc<AtomicU64>,
    log: Option<Arc<SendLog>>,
    deadline: tokio::time::Instant,
) -> tokio::task::JoinHandle<Seen> {
    tokio::spawn(async move {
        let mut seen = Seen::default();
        while seen.received < expected.load(Ordering::Acquire) {
            let wait = deadline.min(tokio::time::Instant::now() + RECHECK);
            let frame = match tokio::time::timeout_at(wait, ws.next()).await {
                Err(_) if tokio::time::Instant::now() >= deadline => break,
                Err(_) => continue,
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
                        if let Some(latency) = key_index(&doc.key).and_then(|i| log.latency(i, at))
                        {
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
    /// As fast as answers come back, with [`PUSH_WINDOW`] in flight, until the phase's
    /// time is up.
    Window,
}

/// What a writer did.
#[derive(Debug)]
struct Written {
    /// When the first push went out.
    start: Instant,
    /// Pushes sent.
    sent: u64,
    /// Pushes answered `pushed` before the deadline.
    answered: u64,
}

/// Sends up to `pushes` single-change pushes to `group` (key index = push index), setting
/// `expected` to the number sent once done, then waits for their answers until `deadline`.
/// An error answer, or a closed connection, fails the phase; slowness does not.
#[allow(clippy::too_many_arguments)]
async fn write(
    addr: SocketAddr,
    path: &'static str,
    group: &str,
    pushes: u64,
    pace: Pace,
    log: Arc<SendLog>,
    send_until: tokio::time::Instant,
    deadline: tokio::time::Instant,
    expected: &AtomicU64,
) -> Result<Written> {
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
    let answered = Arc::new(AtomicU64::new(0));
    let acks = {
        let (window, answered) = (window.clone(), answered.clone());
        tokio::spawn(async move {
            while let Some(message) = stream.next().await {
                if let Message::Binary(bytes) = message? {
                    match ServerFrame::decode(&bytes, atomsync_proto::Encoding::MsgPack)? {
                        ServerFrame::Pushed { .. } => {
                            answered.fetch_add(1, Ordering::AcqRel);
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
            }
            Err(BenchError::Protocol(
                "the server closed the writer's connection".into(),
            ))
        })
    };
    let start = Instant::now();
    let mut sent = 0;
    for frame in frames {
        match pace {
            Pace::Rate(rate) => {
                tokio::time::sleep_until(
                    (start + Duration::from_secs_f64(sent as f64 / rate.max(1) as f64)).into(),
                )
                .await;
            }
            Pace::Window => match tokio::time::timeout_at(send_until, window.acquire()).await {
                Ok(Ok(permit)) => permit.forget(),
                _ => break,
            },
        }
        log.mark(sent);
        sink.send(Message::Binary(frame)).await?;
        sent += 1;
    }
    expected.store(sent, Ordering::Release);
    while answered.load(Ordering::Acquire) < sent
        && tokio::time::Instant::now() < deadline
        && !acks.is_finished()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if acks.is_finished() {
        acks.await
            .map_err(|e| BenchError::Setup(format!("the writer's reader failed: {e}")))??;
    } else {
        acks.abort();
    }
    let _ = sink.close().await;
    let answered = answered.load(Ordering::Acquire);
    if answered < sent {
        eprintln!("  {answered} of {sent} pushes answered within the phase's time");
    }
    Ok(Written {
        start,
        sent,
        answered,
    })
}

/// Collects every subscriber's view.
async fn gather(listeners: Vec<tokio::task::JoinHandle<Seen>>) -> Result<Vec<Seen>> {
    let mut all = Vec::with_capacity(listeners.len());
    let mut ended = Ended::default();
    for listener in listeners {
        let seen = listener
            .await
            .map_err(|e| BenchError::Setup(format!("a subscriber task failed: {e}")))?;
        ended.note(&seen);
        all.push(seen);
    }
    ended.report();
    Ok(all)
}

/// W4, one (rate, subscribers) pair on a new group: latencies over the deliveries that
/// arrived, and how many did not.
pub async fn w4(
    ctx: &super::Ctx,
    target: &super::Target,
    rate: u64,
    subscribers: usize,
    rep: usize,
) -> Result<Latency> {
    let group = format!("w4-r{rate}-s{subscribers}-{rep}");
    latency(ctx, target.addr, target.addr, &group, rate, subscribers).await
}

/// W4's measurement on `group`: the writer on the server at `writer`, the subscribers on
/// the one at `reader` (another instance on the same database, or the same server).
pub async fn latency(
    ctx: &super::Ctx,
    writer: SocketAddr,
    reader: SocketAddr,
    group: &str,
    rate: u64,
    subscribers: usize,
) -> Result<Latency> {
    let pushes = ctx.plan.w4_pushes(rate, subscribers);
    let subs = open_subscribers(reader, "/sync/ws", group, subscribers).await?;
    ctx.settle().await;
    let log = Arc::new(SendLog::new(pushes));
    let sending = Duration::from_secs_f64(pushes as f64 / rate.max(1) as f64);
    let send_until = tokio::time::Instant::now() + sending;
    let deadline = send_until + ctx.plan.drain_limit;
    let expected = Arc::new(AtomicU64::new(pushes));
    let listeners = subs
        .into_iter()
        .map(|ws| listen(ws, expected.clone(), Some(log.clone()), deadline))
        .collect();
    let written = write(
        writer,
        "/sync/ws",
        group,
        pushes,
        Pace::Rate(rate),
        log,
        send_until,
        deadline,
        &expected,
    )
    .await?;
    let latencies: Vec<u64> = gather(listeners)
        .await?
        .into_iter()
        .flat_map(|s| s.latencies)
        .collect();
    Latency::from_nanos(latencies, written.sent * subscribers as u64).ok_or_else(|| {
        BenchError::Protocol(format!(
            "no subscriber received any change ({} of {} pushes answered)",
            written.answered, written.sent
        ))
    })
}

/// W5's numbers for one subscriber count: deliveries per second and lost deliveries.
#[derive(Debug, Clone, Copy)]
pub struct Fanout {
    /// Changes delivered to subscribers per second, from the first push to the last arrival.
    pub per_second: f64,
    /// Deliveries of sent pushes that never arrived.
    pub lost: u64,
}

/// W5, one subscriber count on a new group, against `addr` (Atomsync at `/sync/ws`, or
/// the broadcast baseline): the writer pushes for at most the phase's time.
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
    let send_until = tokio::time::Instant::now() + ctx.plan.phase_limit;
    let deadline = send_until + ctx.plan.drain_limit;
    let expected = Arc::new(AtomicU64::new(pushes));
    let listeners = subs
        .into_iter()
        .map(|ws| listen(ws, expected.clone(), None, deadline))
        .collect();
    let written = write(
        addr,
        path,
        &group,
        pushes,
        Pace::Window,
        Arc::new(SendLog::new(0)),
        send_until,
        deadline,
        &expected,
    )
    .await?;
    let seen = gather(listeners).await?;
    let received: u64 = seen.iter().map(|s| s.received).sum();
    let last = seen
        .iter()
        .filter_map(|s| s.last)
        .max()
        .unwrap_or(written.start);
    let seconds = last.duration_since(written.start).as_secs_f64().max(1e-9);
    Ok(Fanout {
        per_second: received as f64 / seconds,
        lost: (written.sent * subscribers as u64).saturating_sub(received),
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
