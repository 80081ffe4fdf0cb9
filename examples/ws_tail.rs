//! `ws_tail`: follows one group over a WebSocket and prints every change as it arrives, with
//! the time it was received (UTC, to the microsecond).
//!
//! ```text
//! cargo run --example ws_tail -- ws://127.0.0.1:8090/sync/ws todo [TOKEN]
//! ```
//!
//! It subscribes from `since = 0`, so it first prints the group's backlog, then a
//! `subscribed` line, then each later commit live. Frames are JSON (text), so what it prints
//! is what curl would show.

use std::error::Error;
use std::time::{SystemTime, UNIX_EPOCH};

use atomsync_proto::Encoding;
use atomsync_proto::wire::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const USAGE: &str =
    "usage: ws_tail URL GROUP [TOKEN]   e.g. ws_tail ws://127.0.0.1:8090/sync/ws todo";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, group, token) = match args.as_slice() {
        [url, group] => (url, group, None),
        [url, group, token] => (url, group, Some(token)),
        _ => return Err(USAGE.into()),
    };
    // Only a wss:// URL needs it; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut request = url.as_str().into_client_request()?;
    if let Some(token) = token {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}"))?,
        );
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
    let subscribe = ClientFrame::Subscribe {
        group: group.clone(),
        since: 0,
    };
    socket
        .send(Message::text(String::from_utf8(
            subscribe.encode(Encoding::Json),
        )?))
        .await?;
    eprintln!("connected to {url}, following group {group:?} (Ctrl-C to stop)");

    while let Some(message) = socket.next().await {
        let (bytes, encoding) = match message? {
            Message::Text(text) => (text.as_bytes().to_vec(), Encoding::Json),
            Message::Binary(bytes) => (bytes.to_vec(), Encoding::MsgPack),
            Message::Close(frame) => {
                eprintln!("closed by the server: {frame:?}");
                break;
            }
            _ => continue,
        };
        let at = clock();
        match ServerFrame::decode(&bytes, encoding) {
            Ok(ServerFrame::Changes { changes, .. }) => {
                for doc in changes {
                    let value = doc.value.map_or("(deleted)".to_owned(), |v| v.to_json());
                    println!(
                        "{at}  seq={:<6} {} v{} = {value}",
                        doc.seq, doc.key, doc.version
                    );
                }
            }
            Ok(ServerFrame::Subscribed {
                seq, epoch, reset, ..
            }) => {
                let reset = if reset { " (reset)" } else { "" };
                println!(
                    "{at}  subscribed: caught up to seq {seq}, epoch {epoch}{reset}; live from here"
                );
            }
            Ok(other) => println!("{at}  {other:?}"),
            Err(e) => println!("{at}  undecodable frame: {e}"),
        }
    }
    Ok(())
}

/// The wall-clock time of day, UTC, `HH:MM:SS.ffffff`.
fn clock() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let day_seconds = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        day_seconds / 3600,
        day_seconds / 60 % 60,
        day_seconds % 60,
        now.subsec_micros()
    )
}
