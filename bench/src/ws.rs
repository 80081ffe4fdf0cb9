//! The WebSocket side of the load generator (PROTOCOL.md section 6): connecting many
//! subscribers cheaply, subscribing, reading frames, and a writer that sends `push` frames.
//!
//! Clients use MessagePack (binary frames), small read buffers (10,000 connections must fit
//! in the bench process), and spread their source addresses over 127.0.0.2..127.0.0.201 so
//! that repeated runs of thousands of connections never run out of ephemeral ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};

use atomsync_proto::wire::{ClientFrame, ServerFrame};
use atomsync_proto::{Encoding, Value};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::{BenchError, Result};

/// A client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// How many loopback source addresses connections rotate through.
const SOURCE_ADDRESSES: usize = 200;
static NEXT_SOURCE: AtomicUsize = AtomicUsize::new(0);

fn config() -> WebSocketConfig {
    // Frames here are small; a 128 KiB default buffer per connection would cost 1.3 GB at
    // 10,000 connections. Writes go out at once (no write buffering) so latency is honest.
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Opens a WebSocket to `ws://addr/path`.
pub async fn connect(addr: SocketAddr, path: &str) -> Result<Ws> {
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed) % SOURCE_ADDRESSES;
    let source = Ipv4Addr::new(127, 0, 0, 2 + n as u8);
    let socket = TcpSocket::new_v4().map_err(|e| BenchError::io("socket", e))?;
    socket
        .set_nodelay(true)
        .map_err(|e| BenchError::io("TCP_NODELAY", e))?;
    // Only a server on 127.0.0.1 is reached from the rotating 127.0.0.x sources; any
    // other address (`--url`) from wherever the system routes.
    let local = if addr.ip() == std::net::IpAddr::V4(Ipv4Addr::LOCALHOST) {
        SocketAddr::from((source, 0))
    } else {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
    };
    socket
        .bind(local)
        .map_err(|e| BenchError::io(format!("binding {local}"), e))?;
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| BenchError::io(format!("connecting to {addr}"), e))?;
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config())).await?;
    Ok(ws)
}

/// Reads the next protocol frame, skipping pings and pongs; `None` when the server closed.
pub async fn next_frame(ws: &mut Ws) -> Result<Option<ServerFrame>> {
    while let Some(message) = ws.next().await {
        match message? {
            Message::Binary(bytes) => {
                return Ok(Some(ServerFrame::decode(&bytes, Encoding::MsgPack)?));
            }
            Message::Text(text) => {
                return Ok(Some(ServerFrame::decode(text.as_bytes(), Encoding::Json)?));
            }
            Message::Close(frame) => {
                return Err(BenchError::Protocol(format!(
                    "the server closed the connection: {}",
                    frame.map_or_else(
                        || "no reason".to_owned(),
                        |f| format!("{} {}", f.code, f.reason)
                    )
                )));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Subscribes to `group` from `since` and reads frames up to `subscribed`; returns the
/// changes caught up on and the cursor.
pub async fn subscribe(ws: &mut Ws, group: &str, since: u64) -> Result<(u64, u64)> {
    let frame = ClientFrame::Subscribe {
        group: group.to_owned(),
        since,
    }
    .encode(Encoding::MsgPack);
    ws.send(Message::Binary(frame.into())).await?;
    let mut caught_up = 0;
    loop {
        match next_frame(ws).await? {
            Some(ServerFrame::Changes { changes, .. }) => caught_up += changes.len() as u64,
            Some(ServerFrame::Subscribed { seq, .. }) => return Ok((caught_up, seq)),
            Some(ServerFrame::Error { error, .. }) => {
                return Err(BenchError::Protocol(format!(
                    "subscribe {group}: {}: {}",
                    error.code.as_str(),
                    error.message
                )));
            }
            Some(other) => {
                return Err(BenchError::Protocol(format!(
                    "subscribe {group}: unexpected frame {other:?}"
                )));
            }
            None => {
                return Err(BenchError::Protocol(format!(
                    "subscribe {group}: the connection closed"
                )));
            }
        }
    }
}

/// A `push` frame with id `id`, as MessagePack.
pub fn push_frame(id: u64, request: &atomsync_proto::wire::PushRequest) -> bytes::Bytes {
    ClientFrame::Push {
        id: Value::from(id),
        push: request.to_unchecked(),
    }
    .encode(Encoding::MsgPack)
    .into()
}

/// Why the WebSocket workloads cannot run against `addr`, when the endpoint does not
/// upgrade (e.g. a server built before `/sync/ws` existed): checked once, so that W4 and W5
/// fail fast with a clear message rather than time out.
pub async fn probe(addr: SocketAddr) -> Result<()> {
    let mut ws = connect(addr, "/sync/ws").await.map_err(|e| {
        BenchError::Setup(format!("GET /sync/ws did not upgrade to a WebSocket ({e}); is the WebSocket endpoint in this server?"))
    })?;
    subscribe(&mut ws, "bench-probe", 0).await?;
    let _ = ws.close(None).await;
    Ok(())
}
