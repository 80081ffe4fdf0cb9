//! Slow and idle connections (PROTOCOL.md section 4): a request that does not arrive in
//! time gets 408 and is closed, whatever part of it stalls; past the connection limit a
//! new connection is refused at once; a connection the server closes is gone within a few
//! seconds, whatever the peer does. Timings are configured small so the tests stay quick.

use std::io::Write;
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use super::raw::{
    connect, connect_small_window, read_response, read_to_close, read_until_type, send_text,
    server_side_open, wait_released, ws_handshake,
};
use crate::common::TestServer;

/// The answer to a request whose `head` (then `body_start`) is all the peer sends, and how
/// long the server took to close the connection.
fn stalled(server: &TestServer, head: &str, body_start: &[u8]) -> (String, Duration) {
    let mut stream = connect(server.addr);
    let start = Instant::now();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body_start).unwrap();
    let answer = read_to_close(&mut stream);
    (answer, start.elapsed())
}

fn post_head(server: &TestServer, extra: &str) -> String {
    format!(
        "POST /sync HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{extra}\r\n",
        server.addr
    )
}

#[test]
fn every_kind_of_stalled_request_gets_408_and_is_closed() {
    let server = TestServer::start_with("request_timeout = 1\nclose_timeout = 1\n");
    let s = &server;
    thread::scope(|scope| {
        // Content-Length 1000, 16 bytes sent.
        let length =
            scope.spawn(|| stalled(s, &post_head(s, "Content-Length: 1000\r\n"), &[b'{'; 16]));
        // A chunked body that never ends.
        let chunked = scope.spawn(|| {
            stalled(
                s,
                &post_head(s, "Transfer-Encoding: chunked\r\n"),
                b"10\r\n{\"group\":\"g\",\"ch\r\n",
            )
        });
        // A body trickled a byte at a time, 5 bytes a second.
        let trickle = scope.spawn(|| {
            let mut stream = connect(s.addr);
            let start = Instant::now();
            stream
                .write_all(post_head(s, "Content-Length: 1000\r\n").as_bytes())
                .unwrap();
            let mut writer = stream.try_clone().unwrap();
            let drip = thread::spawn(move || {
                for _ in 0..1000 {
                    if writer.write_all(b" ").is_err() {
                        break;
                    }
                    thread::sleep(Duration::from_millis(200));
                }
            });
            let answer = read_response(&mut stream);
            let elapsed = start.elapsed();
            let _ = stream.shutdown(std::net::Shutdown::Both);
            drip.join().unwrap();
            (answer, elapsed)
        });
        // The head of a second request on a kept-alive connection.
        let second_head = scope.spawn(|| {
            let mut stream = connect(s.addr);
            let get = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr);
            stream.write_all(get.as_bytes()).unwrap();
            assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
            let start = Instant::now();
            let partial = format!("POST /sync HTTP/1.1\r\nHost: {}\r\nContent-Ty", s.addr);
            stream.write_all(partial.as_bytes()).unwrap();
            (read_to_close(&mut stream), start.elapsed())
        });
        // An `Upgrade` header on a push does not lift its deadline.
        let upgrade = scope.spawn(|| {
            let head = post_head(
                s,
                "Content-Length: 1000\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n",
            );
            stalled(s, &head, b"{")
        });
        // A chunked body the handler never reads (415): answered, then not drained forever.
        let unread = scope.spawn(|| {
            let head = format!(
                "POST /sync HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n",
                s.addr
            );
            stalled(s, &head, b"4\r\nabcd\r\n")
        });

        for (name, handle, within) in [
            ("content-length", length, 5),
            ("chunked", chunked, 5),
            ("trickle", trickle, 5),
            ("second head", second_head, 12),
        ] {
            let (answer, elapsed) = handle.join().unwrap();
            assert!(answer.starts_with("HTTP/1.1 408"), "{name}: {answer}");
            assert!(answer.contains("request_timeout"), "{name}: {answer}");
            assert!(elapsed < Duration::from_secs(within), "{name}: {elapsed:?}");
        }
        let (answer, elapsed) = upgrade.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "upgrade header: {answer}"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "upgrade header: held {elapsed:?}"
        );
        let (answer, elapsed) = unread.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
        assert!(
            elapsed < Duration::from_secs(5),
            "unread chunked body held {elapsed:?}"
        );
    });
    // Meanwhile and after, the server answers everyone else.
    let mut stream = connect(server.addr);
    let get = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    stream.write_all(get.as_bytes()).unwrap();
    assert!(read_response(&mut stream).starts_with("HTTP/1.1 200"));
}

