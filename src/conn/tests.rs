//! The registry on real loopback sockets: the limit refuses at once, the sweeper aborts
//! a connection past its deadline and only that one.

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use actix_web::dev::Extensions;

use super::*;

fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    (client, server)
}

fn connections(limit: usize) -> Connections {
    Connections::new(
        limit,
        Timings {
            request_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(5),
        },
    )
}

#[test]
fn past_the_limit_a_connection_is_answered_503_and_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let conns = connections(1);
    let (_c1, s1) = pair(&listener);
    let mut first = Extensions::new();
    conns.open(&s1, &mut first);
    assert!(first.get::<ConnGuard>().is_some());
    assert_eq!(conns.open_count(), 1);

    let (mut c2, s2) = pair(&listener);
    let mut second = Extensions::new();
    conns.open(&s2, &mut second);
    assert!(second.get::<ConnGuard>().is_none());
    assert_eq!(conns.open_count(), 1);
    let mut answer = String::new();
    c2.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");

    // Once the first goes, a new one is let in.
    drop(first);
    assert_eq!(conns.open_count(), 0);
    let (_c3, s3) = pair(&listener);
    let mut third = Extensions::new();
    conns.open(&s3, &mut third);
    assert!(third.get::<ConnGuard>().is_some());
}

#[test]
fn the_sweeper_aborts_only_connections_past_their_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let conns = connections(10);
    let (mut late, s1) = pair(&listener);
    let (mut busy, s2) = pair(&listener);
    let (mut ws, s3) = pair(&listener);
    let mut data = [Extensions::new(), Extensions::new(), Extensions::new()];
    for (stream, data) in [&s1, &s2, &s3].into_iter().zip(data.iter_mut()) {
        conns.open(stream, data);
    }
    let conn: Vec<Arc<Conn>> = data
        .iter()
        .map(|d| d.get::<ConnGuard>().unwrap().conn().clone())
        .collect();
    conn[0].enter(Phase::Request, Some(Duration::ZERO));
    conn[1].enter(Phase::Processing, None);
    conn[2].enter(Phase::Upgraded, None);
    conns.sweep();

    // Aborted: reset (SO_LINGER 0 takes effect at the last close) or at least shut down.
    drop(s1);
    drop(data[0].remove::<ConnGuard>());
    let mut buf = [0u8; 16];
    match late.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection gone, got {other:?}"),
    }
    for open in [&mut busy, &mut ws] {
        open.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let err = open.read(&mut buf).unwrap_err();
        assert!(matches!(
            err.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut
        ));
    }

    // A WebSocket the server closes is aborted once its grace has passed.
    conn[2].close_within(Duration::ZERO);
    conns.sweep();
    drop(s3);
    drop(data[2].remove::<ConnGuard>());
    ws.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(matches!(ws.read(&mut buf), Ok(0) | Err(_)));
}

#[test]
fn a_stalled_head_between_requests_gets_a_408() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let conns = connections(10);
    let (mut client, server) = pair(&listener);
    let mut data = Extensions::new();
    conns.open(&server, &mut data);
    let conn = data.get::<ConnGuard>().unwrap().conn().clone();
    conn.enter(Phase::Idle, Some(Duration::ZERO));
    conns.sweep();
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
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
