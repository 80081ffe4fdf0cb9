#!/usr/bin/env python3
"""Figures for hostile and careless peers (issue 12), measured on a real server.

    cargo build --release --bin atomsync-server
    python3 bench/hostile_figures.py [--server target/release/atomsync-server] [--runs 3]

Starts the server on a temporary database with its default timeouts and prints, for each
run and as a median:

- stalled body -> 408: a `POST /sync` declaring `Content-Length: 1000` sends 16 bytes and
  stops; the time until the 408 arrives (the default request timeout is 30 s, so a run
  takes that long);
- overflow -> release: a subscriber with a small receive window stops reading; pushes of
  4 KiB values follow until the server logs that it closes the subscriber with 1013; the
  time from that log line to the moment the kernel no longer lists the server's side of
  the socket as held (open by the process, or with bytes queued).

Memory per idle subscribed WebSocket is the benchmark's `mem` workload
(`cargo run --release -p atomsync-bench -- --only mem`).
"""

import argparse
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import datetime


def start_server(binary, folder):
    config = os.path.join(folder, "atomsync.toml")
    with open(config, "w") as f:
        f.write('[server]\nbind = "127.0.0.1:0"\ndb = "%s"\ndurability = "normal"\n'
                % os.path.join(folder, "atomsync.db"))
    log_path = os.path.join(folder, "server.log")
    log = open(log_path, "w")
    process = subprocess.Popen([binary, "--config", config, "--log", "info"],
                               stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        text = open(log_path).read()
        found = re.search(r"listening on http://([0-9.]+):(\d+)", text)
        if found:
            return process, (found.group(1), int(found.group(2))), log_path
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the server did not start:\n" + open(log_path).read())


def stalled_body(addr):
    """Seconds from the last byte sent to the 408."""
    s = socket.create_connection(addr)
    s.sendall(b"POST /sync HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n" % (addr[0].encode(), addr[1]))
    s.sendall(b"{" * 16)
    start = time.monotonic()
    s.settimeout(120)
    answer = s.recv(4096)
    elapsed = time.monotonic() - start
    s.close()
    if not answer.startswith(b"HTTP/1.1 408"):
        raise SystemExit("expected a 408, got %r" % answer[:80])
    return elapsed


def ws_frame(payload):
    mask = b"\x11\x22\x33\x44"
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + len(payload).to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def server_side_held(server_port, client_port):
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, queues, inode = fields[1], fields[2], fields[4], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == server_port and \
                    int(remote.rsplit(":", 1)[1], 16) == client_port:
                if inode != "0" or int(queues.split(":")[0], 16) != 0:
                    return True
    return False


def log_time(line):
    stamp = line.split()[0].rstrip("Z")
    return datetime.fromisoformat(stamp[:26]).timestamp()


def overflow_release(addr, log_path, group):
    """Seconds from the server's 1013 decision to the release of the socket."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(addr)
    s.sendall(b"GET /sync/ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
              % (addr[0].encode(), addr[1]))
    s.sendall(ws_frame(json.dumps({"type": "subscribe", "group": group, "since": 0}).encode()))
    seen = b""
    while b"subscribed" not in seen:
        seen += s.recv(4096)
    client_port = s.getsockname()[1]
    already = open(log_path).read().count("closing with 1013")
    stop = threading.Event()

    def push(worker):
        conn = http.client.HTTPConnection(addr[0], addr[1])
        value = "x" * 4096
        n = 0
        while not stop.is_set():
            body = json.dumps({"group": group, "changes": [
                {"key": "w%d-%d" % (worker, n), "base": 0, "value": value}]})
            conn.request("POST", "/sync", body, {"Content-Type": "application/json"})
            conn.getresponse().read()
            n += 1

    pushers = [threading.Thread(target=push, args=(i,)) for i in range(8)]
    for p in pushers:
        p.start()
    decided = None
    deadline = time.time() + 120
    while decided is None and time.time() < deadline:
        lines = [l for l in open(log_path).read().splitlines() if "closing with 1013" in l]
        if len(lines) > already:
            decided = log_time(lines[-1])
        time.sleep(0.01)
    stop.set()
    for p in pushers:
        p.join()
    if decided is None:
        raise SystemExit("the server never closed the reader with 1013")
    while server_side_held(addr[1], client_port) and time.time() < deadline:
        time.sleep(0.01)
    released = time.time()
    s.close()
    return released - decided


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="target/release/atomsync-server")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        process, addr, log_path = start_server(args.server, folder)
        try:
            bodies = []
            releases = []
            for run in range(args.runs):
                releases.append(overflow_release(addr, log_path, "figures-%d" % run))
                print("run %d: overflow -> socket released %.2f s" % (run + 1, releases[-1]), flush=True)
            threads = []
            for run in range(args.runs):
                # The stalls run side by side: each waits the whole request timeout.
                t = threading.Thread(target=lambda: bodies.append(stalled_body(addr)))
                t.start()
                threads.append(t)
            for t in threads:
                t.join()
            for run, seconds in enumerate(bodies):
                print("run %d: stalled body -> 408 %.2f s" % (run + 1, seconds), flush=True)
            print("median: stalled body -> 408 %.2f s; overflow -> socket released %.2f s"
                  % (statistics.median(bodies), statistics.median(releases)))
        finally:
            process.terminate()
            process.wait()


if __name__ == "__main__":
    main()
