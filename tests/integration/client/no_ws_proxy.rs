//! A loopback proxy that forwards HTTP to the server but refuses the WebSocket upgrade
//! with a 404, as an old server or a strict proxy would: what makes the native client fall
//! back to HTTP polling. Plain threads and blocking sockets, one pair per connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;

/// A running proxy; it lives as long as the test process (its threads end with it).
pub struct NoWsProxy {
    pub addr: SocketAddr,
}

impl NoWsProxy {
    pub fn start(upstream: SocketAddr) -> NoWsProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                thread::spawn(move || serve(client, upstream));
            }
        });
        NoWsProxy { addr }
    }

    /// The sync URL through the proxy.
    pub fn url(&self) -> String {
        format!("http://{}/sync", self.addr)
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr) {
    // Read the head of the first request: the WebSocket upgrade is always a connection's
    // first (and only) request.
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match client.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buffer[..n]),
        }
    }
    let request_line = head.split(|byte| *byte == b'\n').next().unwrap_or_default();
    if String::from_utf8_lossy(request_line).contains("/sync/ws") {
        let body = r#"{"error":"not_found","message":"path: no WebSocket here"}"#;
        let response = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(response.as_bytes());
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    if server.write_all(&head).is_err() {
        return;
    }
    let (Ok(mut client_reader), Ok(mut server_writer)) = (client.try_clone(), server.try_clone())
    else {
        return;
    };
    thread::spawn(move || {
        let _ = std::io::copy(&mut client_reader, &mut server_writer);
        let _ = server_writer.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Write);
}
