//! `ws_latency`: push-to-delivery latency on a running server, measured from outside.
//!
//! ```text
//! cargo run --release --example ws_latency -- http://127.0.0.1:8090 [PUSHES] [TOKEN]
//! ```
//!
//! A subscriber follows a fresh group over a WebSocket. Then, one at a time, PUSHES writes
//! (default 1000) of one small change each go to the server, first as `POST /sync` (what
//! curl does), then as `push` frames on a second WebSocket. For each, the clock runs from
//! just before the push is sent to the moment the subscriber has read the `changes` frame
//! carrying it. It prints the median, p90, p99 and maximum of that latency, and of the
//! push's own answer for comparison. The server's `durability` setting weighs most: with
//! `full` every commit waits for an fsync.

use std::error::Error;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use atomsync_proto::wire::{ClientFrame, ServerFrame, UncheckedPush};
use atomsync_proto::{Encoding, Value};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const USAGE: &str =
    "usage: ws_latency BASE_URL [PUSHES] [TOKEN]   e.g. ws_latency http://127.0.0.1:8090 1000";

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(base) = args.first() else {
        return Err(USAGE.into());
    };
    let pushes: usize = args.get(1).map(|n| n.parse()).transpose()?.unwrap_or(1000);
    let token = args
        .get(2)
        .map(|t| format!("?token={t}"))
        .unwrap_or_default();
    let ws_url = format!("{}/sync/ws{token}", base.replacen("http", "ws", 1));
    let push_url = format!("{base}/sync{token}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let group = format!("latency-{}-{started}", std::process::id());

    // The subscriber: every `changes` frame's last seq, with the instant it was read.
    let (mut subscriber, _) = connect(&ws_url).await?;
    send(
        &mut subscriber,
        &ClientFrame::Subscribe {
            group: group.clone(),
            since: 0,
        },
    )
    .await?;
    match next_frame(&mut subscriber).await? {
        ServerFrame::Subscribed { .. } => {}
        other => return Err(format!("expected subscribed, got {other:?}").into()),
    }
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(frame) = next_frame(&mut subscriber).await {
            if let ServerFrame::Changes { seq, .. } = frame {
                let _ = arrivals_tx.send((seq, Instant::now()));
            }
        }
    });

    let http = reqwest::Client::new();
    let mut delivered = Vec::with_capacity(pushes);
    let mut answered = Vec::with_capacity(pushes);
    for i in 0..pushes {
        let body = format!(
            r#"{{"group":"{group}","changes":[{{"key":"http-{i}","base":0,"value":{i}}}]}}"#
        );
        let sent = Instant::now();
        let response = http
            .post(&push_url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let answer_at = Instant::now();
        let answer: serde_json::Value = response.json().await?;
        let seq = answer["seq"]
            .as_u64()
            .ok_or_else(|| format!("push failed: {answer}"))?;
        answered.push(answer_at - sent);
        delivered.push(arrival(&mut arrivals, seq).await? - sent);
    }
    report("POST /sync -> changes frame", &mut delivered, &mut answered);

    let (mut pusher, _) = connect(&ws_url).await?;
    delivered.clear();
    answered.clear();
    for i in 0..pushes {
        let change = Value::Map(vec![
            ("key".into(), format!("ws-{i}").into()),
            ("base".into(), 0u64.into()),
            ("value".into(), (i as u64).into()),
        ]);
        let push = UncheckedPush {
            group: group.clone(),
            changes: vec![change],
        };
        let sent = Instant::now();
        send(
            &mut pusher,
            &ClientFrame::Push {
                id: (i as u64).into(),
                push,
            },
        )
        .await?;
        let seq = match next_frame(&mut pusher).await? {
            ServerFrame::Pushed { response, .. } => response.seq,
            other => return Err(format!("expected pushed, got {other:?}").into()),
        };
        answered.push(sent.elapsed());
        delivered.push(arrival(&mut arrivals, seq).await? - sent);
    }
    report("push frame -> changes frame", &mut delivered, &mut answered);
    Ok(())
}

/// Connects with Nagle's algorithm off: a small push frame must not wait for the previous
/// segment's acknowledgement (with it on, the median doubles).
async fn connect(
    url: &str,
) -> Result<
    (
        Socket,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    Box<dyn Error>,
> {
    Ok(tokio_tungstenite::connect_async_with_config(url, None, true).await?)
}

async fn send(socket: &mut Socket, frame: &ClientFrame) -> Result<(), Box<dyn Error>> {
    Ok(socket
        .send(Message::binary(frame.encode(Encoding::MsgPack)))
        .await?)
}

async fn next_frame(socket: &mut Socket) -> Result<ServerFrame, Box<dyn Error>> {
    loop {
        match socket
            .next()
            .await
            .ok_or("the server closed the socket")??
        {
            Message::Binary(bytes) => return Ok(ServerFrame::decode(&bytes, Encoding::MsgPack)?),
            Message::Close(frame) => return Err(format!("closed: {frame:?}").into()),
            _ => continue,
        }
    }
}

/// When the frame carrying `seq` was read (frames arrive in seq order).
async fn arrival(
    arrivals: &mut mpsc::UnboundedReceiver<(u64, Instant)>,
    seq: u64,
) -> Result<Instant, Box<dyn Error>> {
    loop {
        let (last, at) = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await?
            .ok_or("the subscriber stopped")?;
        if last >= seq {
            return Ok(at);
        }
    }
}

fn report(what: &str, delivered: &mut [Duration], answered: &mut [Duration]) {
    delivered.sort();
    answered.sort();
    let at = |sorted: &[Duration], q: f64| {
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let row = |name: &str, sorted: &[Duration]| {
        println!(
            "  {name:<10} median {:7.3} ms   p90 {:7.3} ms   p99 {:7.3} ms   max {:7.3} ms",
            at(sorted, 0.5),
            at(sorted, 0.9),
            at(sorted, 0.99),
            at(sorted, 1.0)
        );
    };
    println!("{what}, {} pushes of one change:", delivered.len());
    row("delivered", delivered);
    row("answered", answered);
}
