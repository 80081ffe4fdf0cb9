//! Raw-socket tools: an HTTP request written by hand (and then not finished), a WebSocket
//! handshake and masked frames without a library, and the server's side of a connection
//! as the kernel lists it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Connects with a read timeout, so a test never waits on a server that says nothing.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Connects with a small receive buffer (set before the handshake, so the window stays
/// small): a peer that stops reading fills up fast.
pub fn connect_small_window(addr: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Reads until the peer closes (or resets, or 20 s pass); what arrived, as text.
pub fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one HTTP response head (up to the blank line) and its `content-length` body.
pub fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => out.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&out).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    let _ = stream.read_exact(&mut body);
    head + &String::from_utf8_lossy(&body)
}

/// Does the WebSocket handshake on `stream` for `/sync/ws` + `query`, with `headers`
/// added (e.g. `Origin: ...\r\n`); returns the response head.
pub fn ws_handshake(
    stream: &mut TcpStream,
    addr: SocketAddr,
    query: &str,
    headers: &str,
) -> String {
    let request = format!(
        "GET /sync/ws{query} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{headers}\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    read_response(stream)
}

/// Writes one masked client frame.
pub fn send_frame(stream: &mut TcpStream, opcode: u8, payload: &[u8]) {
    let mut frame = vec![0x80 | opcode];
    let len = payload.len();
    if len < 126 {
        frame.push(0x80 | len as u8);
    } else if len < 65536 {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x11, 0x22, 0x33, 0x44];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    stream.write_all(&frame).unwrap();
}

/// Sends a JSON text frame.
pub fn send_text(stream: &mut TcpStream, json: &serde_json::Value) {
    send_frame(stream, 0x1, json.to_string().as_bytes());
}

/// Reads one server frame: its opcode and payload; `None` once the connection ends.
pub fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).ok()?;
            u64::from(u16::from_be_bytes(ext))
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).ok()?;
            u64::from_be_bytes(ext)
        }
        short => u64::from(short),
    };
    let mut payload = vec![0u8; usize::try_from(len).ok()?];
    stream.read_exact(&mut payload).ok()?;
    Some((head[0] & 0x0f, payload))
}

/// Reads frames until a text frame whose JSON `type` is `wanted`; that frame's JSON.
pub fn read_until_type(stream: &mut TcpStream, wanted: &str) -> serde_json::Value {
    loop {
        let (opcode, payload) = read_frame(stream).expect("a frame before the connection ended");
        if opcode == 0x1 {
            let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            if json["type"] == wanted {
                return json;
            }
        }
    }
}

/// Whether the server still holds its side of the connection from `client` (the
/// client's local address): a socket the process still has open (a non-zero inode in
/// the kernel's TCP tables), or one that still queues bytes for the peer. An orphan the
/// process has closed and that holds nothing (FIN_WAIT2, TIME_WAIT) counts as released.
pub fn server_side_open(server: SocketAddr, client: SocketAddr) -> bool {
    let wanted_local = server.port();
    let wanted_remote = client.port();
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let port = |addr: &str| {
                    addr.rsplit(':')
                        .next()
                        .and_then(|p| u16::from_str_radix(p, 16).ok())
                };
                let queued = |queues: &str| {
                    queues
                        .split(':')
                        .next()
                        .is_some_and(|tx| !tx.trim_start_matches('0').is_empty())
                };
                matches!(fields.as_slice(), [_, local, remote, _state, queues, _, _, _, _, inode, ..]
                    if port(local) == Some(wanted_local)
                        && port(remote) == Some(wanted_remote)
                        && (*inode != "0" || queued(queues)))
            })
    })
}

/// Waits up to `limit` for the server to let go of the connection from `client`; how
/// long it took, or `None` if it still holds it.
pub fn wait_released(server: SocketAddr, client: SocketAddr, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !server_side_open(server, client) {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}
