//! WebSocket end to end (PROTOCOL.md section 6) against the real binary, with
//! tokio-tungstenite as the client: catch-up then live, pushes over the socket, several
//! groups, encodings. Flow control and concurrency are in [`flow`], bad frames, limits and
//! auth in [`frames`].

mod flow;
mod frames;

use std::time::Duration;

use atomsync_proto::wire::{ClientFrame, Doc, PushResult, ServerFrame, UncheckedPush};
use atomsync_proto::{Encoding, Value};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::TestServer;

/// How long a test waits for any one frame.
const FRAME_TIMEOUT: Duration = Duration::from_secs(20);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket client of the protocol.
pub struct Client {
    socket: Socket,
}

/// What a subscription's catch-up delivered.
#[derive(Debug)]
pub struct CaughtUp {
    /// Every catch-up document, in order.
    pub docs: Vec<Doc>,
    /// `subscribed.seq`.
    pub seq: u64,
    epoch: String,
}

impl Client {
    /// Connects to `/sync/ws` with auth off.
    pub async fn connect(server: &TestServer) -> Client {
        Client::connect_to(&server.ws_url("/sync/ws"))
            .await
            .expect("websocket upgrade")
    }

    /// Connects to a full URL (e.g. with `?token=`).
    pub async fn connect_to(url: &str) -> Result<Client, tungstenite::Error> {
        let (socket, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Client { socket })
    }

    /// Wraps a connected socket.
    pub fn from_socket(socket: Socket) -> Client {
        Client { socket }
    }

    /// Sends a frame: binary MessagePack or text JSON.
    pub async fn send(&mut self, frame: &ClientFrame, encoding: Encoding) {
        let bytes = frame.encode(encoding);
        let message = match encoding {
            Encoding::MsgPack => Message::binary(bytes),
            Encoding::Json => Message::text(String::from_utf8(bytes).unwrap()),
        };
        self.socket.send(message).await.unwrap();
    }

    /// Sends JSON as a text frame, as a browser would.
    pub async fn send_json(&mut self, json: Json) {
        self.socket
            .send(Message::text(json.to_string()))
            .await
            .unwrap();
    }

    /// Sends any message.
    pub async fn send_raw(&mut self, message: Message) {
        self.socket.send(message).await.unwrap();
    }

    /// Writes bytes straight to the TCP connection, past the client's framing.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        match self.socket.get_mut() {
            MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.unwrap(),
            _ => panic!("plain TCP only"),
        }
    }

    /// The next data frame and the encoding it came in (binary: MessagePack).
    pub async fn next(&mut self) -> (Encoding, ServerFrame) {
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .expect("a frame within the timeout")
                .expect("the connection is open")
                .expect("a readable frame");
            let (encoding, bytes) = match message {
                Message::Binary(bytes) => (Encoding::MsgPack, bytes.to_vec()),
                Message::Text(text) => (Encoding::Json, text.as_bytes().to_vec()),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            };
            let frame = ServerFrame::decode(&bytes, encoding).unwrap_or_else(|e| {
                panic!("undecodable frame {}: {e}", String::from_utf8_lossy(&bytes))
            });
            return (encoding, frame);
        }
    }

    /// The next data frame, whatever its encoding.
    pub async fn frame(&mut self) -> ServerFrame {
        self.next().await.1
    }

    /// Reads until the server's close frame; the data frames read on the way are returned
    /// too. `None` for a connection that ended without one.
    pub async fn until_close(&mut self) -> (Vec<ServerFrame>, Option<CloseFrame>) {
        let mut frames = Vec::new();
        loop {
            let message = tokio::time::timeout(FRAME_TIMEOUT, self.socket.next())
                .await
                .expect("the close within the timeout");
            let (encoding, bytes) = match message {
                Some(Ok(Message::Close(frame))) => return (frames, frame),
                None | Some(Err(_)) => return (frames, None),
                Some(Ok(Message::Binary(bytes))) => (Encoding::MsgPack, bytes.to_vec()),
                Some(Ok(Message::Text(text))) => (Encoding::Json, text.as_bytes().to_vec()),
                Some(Ok(_)) => continue,
            };
            frames.push(ServerFrame::decode(&bytes, encoding).unwrap());
        }
    }

    /// Subscribes and reads catch-up up to `subscribed`.
    pub async fn subscribe(&mut self, group: &str, since: u64, encoding: Encoding) -> CaughtUp {
        self.send(
            &ClientFrame::Subscribe {
                group: group.into(),
                since,
            },
            encoding,
        )
        .await;
        self.caught_up(group).await
    }

    /// Reads a subscription's catch-up frames up to its `subscribed`.
    pub async fn caught_up(&mut self, group: &str) -> CaughtUp {
        let mut docs = Vec::new();
        loop {
            match self.frame().await {
                ServerFrame::Changes {
                    group: g,
                    changes,
                    seq,
                } if g == group => {
                    assert_eq!(
                        changes.last().map(|d| d.seq),
                        Some(seq),
                        "a frame's seq is its last document's"
                    );
                    docs.extend(changes);
                }
                ServerFrame::Subscribed {
                    group: g,
                    epoch,
                    seq,
                    reset,
                    ..
                } if g == group => {
                    assert!(!reset);
                    return CaughtUp { docs, seq, epoch };
                }
                other => panic!("while catching up {group}: {other:?}"),
            }
        }
    }

    /// The documents of the next `changes` frame of `group`.
    pub async fn changes(&mut self, group: &str) -> Vec<Doc> {
        match self.frame().await {
            ServerFrame::Changes {
                group: g, changes, ..
            } if g == group => changes,
            other => panic!("expected changes of {group}, got {other:?}"),
        }
    }

    /// Asserts that nothing arrives for a moment.
    pub async fn quiet(&mut self) {
        if let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_millis(300), self.socket.next()).await
        {
            assert!(
                matches!(message, Message::Ping(_) | Message::Pong(_)),
                "unexpected {message:?}"
            );
        }
    }
}