#[test]
fn past_the_connection_limit_new_connections_are_refused_at_once() {
    let server = TestServer::start_with("max_connections = 6\nrequest_timeout = 20\n");
    // The harness's own health check may still be closing: wait until a slot is free.
    thread::sleep(Duration::from_millis(300));
    let mut open: Vec<TcpStream> = (0..6).map(|_| connect(server.addr)).collect();
    thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    let mut refused = connect(server.addr);
    let answer = read_to_close(&mut refused);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    // The open ones keep working.
    for stream in &mut open {
        let get = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
        stream.write_all(get.as_bytes()).unwrap();
        assert!(read_response(stream).starts_with("HTTP/1.1 200"));
    }
    // Once one goes, a new one is let in.
    drop(open.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut stream = connect(server.addr);
        let get = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
        let _ = stream.write_all(get.as_bytes());
        if read_response(&mut stream).starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "no slot freed");
        thread::sleep(Duration::from_millis(50));
    }
    assert!(server.log().contains("refusing new connections"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_is_freed_within_seconds() {
    let server = TestServer::start_with("close_timeout = 1\n");
    let addr = server.addr;
    let (client_addr, _socket) = tokio::task::spawn_blocking(move || {
        let mut stream = connect_small_window(addr);
        let head = ws_handshake(&mut stream, addr, "", "");
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        send_text(
            &mut stream,
            &json!({"type": "subscribe", "group": "sink", "since": 0}),
        );
        read_until_type(&mut stream, "subscribed");
        // From here on the peer reads nothing, and keeps the socket open.
        (stream.local_addr().unwrap(), stream)
    })
    .await
    .unwrap();

    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let big = "x".repeat(4096);
    let pushes = futures_util::stream::iter(0..3000).map(|i| {
        let body = json!({"group": "sink", "changes": [{"key": format!("k{i}"), "base": 0, "value": big}]});
        let request = http
            .post(server.url("/sync"))
            .header("content-type", "application/json")
            .body(body.to_string());
        async move { request.send().await.map(|r| r.status()) }
    });
    let statuses: Vec<_> = pushes.buffer_unordered(16).collect().await;
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, Ok(s) if s.is_success()))
    );
    let released = tokio::task::spawn_blocking(move || {
        wait_released(addr, client_addr, Duration::from_secs(15))
    })
    .await
    .unwrap();
    // The session's access line says how and why it ended.
    let log = server.log();
    assert!(
        log.contains("close=1013") && log.contains("too slow"),
        "{log}"
    );
    let released =
        released.expect("the server still holds the socket of a reader that never reads");
    assert!(released < Duration::from_secs(10), "{released:?}");
}

#[test]
fn a_silent_websocket_is_closed_at_the_idle_timeout_and_its_socket_freed() {
    let server = TestServer::start_with("ping_interval = 1\nidle_timeout = 3\nclose_timeout = 1\n");
    let mut stream = connect_small_window(server.addr);
    let head = ws_handshake(&mut stream, server.addr, "", "");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let start = Instant::now();
    let client = stream.local_addr().unwrap();
    // Silent: it neither reads (so pings pile up unanswered) nor writes.
    thread::sleep(Duration::from_secs(2));
    assert!(
        server_side_open(server.addr, client),
        "closed before the idle timeout"
    );
    let released = wait_released(server.addr, client, Duration::from_secs(10))
        .expect("the server still holds a silent socket")
        + Duration::from_secs(2);
    let total = start.elapsed().min(released);
    assert!(total >= Duration::from_millis(2900), "{total:?}");
    assert!(total < Duration::from_secs(6), "{total:?}");
}
