//! Every page and frame is bounded in bytes (PROTOCOL.md section 4; issue 11, fault 3):
//! pull pages in both encodings, WebSocket catch-up and live frames of a large commit, and
//! push answers full of large conflicting documents; and both transports of the native
//! client sync a group of seventy 1 MB documents, which the HTTP fallback never did (a
//! 70 MB page, past its 64 MiB cap, asked for forever).

use std::time::Duration;

use atomsync_client::{Options, Store};
use atomsync_proto::wire::{ClientFrame, ServerFrame};
use atomsync_proto::{Encoding, Value};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{blob, pull_page, push, push_raw};
use crate::client::no_ws_proxy::NoWsProxy;
use crate::client::{eventually, options};
use crate::common::TestServer;

/// The body limit, and the bound of every page.
const LIMIT: usize = 8 << 20;
/// A value of about 1 MB: as large as the default limit allows, with room for its header.
const BIG: usize = 1_000_000;
const DOCS: usize = 70;

/// Seventy documents of 1 MB in group `big`, seven per push (a push stays under 8 MiB).
async fn seventy(server: &TestServer) {
    for chunk in 0..DOCS / 7 {
        let keys: Vec<String> = (0..7).map(|i| format!("doc-{}", chunk * 7 + i)).collect();
        let changes: Vec<_> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), 0, Some(blob(BIG, (chunk * 7 + i) as u8))))
            .collect();
        push(server, "big", &changes).await;
    }
}

#[tokio::test]
async fn pull_pages_are_bounded_in_bytes_in_both_encodings() {
    let server = TestServer::start();
    seventy(&server).await;
    for encoding in [Encoding::MsgPack, Encoding::Json] {
        let (mut cursor, mut count, mut largest, mut pages) = (0, 0, 0, 0);
        loop {
            let query = format!("since={cursor}&full=true");
            let (page, bytes) = pull_page(&server, "big", &query, encoding).await;
            assert!(!page.changes.is_empty());
            assert!(
                bytes <= LIMIT || page.changes.len() == 1,
                "{encoding:?}: a page of {bytes} bytes and {} documents",
                page.changes.len()
            );
            largest = largest.max(bytes);
            count += page.changes.len();
            pages += 1;
            cursor = page.seq;
            if !page.more {
                break;
            }
        }
        assert_eq!(count, DOCS);
        assert!(pages >= 9, "{encoding:?}: {pages} pages");
        eprintln!("{encoding:?}: {pages} pages, the largest {largest} bytes");
    }
}

/// The sizes of every data frame until `subscribed`, and of the frames after it.
async fn frame_sizes(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    until_docs: usize,
) -> Vec<(usize, usize)> {
    let mut sizes = Vec::new();
    let mut docs = 0;
    while docs < until_docs {
        let message = tokio::time::timeout(Duration::from_secs(30), socket.next())
            .await
            .expect("a frame")
            .expect("open")
            .expect("readable");
        let Message::Binary(bytes) = message else {
            continue;
        };
        match ServerFrame::decode(&bytes, Encoding::MsgPack).unwrap() {
            ServerFrame::Changes { changes, .. } => {
                docs += changes.len();
                sizes.push((bytes.len(), changes.len()));
            }
            ServerFrame::Subscribed { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    sizes
}

#[tokio::test]
async fn catch_up_and_live_frames_are_bounded_in_bytes() {
    use futures_util::SinkExt;
    let server = TestServer::start();
    seventy(&server).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/sync/ws"))
        .await
        .unwrap();
    let subscribe = ClientFrame::Subscribe {
        group: "big".into(),
        since: 0,
    };
    socket
        .send(Message::binary(subscribe.encode(Encoding::MsgPack)))
        .await
        .unwrap();
    let sizes = frame_sizes(&mut socket, DOCS).await;
    for (bytes, docs) in &sizes {
        assert!(
            *bytes <= (1 << 20) || *docs == 1,
            "{bytes} bytes in {docs} documents"
        );
    }
    // One push of seven 1 MB documents: one commit, sent as frames of about 1 MiB.
    let changes: Vec<_> = (0..7)
        .map(|i| {
            (
                ["n0", "n1", "n2", "n3", "n4", "n5", "n6"][i],
                0,
                Some(blob(BIG, 9)),
            )
        })
        .collect();
    push(&server, "big", &changes).await;
    let live = frame_sizes(&mut socket, 7).await;
    assert!(live.len() >= 7, "{live:?}");
    assert!(
        live.iter()
            .all(|(bytes, docs)| *bytes <= (1 << 20) + 64 && *docs == 1)
    );
}

/// A push whose conflicts would answer with more than the body limit of current documents
/// is refused whole (413), applying nothing, not answered with a 10 MB body.
#[tokio::test]
async fn a_push_answer_full_of_large_conflicts_is_refused_whole() {
    let server = TestServer::start();
    seventy(&server).await;
    let mut changes: Vec<(String, u64, Option<Value>)> = (0..10)
        .map(|i| (format!("doc-{i}"), 0, Some(Value::from(1))))
        .collect();
    changes.push(("fresh".into(), 0, Some(Value::from(2))));
    let borrowed: Vec<_> = changes
        .iter()
        .map(|(k, b, v)| (k.as_str(), *b, v.clone()))
        .collect();
    let (status, body) = push_raw(&server, "big", &borrowed).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("push fewer changes"), "{text}");
    let (page, _) = pull_page(&server, "big", "since=70&limit=10", Encoding::MsgPack).await;
    assert!(page.changes.is_empty(), "nothing was applied: {page:?}");
    // One change at a time is always answered, its 1 MB `current` included.
    let (status, _) = push_raw(&server, "big", &borrowed[..1]).await;
    assert_eq!(status, 200);
}

/// The native client syncs the seventy documents over the WebSocket and over its HTTP
/// fallback (through a proxy that refuses the WebSocket).
#[tokio::test]
async fn the_native_client_syncs_large_documents_over_either_transport() {
    let server = TestServer::start();
    seventy(&server).await;
    let proxy = NoWsProxy::start(server.addr);
    for (transport, options) in [
        ("websocket", options(&server)),
        ("http", Options::new(proxy.url())),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("c.db")).unwrap();
        let atom = store.synced_atom("big", options).unwrap();
        eventually(&format!("{transport}: 70 documents"), || {
            atom.snapshot().len() == DOCS
        })
        .await;
        let doc = atom.snapshot().get("doc-69").cloned().unwrap();
        assert_eq!(doc, blob(BIG, 69));
        store.close().await;
    }
}
