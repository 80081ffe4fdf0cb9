//! Streaming under load: writers racing a catch-up, one commit fanned out to many
//! subscribers, a reader too slow to keep up, and shutdown.

use std::time::{Duration, Instant};

use atomsync_proto::Encoding;
use atomsync_proto::wire::{ClientFrame, ServerFrame};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Client, http, http_push, new_keys, seqs};
use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_writers_and_a_catch_up_from_zero_see_every_seq_once_in_order() {
    const WRITERS: usize = 4;
    const PUSHES: usize = 50;
    const PER_PUSH: usize = 3;
    const TOTAL: u64 = (WRITERS * PUSHES * PER_PUSH) as u64;
    let server = TestServer::start();
    let http = http();
    let (started_tx, mut started) = tokio::sync::mpsc::channel(WRITERS);
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (http, url, started_tx) = (http.clone(), server.url("/sync"), started_tx.clone());
        writers.push(tokio::spawn(async move {
            for push in 0..PUSHES {
                let keys: Vec<_> = (0..PER_PUSH).map(|k| json!({"key": format!("w{writer}:{push}:{k}"), "base": 0, "value": push})).collect();
                let body = json!({"group": "race", "changes": keys}).to_string();
                let res = http.post(&url).header("content-type", "application/json").body(body).send().await.unwrap();
                assert_eq!(res.status(), 200);
                if push == 5 {
                    let _ = started_tx.send(()).await;
                }
            }
        }));
    }
    // Subscribe once the writers are well under way: the catch-up races their commits.
    for _ in 0..WRITERS {
        started.recv().await.unwrap();
    }
    let mut ws = Client::connect(&server).await;
    let caught_up = ws.subscribe("race", 0, Encoding::MsgPack).await;
    assert!(
        caught_up.seq < TOTAL,
        "the subscription began while writers were still pushing"
    );
    let mut seen = seqs(&caught_up.docs);
    assert_eq!(caught_up.seq, seen.last().copied().unwrap_or(0));
    while seen.last().copied().unwrap_or(0) < TOTAL {
        seen.extend(seqs(&ws.changes("race").await));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(
        seen,
        (1..=TOTAL).collect::<Vec<_>>(),
        "every seq exactly once, in order"
    );
    ws.quiet().await;
}

#[tokio::test]
async fn a_large_backlog_comes_in_bounded_frames() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let server = TestServer::start();
    let http = http();
    // 24 values of 300 KiB (7.2 MiB in all), and 1500 small ones.
    for batch in 0..4 {
        let big: Vec<_> = (0..6)
            .map(|i| json!({"key": format!("big{batch}-{i}"), "base": 0, "value": "x".repeat(300 << 10)}))
            .collect();
        http_push(&http, &server, "backlog", json!(big)).await;
    }
    let small: Vec<_> = (0..1500)
        .map(|i| json!({"key": format!("small{i}"), "base": 0, "value": i}))
        .collect();
    http_push(&http, &server, "backlog", json!(small)).await;

    let mut ws = Client::connect(&server).await;
    ws.send(
        &ClientFrame::Subscribe {
            group: "backlog".into(),
            since: 0,
        },
        Encoding::MsgPack,
    )
    .await;
    let (mut sizes, mut seen) = (Vec::new(), Vec::new());
    loop {
        let message = ws.socket.next().await.unwrap().unwrap();
        let Message::Binary(bytes) = message else {
            continue;
        };
        match ServerFrame::decode(&bytes, Encoding::MsgPack).unwrap() {
            ServerFrame::Changes { changes, .. } => {
                sizes.push(bytes.len());
                seen.extend(seqs(&changes));
            }
            ServerFrame::Subscribed { seq, .. } => {
                assert_eq!(seq, 1524);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, (1..=1524).collect::<Vec<_>>());
    let largest = sizes.iter().max().copied().unwrap_or(0);
    assert!(sizes.len() >= 8, "{sizes:?}");
    assert!(largest < 1_400_000, "frames stay near 1 MiB: {sizes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_commit_reaches_fifty_subscribers() {
    let server = TestServer::start();
    let mut clients = Vec::new();
    for i in 0..50 {
        let mut ws = Client::connect(&server).await;
        let encoding = if i % 2 == 0 {
            Encoding::MsgPack
        } else {
            Encoding::Json
        };
        ws.send(
            &ClientFrame::Subscribe {
                group: "fan".into(),
                since: 0,
            },
            encoding,
        )
        .await;
        clients.push(ws);
    }
    for ws in &mut clients {
        assert!(matches!(
            ws.frame().await,
            ServerFrame::Subscribed { seq: 0, .. }
        ));
    }
    let started = Instant::now();
    http_push(&http(), &server, "fan", new_keys(&["shout"])).await;
    let readers = clients
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { ws.changes("fan").await }));
    for reader in readers {
        let docs = reader.await.unwrap();
        assert_eq!(
            (docs.len(), docs[0].key.as_str(), docs[0].seq),
            (1, "shout", 1)
        );
    }
    eprintln!(
        "one commit reached 50 subscribers in {:?}",
        started.elapsed()
    );
}

