//! Session tests in process, on an in-memory connection: the upgrade handler answers 101,
//! the session runs on one end of a pipe, and the test is the client on the other end.
//! Time is paused for the heartbeat and silence tests, so 45 s pass in no time and exactly.

use std::time::Duration;

use actix_web::test::TestRequest;
use actix_web::web::{BytesMut, Data};
use atomsync_proto::Encoding;
use atomsync_proto::wire::{Change, ClientFrame, Op, ServerFrame};
use atomsync_proto::{Packed, Value};
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio::time::Instant;

use super::session::{CLIENT_TIMEOUT, HEARTBEAT_INTERVAL, QUEUE_CAPACITY};
use super::socket::WRITE_HIGH_WATER;
use crate::actors::Registry;
use crate::auth::{Auth, SharedAuth};
use crate::config::Config;
use crate::http::AppState;
use crate::storage::testing::TestDb;

const PING: u8 = 0x9;
const PONG: u8 = 0xa;
const CLOSE: u8 = 0x8;
const TEXT: u8 = 0x1;

struct Harness {
    _db: TestDb,
    state: Data<AppState>,
    stop: watch::Sender<bool>,
}

async fn harness() -> Harness {
    let db = TestDb::new();
    let storage = db.open(2).await;
    let config = Config::from_toml("").unwrap();
    let (stop, shutdown) = watch::channel(false);
    let state = Data::new(AppState {
        registry: Registry::new(storage.clone()),
        storage,
        auth: SharedAuth::new(Auth::from_config(&config)),
        limits: config.limits(),
        max_body_bytes: config.server.max_body_bytes,
        shutdown,
        admin_token: None,
        liveness: crate::ws::Liveness::default(),
    });
    Harness {
        _db: db,
        state,
        stop,
    }
}

/// What the pipe holds each way: small, so that a client that reads nothing soon fills it.
const PIPE_BYTES: usize = 4096;

/// The client's end of one in-memory connection.
struct Conn {
    io: DuplexStream,
    buf: BytesMut,
}

async fn connect(h: &Harness) -> Conn {
    let req = TestRequest::get()
        .uri("/sync/ws")
        .insert_header(("upgrade", "websocket"))
        .insert_header(("connection", "upgrade"))
        .insert_header(("sec-websocket-version", "13"))
        .insert_header(("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="))
        .to_http_request();
    let mut response = super::upgrade(req, h.state.clone()).await.unwrap();
    assert_eq!(response.status(), 101);
    let accepted = response
        .extensions_mut()
        .remove::<super::Accepted>()
        .expect("the session to start");
    let (io, server) = tokio::io::duplex(PIPE_BYTES);
    actix_rt::spawn(super::start(server, Bytes::new(), accepted));
    Conn {
        io,
        buf: BytesMut::new(),
    }
}

/// A connection subscribed to `group`, caught up.
async fn subscribed(h: &Harness, group: &str) -> Conn {
    let mut conn = connect(h).await;
    conn.send_frame(&ClientFrame::Subscribe {
        group: group.into(),
        since: 0,
    })
    .await;
    assert!(matches!(conn.data().await, ServerFrame::Subscribed { .. }));
    conn
}

impl Conn {
    /// Sends a masked client frame (mask key 0, so the payload reads as is).
    async fn send(&mut self, opcode: u8, payload: &[u8]) {
        let mut frame = vec![0x80 | opcode];
        match payload.len() {
            len @ 0..=125 => frame.push(0x80 | len as u8),
            len => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&[0; 4]);
        frame.extend_from_slice(payload);
        self.io.write_all(&frame).await.unwrap();
    }

    async fn send_frame(&mut self, frame: &ClientFrame) {
        self.send(TEXT, &frame.encode(Encoding::Json)).await;
    }

