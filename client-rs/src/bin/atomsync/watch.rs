//! `watch GROUP [--since N]`: follows a group over the WebSocket (`GET /sync/ws`) and
//! prints every change as one JSON line the moment it arrives, until Ctrl-C.
//!
//! It subscribes from `--since` (0 by default: the group's documents first, then every
//! change, like a changes feed). When the connection drops it reconnects with backoff and
//! subscribes again from the last `seq` it printed, so no change is missed or printed
//! twice. If the server's database was replaced meanwhile (another epoch), the cursor
//! means nothing there: it says so and starts again from 0. A refused token or group
//! ends the command; anything else is retried.

use std::time::Duration;

use atomsync_proto::Encoding;
use atomsync_proto::wire::{ClientFrame, Doc, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::error::CliError;
use crate::output::{Notes, Output};
use crate::server::Server;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before reconnecting, and the longest.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(10);
/// The largest frame taken from the server (its frames are bounded by its body limit).
const MAX_FRAME: usize = 256 << 20;

/// Where the watch is: the cursor and the epoch it belongs to.
struct Position {
    cursor: u64,
    epoch: Option<String>,
}

/// `watch GROUP [--since N]`: runs until Ctrl-C (success) or a refusal (an error).
pub async fn watch(server: &Server, group: &str, since: u64, notes: Notes) -> Result<(), CliError> {
    let mut at = Position {
        cursor: since,
        epoch: None,
    };
    let mut out = Output::live();
    let mut retry = FIRST_RETRY;
    loop {
        let mut subscribed = false;
        let ended = tokio::select! {
            ended = follow(server, group, &mut at, &mut out, notes, &mut subscribed) => ended,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let error = match ended {
            Ok(()) => CliError::Network("the server closed the WebSocket".into()),
            // Refused, or nowhere to print: retrying cannot help.
            Err(e)
                if e.is_refusal()
                    || matches!(
                        e,
                        CliError::Io(_) | CliError::Input(_) | CliError::BrokenPipe
                    ) =>
            {
                return Err(e);
            }
            Err(e) => e,
        };
        if subscribed {
            retry = FIRST_RETRY;
        }
        notes.say(format!(
            "atomsync: {error}; reconnecting in {:.1} s to resume after seq {}",
            retry.as_secs_f64(),
            at.cursor
        ));
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// One connection: subscribe from the cursor, print until it breaks.
async fn follow(
    server: &Server,
    group: &str,
    at: &mut Position,
    out: &mut Output,
    notes: Notes,
    subscribed: &mut bool,
) -> Result<(), CliError> {
    let mut socket = connect(server).await?;
    let subscribe = |since| {
        Message::Binary(
            ClientFrame::Subscribe {
                group: group.to_owned(),
                since,
            }
            .encode(Encoding::MsgPack)
            .into(),
        )
    };
    socket.send(subscribe(at.cursor)).await.map_err(network)?;
    // After a reconnect the catch-up is held until `subscribed` shows it comes from the
    // same database; on the first connection any database is the right one.
    let mut held: Option<Vec<Doc>> = at.epoch.is_some().then(Vec::new);
    while let Some(message) = socket.next().await {
        let frame = match message.map_err(network)? {
            Message::Binary(bytes) => ServerFrame::decode(&bytes, Encoding::MsgPack),
            Message::Text(text) => ServerFrame::decode(text.as_bytes(), Encoding::Json),
            Message::Close(frame) => {
                let why = frame.map_or_else(
                    || "no reason given".to_owned(),
                    |f| format!("code {}: {}", f.code, f.reason),
                );
                return Err(CliError::Network(format!(
                    "the server closed the WebSocket ({why})"
                )));
            }
            _ => continue,
        }
        .map_err(|e| CliError::Protocol(format!("a WebSocket frame: {}", e.message)))?;
        match frame {
            ServerFrame::Changes { changes, .. } => match held.as_mut() {
                Some(held) => held.extend(changes),
                None => print(&changes, at, out)?,
            },
            ServerFrame::Subscribed {
                epoch, reset, seq, ..
            } => {
                if at.epoch.as_ref().is_some_and(|known| *known != epoch) {
                    notes.say(format!(
                        "atomsync: the server's database changed (epoch {epoch}); following {group} again from 0"
                    ));
                    at.epoch = Some(epoch);
                    at.cursor = 0;
                    held = None;
                    socket.send(subscribe(0)).await.map_err(network)?;
                    continue;
                }
                if reset {
                    notes.say(format!(
                        "atomsync: {group} was compacted past the cursor; it was sent again from 0"
                    ));
                }
                if let Some(docs) = held.take() {
                    print(&docs, at, out)?;
                }
                at.epoch = Some(epoch);
                at.cursor = at.cursor.max(seq);
                *subscribed = true;
            }
            // A refusal (forbidden, bad_request) ends the watch; `unavailable` is retried.
            ServerFrame::Error { error, .. } => return Err(CliError::Server { error }),
            ServerFrame::Unsubscribed { .. } | ServerFrame::Pushed { .. } => {}
        }
    }
    Ok(())
}

/// Prints documents past the cursor, moving it.
fn print(docs: &[Doc], at: &mut Position, out: &mut Output) -> Result<(), CliError> {
    for doc in docs {
        if doc.seq > at.cursor {
            out.doc(doc)?;
            at.cursor = doc.seq;
        }
    }
    Ok(())
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket with the token as a bearer header; a refused upgrade is the
/// server's error.
async fn connect(server: &Server) -> Result<Socket, CliError> {
    let url = server.ws_url();
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| CliError::Input(format!("--server: {e}")))?;
    if let Some(token) = server.token() {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            CliError::Input("--token: holds characters an HTTP header cannot carry".into())
        })?;
        request.headers_mut().insert("authorization", value);
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        server.connector(),
    );
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(CliError::Network(format!(
            "no WebSocket answer from {url} within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let encoding = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .and_then(Encoding::from_content_type)
                .unwrap_or(Encoding::Json);
            let body = response.body().as_deref().unwrap_or_default();
            Err(match atomsync_proto::wire::decode_error(body, encoding) {
                Ok(error) => CliError::Server { error },
                Err(_) => {
                    CliError::Protocol(format!("HTTP {status} instead of a WebSocket at {url}"))
                }
            })
        }
        Ok(Err(e)) => Err(CliError::Network(format!("cannot reach {url}: {e}"))),
    }
}

fn network(error: tungstenite::Error) -> CliError {
    CliError::Network(format!("WebSocket: {error}"))
}