/// A client whose TCP receive window is tiny, so that its side fills quickly.
async fn connect_slow(server: &TestServer) -> Client {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(server.addr).await.unwrap();
    let (socket, _) = tokio_tungstenite::client_async(
        server.ws_url("/sync/ws"),
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await
    .unwrap();
    Client::from_socket(socket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_that_never_reads_is_closed_with_1013_while_a_fast_one_keeps_up() {
    // Bounded: pushes of 8 KiB stop as soon as the server reports the slow connection
    // closed, and never go beyond this many (about 24 MiB).
    const MAX_PUSHES: u64 = 3000;
    let server = TestServer::start();
    let http = http();
    let mut slow = connect_slow(&server).await;
    slow.subscribe("flood", 0, Encoding::Json).await;
    let mut fast = Client::connect(&server).await;
    fast.subscribe("flood", 0, Encoding::MsgPack).await;
    let (pushed_tx, mut pushed_rx) = tokio::sync::watch::channel(0u64);
    let fast_reader = tokio::spawn(async move {
        let mut seen: Vec<u64> = Vec::new();
        loop {
            let target = *pushed_rx.borrow_and_update();
            if target > 0 && seen.last().copied() >= Some(target) {
                return seen;
            }
            tokio::select! {
                changes = fast.changes("flood") => seen.extend(seqs(&changes)),
                _ = pushed_rx.changed() => {}
            }
        }
    });

    let filler = "x".repeat(8 << 10);
    let mut pushes = 0;
    while pushes < MAX_PUSHES && !server.log().contains("too slow") {
        for _ in 0..25 {
            pushes += 1;
            let key = format!("k{pushes}");
            http_push(
                &http,
                &server,
                "flood",
                json!([{"key": key, "base": 0, "value": filler}]),
            )
            .await;
        }
    }
    assert!(
        server.log().contains("too slow"),
        "no 1013 after {pushes} pushes of 8 KiB\n{}",
        server.log()
    );
    let _ = pushed_tx.send(pushes);
    let seen = tokio::time::timeout(Duration::from_secs(30), fast_reader)
        .await
        .expect("fast reader")
        .unwrap();
    assert_eq!(
        seen,
        (1..=pushes).collect::<Vec<_>>(),
        "the fast subscriber lost nothing"
    );

    // The slow one now reads: a gapless prefix, then 1013.
    let (frames, close) = slow.until_close().await;
    let close = close.expect("a close frame");
    assert_eq!(close.code, CloseCode::Again, "{close:?}");
    let mut cursor = 0;
    for frame in frames {
        let ServerFrame::Changes { changes, .. } = frame else {
            panic!("{frame:?}")
        };
        for doc in changes {
            assert_eq!(doc.seq, cursor + 1);
            cursor = doc.seq;
        }
    }
    assert!(cursor < pushes, "it was closed before the end");
    eprintln!("slow reader closed with 1013 after {pushes} pushes, at cursor {cursor}");
    // It resumes from its cursor with nothing lost.
    let mut again = Client::connect(&server).await;
    let rest = again.subscribe("flood", cursor, Encoding::MsgPack).await;
    assert_eq!(seqs(&rest.docs), (cursor + 1..=pushes).collect::<Vec<_>>());
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1001_promptly() {
    let mut server = TestServer::start();
    let mut ws = Client::connect(&server).await;
    ws.subscribe("bye", 0, Encoding::Json).await;
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = server.stop();
        (status, server)
    });
    let (_, close) = ws.until_close().await;
    assert_eq!(close.expect("a close frame").code, CloseCode::Away);
    let (status, _server) = status.await.unwrap();
    assert!(status.success(), "{status:?}");
    // Without the close, the open socket would hold shutdown for its whole grace period.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}
