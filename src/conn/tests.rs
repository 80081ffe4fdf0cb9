//! The registry on real loopback sockets: the limit refuses at once, the sweeper aborts a
//! connection past its deadline (and only that one), waking whoever waits on it.

use std::time::Duration;

use actix_web::rt::net::{TcpListener, TcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

fn connections(limit: usize) -> Connections {
    Connections::new(
        limit,
        Timings {
            request_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
            close_timeout: Duration::from_secs(2),
        },
    )
}

async fn read_all(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[actix_rt::test]
async fn past_the_limit_a_connection_is_answered_503_and_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let conns = connections(1);
    let (_c1, s1) = pair(&listener).await;
    let first = conns.accept(s1).expect("under the limit");
    assert_eq!(conns.open_count(), 1);

    let (mut c2, s2) = pair(&listener).await;
    assert!(conns.accept(s2).is_none());
    assert_eq!(conns.open_count(), 1);
    let answer = read_all(&mut c2).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");

    // Once the first goes, a new one is let in.
    drop(first);
    assert_eq!(conns.open_count(), 0);
    let (_c3, s3) = pair(&listener).await;
    assert!(conns.accept(s3).is_some());
}

#[actix_rt::test]
async fn the_sweeper_aborts_only_connections_past_their_deadline_and_wakes_their_readers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let conns = connections(10);
    let (mut late_peer, late) = pair(&listener).await;
    let (_busy_peer, busy) = pair(&listener).await;
    let mut late = conns.accept(late).unwrap();
    let mut busy = conns.accept(busy).unwrap();
    late.conn()
        .enter(Phase::Request, Some(Duration::from_millis(50)));
    busy.conn().enter(Phase::Processing, None);

    // A task waiting to read the late connection is woken by the abort and fails.
    let waiting = tokio::spawn(async move {
        let mut buf = [0u8; 8];
        let read = late.read(&mut buf).await;
        (read.map_err(|e| e.kind()), late)
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    conns.sweep();
    let (read, late) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the reader was woken")
        .unwrap();
    assert_eq!(read.unwrap_err(), std::io::ErrorKind::ConnectionAborted);
    drop(late);
    assert_eq!(conns.open_count(), 1);
    // Reset (SO_LINGER 0) or closed: the peer sees the end either way.
    let mut buf = [0u8; 8];
    assert!(matches!(late_peer.read(&mut buf).await, Ok(0) | Err(_)));

    // The busy one is untouched and still carries bytes.
    busy.write_all(b"ok").await.unwrap();
    conns.sweep();
    busy.write_all(b"ok").await.unwrap();
}

#[actix_rt::test]
async fn a_stalled_head_between_requests_gets_a_408() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let conns = connections(10);
    let (mut client, server) = pair(&listener).await;
    let mut server = conns.accept(server).unwrap();
    server.conn().enter(Phase::Idle, Some(Duration::ZERO));
    conns.sweep();
    let mut buf = [0u8; 8];
    assert!(server.read(&mut buf).await.is_err());
    drop(server);
    let answer = read_all(&mut client).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let declared: usize = answer
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(body.len(), declared);
}