    /// The next server frame: its opcode and payload. `None` once the server closed.
    async fn next(&mut self) -> Option<(u8, Bytes)> {
        loop {
            if let Some(frame) = self.parse() {
                return Some(frame);
            }
            if self.io.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// A complete unmasked server frame off the front of the buffer.
    fn parse(&mut self) -> Option<(u8, Bytes)> {
        let (first, second) = (*self.buf.first()?, *self.buf.get(1)?);
        let (start, len) = match second & 0x7f {
            126 => (
                4,
                u16::from_be_bytes([*self.buf.get(2)?, *self.buf.get(3)?]) as usize,
            ),
            127 => (
                10,
                u64::from_be_bytes(self.buf.get(2..10)?.try_into().ok()?) as usize,
            ),
            len => (2, len as usize),
        };
        if self.buf.len() < start + len {
            return None;
        }
        let mut frame = self.buf.split_to(start + len);
        Some((first & 0x0f, frame.split_off(start).freeze()))
    }

    /// The next data frame, decoded.
    async fn data(&mut self) -> ServerFrame {
        loop {
            let (opcode, payload) = self.next().await.expect("open");
            match opcode {
                TEXT => return ServerFrame::decode(&payload, Encoding::Json).unwrap(),
                PING | PONG => continue,
                other => panic!("opcode {other}: {payload:?}"),
            }
        }
    }
}

/// Paused time still rounds timers up to the millisecond.
fn assert_at(start: Instant, expected: Duration) {
    let elapsed = start.elapsed();
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(5),
        "at {elapsed:?}, expected {expected:?}"
    );
}

fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

#[actix_rt::test]
async fn a_silent_client_is_pinged_every_15_s_and_closed_after_45_s() {
    let h = harness().await;
    // After opening: the clock stands still only for the session's own timers.
    tokio::time::pause();
    let mut conn = connect(&h).await;
    let start = Instant::now();
    for n in 1..=2u32 {
        let (opcode, _) = conn.next().await.unwrap();
        assert_eq!(opcode, PING);
        assert_at(start, HEARTBEAT_INTERVAL * n);
    }
    let (opcode, payload) = conn.next().await.unwrap();
    assert_eq!(opcode, CLOSE);
    assert_eq!(close_code(&payload), 1008);
    assert_at(start, CLIENT_TIMEOUT);
    conn.io.shutdown().await.unwrap();
    assert!(
        conn.next().await.is_none(),
        "the connection ends after the close"
    );
}

#[actix_rt::test]
async fn a_client_that_answers_pings_stays() {
    let h = harness().await;
    // After opening: the clock stands still only for the session's own timers.
    tokio::time::pause();
    let mut conn = connect(&h).await;
    let start = Instant::now();
    for _ in 0..6 {
        let (opcode, payload) = conn.next().await.unwrap();
        assert_eq!(opcode, PING);
        conn.send(PONG, &payload).await;
    }
    assert_at(start, HEARTBEAT_INTERVAL * 6);
    // Any frame counts as a sign of life, and pings are answered.
    conn.send(PING, b"hi").await;
    let (opcode, payload) = conn.next().await.unwrap();
    assert_eq!((opcode, &payload[..]), (PONG, &b"hi"[..]));
    tokio::time::advance(Duration::from_secs(40)).await;
    conn.send_frame(&ClientFrame::Unsubscribe { group: "g".into() })
        .await;
    assert_eq!(
        conn.data().await,
        ServerFrame::Unsubscribed { group: "g".into() }
    );
}

#[actix_rt::test]
async fn shutdown_closes_with_1001() {
    let h = harness().await;
    let mut conn = subscribed(&h, "g").await;
    h.stop.send(true).unwrap();
    let (opcode, payload) = conn.next().await.unwrap();
    assert_eq!((opcode, close_code(&payload)), (CLOSE, 1001));
}

#[actix_rt::test]
async fn a_client_that_reads_nothing_overflows_its_queue_and_gets_1013() {
    let h = harness().await;
    let mut conn = subscribed(&h, "g").await;
    // Nothing reads from here on: the pipe fills, then the session's write buffer, then the
    // connection's queue, and the actor reports the overflow. A change frame is over 32
    // bytes.
    let addr = h.state.registry.get("g");
    let pushes = (QUEUE_CAPACITY + (PIPE_BYTES + WRITE_HIGH_WATER) / 32 + 100) as u64;
    for i in 0..pushes {
        let value = Packed::from_value(&Value::from(i));
        let change = Change {
            key: format!("k{i}"),
            base: 0,
            op: Op::Set(value),
        };
        h.state
            .storage
            .push("g".into(), vec![change])
            .await
            .unwrap();
    }
    // What the client finds when it reads at last: a gapless prefix, then 1013.
    let mut cursor = 0;
    let code = loop {
        let (opcode, payload) = conn.next().await.expect("a close frame");
        match opcode {
            TEXT => match ServerFrame::decode(&payload, Encoding::Json).unwrap() {
                ServerFrame::Changes { changes, .. } => {
                    for doc in changes {
                        assert_eq!(doc.seq, cursor + 1);
                        cursor = doc.seq;
                    }
                }
                other => panic!("{other:?}"),
            },
            CLOSE => break close_code(&payload),
            PING | PONG => {}
            other => panic!("opcode {other}"),
        }
    };
    assert_eq!(code, 1013);
    assert!(cursor < pushes);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let subscribers = addr.send(crate::actors::SubscriberCount).await.unwrap();
    assert_eq!(subscribers, 0, "the closed session left no registration");
}
