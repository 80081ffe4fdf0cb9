//! Idle group actors are reclaimed (issue 11, fault 4): every group ever subscribed kept
//! its actor until a restart. Now one with no subscriber stops after the idle timeout, and
//! the next subscription starts a fresh one, with no change lost or repeated.

use std::time::{Duration, Instant};

use atomsync_proto::Encoding;
use atomsync_proto::wire::{ClientFrame, ServerFrame};
use serde_json::Value as Json;

use super::{http, pull_all, push};
use crate::common::TestServer;
use crate::ws::Client as WsClient;

async fn actors(server: &TestServer) -> u64 {
    let res = http()
        .get(server.url("/admin/server"))
        .bearer_auth("root")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Json = res.json().await.unwrap();
    body["group_actors"].as_u64().unwrap()
}

/// Reads frames until `subscribed` of `group`; the seqs of the catch-up documents.
async fn caught_up(ws: &mut WsClient, group: &str) -> (Vec<u64>, u64) {
    let mut seqs = Vec::new();
    loop {
        match ws.frame().await {
            ServerFrame::Changes { changes, .. } => seqs.extend(changes.iter().map(|d| d.seq)),
            ServerFrame::Subscribed { group: g, seq, .. } if g == group => return (seqs, seq),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn idle_actors_stop_and_a_later_subscription_resumes_exactly() {
    let server =
        TestServer::start_with("group_idle_timeout = \"300ms\"\n[admin]\ntoken = \"root\"\n");
    let mut ws = WsClient::connect(&server).await;
    for i in 0..40 {
        let group = format!("user-{i}");
        push(&server, &group, &[("k", 0, Some(1.into()))]).await;
        let frame = ClientFrame::Subscribe {
            group: group.clone(),
            since: 0,
        };
        ws.send(&frame, Encoding::MsgPack).await;
        assert_eq!(caught_up(&mut ws, &group).await, (vec![1], 1));
    }
    assert_eq!(actors(&server).await, 40);
    for i in 0..40 {
        let group = format!("user-{i}");
        ws.send(&ClientFrame::Unsubscribe { group }, Encoding::MsgPack)
            .await;
        assert!(matches!(ws.frame().await, ServerFrame::Unsubscribed { .. }));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while actors(&server).await > 0 {
        assert!(Instant::now() < deadline, "idle actors were never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Written while no actor ran: a subscription from the cursor gets exactly that, then
    // every later commit live.
    push(
        &server,
        "user-7",
        &[("k", 1, Some(2.into())), ("m", 0, Some(3.into()))],
    )
    .await;
    let frame = ClientFrame::Subscribe {
        group: "user-7".into(),
        since: 1,
    };
    ws.send(&frame, Encoding::MsgPack).await;
    assert_eq!(caught_up(&mut ws, "user-7").await, (vec![2, 3], 3));
    push(&server, "user-7", &[("n", 0, Some(4.into()))]).await;
    match ws.frame().await {
        ServerFrame::Changes { changes, seq, .. } => {
            assert_eq!((changes.len(), seq, changes[0].seq), (1, 4, 4));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(actors(&server).await, 1);
    let (docs, _) = pull_all(&server, "user-7", 0).await;
    assert_eq!(docs.len(), 3);
}