/// A reqwest client (rustls needs its provider installed first).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `POST /sync` with a JSON body; the JSON answer (must be 200).
pub async fn http_push(
    client: &reqwest::Client,
    server: &TestServer,
    group: &str,
    changes: Json,
) -> Json {
    let body = json!({"group": group, "changes": changes});
    let res = client
        .post(server.url("/sync"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// `[{"key": K, "base": 0, "value": V}]` for new keys.
pub fn new_keys(keys: &[&str]) -> Json {
    Json::Array(
        keys.iter()
            .map(|k| json!({"key": k, "base": 0, "value": {"name": k}}))
            .collect(),
    )
}

fn seqs(docs: &[Doc]) -> Vec<u64> {
    docs.iter().map(|d| d.seq).collect()
}

fn keys(docs: &[Doc]) -> Vec<&str> {
    docs.iter().map(|d| d.key.as_str()).collect()
}

#[tokio::test]
async fn backlog_then_live() {
    let server = TestServer::start();
    let http = http();
    let pushed = http_push(&http, &server, "todo", new_keys(&["a", "b", "c"])).await;
    http_push(
        &http,
        &server,
        "todo",
        json!([{"key": "a", "base": 1, "value": "a2"}]),
    )
    .await;

    let mut ws = Client::connect(&server).await;
    let backlog = ws.subscribe("todo", 0, Encoding::Json).await;
    assert_eq!(
        keys(&backlog.docs),
        ["b", "c", "a"],
        "each document once, at its latest state"
    );
    assert_eq!(seqs(&backlog.docs), [2, 3, 4]);
    assert_eq!(backlog.seq, 4);
    assert_eq!(backlog.epoch, pushed["epoch"]);
    let a = &backlog.docs[2];
    assert_eq!(
        (a.version, a.value.as_ref().unwrap().to_value()),
        (2, Value::from("a2"))
    );

    http_push(
        &http,
        &server,
        "todo",
        json!([{"key": "b", "base": 1, "deleted": true}]),
    )
    .await;
    let live = ws.changes("todo").await;
    assert_eq!(
        (live[0].key.as_str(), live[0].seq, live[0].version),
        ("b", 5, 2)
    );
    assert!(live[0].value.is_none(), "a tombstone");

    // From a cursor: only what came after it; an empty catch-up reports `since`.
    let mut late = Client::connect(&server).await;
    let after = late.subscribe("todo", 3, Encoding::MsgPack).await;
    assert_eq!(seqs(&after.docs), [4, 5]);
    assert_eq!(after.seq, 5);
    let mut current = Client::connect(&server).await;
    let none = current.subscribe("todo", 5, Encoding::Json).await;
    assert_eq!((none.docs.len(), none.seq), (0, 5));
    let never = current.subscribe("empty-group", 0, Encoding::Json).await;
    assert_eq!((never.docs.len(), never.seq), (0, 0));
}

#[tokio::test]
async fn a_push_over_the_socket_is_answered_and_reaches_every_subscriber() {
    let server = TestServer::start();
    let mut pusher = Client::connect(&server).await;
    let mut watcher = Client::connect(&server).await;
    pusher.subscribe("echo", 0, Encoding::MsgPack).await;
    watcher.subscribe("echo", 0, Encoding::Json).await;

    let push = UncheckedPush {
        group: "echo".into(),
        changes: vec![Value::Map(vec![
            ("key".into(), "note".into()),
            ("base".into(), 0u64.into()),
            ("value".into(), Value::Set(vec![Value::Kw("x".into())])),
        ])],
    };
    pusher
        .send(
            &ClientFrame::Push {
                id: 7u64.into(),
                push: push.clone(),
            },
            Encoding::MsgPack,
        )
        .await;
    // The echo and the answer, in either order.
    let (mut answered, mut echoed) = (false, false);
    while !(answered && echoed) {
        match pusher.next().await {
            (Encoding::MsgPack, ServerFrame::Pushed { id, response }) => {
                assert_eq!(id, Value::from(7u64));
                assert_eq!((response.group.as_str(), response.seq), ("echo", 1));
                assert!(matches!(
                    &response.results[0],
                    PushResult::Accepted {
                        version: 1,
                        seq: 1,
                        ..
                    }
                ));
                answered = true;
            }
            (Encoding::MsgPack, ServerFrame::Changes { changes, .. }) => {
                assert_eq!(
                    changes[0].value.as_ref().unwrap().to_value(),
                    Value::Set(vec![Value::Kw("x".into())])
                );
                echoed = true;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seqs(&watcher.changes("echo").await), [1]);

    // The same push again is a conflict carrying what the first wrote, and streams nothing.
    pusher
        .send(
            &ClientFrame::Push {
                id: "again".into(),
                push,
            },
            Encoding::Json,
        )
        .await;
    match pusher.next().await {
        (Encoding::Json, ServerFrame::Pushed { id, response }) => {
            assert_eq!(id, Value::from("again"));
            let PushResult::Conflict {
                current: Some(doc), ..
            } = &response.results[0]
            else {
                panic!("{response:?}")
            };
            assert_eq!((doc.version, doc.seq), (1, 1));
        }
        other => panic!("{other:?}"),
    }
    // A push over HTTP reaches the sockets too.
    http_push(&http(), &server, "echo", new_keys(&["from-http"])).await;
    assert_eq!(keys(&pusher.changes("echo").await), ["from-http"]);
    assert_eq!(keys(&watcher.changes("echo").await), ["from-http"]);
    watcher.quiet().await;
}

#[tokio::test]
async fn several_groups_unsubscribe_and_subscribing_again() {
    let server = TestServer::start();
    let http = http();
    let mut ws = Client::connect(&server).await;
    ws.subscribe("one", 0, Encoding::Json).await;
    ws.subscribe("two", 0, Encoding::Json).await;
    http_push(&http, &server, "one", new_keys(&["x"])).await;
    http_push(&http, &server, "two", new_keys(&["y"])).await;
    assert_eq!(keys(&ws.changes("one").await), ["x"]);
    assert_eq!(keys(&ws.changes("two").await), ["y"]);

    ws.send_json(json!({"type": "unsubscribe", "group": "one"}))
        .await;
    assert_eq!(
        ws.frame().await,
        ServerFrame::Unsubscribed {
            group: "one".into()
        }
    );
    http_push(&http, &server, "one", new_keys(&["missed"])).await;
    http_push(&http, &server, "two", new_keys(&["z"])).await;
    assert_eq!(
        keys(&ws.changes("two").await),
        ["z"],
        "nothing more of group one"
    );
    ws.quiet().await;

    // Subscribing again restarts from the new since: here, the change missed meanwhile.
    let again = ws.subscribe("one", 1, Encoding::Json).await;
    assert_eq!((keys(&again.docs), again.seq), (vec!["missed"], 2));
    // And again from 0, on a live subscription: the whole group, once.
    let whole = ws.subscribe("one", 0, Encoding::Json).await;
    assert_eq!(seqs(&whole.docs), [1, 2]);
    http_push(&http, &server, "one", new_keys(&["w"])).await;
    assert_eq!(seqs(&ws.changes("one").await), [3]);
    ws.quiet().await;
    // Unsubscribing a group never subscribed is answered all the same.
    ws.send_json(json!({"type": "unsubscribe", "group": "never"}))
        .await;
    assert_eq!(
        ws.frame().await,
        ServerFrame::Unsubscribed {
            group: "never".into()
        }
    );
}

#[tokio::test]
async fn binary_frames_are_answered_in_msgpack_and_text_in_json() {
    let server = TestServer::start();
    let http = http();
    let mut ws = Client::connect(&server).await;
    http_push(&http, &server, "bin", new_keys(&["b0"])).await;
    http_push(&http, &server, "txt", new_keys(&["t0"])).await;
    for (group, encoding) in [("bin", Encoding::MsgPack), ("txt", Encoding::Json)] {
        ws.send(
            &ClientFrame::Subscribe {
                group: group.into(),
                since: 0,
            },
            encoding,
        )
        .await;
        assert!(matches!(ws.next().await, (e, ServerFrame::Changes { .. }) if e == encoding));
        assert!(matches!(ws.next().await, (e, ServerFrame::Subscribed { .. }) if e == encoding));
    }

    // Each subscription streams in the encoding of the frame that made it.
    http_push(&http, &server, "bin", new_keys(&["b1"])).await;
    assert!(
        matches!(ws.next().await, (Encoding::MsgPack, ServerFrame::Changes { group, .. }) if group == "bin")
    );
    http_push(&http, &server, "txt", new_keys(&["t1"])).await;
    assert!(
        matches!(ws.next().await, (Encoding::Json, ServerFrame::Changes { group, .. }) if group == "txt")
    );

    // Errors too come in the encoding of the frame that caused them.
    ws.send_raw(Message::binary(vec![0xc1])).await;
    assert!(matches!(
        ws.next().await,
        (Encoding::MsgPack, ServerFrame::Error { .. })
    ));
    ws.send_raw(Message::text("nope")).await;
    assert!(matches!(
        ws.next().await,
        (Encoding::Json, ServerFrame::Error { .. })
    ));
}
