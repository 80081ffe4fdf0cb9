//! The WebSocket (`GET /sync/ws`) with tokio-tungstenite: connecting with the token,
//! sending client frames as binary MessagePack, reading server frames of either encoding.

use atomsync_proto::Encoding;
use atomsync_proto::wire::{ClientFrame, ServerFrame};
use futures_util::{SinkExt, StreamExt};
use reqwest::Url;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::AUTHORIZATION;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::http::{CONNECT_TIMEOUT, network, status_error};
use crate::ClientError;
use crate::local::Received;

/// The largest frame or message accepted from the server; the same cap as HTTP answers.
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// An open WebSocket to the server.
pub(crate) struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Why the WebSocket could not be opened.
pub(crate) enum ConnectError {
    /// The server refused the token (401, or 403 at the upgrade).
    Auth(ClientError),
    /// The server answered, but not with a WebSocket (an older server, a proxy): HTTP
    /// still works.
    Unavailable(ClientError),
    /// No answer at all.
    Network(ClientError),
}

/// What the socket gave.
pub(crate) enum Incoming {
    /// A `changes` frame, its documents' values decoded as they were read.
    Changes {
        group: String,
        changes: Vec<Received>,
        seq: u64,
    },
    /// Any other frame.
    Frame(ServerFrame),
    /// A frame that does not decode: reported, the connection goes on.
    Bad(ClientError),
    /// Ping, pong: only proof of life.
    Alive,
    /// Closed or broken.
    Closed(ClientError),
}

impl Socket {
    /// Opens the WebSocket at `url`, with the token as a bearer header.
    pub(crate) async fn connect(
        url: &Url,
        token: Option<&str>,
        connector: Option<tokio_tungstenite::Connector>,
    ) -> Result<Socket, ConnectError> {
        let mut request = url.as_str().into_client_request().map_err(|e| {
            ConnectError::Network(ClientError::InvalidUrl {
                url: url.to_string(),
                reason: e.to_string(),
            })
        })?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                ConnectError::Auth(ClientError::Unauthorized(
                    "the token holds characters a header cannot carry".into(),
                ))
            })?;
            request.headers_mut().insert(AUTHORIZATION, value);
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        // No Nagle: a change should reach the server (and its echo the client) at once.
        let connecting = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            connector,
        );
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => Err(ConnectError::Network(ClientError::Network(format!(
                "no WebSocket answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            )))),
            Ok(Ok((stream, _response))) => Ok(Socket { stream }),
            Ok(Err(tungstenite::Error::Http(response))) => {
                let status = response.status().as_u16();
                let encoding = response
                    .headers()
                    .get("content-type")
                    .and_then(|value| value.to_str().ok())
                    .and_then(Encoding::from_content_type)
                    .unwrap_or(Encoding::Json);
                let body = response.body().as_deref().unwrap_or_default();
                let error = status_error(status, body, encoding);
                Err(if error.is_auth() {
                    ConnectError::Auth(error)
                } else {
                    ConnectError::Unavailable(error)
                })
            }
            Ok(Err(error)) => Err(ConnectError::Network(network(&error))),
        }
    }

    /// Sends a frame as binary MessagePack.
    pub(crate) async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        let bytes = frame.encode(Encoding::MsgPack);
        self.stream
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|e| network(&e))
    }

    /// The next message from the server.
    pub(crate) async fn next(&mut self) -> Incoming {
        let message = match self.stream.next().await {
            None => {
                return Incoming::Closed(ClientError::Network(
                    "the server closed the WebSocket".into(),
                ));
            }
            Some(Err(error)) => return Incoming::Closed(network(&error)),
            Some(Ok(message)) => message,
        };
        // Values are decoded with the frame: the atom needs them as `Value`s, and reading
        // each once costs less than checking it here and decoding its bytes later.
        let decoded = match message {
            Message::Binary(bytes) => ServerFrame::decode_with_values(&bytes, Encoding::MsgPack),
            Message::Text(text) => ServerFrame::decode_with_values(text.as_bytes(), Encoding::Json),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Incoming::Alive,
            Message::Close(frame) => {
                let why = frame.map_or_else(
                    || "no reason".to_owned(),
                    |f| format!("code {} {}", f.code, f.reason),
                );
                return Incoming::Closed(ClientError::Network(format!(
                    "the server closed the WebSocket ({why})"
                )));
            }
        };
        match decoded {
            Ok((
                ServerFrame::Changes {
                    group,
                    changes,
                    seq,
                },
                values,
            )) => Incoming::Changes {
                group,
                changes: changes
                    .into_iter()
                    .zip(values.into_iter().chain(std::iter::repeat_with(|| None)))
                    .map(|(doc, value)| Received { doc, value })
                    .collect(),
                seq,
            },
            Ok((frame, _)) => Incoming::Frame(frame),
            Err(error) => Incoming::Bad(ClientError::Protocol(format!(
                "WebSocket frame: {}",
                error.message
            ))),
        }
    }

    /// Closes politely; errors are moot at that point.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
