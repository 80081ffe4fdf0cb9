//! What survives a restart (seq, epoch, data; SIGTERM exits 0) and a SIGKILL under load
//! (every acknowledged write).

use serde_json::json;

use super::{JSON, client, get_json, push_json};
use crate::common::TestServer;

#[tokio::test]
async fn restart_keeps_seq_epoch_and_data_and_sigterm_exits_zero() {
    let mut server = TestServer::start();
    assert!(server.log().contains("auth is off"));
    let (_, b) = push_json(
        &server,
        &json!({"group": "r", "changes": [{"key": "a", "base": 0, "value": 1}]}),
    )
    .await;
    let epoch = b["epoch"].clone();
    let status = server.stop();
    assert!(status.success(), "SIGTERM exits with 0, got {status:?}");
    server.restart();
    let (_, b) = push_json(
        &server,
        &json!({"group": "r", "changes": [{"key": "b", "base": 0, "value": 2}]}),
    )
    .await;
    assert_eq!(b["epoch"], epoch);
    assert_eq!(
        b["results"][0]["seq"], 2,
        "the sequence continues after a restart"
    );
    let (_, page) = get_json(&server, "/sync?group=r").await;
    assert_eq!(page["changes"].as_array().unwrap().len(), 2);
}

/// SIGKILL in the middle of a stream of pushes: every acknowledged write is there after the
/// restart, and the sequence has no gap.
#[tokio::test]
async fn every_acknowledged_write_survives_sigkill() {
    let mut server = TestServer::start();
    let url = server.url("/sync");
    let acks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = url.clone();
            let acks = acks.clone();
            tokio::spawn(async move {
                let c = client();
                let mut acked = Vec::new();
                for i in 0..10_000 {
                    let body = json!({"group": "crash", "changes": [{"key": format!("w{w}-{i}"), "base": 0, "value": i}]});
                    let sent = c.post(&url).header("content-type", JSON).body(body.to_string()).send().await;
                    match sent {
                        Ok(res) if res.status() == 200 => {
                            acked.push(format!("w{w}-{i}"));
                            acks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect();
    // Kill once the writers are well into their stream, however slow the machine is today.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acks.load(std::sync::atomic::Ordering::Relaxed) < 200
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.kill();
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "some pushes were acknowledged before the kill"
    );
    server.restart();
    let (_, page) = get_json(&server, "/sync?group=crash&limit=10000").await;
    let docs = page["changes"].as_array().unwrap();
    let keys: std::collections::HashSet<&str> =
        docs.iter().map(|d| d["key"].as_str().unwrap()).collect();
    for key in &acked {
        assert!(keys.contains(key.as_str()), "acknowledged {key} lost");
    }
    let mut seqs: Vec<u64> = docs.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no gap in seq"
    );
}
