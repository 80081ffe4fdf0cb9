//! W5's baseline: a minimal tokio-tungstenite broadcast server that does the same
//! deliveries as Atomsync, and nothing else: no storage, no auth, no limits beyond the
//! codec's. It speaks just enough of PROTOCOL.md section 6 for the same load generator:
//! `subscribe` (answered `subscribed`), and `push` (answered `pushed`, its changes given the
//! group's next seqs and sent to every subscriber as one `changes` frame, encoded once and
//! shared by all).
//!
//! It runs as its own process (`atomsync-bench broadcast-server`), pinned to the server core
//! like Atomsync, so that both are measured on equal terms.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use atomsync_proto::wire::{
    ClientFrame, Doc, Op, PushResponse, PushResult, ServerFrame, encode_changes,
};
use atomsync_proto::{Encoding, Limits};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{BenchError, Result};

/// Frames queued for one connection; past it, frames to that connection are dropped (the
/// bench's workloads never queue that many).
const QUEUE: usize = 4096;

/// One group: its seq and its subscribers' queues.
#[derive(Default)]
struct Group {
    seq: u64,
    subscribers: Vec<mpsc::Sender<Message>>,
}

/// Group name → group. A std Mutex: held only to bump a seq or clone the queue list,
/// never across an await.
type Groups = Arc<Mutex<HashMap<String, Group>>>;

/// Serves on `127.0.0.1:0` until killed; prints `broadcast listening on ADDR` once bound.
pub async fn serve() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| BenchError::io("binding", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| BenchError::io("local address", e))?;
    println!("broadcast listening on {addr}");
    let groups = Groups::default();
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| BenchError::io("accept", e))?;
        let groups = groups.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, groups).await {
                eprintln!("connection: {e}");
            }
        });
    }
}

async fn connection(stream: TcpStream, groups: Groups) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let ws = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let (mut sink, mut source) = ws.split();
    let (queue, mut outbox) = mpsc::channel::<Message>(QUEUE);
    // The writer half: whatever is queued is fed, then flushed once the queue runs dry.
    let writer = tokio::spawn(async move {
        while let Some(first) = outbox.recv().await {
            sink.feed(first).await?;
            while let Ok(next) = outbox.try_recv() {
                sink.feed(next).await?;
            }
            sink.flush().await?;
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    });
    let limits = Limits::default();
    while let Some(message) = source.next().await {
        let (bytes, encoding) = match message? {
            Message::Binary(b) => (b, Encoding::MsgPack),
            Message::Text(t) => (bytes::Bytes::copy_from_slice(t.as_bytes()), Encoding::Json),
            Message::Close(_) => break,
            _ => continue,
        };
        let frame = ClientFrame::decode(&bytes, encoding, &limits)
            .map_err(|e| BenchError::Wire(e.error))?;
        let answer = match frame {
            ClientFrame::Subscribe { group, .. } => {
                let mut all = groups
                    .lock()
                    .map_err(|_| BenchError::Setup("a task panicked".into()))?;
                let g = all.entry(group.clone()).or_default();
                g.subscribers.push(queue.clone());
                ServerFrame::Subscribed {
                    group,
                    epoch: "broadcast".into(),
                    seq: g.seq,
                    reset: false,
                    floor: 0,
                }
            }
            ClientFrame::Unsubscribe { group } => ServerFrame::Unsubscribed { group },
            ClientFrame::Push { id, push } => {
                let request = push.validate(&limits)?;
                let (docs, seq, subscribers) = {
                    let mut all = groups
                        .lock()
                        .map_err(|_| BenchError::Setup("a task panicked".into()))?;
                    let g = all.entry(request.group.clone()).or_default();
                    let docs: Vec<Doc> = request
                        .changes
                        .iter()
                        .map(|c| {
                            g.seq += 1;
                            let value = match &c.op {
                                Op::Set(v) => Some(v.clone()),
                                Op::Delete => None,
                            };
                            Doc {
                                key: c.key.clone(),
                                version: c.base + 1,
                                seq: g.seq,
                                value,
                            }
                        })
                        .collect();
                    g.subscribers.retain(|s| !s.is_closed());
                    (docs, g.seq, g.subscribers.clone())
                };
                let shared = Message::Binary(
                    encode_changes(&request.group, &docs, seq, Encoding::MsgPack).into(),
                );
                for subscriber in subscribers {
                    // A full queue means a subscriber too slow to keep up: its frame is dropped, and
                    // the load generator counts the delivery as lost.
                    let _ = subscriber.try_send(shared.clone());
                }
                let results = docs
                    .iter()
                    .map(|d| PushResult::Accepted {
                        key: d.key.clone(),
                        version: d.version,
                        seq: d.seq,
                    })
                    .collect();
                ServerFrame::Pushed {
                    id,
                    response: PushResponse {
                        group: request.group,
                        epoch: "broadcast".into(),
                        results,
                        seq,
                    },
                }
            }
        };
        let bytes = answer.encode(encoding);
        let reply = match encoding {
            Encoding::MsgPack => Message::Binary(bytes.into()),
            Encoding::Json => Message::Text(String::from_utf8_lossy(&bytes).into_owned().into()),
        };
        if queue.send(reply).await.is_err() {
            break;
        }
    }
    drop(queue);
    writer.abort();
    Ok(())
}
